"""Comparing two runs: new failures, fixed, still failing, new and removed tests, duration regressions.

Raw SQL where the ORM cannot say it: one GROUP BY over both runs' results gives every list's count,
and set operations (EXCEPT, INTERSECT) give a list's page. Both plan as hash or sort operations, never
as a nested loop, whatever the planner believes about the runs' sizes (a run ingested a second ago has
no statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from ..models import Outcome, TestCase, TestResult, TestRun
from .columns import RUN_SUMMARY_FIELDS

FAILING = (Outcome.FAILED, Outcome.ERROR)
COMPARE_PAGE = 50
# A passed test is a duration regression when it took this much longer, in both ratio and seconds.
SLOWER_RATIO = 1.5
SLOWER_BY_S = 0.5

COMPARE_LISTS = {
    "new_failures": "New failures",
    "fixed": "Fixed",
    "still_failing": "Still failing",
    "new_tests": "New tests",
    "removed_tests": "Removed tests",
    "slower": "Duration regressions",
}


def previous_full_run(run: TestRun, look_back: int = 20) -> TestRun | None:
    """The run a run is compared with by default: the previous complete full run of its session.

    A session often alternates suites (the whole e2e suite, then the P1 subset): among the latest
    ``look_back`` earlier complete full runs, the most recent one of a similar size (half to twice as
    many tests) is taken, so that a P1 run is compared with the previous P1 run. Failing that, the
    most recent one.
    """
    earlier = list(
        TestRun.objects.filter(session_id=run.session_id, counted=True, scope=TestRun.Scope.ALL)
        .filter(Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, pk__lt=run.pk))
        .select_related("session", "cycle")
        .only(*RUN_SUMMARY_FIELDS, "environment_id", "session__id", "session__slug", "session__title", "cycle__number")
        .order_by("-created_at", "-id")[:look_back]
    )
    similar = next((r for r in earlier if run.total / 2 <= r.total <= run.total * 2), None)
    return similar or (earlier[0] if earlier else None)


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
class CompareRow:
    """One test of a comparison list with its result in each run (None where the run did not have it)."""

    case: TestCase
    now: TestResult | None
    was: TestResult | None

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


def _per_case_sql(table: str) -> str:
    """Per test, how each run saw it: one GROUP BY over both runs' results (placeholders: a × 5, b × 3, a, b)."""
    failing = "('failed', 'error')"
    return (
        "SELECT case_id, "
        "SUM(CASE WHEN run_id = %s THEN 1 ELSE 0 END) AS n, "
        "SUM(CASE WHEN run_id = %s AND outcome IN " + failing + " THEN 1 ELSE 0 END) AS nf, "
        "SUM(CASE WHEN run_id = %s AND outcome = 'passed' THEN 1 ELSE 0 END) AS np, "
        "MAX(CASE WHEN run_id = %s AND outcome = 'passed' THEN duration END) AS nd, "
        "MIN(CASE WHEN run_id = %s THEN id END) AS nid, "
        "SUM(CASE WHEN run_id = %s THEN 1 ELSE 0 END) AS w, "
        "SUM(CASE WHEN run_id = %s AND outcome IN " + failing + " THEN 1 ELSE 0 END) AS wf, "
        "MAX(CASE WHEN run_id = %s AND outcome = 'passed' THEN duration END) AS wd "
        f"FROM {table} WHERE run_id IN (%s, %s) GROUP BY case_id"
    )


# A list's condition on the per-test figures above (shared by the counts and the "slower" page).
_CONDITIONS = {
    "new_failures": "nf > 0 AND wf = 0",
    "fixed": "wf > 0 AND np > 0",
    "still_failing": "nf > 0 AND wf > 0",
    "new_tests": "n > 0 AND w = 0",
    "removed_tests": "w > 0 AND n = 0",
    "slower": f"nd > wd * {SLOWER_RATIO} AND nd >= wd + {SLOWER_BY_S}",
}


def _per_case_params(run: TestRun, base: TestRun) -> list[int]:
    a, b = run.pk, base.pk
    return [a, a, a, a, a, b, b, b, a, b]


def compare_counts(run: TestRun, base: TestRun) -> dict[str, int]:
    """How many tests each list holds, all six in one aggregation over the two runs' results.

    GROUP BY plans as a hash or sort aggregate, never as a nested loop, so it costs one pass over both
    runs whatever the planner believes about their sizes (a run ingested a second ago has no statistics).
    """
    table = connection.ops.quote_name(TestResult._meta.db_table)
    sums = ", ".join(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)" for cond in _CONDITIONS.values())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sums} FROM ({_per_case_sql(table)}) per_case", _per_case_params(run, base))
        values = cursor.fetchone()
    return {name: int(value or 0) for name, value in zip(_CONDITIONS, values, strict=True)}


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
            f"SELECT case_id FROM ({_per_case_sql(table)}) per_case WHERE {_CONDITIONS['slower']} "
            f"ORDER BY nd - wd DESC, case_id LIMIT {int(size)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, _per_case_params(run, base))
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


def _compare_rows(case_ids: list[int], run: TestRun, base: TestRun) -> list[CompareRow]:
    """The page's tests with both runs' results: one query, a few index probes (index result_case_run)."""
    results = (
        TestResult.objects.filter(run_id__in=[run.pk, base.pk], case_id__in=case_ids)
        .select_related("case")
        .only(
            "id", "run_id", "case_id", "outcome", "duration", "suspect", "signature_id", "message",
            "case__id", "case__nodeid", "case__priority",
        )
        .order_by("id")
    )  # fmt: skip
    rows: dict[int, CompareRow] = {}
    for result in results:
        row = rows.setdefault(result.case_id, CompareRow(case=result.case, now=None, was=None))
        if result.run_id == run.pk and row.now is None:
            row.now = result
        elif result.run_id == base.pk and row.was is None:
            row.was = result
    return [rows[case_id] for case_id in case_ids if case_id in rows]


def compare_list(
    name: str,
    run: TestRun,
    base: TestRun,
    *,
    counts: dict[str, int],
    after: int | None = None,
    size: int = COMPARE_PAGE,
) -> CompareList:
    """One list of the comparison: a page of its tests (keyset on the test id, from ``after``) and its count.

    Two queries when the list is not empty (its test ids, then their results), none when it is.
    """
    count = counts.get(name, 0)
    if not count:
        return CompareList(name, COMPARE_LISTS[name], [], 0, None)
    ids = compare_case_ids(name, run, base, after=after if name != "slower" else None, size=size)
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
    counts = compare_counts(run, base)
    context["lists"] = [
        compare_list(name, run, base, counts=counts, after=after if name == wanted else None) for name in COMPARE_LISTS
    ]
    return context


def compare_list_section(run: TestRun, base: TestRun, name: str, *, after: int | None) -> dict:
    """The context of one list's partial (its "more" button): the counts, then that list's page."""
    counts = compare_counts(run, base)
    return {"run": run, "base": base, "item": compare_list(name, run, base, counts=counts, after=after)}
