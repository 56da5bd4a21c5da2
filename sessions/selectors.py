"""Reads for pages, charts and the API. They read pre-aggregated figures, never count results."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Substr
from django.http import QueryDict
from django.shortcuts import get_object_or_404

from .charts import CyclePoint, DurationPoint, MetricPoint, Occurrence
from .models import (
    Analysis,
    AnalysisEdit,
    Cycle,
    Deployment,
    FailureSignature,
    Fix,
    LoopSession,
    Outcome,
    RunSignature,
    SignatureEvent,
    SuccessCriterion,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
)
from .services.criteria import metric_status
from .services.flaky import flip_rate


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
    "pass_rate", "duration_s", "mrr_at_risk", "by_priority", "metrics",
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
    return _with_runs(session, rows, limited=False)


def recent_cycles(session: LoopSession, *, last: int, before: int | None = None) -> tuple[list[CycleRow], bool]:
    """The latest ``last`` cycles (numbered below ``before``), oldest first, with their runs and
    deployments, and whether older cycles exist: three queries whatever the length of the session."""
    cycles = Cycle.objects.filter(session=session)
    if before is not None:
        cycles = cycles.filter(number__lt=before)
    picked = list(cycles.order_by("-number")[: last + 1])
    rows = {c.pk: CycleRow(cycle=c) for c in reversed(picked[:last])}
    return _with_runs(session, rows, limited=True), len(picked) > last


def _with_runs(session: LoopSession, rows: dict[int, CycleRow], *, limited: bool) -> list[CycleRow]:
    runs = TestRun.objects.filter(session=session).only(*RUN_SUMMARY_FIELDS).order_by("created_at", "id")
    if limited:
        runs = runs.filter(cycle_id__in=list(rows))
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
    if limited:
        deployments = deployments.filter(cycle_id__in=list(rows))
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


def signature_analyses(signature: FailureSignature, merged_ids: list[int] | None = None) -> list[Analysis]:
    """The signature's analyses and those of signatures merged into it, oldest first (three queries)."""
    from django.db.models import Prefetch

    ids = [signature.pk, *(merged_ids or [])]
    fixes = Fix.objects.select_related("deployment", "verified_by").order_by("created_at", "id")
    return list(
        Analysis.objects.filter(signature_id__in=ids)
        .select_related("author")
        .prefetch_related("steps", Prefetch("fixes", queryset=fixes))
        .order_by("created_at", "id")
    )


def deployment_for_page(pk: int) -> Deployment:
    return get_object_or_404(
        Deployment.objects.select_related("environment", "cycle", "cycle__session", "triggered_by"), pk=pk
    )


def deployment_runs(deployment: Deployment, limit: int = 20) -> list[TestRun]:
    return list(deployment.runs.select_related("cycle").only(*RUN_SUMMARY_FIELDS, "cycle__number").order_by("-id")[:limit])


def deployment_fixes(deployment: Deployment) -> list[Fix]:
    return list(deployment.fixes.select_related("analysis__signature").order_by("created_at"))


def analysis_for_partial(pk: int) -> Analysis:
    """One analysis with its steps and fixes, for the partial an edit answers with (three queries)."""
    from django.db.models import Prefetch

    fixes = Fix.objects.select_related("deployment", "verified_by").order_by("created_at", "id")
    return get_object_or_404(
        Analysis.objects.select_related("author", "signature").prefetch_related("steps", Prefetch("fixes", queryset=fixes)),
        pk=pk,
    )


# -- signature page --------------------------------------------------------------------------------------

HISTORY_LIMIT = 40


def merged_into_signature(signature: FailureSignature, limit: int = 50) -> list[FailureSignature]:
    return list(
        FailureSignature.objects.filter(merged_into=signature)
        .only("id", "title", "fingerprint", "error_type", "merged_into_id")
        .order_by("id")[:limit]
    )


def signature_occurrences(signature: FailureSignature, limit: int = 120) -> list[Occurrence]:
    """Failing results per (session, cycle), summed from RunSignature rows: no result is counted."""
    rows = (
        RunSignature.objects.filter(signature=signature)
        .values("run__session__slug", "run__cycle__number")
        .annotate(results=Sum("results"), runs=Count("id"), last=Max("run_id"))
        .order_by("-last")[:limit]
    )
    out = [
        Occurrence(session=r["run__session__slug"], cycle=r["run__cycle__number"], results=r["results"], runs=r["runs"])
        for r in rows
    ]
    out.sort(key=lambda o: (o.session, o.cycle))
    return out


@dataclass(slots=True)
class HitTest:
    case_id: int
    nodeid: str
    module: str
    results: int


def signature_tests(signature: FailureSignature, *, sample: int = 2000, limit: int = 25) -> tuple[list[HitTest], list[tuple[str, int]]]:
    """The tests and modules the signature hit among its latest ``sample`` results (one bounded query)."""
    rows = (
        TestResult.objects.filter(signature=signature)
        .order_by("-run_id", "-id")
        .values_list("case_id", "case__nodeid", "case__module")[:sample]
    )
    tests: dict[int, HitTest] = {}
    modules: dict[str, int] = {}
    for case_id, nodeid, module in rows:
        hit = tests.get(case_id)
        if hit is None:
            hit = tests[case_id] = HitTest(case_id, nodeid, module, 0)
        hit.results += 1
        modules[module or "—"] = modules.get(module or "—", 0) + 1
    ranked = sorted(tests.values(), key=lambda h: (-h.results, h.nodeid))[:limit]
    return ranked, sorted(modules.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def signature_traceback(signature: FailureSignature) -> TestResult | None:
    """One full traceback: the latest result of the signature that has one."""
    return (
        TestResult.objects.filter(signature=signature)
        .exclude(details="")
        .select_related("case")
        .only("id", "run_id", "details", "message", "phase", "case__id", "case__nodeid")
        .order_by("-run_id", "-id")
        .first()
    )


def distinct_messages(samples: list[TestResult], limit: int = 5) -> list[str]:
    seen: list[str] = []
    for res in samples:
        if res.message and res.message not in seen:
            seen.append(res.message)
    return seen[:limit]


def analysis_history(analyses: list[Analysis], limit: int = HISTORY_LIMIT) -> dict[int, list[AnalysisEdit]]:
    """The latest edits of these analyses, grouped by analysis (one query for all)."""
    edits = (
        AnalysisEdit.objects.filter(analysis_id__in=[a.pk for a in analyses])
        .select_related("user")
        .order_by("-at", "-id")[:limit]
    )
    grouped: dict[int, list[AnalysisEdit]] = {}
    for edit in edits:
        grouped.setdefault(edit.analysis_id, []).append(edit)
    return grouped


def signature_events(signature: FailureSignature, limit: int = 20) -> list[SignatureEvent]:
    return list(SignatureEvent.objects.filter(signature=signature).select_related("user").order_by("-at", "-id")[:limit])


def merge_candidates(signature: FailureSignature, limit: int = 40) -> list[FailureSignature]:
    """Signatures this one could be merged into: same environment, not merged, most recently seen first."""
    return list(
        FailureSignature.objects.filter(environment_id=signature.environment_id, merged_into__isnull=True)
        .exclude(pk=signature.pk)
        .only("id", "title", "error_type", "result_count")
        .order_by(F("last_seen_at").desc(nulls_last=True), "-id")[:limit]
    )


# -- test page --------------------------------------------------------------------------------------------


def test_case_history(case: TestCase, limit: int = 50) -> list[TestResult]:
    """The test's results across runs, newest run first (index result_case_run), with what the page shows."""
    return list(
        TestResult.objects.filter(case=case)
        .select_related("run", "run__cycle", "run__session", "run__deployment", "signature")
        .only(
            "id", "outcome", "duration", "suspect", "message", "run_id", "case_id", "signature_id",
            "run__id", "run__label", "run__created_at", "run__status", "run__scope", "run__deployment_id",
            "run__cycle__id", "run__cycle__number", "run__session__id", "run__session__slug", "run__session__title",
            "run__deployment__id", "run__deployment__revision", "run__deployment__commit_sha",
            "signature__id", "signature__title", "signature__status",
        )
        .order_by("-run_id", "-id")[:limit]
    )


def test_case_for_page(pk: int) -> TestCase:
    return get_object_or_404(
        TestCase.objects.select_related("environment", "area", "flaky_run", "flaky_run__cycle"), pk=pk
    )


@dataclass(slots=True)
class TestFacts:
    strip: list[TestResult]  # oldest first
    durations: list[DurationPoint]
    flip_rate: float | None
    flips_in: int  # how many results the flip rate is over
    suspects: list[TestResult]
    signatures: list[FailureSignature]
    same_revision: list[tuple[str, str]]  # (revision, "passed and failed") seen in the history


def test_facts(history: list[TestResult], window: int = 30) -> TestFacts:
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
    return TestFacts(
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


# -- session page -------------------------------------------------------------------------------------------


def session_criteria(session: LoopSession) -> list[SuccessCriterion]:
    return list(
        SuccessCriterion.objects.filter(session=session)
        .select_related("updated_by")
        .order_by("position", "id")
    )


@dataclass(slots=True)
class BoardCard:
    signature_id: int
    title: str
    status: str
    category: str
    colour: str
    error_type: str
    results: int  # failing results in this session's runs
    runs: int
    last_run: int


BOARD_LIMIT = 300
BOARD_COLUMN = 12


def signature_board(session: LoopSession) -> tuple[list[tuple[str, str, list[BoardCard], int]], int]:
    """The session's signatures by status: [(status, label, cards, count)], total. Two queries."""
    rows = (
        RunSignature.objects.filter(run__session=session, signature__merged_into__isnull=True)
        .values(
            "signature_id", "signature__title", "signature__status", "signature__error_type",
            "signature__category__name", "signature__category__colour",
        )
        .annotate(results=Sum("results"), runs=Count("id"), last_run=Max("run_id"))
        .order_by("-last_run", "-results")[:BOARD_LIMIT]
    )  # fmt: skip
    counts = dict(
        FailureSignature.objects.filter(run_counts__run__session=session, merged_into__isnull=True)
        .values_list("status")
        .annotate(n=Count("id", distinct=True))
        .order_by()
    )
    columns: dict[str, list[BoardCard]] = {value: [] for value in FailureSignature.Status.values}
    for r in rows:
        cards = columns.setdefault(r["signature__status"], [])
        if len(cards) < BOARD_COLUMN:
            cards.append(
                BoardCard(
                    signature_id=r["signature_id"],
                    title=r["signature__title"],
                    status=r["signature__status"],
                    category=r["signature__category__name"] or "",
                    colour=r["signature__category__colour"] or "",
                    error_type=r["signature__error_type"],
                    results=r["results"],
                    runs=r["runs"],
                    last_run=r["last_run"],
                )
            )
    board = [
        (value, label, columns.get(value, []), counts.get(value, 0))
        for value, label in FailureSignature.Status.choices
    ]
    return board, sum(counts.values())


@dataclass(slots=True)
class CycleTable:
    """The seed logs' "Key Success Metrics" table: rows of figures, one column per cycle, and the change."""

    cycles: list[int]
    rows: list[tuple[str, str, list[str], str]]  # (label, css class, cells, change)


def _rate_cell(run: TestRun | None, bucket: dict | None = None) -> str:
    """"88.0% (22/25)", as the seed logs write it; the page puts the count on a second line."""
    if run is None:
        return "—"
    if bucket is not None:
        rate = bucket.get("pass_rate")
        executed = bucket.get("passed", 0) + bucket.get("failed", 0) + bucket.get("errors", 0)
        return "—" if rate is None else f"{rate:.1f}% ({bucket.get('passed', 0)}/{executed})"
    return "—" if run.pass_rate is None else f"{run.pass_rate:.1f}% ({run.passed}/{run.executed})"


def _change(first: float | None, last: float | None, unit: str, places: int = 1) -> str:
    if first is None or last is None:
        return "—"
    delta = last - first
    if unit == "$":
        return f"{'+' if delta >= 0 else '−'}${abs(delta):,.0f}"
    return f"{'+' if delta >= 0 else '−'}{abs(delta):.{places}f}{unit}"


def cycle_table(cycles: list[CycleRow], priority: str = "", limit_classes: int = 8) -> CycleTable:
    """Pass rate, failures by class (signature category, else error type) and MRR at risk per cycle.

    Figures come from each cycle's representative run; failures by class from its RunSignature rows
    (one query for all cycles).
    """
    reps = [(row.cycle.number, row.representative) for row in cycles]
    run_ids = [run.pk for _n, run in reps if run is not None]
    classes: dict[str, dict[int, int]] = {}
    if run_ids:
        rows = (
            RunSignature.objects.filter(run_id__in=run_ids)
            .values("run_id", "signature__category__name", "signature__error_type")
            .annotate(n=Sum("results"))
            .order_by()
        )
        for r in rows:
            name = r["signature__category__name"] or (r["signature__error_type"] or "unknown").rsplit(".", 1)[-1]
            per_run = classes.setdefault(name, {})
            per_run[r["run_id"]] = per_run.get(r["run_id"], 0) + r["n"]
    ranked = sorted(classes.items(), key=lambda kv: -sum(kv[1].values()))
    if len(ranked) > limit_classes:
        other: dict[int, int] = {}
        for _name, per_run in ranked[limit_classes - 1 :]:
            for run_id, n in per_run.items():
                other[run_id] = other.get(run_id, 0) + n
        ranked = ranked[: limit_classes - 1] + [("other", other)]
    numbers = [n for n, _run in reps]
    first = next((run for _n, run in reps if run is not None), None)
    last = next((run for _n, run in reversed(reps) if run is not None), None)
    table: list[tuple[str, str, list[str], str]] = []
    table.append(
        (
            "Pass rate",
            "rate",
            [_rate_cell(run) for _n, run in reps],
            _change(first.pass_rate if first else None, last.pass_rate if last else None, " pts"),
        )
    )
    if priority:
        def bucket(run: TestRun | None) -> dict | None:
            b = (run.by_priority or {}).get(priority) if run is not None else None
            return b if isinstance(b, dict) else None

        table.append(
            (
                f"{priority} pass rate",
                "rate",
                [_rate_cell(run, bucket(run) or {}) if run is not None else "—" for _n, run in reps],
                _change(
                    (bucket(first) or {}).get("pass_rate"), (bucket(last) or {}).get("pass_rate"), " pts"
                ),
            )
        )
    table.append(
        (
            "Failing tests",
            "count",
            [str(run.failed + run.errors) if run is not None else "—" for _n, run in reps],
            _change(
                float(first.failed + first.errors) if first else None,
                float(last.failed + last.errors) if last else None,
                "",
                0,
            ),
        )
    )
    for name, per_run in ranked:
        cells = [str(per_run.get(run.pk, 0)) if run is not None else "—" for _n, run in reps]
        first_n = per_run.get(first.pk, 0) if first else None
        last_n = per_run.get(last.pk, 0) if last else None
        change = "eliminated" if first_n and last_n == 0 else _change(
            float(first_n) if first_n is not None else None, float(last_n) if last_n is not None else None, "", 0
        )
        table.append((f"· {name}", "class", cells, change))
    table.append(
        (
            "MRR at risk",
            "money",
            [f"${float(run.mrr_at_risk):,.0f}" if run is not None else "—" for _n, run in reps],
            _change(
                float(first.mrr_at_risk) if first else None, float(last.mrr_at_risk) if last else None, "$"
            ),
        )
    )
    return CycleTable(cycles=numbers, rows=table)


def goal_met(session: LoopSession, run: TestRun | None) -> bool:
    if run is None:
        return False
    if session.goal_priority:
        bucket = (run.by_priority or {}).get(session.goal_priority)
        rate = bucket.get("pass_rate") if isinstance(bucket, dict) else None
    else:
        rate = run.pass_rate
    return rate is not None and rate >= session.goal_pass_rate


@dataclass(slots=True)
class GreenStatus:
    reached_at: int | None  # the cycle number where the goal was first met
    cycles: int  # cycles so far (or up to green)
    green_now: bool


def cycles_to_green(session: LoopSession, cycles: list[CycleRow]) -> GreenStatus:
    for index, row in enumerate(cycles, start=1):
        if goal_met(session, row.representative):
            latest = next((r.representative for r in reversed(cycles) if r.representative is not None), None)
            return GreenStatus(reached_at=row.cycle.number, cycles=index, green_now=goal_met(session, latest))
    return GreenStatus(reached_at=None, cycles=len(cycles), green_now=False)


@dataclass(slots=True)
class MetricRow:
    name: str
    value: float | None
    target: float | None
    lower_is_better: bool
    ok: bool | None


def metric_rows(run: TestRun | None, targets: dict) -> list[MetricRow]:
    """Each metric with a target first (in target order), then the others the run reported."""
    metrics = (run.metrics or {}) if run is not None else {}
    names = [n for n in (targets or {}) if isinstance(n, str)]
    names += sorted(n for n in metrics if n not in names)
    rows = []
    for name in names:
        raw = metrics.get(name)
        value = float(raw) if isinstance(raw, int | float) else None
        ok, target, lower = metric_status(value, (targets or {}).get(name))
        rows.append(MetricRow(name=name, value=value, target=target, lower_is_better=lower, ok=ok))
    return rows


def metric_series(cycles: list[CycleRow], targets: dict, limit: int = 4) -> list[tuple[str, list[MetricPoint], float | None, bool]]:
    """For each targeted metric: its value per cycle (from the representative runs)."""
    out = []
    for name, spec in list((targets or {}).items())[:limit]:
        _ok, target, lower = metric_status(None, spec)
        points = []
        for row in cycles:
            run = row.representative
            raw = (run.metrics or {}).get(name) if run is not None else None
            points.append(MetricPoint(cycle=row.cycle.number, value=float(raw) if isinstance(raw, int | float) else None))
        if any(p.value is not None for p in points):
            out.append((name, points, target, lower))
    return out


FLAKY_LIMIT = 15


def flaky_tests(session: LoopSession, limit: int = FLAKY_LIMIT) -> tuple[list[TestCase], int]:
    """The environment's flaky tests (index case_env_flaky), most recently caught first, and how many."""
    qs = TestCase.objects.filter(environment_id=session.environment_id, flaky_at__isnull=False, flip_rate__gt=0)
    rows = list(
        qs.select_related("flaky_run")
        .only(
            "id", "nodeid", "priority", "recent", "flip_rate", "flaky_key", "flaky_at", "flaky_run_id",
            "flaky_run__id", "flaky_run__label",
        )
        .order_by("-flaky_at", "-id")[: limit + 1]
    )
    count = len(rows) if len(rows) <= limit else qs.count()
    return rows[:limit], count


# -- comparing two runs -----------------------------------------------------------------------------------

FAILING = (Outcome.FAILED, Outcome.ERROR)
COMPARE_PAGE = 50
# A passed test is a duration regression when it took this much longer, in both ratio and seconds.
SLOWER_RATIO = 1.5
SLOWER_BY_S = 0.5

COMPARE_LISTS = {
    "new_failures": "New failures",
    "fixed": "Fixed",
    "still_failing": "Still failing",
    "new_tests": "New tests",
    "removed_tests": "Removed tests",
    "slower": "Duration regressions",
}


def previous_full_run(run: TestRun, look_back: int = 20) -> TestRun | None:
    """The run a run is compared with by default: the previous complete full run of its session.

    A session often alternates suites (the whole e2e suite, then the P1 subset): among the latest
    ``look_back`` earlier complete full runs, the most recent one of a similar size (half to twice as
    many tests) is taken, so that a P1 run is compared with the previous P1 run. Failing that, the
    most recent one.
    """
    earlier = list(
        TestRun.objects.filter(
            session_id=run.session_id, status=WorkStatus.FINISHED, incomplete=False, scope=TestRun.Scope.ALL
        )
        .filter(Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, pk__lt=run.pk))
        .select_related("session", "cycle")
        .only(*RUN_SUMMARY_FIELDS, "environment_id", "session__id", "session__slug", "session__title", "cycle__number")
        .order_by("-created_at", "-id")[:look_back]
    )
    similar = next((r for r in earlier if run.total / 2 <= r.total <= run.total * 2), None)
    return similar or (earlier[0] if earlier else None)


@dataclass(slots=True)
class CompareRow:
    """One test of a comparison list with its result in each run (None where the run did not have it)."""

    case: TestCase
    now: TestResult | None
    was: TestResult | None

    @property
    def slower_by(self) -> float | None:
        if self.now is None or self.was is None or self.now.duration is None or self.was.duration is None:
            return None
        return self.now.duration - self.was.duration


@dataclass(slots=True)
class CompareList:
    name: str
    label: str
    rows: list[CompareRow]
    count: int
    next_after: int | None


def _per_case_sql(table: str) -> str:
    """Per test, how each run saw it: one GROUP BY over both runs' results (placeholders: a × 5, b × 3, a, b)."""
    failing = "('failed', 'error')"
    return (
        "SELECT case_id, "
        "SUM(CASE WHEN run_id = %s THEN 1 ELSE 0 END) AS n, "
        "SUM(CASE WHEN run_id = %s AND outcome IN " + failing + " THEN 1 ELSE 0 END) AS nf, "
        "SUM(CASE WHEN run_id = %s AND outcome = 'passed' THEN 1 ELSE 0 END) AS np, "
        "MAX(CASE WHEN run_id = %s AND outcome = 'passed' THEN duration END) AS nd, "
        "MIN(CASE WHEN run_id = %s THEN id END) AS nid, "
        "SUM(CASE WHEN run_id = %s THEN 1 ELSE 0 END) AS w, "
        "SUM(CASE WHEN run_id = %s AND outcome IN " + failing + " THEN 1 ELSE 0 END) AS wf, "
        "MAX(CASE WHEN run_id = %s AND outcome = 'passed' THEN duration END) AS wd "
        f"FROM {table} WHERE run_id IN (%s, %s) GROUP BY case_id"
    )


# A list's condition on the per-test figures above (shared by the counts and the "slower" page).
_CONDITIONS = {
    "new_failures": "nf > 0 AND wf = 0",
    "fixed": "wf > 0 AND np > 0",
    "still_failing": "nf > 0 AND wf > 0",
    "new_tests": "n > 0 AND w = 0",
    "removed_tests": "w > 0 AND n = 0",
    "slower": f"nd > wd * {SLOWER_RATIO} AND nd >= wd + {SLOWER_BY_S}",
}


def _per_case_params(run: TestRun, base: TestRun) -> list[int]:
    a, b = run.pk, base.pk
    return [a, a, a, a, a, b, b, b, a, b]


def compare_counts(run: TestRun, base: TestRun) -> dict[str, int]:
    """How many tests each list holds, all six in one aggregation over the two runs' results.

    GROUP BY plans as a hash or sort aggregate, never as a nested loop, so it costs one pass over both
    runs whatever the planner believes about their sizes (a run ingested a second ago has no statistics).
    """
    table = connection.ops.quote_name(TestResult._meta.db_table)
    sums = ", ".join(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)" for cond in _CONDITIONS.values())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sums} FROM ({_per_case_sql(table)}) per_case", _per_case_params(run, base))
        values = cursor.fetchone()
    return {name: int(value or 0) for name, value in zip(_CONDITIONS, values, strict=True)}


def _case_ids(run_id: int, outcomes: tuple[str, ...] | None, after: int | None) -> QuerySet:
    qs = TestResult.objects.filter(run_id=run_id)
    if outcomes:
        qs = qs.filter(outcome__in=outcomes)
    if after is not None:
        qs = qs.filter(case_id__gt=after)
    return qs.values_list("case_id", flat=True).order_by()


def compare_case_ids(name: str, run: TestRun, base: TestRun, *, after: int | None, size: int) -> list[int]:
    """The tests of one list, a page in test-id order (the slowest first for "slower").

    Set operations (EXCEPT, INTERSECT) on the two runs' test ids: hashed or sorted by the database,
    never a nested loop, whatever its statistics say. Failure lists start from the failing results
    (index result_run_outcome), which are few.
    """
    a, b = run.pk, base.pk
    failing, passed = tuple(FAILING), (Outcome.PASSED,)
    if name == "slower":
        table = connection.ops.quote_name(TestResult._meta.db_table)
        sql = (
            f"SELECT case_id FROM ({_per_case_sql(table)}) per_case WHERE {_CONDITIONS['slower']} "
            f"ORDER BY nd - wd DESC, case_id LIMIT {int(size)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, _per_case_params(run, base))
            return [row[0] for row in cursor.fetchall()]
    if name == "new_failures":
        qs = _case_ids(a, failing, after).difference(_case_ids(b, failing, after))
    elif name == "still_failing":
        qs = _case_ids(a, failing, after).intersection(_case_ids(b, failing, after))
    elif name == "fixed":
        qs = _case_ids(b, failing, after).intersection(_case_ids(a, passed, after))
    elif name == "new_tests":
        qs = _case_ids(a, None, after).difference(_case_ids(b, None, after))
    elif name == "removed_tests":
        qs = _case_ids(b, None, after).difference(_case_ids(a, None, after))
    else:
        raise KeyError(name)
    return list(qs.order_by("case_id")[: size + 1])


def _compare_rows(case_ids: list[int], run: TestRun, base: TestRun) -> list[CompareRow]:
    """The page's tests with both runs' results: one query, a few index probes (index result_case_run)."""
    results = (
        TestResult.objects.filter(run_id__in=[run.pk, base.pk], case_id__in=case_ids)
        .select_related("case")
        .only(
            "id", "run_id", "case_id", "outcome", "duration", "suspect", "signature_id", "message",
            "case__id", "case__nodeid", "case__priority",
        )
        .order_by("id")
    )  # fmt: skip
    rows: dict[int, CompareRow] = {}
    for result in results:
        row = rows.setdefault(result.case_id, CompareRow(case=result.case, now=None, was=None))
        if result.run_id == run.pk and row.now is None:
            row.now = result
        elif result.run_id == base.pk and row.was is None:
            row.was = result
    return [rows[case_id] for case_id in case_ids if case_id in rows]


def compare_list(
    name: str,
    run: TestRun,
    base: TestRun,
    *,
    counts: dict[str, int],
    after: str | None = None,
    size: int = COMPARE_PAGE,
) -> CompareList:
    """One list of the comparison: a page of its tests (keyset on the test id) and its count.

    Two queries when the list is not empty (its test ids, then their results), none when it is.
    """
    count = counts.get(name, 0)
    if not count:
        return CompareList(name, COMPARE_LISTS[name], [], 0, None)
    cursor = _cursor(after)
    ids = compare_case_ids(name, run, base, after=cursor if name != "slower" else None, size=size)
    more = name != "slower" and len(ids) > size
    ids = ids[:size]
    return CompareList(name, COMPARE_LISTS[name], _compare_rows(ids, run, base), count, ids[-1] if more and ids else None)
