"""Triage in a real Chromium: an engineer writes and reorders a five-whys analysis; a viewer only reads.

Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a thread
with a running loop: DJANGO_ALLOW_ASYNC_UNSAFE lifts that for these tests.
"""

from __future__ import annotations

import os

import pytest

from sessions.models import Analysis, FailureSignature, WhyStep
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.test_pages import Case, ingest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = pytest.mark.browser

WS = "ConnectionClosedError: received 1011 (internal error); then sent 1011 (internal error)"
QUESTIONS = [
    "Why are WebSocket connections closed with 1011?",
    "Why does the handler raise?",
    "Why is an enum logged at all?",
]


@pytest.fixture
def signature(transactional_db, make_user) -> FailureSignature:
    make_user("erin", "engineer")
    make_user("vera", "viewer")
    ingest([Case(f"test_ws_{i}", "failed", 1.2, WS) for i in range(3)] + [Case("test_ok")], cycle=1, label="cycle1")
    ingest([Case(f"test_ws_{i}", "failed", 1.1, WS) for i in range(2)] + [Case("test_ok")], cycle=2, label="cycle2")
    return FailureSignature.objects.get()


def log_in(page, base: str, username: str, path: str) -> None:
    page.goto(f"{base}/accounts/login/?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"pw-{username}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def order_on_page(page) -> list[str]:
    return page.locator("ol.whys li.why .why-q").evaluate_all(
        "items => items.map(li => li.textContent.replace(/^\\s*Why \\d+\\s*/, '').trim())"
    )


def test_an_engineer_writes_and_reorders_five_whys_and_a_viewer_only_reads(live_server, signature) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    path = f"/signatures/{signature.pk}/"
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
            loads: list[str] = []
            log_in(page, live_server.url, "erin", path)
            page.on("framenavigated", lambda frame: loads.append(frame.url) if frame == page.main_frame else None)

            # Write the analysis: each action swaps a partial, the page never reloads.
            page.fill("#new-problem", "WebSocket connections receive 1011 internal errors.")
            page.click("#start-analysis")
            article = page.locator("article.analysis")
            expect(article).to_have_count(1)
            for question in QUESTIONS:
                article.locator(".step-add input[name=question]").fill(question)
                article.locator(".step-add textarea[name=answer]").fill(f"Because of {question.lower()}")
                article.locator(".step-add button[type=submit]").click()
                expect(page.locator("ol.whys li.why .why-q", has_text=question)).to_have_count(1)
            assert order_on_page(page) == QUESTIONS
            shot(page, "triage-five-whys-written")

            # Reorder with the keyboard: the first why goes to the bottom in two moves.
            page.get_by_role("button", name="Move why 1 down").focus()
            page.keyboard.press("Enter")
            expect(page.locator("ol.whys li.why").nth(1)).to_contain_text(QUESTIONS[0])
            # The focus follows the moved why (htmx applies autofocus once the swap has settled). Asked
            # through the locator: a wait_for_function string would be an eval, which the page's CSP refuses.
            expect(page.get_by_role("button", name="Move why 2 down")).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("ol.whys li.why").nth(2)).to_contain_text(QUESTIONS[0])
            assert order_on_page(page) == [QUESTIONS[1], QUESTIONS[2], QUESTIONS[0]]
            assert loads == [], f"an edit loaded a page: {loads}"

            page.reload()
            assert order_on_page(page) == [QUESTIONS[1], QUESTIONS[2], QUESTIONS[0]]
            page.locator("details.history > summary").click()
            expect(page.locator("details.history")).to_contain_text("moved why 2 down")
            shot(page, "triage-signature-engineer")
            assert dialogs == []

            # The viewer: the same analysis, not a single edit control.
            viewer_page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
            log_in(viewer_page, live_server.url, "vera", path)
            assert order_on_page(viewer_page) == [QUESTIONS[1], QUESTIONS[2], QUESTIONS[0]]
            main = viewer_page.locator("main")
            for control in (
                "form",
                "textarea",
                "select",
                "button:not(.modebar-btn)",
                "input",
            ):  # the chart's own toolbar aside
                found = main.locator(control).evaluate_all("els => els.map(e => e.outerHTML.slice(0, 120))")
                assert found == [], control
            expect(main).not_to_contain_text("Edit title")
            shot(viewer_page, "triage-signature-viewer")

            # A forged POST from the viewer's browser, CSRF token and all, is refused.
            analysis = Analysis.objects.get()
            status = viewer_page.evaluate(
                """async (url) => {
                    const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
                    const response = await fetch(url, {
                        method: 'POST',
                        headers: {'X-CSRFToken': token, 'HX-Request': 'true', 'Content-Type': 'application/x-www-form-urlencoded'},
                        body: 'question=Forged&answer=x&version=99',
                    });
                    return response.status;
                }""",
                f"/analyses/{analysis.pk}/steps/",
            )
            assert status == 403
            assert not WhyStep.objects.filter(question="Forged").exists()
        finally:
            browser.close()


def test_a_stale_edit_in_the_browser_shows_the_newer_text_and_keeps_mine(live_server, signature) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from sessions.services import triage

    analysis = triage.create_analysis(signature, None, "1011 on connect")
    path = f"/signatures/{signature.pk}/"
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            log_in(page, live_server.url, "erin", path)
            # Someone else edits the analysis after this page was rendered.
            analysis.refresh_from_db()
            triage.update_analysis(analysis, {"version": analysis.version, "problem": "Someone else's problem"}, None)

            page.locator(".step-add input[name=question]").fill("My unsaved why")
            page.locator(".step-add button[type=submit]").click()
            notice = page.locator(".notice.conflict")
            expect(notice).to_contain_text("Not saved: someone else changed this analysis first.")
            expect(notice).to_contain_text("My unsaved why")
            expect(page.locator("article.analysis")).to_contain_text("Someone else's problem")
            assert not WhyStep.objects.exists()
            shot(page, "triage-conflict")

            # The swapped form carries the new version: trying again works.
            page.locator(".step-add input[name=question]").fill("My unsaved why")
            page.locator(".step-add button[type=submit]").click()
            expect(page.locator("ol.whys li.why")).to_have_count(1)
            expect(page.locator(".notice.conflict")).to_have_count(0)
        finally:
            browser.close()
