"""The live run page: one poll for the cards, the progress and the failures by signature as they arrive.

Server side: ``LiveFigures`` (what a worker keeps while it stores results) on real stored results, the
time left from the recent rate, the panel's partial (what it shows, that it agrees with itself, its query
count whatever the size of the run, 286 once the run ended). On a real worker: the run's row carries the
live figures while it runs.
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from sessions.ingest.records import Outcome, ParsedResult
from sessions.models import Environment, ImpactRule, LoopSession, TestRun, WorkStatus
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.writer import ResultWriter
from sessions.services.live_figures import LiveFigures
from sessions.services.run_completion import complete_run
from sessions.templatetags.operate import time_left
from sessions.tests.test_operate_views import HX
from sessions.tests.test_tasks_integration import ended_run, make_session, on_worker, wait_for, write_suite
from sessions.tests.worker import celery_worker  # noqa: F401 - the fixture
from sessions.work import queueing


@pytest.fixture
def session(db) -> LoopSession:
    env = Environment.objects.create(name="staging", test_command=["{python}", "-m", "pytest", "tests"])
    return LoopSession.objects.create(environment=env, title="Shop", slug="shop")


def live_run(session: LoopSession, **fields) -> TestRun:
    now = timezone.now()
    return TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=now - timezone.timedelta(seconds=40),
        heartbeat_at=now, **fields,
    )  # fmt: skip


def result(i: int, outcome: str, message: str = "") -> ParsedResult:
    return ParsedResult(
        nodeid=f"tests/test_shop.py::test_step[{i}]", name=f"test_step[{i}]", outcome=Outcome(outcome),
        duration=0.5, message=message, error_type="AssertionError" if message else "",
        markers=("p1",) if i % 2 else (),
    )  # fmt: skip


class Worker:
    """Stores batches and ticks like RunExecution: results, then the live counts and figures in one UPDATE."""

    def __init__(self, run: TestRun) -> None:
        self.run, self.writer, self.figures = run, ResultWriter(run), LiveFigures(run.pk)
        self.counts = {"passed": 0, "failed": 0}
        self.clock = 0.0

    def tick(self, batch: list[ParsedResult], seconds: float = 1.0) -> TestRun:
        if batch:
            self.writer.add(batch)
        for r in batch:
            self.counts["failed" if r.outcome == Outcome.FAILED else "passed"] += 1
        self.clock += seconds
        total = sum(self.counts.values())
        self.figures.observe(total, now=self.clock)
        TestRun.objects.filter(pk=self.run.pk).update(
            total=total, passed=self.counts["passed"], failed=self.counts["failed"],
            live_figures=self.figures.as_json(),
        )  # fmt: skip
        return TestRun.objects.get(pk=self.run.pk)


@pytest.fixture
def p1_rule(session):
    return ImpactRule.objects.create(
        environment=session.environment, match=ImpactRule.Match.MARKER, pattern="p1", priority="P1"
    )


# -- what the worker keeps ------------------------------------------------------------------------------------------


def test_failures_are_grouped_by_signature_newest_first_as_they_arrive(session, p1_rule) -> None:
    worker = Worker(live_run(session))
    run = worker.tick([result(1, "passed"), result(2, "failed", "TimeoutError: agent never answered")])
    first = run.live_figures["signatures"]
    assert [(s["results"], s["test"]) for s in first] == [(1, "tests/test_shop.py::test_step[2]")]
    assert first[0]["message"] == "TimeoutError: agent never answered"
    run = worker.tick(
        [
            result(3, "failed", "KeyError: 'cart'"),
            result(4, "failed", "TimeoutError: agent never answered"),
            result(5, "failed", "KeyError: 'cart'"),
        ]
    )
    figures = run.live_figures
    assert [(s["results"], s["test"]) for s in figures["signatures"]] == [
        (2, "tests/test_shop.py::test_step[5]"),  # its newest failure is the newest of all
        (2, "tests/test_shop.py::test_step[4]"),
    ]
    assert figures["signature_count"] == 2
    # Counts by priority so far: the odd steps carry the p1 marker.
    assert figures["by_priority"]["P1"] | {"pass_rate": None} == {
        "tests": 3, "passed": 1, "failed": 2, "errors": 0, "skipped": 0, "xfailed": 0, "xpassed": 0,
        "pass_rate": None,
    }  # fmt: skip
    assert figures["by_priority"]["P1"]["pass_rate"] == 33.33  # a percentage, as in the summary


def test_the_rate_is_recent_not_the_average_since_the_start(session) -> None:
    figures = LiveFigures(live_run(session).pk)
    for second in range(10):  # collection and set-up: nothing yet
        figures.observe(0, now=float(second))
    assert figures.rate() == (None, 0.0)
    total = 0
    for second in range(10, 50):  # 2 tests a second for 40 s ...
        total += 2
        figures.observe(total, now=float(second))
    for second in range(50, 80):  # ... then 10 a second
        total += 10
        figures.observe(total, now=float(second))
    rate, span = figures.rate()
    assert 9.0 <= rate <= 10.0 and 29.0 <= span <= 31.0  # the last 30 s only
    assert figures.as_json()["rate"] == round(rate, 3)


@pytest.mark.parametrize(
    ("total", "rate", "expected", "text"),
    [
        (100, 10.0, 1000, "about 1 min 30 s left"),  # 900 tests at 10 a second
        (260, 3.0, 1000, "about 4 min 06 s left"),
        (990, 3.0, 1000, "a few seconds left"),  # 10 tests at 3 a second: never "0 s"
        (1000, 3.0, 1000, "finishing: the expected number of tests has run"),
        (1200, 3.0, 1000, "finishing: the expected number of tests has run"),
        (10, None, 1000, "estimating the time left…"),
        (10, 0.0, 1000, "no test ended in the last 30 s: no estimate"),
        (10, 5.0, None, ""),
    ],
)
def test_time_left_is_never_zero_while_tests_remain(session, total, rate, expected, text) -> None:
    run = live_run(session, total=total, live_figures={"rate": rate})
    assert time_left(run, expected) == text


def test_an_89_s_run_is_not_announced_as_7_minutes(session) -> None:
    """Pytest spends 20 s collecting, then 660 tests run in 69 s: the estimate follows the tests' pace."""
    figures = LiveFigures(live_run(session).pk)
    for second in range(1, 21):
        figures.observe(0, now=float(second))
    for second in range(21, 30):
        figures.observe((second - 20) * 9, now=float(second))
    rate, _span = figures.rate()
    run = live_run(session, total=81, live_figures={"rate": rate})
    left = time_left(run, 660)
    seconds = int(re.search(r"(\d+) s left", left).group(1)) + 60 * int(re.search(r"(\d+) min", left).group(1))
    assert 60 <= seconds <= 70, left  # (660 - 81) / 9 ≈ 64 s, not 7 min


# -- the panel ------------------------------------------------------------------------------------------------------


def test_the_live_page_polls_one_partial_whose_cards_and_bar_agree(client, viewer, session, p1_rule) -> None:
    run = live_run(session, properties={"eta": {"expected_tests": 100}})
    worker = Worker(run)
    worker.tick([result(i, "passed") for i in range(30)] + [result(31, "failed", "KeyError: 'cart'")])
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert page.count('hx-trigger="every 2s"') == 1  # one poll for the whole page
    assert f'hx-get="/runs/{run.pk}/live/"' in page and "/progress/" not in page
    assert "No test in this run has a priority" not in page
    response = client.get(f"/runs/{run.pk}/live/", headers=HX)
    html = response.content.decode()
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in html
    assert 'id="live-total">31<' in html and 'id="progress-total">31<' in html  # the card and the bar: one row
    assert 'id="live-failed">1<' in html and 'id="progress-failed">1<' in html
    assert "KeyError: &#x27;cart&#x27;" in html and "tests/test_shop.py::test_step[31]" in html
    assert 'id="live-priorities"' in html and "No test in this run has a priority" not in html
    assert 'id="run-status-badge" hx-swap-oob="true"' in html

    worker.tick([result(i, "passed") for i in range(32, 60)])
    html = client.get(f"/runs/{run.pk}/live/", headers=HX).content.decode()
    assert 'id="live-total">59<' in html and 'id="progress-total">59<' in html


@pytest.mark.parametrize("size", [10, 3_000])
def test_the_live_partial_costs_the_same_few_queries_whatever_the_run_size(
    client,
    viewer,
    session,
    p1_rule,
    size,
    django_assert_num_queries,
) -> None:
    run = live_run(session, properties={"eta": {"expected_tests": 2 * size}})
    worker = Worker(run)
    for start in range(0, size, 1000):
        batch = [
            result(i, "failed", f"Error{i % 40}: {i % 40}") if i % 7 == 0 else result(i, "passed")
            for i in range(start, min(size, start + 1000))
        ]
        worker.tick(batch)
    client.force_login(viewer)
    # the auth session and the user (2), the run with its session and environment (1), the titles of
    # the signatures shown (1): nothing counts or groups results
    with django_assert_num_queries(4):
        response = client.get(f"/runs/{run.pk}/live/", headers=HX)
    assert response.status_code == 200 and 'class="live-failure"' in response.content.decode()


def test_polling_stops_and_the_page_reloads_when_the_run_ends(client, viewer, session) -> None:
    run = live_run(session)
    worker = Worker(run)
    worker.tick([result(1, "passed"), result(2, "failed", "KeyError: 'cart'")])
    TestRun.objects.filter(pk=run.pk).update(status=WorkStatus.FINISHED, finished_at=timezone.now())
    client.force_login(viewer)
    assert client.get(f"/runs/{run.pk}/live/", headers=HX).status_code == 200  # no summary yet: still live
    complete_run(TestRun.objects.get(pk=run.pk), writer=worker.writer, status=WorkStatus.FINISHED)
    response = client.get(f"/runs/{run.pk}/live/", headers=HX)
    assert response.status_code == 286 and response["HX-Refresh"] == "true"
    assert "hx-trigger" not in response.content.decode()
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "every 2s" not in page and 'id="run-live"' not in page and 'id="signatures"' in page


def test_the_live_partial_needs_a_login(client, session) -> None:
    run = live_run(session)
    assert client.get(f"/runs/{run.pk}/live/", headers=HX).status_code == 302


# -- on a real worker -----------------------------------------------------------------------------------------------

SLOW_SUITE = """
import time, pytest

@pytest.mark.parametrize("i", range(24))
def test_step(i):
    time.sleep(0.25)
    assert i % 6 != 5, "the cart service answered 502"
"""


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@on_worker
def test_a_real_run_writes_its_live_figures_while_it_runs(tmp_path) -> None:
    session = make_session("live", write_suite(tmp_path, test_live=SLOW_SUITE))
    run = queueing.request_tests(session)

    def failing_while_running() -> TestRun | None:
        row = TestRun.objects.get(pk=run.pk)
        figures = row.live_figures or {}
        return row if row.status == WorkStatus.RUNNING and figures.get("signatures") else None

    seen = wait_for(failing_while_running, 60, "live figures with a failure while the run runs")
    entry = seen.live_figures["signatures"][0]
    assert entry["test"].startswith("tests/test_live.py::test_step[") and "502" in entry["message"]
    assert entry["results"] <= seen.failed
    ended = ended_run(run.pk)
    assert ended.status == WorkStatus.FINISHED and ended.failed == 4
    assert sum(s["results"] for s in ended.live_figures["signatures"]) == 4
