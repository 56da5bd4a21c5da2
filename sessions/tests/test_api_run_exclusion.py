"""``POST /api/v1/runs/<id>/exclude`` and ``/include``: who may (role and token scope), what is refused and
how (400 naming ``reason``, 404, 409), and that every figure follows at once.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sessions.models import LoopSession, SessionEvent, TestRun, WorkStatus
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.tokens import issue_token
from sessions.tests.test_run_exclusion_views import good_run, staging_session, unreachable_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(db) -> LoopSession:
    return staging_session()


def post(url: str, token: str | None, body: object = None, *, raw: bytes | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    response = Client().post(url, data, content_type="application/json", headers=headers)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def exclude_url(run: TestRun) -> str:
    return reverse("api_run_exclude", args=[run.pk])


def include_url(run: TestRun) -> str:
    return reverse("api_run_include", args=[run.pk])


def test_an_operator_excludes_and_includes_a_run_and_the_headline_follows(session, operator) -> None:
    first = good_run(session)
    second = good_run(session)
    session.refresh_from_db()
    assert session.latest_run_id == second.pk
    token = issue_token(operator, scopes=["trigger"])

    status, body = post(exclude_url(second), token, {"reason": "deployed the wrong branch"})
    assert status == 200, body
    assert body["id"] == second.pk and body["counted"] is False
    assert body["excluded_reason"] == "deployed the wrong branch"
    session.refresh_from_db()
    assert session.latest_run_id == first.pk
    event = SessionEvent.objects.get(session=session)
    assert (event.action, event.user, event.run_id) == ("excluded", operator, second.pk)

    status, body = post(include_url(second), token, {"reason": "it was the right one"})
    assert status == 200 and body["counted"] is True and body["excluded_reason"] is None
    session.refresh_from_db()
    assert session.latest_run_id == second.pk
    assert "it was the right one" in SessionEvent.objects.filter(action="included").get().detail


def test_include_takes_no_body_at_all(session, admin_user) -> None:
    bad = unreachable_run(session)
    status, body = post(include_url(bad), issue_token(admin_user, scopes=["trigger"]))
    assert status == 200 and body["counted"] is True


@pytest.mark.parametrize("role", ["viewer", "engineer"])
def test_viewers_and_engineers_get_403(session, request, role) -> None:
    run = good_run(session)
    token = issue_token(request.getfixturevalue(role))  # every scope: the role still refuses
    for url in (exclude_url(run), include_url(run)):
        status, body = post(url, token, {"reason": "x"})
        assert status == 403 and "operators and admins" in body["error"]
    assert not TestRun.objects.get(pk=run.pk).excluded


def test_the_token_needs_the_trigger_scope(session, operator) -> None:
    run = good_run(session)
    status, _body = post(exclude_url(run), issue_token(operator, scopes=["read", "upload"]), {"reason": "x"})
    assert status == 403
    status, _body = post(exclude_url(run), None, {"reason": "x"})
    assert status == 401
    assert not TestRun.objects.get(pk=run.pk).excluded


@pytest.mark.parametrize(
    ("body", "raw", "message"),
    [
        ({}, None, "reason: say why the run is excluded"),
        (None, None, "reason: say why the run is excluded"),
        ({"reason": "   "}, None, "reason: say why the run is excluded"),
        ({"reason": 42}, None, "reason must be a string, got int"),
        ({"reason": "x" * 501}, None, "reason: at most 500 characters"),
        (["reason"], None, "request body must be a JSON object, got list"),
        (None, b"{not json", "request body is not JSON"),
        (None, b'{"reason": "a\\u0000b"}', "NUL"),
    ],
)
def test_a_bad_reason_is_a_400_naming_it(session, operator, body, raw, message) -> None:
    run = good_run(session)
    status, answer = post(exclude_url(run), issue_token(operator), body, raw=raw)
    assert status == 400 and message in answer["error"], answer
    assert not TestRun.objects.get(pk=run.pk).excluded and not SessionEvent.objects.exists()


def test_an_unknown_run_is_a_404(db, operator) -> None:
    token = issue_token(operator)
    assert post(reverse("api_run_exclude", args=[987654]), token, {"reason": "x"}) == (
        404,
        {"error": "no run 987654"},
    )
    assert post(reverse("api_run_include", args=[987654]), token)[0] == 404


def test_a_run_that_has_not_ended_is_a_409(session, operator) -> None:
    live = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
    )  # fmt: skip
    token = issue_token(operator)
    status, body = post(exclude_url(live), token, {"reason": "x"})
    assert (
        status == 409
        and body["error"] == f"run {live.pk} has not ended yet (running): exclude or include it once it has"
    )
    assert post(include_url(live), token)[0] == 409
    assert not TestRun.objects.get(pk=live.pk).excluded


def test_including_a_run_that_is_not_excluded_is_a_409(session, operator) -> None:
    run = good_run(session)
    status, body = post(include_url(run), issue_token(operator))
    assert status == 409 and body["error"] == f"run {run.pk} is not excluded: nothing to include"


def test_get_is_a_405(session, operator) -> None:
    run = good_run(session)
    response = Client().get(exclude_url(run), headers={"Authorization": f"Bearer {issue_token(operator)}"})
    assert response.status_code == 405
