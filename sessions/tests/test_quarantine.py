"""Quarantine: a test set aside still runs and shows, but leaves the figures of the runs that complete
while it is active; it ends by itself on its date; the API lists it for CI; engineers and up change it.

Runs go in the way users put them in (JUnit bytes through ``ingest_file``); time passing is the clock
moved forward (``timezone.localdate``), nothing else touched.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sessions.models import BusinessArea, ImpactRule, LoopSession, Quarantine, SuccessCriterion, TestCase, TestResult
from sessions.selectors.api_json import run_as_json
from sessions.services import quarantine
from sessions.services.tokens import issue_token
from sessions.services.triage import Invalid
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db

SESSION = "quarantine-loop"


def suite(flaky_outcome: str = "failed") -> list[Case]:
    """Nine tests that pass and one flaky P1 chat test (in a business area worth money)."""
    cases = [Case(f"test_ok_{i}") for i in range(9)]
    cases.append(Case("test_p1_flaky_chat", flaky_outcome, 1.0, "AssertionError: timing"))
    return cases


def run_suite(cycle: int, flaky_outcome: str = "failed"):
    return ingest(suite(flaky_outcome), session=SESSION, cycle=cycle, label=f"q{cycle}")


@pytest.fixture
def chat_area(db) -> BusinessArea:
    area = BusinessArea.objects.create(name="chat-q", mrr=Decimal("50000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=area)
    return area


def flaky_case() -> TestCase:
    return TestCase.objects.get(nodeid__endswith="test_p1_flaky_chat")


def tomorrow() -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=1)


def move_clock_to(monkeypatch, day: datetime.date) -> None:
    """The calendar reaches ``day``: every reader of today's date sees it."""
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: day)


def test_quarantine_changes_the_next_runs_pass_rate_and_ends_at_its_date(chat_area, engineer, monkeypatch) -> None:
    before = run_suite(1)
    assert before.pass_rate == 90.0 and before.mrr_at_risk == Decimal("50000") and before.quarantined == 0

    case = flaky_case()
    until = tomorrow() + datetime.timedelta(days=1)
    quarantine.quarantine_test(before.environment, case.nodeid, "flaky on the chat socket", until.isoformat(), engineer)

    during = run_suite(2)
    # still run, stored and shown; left out of the pass rate, MRR at risk and P1's figures
    assert during.total == 10 and during.failed == 1
    assert during.quarantined == 1 and during.pass_rate == 100.0
    assert during.mrr_at_risk == Decimal("0")
    assert during.by_priority.get("P1") is None  # the only P1 test was quarantined
    assert TestResult.objects.get(run=during, case=case).quarantined
    body = run_as_json(during)
    assert body["quarantined"] == 1 and body["pass_rate"] == 100.0 and body["totals"]["failed"] == 1

    before.refresh_from_db()
    assert before.pass_rate == 90.0 and before.quarantined == 0  # decided when it completed: unchanged

    move_clock_to(monkeypatch, until)  # the quarantine ends on its date, by itself
    assert not Quarantine.objects.active().filter(case=case).exists()
    after = run_suite(3)
    assert after.quarantined == 0 and after.pass_rate == 90.0 and after.mrr_at_risk == Decimal("50000")
    during.refresh_from_db()
    assert during.pass_rate == 100.0  # the run made while it was active keeps its figures


def test_quarantined_tests_do_not_count_in_criteria_or_cycles_to_green(engineer) -> None:
    from sessions.selectors.cycles import cycles_to_green, session_cycles

    first = run_suite(1)
    session = LoopSession.objects.get(slug=SESSION)
    LoopSession.objects.filter(pk=session.pk).update(goal_pass_rate=100)
    session.refresh_from_db()
    rate = SuccessCriterion.objects.create(
        session=session, text="all pass", kind=SuccessCriterion.Kind.PASS_RATE, params={"threshold": 100}
    )
    named = SuccessCriterion.objects.create(
        session=session,
        text="these pass",
        kind=SuccessCriterion.Kind.TESTS_PASS,
        params={"tests": [flaky_case().nodeid, TestCase.objects.get(nodeid__endswith="test_ok_1").nodeid]},
    )
    assert cycles_to_green(session, session_cycles(session)).reached_at is None
    quarantine.quarantine_test(first.environment, flaky_case().nodeid, "known flaky", tomorrow(), engineer)
    run_suite(2)
    rate.refresh_from_db()
    named.refresh_from_db()
    assert rate.done and named.done, (rate.detail, named.detail)
    assert cycles_to_green(session, session_cycles(session)).reached_at == 2


def test_bad_input_is_refused_naming_the_field(engineer) -> None:
    run = run_suite(1)
    env, nodeid = run.environment, flaky_case().nodeid
    cases = [
        ({"test": "tests/nowhere.py::test_missing", "reason": "x", "until": tomorrow()}, "test:"),
        ({"test": nodeid, "reason": "  ", "until": tomorrow()}, "reason:"),
        ({"test": nodeid, "reason": "x", "until": timezone.localdate().isoformat()}, "until:"),
        ({"test": nodeid, "reason": "x", "until": "2020-01-01"}, "until:"),
        ({"test": nodeid, "reason": "x", "until": "next week"}, "until:"),
        ({"test": nodeid, "reason": "x", "until": None}, "until:"),
    ]
    for body, field in cases:
        with pytest.raises(Invalid) as caught:
            quarantine.quarantine_test(env, body["test"], body["reason"], body["until"], engineer)
        assert str(caught.value).startswith(field), (body, str(caught.value))
    assert not Quarantine.objects.exists()


def test_a_signature_quarantines_every_test_it_hit(engineer) -> None:
    run = ingest(
        [Case("test_a", "failed", 1.0, "KeyError: 'session'"), Case("test_b", "failed", 1.0, "KeyError: 'session'")]
        + [Case("test_c")],
        session=SESSION,
        cycle=1,
    )
    signature = TestResult.objects.filter(run=run, outcome="failed").first().signature
    assert quarantine.quarantine_signature(signature, "one cause, fix under way", tomorrow(), engineer) == 2
    quarantined = set(Quarantine.objects.active().values_list("case__name", flat=True))
    assert quarantined == {"test_a", "test_b"}
    assert set(Quarantine.objects.values_list("signature_id", flat=True)) == {signature.pk}


def test_a_test_that_passes_n_runs_in_a_row_is_suggested_for_release(engineer, settings) -> None:
    from sessions.selectors.quarantine import active_rows

    settings.LOOPDASH_QUARANTINE_RELEASE_AFTER = 3
    first = run_suite(1)
    quarantine.quarantine_test(first.environment, flaky_case().nodeid, "flaky", tomorrow(), engineer)
    for cycle in (2, 3):
        run_suite(cycle, flaky_outcome="passed")
    [row] = active_rows(first.environment_id)
    assert row.passes_in_a_row == 2 and not row.suggest_release
    run_suite(4, flaky_outcome="passed")
    [row] = active_rows(first.environment_id)
    assert row.passes_in_a_row == 3 and row.suggest_release
    run_suite(5)  # failed again: the streak is broken
    [row] = active_rows(first.environment_id)
    assert row.passes_in_a_row == 0 and not row.suggest_release


# -- the API -------------------------------------------------------------------------------------------------


def api(method: str, token: str | None, url: str, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = Client()
    if method == "get":
        return client.get(url, headers=headers)
    if method == "post":
        return client.post(url, json.dumps(body or {}), content_type="application/json", headers=headers)
    return client.delete(url, headers=headers)


def test_the_api_lists_adds_and_ends_quarantines(viewer, engineer, monkeypatch) -> None:
    run = run_suite(1)
    url = reverse("api_quarantine", args=[run.environment.name])
    nodeid = flaky_case().nodeid
    read_only = issue_token(viewer, scopes=["read"])
    writer = issue_token(engineer)

    assert api("get", None, url).status_code == 401
    empty = api("get", read_only, url)
    assert empty.status_code == 200 and empty.json() == []

    until = (tomorrow() + datetime.timedelta(days=6)).isoformat()
    created = api("post", writer, url, {"test": nodeid, "reason": "flaky socket", "until": until})
    assert created.status_code == 201, created.content
    assert created.json()["test"] == nodeid and created.json()["by"] == engineer.username
    listed = api("get", read_only, url).json()
    assert [{k: e[k] for k in ("test", "reason", "until", "by")} for e in listed] == [
        {"test": nodeid, "reason": "flaky socket", "until": until, "by": engineer.username}
    ]
    again = api("post", writer, url, {"test": nodeid, "reason": "still flaky", "until": until})
    assert again.status_code == 200 and Quarantine.objects.count() == 1

    for body, field in [
        ({"test": "tests/x.py::test_nope", "reason": "r", "until": until}, "test"),
        ({"test": nodeid, "until": until}, "reason"),
        ({"test": nodeid, "reason": "r", "until": "2001-01-01"}, "until"),
    ]:
        refused = api("post", writer, url, body)
        assert refused.status_code == 400 and refused.json()["error"].startswith(f"{field}:"), refused.content
    assert api("post", writer, url, ["not", "an", "object"]).status_code == 400
    assert api("get", read_only, reverse("api_quarantine", args=["no-such-env"])).status_code == 404

    ended = api("delete", writer, f"{url}?test={nodeid}")
    assert ended.status_code == 200 and ended.json()["ended"] is True
    assert api("get", read_only, url).json() == []
    assert api("delete", writer, f"{url}?test={nodeid}").status_code == 400  # no longer quarantined

    api("post", writer, url, {"test": nodeid, "reason": "again", "until": until})
    move_clock_to(monkeypatch, datetime.date.fromisoformat(until))
    assert api("get", read_only, url).json() == []  # ended by itself on its date


@pytest.mark.parametrize("role", ["viewer", "engineer", "operator", "admin"])
def test_the_api_enforces_roles_and_scopes_on_every_write(role: str, viewer, engineer, operator, admin_user) -> None:
    user = {"viewer": viewer, "engineer": engineer, "operator": operator, "admin": admin_user}[role]
    run = run_suite(1)
    url = reverse("api_quarantine", args=[run.environment.name])
    nodeid = flaky_case().nodeid
    body = {"test": nodeid, "reason": "r", "until": tomorrow().isoformat()}
    allowed = role != "viewer"

    read_scope = issue_token(user, scopes=["read"])  # a read-only token never writes, whoever holds it
    assert api("post", read_scope, url, body).status_code == 403
    assert api("delete", read_scope, f"{url}?test={nodeid}").status_code == 403

    token = issue_token(user)
    posted = api("post", token, url, body)
    assert posted.status_code == (201 if allowed else 403), posted.content
    if not allowed:
        quarantine.quarantine_test(run.environment, nodeid, "r", tomorrow(), engineer)
    deleted = api("delete", token, f"{url}?test={nodeid}")
    assert deleted.status_code == (200 if allowed else 403), deleted.content
    assert Quarantine.objects.active().exists() is (not allowed)
    assert api("get", read_scope, url).status_code == 200


# -- the pages -----------------------------------------------------------------------------------------------


def test_engineers_quarantine_from_the_test_page_and_every_page_marks_it(client, engineer, viewer) -> None:
    run_suite(1)
    case = flaky_case()
    client.force_login(engineer)
    page = client.get(reverse("test_detail", args=[case.pk])).content.decode()
    assert 'id="quarantine-form"' in page
    posted = client.post(reverse("test_quarantine", args=[case.pk]), {"reason": "socket race", "until": tomorrow()})
    assert posted.status_code == 302 and posted["Location"].endswith("#quarantine")
    run = run_suite(2)

    client.force_login(viewer)
    test_page = client.get(reverse("test_detail", args=[case.pk])).content.decode()
    assert 'id="quarantined-badge"' in test_page and "socket race" in test_page
    assert 'id="quarantine-form"' not in test_page and 'id="quarantine-end"' not in test_page  # a viewer reads
    run_page = client.get(reverse("run_detail", args=[run.pk]) + "?outcome=failed").content.decode()
    assert "quarantined-mark" in run_page and 'id="run-quarantined"' in run_page
    signature = TestResult.objects.get(run=run, case=case).signature
    signature_page = client.get(reverse("signature_detail", args=[signature.pk])).content.decode()
    assert "quarantined</span>" in signature_page and 'id="signature-quarantine-form"' not in signature_page
    listing = client.get(reverse("environment_quarantine", args=[run.environment.name])).content.decode()
    assert case.nodeid in listing and "socket race" in listing and "End now" not in listing

    client.force_login(engineer)
    ended = client.post(reverse("test_quarantine_end", args=[case.pk]))
    assert ended.status_code == 302 and not Quarantine.objects.active().exists()
    assert Quarantine.objects.get().ended_by == engineer


def test_the_signature_page_quarantines_all_its_tests_and_bad_input_is_a_422(client, engineer) -> None:
    run = run_suite(1)
    signature = TestResult.objects.get(run=run, case=flaky_case()).signature
    client.force_login(engineer)
    assert (
        'id="signature-quarantine-form"'
        in client.get(reverse("signature_detail", args=[signature.pk])).content.decode()
    )
    refused = client.post(reverse("signature_quarantine", args=[signature.pk]), {"reason": "x", "until": "2001-02-03"})
    assert refused.status_code == 422 and "until: 2001-02-03 is not after today" in refused.content.decode()
    assert not Quarantine.objects.exists()
    done = client.post(
        reverse("signature_quarantine", args=[signature.pk]), {"reason": "fix coming", "until": tomorrow()}
    )
    assert done.status_code == 302
    assert list(Quarantine.objects.active().values_list("case_id", flat=True)) == [flaky_case().pk]


def test_the_quarantine_pages_cost_a_fixed_number_of_queries(
    client, viewer, engineer, django_assert_max_num_queries
) -> None:
    run = run_suite(1)
    env = run.environment
    quarantine.quarantine_test(env, flaky_case().nodeid, "flaky", tomorrow(), engineer)
    client.force_login(viewer)
    client.get(reverse("sessions_list"))  # the session and groups cached on the user
    # after the 3 of every request: the test page's 3, its quarantine and that test's passing streak
    with django_assert_max_num_queries(8):
        assert client.get(reverse("test_detail", args=[flaky_case().pk])).status_code == 200
    # the list: the environment, the active quarantines (+ test and author), the streaks
    with django_assert_max_num_queries(6):
        assert client.get(reverse("environment_quarantine", args=[env.name])).status_code == 200
    for i in range(9):
        quarantine.quarantine_test(
            env, TestCase.objects.get(nodeid__endswith=f"test_ok_{i}").nodeid, "r", tomorrow(), engineer
        )
    with django_assert_max_num_queries(6):
        page = client.get(reverse("environment_quarantine", args=[env.name])).content.decode()
    assert page.count('class="nodeid"') == 10
