"""Uploads never create configuration: environments (whose commands workers run) are the admins'.

The API may only name an existing environment; a new session without one gets an environment of its
own without commands; an existing session keeps its environment. ``manage.py ingest``, run on the
server, may also create a named environment, without commands and only with a slug for a name.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions.models import Environment, LoopSession, TestRun
from sessions.services.tokens import issue_token

from . import samples
from .test_ingest_storage import row_counts

pytestmark = pytest.mark.django_db

RESULTS = samples.junit([("a", "ok", "passed"), ("a", "bad", "ws1011")])
COMMANDS = {
    "deploy_command": ["python", "deploy.py", "--revision", "{revision}"],
    "test_command": ["python", "-m", "pytest", "tests"],
    "working_dir": "/srv/staging",
    "env_vars": {"STAGING_TOKEN": "secret"},
}


@pytest.fixture
def token(engineer) -> str:
    return issue_token(engineer)


@pytest.fixture
def admin_environments() -> list[Environment]:
    """What an admin configured: a 'default' and a 'staging' environment, both with commands."""
    return [Environment.objects.create(name=name, **COMMANDS) for name in ("default", "staging")]


def upload(client, token: str, slug: str = "ci", data: bytes = RESULTS, **fields):
    return client.post(
        f"/api/v1/sessions/{slug}/runs",
        {"file": SimpleUploadedFile("results.xml", data), **fields},
        headers={"Authorization": f"Bearer {token}"},
    )


def assert_no_commands(environment: Environment) -> None:
    assert environment.deploy_command == [] and environment.test_command == []
    assert environment.working_dir == "" and environment.env_vars == {}


# -- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("<b>x y</b>", "must be a slug"),
        ("x y", "must be a slug"),
        ("ünicode", "must be a slug"),
        ("e" * 65, "at most 64 characters"),
        ("nowhere", "environments are created by admins"),
    ],
)
def test_an_upload_naming_an_environment_that_does_not_exist_is_refused(client, token, name, problem) -> None:
    before = row_counts()
    response = upload(client, token, environment=name)
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("environment ") or message.startswith("no environment ")
    assert problem in message
    assert row_counts() == before  # no environment, no session, no run


def test_the_unknown_environment_is_named_in_the_error(client, token) -> None:
    message = upload(client, token, environment="nowhere").json()["error"]
    assert message.startswith("no environment 'nowhere': environments are created by admins")


def test_a_new_session_without_an_environment_gets_its_own_without_commands(client, token, admin_environments) -> None:
    """Not the admin's 'default', nor the admin's environment that has the session's name."""
    assert upload(client, token, slug="staging").status_code == 201
    assert upload(client, token, slug="nightly").status_code == 201
    staging, nightly = (LoopSession.objects.get(slug=slug).environment for slug in ("staging", "nightly"))
    assert staging.name == "staging-2" and nightly.name == "nightly"
    for environment in (staging, nightly):
        assert environment not in admin_environments
        assert_no_commands(environment)
        assert TestRun.objects.get(session__environment=environment).environment == environment
    for environment in admin_environments:  # untouched
        environment.refresh_from_db()
        assert environment.test_command == COMMANDS["test_command"] and not environment.sessions.exists()


def test_a_new_session_may_name_an_existing_environment(client, token, admin_environments) -> None:
    response = upload(client, token, slug="release-7", environment="staging")
    assert response.status_code == 201
    assert LoopSession.objects.get(slug="release-7").environment == admin_environments[1]
    assert Environment.objects.count() == 2


def test_an_existing_session_keeps_its_environment(client, token, admin_environments) -> None:
    assert upload(client, token, environment="staging").status_code == 201
    again = samples.junit([("a", "ok", "passed")])
    assert upload(client, token, data=again, environment="staging").status_code == 201  # its own: fine
    assert upload(client, token, data=samples.junit([("b", "ok", "passed")])).status_code == 201  # none: fine
    before = row_counts()
    for other in ("default", "nowhere"):
        response = upload(client, token, data=samples.junit([("c", "ok", "passed")]), environment=other)
        assert response.status_code == 409
        assert response.json()["error"] == (
            f"session 'ci' belongs to environment 'staging', not {other!r}: a session's runs stay in its "
            "environment; leave environment out, or upload to another session"
        )
    assert row_counts() == before
    assert set(TestRun.objects.values_list("environment__name", flat=True)) == {"staging"}


def test_a_new_session_slug_over_100_characters_is_refused(client, token) -> None:
    before = row_counts()
    response = upload(client, token, slug="s" * 101)
    assert response.status_code == 400
    assert "session" in response.json()["error"] and "100" in response.json()["error"]
    assert row_counts() == before


def test_the_openapi_description_says_so(client) -> None:
    post = client.get("/api/v1/openapi.json").json()["paths"]["/sessions/{slug}/runs"]["post"]
    assert "409" in post["responses"]
    field = post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["environment"]
    assert "admins create environments" in field["description"]


# -- manage.py ingest ----------------------------------------------------------------------------


@pytest.fixture
def results_file(tmp_path):
    path = tmp_path / "results.xml"
    path.write_bytes(RESULTS)
    return path


@pytest.mark.parametrize("name", ["<b>x y</b>", "x y", "e" * 65])
def test_the_cli_refuses_an_environment_name_that_is_not_a_slug(results_file, name) -> None:
    before = row_counts()
    with pytest.raises(CommandError, match="argument --environment: environment must be"):
        call_command("ingest", str(results_file), "--session", "cli", "--environment", name)
    assert row_counts() == before


def test_the_cli_refuses_a_session_slug_that_is_not_a_slug(results_file) -> None:
    before = row_counts()
    with pytest.raises(CommandError, match=r"^--session: session must be a slug .*got 'x y'$"):
        call_command("ingest", str(results_file), "--session", "x y")
    assert row_counts() == before


def test_the_cli_creates_a_named_environment_without_commands(results_file, capsys) -> None:
    call_command("ingest", str(results_file), "--session", "cli", "--environment", "ci-box")
    out, err = capsys.readouterr()
    assert out.startswith("run ") and len(out.splitlines()) == 1  # the contract: one `run <id> <url>` line
    assert err.strip() == "note: created environment 'ci-box' without commands (an admin sets them in /admin/)"
    environment = LoopSession.objects.get(slug="cli").environment
    assert environment.name == "ci-box"
    assert_no_commands(environment)


def test_the_cli_uses_an_existing_environment_as_it_is(results_file, capsys, admin_environments) -> None:
    call_command("ingest", str(results_file), "--session", "cli", "--environment", "staging")
    assert capsys.readouterr().err == ""
    assert LoopSession.objects.get(slug="cli").environment == admin_environments[1]


def test_the_cli_gives_a_new_session_its_own_environment(results_file, admin_environments) -> None:
    call_command("ingest", str(results_file), "--session", "default")
    environment = LoopSession.objects.get(slug="default").environment
    assert environment.name == "default-2"
    assert_no_commands(environment)


def test_the_cli_refuses_another_environment_for_an_existing_session(
    results_file, tmp_path, admin_environments
) -> None:
    call_command("ingest", str(results_file), "--session", "cli", "--environment", "staging")
    other = tmp_path / "other.xml"
    other.write_bytes(samples.junit([("b", "ok", "passed")]))
    before = row_counts()
    with pytest.raises(
        CommandError, match="^--environment: session 'cli' belongs to environment 'staging', not 'fresh'"
    ):
        call_command("ingest", str(other), "--session", "cli", "--environment", "fresh")
    assert row_counts() == before
    assert not Environment.objects.filter(name="fresh").exists()


def test_generate_history_refuses_an_environment_name_that_is_not_a_slug() -> None:
    """The other command that can create an environment checks its name the same way."""
    before = row_counts()
    with pytest.raises(CommandError, match="argument --environment: environment must be a slug"):
        call_command("generate_history", "--cycles", "1", "--tests", "1", "--environment", "<b>x y</b>")
    assert row_counts() == before
