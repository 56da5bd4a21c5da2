"""The trend chart builder (plain rows in, figure dict out) and the plotly.js it is drawn with."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import plotly
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from sessions.charts import (
    MRR_COLOUR,
    NEUTRAL_COLOUR,
    CyclePoint,
    money_label,
    nice_step,
    round_ticks,
    trend_figure,
)


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


def _rate_axis(figure: dict) -> tuple[list[float], list[float], list[str]]:
    axis = figure["layout"]["yaxis"]
    return axis["range"], axis["tickvals"], axis["ticktext"]


def test_the_pass_rate_axis_floor_is_raised_only_when_every_rate_is_high() -> None:
    (low, high), ticks, _text = _rate_axis(trend_figure(_points()))
    assert ticks == [70, 80, 90, 100] and low < 70 and 100 < high < 101
    low_rates = [CyclePoint(cycle=1, pass_rate=3.0, mrr_at_risk=0), CyclePoint(cycle=2, pass_rate=100.0, mrr_at_risk=0)]
    assert _rate_axis(trend_figure(low_rates))[1] == [0, 20, 40, 60, 80, 100]
    nothing = trend_figure([CyclePoint(cycle=1, pass_rate=None, mrr_at_risk=0)])
    assert _rate_axis(nothing)[1] == [0, 20, 40, 60, 80, 100]


def test_pass_rate_ticks_are_round_percentages_whatever_the_floor() -> None:
    for rate, expected in (
        (97.0, [90, 92, 94, 96, 98, 100]),
        (86.0, [80, 85, 90, 95, 100]),
        (55.0, [50, 60, 70, 80, 90, 100]),
        (35.6, [20, 40, 60, 80, 100]),  # the demo's cycle 1: the floor goes down to a step, 100 % stays a tick
    ):
        _range, ticks, text = _rate_axis(trend_figure([CyclePoint(cycle=1, pass_rate=rate, mrr_at_risk=0)]))
        assert ticks == expected
        assert text == [f"{t}%" for t in expected]
    for tenth in range(0, 1001, 7):
        (low, high), ticks, _text = _rate_axis(trend_figure([CyclePoint(1, tenth / 10, 0)]))
        assert ticks[-1] == 100 and low < ticks[0] <= tenth / 10 and high > 100
        assert len({round(b - a, 6) for a, b in zip(ticks, ticks[1:], strict=False)}) == 1  # one step


def test_the_goal_line_is_always_inside_the_pass_rate_axis() -> None:
    high = [CyclePoint(cycle=1, pass_rate=98.0, mrr_at_risk=0), CyclePoint(cycle=2, pass_rate=99.0, mrr_at_risk=0)]
    (low, _high), ticks, _text = _rate_axis(trend_figure(high, goal_pass_rate=80.0))
    assert low < 80 and ticks[0] <= 80


# -- the MRR axis -------------------------------------------------------------------------------------------


def test_an_all_zero_mrr_axis_shows_0_dollars_not_milli_dollars() -> None:
    """plotly's own axis for all-zero bars runs 0..1 with SI ticks: "$200m" read as 200 million."""
    for values in ([0, 0], [None, Decimal("0")], []):
        points = [CyclePoint(cycle=i, pass_rate=90.0, mrr_at_risk=v) for i, v in enumerate(values, start=1)]
        axis = trend_figure(points)["layout"]["yaxis2"]
        assert axis["tickvals"] == [0] and axis["ticktext"] == ["$0"] and axis["range"] == [0, 1]
        assert "tickformat" not in axis


def test_money_ticks_are_round_dollars() -> None:
    points = [
        CyclePoint(cycle=1, pass_rate=10.0, mrr_at_risk=Decimal("322000")),
        CyclePoint(cycle=2, pass_rate=90.0, mrr_at_risk=Decimal("130000")),
    ]
    axis = trend_figure(points)["layout"]["yaxis2"]
    assert axis["tickvals"] == [0, 100000, 200000, 300000, 400000]
    assert axis["ticktext"] == ["$0", "$100k", "$200k", "$300k", "$400k"]
    assert axis["range"] == [0, 400000]
    assert money_label(1_500_000) == "$1.5M" and money_label(988) == "$988" and money_label(2e9) == "$2B"
    assert money_label(0) == "$0" and money_label(42_000) == "$42k"


def test_round_ticks_are_multiples_of_a_round_step() -> None:
    assert nice_step(322000) == 100000 and nice_step(10) == 2.5 and nice_step(0.3) == 0.1
    assert round_ticks(0.1, 0.7) == [0.0, 0.2, 0.4, 0.6, 0.8]  # no 0.6000000000000001
    assert round_ticks(41.2, 63.9) == [40, 50, 60, 70]
    assert round_ticks(5, 5) == [5, 6]


def test_without_impact_rules_the_mrr_series_is_neutral_and_says_so() -> None:
    zero = [CyclePoint(cycle=1, pass_rate=90.0, mrr_at_risk=Decimal("0"))]
    figure = trend_figure(zero, mrr_tracked=False)
    bars = figure["data"][0]
    assert bars["marker"]["color"] == NEUTRAL_COLOUR and "no impact rules" in bars["name"]
    assert "no impact rules" in figure["layout"]["yaxis2"]["title"]["text"]
    assert trend_figure(zero)["data"][0]["marker"]["color"] == MRR_COLOUR
    # Revenue found another way (an area_<name> marker) is measured after all: shown as such.
    some = [CyclePoint(cycle=1, pass_rate=90.0, mrr_at_risk=Decimal("42000"))]
    assert trend_figure(some, mrr_tracked=False)["data"][0]["marker"]["color"] == MRR_COLOUR


# -- runs that do not count ---------------------------------------------------------------------------------


def test_a_cycle_with_no_counted_run_gets_a_grey_mark_at_the_bottom_never_a_value() -> None:
    points = [
        CyclePoint(cycle=6, pass_rate=100.0, mrr_at_risk=0, run_label="full", run_id=20),
        CyclePoint(
            cycle=7,
            pass_rate=None,
            mrr_at_risk=None,
            set_apart=("run 24 excluded: target unreachable: <b>refused</b>", "run 25 incomplete (cancelled)"),
        ),
    ]
    figure = trend_figure(points, goal_pass_rate=95.0)
    assert _trace(figure, "Pass rate")["y"] == [100.0, None]
    assert _trace(figure, "MRR at risk")["y"] == [0.0, None]
    mark = _trace(figure, "Not counted")
    floor = figure["layout"]["yaxis"]["tickvals"][0]
    assert mark["x"] == [7] and mark["y"] == [floor] and mark["mode"] == "markers"
    assert mark["marker"]["color"] == NEUTRAL_COLOUR and mark["marker"]["symbol"] == "x-thin"
    hover = mark["customdata"][0]
    assert "run 24 excluded: target unreachable" in hover and "run 25 incomplete (cancelled)" in hover
    assert "<b>refused" not in json.dumps(figure)


def test_a_counted_cycle_names_its_runs_that_do_not_count_in_the_hover_only() -> None:
    points = [
        CyclePoint(cycle=1, pass_rate=84.0, mrr_at_risk=0, run_id=11, run_label="a", set_apart=("run 12 excluded: x",))
    ]
    figure = trend_figure(points)
    assert "not counted: run 12 excluded: x" in _trace(figure, "Pass rate")["customdata"][0]
    assert [t["name"] for t in figure["data"]] == ["MRR at risk", "Pass rate"]
    many = [CyclePoint(cycle=1, pass_rate=None, mrr_at_risk=None, set_apart=tuple(f"run {i} x" for i in range(5)))]
    assert "and 2 more" in _trace(trend_figure(many), "Not counted")["customdata"][0]


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
    import plotly.graph_objects as go

    go.Figure(figure)  # built as a plain dict for speed: plotly's own validation still accepts every key


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


def test_a_metric_axis_is_scaled_to_the_data_and_always_shows_the_target() -> None:
    """Round ticks around the values and the target: the target line is never off the chart."""
    near = metric_figure("ws_latency_ms", [MetricPoint(1, 62.0), MetricPoint(2, 42.0)], target=50)
    axis = near["layout"]["yaxis"]
    low, high = axis["range"]
    assert low > 0 and low <= 42 and high >= 62  # scaled to the data, not 0..65
    assert axis["tickvals"] == [40, 50, 60, 70] and axis["ticktext"][1] == "50"

    far_above = metric_figure("agent_run_ms", [MetricPoint(1, 10.0), MetricPoint(2, 12.0)], target=500)
    low, high = far_above["layout"]["yaxis"]["range"]
    assert low <= 10 and high >= 500
    assert far_above["layout"]["annotations"][0]["yanchor"] == "top"  # the label stays inside the plot

    far_below = metric_figure("rps", [MetricPoint(1, 400.0), MetricPoint(2, 600.0)], target=100, lower_is_better=False)
    low, high = far_below["layout"]["yaxis"]["range"]
    assert low <= 100 and high >= 600 and low >= 0
    assert far_below["layout"]["annotations"][0]["yanchor"] == "bottom"

    flat = metric_figure("x", [MetricPoint(1, 7.0), MetricPoint(2, 7.0)], target=None)["layout"]["yaxis"]
    assert flat["range"][0] < 7 < flat["range"][1]
    assert metric_figure("x", [MetricPoint(1, None)], target=None)["layout"]["yaxis"]["rangemode"] == "tozero"


# -- the trend's points and the page, on the real stack -------------------------------------------------------

import pytest  # noqa: E402
from django.urls import reverse  # noqa: E402

from sessions.models import BusinessArea, ImpactRule, LoopSession, TestRun, WorkStatus  # noqa: E402
from sessions.selectors.cycles import session_cycles, trend_points  # noqa: E402
from sessions.services import counting  # noqa: E402
from sessions.tests.test_pages import Case, ingest, mixed_cases  # noqa: E402
from sessions.work import queueing  # noqa: E402
from sessions.work.cancel import cancel_run  # noqa: E402

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


@pytest.mark.django_db
def test_trend_points_keep_excluded_and_incomplete_runs_apart(operator) -> None:
    """Cycle 1: a counted run and, after it, an excluded one; cycle 2: only an excluded run and a cancel."""
    good = ingest(mixed_cases(40), cycle=1, label="good")
    later = ingest(mixed_cases(40, prefix="again"), cycle=1, label="later")
    counting.exclude_run(later, "suite pointed at the wrong host", operator)
    refused = ingest([Case(f"test_{i}", "failed", 0.1, REFUSED) for i in range(40)], cycle=2, label="refused")
    refused.refresh_from_db()
    assert refused.excluded and not refused.counted  # the lead's rule set it aside by itself
    session = LoopSession.objects.get(slug="golden-path")
    session.environment.test_command = ["python", "-c", "pass"]
    session.environment.save()
    queued = queueing.request_tests(session)  # never sent: the test's transaction does not commit
    TestRun.objects.filter(pk=queued.pk).update(cycle=refused.cycle)
    queued.refresh_from_db()
    cancel_run(queued)

    first, second = trend_points(session_cycles(session))
    assert first.run_id == good.pk and first.pass_rate == good.pass_rate
    assert first.set_apart == (f"run {later.pk} excluded: suite pointed at the wrong host",)
    assert second.pass_rate is None and second.mrr_at_risk is None and second.run_id is None
    assert second.set_apart[0].startswith(f"run {refused.pk} excluded: target unreachable")
    assert second.set_apart[1] == f"run {queued.pk} incomplete (cancelled)"
    assert TestRun.objects.get(pk=queued.pk).status == WorkStatus.CANCELLED


@pytest.mark.django_db
def test_session_page_mrr_is_neutral_and_says_why_without_impact_rules(client, viewer) -> None:
    ingest(mixed_cases(40), cycle=1)
    client.force_login(viewer)
    page = client.get(reverse("session_detail", args=["golden-path"])).content.decode()
    assert 'class="stat mrr zero" id="headline-mrr"' in page
    assert "not measured: no impact rule gives these tests revenue" in page
    assert "MRR at risk ($): no impact rules" in page  # the chart's axis title, in the figure's JSON

    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*later_p1_*", priority="P1", area=chat)
    ingest(mixed_cases(40, prefix="later"), cycle=2)
    page = client.get(reverse("session_detail", args=["golden-path"])).content.decode()
    assert 'class="stat mrr" id="headline-mrr"' in page and "$120,000" in page
    assert "not measured" not in page and "no impact rules" not in page
