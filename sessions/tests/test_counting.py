"""Runs that count: a run that never reached its target, or that an operator set aside, changes no figure.

Every run here is real JUnit bytes through ``ingest_file`` (so the run-completion pipeline runs every
step as in production). The worker's side (a failing health check) is in test_tasks_integration.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from sessions.admin import EnvironmentForm
from sessions.models import (
    BusinessArea,
    FailureSignature,
    Fix,
    ImpactRule,
    LoopSession,
    SessionEvent,
    SuccessCriterion,
    TestCase,
    TestRun,
    WorkStatus,
)
from sessions.selectors.cycles import session_cycles
from sessions.selectors.sessions import signature_board
from sessions.services import counting
from sessions.services.triage import Invalid
from sessions.tests.test_lifecycle import FIX_SHA, analysed, deploy, suite
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def unreachable(n: int = 7, *, cycle: int = 2, passing: int = 0) -> list[Case]:
    """Every test failing because nothing listened, as a run against a stopped target does."""
    cases = [Case(f"test_ws_{i}", "failed", 0.02, REFUSED) for i in range(3)]
    cases += [Case(f"test_other_{i}", "failed", 0.02, REFUSED) for i in range(n - 3)]
    return cases + [Case(f"test_fine_{i}", "passed", 0.5) for i in range(passing)]


def figures(session: LoopSession) -> dict:
    """What the pages say: the headline, the trend, the board, the criteria, the flaky tests."""
    session.refresh_from_db()
    cycles = session_cycles(session)
    board, total = signature_board(session)
    return {
        "headline": session.latest_run_id,
        "trend": [(c.cycle.number, c.representative.pk if c.representative else None) for c in cycles],
        "board": [(status, [card.signature_id for card in cards]) for status, _label, cards, _n in board],
        "board_total": total,
        "criteria": list(SuccessCriterion.objects.filter(session=session).values_list("done", "detail")),
        "flaky": list(TestCase.objects.exclude(flaky_key="").values_list("pk", flat=True)),
        "recent": sorted(TestCase.objects.exclude(recent="").values_list("pk", "recent")),
    }


@pytest.fixture
def healthy() -> TestRun:
    run = ingest(suite(broken=True), cycle=1, label="cycle1")
    SuccessCriterion.objects.create(
        session=run.session,
        text="pass rate at least 50%",
        kind=SuccessCriterion.Kind.PASS_RATE,
        params={"threshold": 50},
    )
    counting.follow_up(run)  # criteria evaluated from the latest counted run
    return run


def test_a_run_that_never_reached_its_target_is_excluded_and_changes_no_figure(healthy) -> None:
    session = healthy.session
    before = figures(session)
    bad = ingest(unreachable(), cycle=1, label="stopped-target")
    bad.refresh_from_db()
    assert bad.status == WorkStatus.FINISHED and bad.excluded and not bad.counted
    assert bad.excluded_reason.startswith("target unreachable: 7 of 7 executed tests failed")
    assert bad.excluded_by is None
    assert figures(session) == before
    assert TestRun.objects.filter(pk=bad.pk, failed=7).exists()  # its results stay stored and browsable
    event = SessionEvent.objects.get(session=session)
    assert event.action == "excluded" and "automatically" in event.detail


def test_the_rule_needs_nearly_all_tests_failing_with_one_infrastructure_signature(healthy) -> None:
    half = ingest(unreachable(6, passing=6), cycle=2, label="half")
    assert half.counted and not half.excluded  # 50 % failing is a bad run, not an unreachable target
    product = ingest([Case(f"test_x_{i}", "failed", 0.1, "AssertionError: assert 1 == 2") for i in range(8)], cycle=3)
    assert product.counted  # nearly all failing, but with a product failure
    env = healthy.environment
    env.unreachable_share = 0
    env.save()
    off = ingest(unreachable(), cycle=4, label="rule-off")
    assert off.counted and not off.excluded


def test_an_operator_excludes_and_includes_a_run_and_every_figure_follows(healthy, operator) -> None:
    session = healthy.session
    with_run = figures(session)
    assert with_run["headline"] == healthy.pk and with_run["board_total"] == 1
    counting.exclude_run(healthy, "deployed the wrong branch", operator)
    healthy.refresh_from_db()
    assert healthy.excluded and not healthy.counted and healthy.excluded_by == operator
    without = figures(session)
    assert without["headline"] is None and without["trend"] == [(1, None)] and without["board_total"] == 0
    assert without["criteria"] == [(False, "no complete run yet")]
    counting.include_run(healthy, operator, "it was the right branch after all")
    assert figures(session) == with_run
    actions = list(SessionEvent.objects.filter(session=session).values_list("action", flat=True))
    assert actions == ["included", "excluded"]


def test_a_fix_verdict_follows_the_run_that_gave_it(healthy, operator) -> None:
    signature = FailureSignature.objects.get(error_type="ConnectionClosedError")
    fix = analysed(signature)
    deploy(healthy.environment, "r2", FIX_SHA)
    verifying = ingest(suite(broken=False), cycle=2, label="cycle2")
    fix.refresh_from_db()
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by == verifying
    counting.exclude_run(verifying, "ran against the old build", operator)
    fix.refresh_from_db()
    signature.refresh_from_db()
    assert fix.status == Fix.Status.DEPLOYED and fix.verified_by is None
    assert signature.status == FailureSignature.Status.FIX_DEPLOYED
    counting.include_run(verifying, operator)
    fix.refresh_from_db()
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by == verifying


def test_an_unreachable_run_never_judges_a_fix_nor_marks_tests_flaky(healthy) -> None:
    signature = FailureSignature.objects.get(error_type="ConnectionClosedError")
    fix = analysed(signature)
    deploy(healthy.environment, "r2", FIX_SHA)
    ingest(suite(broken=False), cycle=2, label="fixed")  # verifies, and the tests now pass on r2
    fix.refresh_from_db()
    assert fix.status == Fix.Status.VERIFIED
    ingest(unreachable(), cycle=2, label="stopped")  # same revision: every test "fails"
    fix.refresh_from_db()
    signature.refresh_from_db()
    assert fix.status == Fix.Status.VERIFIED and signature.status == FailureSignature.Status.VERIFIED
    assert not TestCase.objects.exclude(flaky_key="").exists()


def test_exclusion_needs_a_reason_and_an_ended_run(healthy, operator) -> None:
    with pytest.raises(Invalid, match="reason"):
        counting.exclude_run(healthy, "   ", operator)
    with pytest.raises(Invalid, match="not excluded"):
        counting.include_run(healthy, operator)
    TestRun.objects.filter(pk=healthy.pk).update(status=WorkStatus.RUNNING)
    healthy.refresh_from_db()
    with pytest.raises(Invalid, match="has not ended"):
        counting.exclude_run(healthy, "why not", AnonymousUser())


def test_a_test_cut_off_by_loopdash_is_not_a_product_failure() -> None:
    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=chat, position=0)
    cut = "the run ended before this test finished (no call report)"
    run = ingest([Case("test_p1_chat", "error", 0.1, cut), Case("test_p1_other", "passed")], cycle=1)
    signature = FailureSignature.objects.get()
    assert signature.internal
    assert run.mrr_at_risk == 0  # a cancel is not revenue at risk
    board, total = signature_board(run.session)
    assert total == 0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("health_check", '"deploy.py --status"', "Health check must be a JSON list of strings"),
        ("unreachable_share", 150, "0 (off) to 100"),
    ],
)
def test_the_admin_checks_the_health_check_and_the_rule(field, value, error) -> None:
    data = {
        "name": "checked", "timeout_s": 60, "deploy_timeout_s": 60, "deploy_command": "[]", "test_command": "[]",
        "env_vars": "{}", "revisions": "[]", "metric_targets": "{}", "marker_args": '["-m", "{marker}"]',
        "keyword_args": '["-k", "{keyword}"]', "health_check": '["{python}", "deploy.py", "--status"]',
        "health_check_timeout_s": 30, "unreachable_share": 90,
    }  # fmt: skip
    assert EnvironmentForm(data=data).is_valid()
    form = EnvironmentForm(data={**data, field: value})
    assert not form.is_valid() and error in " ".join(form.errors[field])
