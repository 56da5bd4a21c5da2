"""The fix lifecycle on real ingested runs: deployed, then verified or "did not fix"; verified, then regressed.

Every run is JUnit bytes through ``ingest_file`` (so ``complete_run`` runs every step as in
production); deployments are rows marked succeeded the way the worker does, through
``on_deployment_succeeded``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.models import (
    Analysis,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    SignatureEvent,
    TestCase,
    TestRun,
    WorkStatus,
)
from sessions.services import lifecycle, triage
from sessions.services.lifecycle import commit_matches, on_deployment_succeeded
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db

WS_1011 = "ConnectionClosedError: received 1011 (internal error); then sent 1011 (internal error)"
FIX_SHA = "049b5e78f3a1c2d4e5f60718293a4b5c6d7e8f90"


def suite(*, broken: bool, extra_passing: int = 4, name_prefix: str = "test_ws") -> list[Case]:
    """Three WebSocket tests that fail with 1011 while ``broken``, and a few that always pass."""
    cases = [Case(f"{name_prefix}_{i}", "failed" if broken else "passed", 1.2, WS_1011) for i in range(3)]
    cases += [Case(f"test_other_{i}", "passed", 0.8) for i in range(extra_passing)]
    return cases


def deploy(env: Environment, revision: str, commit: str, *, cycle=None) -> Deployment:
    now = timezone.now()
    deployment = Deployment.objects.create(
        environment=env, cycle=cycle, revision=revision, commit_sha=commit, status=WorkStatus.SUCCEEDED,
        started_at=now - timedelta(seconds=5), finished_at=now,
    )  # fmt: skip
    on_deployment_succeeded(deployment)
    return deployment


def analysed(signature: FailureSignature, sha: str = FIX_SHA) -> Fix:
    """An engineer's analysis of the signature with a fix (through the services, as the page does)."""
    analysis = triage.create_analysis(signature, None, "1011 during agent execution")
    analysis.refresh_from_db()
    return triage.add_fix(analysis, {"version": analysis.version, "sha": sha, "message": "fix the race"}, None)


def refreshed(*objects):
    for obj in objects:
        obj.refresh_from_db()
    return objects


@pytest.fixture
def broken_run() -> TestRun:
    return ingest(suite(broken=True), cycle=1, label="cycle1")


@pytest.fixture
def signature(broken_run: TestRun) -> FailureSignature:
    return FailureSignature.objects.get(error_type="ConnectionClosedError")


# -- the three paths ---------------------------------------------------------------------------------------


def test_deployed_then_verified(broken_run, signature) -> None:
    fix = analysed(signature)
    assert fix.status == Fix.Status.PENDING
    deployment = deploy(broken_run.environment, "r2", FIX_SHA[:9])
    fix, signature = refreshed(fix, signature)
    assert fix.status == Fix.Status.DEPLOYED and fix.deployment == deployment
    assert signature.status == FailureSignature.Status.FIX_DEPLOYED

    after = ingest(suite(broken=False), cycle=2, label="cycle2")
    fix, signature = refreshed(fix, signature)
    assert fix.status == Fix.Status.VERIFIED
    assert fix.verified_by == after
    assert signature.status == FailureSignature.Status.VERIFIED
    assert SignatureEvent.objects.filter(signature=signature, detail__contains=f"verified by run {after.pk}").exists()


def test_deployed_then_did_not_fix(broken_run, signature) -> None:
    """The seeds' fix for the wrong race condition: deployed, and the next run still fails with 1011."""
    fix = analysed(signature)
    deploy(broken_run.environment, "r2", FIX_SHA)
    still = ingest(suite(broken=True)[:2] + [Case("test_other_0")], cycle=2, label="cycle2")
    fix, signature = refreshed(fix, signature)
    assert fix.status == Fix.Status.DID_NOT_FIX
    assert fix.verified_by == still
    assert signature.status == FailureSignature.Status.INVESTIGATING
    assert SignatureEvent.objects.filter(signature=signature, detail__contains="did not fix").exists()


def test_verified_then_regressed(broken_run, signature) -> None:
    fix = analysed(signature)
    deploy(broken_run.environment, "r2", FIX_SHA)
    ingest(suite(broken=False), cycle=2, label="cycle2")
    fix, signature = refreshed(fix, signature)
    assert fix.status == Fix.Status.VERIFIED and signature.status == FailureSignature.Status.VERIFIED

    back = ingest(suite(broken=True)[:1] + suite(broken=False)[1:], cycle=3, label="cycle3")
    fix, signature = refreshed(fix, signature)
    assert signature.status == FailureSignature.Status.REGRESSED
    assert signature.last_seen_run == back
    assert fix.status == Fix.Status.VERIFIED  # the verdict of its own run stands
    assert SignatureEvent.objects.filter(signature=signature, detail__contains="regressed").exists()


# -- what counts as "the first run after the deployment" ---------------------------------------------------


def test_runs_before_the_deployment_do_not_judge(broken_run, signature) -> None:
    fix = analysed(signature)
    env = broken_run.environment
    deployment = Deployment.objects.create(
        environment=env, revision="r2", commit_sha=FIX_SHA, status=WorkStatus.RUNNING
    )
    ingest(suite(broken=False), cycle=2, label="while deploying")  # started before the deploy finished
    Deployment.objects.filter(pk=deployment.pk).update(status=WorkStatus.SUCCEEDED, finished_at=timezone.now())
    deployment.refresh_from_db()
    on_deployment_succeeded(deployment)
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.DEPLOYED
    judged_by = ingest(suite(broken=False), cycle=3, label="after")
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by == judged_by


def test_a_run_queued_with_its_cycles_deploy_judges_even_though_created_first(broken_run, signature) -> None:
    """Run cycle queues the deploy and the run together: the run row is older than the deploy's end."""
    fix = analysed(signature)
    env = broken_run.environment
    deployment = Deployment.objects.create(
        environment=env, revision="r2", commit_sha=FIX_SHA, status=WorkStatus.RUNNING
    )
    run = ingest(suite(broken=False), cycle=2, label="queued with the deploy")
    TestRun.objects.filter(pk=run.pk).update(deployment=deployment, started_at=timezone.now() - timedelta(hours=1))
    Deployment.objects.filter(pk=deployment.pk).update(status=WorkStatus.SUCCEEDED, finished_at=timezone.now())
    deployment.refresh_from_db()
    on_deployment_succeeded(deployment)
    run.refresh_from_db()
    assert [judged.pk for judged in lifecycle.judge_fixes(run)] == [fix.pk]
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by == run


def test_a_run_without_the_signatures_tests_waits_for_one_that_has_them(broken_run, signature) -> None:
    """A P1-only run after the deploy ran none of the failing tests: it cannot show the failure is gone."""
    fix = analysed(signature)
    deploy(broken_run.environment, "r2", FIX_SHA)
    ingest([Case("test_other_0"), Case("test_other_1")], cycle=2, label="p1 only")
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.DEPLOYED
    full = ingest(suite(broken=False), cycle=2, label="full")
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by == full


def test_a_partial_run_that_still_shows_the_failure_says_did_not_fix(broken_run, signature) -> None:
    fix = analysed(signature)
    deploy(broken_run.environment, "r2", FIX_SHA)
    ingest(suite(broken=True)[:1], cycle=2, label="one test")
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.DID_NOT_FIX


def test_selected_reruns_and_incomplete_runs_do_not_judge(broken_run, signature) -> None:
    fix = analysed(signature)
    deploy(broken_run.environment, "r2", FIX_SHA)
    selected = ingest(suite(broken=False)[:3], cycle=2, label="selected")
    TestRun.objects.filter(pk=selected.pk).update(scope=TestRun.Scope.SELECTED)
    selected.refresh_from_db()
    Fix.objects.filter(pk=fix.pk).update(status=Fix.Status.DEPLOYED, verified_by=None)
    assert lifecycle.judge_fixes(selected) == []
    TestRun.objects.filter(pk=selected.pk).update(scope=TestRun.Scope.ALL, incomplete=True, counted=False)
    selected.refresh_from_db()
    assert lifecycle.judge_fixes(selected) == []


def test_a_fix_recorded_after_its_deploy_and_run_is_judged_at_once(broken_run, signature) -> None:
    env = broken_run.environment
    deploy(env, "r2", FIX_SHA)
    after = ingest(suite(broken=False), cycle=2, label="cycle2")
    fix = analysed(signature, sha=FIX_SHA[:12])
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by == after


def test_a_fix_is_judged_once_even_when_two_runs_finish(broken_run, signature) -> None:
    fix = analysed(signature)
    deploy(broken_run.environment, "r2", FIX_SHA)
    first = ingest(suite(broken=True), cycle=2, label="a")
    second = ingest(suite(broken=False), cycle=2, label="b")
    (fix,) = refreshed(fix)
    assert fix.verified_by == first and fix.status == Fix.Status.DID_NOT_FIX
    assert lifecycle.judge_fixes(second) == []


def test_a_fix_on_a_merged_signature_is_judged_on_its_target(broken_run, signature) -> None:
    other_run = ingest(
        [Case("test_ws_x", "failed", 1.0, "ConnectionClosedError: received 1011 on connect")], cycle=1, label="b"
    )
    other = FailureSignature.objects.get(run_counts__run=other_run)
    fix = analysed(other)
    triage.merge(other, signature, None)
    deploy(broken_run.environment, "r2", FIX_SHA)
    ingest(suite(broken=True), cycle=2, label="cycle2")
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.DID_NOT_FIX


def test_deployments_of_another_environment_or_commit_do_not_count(broken_run, signature) -> None:
    fix = analysed(signature)
    elsewhere = Environment.objects.create(name="production")
    deploy(elsewhere, "r2", FIX_SHA)
    deploy(broken_run.environment, "r2", "deadbeef00")
    (fix,) = refreshed(fix)
    assert fix.status == Fix.Status.PENDING


@pytest.mark.parametrize(
    "fix_sha, deployed, matches",
    [
        ("049b5e78f", FIX_SHA, True),
        (FIX_SHA, "049b5e78f", True),
        ("049B5E78F", FIX_SHA, True),
        ("049b5e7", "049b5e8", False),
        ("049b5e", "049b5e78f", False),  # too short to be a prefix
        ("", "", False),
    ],
)
def test_short_and_long_forms_of_a_commit_match(fix_sha: str, deployed: str, matches: bool) -> None:
    assert commit_matches(fix_sha, deployed) is matches


# -- the demo: the seeds' fix for the wrong race condition -------------------------------------------------


def test_the_demo_shows_the_wrong_race_condition_fix_as_did_not_fix() -> None:
    from sessions.demo import loader

    loader.load(lambda line: None)
    wrong = Fix.objects.get(analysis__status=Analysis.Status.REFUTED)
    assert wrong.status == Fix.Status.DID_NOT_FIX
    signature = wrong.analysis.signature
    assert "1011" in signature.title
    right = signature.analyses.get(status=Analysis.Status.CONFIRMED).fixes.get()
    assert right.status == Fix.Status.VERIFIED
    assert right.verified_by.cycle.number == wrong.verified_by.cycle.number + 1
    assert signature.status == FailureSignature.Status.VERIFIED
    # The flaky snapshot test failed in cycle 6 and passed on its rerun: caught as flaky.
    flaky = TestCase.objects.filter(flaky_at__isnull=False)
    assert any("status_snapshot" in case.nodeid for case in flaky)
