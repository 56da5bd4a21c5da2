"""Owners and discussion in a real Chromium: an engineer takes a signature and comments; a viewer reads.

DJANGO_ALLOW_ASYNC_UNSAFE: see test_browser_triage.py.
"""

from __future__ import annotations

import os

import pytest

from sessions.models import FailureSignature, SignatureComment
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.test_browser_triage import log_in
from sessions.tests.test_pages import Case, ingest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = pytest.mark.browser

WS = "ConnectionClosedError: received 1011 (internal error)"


@pytest.fixture
def signature(transactional_db, make_user) -> FailureSignature:
    make_user("erin", "engineer")
    make_user("otto", "operator")
    make_user("vera", "viewer")
    ingest([Case(f"test_ws_{i}", "failed", 1.2, WS) for i in range(3)] + [Case("test_ok")], cycle=1, label="c1")
    return FailureSignature.objects.get()


def test_an_engineer_takes_a_signature_and_comments_and_a_viewer_reads(live_server, signature) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    path = f"/signatures/{signature.pk}/"
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            loads: list[str] = []
            log_in(page, live_server.url, "erin", path)
            page.on("framenavigated", lambda frame: loads.append(frame.url) if frame == page.main_frame else None)

            page.click("#assign-me")
            expect(page.locator("#signature-owner")).to_contain_text("erin")
            expect(page.locator("#activity")).to_contain_text("assigned: to erin")
            expect(page.locator("#assign-me")).to_have_count(0)

            page.select_option("#assignee-select", label="otto")
            page.locator("#assign-form button[type=submit]:not([name])").click()
            expect(page.locator("#signature-owner")).to_contain_text("otto")

            page.fill(
                "#comment-body",
                "Seen on **r7** too: [run 7](https://ci.example/runs/7)\n\n<script>window.pwned=1</script>",
            )
            page.click("#comment-form button[type=submit]")
            comment = page.locator("#comments li.comment")
            expect(comment).to_have_count(1)
            expect(comment.locator(".comment-body strong")).to_have_text("r7")
            link = comment.locator(".comment-body a")
            assert link.get_attribute("rel") == "nofollow noopener noreferrer"
            expect(comment).to_contain_text("<script>window.pwned=1</script>")  # shown as text
            assert page.evaluate("window.pwned") is None
            expect(page.locator("#activity")).to_contain_text("comment: Seen on **r7** too")
            assert page.input_value("#comment-body") == ""
            assert loads == [], f"the page reloaded: {loads}"
            assert not [e for e in errors if "Content Security Policy" in e], errors
            shot(page, "signature-discussion")
            # The label stands above a textarea as wide as the form (it once wrapped around it).
            label, area, form = (
                page.locator(sel).bounding_box() for sel in ("#comment-form label", "#comment-body", "#comment-form")
            )
            assert area["y"] >= label["y"] + label["height"] - 1, (label, area)
            assert area["width"] >= 0.95 * form["width"], (area, form)

            signature.refresh_from_db()
            assert signature.assignee.username == "otto"
            assert SignatureComment.objects.filter(signature=signature).count() == 1

            viewer = browser.new_page()
            log_in(viewer, live_server.url, "vera", path)
            expect(viewer.locator("#comments .comment-body strong")).to_have_text("r7")
            expect(viewer.locator("#comment-form")).to_have_count(0)
            expect(viewer.locator("#assign-form")).to_have_count(0)
        finally:
            browser.close()
