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
