"""Every page at 800 and 1440 px wide in Chromium, on the real demo: nothing overflows sideways.

The page itself never scrolls horizontally (``scrollWidth <= innerWidth``) and no element reaches past the
viewport, except inside a ``.table-wrap`` (a deliberately scrolling table). Screenshots of each page at
each width go to ``var/<test var dir>/screenshots/layout/`` for people to look at. At 1440 px the
signature page's runs table shows every column without a scroll, node ids break at their separators
(``::``, ``/``, ``[``) rather than mid-word, the board hides its empty columns, and a deployment page
lists Queued before Started.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db.models.functions import Length

from sessions.demo import loader
from sessions.models import Deployment, Environment, FailureSignature, LoopSession, TestCase, TestRun

SHOTS = settings.VAR_DIR / "screenshots" / "layout"
WIDTHS = (800, 1440)

# Elements past the viewport's right edge (or left of it), outside a deliberately scrolling wrapper.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  if (document.documentElement.scrollWidth > window.innerWidth) {
    found.push(`document: scrollWidth ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  }
  for (const el of document.body.querySelectorAll('*')) {
    // plotly.js measures text in an svg it parks at -10000 px: off to the left, it never scrolls the page.
    if (el.closest('.table-wrap, .skip-link, .sr-only, #js-plotly-tester')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > width + 0.5 || box.left < -0.5) {
      const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
      found.push(`${name}: ${Math.round(box.left)}..${Math.round(box.right)} (viewport ${width})`);
    }
  }
  return found.slice(0, 12);
}"""


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def demo(transactional_db) -> dict[str, str]:
    """The demo (seven cycles of real results, triage, deployments) and the path of every kind of page."""
    session = loader.load(lambda line: None)
    runs = TestRun.objects.filter(session=session).order_by("cycle__number", "pk")
    first, last = runs.filter(label__endswith="e2e.jsonl.gz").first(), runs.last()
    signature = FailureSignature.objects.filter(environment=session.environment, merged_into__isnull=True)
    signature = signature.order_by("-result_count", "pk").first()
    cases = TestCase.objects.filter(environment=session.environment).annotate(length=Length("nodeid"))
    longest = cases.order_by("-length", "pk").first()
    for deployment in Deployment.objects.filter(environment=session.environment):
        assert deployment.created_at <= deployment.started_at <= deployment.finished_at, "queued, started, finished"
    empty = LoopSession.objects.create(title="A new push", slug="a-new-push", environment=session.environment)
    return {
        "sessions": "/",
        "session": session.get_absolute_url(),
        "run": first.get_absolute_url(),
        "compare": f"/runs/{last.pk}/compare/{first.pk}/",
        "signature": signature.get_absolute_url(),
        "test": f"/tests/{longest.pk}/",
        "deployment": Deployment.objects.order_by("pk").first().get_absolute_url(),
        "empty-session": empty.get_absolute_url(),
        "new-session": "/sessions/new/",
        "environments": "/environments/",
        "environment": f"/environments/{Environment.objects.get(pk=session.environment_id).name}/edit/",
    }


@pytest.mark.browser
def test_every_page_fits_800_and_1440_px(allow_orm_beside_playwright, live_server, demo) -> None:
    from playwright.sync_api import sync_playwright  # only browser tests need it

    from sessions.tests.browser import launch, require_chromium

    executable = require_chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "demo-admin")
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/")
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for name, path in demo.items():
                    response = page.goto(f"{live_server.url}{path}")
                    assert response is not None and response.status == 200, (
                        f"{name} {path}: {response and response.status}"
                    )
                    if page.locator(".chart").count():
                        page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=20_000)
                    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
                    found = page.evaluate(OVERFLOW_JS)
                    if found:
                        problems[f"{name} at {width} px ({path})"] = found
                    if name == "signature" and width == 1440:
                        wrap = page.locator("#signature-runs .table-wrap")
                        sizes = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
                        if sizes[0] > sizes[1]:
                            problems["signature runs table at 1440 px"] = [f"scrolls: {sizes[0]} > {sizes[1]}"]
                    if name == "session":
                        columns = page.locator("#board .board-col")
                        statuses = columns.evaluate_all(
                            "cols => cols.map(c => c.querySelectorAll('.board-card').length)"
                        )
                        if not statuses or 0 in statuses:
                            problems[f"board at {width} px"] = [f"empty columns shown: {statuses}"]
                    if name == "deployment":
                        facts = page.locator("dl.facts dt").all_inner_texts()
                        if facts.index("Queued") > facts.index("Started"):
                            problems["deployment facts"] = facts
                        if "never started" in page.locator("main").inner_text():
                            problems["deployment"] = ["a succeeded deployment says its command never started"]
        finally:
            browser.close()
    assert not problems, "horizontal overflow:\n" + "\n".join(f"{k}: {v}" for k, v in problems.items())
