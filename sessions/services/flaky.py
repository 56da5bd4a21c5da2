"""Flakiness, kept on TestCase when a run ends so that pages never scan results for it.

A test is **flaky** when it both passed and failed (or errored) on the same deployed revision: the
same commit, or, for runs that no deployment describes, the same cycle. A failed test that passes on a
rerun in the same cycle is the usual case. Its **flip rate** is how often its outcome changed between
pass and fail over its last 30 executed results (skipped and xfailed results are not counted): 0 for a
test that never changed, 1 for one that alternates every run.

The history (``TestCase.recent``, one letter per run) is kept only for tests that failed within their
last 30 runs: a test that only passed cannot have flipped. When a test fails for the first time its
history is seeded from its earlier results (one windowed query), so the flip rate is right from the
start; once its last failure leaves the window the history is dropped again.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from ..models import Deployment, Outcome, TestCase, TestResult, TestRun, WorkStatus

WINDOW = 30
CODES = {Outcome.PASSED: "P", Outcome.FAILED: "F", Outcome.ERROR: "E"}
FAILING = (Outcome.FAILED, Outcome.ERROR)
# When a test appears twice in one run, the worse outcome stands for the run.
_RANK = {"P": 0, "E": 1, "F": 2}


def flip_rate(history: str) -> float | None:
    """Changes between passing and failing over consecutive results; None with fewer than two."""
    states = [c == "P" for c in history if c in "PFE"]
    if len(states) < 2:
        return None
    flips = sum(1 for a, b in zip(states, states[1:], strict=False) if a != b)
    return round(flips / (len(states) - 1), 4)


def deployment_of(run: TestRun) -> Deployment | None:
    """The deployment a run tested: its own, else the latest succeeded one of its cycle started before it."""
    if run.deployment_id:
        return Deployment.objects.filter(pk=run.deployment_id).first()
    started = run.started_at or run.created_at
    return (
        Deployment.objects.filter(cycle_id=run.cycle_id, status=WorkStatus.SUCCEEDED, created_at__lte=started)
        .order_by("-created_at", "-id")
        .first()
    )


def revision_key(run: TestRun) -> tuple[str, Q]:
    """A label for the revision a run tested, and a filter for the other runs of that revision."""
    deployment = deployment_of(run)
    if deployment is None:
        return f"cycle {run.cycle_id}", Q(cycle_id=run.cycle_id, deployment__isnull=True)
    if deployment.commit_sha:
        same = Deployment.objects.filter(environment_id=run.environment_id, commit_sha=deployment.commit_sha)
        label = f"{deployment.revision} ({deployment.commit_sha[:10]})"
    else:
        same = Deployment.objects.filter(environment_id=run.environment_id, revision=deployment.revision)
        label = deployment.revision
    ids = list(same.values_list("pk", flat=True)[:500])
    return label, Q(deployment_id__in=ids) | Q(deployment__isnull=True, cycle__deployments__in=ids)


def _chunks(items: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _mark_flaky(run: TestRun) -> int:
    """Tests that failed here and passed in another run of the same revision, or the other way round."""
    label, same_revision = revision_key(run)
    siblings = (
        TestRun.objects.filter(same_revision, environment_id=run.environment_id, counted=True)
        .exclude(pk=run.pk)
        .values("pk")
    )
    sibling_ids = list(siblings.values_list("pk", flat=True)[:1000])
    if not sibling_ids:
        return 0

    def case_ids(run_ids: list[int], outcomes: tuple[str, ...]) -> QuerySet:
        return (
            TestResult.objects.filter(run_id__in=run_ids, outcome__in=outcomes)
            .values_list("case_id", flat=True)
            .order_by()
        )

    # Set operations: hashed or sorted by the database, never a nested loop between two large runs.
    passed = (Outcome.PASSED,)
    flipped_back = case_ids([run.pk], FAILING).intersection(case_ids(sibling_ids, passed))
    broke_here = case_ids([run.pk], passed).intersection(case_ids(sibling_ids, FAILING))
    ids = set(flipped_back) | set(broke_here)
    if ids:
        TestCase.objects.filter(pk__in=ids).update(flaky_key=label[:100], flaky_run=run, flaky_at=timezone.now())
    return len(ids)


def _seed(case_ids: list[int], run: TestRun) -> dict[int, str]:
    """Histories of tests failing for the first time, from their earlier results (newest 29 runs each)."""
    # Tests first seen in this run have no history: skip them before the window query, which a fresh
    # 100,000-result upload (no planner statistics yet) would otherwise answer with scans of the results.
    older = []
    for chunk in _chunks(case_ids, 5000):
        older += TestCase.objects.filter(pk__in=chunk, created_at__lt=run.created_at).values_list("pk", flat=True)
    return _histories(older, before_run=run.pk, newest=WINDOW - 1)


def _outcomes_of_tracked(run: TestRun) -> tuple[dict[int, str], dict[int, str]]:
    """({case: code in this run}, {case: its history}) for the tests this run failed or that are tracked.

    Failing results come from the (run, outcome) index; the tracked tests' results in this run are
    looked up through the (case, run) index, a chunk of ids at a time, so a 100,000-result run with a
    few thousand tracked tests never joins all its results to their cases.
    """
    codes: dict[int, str] = {}
    recent: dict[int, str] = {}

    def keep(case_id: int, outcome: str) -> None:
        code = CODES[outcome]
        if _RANK[code] >= _RANK.get(codes.get(case_id, "P"), 0):
            codes[case_id] = code

    failing = TestResult.objects.filter(run=run, outcome__in=FAILING).values_list("case_id", "outcome", "case__recent")
    for case_id, outcome, history in failing:
        keep(case_id, outcome)
        recent[case_id] = history or ""
    tracked = dict(
        TestCase.objects.filter(environment_id=run.environment_id).exclude(recent="").values_list("id", "recent")
    )
    recent.update(tracked)
    waiting = [case_id for case_id in tracked if case_id not in codes]
    for chunk in _chunks(waiting, 2000):
        rows = TestResult.objects.filter(run=run, case_id__in=chunk, outcome=Outcome.PASSED).values_list(
            "case_id", "outcome"
        )
        for case_id, outcome in rows:
            keep(case_id, outcome)
    return codes, recent


def _write_histories(rows: list[tuple[int, str, float | None]]) -> None:
    """Set (recent, flip_rate) of many cases: one UPDATE … FROM (VALUES …) per chunk, not one per row.

    On PostgreSQL, one UPDATE … FROM unnest(three arrays) for all of them: three parameters instead
    of three per row (a VALUES list of 10,000 rows cost 0.3 s of client CPU to bind and the server as
    much to parse, for a new environment's first upload with 10,000 failures).
    """
    table = connection.ops.quote_name(TestCase._meta.db_table)
    if connection.vendor == "postgresql":
        if rows:
            ids, histories, flips = zip(*rows, strict=True)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} AS t SET recent = v.recent, flip_rate = v.flip "
                    "FROM unnest(%s::bigint[], %s::varchar[], %s::double precision[]) AS v(id, recent, flip) "
                    "WHERE t.id = v.id",
                    [list(ids), list(histories), list(flips)],
                )
        return
    for i in range(0, len(rows), 3000):
        chunk = rows[i : i + 3000]
        params = [value for row in chunk for value in row]
        values = ", ".join(["(%s, %s, %s)"] * len(chunk))
        sql = (
            f"UPDATE {table} SET recent = v.column2, flip_rate = v.column3 "
            f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _update_histories(run: TestRun, first_failures: dict[int, str]) -> int:
    """Append this run's outcome to the history of every test it failed and every tracked test it ran.

    A test whose last 30 results hold no failure any more stops being tracked (its history is
    cleared): only tests that failed recently are followed, so the work per run stays small.
    ``first_failures``: tests created by this run with their history already written (``record_run``).
    """
    codes, recent = _outcomes_of_tracked(run)
    if not codes:
        return 0
    for case_id in first_failures:
        recent[case_id] = ""  # created by this run: no history before it (what is stored is this run's letter)
    new = [case_id for case_id in codes if not recent.get(case_id) and case_id not in first_failures]
    recent.update(_seed(new, run))
    rows = []
    for case_id, code in codes.items():
        history = (recent.get(case_id, "") + code)[-WINDOW:]
        if "F" not in history and "E" not in history:
            rows.append((case_id, "", None))
        elif first_failures.get(case_id) != history:  # a one-letter history has no flip rate: NULL, as written
            rows.append((case_id, history, flip_rate(history)))
    _write_histories(rows)
    return len(rows)


def record_run(run: TestRun, first_failures: dict[int, str] | None = None) -> None:
    """Update flakiness from a run that ended; runs that do not count (interrupted, excluded) are ignored.

    ``first_failures``: test cases that an upload created from a failed or errored result, with the
    letter it already wrote as their history (``ingestion/tally.py``: 10,000 new failing tests cost an
    UPDATE of 10,000 rows otherwise). Their history is only corrected where this run's letter differs
    (the same test repeated in the file, worse later), and cleared if the run does not count.
    """
    first_failures = first_failures or {}
    if not run.counted:
        if first_failures:
            _write_histories([(case_id, "", None) for case_id in first_failures])
        return
    _update_histories(run, first_failures)
    _mark_flaky(run)


def recount_after_counting_changed(run: TestRun) -> None:
    """A run was excluded or included after it ended: its tests' flakiness follows at once.

    The tests it ran get their histories rebuilt from the counted runs (the newest 30 each), and the
    flaky marks of its revision are cleared and set again from that revision's counted runs.
    """
    case_ids = list(TestResult.objects.filter(run=run).values_list("case_id", flat=True).distinct().order_by())
    rows = []
    for case_id, history in _histories(case_ids).items():
        tracked = "F" in history or "E" in history
        rows.append((case_id, history if tracked else "", flip_rate(history) if tracked else None))
    untouched = set(case_ids) - {row[0] for row in rows}
    rows += [(case_id, "", None) for case_id in untouched]
    _write_histories(rows)
    _label, same_revision = revision_key(run)
    revision_runs = TestRun.objects.filter(same_revision, environment_id=run.environment_id)
    TestCase.objects.filter(flaky_run__in=revision_runs.values("pk")).update(
        flaky_key="", flaky_run=None, flaky_at=None
    )
    for counted in revision_runs.filter(counted=True).order_by("id")[:50]:
        _mark_flaky(counted)


def _histories(case_ids: list[int], *, before_run: int | None = None, newest: int = WINDOW) -> dict[int, str]:
    """The ``newest`` counted outcomes of each test (before ``before_run``), oldest first, a letter a run.

    When a test has several results in one run, the worst outcome stands for the run.
    """
    history: dict[int, dict[int, str]] = {}
    for chunk in _chunks(case_ids):
        rows = TestResult.objects.filter(case_id__in=chunk, outcome__in=list(CODES), run__counted=True)
        if before_run is not None:
            rows = rows.filter(run_id__lt=before_run)
        rows = (
            rows.annotate(n=Window(RowNumber(), partition_by=[F("case_id")], order_by=F("run_id").desc()))
            .filter(n__lte=newest)
            .values_list("case_id", "run_id", "outcome")
        )
        for case_id, run_id, outcome in rows:
            runs = history.setdefault(case_id, {})
            code = CODES[outcome]
            if _RANK[code] >= _RANK.get(runs.get(run_id, "P"), 0):
                runs[run_id] = code
    return {case_id: "".join(runs[k] for k in sorted(runs)) for case_id, runs in history.items()}
