"""The run page: its totals, signatures, suspects and metrics, whether it counts, and the results table
(a page by keyset)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models.functions import Substr
from django.shortcuts import get_object_or_404

from ..forms import ResultFilters
from ..models import Environment, Outcome, RunSignature, TestResult, TestRun
from .columns import DETAILS_PREVIEW_CHARS
from .metrics import metric_rows
from .novelty import lead_run_signatures

PAGE_SIZE = 50
SIGNATURES_SHOWN = 50
UNREACHABLE = "target unreachable"  # how an automatic exclusion's reason starts (services.counting)


def run_for_page(pk: int) -> TestRun:
    return get_object_or_404(
        TestRun.objects.select_related(
            "session", "cycle", "environment", "deployment", "rerun_of", "triggered_by", "excluded_by"
        ),
        pk=pk,
    )


def newest_revision(environment: Environment) -> str:
    """The revision a "deploy again" offer preselects: the last one the environment lists, else its default."""
    for entry in reversed(environment.revisions or []):
        if isinstance(entry, dict) and entry.get("revision"):
            return str(entry["revision"])
    return environment.default_revision


@dataclass(frozen=True, slots=True)
class Counting:
    """Whether the run counts and, when it does not, why: what the run page's banner says.

    ``unreachable``: the run was excluded because its target could not be reached, so the page offers
    to deploy (``revision`` preselected) rather than to rerun against the same dead target.
    """

    counted: bool
    excluded: bool
    incomplete: bool
    unreachable: bool
    revision: str


def run_counting(run: TestRun) -> Counting:
    """The banner's facts, from the run's own columns (no query)."""
    return Counting(
        counted=run.counted,
        excluded=run.excluded,
        incomplete=run.incomplete,
        unreachable=run.excluded and run.excluded_reason.lower().startswith(UNREACHABLE),
        revision=newest_revision(run.environment),
    )


def run_signatures(run: TestRun, limit: int = SIGNATURES_SHOWN) -> list[RunSignature]:
    """The run's failures grouped by signature, largest first; ``limit + 1`` rows tell whether there are more."""
    return list(
        RunSignature.objects.filter(run=run)
        .select_related("signature", "signature__category")
        .only(
            "id",
            "results",
            "tests",
            "modules",
            "run_id",
            "signature__id",
            "signature__title",
            "signature__status",
            "signature__error_type",
            "signature__first_seen_run_id",
            "signature__category__name",
            "signature__category__colour",
        )
        .order_by("-results", "signature_id")[: limit + 1]
    )


@dataclass(slots=True)
class ResultPage:
    rows: list[TestResult]
    has_next: bool
    has_previous: bool

    @property
    def next_after(self) -> int | None:
        return self.rows[-1].pk if self.has_next and self.rows else None

    @property
    def previous_before(self) -> int | None:
        return self.rows[0].pk if self.has_previous and self.rows else None


def result_page(
    run: TestRun,
    filters: ResultFilters,
    *,
    after: int | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> ResultPage:
    """One page of a run's results in id order, by keyset: ``id > after`` or ``id < before``, never OFFSET.

    With an outcome the query walks the ``result_run_outcome`` index (run, outcome,
    id; partial, without the passed results) from the cursor and stops after
    ``size + 1`` rows, so page 2,000 of a 100,000-result run costs what page 1 does;
    "passed" walks ``result_run_id`` (run, id), whose rows are mostly passed. No
    COUNT(*): totals per outcome come from the run's summary.
    """
    qs = TestResult.objects.filter(run=run)
    if filters.outcome:
        qs = qs.filter(outcome=filters.outcome)
    if filters.suspect:
        qs = qs.filter(suspect=True)
    if filters.priority:
        qs = qs.filter(case__priority=filters.priority)
    if filters.q:
        qs = qs.filter(case__nodeid__icontains=filters.q)
    qs = (
        qs.select_related("case")
        .defer("details", "properties", "case__markers", "case__name", "case__module")
        .annotate(details_preview=Substr("details", 1, DETAILS_PREVIEW_CHARS + 1))
    )
    if before is not None and after is None:
        rows = list(qs.filter(id__lt=before).order_by("-id")[: size + 1])
        has_previous = len(rows) > size
        rows = rows[:size]
        rows.reverse()
        return ResultPage(rows=rows, has_next=True, has_previous=has_previous)
    if after is not None:
        qs = qs.filter(id__gt=after)
    rows = list(qs.order_by("id")[: size + 1])
    return ResultPage(rows=rows[:size], has_next=len(rows) > size, has_previous=after is not None)


def suspect_results(run: TestRun, limit: int = 20) -> list[TestResult]:
    """Passed or failed in under 0.01 s: probably mocked or not really run. Skips the query when the summary says none."""
    if not run.suspect:
        return []
    return list(
        TestResult.objects.filter(run=run, suspect=True)
        .select_related("case")
        .only("id", "outcome", "duration", "case__id", "case__nodeid", "case__priority")
        .order_by("id")[:limit]
    )


def outcome_options(run: TestRun) -> list[tuple[str, str, int]]:
    """(value, label, count) for the outcome filter; the counts come from the run's summary."""
    counts = {
        Outcome.PASSED: run.passed,
        Outcome.FAILED: run.failed,
        Outcome.ERROR: run.errors,
        Outcome.SKIPPED: run.skipped,
        Outcome.XFAILED: run.xfailed,
        Outcome.XPASSED: run.xpassed,
    }
    return [(str(value), value.label, counts[value]) for value in Outcome]


def results_section(run: TestRun, filters: ResultFilters, *, after: int | None, before: int | None) -> dict:
    """The context of the results table (the partial the filters and the pager swap)."""
    page = result_page(run, filters, after=after, before=before)
    options = outcome_options(run)
    matching = None
    if filters.outcome and not (filters.q or filters.priority or filters.suspect):
        matching = next(count for value, _label, count in options if value == filters.outcome)
    elif not filters.active:
        matching = run.total
    return {
        "run": run,
        "filters": filters,
        "page": page,
        "outcome_options": options,
        "priorities": sorted((run.by_priority or {}).keys()),
        "matching": matching,  # None when a text, priority or suspect filter makes it unknown without counting
        "details_limit": DETAILS_PREVIEW_CHARS,
    }


def run_page(run: TestRun, filters: ResultFilters, *, after: int | None, before: int | None) -> dict:
    """The context of the run page: the results table and the run's signatures, suspects and metrics."""
    context = results_section(run, filters, after=after, before=before)
    signatures = run_signatures(run)
    context.update(
        {
            "signatures": lead_run_signatures(signatures[:SIGNATURES_SHOWN], run.session_id, run.cycle_id),
            "more_signatures": len(signatures) > SIGNATURES_SHOWN,
            "suspects": suspect_results(run),
            "by_priority": sorted((run.by_priority or {}).items()),
            "metrics": metric_rows(run, run.environment.metric_targets or {}),
            "counting": run_counting(run),
        }
    )
    return context
