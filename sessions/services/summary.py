"""A run's summary: counted once, from the stored rows, when the run ends.

Pages never count results again: they read these columns, the RunSignature
rows and the signatures' counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from ..ingest.records import RunInfo
from ..models import (
    BusinessArea,
    FailureSignature,
    Outcome,
    RunSignature,
    TestResult,
    TestRun,
    WorkStatus,
)
from .aggregates import RunPairs, case_modules, totals_after_run
from .ingestion.tally import RunTally
from .ingestion.text import clean_text
from .quarantine import mark_results


class StoredResults(Protocol):
    """What the summary needs of the writer that stored a run's results (``ingestion.writer.ResultWriter``).

    ``tally`` (optional): the run's figures when that writer stored every result of it (``ingestion/tally.py``);
    the summary then reads them instead of counting the rows again.
    """

    count: int
    prioritized: bool

    def metrics(self) -> dict: ...


# pytest exit statuses that mean the run did not get to its end.
INCOMPLETE_EXITSTATUS = {2, 3, 4}
COUNT_FIELD = {
    Outcome.PASSED: "passed",
    Outcome.FAILED: "failed",
    Outcome.ERROR: "errors",
    Outcome.SKIPPED: "skipped",
    Outcome.XFAILED: "xfailed",
    Outcome.XPASSED: "xpassed",
}


def pass_rate(passed: int, failed: int, errors: int) -> float | None:
    """passed / (passed + failed + errors) as a percentage; None when nothing was executed."""
    executed = passed + failed + errors
    return round(100.0 * passed / executed, 2) if executed else None


def count_outcomes(run: TestRun) -> dict[str, int]:
    """Counts by outcome from the stored rows (one GROUP BY on the run's index)."""
    counts = dict.fromkeys(COUNT_FIELD.values(), 0)
    rows = TestResult.objects.filter(run=run).values_list("outcome").annotate(n=Count("id")).order_by()
    for outcome, n in rows:
        if outcome in COUNT_FIELD:
            counts[COUNT_FIELD[outcome]] = n
    counts["tests"] = sum(counts.values())
    return counts


def tallied_counts(outcomes: Mapping[str, int]) -> dict[str, int]:
    """``count_outcomes``'s dictionary from the outcomes an upload's writer counted as it wrote the rows."""
    counts = dict.fromkeys(COUNT_FIELD.values(), 0)
    for outcome, n in outcomes.items():
        if outcome in COUNT_FIELD:
            counts[COUNT_FIELD[outcome]] += n
    counts["tests"] = sum(counts.values())
    return counts


def apply_counts(run: TestRun, counts: dict[str, int]) -> None:
    run.total = counts["tests"]
    run.passed = counts["passed"]
    run.failed = counts["failed"]
    run.errors = counts["errors"]
    run.skipped = counts["skipped"]
    run.xfailed = counts["xfailed"]
    run.xpassed = counts["xpassed"]
    run.pass_rate = pass_rate(run.passed, run.failed, run.errors)


def write_summary(run: TestRun, writer: StoredResults | None, info: RunInfo | None, *, status: str) -> TestRun:
    """Write the run's summary once and put it in its final status (the first step of ``complete_run``).

    Also the run's RunSignature rows and its signatures' lifetime counters, in the same transaction:
    a page never sees a summary without them.
    """
    tally = getattr(writer, "tally", None)
    with transaction.atomic():
        results = TestResult.objects.filter(run=run)
        apply_counts(run, count_outcomes(run) if tally is None else tallied_counts(tally.outcomes))
        _leave_out_quarantined(run, mark_results(run))
        if tally is None:
            aggregates = results.aggregate(
                suspect=Count("id", filter=Q(suspect=True)),
                tests_duration=Sum("duration"),
            )
            run.suspect = aggregates["suspect"] or 0
            run.tests_duration_s = aggregates["tests_duration"]
        else:
            run.suspect = tally.suspect
            run.tests_duration_s = tally.tests_duration()
        run.by_priority = {} if _no_priorities(run, writer) else _by_priority(run)
        run.mrr_at_risk = _mrr_at_risk(run)
        if writer is not None:
            run.metrics = writer.metrics()
        if info is not None:
            run.exitstatus = info.exitstatus
            if info.properties:
                run.properties = {**run.properties, **info.properties}
            if info.suite_output:
                run.suite_output = clean_text(info.suite_output)
            if info.exitstatus in INCOMPLETE_EXITSTATUS or info.incomplete:
                run.incomplete = True
            if info.duration is not None:
                run.duration_s = info.duration
        if status in (WorkStatus.TIMED_OUT, WorkStatus.CANCELLED, WorkStatus.LOST, WorkStatus.ERROR):
            run.incomplete = True
        now = timezone.now()
        run.status = status
        run.finished_at = run.finished_at or now
        if run.duration_s is None and run.started_at:
            run.duration_s = (run.finished_at - run.started_at).total_seconds()
        run.current_test = ""
        run.summary_written = True
        run.save()
        _write_signature_counts(run, tally)
    return run


def _leave_out_quarantined(run: TestRun, quarantined: dict[str, int]) -> None:
    """Results of quarantined tests stay in the counts and leave the pass rate (services/quarantine.py)."""
    run.quarantined = sum(quarantined.values())
    run.quarantined_passed = quarantined.get(Outcome.PASSED, 0)
    run.quarantined_executed = run.quarantined_passed + sum(
        quarantined.get(o, 0) for o in (Outcome.FAILED, Outcome.ERROR)
    )
    if run.quarantined:
        run.pass_rate = pass_rate(
            run.passed - quarantined.get(Outcome.PASSED, 0),
            run.failed - quarantined.get(Outcome.FAILED, 0),
            run.errors - quarantined.get(Outcome.ERROR, 0),
        )


def _no_priorities(run: TestRun, writer: StoredResults | None) -> bool:
    """True when the writer stored every result of the run and none belongs to a case with a priority.

    ``_by_priority`` would then find no row, after joining every result to its case (a tenth of a
    second for 100,000 results). The writer knows each case's priority when it resolves the case.
    """
    return writer is not None and not writer.prioritized and writer.count == run.total


def _by_priority(run: TestRun) -> dict[str, dict[str, int]]:
    rows = (
        TestResult.objects.filter(run=run, quarantined=False)
        .exclude(case__priority="")
        .values_list("case__priority", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    out: dict[str, dict[str, int]] = {}
    for priority, outcome, n in rows:
        bucket = out.setdefault(priority, dict.fromkeys(COUNT_FIELD.values(), 0))
        bucket[COUNT_FIELD.get(outcome, "passed")] += n
    for bucket in out.values():
        bucket["tests"] = sum(bucket.values())
        bucket["pass_rate"] = pass_rate(bucket["passed"], bucket["failed"], bucket["errors"])
    return out


def _mrr_at_risk(run: TestRun) -> Decimal:
    """Sum over business areas with at least one failed or errored test, each area once."""
    failing_areas = (
        TestResult.objects.filter(
            run=run, outcome__in=(Outcome.FAILED, Outcome.ERROR), case__area__isnull=False, quarantined=False
        )
        .exclude(signature__internal=True)
        .values_list("case__area_id", flat=True)
        .distinct()
    )
    total = BusinessArea.objects.filter(pk__in=failing_areas).aggregate(s=Sum("mrr"))["s"]
    return total or Decimal("0")


def _write_signature_counts(run: TestRun, tally: RunTally | None = None) -> None:
    """RunSignature rows for the run page, then each signature's lifetime counters.

    Two grouped queries and one bulk update, whatever the number of signatures. With the writer's
    tally, the run's (signature, test) pairs come from it instead of from the run's results.
    """
    if tally is None or tally.signature_cases is None:
        counted = dict(
            results=Count("id"), tests=Count("case_id", distinct=True), modules=Count("case__module", distinct=True)
        )
        rows = (
            TestResult.objects.filter(run=run, signature__isnull=False)
            .values("signature_id")
            .annotate(**counted)
            .order_by()
        )
        pairs = None
    else:
        rows, pairs = _signature_rows(tally)
    RunSignature.objects.filter(run=run).delete()
    RunSignature.objects.bulk_create(
        [
            RunSignature(
                run=run, signature_id=r["signature_id"], results=r["results"], tests=r["tests"], modules=r["modules"]
            )
            for r in rows
        ]
    )
    signature_ids = [r["signature_id"] for r in rows]
    if not signature_ids:
        return
    # Lifetime counters from the pre-aggregates (migration 0003): this run's rows, never the history.
    totals = totals_after_run(run.pk, signature_ids, pairs=pairs)
    when = run.finished_at or timezone.now()
    signatures = list(FailureSignature.objects.filter(pk__in=signature_ids))
    for sig in signatures:
        found = totals.get(sig.pk, {"results": 0, "tests": 0, "modules": 0})
        sig.result_count = found["results"]
        sig.test_count = found["tests"]
        sig.module_count = found["modules"]
        sig.last_seen_run = run
        sig.last_seen_at = when
        if sig.first_seen_run_id is None:
            sig.first_seen_run = run
            sig.first_seen_at = when
    FailureSignature.objects.bulk_update(
        signatures,
        [
            "result_count",
            "test_count",
            "module_count",
            "last_seen_run",
            "last_seen_at",
            "first_seen_run",
            "first_seen_at",
        ],
        batch_size=500,
    )


def _signature_rows(tally: RunTally) -> tuple[list[dict[str, int]], RunPairs]:
    """``_write_signature_counts``'s grouped rows and the run's pairs, from the writer's tally.

    The modules of the tests the writer created are in the tally; the others are read by primary key.
    """
    modules = dict(tally.new_modules)
    missing = {case_id for _signature_id, case_id in tally.signature_cases if case_id not in modules}
    modules.update(case_modules(missing))
    module_pairs = {(signature_id, modules[case_id]) for signature_id, case_id in tally.signature_cases}
    tests: dict[int, int] = {}
    for signature_id, _case_id in tally.signature_cases:
        tests[signature_id] = tests.get(signature_id, 0) + 1
    per_module: dict[int, int] = {}
    for signature_id, _module in module_pairs:
        per_module[signature_id] = per_module.get(signature_id, 0) + 1
    rows = [
        {"signature_id": pk, "results": n, "tests": tests[pk], "modules": per_module[pk]}
        for pk, n in tally.signature_results.items()
    ]
    return rows, RunPairs(tally.signature_cases, module_pairs)
