"""In a real browser, with a real worker: run only the tests ticked on a run page; watch a run's cards live.

1. An operator opens a finished run, ticks two tests (one with the keyboard: Tab to it, Space), clicks
   "Run chosen tests (2)", lands on the new run's page and sees it finish; the worker ran exactly those two.
2. An operator starts the whole suite and watches the live panel: the Tests card rises while the run
   runs, always equal to the progress bar's count (one row, one poll), a failure appears grouped by its
   signature before the run ends, and once it ends the page reloads into its final form (polling stops).

Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a thread with
a running loop: the data is written before the browser starts and read after it closes.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from django.utils import timezone

from sessions.ingest.records import Outcome, ParsedResult
from sessions.models import Environment, LoopSession, TestResult, TestRun, WorkStatus
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.writer import ResultWriter
from sessions.services.run_completion import complete_run
from sessions.tests.browser import launch, require_chromium, shot
from sessions.tests.worker import celery_worker  # noqa: F401 - the fixture

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PICK_SUITE = """
def test_alpha():
    pass

def test_bravo():
    assert False, "bravo broke"

def test_charlie():
    pass

def test_delta():
    pass
"""
LIVE_TESTS = 60
LIVE_SUITE = f"""
import time, pytest

@pytest.mark.parametrize("i", range({LIVE_TESTS}))
def test_checkout_step(i):
    time.sleep(0.15)
    assert i % 20 != 7, "the payment provider answered 502"
"""


# The running panel's Tests card, the progress bar's count and the failures shown, read in one go.
READ_PANEL = """() => {
  const panel = document.querySelector("#run-live[data-status=running]");
  const card = panel && panel.querySelector("#live-total");
  const bar = panel && panel.querySelector("#progress-total");
  if (!card || !bar) return null;
  return [card.textContent.trim(), bar.textContent.trim(), panel.querySelectorAll(".live-failure").length];
}"""


@pytest.fixture
def shop(transactional_db, make_user, tmp_path: Path) -> LoopSession:
    make_user("otto", "operator")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_pick.py").write_text(textwrap.dedent(PICK_SUITE))
    (tmp_path / "tests" / "test_live.py").write_text(textwrap.dedent(LIVE_SUITE))
    env = Environment.objects.create(
        name="shop",
        working_dir=str(tmp_path),
        test_command=["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
    )
    return LoopSession.objects.create(environment=env, slug="shop", title="Shop: checkout works")


def finished_pick_run(session: LoopSession) -> TestRun:
    """A finished run of test_pick.py, stored by the workers' writer: the page the operator starts from."""
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
    )  # fmt: skip
    writer = ResultWriter(run)
    writer.add(
        ParsedResult(
            nodeid=f"tests/test_pick.py::{name}", name=name, outcome=Outcome(outcome), duration=0.2,
            message="bravo broke" if outcome == "failed" else "", error_type="AssertionError",
        )
        for name, outcome in (("test_alpha", "passed"), ("test_bravo", "failed"), ("test_charlie", "passed"),
                              ("test_delta", "passed"))
    )  # fmt: skip
    return complete_run(run, writer=writer, status=WorkStatus.FINISHED)


def log_in(page, base: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", "pw-otto")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_url}")


def test_an_operator_runs_only_the_tests_ticked_on_a_run_page(live_server, celery_worker, shop) -> None:  # noqa: F811
    first = finished_pick_run(shop)
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in(page, live_server.url, f"/runs/{first.pk}/")
            run_button = page.locator("#run-chosen-run")
            expect(run_button).to_contain_text("Run chosen tests (0)")
            expect(run_button).to_be_disabled()
            # The keyboard: focus the box of test_bravo and press Space.
            page.get_by_label("Choose tests/test_pick.py::test_bravo").focus()
            page.keyboard.press("Space")
            page.get_by_label("Choose tests/test_pick.py::test_delta").check()
            expect(run_button).to_contain_text("Run chosen tests (2)")
            shot(page, "run-chosen-ticked")
            run_button.click()
            page.wait_for_url(lambda url: url.rstrip("/") != f"{live_server.url}/runs/{first.pk}", timeout=15_000)
            new_url = page.url
            expect(page.locator("#run-summary .badge.finished")).to_be_visible(timeout=90_000)
            expect(page).to_have_url(new_url)
            expect(page.locator("h1")).to_contain_text(f"rerun of {first.pk} selected (2 tests)")
            shot(page, "run-chosen-finished")
        finally:
            browser.close()

    rerun = TestRun.objects.exclude(pk=first.pk).get()
    assert rerun.status == WorkStatus.FINISHED and rerun.rerun_of == first, rerun.log_tail
    ran = sorted(TestResult.objects.filter(run=rerun).values_list("case__name", "outcome"))
    assert ran == [("test_bravo", "failed"), ("test_delta", "passed")]


def test_an_operator_watches_the_cards_change_during_a_run(live_server, celery_worker, shop) -> None:  # noqa: F811
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright

    seen: list[tuple[int, int]] = []  # (Tests card, progress count) while running
    failures_while_running = 0
    with sync_playwright() as p:
        browser = launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in(page, live_server.url, "/sessions/shop/")
            page.fill("#operate-keyword", "test_checkout_step")
            page.click("#operate-run-subset")
            page.wait_for_url("**/runs/*/", timeout=15_000)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if page.locator("#run-summary .badge.finished").count():
                    break
                # One read of the panel as it is now: the card and the bar must come from the same swap.
                values = page.evaluate(READ_PANEL)
                if values is not None:
                    card, bar, failing = int(values[0]), int(values[1]), int(values[2])
                    if card and (not seen or seen[-1] != (card, bar)):
                        seen.append((card, bar))
                        if len(seen) == 2:
                            shot(page, "run-live-cards")
                    failures_while_running = max(failures_while_running, failing)
                time.sleep(0.25)
            expect(page.locator("#run-summary .badge.finished")).to_be_visible(timeout=30_000)
            assert page.locator("#run-live").count() == 0  # the final page: no panel, no polling
            expect(page.locator("#signatures")).to_contain_text("the payment provider answered 502")
            shot(page, "run-live-finished")
        finally:
            browser.close()

    assert len(seen) >= 2, f"cards seen while running: {seen}"
    assert all(card == bar for card, bar in seen), f"the cards and the bar disagreed: {seen}"
    cards = [card for card, _bar in seen]
    assert cards == sorted(cards) and cards[0] < cards[-1] <= LIVE_TESTS
    assert failures_while_running >= 1, "no failure was shown grouped by signature while the run ran"
    run = TestRun.objects.get()
    assert run.status == WorkStatus.FINISHED and run.total == LIVE_TESTS and run.failed == 3
