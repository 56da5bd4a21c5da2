"""Plotly figures built from plain rows. No ORM here: selectors hand in rows, templates get a figure dict.

The dict goes to the page through ``json_script`` and ``static/js/charts.js``
draws it with plotly.js, so no chart needs an inline script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

import plotly.graph_objects as go

# The palette of static/css/loopdash.css, so that the chart and the page agree.
PASS_COLOUR = "#2563eb"
PRIORITY_COLOUR = "#7c3aed"
MRR_COLOUR = "#f97316"
GOAL_COLOUR = "#16a34a"
GRID_COLOUR = "#e5e7eb"
TEXT_COLOUR = "#374151"


@dataclass(frozen=True, slots=True)
class CyclePoint:
    """One cycle on the trend chart; ``None`` means "nothing to show" and is drawn as a gap."""

    cycle: int
    pass_rate: float | None
    mrr_at_risk: Decimal | float | None
    priority_pass_rate: float | None = None
    run_label: str = ""
    run_id: int | None = None


def _money(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _floor_of(points: Sequence[CyclePoint]) -> float:
    """The bottom of the pass-rate axis: 0, or a round number below the lowest rate when all are high.

    Loops live between 80 % and 100 %; on a 0-100 axis an 84 → 92 % climb is a
    flat line. The axis stays labelled, so a raised floor misleads no one.
    """
    rates = [r for p in points for r in (p.pass_rate, p.priority_pass_rate) if r is not None]
    if not rates:
        return 0
    return max(0, (int(min(rates) - 5) // 10) * 10)


def trend_figure(
    points: Sequence[CyclePoint],
    *,
    priority: str = "",
    goal_pass_rate: float | None = None,
) -> dict:
    """Pass rate (left axis, %) and MRR at risk (right axis, $) per cycle.

    The x values are cycle numbers, shown as whole numbers only. A cycle with no
    pass rate keeps ``None``, which plotly draws as a break in the line
    (``connectgaps`` off): a cycle that executed nothing is not a 0 % cycle.
    """
    cycles = [p.cycle for p in points]
    # Plotly reads a little HTML in hover text: escape data-derived strings so a label stays text.
    hover_runs = [escape(f"run {p.run_id} · {p.run_label}") if p.run_id else "no complete run" for p in points]
    priority = escape(priority)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=cycles,
            y=[_money(p.mrr_at_risk) for p in points],
            name="MRR at risk",
            yaxis="y2",
            marker={"color": MRR_COLOUR, "opacity": 0.35},
            customdata=hover_runs,
            hovertemplate="Cycle %{x}<br>MRR at risk $%{y:,.0f}<br>%{customdata}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=cycles,
            y=[p.pass_rate for p in points],
            name="Pass rate",
            mode="lines+markers",
            connectgaps=False,
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
                line={"color": PRIORITY_COLOUR, "width": 2, "dash": "dot"},
                marker={"size": 7, "symbol": "diamond"},
                hovertemplate=f"Cycle %{{x}}<br>{priority} pass rate %{{y:.1f}}%<extra></extra>",
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
            "range": [_floor_of(points), 101],
            "ticksuffix": "%",
            "automargin": True,
            "gridcolor": GRID_COLOUR,
            "zeroline": False,
        },
        yaxis2={
            "title": {"text": "MRR at risk ($)"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "tickprefix": "$",
            "tickformat": ".3~s",
            "automargin": True,
            "showgrid": False,
            "zeroline": False,
        },
    )
    figure = fig.to_plotly_json()
    # "none" still serialises as an empty template object; drop it to keep the page small.
    figure["layout"].pop("template", None)
    return figure


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
    fig = go.Figure()
    for i, session in enumerate(sessions):
        mine = [r for r in rows if r.session == session]
        fig.add_trace(
            go.Bar(
                x=[r.cycle for r in mine],
                y=[r.results for r in mine],
                name=escape(session),
                marker={"color": SERIES_COLOURS[i % len(SERIES_COLOURS)]},
                customdata=[[r.runs] for r in mine],
                hovertemplate=f"{escape(session)}<br>Cycle %{{x}}: %{{y}} results in %{{customdata[0]}} run(s)<extra></extra>",
            )
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
    fig.update_layout(**layout)
    return _plain(fig)


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


@dataclass(frozen=True, slots=True)
class MetricPoint:
    cycle: int
    value: float | None


def metric_figure(
    name: str, points: Sequence[MetricPoint], *, target: float | None, lower_is_better: bool = True
) -> dict:
    """One metric's median per cycle with its target as a dashed line; a missing value is a gap."""
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
            line={"color": PASS_COLOUR, "width": 2.5},
            marker={"size": 7},
            hovertemplate=f"Cycle %{{x}}<br>{label} %{{y:.4g}}<extra></extra>",
        )
    )
    shapes, annotations = [], []
    if target is not None:
        shapes.append(
            {
                "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": target, "y1": target,
                "line": {"color": TARGET_COLOUR, "width": 1.5, "dash": "dash"},
            }
        )  # fmt: skip
        annotations.append(
            {
                "xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": target, "yanchor": "bottom",
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
            "rangemode": "tozero",
            "gridcolor": GRID_COLOUR,
            "zeroline": False,
            "automargin": True,
        },
    )
    fig.update_layout(**layout)
    return _plain(fig)
