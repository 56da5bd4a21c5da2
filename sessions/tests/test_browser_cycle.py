"""An operator runs a whole cycle from the session page in a real browser, with a real worker behind it.

Log in, open a demo-like session, choose a revision, click Run cycle, watch the progress counts rise
while htmx polls, and see the run finish (the page reloads itself on the 286 that ends the polling).

Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a thread
with a running loop: the data is written before the browser starts and read after it closes, and
DJANGO_ALLOW_ASYNC_UNSAFE covers the live server's teardown of this thread's connection.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from sessions.models import Deployment, Environment, LoopSession, TestRun, WorkStatus
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.worker import celery_worker  # noqa: F401 - the fixture

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.worker]

TESTS = 80
SUITE = f"""
import time, pytest

@pytest.mark.parametrize("i", range({TESTS}))
def test_checkout_step(i):
    time.sleep(0.1)
    assert i % 20 != 13, "the payment provider answered 502"
"""


@pytest.fixture
def demo_like(transactional_db, make_user, tmp_path: Path) -> LoopSession:
    make_user("otto", "operator")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_checkout.py").write_text(textwrap.dedent(SUITE))
    env = Environment.objects.create(
        name="staging-demo",
        working_dir=str(tmp_path),
        deploy_command=[
            "{python}",
            "-c",
            "import sys, time; time.sleep(0.5); print('deployed', sys.argv[1])",
            "{revision}",
        ],
        test_command=["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
        revisions=[
            {"revision": "r1", "commit": "2cb57056afa8", "message": "real agent execution over WebSocket"},
            {"revision": "r2", "commit": "44aee3cf06e3", "message": "fix the 1011 race"},
        ],
        default_revision="r1",
    )
    return LoopSession.objects.create(
        environment=env, slug="demo", title="Demo: all P1 tests pass on staging", mission="Deploy, test, fix, repeat."
    )


def test_an_operator_runs_a_cycle_and_watches_it_finish(live_server, celery_worker, demo_like) -> None:  # noqa: F811
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(f"{live_server.url}/accounts/login/?next=/sessions/demo/")
            page.fill("input[name=username]", "otto")
            page.fill("input[name=password]", "pw-otto")
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{live_server.url}/sessions/demo/")

            page.select_option("#operate-revision", "r2")
            shot(page, "operate-session")
            page.click("#operate-run-cycle")
            page.wait_for_url("**/runs/*/", timeout=15_000)
            run_url = page.url

            # The counts rise while the suite runs (htmx swaps the partial every 2 s).
            seen: list[int] = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if page.locator("#run-summary .badge.finished").count():
                    break
                total = page.locator("#progress-total")
                if total.count() and page.locator("#run-progress[data-status=running]").count():
                    value = int(total.inner_text())
                    if value and (not seen or value != seen[-1]):
                        seen.append(value)
                        if len(seen) == 2:
                            shot(page, "operate-progress")
                time.sleep(0.3)
            assert len(seen) >= 2 and seen == sorted(seen), f"progress counts seen: {seen}"
            # All results can be stored a moment before the run is marked finished: the last count
            # seen while running may be the whole suite.
            assert seen[0] < seen[-1] <= TESTS

            # The 286 that stops the polling comes with HX-Refresh: the page shows the final summary.
            expect(page.locator("#run-summary .badge.finished")).to_be_visible(timeout=30_000)
            expect(page.locator("#run-summary")).to_contain_text("Finished")
            expect(page).to_have_url(run_url)
            assert page.locator("#run-progress").count() == 0
            expect(page.locator("#operate-rerun-failed")).to_contain_text("Rerun failed (4)")
            shot(page, "operate-finished")
        finally:
            browser.close()

    run = TestRun.objects.get()
    assert run.status == WorkStatus.FINISHED and run.total == TESTS and run.failed == 4
    assert run.deployment.revision == "r2" and run.deployment.status == WorkStatus.SUCCEEDED
    assert Deployment.objects.count() == 1 and run.source == TestRun.Source.UI
