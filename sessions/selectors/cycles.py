"""A session's cycles and the figures drawn from them: the trend chart, cycles to green, the key-metrics table.

Each cycle is stood for by one run (``representative_run``). The session page and the Markdown export
both read these; the figures come from each run's summary columns, never from counting results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from ..charts import REASON_CHARS, CyclePoint
from ..models import Cycle, Deployment, LoopSession, RunSignature, TestRun, WorkStatus
from .columns import RUN_SUMMARY_FIELDS


@dataclass(slots=True)
class CycleRow:
    """A cycle with its deployments and runs (oldest first) and the run that represents it on the chart."""

    cycle: Cycle
    runs: list[TestRun] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    representative: TestRun | None = None


def representative_run(runs: list[TestRun]) -> TestRun | None:
    """The run that stands for a cycle on the trend chart: its latest counted full run.

    A cycle usually holds one deploy and one or more runs, and the later runs are
    retries of the same suite or reruns of its failures. Summing them counts the
    same tests twice and averaging mixes a 25-test P1 rerun with a 1,000-test
    suite, so neither says where the cycle ended. The latest full run that ran to
    its end is the state the team judged before the next fix. Reruns of failed or
    selected tests, live runs, incomplete runs (internal error, timeout,
    cancel: an incomplete run is never shown as green) and excluded runs (a target
    that was never reached) are left out; a cycle without such a run is a gap on the
    chart, not a zero.
    """
    chosen = None
    for run in runs:  # oldest first: the last match wins
        if run.counted and run.scope == TestRun.Scope.ALL:
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


def latest_representative(cycles: list[CycleRow]) -> TestRun | None:
    """The representative run of the latest cycle that has one: the state the session is in now."""
    return next((row.representative for row in reversed(cycles) if row.representative is not None), None)


def chart_priority(session: LoopSession, cycles: list[CycleRow]) -> str:
    """The priority drawn as a second line: the session's goal priority, else P1 when runs report it."""
    if session.goal_priority:
        return session.goal_priority
    for row in cycles:
        if row.representative is not None and "P1" in (row.representative.by_priority or {}):
            return "P1"
    return ""


def set_apart_note(run: TestRun) -> str | None:
    """Why a run that ended does not count, as the chart's hover says it; None for a counted or live run.

    "run 24 excluded: target unreachable: ..." or "run 25 incomplete (cancelled)".
    """
    if run.counted or run.is_live:
        return None
    if run.excluded:
        reason = " ".join((run.excluded_reason or "no reason given").split())
        if len(reason) > REASON_CHARS:
            reason = reason[: REASON_CHARS - 1] + "…"
        return f"run {run.pk} excluded: {reason}"
    if run.incomplete or run.status != WorkStatus.FINISHED:
        return f"run {run.pk} incomplete ({run.get_status_display().lower().replace('_', ' ')})"
    return None


def trend_points(cycles: list[CycleRow], priority: str = "") -> list[CyclePoint]:
    """Plain rows for ``charts.trend_figure``: one per cycle, from its representative (counted) run.

    Each point also carries the cycle's runs that ended without counting (``set_apart``), so the chart
    can show them apart: never as a value, a grey mark when the cycle has no counted run.
    """
    points = []
    for row in cycles:
        run = row.representative
        apart = tuple(note for note in map(set_apart_note, row.runs) if note)
        if run is None:
            points.append(CyclePoint(cycle=row.cycle.number, pass_rate=None, mrr_at_risk=None, set_apart=apart))
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
                set_apart=apart,
            )
        )
    return points


def goal_met(session: LoopSession, run: TestRun | None) -> bool:
    """Whether a run reached the session's goal (its pass rate, or that of the goal's priority)."""
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
    """How many cycles the loop took to first meet its goal, and whether its latest cycle still does.

    Only cycles with a counted run are turns of the loop here: a cycle whose runs were all excluded
    (a target never reached) or incomplete tested nothing.
    """
    counted = [row for row in cycles if row.representative is not None]
    for index, row in enumerate(counted, start=1):
        if goal_met(session, row.representative):
            latest = latest_representative(cycles)
            return GreenStatus(reached_at=row.cycle.number, cycles=index, green_now=goal_met(session, latest))
    return GreenStatus(reached_at=None, cycles=len(counted), green_now=False)


# -- the key-metrics table -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One figure of the key-metrics table; ``value`` None where the cycle has no run (or no figure).

    A pass rate carries its count (``passed`` of ``executed``), which the page writes under it.
    The template filters ``cell_value``, ``cell_count`` and ``table_change`` turn cells into text.
    """

    value: float | None
    passed: int | None = None
    executed: int | None = None


EMPTY = Cell(None)


@dataclass(slots=True)
class CycleTableRow:
    """A row of figures, one per cycle, and what changed from the first cycle to the last.

    ``kind`` says how the figures read (and is the row's css class): "rate" (a pass rate, its change in
    points), "count" (failing tests), "class" (failures of one class; "eliminated" when it fell to none)
    or "money" (MRR at risk).
    """

    label: str
    kind: str
    cells: list[Cell]
    first: float | None
    last: float | None
    eliminated: bool = False


@dataclass(slots=True)
class CycleTable:
    """The seed logs' "Key Success Metrics" table: rows of figures, one column per cycle, and the change."""

    cycles: list[int]
    rows: list[CycleTableRow]


def _rate(run: TestRun | None, bucket: dict | None = None) -> Cell:
    """A run's pass rate (or a priority bucket's) with its count, as the seed logs write it: 88.0% (22/25)."""
    if run is None:
        return EMPTY
    if bucket is not None:
        rate = bucket.get("pass_rate")
        executed = bucket.get("passed", 0) + bucket.get("failed", 0) + bucket.get("errors", 0)
        return EMPTY if rate is None else Cell(rate, bucket.get("passed", 0), executed)
    if run.pass_rate is None:
        return EMPTY
    # Quarantined results are out of the rate (services/summary.py), so out of its count too.
    return Cell(run.pass_rate, run.passed - run.quarantined_passed, run.executed - run.quarantined_executed)


def _number(value: int | float | Decimal | None) -> float | None:
    return None if value is None else float(value)


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
    table = [
        CycleTableRow(
            "Pass rate",
            "rate",
            [_rate(run) for _n, run in reps],
            first.pass_rate if first else None,
            last.pass_rate if last else None,
        )
    ]
    if priority:

        def bucket(run: TestRun | None) -> dict | None:
            b = (run.by_priority or {}).get(priority) if run is not None else None
            return b if isinstance(b, dict) else None

        table.append(
            CycleTableRow(
                f"{priority} pass rate",
                "rate",
                [_rate(run, bucket(run) or {}) for _n, run in reps],
                (bucket(first) or {}).get("pass_rate"),
                (bucket(last) or {}).get("pass_rate"),
            )
        )
    table.append(
        CycleTableRow(
            "Failing tests",
            "count",
            [Cell(run.failed + run.errors) if run is not None else EMPTY for _n, run in reps],
            float(first.failed + first.errors) if first else None,
            float(last.failed + last.errors) if last else None,
        )
    )
    for name, per_run in ranked:
        first_n = per_run.get(first.pk, 0) if first else None
        last_n = per_run.get(last.pk, 0) if last else None
        table.append(
            CycleTableRow(
                f"· {name}",
                "class",
                [Cell(per_run.get(run.pk, 0)) if run is not None else EMPTY for _n, run in reps],
                _number(first_n),
                _number(last_n),
                eliminated=bool(first_n and last_n == 0),
            )
        )
    table.append(
        CycleTableRow(
            "MRR at risk",
            "money",
            [Cell(float(run.mrr_at_risk)) if run is not None else EMPTY for _n, run in reps],
            _number(first.mrr_at_risk) if first else None,
            _number(last.mrr_at_risk) if last else None,
        )
    )
    return CycleTable(cycles=numbers, rows=table)
