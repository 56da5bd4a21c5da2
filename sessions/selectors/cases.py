"""The test page: one test's results across runs, its flakiness, its durations and the signatures it failed with.

(Named ``cases`` after the model, ``TestCase``: a module or function named ``test_*`` reads like a test.)
"""

from __future__ import annotations

from dataclasses import dataclass

from django.shortcuts import get_object_or_404

from ..charts import DurationPoint, duration_figure
from ..models import FailureSignature, TestCase, TestResult
from ..services.flaky import flip_rate
from .quarantine import case_quarantine

HISTORY_LIMIT = 50
FLIP_WINDOW = 30
SUSPECT_LIMIT_S = 0.01  # end-to-end tests faster than this were probably not really run


def case_for_page(pk: int) -> TestCase:
    return get_object_or_404(
        TestCase.objects.select_related("environment", "area", "flaky_run", "flaky_run__cycle"), pk=pk
    )


def case_history(case: TestCase, limit: int = HISTORY_LIMIT) -> list[TestResult]:
    """The test's results across runs, newest run first (index result_case_run), with what the page shows."""
    return list(
        TestResult.objects.filter(case=case)
        .select_related("run", "run__cycle", "run__session", "run__deployment", "signature")
        .only(
            "id",
            "outcome",
            "duration",
            "suspect",
            "message",
            "run_id",
            "case_id",
            "signature_id",
            "run__id",
            "run__label",
            "run__created_at",
            "run__status",
            "run__scope",
            "run__deployment_id",
            "run__cycle__id",
            "run__cycle__number",
            "run__session__id",
            "run__session__slug",
            "run__session__title",
            "run__deployment__id",
            "run__deployment__revision",
            "run__deployment__commit_sha",
            "signature__id",
            "signature__title",
            "signature__status",
        )
        .order_by("-run_id", "-id")[:limit]
    )


@dataclass(slots=True)
class CaseFacts:
    strip: list[TestResult]  # oldest first
    durations: list[DurationPoint]
    flip_rate: float | None
    flips_in: int  # how many results the flip rate is over
    suspects: list[TestResult]
    signatures: list[FailureSignature]
    same_revision: list[tuple[str, str]]  # (revision, "passed and failed") seen in the history


def case_facts(history: list[TestResult], window: int = FLIP_WINDOW) -> CaseFacts:
    """What the history says about the test: its outcome strip, flip rate, suspects, flaky revisions."""
    oldest_first = list(reversed(history))
    recent = oldest_first[-window:]
    codes = "".join({"passed": "P", "failed": "F", "error": "E"}.get(r.outcome, "") for r in recent)
    by_revision: dict[str, set[str]] = {}
    for r in history:
        d = r.run.deployment
        if d is not None and r.outcome in ("passed", "failed", "error"):
            by_revision.setdefault(d.revision, set()).add("pass" if r.outcome == "passed" else "fail")
    signatures: dict[int, FailureSignature] = {}
    for r in history:
        if r.signature is not None and r.signature_id not in signatures:
            signatures[r.signature_id] = r.signature
    return CaseFacts(
        strip=oldest_first,
        durations=[
            DurationPoint(
                run_id=r.run_id,
                label=f"cycle {r.run.cycle.number} · run {r.run_id} · {r.outcome}",
                outcome=r.outcome,
                duration=r.duration,
                suspect=r.suspect,
            )
            for r in oldest_first
        ],
        flip_rate=flip_rate(codes),
        flips_in=len(codes),
        suspects=[r for r in history if r.suspect],
        signatures=list(signatures.values()),
        same_revision=sorted(rev for rev, kinds in by_revision.items() if kinds == {"pass", "fail"}),
    )


def case_page(case: TestCase) -> dict:
    """The context of the test page: its latest results, the facts drawn from them and a duration chart."""
    history = case_history(case)
    facts = case_facts(history)
    suspect_limit = SUSPECT_LIMIT_S if case.environment.end_to_end else None
    return {
        "case": case,
        "history": history,
        "history_limit": HISTORY_LIMIT,
        "facts": facts,
        "duration_figure": duration_figure(facts.durations, suspect_limit=suspect_limit) if history else None,
        **case_quarantine(case),
    }
