"""Pre-aggregates that keep a finished run's work proportional to the run, not to the history.

A signature carries lifetime counters (results, distinct tests, distinct modules). Counting them again
from ``TestResult`` whenever a run finishes reads every result the signature ever had: at 1,000,000
stored results a run that shows the eight usual signatures re-reads 161,870 rows and sorts them to
disk, 550 ms, and it grows with every cycle (docs/PERFORMANCE.md, Pages and load). Instead:

- ``results`` is the sum of the signature's ``RunSignature.results`` (one row per run it appeared in,
  written with each run's summary);
- ``tests`` and ``modules`` are the sizes of two sets kept in plain tables created by migration 0003,
  ``loop_sessions_signature_case (signature_id, case_id)`` and ``loop_sessions_signature_module
  (signature_id, module)``: a finished run adds its own pairs (``ON CONFLICT DO NOTHING``, so finishing
  a run twice, or two runs at once, is harmless) and the counts read the primary keys.

The sets only grow. Whatever removes results (deleting runs or sessions, merging signatures) calls
``rebuild_signature_counts`` for the signatures it touched, which recounts them from the stored rows.
Rows of a deleted signature or test case go with it (triggers of migration 0003, also on TRUNCATE).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import NamedTuple

from django.db import connection as default_connection
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ..models import FailureSignature, RunSignature, TestCase, TestResult

SIGNATURE_CASE = "loop_sessions_signature_case"
SIGNATURE_MODULE = "loop_sessions_signature_module"
RESULTS = TestResult._meta.db_table
CASES = TestCase._meta.db_table
RUN_SIGNATURES = RunSignature._meta.db_table


def _in(ids: list[int]) -> tuple[str, list[int]]:
    return ", ".join(["%s"] * len(ids)), ids


class RunPairs(NamedTuple):
    """A run's (signature, test) and (signature, module) pairs, when its writer knows them (``ingestion/tally.py``)."""

    cases: Collection[tuple[int, int]]
    modules: Collection[tuple[int, str]]


def add_run(run_id: int, connection: BaseDatabaseWrapper = default_connection, pairs: RunPairs | None = None) -> None:
    """Add the (signature, test) and (signature, module) pairs of one run's failing results.

    ``pairs``: those pairs as the writer that stored all of the run's results knows them (PostgreSQL),
    instead of reading them back from the run's results.
    """
    if pairs is not None:
        _add_pairs(pairs, connection)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SIGNATURE_CASE} (signature_id, case_id) "
            f"SELECT DISTINCT signature_id, case_id FROM {RESULTS} WHERE run_id = %s AND signature_id IS NOT NULL "
            "ON CONFLICT DO NOTHING",
            [run_id],
        )
        cursor.execute(
            f"INSERT INTO {SIGNATURE_MODULE} (signature_id, module) "
            f"SELECT DISTINCT r.signature_id, c.module FROM {RESULTS} r JOIN {CASES} c ON c.id = r.case_id "
            "WHERE r.run_id = %s AND r.signature_id IS NOT NULL ON CONFLICT DO NOTHING",
            [run_id],
        )


def totals(
    signature_ids: Iterable[int], connection: BaseDatabaseWrapper = default_connection
) -> dict[int, dict[str, int]]:
    """Lifetime ``results``, ``tests`` and ``modules`` of each signature, from the pre-aggregates."""
    ids = sorted(set(signature_ids))
    out = {pk: {"results": 0, "tests": 0, "modules": 0} for pk in ids}
    if not ids:
        return out
    marks, params = _in(ids)
    with connection.cursor() as cursor:
        for key, sql in (
            (
                "results",
                f"SELECT signature_id, SUM(results) FROM {RUN_SIGNATURES} WHERE signature_id IN ({marks}) GROUP BY 1",
            ),
            (
                "tests",
                f"SELECT signature_id, COUNT(*) FROM {SIGNATURE_CASE} WHERE signature_id IN ({marks}) GROUP BY 1",
            ),
            (
                "modules",
                f"SELECT signature_id, COUNT(*) FROM {SIGNATURE_MODULE} WHERE signature_id IN ({marks}) GROUP BY 1",
            ),
        ):
            cursor.execute(sql, params)
            for pk, n in cursor.fetchall():
                out[pk][key] = int(n or 0)
    return out


def totals_after_run(
    run_id: int, signature_ids: Iterable[int], pairs: RunPairs | None = None
) -> dict[int, dict[str, int]]:
    """What ``summary`` needs when a run finishes: add the run's pairs, then read its signatures' totals.

    Call it after the run's ``RunSignature`` rows are written (they carry its result counts).
    """
    add_run(run_id, pairs=pairs)
    return totals(signature_ids)


def case_modules(case_ids: Collection[int], connection: BaseDatabaseWrapper = default_connection) -> dict[int, str]:
    """The module of each test case, by primary key."""
    if not case_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, module FROM {CASES} WHERE id = ANY(%s)", [list(case_ids)])
        return dict(cursor.fetchall())


def _add_pairs(pairs: RunPairs, connection: BaseDatabaseWrapper) -> None:
    """``add_run`` from known pairs (PostgreSQL): two inserts of arrays, nothing read."""
    with connection.cursor() as cursor:
        for table, column, rows in (
            (SIGNATURE_CASE, "case_id", pairs.cases),
            (SIGNATURE_MODULE, "module", pairs.modules),
        ):
            if not rows:
                continue
            signature_ids, values = zip(*sorted(rows), strict=True)  # in key order: the B-tree fills page by page
            kind = "bigint" if column == "case_id" else "text"
            cursor.execute(
                f"INSERT INTO {table} (signature_id, {column}) SELECT * FROM unnest(%s::bigint[], %s::{kind}[]) "
                "ON CONFLICT DO NOTHING",
                [list(signature_ids), list(values)],
            )


def rebuild_signature_counts(
    signature_ids: Iterable[int] | None = None, connection: BaseDatabaseWrapper = default_connection
) -> int:
    """Recount the pre-aggregates (and the signatures' counters) from the stored rows; all signatures by default.

    For whatever removed results: deleted runs or sessions, merged signatures. Returns how many
    signatures were recounted.
    """
    ids = None if signature_ids is None else sorted(set(signature_ids))
    if ids == []:
        return 0
    where, params = ("", []) if ids is None else (f" AND signature_id IN ({_in(ids)[0]})", ids)
    where_r = where.replace("signature_id", "r.signature_id")
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {SIGNATURE_CASE} WHERE 1 = 1{where}", params)
        cursor.execute(f"DELETE FROM {SIGNATURE_MODULE} WHERE 1 = 1{where}", params)
        cursor.execute(
            f"INSERT INTO {SIGNATURE_CASE} (signature_id, case_id) SELECT DISTINCT signature_id, case_id "
            f"FROM {RESULTS} WHERE signature_id IS NOT NULL{where} ON CONFLICT DO NOTHING",
            params,
        )
        cursor.execute(
            f"INSERT INTO {SIGNATURE_MODULE} (signature_id, module) SELECT DISTINCT r.signature_id, c.module "
            f"FROM {RESULTS} r JOIN {CASES} c ON c.id = r.case_id WHERE r.signature_id IS NOT NULL{where_r} "
            "ON CONFLICT DO NOTHING",
            params,
        )
        signatures = FailureSignature.objects.using(connection.alias)
        if ids is not None:
            signatures = signatures.filter(pk__in=ids)
        changed = list(signatures.only("id", "result_count", "test_count", "module_count"))
        found = totals([s.pk for s in changed], connection=connection)
        for sig in changed:
            sig.result_count = found[sig.pk]["results"]
            sig.test_count = found[sig.pk]["tests"]
            sig.module_count = found[sig.pk]["modules"]
        FailureSignature.objects.using(connection.alias).bulk_update(
            changed, ["result_count", "test_count", "module_count"], batch_size=500
        )
    return len(changed)
