"""Stored comparisons: computed once when both runs have ended, exact, and read in a constant number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions.models import ComparisonEntry, RunComparison, TestCase, TestRun
from sessions.selectors.compare import COMPARE_LISTS, compare_counts
from sessions.services import comparisons
from sessions.services.deletion import delete_runs
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db

# Every list of the comparison, with duplicates and outcomes that belong to none (skipped, xfail-like).
BEFORE = [
    Case("test_fixed", "failed", 1.0, "AssertionError: was broken"),
    Case("test_fixed_from_error", "error", 1.0, "RuntimeError: was broken"),
    Case("test_still", "failed", 1.0, "AssertionError: still broken"),
    Case("test_still_error", "error", 1.0, "RuntimeError: still"),
    Case("test_breaks", "passed", 1.0),
    Case("test_errors_now", "passed", 1.0),
    Case("test_slows", "passed", 1.0),
    Case("test_slows_a_little", "passed", 1.0),  # 1.4 s later: under the 1.5x ratio
    Case("test_removed", "passed", 1.0),
    Case("test_removed_failing", "failed", 1.0, "AssertionError: gone"),
    Case("test_skips", "skipped", 0.0, "later"),
    Case("test_fails_then_skips", "failed", 1.0, "AssertionError: then skipped"),
] + [Case(f"test_same_{i}", "passed", 1.0) for i in range(30)]
AFTER = [
    Case("test_fixed", "passed", 1.0),
    Case("test_fixed_from_error", "passed", 1.0),
    Case("test_still", "failed", 1.0, "AssertionError: still broken"),
    Case("test_still_error", "failed", 1.0, "AssertionError: now a failure"),
    Case("test_breaks", "failed", 1.0, "AssertionError: broke"),
    Case("test_errors_now", "error", 1.0, "RuntimeError: boom"),
    Case("test_slows", "passed", 3.0),
    Case("test_slows_a_little", "passed", 1.4),
    Case("test_new", "passed", 1.0),
    Case("test_new_failing", "error", 1.0, "RuntimeError: new and broken"),
    Case("test_skips", "failed", 1.0, "AssertionError: ran at last"),
    Case("test_fails_then_skips", "skipped", 0.0, "not now"),
] + [Case(f"test_same_{i}", "passed", 1.0) for i in range(30)]
EXPECTED = {
    "new_failures": {"test_breaks", "test_errors_now", "test_new_failing", "test_skips"},
    "fixed": {"test_fixed", "test_fixed_from_error"},
    "still_failing": {"test_still", "test_still_error"},
    "new_tests": {"test_new", "test_new_failing"},
    "removed_tests": {"test_removed", "test_removed_failing"},
    "slower": {"test_slows"},
}


def stored_names(comparison: RunComparison) -> dict[str, set[str]]:
    entries = ComparisonEntry.objects.filter(comparison=comparison).values_list("kind", "case_id")
    nodeids = dict(TestCase.objects.values_list("pk", "nodeid"))
    found: dict[str, set[str]] = {name: set() for name in COMPARE_LISTS}
    for kind, case_id in entries:
        found[kind].add(nodeids[case_id].rsplit("::", 1)[1])
    return found


def test_a_full_run_stores_its_comparison_when_it_ends_with_exact_lists() -> None:
    before = ingest(BEFORE, cycle=1, label="before")
    after = ingest(AFTER, cycle=2, label="after")
    comparison = RunComparison.objects.get(run=after, base=before)  # written by the run-completion pipeline
    assert stored_names(comparison) == EXPECTED
    assert comparison.counts == {name: len(tests) for name, tests in EXPECTED.items()}
    # The same figures as counting both runs' results on a request (the live path).
    assert comparison.counts == compare_counts(after, before)
    slower = ComparisonEntry.objects.get(comparison=comparison, kind="slower")
    assert slower.delta == pytest.approx(2.0)
    # The first run had nothing to be compared with.
    assert not RunComparison.objects.filter(run=before).exists()


def test_any_other_pair_is_stored_on_its_first_view_and_read_afterwards(client, viewer) -> None:
    first = ingest(BEFORE, cycle=1, label="first")
    ingest(AFTER, cycle=2, label="second")
    third = ingest(BEFORE, cycle=3, label="third")
    assert not RunComparison.objects.filter(run=third, base=first).exists()
    client.force_login(viewer)
    url = reverse("run_compare_with", args=[third.pk, first.pk])
    with CaptureQueriesContext(connection) as computing:
        assert client.get(url).status_code == 200
    comparison = RunComparison.objects.get(run=third, base=first)
    # The same file: no difference, and what failed still fails.
    assert comparison.counts == {**dict.fromkeys(COMPARE_LISTS, 0), "still_failing": 6}
    with CaptureQueriesContext(connection) as reading:
        response = client.get(url)
    assert len(reading) < len(computing)
    assert {item.name: item.count for item in response.context["lists"]} == comparison.counts
    assert RunComparison.objects.filter(run=third, base=first).count() == 1


def test_a_live_run_is_compared_on_each_request_and_never_stored(client, viewer) -> None:
    before = ingest(BEFORE, cycle=1, label="before")
    after = ingest(AFTER, cycle=2, label="after")
    RunComparison.objects.all().delete()
    TestRun.objects.filter(pk=after.pk).update(status="running")
    client.force_login(viewer)
    response = client.get(reverse("run_compare_with", args=[after.pk, before.pk]))
    assert response.status_code == 200
    counts = {item.name: item.count for item in response.context["lists"]}
    assert counts == {name: len(tests) for name, tests in EXPECTED.items()}
    assert not RunComparison.objects.exists()


def test_deleting_a_run_deletes_the_comparisons_it_is_part_of() -> None:
    before = ingest(BEFORE, cycle=1, label="before")
    after = ingest(AFTER, cycle=2, label="after")
    assert RunComparison.objects.filter(run=after, base=before).exists()
    delete_runs(TestRun.objects.filter(pk=before.pk))
    assert not RunComparison.objects.exists()
    assert not ComparisonEntry.objects.exists()


def test_reruns_of_failures_are_not_compared_when_they_end() -> None:
    ingest(BEFORE, cycle=1, label="before")
    after = ingest(AFTER, cycle=2, label="after")
    TestRun.objects.filter(pk=after.pk).update(scope=TestRun.Scope.FAILED)
    after.refresh_from_db()
    RunComparison.objects.all().delete()
    assert comparisons.record_run(after) is None
    assert not RunComparison.objects.exists()


def _pair(size: int, session: str) -> tuple[TestRun, TestRun]:
    """Two runs of ``size`` tests, something in every list: failures move, every 7th test goes, new ones come."""
    before = [
        Case(f"test_{i:05d}", "failed" if i % 10 == 1 else "passed", 1.0, "AssertionError: x") for i in range(size)
    ]
    after = [
        Case(f"test_{i:05d}", "failed" if i % 10 == 2 or i % 20 == 1 else "passed", 1.0, "AssertionError: y")
        for i in range(size)
    ]
    after = [case for i, case in enumerate(after) if i % 7] + [Case(f"test_new_{i:05d}") for i in range(size // 5)]
    return ingest(before, session=session, cycle=1, label="a"), ingest(after, session=session, cycle=2, label="b")


def _queries(client, url: str, query: dict | None = None, headers: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(url, query or {}, headers=headers or {}).status_code == 200
    return len(context)


def test_the_compare_page_makes_the_same_number_of_queries_at_two_sizes(client, viewer) -> None:
    small, big = _pair(60, "small"), _pair(6_000, "big")
    client.force_login(viewer)
    counts = {}
    for name, (base, run) in (("small", small), ("big", big)):
        comparison = RunComparison.objects.get(run=run, base=base)
        assert all(comparison.counts[kind] for kind in ("new_failures", "fixed", "still_failing", "new_tests"))
        url = reverse("run_compare_with", args=[run.pk, base.pk])
        counts[name] = (
            _queries(client, url),
            _queries(client, reverse("run_compare", args=[run.pk])),
            _queries(client, url, {"list": "new_tests", "after": "1"}, {"HX-Request": "true"}),
        )
    assert counts["small"] == counts["big"]
    page, default_page, partial = counts["big"]
    # Session and user, the run, the base, the stored counts, then two per non-empty list (ids, results);
    # the default page finds its base first; a list's partial reads one list.
    assert page <= 5 + 2 * len(COMPARE_LISTS) and default_page <= page + 1 and partial <= 7
    # The page shows a page of each list, never the whole list.
    response = client.get(reverse("run_compare_with", args=[big[1].pk, big[0].pk]))
    lists = {item.name: item for item in response.context["lists"]}
    assert lists["new_tests"].count == 1_200 and len(lists["new_tests"].rows) == 50
    assert lists["new_failures"].count == RunComparison.objects.get(run=big[1]).counts["new_failures"]
