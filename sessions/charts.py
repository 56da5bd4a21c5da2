"""Plotly figures built from plain rows. No ORM here: selectors hand in rows, templates get a figure dict.

The dict goes to the page through ``json_script`` and ``static/js/charts.js``
draws it with plotly.js, so no chart needs an inline script.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

import plotly.graph_objects as go

# The palette of static/css/loopdash.css, so that the chart and the page agree.
PASS_COLOUR = "#2563eb"
PRIORITY_COLOUR = "#7c3aed"
MRR_COLOUR = "#f97316"
NEUTRAL_COLOUR = "#9ca3af"  # --faint: a figure that is not measured, or a run that does not count
GOAL_COLOUR = "#16a34a"
GRID_COLOUR = "#e5e7eb"
TEXT_COLOUR = "#374151"

# Hover text of the runs a cycle sets apart: at most this many runs, each reason cut at REASON_CHARS.
SET_APART_SHOWN = 3
REASON_CHARS = 120
HOVER_WIDTH = 56  # characters per line of that hover text

# -- round axes ----------------------------------------------------------------------------------------------


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``ticks`` ticks over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, ticks - 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)) + (1 if step / 10 ** math.floor(math.log10(step)) == 2.5 else 0))


def round_ticks(low: float, high: float, ticks: int = 5) -> list[float]:
    """Round tick values from a multiple of the step at or below ``low`` to one at or above ``high``."""
    if high < low:
        low, high = high, low
    step = nice_step(high - low, ticks)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    if last <= first:
        last = first + step
    count = round((last - first) / step)
    digits = _decimals(step)
    return [round(first + i * step, digits) for i in range(count + 1)]


def money_label(value: float) -> str:
    """A short round money tick: $0, $500, $50k, $1.2M, $3B (never SI's "m", which reads as million)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{sign}${value / size:,.4g}{suffix}"
    return f"{sign}${value:,.4g}"


def number_label(value: float) -> str:
    """A tick of a metric axis: 0.25, 40, 1,200."""
    return f"{value:,.6g}"


def _money_axis(values: Sequence[float | None]) -> dict:
    """The MRR axis: round dollar ticks from $0 up; only "$0" when every value is 0 or missing.

    Left to itself plotly gives an all-zero axis a range of 0 to 1 with SI ticks ("$200m" for 0.2
    dollars), which reads as millions at risk: the range and the ticks are therefore always explicit.
    """
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return {"range": [0, 1], "tickmode": "array", "tickvals": [0], "ticktext": ["$0"]}
    ticks = round_ticks(0, top, 5)
    return {
        "range": [0, ticks[-1]],
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [money_label(t) for t in ticks],
    }


def _pass_rate_ticks(floor: float) -> list[float]:
    """Ticks of the pass-rate axis up to 100 %: every 20 points on 0-100, finer on a raised floor.

    The first tick is the floor lowered to a multiple of the step, so that 100 % is always a tick.
    """
    span = 100 - floor
    step = 20 if span >= 60 else 10 if span >= 30 else 5 if span >= 15 else 2
    start = int(floor) // step * step
    return [float(v) for v in range(start, 101, step)]


@dataclass(frozen=True, slots=True)
class CyclePoint:
    """One cycle on the trend chart; ``None`` means "nothing to show" and is drawn as a gap.

    ``set_apart`` describes the cycle's runs that do not count (excluded or incomplete), one text per
    run ("run 24 excluded: target unreachable ..."): they never give the cycle a value; a cycle with
    no counted run but such runs gets a grey "x" at the bottom of the axis saying why.
    """

    cycle: int
    pass_rate: float | None
    mrr_at_risk: Decimal | float | None
    priority_pass_rate: float | None = None
    run_label: str = ""
    run_id: int | None = None
    set_apart: tuple[str, ...] = ()


def _money(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _floor_of(points: Sequence[CyclePoint], goal: float | None = None) -> float:
    """The bottom of the pass-rate axis: 0, or a round number below the lowest rate when all are high.

    Loops live between 80 % and 100 %; on a 0-100 axis an 84 → 92 % climb is a
    flat line. The axis stays labelled, so a raised floor misleads no one. The goal
    counts as a rate here, so that its line is always on the chart.
    """
    rates = [r for p in points for r in (p.pass_rate, p.priority_pass_rate) if r is not None]
    if not rates:
        return 0
    if goal is not None:
        rates.append(goal)
    return max(0, (int(min(rates) - 5) // 10) * 10)


def _set_apart_text(p: CyclePoint) -> str:
    """The hover lines of a cycle's runs that do not count, wrapped so that the box fits on the chart."""
    shown = [
        "<br>  ".join(escape(line) for line in textwrap.wrap(text, HOVER_WIDTH))
        for text in p.set_apart[:SET_APART_SHOWN]
    ]
    if len(p.set_apart) > SET_APART_SHOWN:
        shown.append(f"and {len(p.set_apart) - SET_APART_SHOWN} more")
    return "<br>".join(shown)


def trend_figure(
    points: Sequence[CyclePoint],
    *,
    priority: str = "",
    goal_pass_rate: float | None = None,
    mrr_tracked: bool = True,
) -> dict:
    """Pass rate (left axis, %) and MRR at risk (right axis, $) per cycle.

    The x values are cycle numbers, shown as whole numbers only. A cycle with no
    pass rate keeps ``None``, which plotly draws as a break in the line
    (``connectgaps`` off): a cycle that executed nothing is not a 0 % cycle. A
    cycle whose runs were all excluded or incomplete gets a grey "x" at the
    bottom of the pass-rate axis instead (the "Not counted" trace, hover: which
    runs and why), never a value on the line. Both axes have explicit round
    ticks. ``mrr_tracked`` False (no impact rule gives the environment's tests
    revenue, and no run has MRR at risk) draws the MRR series grey and says so:
    its $0 is "not measured", not good news.
    """
    cycles = [p.cycle for p in points]
    # Plotly reads a little HTML in hover text: escape data-derived strings so a label stays text.
    hover_runs = []
    for p in points:
        text = escape(f"run {p.run_id} · {p.run_label}") if p.run_id else "no counted run"
        if p.set_apart and p.run_id:
            text += "<br>not counted: " + _set_apart_text(p)
        hover_runs.append(text)
    priority = escape(priority)
    mrr_values = [_money(p.mrr_at_risk) for p in points]
    tracked = mrr_tracked or any(v for v in mrr_values if v)
    mrr_name = "MRR at risk" if tracked else "MRR at risk (no impact rules)"
    rate_ticks = _pass_rate_ticks(_floor_of(points, goal_pass_rate))
    floor = rate_ticks[0]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=cycles,
            y=mrr_values,
            name=mrr_name,
            yaxis="y2",
            marker={"color": MRR_COLOUR if tracked else NEUTRAL_COLOUR, "opacity": 0.35},
            customdata=hover_runs,
            hovertemplate=f"Cycle %{{x}}<br>{mrr_name} $%{{y:,.0f}}<br>%{{customdata}}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=cycles,
            y=[p.pass_rate for p in points],
            name="Pass rate",
            mode="lines+markers",
            connectgaps=False,
            cliponaxis=False,
            line={"color": PASS_COLOUR, "width": 3},
            marker={"size": 8},
            customdata=hover_runs,
            hovertemplate="Cycle %{x}<br>Pass rate %{y:.1f}%<br>%{customdata}<extra></extra>",
        )
    )
    if priority and any(p.priority_pass_rate is not None for p in points):
        fig.add_trace(
            go.Scatter(
                x=cycles,
                y=[p.priority_pass_rate for p in points],
                name=f"{priority} pass rate",
                mode="lines+markers",
                connectgaps=False,
                cliponaxis=False,
                line={"color": PRIORITY_COLOUR, "width": 2, "dash": "dot"},
                marker={"size": 7, "symbol": "diamond"},
                hovertemplate=f"Cycle %{{x}}<br>{priority} pass rate %{{y:.1f}}%<extra></extra>",
            )
        )
    apart = [p for p in points if p.set_apart and p.pass_rate is None]
    if apart:
        fig.add_trace(
            go.Scatter(
                x=[p.cycle for p in apart],
                y=[floor for _p in apart],
                name="Not counted",
                mode="markers",
                cliponaxis=False,
                marker={
                    "color": NEUTRAL_COLOUR,
                    "size": 11,
                    "symbol": "x-thin",
                    "line": {"width": 2.5, "color": NEUTRAL_COLOUR},
                },
                customdata=[_set_apart_text(p) for p in apart],
                hovertemplate="Cycle %{x}: no counted run<br>%{customdata}<extra></extra>",
            )
        )
    shapes = []
    if goal_pass_rate is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": goal_pass_rate,
                "y1": goal_pass_rate,
                "line": {"color": GOAL_COLOUR, "width": 1.5, "dash": "dash"},
            }
        )
    fig.update_layout(
        template="none",
        margin={"l": 56, "r": 64, "t": 16, "b": 48},
        height=340,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": "Inter, system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12, "color": TEXT_COLOUR},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="x unified",
        bargap=0.55,
        shapes=shapes,
        xaxis={
            "title": {"text": "Cycle"},
            "tickmode": "array",
            "tickvals": cycles,
            "ticktext": [str(c) for c in cycles],
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "title": {"text": "Pass rate (%)"},
            # A sliver beyond the ticks, so that a line at exactly 100 % (or at the floor) is not cut in half.
            "range": [floor - (100 - floor) * 0.015, 100 + (100 - floor) * 0.015],
            "tickmode": "array",
            "tickvals": rate_ticks,
            "ticktext": [f"{t:g}%" for t in rate_ticks],
            "automargin": True,
            "gridcolor": GRID_COLOUR,
            "zeroline": False,
        },
        yaxis2={
            "title": {"text": "MRR at risk ($)" if tracked else "MRR at risk ($): no impact rules"},
            "overlaying": "y",
            "side": "right",
            **_money_axis(mrr_values),
            "automargin": True,
            "showgrid": False,
            "zeroline": False,
        },
    )
    return _plain(fig)


# -- shared layout -------------------------------------------------------------------------------------------

SERIES_COLOURS = ["#2563eb", "#7c3aed", "#f97316", "#0891b2", "#db2777", "#65a30d"]
OUTCOME_COLOURS = {
    "passed": "#22c55e",
    "failed": "#ef4444",
    "error": "#f59e0b",
    "skipped": "#9ca3af",
    "xfailed": "#a78bfa",
    "xpassed": "#a78bfa",
}
TARGET_COLOUR = "#16a34a"


def _base_layout(height: int) -> dict:
    return {
        "margin": {"l": 56, "r": 24, "t": 16, "b": 44},
        "height": height,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "Inter, system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12, "color": TEXT_COLOUR},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "hovermode": "closest",
    }


def _plain(fig: go.Figure) -> dict:
    figure = fig.to_plotly_json()
    figure["layout"].pop("template", None)
    return figure


def _cycle_axis(cycles: Sequence[int]) -> dict:
    return {
        "title": {"text": "Cycle"},
        "tickmode": "array",
        "tickvals": list(cycles),
        "ticktext": [str(c) for c in cycles],
        "showgrid": False,
        "zeroline": False,
    }


# -- signature: occurrences per cycle -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A signature's failing results in one cycle of one session (summed RunSignature rows)."""

    session: str
    cycle: int
    results: int
    runs: int = 1


def occurrences_figure(rows: Sequence[Occurrence]) -> dict:
    """Failing results per cycle, one bar series per session (sessions share the cycle axis)."""
    sessions: list[str] = []
    for row in rows:
        if row.session not in sessions:
            sessions.append(row.session)
    # A plain figure dict, not go.Figure: plotly's validation of 120 bars cost the signature page 25 ms of
    # its 100 (docs/PERFORMANCE.md); the keys are those go.Bar would write.
    traces = []
    for i, session in enumerate(sessions):
        mine = [r for r in rows if r.session == session]
        traces.append(
            {
                "type": "bar",
                "x": [r.cycle for r in mine],
                "y": [r.results for r in mine],
                "name": escape(session),
                "marker": {"color": SERIES_COLOURS[i % len(SERIES_COLOURS)]},
                "customdata": [[r.runs] for r in mine],
                "hovertemplate": (
                    f"{escape(session)}<br>Cycle %{{x}}: %{{y}} results in %{{customdata[0]}} run(s)<extra></extra>"
                ),
            }
        )
    cycles = sorted({r.cycle for r in rows})
    layout = _base_layout(260)
    layout.update(
        barmode="group",
        bargap=0.35,
        showlegend=len(sessions) > 1,
        xaxis=_cycle_axis(cycles),
        yaxis={
            "title": {"text": "Failing results"},
            "rangemode": "tozero",
            "gridcolor": GRID_COLOUR,
            "zeroline": False,
        },
    )
    return {"data": traces, "layout": layout}


# -- test: durations across runs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DurationPoint:
    run_id: int
    label: str  # "cycle 3 · run 12"
    outcome: str
    duration: float | None
    suspect: bool = False


def duration_figure(points: Sequence[DurationPoint], *, suspect_limit: float | None = 0.01) -> dict:
    """A test's duration per run (oldest left), coloured by outcome; a dashed line at the suspect limit."""
    fig = go.Figure()
    x = [f"run {p.run_id}" for p in points]
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p.duration for p in points],
            mode="lines",
            line={"color": GRID_COLOUR, "width": 1.5},
            hoverinfo="skip",
            showlegend=False,
            connectgaps=False,
        )
    )
    for outcome in OUTCOME_COLOURS:
        mine = [p for p in points if p.outcome == outcome]
        if not mine:
            continue
        fig.add_trace(
            go.Scatter(
                x=[f"run {p.run_id}" for p in mine],
                y=[p.duration for p in mine],
                mode="markers",
                name=outcome,
                marker={
                    "color": OUTCOME_COLOURS[outcome],
                    "size": 9,
                    "symbol": ["x" if p.suspect else "circle" for p in mine],
                    "line": {"width": 0},
                },
                customdata=[escape(p.label) for p in mine],
                hovertemplate="%{customdata}<br>%{y:.3f} s<extra>" + outcome + "</extra>",
            )
        )
    shapes = []
    if suspect_limit is not None and points:
        shapes.append(
            {
                "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": suspect_limit, "y1": suspect_limit,
                "line": {"color": "#b45309", "width": 1, "dash": "dot"},
            }
        )  # fmt: skip
    layout = _base_layout(260)
    layout.update(
        shapes=shapes,
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": x, "showgrid": False, "tickangle": -45},
        yaxis={"title": {"text": "Duration (s)"}, "rangemode": "tozero", "gridcolor": GRID_COLOUR, "zeroline": False},
    )
    fig.update_layout(**layout)
    return _plain(fig)


# -- metrics against their targets --------------------------------------------------------------------------


def _metric_axis(values: Sequence[float | None], target: float | None) -> dict:
    """A metric axis with round ticks spanning the values and the target, with a little room around them.

    It does not go below 0 when nothing is negative (a latency of -10 ms is no reading).
    """
    seen = [v for v in values if v is not None] + ([target] if target is not None else [])
    if not seen:
        return {"rangemode": "tozero"}
    low, high = min(seen), max(seen)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    if min(seen) >= 0:
        low = max(0.0, low)
    ticks = round_ticks(low, high, 5)
    return {
        "range": [ticks[0], ticks[-1]],
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [number_label(t) for t in ticks],
    }


@dataclass(frozen=True, slots=True)
class MetricPoint:
    cycle: int
    value: float | None


def metric_figure(
    name: str, points: Sequence[MetricPoint], *, target: float | None, lower_is_better: bool = True
) -> dict:
    """One metric's median per cycle with its target as a dashed line; a missing value is a gap.

    The axis is scaled to the values *and* the target (round ticks around both), so the target line is
    always on the chart and a 42 → 62 ms change is not a flat line on a 0-70 axis.
    """
    cycles = [p.cycle for p in points]
    label = escape(name)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=cycles,
            y=[p.value for p in points],
            name=label,
            mode="lines+markers",
            connectgaps=False,
            cliponaxis=False,
            line={"color": PASS_COLOUR, "width": 2.5},
            marker={"size": 7},
            hovertemplate=f"Cycle %{{x}}<br>{label} %{{y:.4g}}<extra></extra>",
        )
    )
    axis = _metric_axis([p.value for p in points], target)
    shapes, annotations = [], []
    if target is not None:
        shapes.append(
            {
                "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": target, "y1": target,
                "line": {"color": TARGET_COLOUR, "width": 1.5, "dash": "dash"},
            }
        )  # fmt: skip
        # The label sits on the side of the line with room: above it in the lower half of the axis.
        low, high = axis.get("range", [0, 0])
        above = target <= (low + high) / 2
        annotations.append(
            {
                "xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": target,
                "yanchor": "bottom" if above else "top",
                "text": f"target {'≤' if lower_is_better else '≥'} {target:g}", "showarrow": False,
                "font": {"size": 11, "color": TARGET_COLOUR},
            }
        )  # fmt: skip
    layout = _base_layout(220)
    layout.update(
        showlegend=False,
        shapes=shapes,
        annotations=annotations,
        margin={"l": 56, "r": 16, "t": 8, "b": 40},
        xaxis=_cycle_axis(cycles),
        yaxis={
            "title": {"text": label},
            **axis,
            "gridcolor": GRID_COLOUR,
            "zeroline": False,
            "automargin": True,
        },
    )
    fig.update_layout(**layout)
    return _plain(fig)
