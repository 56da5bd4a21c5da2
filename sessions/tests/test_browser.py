"""The pages in a real browser: log in, see the trend chart drawn, filter a run's results through HTMX.

Playwright's sync API runs an event loop in this thread, and Django refuses
ORM calls from a thread with a running loop: DJANGO_ALLOW_ASYNC_UNSAFE lifts
that, for these tests only (a fixture sets it and puts it back).
"""

from __future__ import annotations

import re

import pytest

from sessions.models import TestRun
from sessions.tests import browser as browser_helper
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.test_pages import Case, ingest, mixed_cases


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def loop_data(transactional_db, make_user):
    """A user and a session of four cycles, stored through real ingestion, with impact rules."""
    from decimal import Decimal

    from sessions.models import BusinessArea, ImpactRule, LoopSession

    make_user("vera", "viewer")
    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=chat)
    runs = []
    for cycle in (1, 2, 3, 4):
        cases = mixed_cases(120)
        # Each cycle fixes more of the failures, as a loop should.
        cases = [
            Case(c.name, "passed", 1.1) if c.outcome in ("failed", "error") and i % (cycle + 1) else c
            for i, c in enumerate(cases)
        ]
        cases.append(
            Case("test_render_<script>alert(1)</script>", "failed", 3.0, "AssertionError: <script>alert('x')</script>")
        )
        runs.append(ingest(cases, session="golden-path", cycle=cycle, label=f"e2e-staging-cycle{cycle}"))
    LoopSession.objects.filter(slug="golden-path").update(
        title="Golden path: all P1 tests pass on staging",
        mission="Run the e2e staging suite until every P1 test passes; five whys for each failure.",
        goal_priority="P1",
    )
    return runs


@pytest.mark.browser
def test_login_chart_and_htmx_filter(allow_orm_beside_playwright, live_server, loop_data) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright  # imported here: only browser tests need it

    run: TestRun = loop_data[-1]
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            page.goto(f"{live_server.url}/sessions/golden-path/")
            expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
            shot(page, "login")
            page.fill("input[name=username]", "vera")
            page.fill("input[name=password]", "pw-vera")
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{live_server.url}/sessions/golden-path/")

            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=20_000)
            assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2
            expect(page.locator("#cycles")).to_contain_text("Cycle 4")
            shot(page, "session")

            page.click(f'a[href="/runs/{run.pk}/"]')
            expect(page).to_have_url(f"{live_server.url}/runs/{run.pk}/")
            expect(page.locator("#results-table tbody tr")).to_have_count(50)

            page.select_option("#filter-outcome", "failed")
            rows = page.locator("#results-table tbody tr")
            expect(rows).to_have_count(run.failed)
            outcomes = rows.evaluate_all("rows => rows.map(r => r.dataset.outcome)")
            assert outcomes and set(outcomes) == {"failed"}
            expect(page).to_have_url(re.compile(r"outcome=failed"))
            # The filter form survived the swap: only #results was replaced.
            expect(page.locator("#filter-outcome")).to_have_value("failed")
            expect(page.locator("#results-table")).to_contain_text("<script>alert('x')</script>")
            shot(page, "run")

            page.click("#results-table a.sig-link")
            expect(page.locator("h1")).to_contain_text("<script>alert('x')</script>")
            shot(page, "signature")
            page.click("#signature-samples a.nodeid")
            expect(page.locator("#test-history tbody tr")).to_have_count(4)
            shot(page, "test")

            page.goto(f"{live_server.url}/")
            expect(page.locator("#sessions")).to_contain_text("Golden path")
            shot(page, "sessions")
            assert dialogs == [], "a failure message ran as script"
        finally:
            browser.close()


# -- the helper's policy: skip on a developer machine, fail in CI ----------------------------------


def _without_chromium(monkeypatch) -> None:
    monkeypatch.setattr(browser_helper, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser_helper.shutil, "which", lambda name: None)


def test_missing_chromium_skips_outside_ci(monkeypatch) -> None:
    _without_chromium(monkeypatch)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        require_chromium()


def test_missing_chromium_fails_in_ci(monkeypatch) -> None:
    _without_chromium(monkeypatch)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_chromium()
