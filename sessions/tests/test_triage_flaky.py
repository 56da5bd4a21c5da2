"""Flakiness: passed and failed on the same revision; the flip rate over the last 30 runs; the test page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions.models import LoopSession, TestCase, TestRun
from sessions.services.flaky import WINDOW, flip_rate
from sessions.tests.test_pages import Case, deploy, ingest

pytestmark = pytest.mark.django_db
SNAPSHOT = "AssertionError: agents not ready in status snapshot"


def run(outcome: str, cycle: int, label: str, *, suspect: bool = False) -> TestRun:
    return ingest(
        [Case("test_snapshot", outcome, 0.001 if suspect else 0.4, SNAPSHOT), Case("test_stable", "passed", 0.5)],
        session="flaky", cycle=cycle, label=label,
    )  # fmt: skip


def case() -> TestCase:
    return TestCase.objects.get(nodeid__endswith="test_snapshot")


@pytest.mark.parametrize(
    "history, rate",
    [
        ("", None),
        ("P", None),
        ("PPPP", 0.0),
        ("PF", 1.0),
        ("PFPF", 1.0),
        ("PPPF", 1 / 3),
        ("PEPP", 2 / 3),
        ("FEFE", 0.0),
    ],
)
def test_flip_rate_counts_changes_between_pass_and_fail(history: str, rate: float | None) -> None:
    assert flip_rate(history) == (None if rate is None else round(rate, 4))


def test_failed_then_passed_on_a_rerun_of_the_same_revision_is_flaky() -> None:
    first = run("failed", 1, "full")
    deployment = deploy(first, "r6", "d098e31c45b1")
    TestRun.objects.filter(pk=first.pk).update(deployment=deployment)
    assert case().flaky_at is None  # failing alone proves nothing
    rerun = run("passed", 1, "rerun")
    test = case()
    assert test.flaky_at is not None and test.flaky_run == rerun
    assert test.flaky_key == "r6 (d098e31c45)"
    assert test.recent == "FP" and test.flip_rate == 1.0
    stable = TestCase.objects.get(nodeid__endswith="test_stable")
    assert stable.recent == "" and stable.flaky_at is None  # never failed: no history kept


def test_failing_on_one_revision_and_passing_on_the_next_is_a_fix_not_a_flake() -> None:
    first = run("failed", 1, "c1")
    TestRun.objects.filter(pk=first.pk).update(deployment=deploy(first, "r1", "aaaaaaa111"))
    second = run("passed", 2, "c2")
    TestRun.objects.filter(pk=second.pk).update(deployment=deploy(second, "r2", "bbbbbbb222"))
    test = case()
    assert test.flaky_at is None
    assert test.recent == "FP"  # still a flip in the history


def test_runs_without_deployments_are_grouped_by_cycle() -> None:
    run("passed", 1, "a")
    second = run("failed", 1, "b")
    assert case().flaky_at is not None
    assert case().flaky_key == f"cycle {second.cycle_id}"


def test_a_first_failure_seeds_the_history_from_earlier_results() -> None:
    for i in range(5):
        run("passed", i + 1, f"p{i}")
    run("failed", 6, "f")
    assert case().recent == "PPPPPF"
    assert case().flip_rate == 0.2


def test_the_history_keeps_the_last_30_runs() -> None:
    run("failed", 1, "first")
    for i in range(WINDOW + 3):
        run("passed" if i % 2 else "failed", 2 + i, f"r{i}")
    assert len(case().recent) == WINDOW


def test_incomplete_runs_do_not_count() -> None:
    from sessions.services.flaky import record_run

    broken = run("failed", 1, "cut off")
    TestCase.objects.update(recent="")
    TestRun.objects.filter(pk=broken.pk).update(incomplete=True, counted=False)  # as the pipeline writes it
    broken.refresh_from_db()
    record_run(broken)
    assert case().recent == ""


def test_the_session_lists_flaky_tests_and_the_test_page_shows_the_strip(client, viewer) -> None:
    first = run("failed", 1, "full")
    TestRun.objects.filter(pk=first.pk).update(deployment=deploy(first, "r6", "d098e31c45b1"))
    run("passed", 1, "rerun")
    run("passed", 2, "later", suspect=True)
    client.force_login(viewer)
    session = LoopSession.objects.get(slug="flaky")
    html = client.get(reverse("session_detail", args=[session.slug])).content.decode()
    flaky_card = html.split('id="flaky"', 1)[1].split("</section>", 1)[0]
    assert "test_snapshot" in flaky_card and "test_stable" not in flaky_card
    assert "r6 (d098e31c45)" in flaky_card

    response = client.get(reverse("test_detail", args=[case().pk]))
    html = response.content.decode()
    facts = response.context["facts"]
    assert [r.outcome for r in facts.strip] == ["failed", "passed", "passed"]
    assert facts.flip_rate == 0.5
    assert len(facts.suspects) == 1
    assert html.count('class="cell ') >= 3 and 'class="cell passed suspect"' in html
    assert '<script id="duration-figure" type="application/json">' in html
    assert "passed and failed on r6 (d098e31c45)" in html
    assert "agents not ready" in "".join(s.title for s in facts.signatures)
