"""The trend chart builder (plain rows in, figure dict out) and the plotly.js it is drawn with."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import plotly
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from sessions.charts import CyclePoint, trend_figure


def _points() -> list[CyclePoint]:
    return [
        CyclePoint(
            cycle=1,
            pass_rate=84.0,
            mrr_at_risk=Decimal("120000.00"),
            priority_pass_rate=80.0,
            run_label="p1.xml",
            run_id=11,
        ),
        CyclePoint(cycle=2, pass_rate=None, mrr_at_risk=None),
        CyclePoint(
            cycle=4, pass_rate=92.0, mrr_at_risk=Decimal("0"), priority_pass_rate=100.0, run_label="p1.xml", run_id=14
        ),
    ]


def _trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t["name"] == name)


def test_it_puts_pass_rate_left_and_mrr_right() -> None:
    figure = trend_figure(_points())
    layout = figure["layout"]
    assert layout["yaxis"]["title"]["text"] == "Pass rate (%)"
    assert layout["yaxis2"]["title"]["text"] == "MRR at risk ($)"
    assert layout["yaxis2"]["overlaying"] == "y" and layout["yaxis2"]["side"] == "right"
    assert _trace(figure, "Pass rate").get("yaxis", "y") == "y"
    assert _trace(figure, "MRR at risk")["yaxis"] == "y2"


def test_x_is_the_cycle_numbers_with_whole_ticks() -> None:
    figure = trend_figure(_points())
    for trace in figure["data"]:
        assert trace["x"] == [1, 2, 4]
    assert figure["layout"]["xaxis"]["tickvals"] == [1, 2, 4]


def test_a_missing_pass_rate_stays_a_gap_not_zero() -> None:
    figure = trend_figure(_points(), priority="P1")
    line = _trace(figure, "Pass rate")
    assert line["y"] == [84.0, None, 92.0]
    assert line["connectgaps"] is False
    assert _trace(figure, "P1 pass rate")["y"] == [80.0, None, 100.0]
    assert _trace(figure, "MRR at risk")["y"] == [120000.0, None, 0.0]
    # Through JSON, as the page gets it: null, not 0.
    assert json.loads(json.dumps(figure, cls=DjangoJSONEncoder))["data"][1]["y"][1] is None


def test_the_priority_line_appears_only_when_asked_and_known() -> None:
    assert [t["name"] for t in trend_figure(_points())["data"]] == ["MRR at risk", "Pass rate"]
    unknown = [CyclePoint(cycle=1, pass_rate=50.0, mrr_at_risk=0)]
    assert len(trend_figure(unknown, priority="P1")["data"]) == 2


def test_the_pass_rate_axis_floor_is_raised_only_when_every_rate_is_high() -> None:
    assert trend_figure(_points())["layout"]["yaxis"]["range"] == [70, 101]
    low = [CyclePoint(cycle=1, pass_rate=3.0, mrr_at_risk=0), CyclePoint(cycle=2, pass_rate=100.0, mrr_at_risk=0)]
    assert trend_figure(low)["layout"]["yaxis"]["range"] == [0, 101]
    assert trend_figure([CyclePoint(cycle=1, pass_rate=None, mrr_at_risk=0)])["layout"]["yaxis"]["range"] == [0, 101]


def test_the_goal_is_a_dashed_line_on_the_pass_rate_axis() -> None:
    shapes = trend_figure(_points(), goal_pass_rate=95.0)["layout"]["shapes"]
    assert shapes[0]["yref"] == "y" and shapes[0]["y0"] == shapes[0]["y1"] == 95.0


def test_data_labels_are_escaped_for_plotly_hover_html() -> None:
    points = [CyclePoint(cycle=1, pass_rate=1.0, mrr_at_risk=0, run_label="<img src=x onerror=alert(1)>", run_id=3)]
    figure = trend_figure(points, priority="<b>P1</b>")
    dumped = json.dumps(figure)
    assert "<img" not in dumped and "&lt;img" in dumped
    assert "<b>P1" not in dumped


def test_no_cycles_is_an_empty_chart_not_an_error() -> None:
    figure = trend_figure([])
    assert all(trace["x"] == [] for trace in figure["data"])


def test_plotly_js_is_served_from_the_installed_package() -> None:
    """No copy in the repository, no CDN: the static finder exposes the package's own bundle."""
    from django.contrib.staticfiles import finders

    found = finders.find("vendor/plotly.min.js")
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert found and Path(found) == bundled
    assert not (Path(settings.BASE_DIR) / "static" / "js" / "plotly.min.js").exists()


# -- triage charts ------------------------------------------------------------------------------------------

from sessions.charts import (  # noqa: E402
    DurationPoint,
    MetricPoint,
    Occurrence,
    duration_figure,
    metric_figure,
    occurrences_figure,
)


def test_occurrences_are_bars_per_cycle_one_series_per_session() -> None:
    rows = [Occurrence("golden", 1, 26, 2), Occurrence("golden", 2, 19), Occurrence("<b>other</b>", 2, 3)]
    figure = occurrences_figure(rows)
    assert [t["type"] for t in figure["data"]] == ["bar", "bar"]
    golden = figure["data"][0]
    assert golden["x"] == [1, 2] and golden["y"] == [26, 19]
    assert figure["layout"]["showlegend"] is True
    assert figure["layout"]["xaxis"]["tickvals"] == [1, 2]
    assert "<b>other" not in json.dumps(figure)


def test_durations_are_coloured_by_outcome_with_the_suspect_line() -> None:
    points = [
        DurationPoint(1, "cycle 1 · run 1", "failed", 4.5),
        DurationPoint(2, "cycle 2 · run 2", "passed", 0.001, suspect=True),
        DurationPoint(3, "<img src=x>", "passed", None),
    ]
    figure = duration_figure(points)
    names = [t.get("name") for t in figure["data"]]
    assert names == [None, "passed", "failed"]
    passed = figure["data"][1]
    assert passed["y"] == [0.001, None] and passed["marker"]["symbol"] == ["x", "circle"]
    assert figure["layout"]["shapes"][0]["y0"] == 0.01
    assert "<img" not in json.dumps(figure)
    assert duration_figure(points, suspect_limit=None)["layout"].get("shapes", []) == []


def test_a_metric_is_a_line_per_cycle_with_its_target_dashed() -> None:
    figure = metric_figure(
        "ws_latency_ms", [MetricPoint(1, 62.0), MetricPoint(2, None), MetricPoint(3, 42.0)], target=50
    )
    line = figure["data"][0]
    assert line["x"] == [1, 2, 3] and line["y"] == [62.0, None, 42.0] and line["connectgaps"] is False
    assert figure["layout"]["shapes"][0]["y0"] == 50
    assert figure["layout"]["annotations"][0]["text"] == "target ≤ 50"
    higher = metric_figure("rps", [MetricPoint(1, 80.0)], target=100, lower_is_better=False)
    assert higher["layout"]["annotations"][0]["text"] == "target ≥ 100"
    assert metric_figure("x", [MetricPoint(1, 1.0)], target=None)["layout"].get("shapes", []) == []
