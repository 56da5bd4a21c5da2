"""The read side of the API for runs that count: the session JSON, the run JSON's new fields, the results JSON.

Runs are stored the way workers store them and ended through ``complete_run`` (counting included); the
session JSON is checked against what the session page shows (the same selectors).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sessions.models import Deployment, LoopSession, TestResult, TestRun, WorkStatus
from sessions.selectors.sessions import flaky_tests
from sessions.services import counting
from sessions.services.ingestion.cycles import next_cycle
from sessions.services.tokens import issue_token
from sessions.tests.test_run_exclusion_views import REFUSED, good_run, staging_session, stored_run, unreachable_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(db) -> LoopSession:
    return staging_session()


@pytest.fixture
def token(viewer) -> str:
    return issue_token(viewer, scopes=["read"])


def get(url: str, token: str, query: dict | None = None) -> tuple[int, dict]:
    response = Client().get(url, query or {}, headers={"Authorization": f"Bearer {token}"})
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def deployed(session: LoopSession, revision: str) -> Deployment:
    """A succeeded deploy opening a new cycle, as a cycle's deploy does."""
    deployment = Deployment.objects.create(
        environment=session.environment, cycle=next_cycle(session), revision=revision,
        status=WorkStatus.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip
    return deployment


def in_cycle_of(run: TestRun, deployment: Deployment) -> TestRun:
    TestRun.objects.filter(pk=run.pk).update(cycle=deployment.cycle, deployment=deployment)
    run.refresh_from_db()
    return run


# -- the run JSON ------------------------------------------------------------------------------------------------


def test_the_run_json_says_whether_it_counts_its_revision_and_flaky_tests(session, token) -> None:
    deployment = deployed(session, "r2")
    run = stored_run(session, {"test_a": "passed", "test_b": "failed", "test_c": "passed", "test_d": "error"})
    in_cycle_of(run, deployment)
    # test_b failed then passed on a retry within the run; test_d errored then passed: 2 flaky in this run.
    retry = TestResult.objects.filter(run=run, case__nodeid__endswith="test_b").get()
    again = TestResult.objects.filter(run=run, case__nodeid__endswith="test_d").get()
    TestResult.objects.bulk_create(
        [
            TestResult(run=run, case_id=retry.case_id, outcome="passed", duration=1.0),
            TestResult(run=run, case_id=again.case_id, outcome="passed", duration=1.0),
            TestResult(run=run, case_id=again.case_id, outcome="error", duration=1.0),
        ]
    )
    status, body = get(reverse("api_run_detail", args=[run.pk]), token)
    assert status == 200
    assert body["counted"] is True and body["excluded_reason"] is None
    assert body["revision"] == "r2"
    assert body["flaky"] == 2
    assert body["quarantined"] == 0 and body["shards"] == []


def test_an_excluded_run_says_why(session, token) -> None:
    bad = unreachable_run(session)
    status, body = get(reverse("api_run_detail", args=[bad.pk]), token)
    assert status == 200
    assert body["counted"] is False and body["excluded_reason"].startswith("target unreachable")
    assert body["revision"] is None and body["flaky"] == 0


# -- the session JSON ----------------------------------------------------------------------------------------------


def test_the_session_json_reads_counted_runs_only(client, viewer, operator, session, token) -> None:
    first_deploy = deployed(session, "r1")
    first = in_cycle_of(good_run(session), first_deploy)
    second_deploy = deployed(session, "r2")
    second = in_cycle_of(
        stored_run(session, {"test_login": "passed", "test_chat": "passed", "test_stream": "passed"}), second_deploy
    )
    bad = in_cycle_of(unreachable_run(session), second_deploy)  # later, in the same cycle: excluded by itself
    third_deploy = deployed(session, "r3")
    cancelled = in_cycle_of(stored_run(session, {"test_login": "passed"}, status=WorkStatus.CANCELLED), third_deploy)
    assert bad.excluded and cancelled.incomplete

    status, body = get(reverse("api_session_detail", args=[session.slug]), token)
    assert status == 200
    assert body["slug"] == "golden" and body["title"] == "Golden path"
    assert body["latest_counted_run"] == second.pk
    first.refresh_from_db()
    assert body["cycles"] == [
        {
            "number": 1,
            "revision": "r1",
            "run": first.pk,
            "counted": True,
            "pass_rate": first.pass_rate,
            "mrr_at_risk": 0.0,
        },
        {"number": 2, "revision": "r2", "run": second.pk, "counted": True, "pass_rate": 100.0, "mrr_at_risk": 0.0},
        {"number": 3, "revision": "r3", "run": None, "counted": False, "pass_rate": None, "mrr_at_risk": None},
    ]
    # the same number the session page's flaky list shows
    client.force_login(viewer)
    page = client.get(session.get_absolute_url())
    assert body["flaky_tests"] == page.context["flaky_count"]

    counting.exclude_run(second, "wrong build", operator)
    _status, body = get(reverse("api_session_detail", args=[session.slug]), token)
    assert body["latest_counted_run"] == first.pk
    assert body["cycles"][1] | {"revision": None} == {
        "number": 2,
        "revision": None,
        "run": None,
        "counted": False,
        "pass_rate": None,
        "mrr_at_risk": None,
    }
    assert body["cycles"][1]["revision"] == "r2"  # the cycle's deploy, even without a counted run


def test_the_session_json_counts_the_flaky_list(session, token) -> None:
    """A test that failed then passed on the same revision is flaky: the JSON says how many the page lists."""
    deployment = deployed(session, "r1")
    in_cycle_of(stored_run(session, {"test_login": "passed", "test_chat": "failed"}), deployment)
    in_cycle_of(stored_run(session, {"test_login": "passed", "test_chat": "passed"}), deployment)
    _status, body = get(reverse("api_session_detail", args=[session.slug]), token)
    assert body["flaky_tests"] == flaky_tests(session)[1] == 1


def test_an_unknown_session_is_a_json_404(db, token) -> None:
    status, body = get(reverse("api_session_detail", args=["nope"]), token)
    assert status == 404 and body == {"error": "no session 'nope'"}


def test_the_read_endpoints_need_a_token(session) -> None:
    run = good_run(session)
    for url in (reverse("api_session_detail", args=[session.slug]), reverse("api_run_results", args=[run.pk])):
        assert Client().get(url).status_code == 401


# -- the results JSON ----------------------------------------------------------------------------------------------


def test_results_are_paged_by_keyset_and_filtered_by_outcome(session, token) -> None:
    outcomes = {f"test_{i:03d}": ("failed" if i % 3 == 0 else "passed") for i in range(25)}
    run = stored_run(session, outcomes)
    url = reverse("api_run_results", args=[run.pk])
    status, body = get(url, token)
    assert status == 200 and len(body["results"]) == 25 and body["next"] is None  # the default limit is 100
    first = body["results"][0]
    assert set(first) == {"test", "outcome", "duration_s", "signature", "message"}
    assert first == {
        "test": "tests/test_e2e.py::test_000",
        "outcome": "failed",
        "duration_s": 1.5,
        "signature": TestResult.objects.get(run=run, case__nodeid__endswith="test_000").signature_id,
        "message": "boom",
    }
    assert isinstance(first["signature"], int)

    seen, after = [], None
    while True:
        query = {"outcome": "failed", "limit": 4} | ({"after": after} if after else {})
        status, body = get(url, token, query)
        assert status == 200 and len(body["results"]) <= 4
        seen += [r["test"] for r in body["results"]]
        assert all(r["outcome"] == "failed" for r in body["results"])
        after = body["next"]
        if after is None:
            break
        assert isinstance(after, str)
    assert seen == [f"tests/test_e2e.py::test_{i:03d}" for i in range(0, 25, 3)]  # 9 results, in id order

    _status, body = get(url, token, {"outcome": "passed", "limit": 1})
    assert body["results"][0]["signature"] is None and body["results"][0]["message"] == ""


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"outcome": "broken"}, "outcome"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "abc"}, "after"),
        ({"after": "-1"}, "after"),
        ({"after": "99999999999999999999"}, "after"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(session, token, query, named) -> None:
    run = good_run(session)
    status, body = get(reverse("api_run_results", args=[run.pk]), token, query)
    assert status == 400 and body["error"].startswith(named), body


def test_results_of_an_unknown_run_are_a_404(db, token) -> None:
    status, body = get(reverse("api_run_results", args=[999999]), token)
    assert status == 404 and body == {"error": "no run 999999"}


def test_the_limit_goes_up_to_1000(session, token) -> None:
    run = stored_run(session, {f"test_{i:04d}": "passed" for i in range(1001)})
    status, body = get(reverse("api_run_results", args=[run.pk]), token, {"limit": 1000})
    assert status == 200 and len(body["results"]) == 1000 and body["next"] is not None
    _status, rest = get(reverse("api_run_results", args=[run.pk]), token, {"after": body["next"]})
    assert [r["test"] for r in rest["results"]] == ["tests/test_e2e.py::test_1000"] and rest["next"] is None


def test_an_excluded_runs_results_stay_browsable(session, token) -> None:
    bad = unreachable_run(session)
    _status, body = get(reverse("api_run_results", args=[bad.pk]), token, {"outcome": "failed"})
    assert len(body["results"]) == 8 and {r["message"] for r in body["results"]} == {REFUSED}
