"""The Content-Security-Policy in a real Chromium: charts draw, htmx swaps, the admin works, and the
browser reports no violation on any page.

Every page reports `securitypolicyviolation` events, and Chromium's console errors, to the test
through an exposed function, so a violation on a page the test has already left is still counted.
A deliberate inline script first proves the collector sees what the policy refuses.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from sessions.models import FailureSignature, TestRun
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.test_pages import Case, ingest, mixed_cases

pytestmark = pytest.mark.browser

REPORT_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.violations.push(e.effectiveDirective);
  window.reportViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} on ${e.documentURI} ${e.sample || ""} at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`);
});
"""


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def loop_data(transactional_db, make_user) -> list[TestRun]:
    """An admin (who may do everything) and a session of three cycles, stored through real ingestion."""
    from sessions.models import BusinessArea, ImpactRule

    make_user("ada", superuser=True)
    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=chat)
    runs = []
    for cycle in (1, 2, 3):
        cases = [
            Case(c.name, "passed", 1.1) if c.outcome in ("failed", "error") and i % (cycle + 1) else c
            for i, c in enumerate(mixed_cases(80))
        ]
        runs.append(ingest(cases, session="golden-path", cycle=cycle, label=f"cycle{cycle}"))
    return runs


def test_charts_htmx_and_the_admin_run_under_the_policy_with_no_violation(
    allow_orm_beside_playwright,
    live_server,
    loop_data,
) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    run = loop_data[-1]
    base = live_server.url
    violations: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.expose_function("reportViolation", lambda text: violations.append(text))
            page.add_init_script(REPORT_VIOLATIONS)
            page.on(
                "console",
                lambda m: console_errors.append(m.text) if m.type in ("error", "warning") else None,
            )

            # The login page carries the policy; nothing on it is refused.
            response = page.goto(f"{base}/accounts/login/?next=/sessions/golden-path/")
            policy = response.headers["content-security-policy"]
            assert "script-src 'self' 'nonce-" in policy and "'unsafe-eval'" not in policy

            # The collector sees a refused inline script (so an empty list below means something).
            page.evaluate(
                "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                " document.body.appendChild(s); }"
            )
            page.wait_for_function("() => window.violations.includes('script-src-elem')")
            assert page.evaluate("() => window.ran") is None, "the policy let an inline script run"
            assert any(v.startswith("script-src-elem blocked inline") for v in violations), violations
            violations.clear()
            console_errors.clear()

            page.fill("input[name=username]", "ada")
            page.fill("input[name=password]", "pw-ada")
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/sessions/golden-path/")

            # plotly draws the trend, and its style rules (inserted through the CSSOM) apply.
            page.wait_for_selector("#trend-card .js-plotly-plot svg.main-svg", timeout=20_000)
            assert page.locator("#trend-card .scatterlayer .trace").count() >= 2
            page.hover("#trend-card .js-plotly-plot")
            assert (
                page.evaluate("() => getComputedStyle(document.querySelector('#trend-card .modebar')).position")
                == "absolute"
            ), "plotly's own CSS rules did not apply"
            shot(page, "csp-session")

            # htmx: the results filter swaps #results in place.
            page.goto(f"{base}/runs/{run.pk}/")
            expect(page.locator("#results-table tbody tr")).to_have_count(50)
            page.select_option("#filter-outcome", "failed")
            expect(page.locator("#results-table tbody tr")).to_have_count(run.failed)
            expect(page).to_have_url(re.compile(r"outcome=failed"))
            shot(page, "csp-run")

            # htmx POST with the CSRF header: the status menu's Save swaps the menu, the badge out of band.
            signature = FailureSignature.objects.filter(result_count__gt=0).order_by("pk").first()
            page.goto(f"{base}/signatures/{signature.pk}/")
            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=20_000)
            page.select_option("#status-select", "investigating")
            page.click("#status-save")
            expect(page.locator("#signature-status")).to_have_text(re.compile("Investigating", re.IGNORECASE))
            signature.refresh_from_db()
            assert signature.status == "investigating"

            page.click("#signature-samples a.nodeid")
            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=20_000)

            # The admin: its own scripts (actions, calendars, related-object popups) under the same policy.
            page.goto(f"{base}/admin/")
            expect(page.locator("#site-name")).to_be_visible()
            page.goto(f"{base}/admin/loop_sessions/apitoken/add/")
            page.click(".datetimeshortcuts a:has-text('Today')")
            expect(page.locator("#id_expires_at_0")).not_to_have_value("")
            page.goto(f"{base}/admin/loop_sessions/environment/add/")
            expect(page.locator("#id_name")).to_be_visible()
            shot(page, "csp-admin")
            page.goto(f"{base}/")
            expect(page.locator("#sessions")).to_contain_text("golden-path")
        finally:
            browser.close()

    assert violations == []
    assert [e for e in console_errors if "Content Security Policy" in e or "CSP" in e] == []
    assert [e for e in console_errors if "addRelatedStyleRule" in e] == []


def test_the_lockout_page_in_the_browser(allow_orm_beside_playwright, live_server, make_user, settings) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    make_user("eli", "engineer")
    violations: list[str] = []
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.expose_function("reportViolation", lambda text: violations.append(text))
            page.add_init_script(REPORT_VIOLATIONS)
            page.goto(f"{live_server.url}/accounts/login/")
            for _ in range(4):
                page.fill("input[name=username]", "eli")
                page.fill("input[name=password]", "not-it")
                page.click("button[type=submit]")
                expect(page.locator("#throttle-hint")).to_contain_text("After 5 failed attempts in a row")
            shot(page, "login-failed")
            page.fill("input[name=username]", "eli")
            page.fill("input[name=password]", "still-not-it")
            page.click("button[type=submit]")
            expect(page.locator("#locked-out h1")).to_have_text("Login paused")
            expect(page.locator("#locked-out")).to_contain_text("Try again in 15 minutes")
            shot(page, "locked-out")
            page.click("text=Back to the login page")
            page.fill("input[name=username]", "eli")
            page.fill("input[name=password]", "pw-eli")
            page.click("button[type=submit]")
            expect(page.locator("#locked-out")).to_be_visible()  # the right password waits too
        finally:
            browser.close()
    assert violations == []
