"""The charts in a real Chromium: a toolbar that reaches nothing outside, and figures that a run which
never reached its target leaves unchanged.

Screenshots go to ``LOOPDASH_SHOTS`` (default /tmp/loopdash-shots) for people to look at:
charts-toolbar, charts-before, charts-excluded-same-cycle, charts-excluded-new-cycle.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from sessions.models import BusinessArea, ImpactRule, LoopSession, RunSignature, SuccessCriterion, TestRun
from sessions.services import criteria
from sessions.tests.browser import SHOTS, launch, require_chromium, shot
from sessions.tests.test_pages import Case, ingest, mixed_cases

pytestmark = pytest.mark.browser

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

# What the drawn trend chart says: each trace's values, as plotly holds them after drawing, and the
# tick labels it wrote on both axes.
READ_CHART = """
() => {
  const gd = document.querySelector('#trend-card .js-plotly-plot');
  const traces = {};
  for (const t of gd.data) traces[t.name] = {x: Array.from(t.x), y: Array.from(t.y), hover: t.customdata ? Array.from(t.customdata) : []};
  const ticks = (cls) => Array.from(gd.querySelectorAll(`g.${cls} text`)).map((n) => n.textContent);
  return {traces, left: ticks('ytick'), right: ticks('y2tick')};
}
"""

# Every element of the drawn charts that could take a viewer elsewhere.
READ_TOOLBARS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd) => ({
  buttons: Array.from(gd.querySelectorAll('.modebar-btn')).map((b) => b.getAttribute('data-title') || b.getAttribute('data-val') || ''),
  hrefs: Array.from(gd.querySelectorAll('[href], [xlink\\\\:href]')).map((a) => a.getAttribute('href') || a.getAttribute('xlink:href')),
  text: gd.querySelector('.modebar') ? gd.querySelector('.modebar').textContent : '',
}))
"""


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def loop(transactional_db, make_user) -> LoopSession:
    """Three cycles of a session with revenue at risk and a checklist, through real ingestion."""
    make_user("vic", "viewer")
    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=chat)
    for cycle in (1, 2, 3):
        cases = [
            Case(c.name, "passed", 1.1) if c.outcome in ("failed", "error") and i % (cycle + 1) else c
            for i, c in enumerate(mixed_cases(80))
        ]
        ingest(cases, session="golden-path", cycle=cycle, label=f"cycle{cycle}")
    session = LoopSession.objects.get(slug="golden-path")
    criteria.add_criterion(session, {"text": "Pass rate at least 85 %", "kind": "pass_rate", "threshold": "85"}, None)
    criteria.add_criterion(
        session, {"text": "P1 pass rate 100 %", "kind": "pass_rate", "priority": "P1", "threshold": "100"}, None
    )
    criteria.add_criterion(session, {"text": "No suspect 0.00 s tests", "kind": "no_suspects"}, None)
    return session


def _refused_upload(cycle: int) -> TestRun:
    """A run against a stopped target: all but two of 80 tests refused a connection."""
    cases = [Case(f"test_p1_{i:05d}" if i % 3 == 1 else f"test_{i:05d}", "failed", 0.01, REFUSED) for i in range(78)]
    cases += [Case("test_offline_a", "passed", 0.2), Case("test_offline_b", "passed", 0.2)]
    run = ingest(cases, session="golden-path", cycle=cycle, label=f"refused{cycle}")
    run.refresh_from_db()
    assert run.excluded and not run.counted and run.excluded_reason.startswith("target unreachable"), run
    return run


def card_shot(page, name: str) -> None:
    """A screenshot of the trend card alone (hover boxes included), to look at beside the full page."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#trend-card").screenshot(path=str(SHOTS / f"{name}.png"))


def _figures(page) -> dict:
    """The headline cards, the checklist and the drawn chart, as a viewer sees them."""
    page.wait_for_selector("#trend-card .js-plotly-plot svg.main-svg", timeout=20_000)
    return {
        "headline": page.locator(".stats .stat").all_inner_texts(),
        "criteria": [
            (li.get_attribute("class"), li.inner_text()) for li in page.locator("#criteria li.criterion").all()
        ],
        "chart": page.evaluate(READ_CHART),
    }


def test_the_chart_headline_and_criteria_ignore_a_run_that_never_reached_its_target(
    allow_orm_beside_playwright, live_server, loop
) -> None:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    base = live_server.url
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            page.goto(f"{base}/accounts/login/?next=/sessions/golden-path/")
            page.fill("input[name=username]", "vic")
            page.fill("input[name=password]", "pw-vic")
            page.click("button[type=submit]")
            before = _figures(page)
            shot(page, "charts-before")
            card_shot(page, "charts-before-card")
            chart = before["chart"]
            assert chart["traces"]["Pass rate"]["x"] == [1, 2, 3]
            assert all(rate is not None for rate in chart["traces"]["Pass rate"]["y"])
            assert "Not counted" not in chart["traces"]
            # Round ticks: percentages on the left, whole dollars on the right (never "$988m").
            assert chart["left"] and all(t.endswith("%") for t in chart["left"]), chart["left"]
            assert chart["right"][0] == "$0" and all(t.startswith("$") and not t.endswith("m") for t in chart["right"])
            assert any("ConnectionRefused" in text for text in before["headline"]) is False

            # The story of the issue: "Run tests" against a stopped target, in the latest cycle.
            same_cycle = _refused_upload(3)
            page.reload()
            after = _figures(page)
            shot(page, "charts-excluded-same-cycle")
            assert after["headline"] == before["headline"]
            assert after["criteria"] == before["criteria"]
            for name in ("Pass rate", "MRR at risk", "P1 pass rate"):
                assert after["chart"]["traces"][name]["y"] == chart["traces"][name]["y"], name
            assert after["chart"]["left"] == chart["left"] and after["chart"]["right"] == chart["right"]
            # The cycle's hover names the run set apart, and why.
            note = after["chart"]["traces"]["Pass rate"]["hover"][2]
            assert f"run {same_cycle.pk} excluded: target unreachable" in note

            # A new cycle whose only run never reached the target: a grey mark, no value, nothing else moves.
            new_cycle = _refused_upload(4)
            page.reload()
            later = _figures(page)
            traces = later["chart"]["traces"]
            # Every card, "cycles to green" included: a cycle that tested nothing is no turn of the loop.
            assert later["headline"] == before["headline"]
            assert later["criteria"] == before["criteria"]
            assert traces["Pass rate"]["x"] == [1, 2, 3, 4]
            assert traces["Pass rate"]["y"] == chart["traces"]["Pass rate"]["y"] + [None]
            assert traces["MRR at risk"]["y"] == chart["traces"]["MRR at risk"]["y"] + [None]
            assert traces["Not counted"]["x"] == [4]
            assert f"run {new_cycle.pk} excluded: target unreachable" in traces["Not counted"]["hover"][0]
            shot(page, "charts-excluded-new-cycle")
            # Drawn where the viewer sees it, and its hover says why.
            mark = page.locator("#trend-card .scatterlayer .trace").last.locator("path.point")
            assert mark.count() == 1
            mark.hover(force=True)
            hover = page.locator("#trend-card .hoverlayer")
            hover.get_by_text("no counted run").wait_for(timeout=10_000)
            assert "excluded: target unreachable" in hover.text_content()
            card_shot(page, "charts-excluded-hover")
        finally:
            browser.close()


def test_the_chart_toolbar_reaches_nothing_outside(allow_orm_beside_playwright, live_server, loop) -> None:
    """No plotly logo link, no "Share chart..." upload to Plotly's cloud, no Chart Studio, no request out."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    base = live_server.url
    outside: list[str] = []
    signature_id = (
        RunSignature.objects.filter(run__session=loop).order_by("id").values_list("signature_id", flat=True)[0]
    )
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            context.on(
                "request",
                lambda r: (
                    outside.append(r.url)
                    if urlsplit(r.url).scheme in ("http", "https", "ws", "wss")
                    and urlsplit(r.url).hostname not in LOCAL_HOSTS
                    else None
                ),
            )
            page = context.new_page()
            page.goto(f"{base}/accounts/login/?next=/sessions/golden-path/")
            page.fill("input[name=username]", "vic")
            page.fill("input[name=password]", "pw-vic")
            page.click("button[type=submit]")
            for url in ("/sessions/golden-path/", f"/signatures/{signature_id}/"):
                page.goto(base + url)
                page.wait_for_selector(".js-plotly-plot .modebar", state="attached", timeout=20_000)
                page.locator(".js-plotly-plot").first.hover()
                toolbars = page.evaluate(READ_TOOLBARS)
                assert toolbars, url
                for bar in toolbars:
                    assert bar["buttons"], f"{url}: no toolbar drawn"
                    for title in bar["buttons"]:
                        lowered = title.lower()
                        assert not any(w in lowered for w in ("cloud", "share", "chart studio", "edit", "plotly")), (
                            f"{url}: toolbar button {title!r} reaches outside"
                        )
                    for href in bar["hrefs"]:
                        parts = urlsplit(href or "")
                        assert parts.scheme not in ("http", "https") or parts.hostname in LOCAL_HOSTS, (
                            f"{url}: a chart links outside: {href}"
                        )
                    assert "Produced with Plotly" not in bar["text"]
                if url.startswith("/sessions/"):
                    shot(page, "charts-toolbar")
            # The buttons that stay are the local ones (zoom, pan, autoscale, a PNG download).
            assert "Download plot as a png" in toolbars[0]["buttons"] or any(
                "png" in b.lower() for b in toolbars[0]["buttons"]
            ), toolbars[0]["buttons"]
        finally:
            browser.close()
    assert outside == []
    assert SuccessCriterion.objects.filter(session=loop).count() == 3
