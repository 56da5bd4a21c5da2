"""API tokens with an expiry and a scope: issued by the command or the admin, enforced by the API
(401 expired, 403 out of scope, the user's role on top), listed and revoked in the admin, and
tokens issued before scopes existed keep working.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from sessions.models import ApiToken
from sessions.services.tokens import authenticate_token, issue_token, parse_scope

from . import samples

pytestmark = pytest.mark.django_db


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client, token: str, suite: str = "a"):
    data = samples.junit([(suite, "ok", "passed")])
    return client.post("/api/v1/sessions/ci/runs", {"file": SimpleUploadedFile("r.xml", data)}, headers=bearer(token))


def read_run(client, token: str, run_id: int):
    return client.get(f"/api/v1/runs/{run_id}", headers=bearer(token))


def trigger(client, token: str):
    return client.post("/api/v1/sessions/no-such-session/trigger", {"action": "tests"}, headers=bearer(token))


@pytest.fixture
def run_id(client, engineer) -> int:
    response = upload(client, issue_token(engineer), suite="seed")
    assert response.status_code == 201
    return response.json()["id"]


# -- the command --------------------------------------------------------------------------------


def issue(capsys, *args: str) -> tuple[str, ApiToken, str]:
    call_command("issue_token", *args)
    out = capsys.readouterr()
    token = out.out.strip()
    return token, ApiToken.objects.get(prefix=token[:10]), out.err


def test_the_command_issues_a_token_with_all_scopes_and_no_expiry_by_default(engineer, capsys) -> None:
    token, stored, note = issue(capsys, "erin")
    assert re.fullmatch(r"ld_[\w-]{43}", token)
    assert stored.scopes == ["read", "upload", "trigger"] and stored.expires_at is None
    assert "scope: read, upload, trigger; valid with no expiry" in note


def test_the_command_sets_scope_and_days(engineer, capsys) -> None:
    before = timezone.now()
    _, stored, note = issue(capsys, "erin", "--scope", "upload, read", "--days", "90", "--name", "ci")
    assert stored.scopes == ["read", "upload"] and stored.name == "ci"
    assert before + timedelta(days=90) <= stored.expires_at <= timezone.now() + timedelta(days=90)
    assert "scope: read, upload; valid until" in note


def test_the_command_sets_an_expiry_date(engineer, capsys) -> None:
    day = timezone.localdate() + timedelta(days=30)
    _, stored, note = issue(capsys, "erin", "--expires", day.isoformat(), "--scope", "trigger")
    assert timezone.localtime(stored.expires_at) == timezone.make_aware(datetime(day.year, day.month, day.day))
    assert stored.scopes == ["trigger"]
    assert f"valid until {day.isoformat()} 00:00" in note


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "read,delete"], "--scope: unknown scope 'delete': use read, upload, trigger, comma-separated"),
        (["--scope", " , "], "--scope: scope is empty"),
        (["--expires", "31/12/2030"], "--expires: '31/12/2030' is not a date (YYYY-MM-DD)"),
        (["--expires", "2001-01-01"], "--expires: 2001-01-01 is not in the future"),
        (["--days", "0"], "--days: must be 1 or more, got 0"),
        (["--days", "3", "--expires", "2099-01-01"], "not allowed with argument"),
    ],
)
def test_the_command_refuses_bad_options_by_name(engineer, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("issue_token", "erin", *args)
    assert not ApiToken.objects.exists()


def test_parse_scope_orders_and_dedupes() -> None:
    assert parse_scope("TRIGGER,read,read") == ["read", "trigger"]


# -- the API enforces expiry and scope ----------------------------------------------------------


def test_an_expired_token_gets_401_saying_when_it_expired(client, engineer, run_id) -> None:
    token = issue_token(engineer, expires_at=timezone.make_aware(datetime(2020, 3, 1)))
    response = read_run(client, token, run_id)
    assert response.status_code == 401
    assert response.json()["error"].startswith("token expired on 2020-03-01 00:00 UTC")
    assert upload(client, token).status_code == 401
    assert ApiToken.objects.get(prefix=token[:10]).last_used_at is None


def test_a_token_works_until_its_expiry(client, engineer, run_id) -> None:
    token = issue_token(engineer, expires_at=timezone.now() + timedelta(minutes=5))
    assert read_run(client, token, run_id).status_code == 200
    assert ApiToken.objects.get(prefix=token[:10]).last_used_at is not None
    ApiToken.objects.filter(prefix=token[:10]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert read_run(client, token, run_id).status_code == 401


def test_a_read_only_token_cannot_upload_or_trigger(client, admin_user, run_id) -> None:
    token = issue_token(admin_user, scopes=["read"])
    assert read_run(client, token, run_id).status_code == 200
    refused = upload(client, token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "this token's scope does not include upload (it allows: read)"
    refused = trigger(client, token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "this token's scope does not include trigger (it allows: read)"


def test_an_upload_only_token_uploads_but_cannot_read(client, engineer, run_id) -> None:
    token = issue_token(engineer, scopes=["upload"])
    assert upload(client, token, suite="ci-upload").status_code == 201
    refused = read_run(client, token, run_id)
    assert refused.status_code == 403
    assert refused.json()["error"] == "this token's scope does not include read (it allows: upload)"


def test_a_trigger_token_passes_the_scope_check(client, operator) -> None:
    response = trigger(client, issue_token(operator, scopes=["trigger"]))
    assert response.status_code == 404, response.content  # past the token: the session does not exist


def test_the_users_role_still_applies_on_top_of_the_scope(client, viewer, engineer) -> None:
    # A viewer's token with every scope still may not upload; an engineer's may not trigger.
    refused = upload(client, issue_token(viewer))
    assert refused.status_code == 403 and "viewer" in refused.json()["error"]
    refused = trigger(client, issue_token(engineer))
    assert refused.status_code == 403 and "operators" in refused.json()["error"]


def test_an_inactive_users_token_and_an_unknown_token_are_refused(client, engineer, run_id) -> None:
    token = issue_token(engineer)
    engineer.is_active = False
    engineer.save()
    assert read_run(client, token, run_id).json() == {"error": "invalid or revoked token"}
    assert read_run(client, "ld_nothing", run_id).status_code == 401


def test_issue_token_refuses_an_empty_or_unknown_scope(engineer) -> None:
    with pytest.raises(ValueError, match="scopes must be one or more of read, upload, trigger"):
        issue_token(engineer, scopes=[])
    with pytest.raises(ValueError, match="unknown scope 'admin'"):
        authenticate_token("ld_x", "admin")


# -- tokens made before scopes existed ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_tokens_from_before_the_migration_get_every_scope_and_no_expiry(django_user_model) -> None:
    executor = MigrationExecutor(connection)
    before = [("loop_sessions", "0004_case_fks_unchecked")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    OldUser = old_apps.get_model("auth", "User")
    OldToken = old_apps.get_model("loop_sessions", "ApiToken")
    user = OldUser.objects.create(username="legacy", is_active=True)
    token, prefix = "ld_legacy-token-made-before-scopes", "ld_legacy-"
    OldToken.objects.create(user=user, name="old", prefix=prefix, token_hash=hashlib.sha256(token.encode()).hexdigest())

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    stored = ApiToken.objects.get(prefix=prefix)
    assert stored.scopes == ["read", "upload", "trigger"] and stored.expires_at is None
    for scope in ("read", "upload", "trigger"):
        assert authenticate_token(token, scope).username == "legacy"


# -- the admin ----------------------------------------------------------------------------------


def test_the_admin_lists_tokens_with_prefix_user_scope_expiry_and_last_use(client, admin_user, engineer) -> None:
    issue_token(engineer, "ci-upload", scopes=["upload"], expires_at=timezone.make_aware(datetime(2031, 1, 2)))
    issue_token(engineer, "old", expires_at=timezone.make_aware(datetime(2020, 1, 2)))
    client.force_login(admin_user)
    page = client.get("/admin/loop_sessions/apitoken/").content.decode()
    for column in ("Prefix", "User", "Scope", "Expires at", "State", "Last used at"):
        assert column.lower() in page.lower()
    assert "ci-upload" in page and ">upload<" in page and "Jan. 2, 2031" in page
    assert ">read, upload, trigger<" in page and ">expired<" in page and ">active<" in page
    assert "token_hash" not in page


def test_an_admin_issues_a_token_and_sees_it_once(client, admin_user, engineer) -> None:
    client.force_login(admin_user)
    expires = (timezone.localdate() + timedelta(days=10)).isoformat()
    response = client.post(
        "/admin/loop_sessions/apitoken/add/",
        {
            "user": engineer.pk,
            "name": "from-admin",
            "scope_read": "on",
            "expires_at_0": expires,
            "expires_at_1": "12:00:00",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    token = re.search(r'<code id="issued-token">(ld_[\w-]+)</code>', page).group(1)
    assert "shown only this once" in page and "read" in page
    stored = ApiToken.objects.get(name="from-admin")
    assert stored.prefix == token[:10] and token not in stored.token_hash
    assert stored.scopes == ["read"] and stored.expires_at.date() == date.fromisoformat(expires)
    # The token works for its scope, and is never shown again.
    assert client.get("/api/v1/runs/999999", headers=bearer(token)).status_code == 404
    assert token not in client.get(f"/admin/loop_sessions/apitoken/{stored.pk}/change/").content.decode()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "x"}, "Scope: tick at least one of read, upload and trigger."),
        (
            {"name": "x", "scope_read": "on", "expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"},
            "Expires at: a new token must expire in the future",
        ),
    ],
)
def test_the_admin_refuses_a_token_without_scope_or_already_expired(
    client, admin_user, engineer, form, message
) -> None:
    client.force_login(admin_user)
    response = client.post("/admin/loop_sessions/apitoken/add/", {"user": engineer.pk, **form})
    assert response.status_code == 200 and message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_an_admin_revokes_tokens_and_they_stop_working_at_once(client, admin_user, engineer, run_id) -> None:
    token = issue_token(engineer, "to-revoke")
    assert read_run(client, token, run_id).status_code == 200
    client.force_login(admin_user)
    pk = ApiToken.objects.get(name="to-revoke").pk
    response = client.post(
        "/admin/loop_sessions/apitoken/", {"action": "revoke", "_selected_action": [pk]}, follow=True
    )
    assert f"Revoked 1 token(s): {token[:10]}" in response.content.decode()
    client.logout()
    refused = read_run(client, token, run_id)
    assert refused.status_code == 401 and refused.json() == {"error": "invalid or revoked token"}
