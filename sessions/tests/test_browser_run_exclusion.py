"""Exclude and include in a real Chromium: an operator sets a run aside with a reason, the session page
follows (headline, badge, activity), and takes it back in; the form refuses a blank reason in place.

Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a thread
with a running loop: DJANGO_ALLOW_ASYNC_UNSAFE lifts that for these tests.
"""

from __future__ import annotations

import os

import pytest

from sessions.models import LoopSession, SessionEvent, TestRun
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.test_browser_triage import log_in
from sessions.tests.test_run_exclusion_views import good_run, staging_session, unreachable_run

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = pytest.mark.browser


@pytest.fixture
def runs(transactional_db, make_user) -> tuple[LoopSession, TestRun, TestRun, TestRun]:
    make_user("otto", "operator")
    session = staging_session()
    first, second = good_run(session), good_run(session)
    return session, first, second, unreachable_run(session)


def test_an_operator_excludes_and_includes_a_run_and_the_session_page_follows(live_server, runs) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    session, first, second, bad = runs
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            log_in(page, live_server.url, "otto", session.get_absolute_url())
            expect(page.locator("#headline")).to_have_attribute("data-run", str(second.pk))
            expect(page.locator(f'tr[data-run="{bad.pk}"] .badge.excluded')).to_have_count(1)

            # The automatically excluded run says why and offers a deploy of the newest revision.
            page.goto(f"{live_server.url}{bad.get_absolute_url()}")
            expect(page.locator("#run-excluded")).to_contain_text("target unreachable")
            expect(page.locator("#run-excluded")).to_contain_text("Excluded automatically")
            expect(page.locator("#unreachable-deploy")).to_have_text("Deploy r2")
            shot(page, "run-excluded-unreachable")

            # A blank reason: the browser's own check keeps the form from posting at all.
            page.goto(f"{live_server.url}{second.get_absolute_url()}")
            page.click("#run-exclude")
            assert page.locator("#exclude-reason").evaluate("el => el.validity.valueMissing")
            assert not SessionEvent.objects.filter(run=second).exists()
            # Spaces only pass the browser's check; the server refuses them in place (htmx), naming the field.
            page.fill("#exclude-reason", "   ")
            page.click("#run-exclude")
            expect(page.locator("#counting-message")).to_contain_text("reason: say why the run is excluded")
            assert not TestRun.objects.get(pk=second.pk).excluded

            page.fill("#exclude-reason", "deployed the wrong branch")
            page.click("#run-exclude")
            expect(page.locator("#run-excluded")).to_contain_text("deployed the wrong branch")
            expect(page.locator("#run-excluded")).to_contain_text("Excluded by otto")
            shot(page, "run-excluded-by-operator")

            page.goto(f"{live_server.url}{session.get_absolute_url()}")
            expect(page.locator("#headline")).to_have_attribute("data-run", str(first.pk))
            expect(page.locator(f'tr[data-run="{second.pk}"] .badge.excluded')).to_have_count(1)
            expect(page.locator("#activity li").first).to_contain_text("deployed the wrong branch")
            expect(page.locator("#activity li").first.locator(f'a[href="{second.get_absolute_url()}"]')).to_have_count(
                1
            )
            shot(page, "session-after-exclusion")

            page.goto(f"{live_server.url}{second.get_absolute_url()}")
            page.fill("#include-reason", "it was the right branch")
            page.click("#run-include")
            expect(page.locator("#run-exclude")).to_be_visible()
            expect(page.locator("#run-excluded")).to_have_count(0)
            page.goto(f"{live_server.url}{session.get_absolute_url()}")
            expect(page.locator("#headline")).to_have_attribute("data-run", str(second.pk))
            expect(page.locator("#activity li[data-action=included]")).to_contain_text("it was the right branch")
        finally:
            browser.close()
