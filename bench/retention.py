"""Benchmark: pruning the detail of about a million results, and the database's size before and after.

Run: `BENCH_DATABASE_URL=postgres://root@127.0.0.1:5432/NAME .venv/bin/python bench/retention.py`, on a
database made by `manage.py generate_history` (for instance `--cycles 100 --tests 10000`: 1,000,000 results
through the real ingest path). It changes that database: use a copy you can lose.

Steps, each timed: `prune --dry-run` (the estimate); `prune` with every environment keeping the full detail
of its sessions' latest cycle only (no limit in days); `VACUUM (ANALYZE)` of the results table (the space of
the dropped text becomes reusable by the next results, the files keep their size); `VACUUM FULL` of it (the
files shrink: what the disk gets back). Sizes are `pg_total_relation_size` of the results table (heap, TOAST
and indexes) and `pg_database_size`, per million results. Writes bench/out/retention.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def sizes(cursor, table: str) -> dict:
    cursor.execute(
        "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s), pg_database_size(current_database())",
        [table, table, table],
    )
    total, heap, indexes, database = cursor.fetchone()
    cursor.execute(f"SELECT count(*) FROM {table}")
    rows = cursor.fetchone()[0]
    per_million = 1_000_000 / rows if rows else 0
    return {
        "results": rows,
        "results_table_mb": round(total / 1e6, 1),
        "heap_mb": round(heap / 1e6, 1),
        "toast_mb": round((total - heap - indexes) / 1e6, 1),
        "indexes_mb": round(indexes / 1e6, 1),
        "database_mb": round(database / 1e6, 1),
        "results_table_mb_per_million": round(total / 1e6 * per_million, 1),
        "database_mb_per_million": round(database / 1e6 * per_million, 1),
    }


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        raise SystemExit("set BENCH_DATABASE_URL to a database you can lose (it is pruned)")
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "loopdash.settings", "DEBUG": "0"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from sessions.models import Environment, TestResult
    from sessions.services import retention

    table = TestResult._meta.db_table
    report: dict = {"loadavg_start": os.getloadavg()}
    with connection.cursor() as cursor:
        report["before"] = sizes(cursor, table)
    print("before:", report["before"], flush=True)
    Environment.objects.update(detail_days=0, detail_cycles=1)
    t0 = time.perf_counter()
    estimate = retention.prune(dry_run=True)
    report["dry_run"] = {
        "s": round(time.perf_counter() - t0, 1),
        "runs": estimate.runs,
        "results_with_text": estimate.results,
        "text_mb": round(estimate.text_bytes / 1e6, 1),
    }
    print("dry run:", report["dry_run"], flush=True)
    t0 = time.perf_counter()
    done = retention.prune()
    report["prune"] = {"s": round(time.perf_counter() - t0, 1), "runs": done.runs, "results_written": done.results}
    print("prune:", report["prune"], flush=True)
    with connection.cursor() as cursor:
        report["after_prune"] = sizes(cursor, table)
        print("after prune:", report["after_prune"], flush=True)
        t0 = time.perf_counter()
        cursor.execute(f"VACUUM (ANALYZE) {table}")
        report["vacuum_s"] = round(time.perf_counter() - t0, 1)
        report["after_vacuum"] = sizes(cursor, table)
        print(f"after VACUUM ({report['vacuum_s']} s):", report["after_vacuum"], flush=True)
        t0 = time.perf_counter()
        cursor.execute(f"VACUUM FULL {table}")
        report["vacuum_full_s"] = round(time.perf_counter() - t0, 1)
        report["after_vacuum_full"] = sizes(cursor, table)
        print(f"after VACUUM FULL ({report['vacuum_full_s']} s):", report["after_vacuum_full"], flush=True)
    before, after = report["before"], report["after_vacuum_full"]
    report["shrink"] = {
        "results_table": round(before["results_table_mb"] / after["results_table_mb"], 2),
        "database": round(before["database_mb"] / after["database_mb"], 2),
    }
    report["loadavg_end"] = os.getloadavg()
    print("shrink:", report["shrink"], "load average:", report["loadavg_start"], "→", report["loadavg_end"])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "retention.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
