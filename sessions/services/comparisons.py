"""Comparing two runs once, when both have ended, and storing the answer (``RunComparison`` and its entries).

A comparison's counts take one pass over both runs' results: 100,000-test runs cost a few hundred
milliseconds, too much for every view of a page. The results of an ended run no longer change (retention
blanks their text, never their outcome or duration), so the pass is made once, by one
``INSERT ... SELECT`` that writes every list's tests, and the page reads one row for the counts and one
index range for a page of a list, whatever the runs' sizes.

When: the run-completion pipeline stores a full run's comparison with the run its page compares it with
by default (``previous_full_run``); any other pair of ended runs is stored the first time a page asks for
it. While either run is still live, pages compute the comparison on each request (``selectors.compare``).
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from ..models import ComparisonEntry, RunComparison, TestResult, TestRun
from ..selectors.columns import RUN_SUMMARY_FIELDS

# A passed test is a duration regression when it took this much longer, in both ratio and seconds.
SLOWER_RATIO = 1.5
SLOWER_BY_S = 0.5
# Memory for the comparison's GROUP BY (about 240 bytes per test), so that 100,000-test runs stay in memory.
COMPARE_WORK_MEM = "64MB"

# Each list's condition on the per-test figures of ``per_case_sql``, in the page's order.
CONDITIONS = {
    "new_failures": "nf > 0 AND wf = 0",
    "fixed": "wf > 0 AND np > 0",
    "still_failing": "nf > 0 AND wf > 0",
    "new_tests": "n > 0 AND w = 0",
    "removed_tests": "w > 0 AND n = 0",
    "slower": f"nd > wd * {SLOWER_RATIO} AND nd >= wd + {SLOWER_BY_S}",
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


def has_ended(run: TestRun) -> bool:
    """Whether ``run``'s results are final: it reached a final status and its summary is written."""
    return run.status in TestRun.FINAL_STATUSES and run.summary_written


def per_case_sql(table: str) -> str:
    """Per test, how each run saw it: one GROUP BY over both runs' results (parameters: ``per_case_params``).

    n / w: results in the run / the base; nf / wf: failing ones; np: passed ones in the run; nd / wd: the
    passed duration in each; GROUP BY plans as a hash or sort aggregate, never a nested loop, whatever the
    planner believes about the runs' sizes (a run ingested a second ago has no statistics).
    """
    failing = "('failed', 'error')"
    return (
        "SELECT case_id, "
        "SUM(CASE WHEN run_id = %s THEN 1 ELSE 0 END) AS n, "
        "SUM(CASE WHEN run_id = %s AND outcome IN " + failing + " THEN 1 ELSE 0 END) AS nf, "
        "SUM(CASE WHEN run_id = %s AND outcome = 'passed' THEN 1 ELSE 0 END) AS np, "
        "MAX(CASE WHEN run_id = %s AND outcome = 'passed' THEN duration END) AS nd, "
        "SUM(CASE WHEN run_id = %s THEN 1 ELSE 0 END) AS w, "
        "SUM(CASE WHEN run_id = %s AND outcome IN " + failing + " THEN 1 ELSE 0 END) AS wf, "
        "MAX(CASE WHEN run_id = %s AND outcome = 'passed' THEN duration END) AS wd "
        f"FROM {table} WHERE run_id IN (%s, %s) GROUP BY case_id"
    )


def per_case_params(run_id: int, base_id: int) -> list[int]:
    a, b = run_id, base_id
    return [a, a, a, a, b, b, b, a, b]


def stored_comparison(run: TestRun, base: TestRun) -> RunComparison:
    """The stored comparison of two ended runs: read when it exists (one query), else computed and stored.

    Two requests computing the same pair at once: the unique (run, base) makes the second one wait for
    the first's commit, fail its insert and read the first's rows.
    """
    found = RunComparison.objects.filter(run_id=run.pk, base_id=base.pk).only("id", "counts").first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return _compute(run.pk, base.pk)
    except IntegrityError:
        return RunComparison.objects.only("id", "counts").get(run_id=run.pk, base_id=base.pk)


def _compute(run_id: int, base_id: int) -> RunComparison:
    """Write every list's tests with one INSERT ... SELECT, then the counts from what was written."""
    comparison = RunComparison.objects.create(run_id=run_id, base_id=base_id, counts={})
    quote = connection.ops.quote_name
    results, entries = quote(TestResult._meta.db_table), quote(ComparisonEntry._meta.db_table)
    selects = " UNION ALL ".join(
        f"SELECT {int(comparison.pk)}, '{name}', case_id, {'nd - wd' if name == 'slower' else 'CAST(NULL AS DOUBLE PRECISION)'} "
        f"FROM per_case WHERE {condition}"
        for name, condition in CONDITIONS.items()
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The GROUP BY holds a row per test (23 MB for 100,000): with the default work_mem (4 MB) it spilled
            # to disk in five batches, 300 ms instead of 200 ms. For this statement only (reset below).
            cursor.execute(f"SET LOCAL work_mem = '{COMPARE_WORK_MEM}'")
        cursor.execute(
            f"WITH per_case AS ({per_case_sql(results)}) "
            f"INSERT INTO {entries} (comparison_id, kind, case_id, delta) {selects}",
            per_case_params(run_id, base_id),
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL work_mem TO DEFAULT")
        cursor.execute(f"SELECT kind, COUNT(*) FROM {entries} WHERE comparison_id = %s GROUP BY kind", [comparison.pk])
        found = dict(cursor.fetchall())
    comparison.counts = {name: int(found.get(name, 0)) for name in CONDITIONS}
    RunComparison.objects.filter(pk=comparison.pk).update(counts=comparison.counts)
    return comparison


def record_run(run: TestRun) -> RunComparison | None:
    """Run-completion step: store an ended full run's comparison with its default base, if it has one.

    Only full runs: a rerun of a few failures would pay a pass over its whole base for a page that may
    never be opened (its comparison is stored on first view instead).
    """
    if run.scope != TestRun.Scope.ALL or not has_ended(run):
        return None
    base = previous_full_run(run)
    if base is None or base.environment_id != run.environment_id or not has_ended(base):
        return None
    return stored_comparison(run, base)
