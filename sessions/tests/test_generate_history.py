"""generate_history: a small history made through the real ingest path, idempotency, --reset."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count

from sessions.demo.history_suite import FAILURE_CLASSES, FLAKY
from sessions.models import (
    Analysis,
    Deployment,
    FailureSignature,
    Fix,
    LoopSession,
    TestCase,
    TestResult,
    TestRun,
    WhyStep,
)

pytestmark = pytest.mark.django_db(transaction=True)

ARGS = {"cycles": 5, "tests": 50, "session": "hist", "flaky_rate": 0.2, "rerun_rate": 1.0, "seed": 3}


def generate(**overrides) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_history", stdout=out, stderr=err, **{**ARGS, **overrides})
    return out.getvalue(), err.getvalue()


def snapshot() -> dict:
    session = LoopSession.objects.get(slug="hist")
    return {
        "runs": sorted(session.runs.values_list("label", "scope", "total", "passed", "failed", "errors")),
        "results": TestResult.objects.filter(run__session=session).count(),
        "cases": TestCase.objects.filter(environment=session.environment).count(),
        "signatures": sorted(
            FailureSignature.objects.filter(environment=session.environment).values_list("title", flat=True)
        ),
        "deployments": Deployment.objects.filter(cycle__session=session).count(),
        "fixes": sorted(Fix.objects.values_list("status", flat=True)),
    }


def test_history_through_the_ingest_path() -> None:
    out, err = generate()
    assert "cycle 5/5" in err and "results/s" in err and "ETA" in err
    session = LoopSession.objects.get(slug="hist")
    assert session.cycle_count == 5

    full = session.runs.filter(scope=TestRun.Scope.ALL).order_by("cycle__number")
    assert [r.cycle.number for r in full] == [1, 2, 3, 4, 5]
    assert all(r.total == 50 and r.summary_written and r.status == "finished" for r in full)
    assert {r.format for r in full} == {"junit", "reportlog"}  # cycle 1 is a report-log, the others JUnit
    reruns = session.runs.filter(scope=TestRun.Scope.FAILED)
    assert reruns.exists()
    for rerun in reruns:
        assert rerun.rerun_of.cycle_id == rerun.cycle_id
        assert rerun.deployment_id == rerun.rerun_of.deployment_id  # same revision
        assert 0 < rerun.total == rerun.rerun_of.failed + rerun.rerun_of.errors

    # Stored rows, counted from the results table itself.
    stored = TestResult.objects.filter(run__session=session).count()
    assert stored == sum(session.runs.values_list("total", flat=True))
    assert f"{stored:,} results" in out

    # Deployments with commits, one per cycle, each carrying the runs of its cycle.
    deployments = Deployment.objects.filter(cycle__session=session)
    assert deployments.count() == 5
    assert len({d.commit_sha for d in deployments}) == 5 and all(len(d.commit_sha) == 40 for d in deployments)
    assert not session.runs.filter(deployment__isnull=True).exists()

    # Test cases: priorities and business areas from the report-log's markers; mocked tests are suspects.
    cases = TestCase.objects.filter(environment=session.environment)
    assert cases.count() == 50
    assert cases.filter(priority="P1").exists() and not cases.filter(area__isnull=True).exists()
    assert full.first().by_priority.get("P1")
    assert TestResult.objects.filter(run__session=session, suspect=True, duration=0.0).exists()

    # Failure classes became signatures with titles; five whys with steps; fixes judged by the lifecycle.
    titles = set(FailureSignature.objects.filter(environment=session.environment).values_list("title", flat=True))
    assert "WebSocket 1011 internal error" in titles
    assert len(titles & {cls.title for cls in (*FAILURE_CLASSES, FLAKY)}) >= 4
    assert WhyStep.objects.filter(analysis__signature__environment=session.environment).count() >= 10
    statuses = list(Fix.objects.values_list("status", flat=True))
    assert statuses.count(Fix.Status.DID_NOT_FIX) == 1 and Fix.Status.VERIFIED in statuses
    assert Analysis.objects.filter(status=Analysis.Status.REFUTED).count() == 1
    assert (
        FailureSignature.objects.get(title="WebSocket 1011 internal error").status == FailureSignature.Status.REGRESSED
    )

    # Flaky tests: the same test passes and fails on one revision (the run and its rerun).
    flips = (
        TestResult.objects.filter(run__session=session, outcome__in=["passed", "failed"])
        .values("case_id", "run__deployment_id")
        .annotate(kinds=Count("outcome", distinct=True))
        .filter(kinds=2)
    )
    assert flips.exists()


def test_idempotent_refuses_a_different_history_and_resets() -> None:
    generate()
    first = snapshot()

    out, _ = generate()  # the same history again: nothing to do
    assert "nothing to do" in out
    assert snapshot() == first

    with pytest.raises(CommandError, match="--reset"):
        generate(cycles=4)
    assert snapshot() == first

    _, err = generate(reset=True)  # deleted and made again: the same rows, nothing left over
    assert "reset: deleted session 'hist'" in err
    again = snapshot()
    assert again == first
    assert Deployment.objects.count() == first["deployments"]
    assert Analysis.objects.count() == len(first["fixes"])  # one fix per analysis in this story


def test_signature_preaggregates_match_a_full_count() -> None:
    """The counters kept by ``aggregates`` (migration 0003's tables) equal counting every result again."""
    from sessions.services import aggregates

    generate()
    aggregates.rebuild_signature_counts()
    signatures = list(FailureSignature.objects.all())
    assert signatures
    for sig in signatures:
        full = TestResult.objects.filter(signature=sig).aggregate(
            results=Count("id"), tests=Count("case_id", distinct=True), modules=Count("case__module", distinct=True)
        )
        assert (sig.result_count, sig.test_count, sig.module_count) == (full["results"], full["tests"], full["modules"])
    ids = [s.pk for s in signatures]
    before = aggregates.totals(ids)
    run = TestRun.objects.filter(session__slug="hist", failed__gt=0).first()
    aggregates.add_run(run.pk)
    aggregates.add_run(run.pk)  # finishing a run twice adds nothing twice
    assert aggregates.totals(ids) == before
    assert aggregates.totals_after_run(run.pk, ids[:1]) == {ids[0]: before[ids[0]]}
