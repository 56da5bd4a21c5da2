"""The five-whys editor in a real Chromium: no word typed is lost, the keyboard goes where the work goes
on, and the signature's badge, status menu and activity follow every change without a reload.

Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a thread
with a running loop: DJANGO_ALLOW_ASYNC_UNSAFE lifts that for these tests.
"""

from __future__ import annotations

import os
import re

import pytest

from sessions.models import Analysis, FailureSignature, SignatureEvent, WhyStep
from sessions.services import triage
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.test_browser_triage import WS, log_in
from sessions.tests.test_pages import Case, ingest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = pytest.mark.browser

ROOT_CAUSE = "The close handler logs the enum itself, and the logger cannot format it."


@pytest.fixture
def signature(transactional_db, make_user) -> FailureSignature:
    make_user("erin", "engineer")
    ingest([Case(f"test_ws_{i}", "failed", 1.2, WS) for i in range(3)] + [Case("test_ok")], cycle=1, label="cycle1")
    return FailureSignature.objects.get()


def fresh(analysis: Analysis) -> Analysis:
    analysis.refresh_from_db()
    return analysis


@pytest.fixture
def browser_page(live_server):
    """An engineer's page and the list of page loads it made (an edit must make none)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            page.on("dialog", lambda dialog: dialog.accept())
            yield page
        finally:
            browser.close()


def open_page(page, live_server, signature: FailureSignature) -> list[str]:
    loads: list[str] = []
    log_in(page, live_server.url, "erin", f"/signatures/{signature.pk}/")
    page.on("framenavigated", lambda frame: loads.append(frame.url) if frame == page.main_frame else None)
    return loads


def test_typed_text_survives_adding_moving_and_deleting_whys(live_server, signature, browser_page) -> None:
    from playwright.sync_api import expect

    page = browser_page
    analysis = triage.create_analysis(signature, None, "WebSocket connections receive 1011.")
    triage.add_step(fresh(analysis), {"version": fresh(analysis).version, "question": "Why 1011?"}, None)
    loads = open_page(page, live_server, signature)
    article = page.locator(f"#analysis-{analysis.pk}")

    # Open the fields from the keyboard and type a root cause, unsaved.
    article.get_by_role("link", name="Edit problem and root cause").focus()
    page.keyboard.press("Enter")
    root_cause = article.locator("textarea[name=root_cause]")
    expect(article.locator("textarea[name=problem]")).to_be_focused()
    root_cause.fill(ROOT_CAUSE)

    # Add a why with the keyboard: the typed root cause stays, the keyboard goes to the next new why.
    add_question = article.locator(".step-add input[name=question]")
    add_question.focus()
    page.keyboard.type("Why does the handler raise?")
    page.keyboard.press("Tab")
    page.keyboard.type("Because logging the enum raises.")
    page.keyboard.press("Tab")
    expect(article.get_by_role("button", name="Add why")).to_be_focused()
    page.keyboard.press("Enter")
    expect(article.locator("ol.whys li.why")).to_have_count(2)
    expect(root_cause).to_have_value(ROOT_CAUSE)
    expect(article.get_by_role("textbox", name="Why 3: the question")).to_be_focused()
    expect(article.get_by_role("textbox", name="Why 3: the question")).to_have_value("")
    # Straight on: type the next why where the keyboard is, Enter adds it.
    page.keyboard.type("Why is an enum logged at all?")
    page.keyboard.press("Enter")
    expect(article.locator("ol.whys li.why")).to_have_count(3)
    expect(article.get_by_role("textbox", name="Why 4: the question")).to_be_focused()
    shot(page, "five-whys-editor")

    # Move a why: the list changes, the root cause is still as typed, the keyboard stays on the moved why.
    article.get_by_role("button", name="Move why 1 down").focus()
    page.keyboard.press("Enter")
    expect(article.locator("ol.whys li.why").nth(1)).to_contain_text("Why 1011?")
    expect(article.get_by_role("button", name="Move why 2 down")).to_be_focused()
    expect(root_cause).to_have_value(ROOT_CAUSE)

    # Delete a why (confirmed): the keyboard goes to the why that took its place.
    article.get_by_role("button", name="Delete why 2").focus()
    page.keyboard.press("Enter")
    expect(article.locator("ol.whys li.why")).to_have_count(2)
    expect(article.get_by_role("link", name="Edit why 2")).to_be_focused()
    expect(root_cause).to_have_value(ROOT_CAUSE)
    assert [s.question for s in WhyStep.objects.filter(analysis=analysis).order_by("position")] == [
        "Why does the handler raise?",
        "Why is an enum logged at all?",
    ]

    # Saving the root cause now works: the whys' edits moved the form's version along (no 409 against myself).
    article.get_by_role("button", name="Save", exact=True).click()
    expect(article.locator(".analysis-fields .field.root")).to_contain_text(ROOT_CAUSE)
    expect(article.locator(".notice.conflict")).to_have_count(0)
    expect(article.get_by_role("link", name="Edit problem and root cause")).to_be_focused()
    assert fresh(analysis).root_cause == ROOT_CAUSE
    assert loads == [], f"an edit loaded a page: {loads}"


def test_confirming_an_analysis_moves_badge_menu_and_activity_together(live_server, signature, browser_page) -> None:
    from playwright.sync_api import expect

    page = browser_page
    analysis = triage.create_analysis(signature, None, "WebSocket connections receive 1011.")
    loads = open_page(page, live_server, signature)
    expect(page.locator("#signature-status")).to_have_text("Investigating")

    article = page.locator(f"#analysis-{analysis.pk}")
    article.locator("select[name=status]").select_option("confirmed")
    article.get_by_role("button", name="Set").click()
    expect(page.locator("#signature-status")).to_have_text("Root-caused")
    expect(page.locator("#status-select")).to_have_value("root_caused")
    expect(page.locator("#activity")).to_contain_text("investigating → root_caused (analysis confirmed)")
    expect(article).to_have_class(re.compile(r"\bconfirmed\b"))
    expect(article.locator(".analysis-head .badge").first).to_have_text("Confirmed")
    expect(article.get_by_role("button", name="Set")).to_be_focused()
    shot(page, "five-whys-confirmed")

    # The status menu carries the new version: setting it by hand now works, no reload in between.
    page.locator("#status-select").select_option("fix_deployed")
    page.locator("#status-save").click()
    expect(page.locator("#signature-status")).to_have_text("Fix deployed")
    expect(page.locator("#activity")).to_contain_text("root_caused → fix_deployed (by hand)")
    assert loads == []


def test_the_status_menu_changes_only_when_saved(live_server, signature, browser_page) -> None:
    from playwright.sync_api import expect

    page = browser_page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/status/" in r.url else None)
    open_page(page, live_server, signature)
    events_before = SignatureEvent.objects.filter(signature=signature).count()

    menu = page.locator("#status-select")
    menu.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(menu).to_have_value("root_caused")  # new → investigating → root-caused, on screen only
    expect(page.locator("#signature-status")).to_have_text("New")
    page.keyboard.press("Tab")
    expect(page.locator("#status-save")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#signature-status")).to_have_text("Root-caused")
    expect(page.locator("#status-save")).to_be_focused()

    # One choice, one request, one change: the arrow keys sent nothing.
    assert len(posts) == 1, posts
    signature.refresh_from_db()
    assert signature.status == "root_caused"
    events = SignatureEvent.objects.filter(signature=signature).order_by("id")[events_before:]
    assert [e.detail for e in events] == ["new → root_caused (by hand)"]


def test_an_analysis_is_deleted_and_its_event_appears_in_the_activity(live_server, signature, browser_page) -> None:
    from playwright.sync_api import expect

    page = browser_page
    kept = triage.create_analysis(signature, None, "A Redis race")
    doomed = triage.create_analysis(signature, None, "An enum in a log line")
    triage.add_step(fresh(doomed), {"version": fresh(doomed).version, "question": "Why does logging crash?"}, None)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    loads = open_page(page, live_server, signature)
    # Something typed in the other analysis stays through the delete.
    page.locator(f"#analysis-{kept.pk} .step-add input[name=question]").fill("Why does Redis reorder?")
    expect(page.locator("#analyses-count")).to_contain_text("2 analyses")

    page.get_by_role("button", name=f"Delete analysis {doomed.pk}").focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#analysis-{doomed.pk}")).to_have_count(0)
    expect(page.locator("#activity")).to_contain_text(f"analysis {doomed.pk} deleted by erin")
    expect(page.locator("#activity")).to_contain_text("why 1: Why does logging crash?")
    expect(page.locator("#analyses-count")).to_contain_text("1 analysis")
    expect(page.locator(f"#analysis-{kept.pk} .step-add input[name=question]")).to_have_value("Why does Redis reorder?")
    expect(page.locator(f"#analysis-deleted-{doomed.pk}")).to_be_focused()
    assert dialogs == ["Delete this analysis with its 1 why? The signature's activity keeps what it said."]
    assert not Analysis.objects.filter(pk=doomed.pk).exists()
    assert loads == []

    page.reload()
    expect(page.locator("#activity")).to_contain_text(f"analysis {doomed.pk} deleted by erin")
