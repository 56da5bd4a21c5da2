"""Comparing two runs: new failures, fixed, still failing, new and removed tests, duration regressions.

Two ended runs are compared once and the answer stored (``services.comparisons``): the page reads the
counts from one row and a page of a list from one index range, whatever the runs' sizes. While either
run is live the comparison is made on each request instead, in raw SQL where the ORM cannot say it:
one GROUP BY over both runs' results gives every list's count, and set operations (EXCEPT, INTERSECT)
give a list's page; both plan as hash or sort operations, never as a nested loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from ..models import ComparisonEntry, Outcome, TestResult, TestRun
from ..services.comparisons import (
    CONDITIONS,
    has_ended,
    per_case_params,
    per_case_sql,
    previous_full_run,
    stored_comparison,
)

FAILING = (Outcome.FAILED, Outcome.ERROR)
COMPARE_PAGE = 50
COMPARE_LISTS = {
    "new_failures": "New failures",
    "fixed": "Fixed",
    "still_failing": "Still failing",
    "new_tests": "New tests",
    "removed_tests": "Removed tests",
    "slower": "Duration regressions",
}


def compare_base(run: TestRun, other: int | None) -> tuple[TestRun | None, bool]:
    """The run to compare with, and whether the one asked for is of another environment (no comparison).

    ``other`` when given (404 if there is no such run), else ``previous_full_run``.
    """
    if other is not None:
        base = get_object_or_404(TestRun.objects.select_related("session", "cycle"), pk=other)
    else:
        base = previous_full_run(run)
    if base is not None and base.environment_id != run.environment_id:
        return None, True
    return base, False


@dataclass(slots=True)
class CompareTest:
    """The test of a comparison row: what the page shows of it (plain values, not a model instance)."""

    pk: int
    nodeid: str
    priority: str


@dataclass(slots=True)
class CompareResult:
    """One run's result of a comparison row's test (plain values: 600 model instances cost the page more
    than its queries)."""

    pk: int
    outcome: str
    duration: float | None
    suspect: bool
    signature_id: int | None
    message: str


@dataclass(slots=True)
class CompareRow:
    """One test of a comparison list with its result in each run (None where the run did not have it)."""

    case: CompareTest
    now: CompareResult | None
    was: CompareResult | None

    @property
    def slower_by(self) -> float | None:
        if self.now is None or self.was is None or self.now.duration is None or self.was.duration is None:
            return None
        return self.now.duration - self.was.duration


@dataclass(slots=True)
class CompareList:
    name: str
    label: str
    rows: list[CompareRow]
    count: int
    next_after: int | None


def compare_counts(run: TestRun, base: TestRun) -> dict[str, int]:
    """How many tests each list holds, all six in one aggregation over the two runs' results.

    GROUP BY plans as a hash or sort aggregate, never as a nested loop, so it costs one pass over both
    runs whatever the planner believes about their sizes (a run ingested a second ago has no statistics).
    """
    table = connection.ops.quote_name(TestResult._meta.db_table)
    sums = ", ".join(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)" for cond in CONDITIONS.values())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sums} FROM ({per_case_sql(table)}) per_case", per_case_params(run.pk, base.pk))
        values = cursor.fetchone()
    return {name: int(value or 0) for name, value in zip(CONDITIONS, values, strict=True)}


def _case_ids(run_id: int, outcomes: tuple[str, ...] | None, after: int | None) -> QuerySet:
    qs = TestResult.objects.filter(run_id=run_id)
    if outcomes:
        qs = qs.filter(outcome__in=outcomes)
    if after is not None:
        qs = qs.filter(case_id__gt=after)
    return qs.values_list("case_id", flat=True).order_by()


def compare_case_ids(name: str, run: TestRun, base: TestRun, *, after: int | None, size: int) -> list[int]:
    """The tests of one list, a page in test-id order (the slowest first for "slower").

    Set operations (EXCEPT, INTERSECT) on the two runs' test ids: hashed or sorted by the database,
    never a nested loop, whatever its statistics say. Failure lists start from the failing results
    (index result_run_outcome), which are few.
    """
    a, b = run.pk, base.pk
    failing, passed = tuple(FAILING), (Outcome.PASSED,)
    if name == "slower":
        table = connection.ops.quote_name(TestResult._meta.db_table)
        sql = (
            f"SELECT case_id FROM ({per_case_sql(table)}) per_case WHERE {CONDITIONS['slower']} "
            f"ORDER BY nd - wd DESC, case_id LIMIT {int(size)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, per_case_params(run.pk, base.pk))
            return [row[0] for row in cursor.fetchall()]
    if name == "new_failures":
        qs = _case_ids(a, failing, after).difference(_case_ids(b, failing, after))
    elif name == "still_failing":
        qs = _case_ids(a, failing, after).intersection(_case_ids(b, failing, after))
    elif name == "fixed":
        qs = _case_ids(b, failing, after).intersection(_case_ids(a, passed, after))
    elif name == "new_tests":
        qs = _case_ids(a, None, after).difference(_case_ids(b, None, after))
    elif name == "removed_tests":
        qs = _case_ids(b, None, after).difference(_case_ids(a, None, after))
    else:
        raise KeyError(name)
    return list(qs.order_by("case_id")[: size + 1])


def _stored_case_ids(comparison_id: int, name: str, *, after: int | None, size: int) -> list[int]:
    """A page of a stored list: an index range of ``cmpentry_list`` (the slowest first for "slower")."""
    qs = ComparisonEntry.objects.filter(comparison_id=comparison_id, kind=name)
    if name == "slower":
        return list(qs.order_by("-delta", "case_id").values_list("case_id", flat=True)[:size])
    if after is not None:
        qs = qs.filter(case_id__gt=after)
    return list(qs.order_by("case_id").values_list("case_id", flat=True)[: size + 1])


def comparison_counts(run: TestRun, base: TestRun) -> tuple[dict[str, int], int | None]:
    """Every list's count and, when both runs have ended, the id of their stored comparison.

    Ended runs: one query once stored (the first view of a pair that the run-completion pipeline did not
    store computes it, once). A live run: counted from its results on every request.
    """
    if has_ended(run) and has_ended(base):
        comparison = stored_comparison(run, base)
        return comparison.counts, comparison.pk
    return compare_counts(run, base), None


def _compare_rows(case_ids: list[int], run: TestRun, base: TestRun) -> list[CompareRow]:
    """The page's tests with both runs' results: one query, a few index probes (index result_case_run)."""
    results = (
        TestResult.objects.filter(run_id__in=[run.pk, base.pk], case_id__in=case_ids)
        .order_by("id")
        .values_list(
            "id", "run_id", "case_id", "outcome", "duration", "suspect", "signature_id", "message",
            "case__nodeid", "case__priority",
        )
    )  # fmt: skip
    rows: dict[int, CompareRow] = {}
    for pk, run_id, case_id, outcome, duration, suspect, signature_id, message, nodeid, priority in results:
        row = rows.get(case_id)
        if row is None:
            row = rows[case_id] = CompareRow(case=CompareTest(case_id, nodeid, priority), now=None, was=None)
        result = CompareResult(pk, outcome, duration, suspect, signature_id, message)
        if run_id == run.pk and row.now is None:
            row.now = result
        elif run_id == base.pk and row.was is None:
            row.was = result
    return [rows[case_id] for case_id in case_ids if case_id in rows]


def compare_list(
    name: str,
    run: TestRun,
    base: TestRun,
    *,
    counts: dict[str, int],
    stored: int | None = None,
    after: int | None = None,
    size: int = COMPARE_PAGE,
) -> CompareList:
    """One list of the comparison: a page of its tests (keyset on the test id, from ``after``) and its count.

    Two queries when the list is not empty (its test ids, then their results), none when it is. ``stored``:
    the stored comparison to read the test ids from (else they are computed from the results).
    """
    count = counts.get(name, 0)
    if not count:
        return CompareList(name, COMPARE_LISTS[name], [], 0, None)
    after = after if name != "slower" else None
    if stored is not None:
        ids = _stored_case_ids(stored, name, after=after, size=size)
    else:
        ids = compare_case_ids(name, run, base, after=after, size=size)
    more = name != "slower" and len(ids) > size
    ids = ids[:size]
    return CompareList(
        name, COMPARE_LISTS[name], _compare_rows(ids, run, base), count, ids[-1] if more and ids else None
    )


def compare_page(run: TestRun, base: TestRun | None, *, mismatch: bool, wanted: str, after: int | None) -> dict:
    """The context of the comparison page: every list's first page (``wanted`` from ``after``)."""
    context: dict = {"run": run, "base": base, "lists": []}
    if mismatch:
        context["mismatch"] = True
    if base is None:
        return context
    counts, stored = comparison_counts(run, base)
    context["lists"] = [
        compare_list(name, run, base, counts=counts, stored=stored, after=after if name == wanted else None)
        for name in COMPARE_LISTS
    ]
    return context


def compare_list_section(run: TestRun, base: TestRun, name: str, *, after: int | None) -> dict:
    """The context of one list's partial (its "more" button): the counts, then that list's page."""
    counts, stored = comparison_counts(run, base)
    item = compare_list(name, run, base, counts=counts, stored=stored, after=after)
    return {"run": run, "base": base, "item": item}
