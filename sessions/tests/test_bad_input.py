"""Bad input gets a clear 4xx naming the field, never a server error (issue 8, item 4).

Every case here answered 500 before: a number past PostgreSQL's integer range, text longer than its
column, a body that is not UTF-8, a digit that ``str.isdigit`` accepts and ``int`` refuses (``²``), and
NUL characters, which PostgreSQL refuses in text and JSON.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from sessions.models import (
    Analysis,
    Cycle,
    Environment,
    FailureSignature,
    Fix,
    LoopSession,
    SuccessCriterion,
    TestResult,
    TestRun,
    WhyStep,
)
from sessions.services.tokens import issue_token
from sessions.validation import INT_MAX

from . import samples
from .test_ingest_storage import row_counts
from .test_operate_views import finished_run

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def session(db) -> LoopSession:
    env = Environment.objects.create(
        name="staging",
        deploy_command=["{python}", "deploy.py", "--revision", "{revision}"],
        test_command=["{python}", "-m", "pytest", "tests"],
        revisions=[{"revision": "r1", "commit": "abc1234"}],
    )
    return LoopSession.objects.create(environment=env, title="Golden path", slug="golden")


@pytest.fixture
def run(session: LoopSession) -> TestRun:
    return finished_run(session, {"test_login": "passed", "test_chat": "failed"})


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {issue_token(user)}"}


# -- API upload --------------------------------------------------------------------------------------------------


@pytest.fixture
def ci(engineer) -> dict:
    """The headers of a CI job uploading as an engineer."""
    return bearer(engineer)


def upload(client, headers: dict, slug: str = "golden", name: str = "results.xml", **fields: str):
    data = samples.junit([("a", "ok", "passed")])
    return client.post(
        f"/api/v1/sessions/{slug}/runs", {"file": SimpleUploadedFile(name, data), **fields}, headers=headers
    )


@pytest.mark.parametrize("cycle", [str(INT_MAX + 1), "99999999999999999999999", "-1", "0", "abc", "²", "1.5", "1e3"])
def test_an_upload_with_a_cycle_out_of_range_or_not_a_number_is_a_400_naming_cycle(client, ci, session, cycle) -> None:
    before = row_counts()
    response = upload(client, ci, cycle=cycle)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error.startswith("cycle ") and repr(cycle) in error and str(INT_MAX) in error
    assert row_counts() == before


def test_the_largest_cycle_postgresql_holds_is_accepted(client, ci, session) -> None:
    response = upload(client, ci, cycle=str(INT_MAX))
    assert response.status_code == 201, response.content
    assert Cycle.objects.get(session=session, number=INT_MAX)


def test_an_upload_naming_an_environment_longer_than_its_column_is_a_400(client, ci) -> None:
    response = upload(client, ci, slug="new-session", environment="e" * 65)
    assert response.status_code == 400
    assert response.json()["error"].startswith("environment ") and "64" in response.json()["error"]
    assert not LoopSession.objects.filter(slug="new-session").exists()


def test_an_upload_to_a_session_slug_longer_than_its_column_is_a_400(client, ci) -> None:
    response = upload(client, ci, slug="s" * 101)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("session ") and "100" in error
    assert not LoopSession.objects.exists()


@pytest.mark.parametrize("field", ["environment", "cycle"])
def test_a_nul_in_an_upload_field_is_a_400_naming_it(client, ci, session, field) -> None:
    response = upload(client, ci, **{field: "st\x00aging"})
    assert response.status_code == 400
    assert f"'{field}'" in response.json()["error"] and "NUL" in response.json()["error"]


# -- API trigger -------------------------------------------------------------------------------------------------


def trigger(client, user, body: bytes | str, slug: str = "golden", content_type: str = "application/json"):
    return client.post(f"/api/v1/sessions/{slug}/trigger", data=body, content_type=content_type, headers=bearer(user))


@pytest.mark.parametrize("body", [b"\xff\xfe{", b"\xfe\xff\x00{", b'{"action": "tests\xff"}'])
def test_a_trigger_body_that_is_not_utf8_is_a_400(client, operator, session, body) -> None:
    response = trigger(client, operator, body)
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]
    assert not TestRun.objects.exists()


@pytest.mark.parametrize("body", [b"\x00\x00\x00{", b"[" * 100_000, b"1" * 5000, b'{"action": "deploy",}'])
def test_a_trigger_body_that_is_not_json_we_can_read_is_a_400(client, operator, session, body) -> None:
    response = trigger(client, operator, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body is not JSON")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([1, 2], "request body"),
        ("deploy", "request body"),
        (None, "request body"),
        ({"action": ["deploy"]}, "action"),
        ({"action": {"x": 1}}, "action"),
        ({"action": "deploy", "revision": ["r1"]}, "revision"),
        ({"action": "deploy", "revision": "r\u0000"}, "revision"),
        ({"action": "tests", "rerun": "RUN", "scope": "selected", "tests": ["²"]}, "tests"),
        ({"action": "tests", "rerun": "RUN", "scope": "selected", "tests": ["１"]}, "tests"),
        ({"action": "tests", "rerun": "RUN", "scope": "selected", "tests": [2**70]}, "tests"),
        ({"action": "tests", "rerun": "RUN", "scope": "selected", "tests": [{"id": 1}]}, "tests"),
        ({"action": "tests", "rerun": "²"}, "rerun"),
        ({"action": "tests", "rerun": 2**70}, "rerun"),
        ({"action": "tests", "rerun": [1]}, "rerun"),
        ({"action": "tests", "rerun": "RUN", "scope": "x" * 30}, "scope"),
        ({"action": "tests", "rerun": "RUN", "scope": "selected\u0000"}, "scope"),
        ({"action": "tests", "rerun": "RUN", "scope": ["failed"]}, "scope"),
    ],
)
def test_a_trigger_with_a_wrong_type_or_value_is_a_400_naming_the_field(
    client, operator, session, run, payload, field
) -> None:
    if isinstance(payload, dict):
        payload = {k: (run.pk if v == "RUN" else v) for k, v in payload.items()}
    response = trigger(client, operator, json.dumps(payload))
    assert response.status_code in (400, 404), response.content
    assert field in response.json()["error"], response.json()
    assert TestRun.objects.count() == 1  # only the fixture's run


def test_a_nul_in_any_string_of_a_trigger_body_is_a_400_naming_it(client, operator, session) -> None:
    response = trigger(client, operator, json.dumps({"action": "deploy", "revis\u0000ion": "r1"}))
    assert response.status_code == 400 and "NUL" in response.json()["error"] and "revis" in response.json()["error"]


def test_a_form_encoded_trigger_with_a_nul_is_a_400(client, operator, session) -> None:
    response = trigger(
        client, operator, "action=deploy&revision=r%00", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and "'revision'" in response.json()["error"]


# -- the rerun form ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"scope": "selected", "tests": ["²"]}, "test ids must be whole numbers"),
        ({"scope": "selected", "tests": ["٣"]}, "test ids must be whole numbers"),
        ({"scope": "selected", "tests": [str(2**70)]}, "test ids"),
        ({"scope": "x" * 30}, "scope must be one of"),
        ({"scope": "bogus"}, "scope must be one of"),
    ],
)
def test_the_rerun_form_refuses_bad_test_ids_and_scopes_with_a_400(client, operator, run, data, words) -> None:
    client.force_login(operator)
    response = client.post(f"/runs/{run.pk}/rerun/", data)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert TestRun.objects.count() == 1


def test_the_rerun_form_still_takes_a_stored_case_id(client, operator, run) -> None:
    client.force_login(operator)
    case_id = TestResult.objects.filter(run=run, outcome="failed").values_list("case_id", flat=True).get()
    response = client.post(f"/runs/{run.pk}/rerun/", {"scope": "selected", "tests": [str(case_id)]})
    assert response.status_code == 302
    assert TestRun.objects.get(rerun_of=run).selection == [case_id]


# -- NUL characters in pages and forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["q", "priority", "outcome", "after", "before"])
def test_a_nul_in_a_run_page_filter_is_a_400_naming_it(client, viewer, run, param) -> None:
    client.force_login(viewer)
    for headers in ({}, HX):
        response = client.get(f"/runs/{run.pk}/", {param: "chat\x00"}, headers=headers)
        assert response.status_code == 400
        assert f"'{param}'" in response.content.decode() and "NUL" in response.content.decode()


@pytest.mark.parametrize("value", ["99999999999999999999", "-5", str(INT_MAX + 1), "²"])
def test_page_cursors_out_of_range_are_harmless(client, viewer, run, value) -> None:
    client.force_login(viewer)
    for param in ("after", "before"):
        assert client.get(f"/runs/{run.pk}/", {param: value}).status_code == 200
    assert client.get(f"/runs/{run.pk}/compare/", {"with": value, "after": value}).status_code in (200, 404)
    assert client.get(f"/sessions/{run.session.slug}/", {"cycles_before": value, "edit": value}).status_code == 200


def test_ids_out_of_range_in_urls_are_404(client, viewer, run) -> None:
    client.force_login(viewer)
    huge = 2**70
    for url in (
        f"/runs/{huge}/",
        f"/signatures/{huge}/",
        f"/tests/{huge}/",
        f"/deployments/{huge}/",
        f"/runs/{run.pk}/compare/{huge}/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get(f"/api/v1/runs/{huge}", headers=bearer(viewer)).status_code == 404


@pytest.fixture
def signature(session: LoopSession, run: TestRun) -> FailureSignature:
    return FailureSignature.objects.get()


@pytest.fixture
def analysis(signature: FailureSignature, engineer) -> Analysis:
    return Analysis.objects.create(signature=signature, problem="1011 on connect", author=engineer)


def test_a_nul_in_a_signature_title_is_a_400_naming_the_field(client, engineer, signature) -> None:
    client.force_login(engineer)
    response = client.post(
        f"/signatures/{signature.pk}/title/", {"title": "Web\x00Socket", "version": signature.version}
    )
    assert response.status_code == 400
    assert "'title'" in response.content.decode()
    signature.refresh_from_db()
    assert "\x00" not in signature.title


def test_a_nul_in_a_criterion_is_a_400_naming_the_field(client, engineer, session) -> None:
    client.force_login(engineer)
    for data in ({"text": "all\x00green"}, {"text": "named", "kind": "tests_pass", "tests": "tests/a.py::t\x00"}):
        response = client.post(f"/sessions/{session.slug}/criteria/", data, headers=HX)
        assert response.status_code == 400
        assert f"'{next(k for k, v in data.items() if chr(0) in v)}'" in response.content.decode()
    assert not SuccessCriterion.objects.exists()


def test_a_nul_in_an_analysis_a_why_step_or_a_fix_is_a_400_naming_the_field(
    client, engineer, signature, analysis
) -> None:
    client.force_login(engineer)
    posts = [
        (f"/signatures/{signature.pk}/analyses/", {"problem": "why\x00"}, "problem"),
        (f"/analyses/{analysis.pk}/", {"version": analysis.version, "root_cause": "enum\x00"}, "root_cause"),
        (
            f"/analyses/{analysis.pk}/steps/",
            {"version": analysis.version, "question": "Why?", "answer": "a\x00"},
            "answer",
        ),
        (
            f"/analyses/{analysis.pk}/fixes/",
            {"version": analysis.version, "sha": "abc1234", "message": "m\x00"},
            "message",
        ),
    ]
    for url, data, field in posts:
        response = client.post(url, data, headers=HX)
        assert response.status_code == 400, url
        assert f"'{field}'" in response.content.decode(), url
    assert Analysis.objects.count() == 1 and not WhyStep.objects.exists() and not Fix.objects.exists()
    analysis.refresh_from_db()
    assert analysis.root_cause == ""


def test_a_nul_in_a_field_name_is_refused_too(client, engineer, signature) -> None:
    client.force_login(engineer)
    response = client.post(f"/signatures/{signature.pk}/title/", {"ti\x00tle": "x", "version": signature.version})
    assert response.status_code == 400 and "NUL" in response.content.decode()


def test_a_plain_edit_still_works(client, engineer, signature) -> None:
    client.force_login(engineer)
    response = client.post(
        f"/signatures/{signature.pk}/title/", {"title": "WebSocket 1011", "version": signature.version}
    )
    assert response.status_code == 302
    signature.refresh_from_db()
    assert signature.title == "WebSocket 1011"


def test_a_session_cookie_with_a_nul_logs_out_instead_of_failing(client, viewer) -> None:
    client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    # Logging in again (the bad cookie still sent) works and replaces it.
    login = client.post("/accounts/login/", {"username": viewer.username, "password": f"pw-{viewer.username}"})
    assert login.status_code == 302
    assert client.get("/").status_code == 200
