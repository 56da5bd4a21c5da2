"""Environments as code: ``manage.py environment apply|export``, ``PUT /api/v1/environments/<name>``,
and the one set of rules (``services.environments``) both share with the in-app form."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from sessions.models import Environment
from sessions.services import environments
from sessions.services.tokens import issue_token

pytestmark = pytest.mark.django_db

STAGING = {
    "name": "staging",
    "description": "the example target",
    "deploy_command": ["{python}", "deploy.py", "--revision", "{revision}"],
    "test_command": ["{python}", "-m", "pytest", "tests"],
    "working_dir": "examples/staging",
    "env_vars": {"STAGING_URL": "ws://127.0.0.1:8765"},
    "timeout_s": 600,
    "revisions": [
        {"revision": "r1", "commit": "aaa1", "message": "first"},
        {"revision": "r2", "commit": "bbb2", "message": ""},
    ],
    "default_revision": "r1",
    "health_check": ["{python}", "deploy.py", "--status"],
    "metric_targets": {"ws_latency_ms": {"target": 50, "lower_is_better": True}},
}


def apply_file(tmp_path: Path, document: object) -> str:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    out = io.StringIO()
    call_command("environment", "apply", str(path), stdout=out)
    return out.getvalue()


def export(name: str) -> dict:
    out = io.StringIO()
    call_command("environment", "export", name, stdout=out)
    return json.loads(out.getvalue())


def test_apply_creates_then_export_then_apply_changes_nothing(tmp_path: Path) -> None:
    printed = apply_file(tmp_path, STAGING)
    assert printed.startswith("created environment staging")
    env = Environment.objects.get(name="staging")
    assert env.test_command == STAGING["test_command"] and env.env_vars == STAGING["env_vars"]
    assert env.deploy_timeout_s == 600  # left out: the default
    exported = export("staging")
    assert list(exported) == environments.keys()  # every setting, in the model's order
    assert {k: exported[k] for k in STAGING} == STAGING
    before = Environment.objects.filter(name="staging").values().get()
    assert apply_file(tmp_path, exported).strip() == "environment staging: unchanged"
    assert Environment.objects.filter(name="staging").values().get() == before


def test_apply_prints_what_changed_and_a_left_out_key_returns_to_its_default(tmp_path: Path) -> None:
    apply_file(tmp_path, STAGING)
    changed = {**STAGING, "timeout_s": 900}
    del changed["metric_targets"]
    printed = apply_file(tmp_path, changed)
    assert printed.splitlines()[0] == "updated environment staging"
    assert "  timeout_s: 600 -> 900" in printed.splitlines()
    assert '  metric_targets: {"ws_latency_ms": {"target": 50, "lower_is_better": true}} -> {}' in printed
    assert Environment.objects.get(name="staging").metric_targets == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"test_command": "python -m pytest"},
            "test_command: must be a list of arguments (strings), never one shell string",
        ),
        ({"test_command": ["python", 3]}, "test_command[1]: every argument must be a string, got a number"),
        ({"deploy_command": ["deploy", "{revison}"]}, "deploy_command[1]: unknown placeholder {revison}"),
        ({"marker_args": ["-m"]}, "marker_args: must hold {marker} in exactly one argument"),
        (
            {"keyword_args": ["-k", "{keyword}", "{keyword}"]},
            "keyword_args: must hold {keyword} in exactly one argument",
        ),
        ({"revisions": [{"revision": "r1"}, {"revision": "r1"}]}, "revisions[1].revision: 'r1' is listed twice"),
        ({"revisions": [{"revision": "--force"}]}, "revisions[0].revision: must not start with '-'"),
        ({"revisions": [{"rev": "r1"}]}, "revisions[0].rev: unknown key"),
        ({"default_revision": "r9"}, "default_revision: 'r9' is not among the revisions (r1, r2)"),
        ({"env_vars": {"1BAD": "x"}}, "env_vars.1BAD: is not a variable name"),
        ({"timeout_s": 0}, "timeout_s: must be at least 1"),
        ({"timeout_s": "600"}, "timeout_s: must be a whole number from 0 to 2147483647, got '600'"),
        ({"unreachable_share": 101}, "unreachable_share: is a percentage"),
        ({"end_to_end": "yes"}, "end_to_end: must be true or false, got a string"),
        ({"metric_targets": {"lat": {"target": "fast"}}}, "metric_targets.lat.target: must be a finite number"),
        ({"name": "no spaces please"}, "name: must be a slug"),
        ({"colour": "blue"}, "colour: unknown key (known: name, description,"),
        ({"repository": "--upload-pack=evil"}, "repository: repository '--upload-pack=evil' is not a URL or a path"),
        ({"setup_command": "make deps"}, "setup_command: must be a list of arguments (strings), never one shell"),
        ({"setup_cache_files": ["../secrets"]}, "setup_cache_files[0]: must stay inside the checkout"),
    ],
)
def test_a_bad_file_names_the_key_and_changes_nothing(tmp_path: Path, change: dict, expected: str) -> None:
    apply_file(tmp_path, STAGING)
    before = Environment.objects.filter(name="staging").values().get()
    with pytest.raises(CommandError) as raised:
        apply_file(tmp_path, {**STAGING, "timeout_s": 700, **change})  # a good change alongside: not applied
    message = str(raised.value)
    assert "\n" not in message and expected in message, message
    assert Environment.objects.filter(name="staging").values().get() == before
    assert Environment.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
        ('["a list"]', "(document): must be a JSON object of settings, got a list"),
        ('{"description": "no name"}', "name: is required"),
        ('{"name": "x", "description": "a\\u0000b"}', "holds a NUL character"),
    ],
)
def test_a_file_that_is_not_an_environment_is_refused_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(CommandError) as raised:
        apply_file(tmp_path, text)
    assert expected in str(raised.value) and "\n" not in str(raised.value)
    assert not Environment.objects.exists()


def test_the_command_exits_non_zero_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Through manage.py's own entry point: status 1 and one line on stderr (CommandError's contract)."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "test_command": "pytest -q"}))
    with pytest.raises(SystemExit) as exited:
        call_command_from_argv(["manage.py", "environment", "apply", str(path)])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"CommandError: {path}: test_command: must be a list of arguments (strings), never one shell string; got a string\n"
    )


def call_command_from_argv(argv: list[str]) -> None:
    load_command_class("sessions", "environment").run_from_argv(argv)


def test_export_of_an_unknown_environment_is_an_error() -> None:
    with pytest.raises(CommandError, match="no environment 'nope'"):
        call_command("environment", "export", "nope")


# -- the API -------------------------------------------------------------------------------------------------


def bearer(user, scopes=("read", "upload", "trigger")) -> dict:
    return {"Authorization": f"Bearer {issue_token(user, scopes=scopes)}"}


def put(name: str, document: object, headers: dict):
    return Client().put(
        reverse("api_environment", args=[name]), json.dumps(document), content_type="application/json", headers=headers
    )


def test_put_creates_and_updates_for_admins_and_get_returns_the_same_form(admin_user) -> None:
    headers = bearer(admin_user)
    document = {k: v for k, v in STAGING.items() if k != "name"}
    created = put("staging", document, headers)
    assert created.status_code == 201, created.content
    assert created.json()["created"] is True and created.json()["test_command"] == STAGING["test_command"]
    read = Client().get(reverse("api_environment", args=["staging"]), headers=headers)
    assert read.status_code == 200
    body = read.json()
    again = put("staging", body, headers)
    assert again.status_code == 200 and again.json()["changed"] == []
    updated = put("staging", {**body, "timeout_s": 30}, headers)
    assert updated.status_code == 200 and updated.json()["changed"] == ["timeout_s"]
    assert Environment.objects.get(name="staging").timeout_s == 30


def test_put_refuses_a_bad_key_with_nothing_changed(admin_user) -> None:
    headers = bearer(admin_user)
    put("staging", STAGING, headers)
    before = Environment.objects.filter(name="staging").values().get()
    response = put("staging", {**STAGING, "timeout_s": 5, "test_command": ["pytest", None]}, headers)
    assert response.status_code == 400
    assert response.json()["error"] == "test_command[1]: every argument must be a string, got null"
    assert response.json()["problems"][0]["key"] == "test_command[1]"
    assert Environment.objects.filter(name="staging").values().get() == before
    other = put("staging", {**STAGING, "name": "production"}, headers)
    assert other.status_code == 400 and other.json()["error"].startswith("name: is 'production'")
    surrogate = Client().put(
        reverse("api_environment", args=["staging"]),
        '{"description": "\\ud800"}',
        content_type="application/json",
        headers=headers,
    )
    assert surrogate.status_code == 400 and "lone surrogate" in surrogate.json()["error"]
    repo = put("staging", {"repository": "-oProxyCommand=x"}, headers)
    assert repo.status_code == 400 and repo.json()["error"].startswith("repository: repository '-oProxyCommand=x'")


def test_only_admins_put_and_the_token_needs_the_trigger_scope(operator, admin_user) -> None:
    refused = put("staging", STAGING, bearer(operator))
    assert refused.status_code == 403 and "only admins" in refused.json()["error"]
    narrow = put("staging", STAGING, bearer(admin_user, scopes=("read",)))
    assert narrow.status_code == 403 and "scope" in narrow.json()["error"]
    assert put("staging", STAGING, {}).status_code == 401
    assert not Environment.objects.exists()
    assert Client().get(reverse("api_environment", args=["nope"]), headers=bearer(operator)).status_code == 404


def test_the_openapi_description_lists_every_setting() -> None:
    spec = Client().get(reverse("api_openapi")).json()
    path = spec["paths"]["/environments/{name}"]
    assert {"get", "put"} <= set(path)
    assert set(spec["components"]["schemas"]["EnvironmentSettings"]["properties"]) == set(environments.keys())
