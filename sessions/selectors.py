"""Reads for pages, charts and the API. They read pre-aggregated figures, never count results."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet
from django.db.models.functions import Substr
from django.http import QueryDict
from django.shortcuts import get_object_or_404

from .charts import CyclePoint
from .models import (
    Analysis,
    Cycle,
    Deployment,
    FailureSignature,
    Fix,
    LoopSession,
    Outcome,
    RunSignature,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
)


def run_url(run: TestRun) -> str:
    return settings.LOOPDASH_BASE_URL.rstrip("/") + run.get_absolute_url()


def run_as_json(run: TestRun) -> dict:
    """The run as the API contract in DESIGN.md describes it."""
    signatures = (
        RunSignature.objects.filter(run=run)
        .select_related("signature")
        .order_by("-results", "signature_id")
    )
    return {
        "id": run.pk,
        "session": run.session.slug,
        "cycle": run.cycle.number,
        "status": run.status,
        "incomplete": run.incomplete,
        "totals": {
            "tests": run.total,
            "passed": run.passed,
            "failed": run.failed,
            "errors": run.errors,
            "skipped": run.skipped,
            "xfailed": run.xfailed,
            "xpassed": run.xpassed,
        },
        "pass_rate": run.pass_rate,
        "duration_s": run.duration_s,
        "mrr_at_risk": float(run.mrr_at_risk),
        "signatures": [{"id": rs.signature_id, "title": rs.signature.title, "count": rs.results} for rs in signatures],
        "url": run_url(run),
    }


# -- pages -----------------------------------------------------------------------------------------
# Every page reads a fixed number of queries whatever the data size: summary columns,
# denormalised pointers and bounded slices. Nothing below counts TestResult rows.

PAGE_SIZE = 50

# The columns the session page and the trend chart read; the rest of a run (logs, command,
# properties) can be large and is not shown there.
RUN_SUMMARY_FIELDS = (
    "id", "session_id", "cycle_id", "deployment_id", "label", "status", "source", "scope", "incomplete",
    "exitstatus", "created_at", "started_at", "finished_at", "rerun_of_id", "summary_written",
    "total", "passed", "failed", "errors", "skipped", "xfailed", "xpassed", "suspect",
    "pass_rate", "duration_s", "mrr_at_risk", "by_priority",
)  # fmt: skip


def sessions_for_list() -> QuerySet[LoopSession]:
    """Sessions with their environment and latest run in one query (the denormalised ``latest_run``)."""
    latest = [f"latest_run__{name}" for name in RUN_SUMMARY_FIELDS if name != "id"]
    return (
        LoopSession.objects.select_related("environment", "latest_run")
        .only(
            "id", "title", "slug", "status", "created_at", "cycle_count", "goal_pass_rate", "goal_priority",
            "environment__name", "latest_run__id", *latest,
        )
        .order_by("-created_at", "-id")
    )


def session_for_page(slug: str) -> LoopSession:
    return get_object_or_404(LoopSession.objects.select_related("environment", "latest_run"), slug=slug)


@dataclass(slots=True)
class CycleRow:
    """A cycle with its deployments and runs (oldest first) and the run that represents it on the chart."""

    cycle: Cycle
    runs: list[TestRun] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    representative: TestRun | None = None


def representative_run(runs: list[TestRun]) -> TestRun | None:
    """The run that stands for a cycle on the trend chart: its latest finished, complete, full run.

    A cycle usually holds one deploy and one or more runs, and the later runs are
    retries of the same suite or reruns of its failures. Summing them counts the
    same tests twice and averaging mixes a 25-test P1 rerun with a 1,000-test
    suite, so neither says where the cycle ended. The latest full run that ran to
    its end is the state the team judged before the next fix. Reruns of failed or
    selected tests, live runs and incomplete runs (internal error, timeout,
    cancel: DESIGN says never shown as green) are left out; a cycle without such a
    run is a gap on the chart, not a zero.
    """
    chosen = None
    for run in runs:  # oldest first: the last match wins
        if (
            run.status == WorkStatus.FINISHED
            and not run.incomplete
            and run.scope == TestRun.Scope.ALL
            and run.summary_written
        ):
            chosen = run
    return chosen


def session_cycles(session: LoopSession) -> list[CycleRow]:
    """The session's cycles, oldest first, each with its runs and deployments: three queries in all."""
    rows = {c.pk: CycleRow(cycle=c) for c in Cycle.objects.filter(session=session).order_by("number")}
    runs = TestRun.objects.filter(session=session).only(*RUN_SUMMARY_FIELDS).order_by("created_at", "id")
    for run in runs:
        row = rows.get(run.cycle_id)
        if row is not None:
            run.cycle = row.cycle  # spare a query per run in templates and get_absolute_url users
            row.runs.append(run)
    deployments = (
        Deployment.objects.filter(cycle__session=session)
        .only("id", "cycle_id", "revision", "commit_sha", "status", "created_at", "started_at", "finished_at")
        .order_by("created_at", "id")
    )
    for deployment in deployments:
        row = rows.get(deployment.cycle_id)
        if row is not None:
            row.deployments.append(deployment)
    for row in rows.values():
        row.representative = representative_run(row.runs)
    return list(rows.values())


def chart_priority(session: LoopSession, cycles: list[CycleRow]) -> str:
    """The priority drawn as a second line: the session's goal priority, else P1 when runs report it."""
    if session.goal_priority:
        return session.goal_priority
    for row in cycles:
        if row.representative is not None and "P1" in (row.representative.by_priority or {}):
            return "P1"
    return ""


def trend_points(cycles: list[CycleRow], priority: str = "") -> list[CyclePoint]:
    """Plain rows for ``charts.trend_figure``: one per cycle, from its representative run."""
    points = []
    for row in cycles:
        run = row.representative
        if run is None:
            points.append(CyclePoint(cycle=row.cycle.number, pass_rate=None, mrr_at_risk=None))
            continue
        bucket = (run.by_priority or {}).get(priority) if priority else None
        points.append(
            CyclePoint(
                cycle=row.cycle.number,
                pass_rate=run.pass_rate,
                mrr_at_risk=run.mrr_at_risk,
                priority_pass_rate=bucket.get("pass_rate") if isinstance(bucket, dict) else None,
                run_label=run.label,
                run_id=run.pk,
            )
        )
    return points


def run_for_page(pk: int) -> TestRun:
    return get_object_or_404(
        TestRun.objects.select_related("session", "cycle", "environment", "deployment", "rerun_of", "triggered_by"),
        pk=pk,
    )


def run_signatures(run: TestRun, limit: int = 50) -> list[RunSignature]:
    """The run's failures grouped by signature, largest first; ``limit + 1`` rows tell whether there are more."""
    return list(
        RunSignature.objects.filter(run=run)
        .select_related("signature", "signature__category")
        .only(
            "id", "results", "tests", "modules", "run_id",
            "signature__id", "signature__title", "signature__status", "signature__error_type",
            "signature__first_seen_run_id", "signature__category__name", "signature__category__colour",
        )
        .order_by("-results", "signature_id")[: limit + 1]
    )


# Text a row of the results table shows of a traceback; the full text can be 64 KB per result.
DETAILS_PREVIEW_CHARS = 6_000


@dataclass(frozen=True, slots=True)
class ResultFilters:
    """The run page's results filters, read leniently from a query string: a bad value means "no filter"."""

    outcome: str = ""
    q: str = ""
    priority: str = ""
    suspect: bool = False

    @classmethod
    def from_query(cls, query: QueryDict) -> ResultFilters:
        outcome = query.get("outcome", "")
        return cls(
            outcome=outcome if outcome in Outcome.values else "",
            q=query.get("q", "").strip()[:200],
            priority=query.get("priority", "").strip()[:10],
            suspect=query.get("suspect", "") in ("1", "on", "true"),
        )

    @property
    def active(self) -> bool:
        return bool(self.outcome or self.q or self.priority or self.suspect)


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


def _cursor(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def result_page(
    run: TestRun,
    filters: ResultFilters,
    *,
    after: str | None = None,
    before: str | None = None,
    size: int = PAGE_SIZE,
) -> ResultPage:
    """One page of a run's results in id order, by keyset: ``id > after`` or ``id < before``, never OFFSET.

    With an outcome the query walks the ``result_run_outcome`` index (run, outcome,
    id) from the cursor and stops after ``size + 1`` rows, so page 2,000 of a
    100,000-result run costs what page 1 does. No COUNT(*): totals per outcome come
    from the run's summary.
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
    after_id, before_id = _cursor(after), _cursor(before)
    if before_id is not None and after_id is None:
        rows = list(qs.filter(id__lt=before_id).order_by("-id")[: size + 1])
        has_previous = len(rows) > size
        rows = rows[:size]
        rows.reverse()
        return ResultPage(rows=rows, has_next=True, has_previous=has_previous)
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    rows = list(qs.order_by("id")[: size + 1])
    return ResultPage(rows=rows[:size], has_next=len(rows) > size, has_previous=after_id is not None)


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


def signature_for_page(pk: int) -> FailureSignature:
    return get_object_or_404(
        FailureSignature.objects.select_related(
            "environment", "category", "merged_into", "first_seen_run__cycle", "last_seen_run__cycle"
        ),
        pk=pk,
    )


def signature_runs(signature: FailureSignature, limit: int = 50) -> list[RunSignature]:
    """The runs a signature appeared in, newest first (index runsig_signature_run)."""
    return list(
        RunSignature.objects.filter(signature=signature)
        .select_related("run", "run__cycle", "run__session")
        .only(
            "id", "results", "tests", "modules", "signature_id",
            "run__id", "run__label", "run__status", "run__created_at", "run__pass_rate", "run__incomplete",
            "run__cycle__id", "run__cycle__number", "run__session__id", "run__session__slug", "run__session__title",
        )
        .order_by("-run_id")[: limit + 1]
    )


def signature_samples(signature: FailureSignature, limit: int = 10) -> list[TestResult]:
    """A few recent results of the signature (index result_signature_run)."""
    return list(
        TestResult.objects.filter(signature=signature)
        .select_related("case")
        .defer("details", "properties", "case__markers")
        .annotate(details_preview=Substr("details", 1, DETAILS_PREVIEW_CHARS + 1))
        .order_by("-run_id", "-id")[:limit]
    )


def signature_analyses(signature: FailureSignature) -> list[Analysis]:
    return list(signature.analyses.select_related("author").prefetch_related("steps", "fixes").order_by("created_at"))


def test_case_for_page(pk: int) -> TestCase:
    return get_object_or_404(TestCase.objects.select_related("environment", "area"), pk=pk)


def test_case_history(case: TestCase, limit: int = 50) -> list[TestResult]:
    """The test's results across runs, newest run first (index result_case_run)."""
    return list(
        TestResult.objects.filter(case=case)
        .select_related("run", "run__cycle", "run__session", "signature")
        .only(
            "id", "outcome", "duration", "suspect", "message", "run_id", "case_id", "signature_id",
            "run__id", "run__label", "run__created_at", "run__status",
            "run__cycle__id", "run__cycle__number", "run__session__id", "run__session__slug", "run__session__title",
            "signature__id", "signature__title",
        )
        .order_by("-run_id", "-id")[:limit]
    )


def deployment_for_page(pk: int) -> Deployment:
    return get_object_or_404(
        Deployment.objects.select_related("environment", "cycle", "cycle__session", "triggered_by"), pk=pk
    )


def deployment_runs(deployment: Deployment, limit: int = 20) -> list[TestRun]:
    return list(deployment.runs.select_related("cycle").only(*RUN_SUMMARY_FIELDS, "cycle__number").order_by("-id")[:limit])


def deployment_fixes(deployment: Deployment) -> list[Fix]:
    return list(deployment.fixes.select_related("analysis__signature").order_by("created_at"))
