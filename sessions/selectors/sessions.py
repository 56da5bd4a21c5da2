"""The session list and the session page: cycles and runs, the trend, criteria, the signature board, flaky tests.

The trend and everything else built from all of a session's cycles is cached until its runs change
(``sessions.cache.session_trend``); the rest of the page is bounded slices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils.html import json_script

from .. import cache as page_cache
from ..charts import metric_figure, trend_figure
from ..models import (
    FailureSignature,
    ImpactRule,
    LoopSession,
    RunSignature,
    SessionEvent,
    SuccessCriterion,
    TestCase,
    TestRun,
)
from .columns import RUN_SUMMARY_FIELDS
from .cycles import (
    CycleRow,
    chart_priority,
    cycle_table,
    cycles_to_green,
    latest_representative,
    recent_cycles,
    session_cycles,
    trend_points,
)
from .metrics import metric_rows, metric_series

SESSION_LIST_LIMIT = 200
SESSION_CYCLE_ROWS = 30  # cycles in the "Cycles and runs" table; older ones one link away
CYCLE_TABLE_COLUMNS = 12  # cycles in the "Key metrics per cycle" table
BOARD_LIMIT = 300
BOARD_COLUMN = 12
FLAKY_LIMIT = 15
ACTIVITY_LIMIT = 10


# -- the session list ----------------------------------------------------------------------------------------


def sessions_for_list() -> QuerySet[LoopSession]:
    """Sessions with their environment and latest run in one query (the denormalised ``latest_run``)."""
    latest = [f"latest_run__{name}" for name in RUN_SUMMARY_FIELDS if name != "id"]
    return (
        LoopSession.objects.select_related("environment", "latest_run")
        .only(
            "id",
            "title",
            "slug",
            "status",
            "created_at",
            "cycle_count",
            "goal_pass_rate",
            "goal_priority",
            "environment__name",
            "latest_run__id",
            *latest,
        )
        .order_by("-created_at", "-id")
    )


def sessions_list_page() -> dict:
    """The context of the session list: the latest sessions, newest first."""
    return {"sessions": list(sessions_for_list()[:SESSION_LIST_LIMIT])}


# -- the session page ----------------------------------------------------------------------------------------


def mrr_tracked_rule() -> Exists:
    """Whether an impact rule gives the session's environment's tests a business area with revenue.

    Without one, MRR at risk is always $0 because nothing is measured, not because nothing is at risk:
    the page then shows it neutral and says so (``mrr_tracked`` on the session, no extra query).
    """
    return Exists(
        ImpactRule.objects.filter(
            Q(environment_id=OuterRef("environment_id")) | Q(environment__isnull=True), area__mrr__gt=0
        )
    )


def session_for_page(slug: str) -> LoopSession:
    return get_object_or_404(
        LoopSession.objects.select_related("environment", "latest_run").annotate(mrr_tracked=mrr_tracked_rule()),
        slug=slug,
    )


def session_criteria(session: LoopSession) -> list[SuccessCriterion]:
    return list(
        SuccessCriterion.objects.filter(session=session).select_related("updated_by").order_by("position", "id")
    )


def criterion_for_edit(pk: int) -> SuccessCriterion:
    """A criterion with its session and environment, which the criteria section shows after the write."""
    return get_object_or_404(SuccessCriterion.objects.select_related("session__environment"), pk=pk)


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
    new: bool = False  # first seen in the session's latest counted cycle (selectors/novelty.py)


# The board shows what counted runs say about the product: not signatures seen only in excluded or
# incomplete runs, nor loopdash's own (a test cut off by a cancel).
_BOARD_FIELDS = (
    "id", "title", "status", "error_type", "merged_into_id", "internal", "category__name", "category__colour",
)  # fmt: skip


def _board_totals(session: LoopSession) -> list[dict]:
    """Every signature of the session's counted runs with its sums: the one part of the board that grows
    with the history (it groups all the session's RunSignature rows: 50 ms at 3,663 runs)."""
    return list(
        RunSignature.objects.filter(run__session=session, run__counted=True)
        .values("signature_id")
        .annotate(results=Sum("results"), runs=Count("id"), last_run=Max("run_id"), first_cycle=Min("run__cycle__number"))
        .order_by()
    )  # fmt: skip


def signature_board(
    session: LoopSession, version: str | None = None
) -> tuple[list[tuple[str, str, list[BoardCard], int]], int]:
    """The session's signatures by status: [(status, label, cards, count)], total. Two queries.

    The sums per signature are cached under the session's runs version (``sessions.cache``): they change
    only when its runs do, or when a merge moves a signature's rows, which the fresh read of the
    signatures' titles and statuses notices (a signature merged away or gone): the sums are then counted
    again. Only signatures that counted runs show, and none of loopdash's own.
    """
    key = page_cache.make_key("board", session.pk, version or page_cache.session_runs_version(session))
    totals = page_cache.cached(key, lambda: _board_totals(session))
    fields = {
        f["id"]: f
        for f in FailureSignature.objects.filter(pk__in=[t["signature_id"] for t in totals]).values(*_BOARD_FIELDS)
    }
    if len(fields) < len(totals) or any(f["merged_into_id"] for f in fields.values()):
        page_cache.forget(key)  # a merge or a deletion since they were cached
        totals = page_cache.cached(key, lambda: _board_totals(session))
        fields = {
            f["id"]: f
            for f in FailureSignature.objects.filter(pk__in=[t["signature_id"] for t in totals]).values(*_BOARD_FIELDS)
        }
    shown = [
        t for t in totals
        if t["signature_id"] in fields and not fields[t["signature_id"]]["merged_into_id"] and not fields[t["signature_id"]]["internal"]
    ]  # fmt: skip
    current = TestRun.objects.filter(session=session, counted=True).aggregate(n=Max("cycle__number"))["n"]
    counts: dict[str, int] = {}
    for t in shown:
        status = fields[t["signature_id"]]["status"]
        counts[status] = counts.get(status, 0) + 1
    shown.sort(key=lambda t: (-t["last_run"], -t["results"]))
    columns: dict[str, list[BoardCard]] = {value: [] for value in FailureSignature.Status.values}
    for t in shown[:BOARD_LIMIT]:
        f = fields[t["signature_id"]]
        cards = columns.setdefault(f["status"], [])
        if len(cards) < BOARD_COLUMN:
            cards.append(
                BoardCard(
                    signature_id=f["id"],
                    title=f["title"],
                    status=f["status"],
                    category=f["category__name"] or "",
                    colour=f["category__colour"] or "",
                    error_type=f["error_type"],
                    results=t["results"],
                    runs=t["runs"],
                    last_run=t["last_run"],
                    new=current is not None and t["first_cycle"] == current,
                )
            )
    for cards in columns.values():
        cards.sort(key=lambda c: not c.new)  # new first; stable, so the most recent next
    board = [
        (value, label, columns.get(value, []), counts.get(value, 0)) for value, label in FailureSignature.Status.choices
    ]
    return board, sum(counts.values())


def flaky_tests(session: LoopSession, limit: int = FLAKY_LIMIT) -> tuple[list[TestCase], int]:
    """The environment's flaky tests (index case_env_flaky), most recently caught first, and how many."""
    qs = TestCase.objects.filter(environment_id=session.environment_id, flaky_at__isnull=False, flip_rate__gt=0)
    rows = list(
        qs.select_related("flaky_run")
        .only(
            "id",
            "nodeid",
            "priority",
            "recent",
            "flip_rate",
            "flaky_key",
            "flaky_at",
            "flaky_run_id",
            "flaky_run__id",
            "flaky_run__label",
        )
        .order_by("-flaky_at", "-id")[: limit + 1]
    )
    count = len(rows) if len(rows) <= limit else qs.count()
    return rows[:limit], count


def session_activity(session: LoopSession, limit: int = ACTIVITY_LIMIT) -> list[SessionEvent]:
    """The session's latest events (who excluded or included which run, and why), newest first: one query."""
    return list(
        SessionEvent.objects.filter(session=session)
        .select_related("user")
        .only("id", "session_id", "run_id", "action", "detail", "created_at", "user__id", "user__username")
        .order_by("-created_at", "-id")[:limit]
    )


def session_overview(session: LoopSession, cycles: list[CycleRow]) -> dict:
    """What the session page builds from all of its cycles (the charts, cycles to green, counts).

    Cached by ``sessions.cache.session_trend`` until the session's runs change: with 500 cycles it
    reads every run and builds 500-point figures (about 50 ms at 1,000,000 results).
    """
    priority = chart_priority(session, cycles)
    targets = session.environment.metric_targets or {}
    latest = latest_representative(cycles)
    figure = trend_figure(
        trend_points(cycles, priority),
        priority=priority,
        goal_pass_rate=session.goal_pass_rate,
        mrr_tracked=getattr(session, "mrr_tracked", True),
    )
    metric_charts = [
        {"id": f"metric-{i}", "name": name, "figure": metric_figure(name, points, target=target, lower_is_better=lower)}
        for i, (name, points, target, lower) in enumerate(metric_series(cycles, targets))
    ]
    for chart in metric_charts:
        chart["script"] = json_script(chart["figure"], chart["id"])
    return {
        "figure": figure,
        # Serialised once with the figure, not on every request: with 2,750 cycles that took half the page's time.
        "figure_script": json_script(figure, "trend-figure"),
        "has_chart": bool(cycles),
        "chart_priority": priority,
        "metric_charts": metric_charts,
        "green": cycles_to_green(session, cycles),
        "run_count": sum(len(row.runs) for row in cycles),
        "latest_id": latest.pk if latest is not None else None,
    }


def criteria_section(session: LoopSession, *, can_annotate: bool, editing_criterion: int | None) -> dict:
    """The context of the criteria section (the partial a criterion's write answers with)."""
    return {
        "session": session,
        "criteria": session_criteria(session),
        "criterion_kinds": SuccessCriterion.Kind.choices,
        "can_annotate": can_annotate,
        "editing_criterion": editing_criterion,
    }


def session_page(
    session: LoopSession, *, cycles_before: int | None, editing_criterion: int | None, can_annotate: bool
) -> dict:
    """The context of the session page: the latest cycles (or those numbered below ``cycles_before``)."""
    targets = session.environment.metric_targets or {}
    every: list[CycleRow] = []

    def build() -> dict:
        every.extend(session_cycles(session))
        return session_overview(session, every)

    version = page_cache.session_runs_version(session)  # one query: the trend and the board's sums follow it
    overview = page_cache.session_trend(
        session,
        build,
        json.dumps(targets, sort_keys=True, default=str),
        getattr(session, "mrr_tracked", True),
        version=version,
    )
    if every and cycles_before is None:  # built in this request: the latest cycles are at hand
        cycles, older = every[-SESSION_CYCLE_ROWS:], len(every) > SESSION_CYCLE_ROWS
    else:
        cycles, older = recent_cycles(session, last=SESSION_CYCLE_ROWS, before=cycles_before)
    reps = {row.representative.pk: row.representative for row in cycles if row.representative is not None}
    latest = reps.get(overview["latest_id"])
    if latest is None and overview["latest_id"] is not None:
        latest = TestRun.objects.filter(pk=overview["latest_id"]).only("id", "metrics").first()
    board, board_total = signature_board(session, version)
    flaky, flaky_count = flaky_tests(session)
    return {
        **{key: value for key, value in overview.items() if key != "latest_id"},
        **criteria_section(session, can_annotate=can_annotate, editing_criterion=editing_criterion),
        "cycles": list(reversed(cycles)),  # newest cycle first in the table
        "older_cycles": cycles[0].cycle.number if older and cycles else None,
        "cycles_before": cycles_before,
        "cycle_table": cycle_table(cycles[-CYCLE_TABLE_COLUMNS:], overview["chart_priority"]),
        "board": board,
        "board_total": board_total,
        "board_lead": [c for _v, _l, cards, _n in board for c in cards if c.new or c.status == "regressed"],
        "flaky": flaky,
        "flaky_count": flaky_count,
        "activity": session_activity(session),
        "metrics": metric_rows(latest, targets),
        "metrics_run": latest,
    }
