"""Partitioning the results table by run: the figures behind the plan past ten million results.

Run: `.venv/bin/python bench/partitions.py [--database ld_scale_5m] [--runs-per-partition 500] [--repeat 20]`
(after `bench/pages.py --sizes 5m` has built the database). It changes nothing of loopdash's own tables:

1. copies `loop_sessions_testresult` into `bench_results_part`, a table partitioned by RANGE (run_id), one
   partition per ``--runs-per-partition`` runs, with the same indexes (created per partition);
2. times the queries the pages make of the results (a run's first page, its failures, its counts, a test's
   history, a signature's latest samples), each ``--repeat`` times against both tables, alternating, and
   prints medians with the plan's partitions touched;
3. times index maintenance on ingestion: 100,000 new results inserted into the whole table and into the
   newest partition (each in a transaction rolled back);
4. times retention both ways for the oldest partition's runs: `UPDATE ... SET message = ''` on the whole
   table (rolled back) against rewriting that partition without its text (`CREATE TABLE ... AS`, its
   indexes, detach the old one, attach the new one; rolled back);
5. reports sizes: the whole table's indexes against one partition's; then drops `bench_results_part`.

Writes bench/out/partitions.json. Timings are wall-clock medians from the client (psycopg 3); compare the
two columns of one run, not runs taken at different loads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PLAIN, PART = "loop_sessions_testresult", "bench_results_part"
INDEXES = {  # name suffix: definition (as migrations 0003 and 0018 and the models declare them)
    "run_id": "(run_id, id)",
    "case_run": "(case_id, run_id)",
    "run_outcome": "(run_id, outcome, id) WHERE outcome <> 'passed'",
    "run_suspect": "(run_id, id) WHERE suspect",
    "signature_recent": "(signature_id, run_id, id) WHERE signature_id IS NOT NULL",
}


def dsn(database: str) -> str:
    base = os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
    return f"{base.rstrip('/')}/{database}"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_partitioned(conn: psycopg.Connection, per: int) -> list[str]:
    """The copy, partitioned by run id; returns the partitions' names, oldest first."""
    conn.execute(f"DROP TABLE IF EXISTS {PART}")
    conn.execute(f"CREATE TABLE {PART} (LIKE {PLAIN} INCLUDING DEFAULTS) PARTITION BY RANGE (run_id)")
    top = conn.execute(f"SELECT max(run_id) FROM {PLAIN}").fetchone()[0]
    names = []
    for start in range(0, top + 1, per):
        name = f"{PART}_{start // per:03d}"
        conn.execute(f"CREATE TABLE {name} PARTITION OF {PART} FOR VALUES FROM ({start}) TO ({start + per})")
        names.append(name)
    started = time.perf_counter()
    conn.execute(f"INSERT INTO {PART} SELECT * FROM {PLAIN}")
    copy_s = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute(f"ALTER TABLE {PART} ADD PRIMARY KEY (run_id, id)")
    for suffix, definition in INDEXES.items():
        conn.execute(f"CREATE INDEX {PART}_{suffix} ON {PART} {definition}")
    conn.execute(f"ANALYZE {PART}")
    say(f"partitioned copy: {len(names)} partitions, rows copied in {copy_s:.1f} s, indexes in "
        f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return names


def probes(conn: psycopg.Connection) -> dict[str, tuple[str, tuple]]:
    """The pages' queries of the results, with real arguments from the data."""
    latest, oldest = conn.execute(f"SELECT max(run_id), min(run_id) FROM {PLAIN}").fetchone()
    failing = conn.execute("SELECT id FROM loop_sessions_testrun WHERE failed > 0 ORDER BY id DESC LIMIT 1").fetchone()[
        0
    ]
    case = conn.execute(f"SELECT case_id FROM {PLAIN} WHERE run_id = %s ORDER BY id LIMIT 1", (latest,)).fetchone()[0]
    signature = conn.execute(
        "SELECT id FROM loop_sessions_failuresignature ORDER BY result_count DESC LIMIT 1"
    ).fetchone()[0]
    cols = "id, case_id, outcome, duration, suspect"
    return {
        "run page, first 51 results (latest run)": (
            f"SELECT {cols} FROM {{t}} WHERE run_id = %s ORDER BY id LIMIT 51", (latest,)),
        "run page, first 51 results (oldest run)": (
            f"SELECT {cols} FROM {{t}} WHERE run_id = %s ORDER BY id LIMIT 51", (oldest,)),
        "run page, failures filter": (
            f"SELECT {cols} FROM {{t}} WHERE run_id = %s AND outcome IN ('failed', 'error') ORDER BY id LIMIT 51",
            (failing,)),
        "a run's counts by outcome": ("SELECT outcome, count(*) FROM {t} WHERE run_id = %s GROUP BY outcome", (failing,)),
        "a test's history, newest 50": (
            "SELECT run_id, outcome, duration FROM {t} WHERE case_id = %s ORDER BY run_id DESC LIMIT 50", (case,)),
        "a signature's latest 10 samples": (
            "SELECT id, run_id, case_id FROM {t} WHERE signature_id = %s ORDER BY run_id DESC, id DESC LIMIT 10",
            (signature,)),
    }  # fmt: skip


def columns(conn: psycopg.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (PLAIN,),
        )
    ]


def time_query(conn: psycopg.Connection, sql: str, args: tuple) -> float:
    started = time.perf_counter()
    conn.execute(sql, args).fetchall()
    return (time.perf_counter() - started) * 1000


def partitions_touched(conn: psycopg.Connection, sql: str, args: tuple) -> int:
    """How many partitions the plan reads (after pruning at planning time)."""
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, args).fetchone()[0]
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            name = node.get("Relation Name", "")
            if name.startswith(f"{PART}_"):
                found.add(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plan)
    return len(found)


def measure_queries(conn: psycopg.Connection, repeat: int) -> list[dict]:
    rows = []
    for label, (sql, args) in probes(conn).items():
        plain_sql, part_sql = sql.format(t=PLAIN), sql.format(t=PART)
        for _ in range(3):  # warm both
            time_query(conn, plain_sql, args)
            time_query(conn, part_sql, args)
        plain, part = [], []
        for _ in range(repeat):
            plain.append(time_query(conn, plain_sql, args))
            part.append(time_query(conn, part_sql, args))
        row = {
            "query": label,
            "whole_ms": round(statistics.median(plain), 2),
            "partitioned_ms": round(statistics.median(part), 2),
            "partitions_read": partitions_touched(conn, part_sql, args),
        }
        say(f"  {label:45} whole {row['whole_ms']:7.2f} ms   partitioned {row['partitioned_ms']:7.2f} ms "
            f"({row['partitions_read']} partition(s) in the plan)")  # fmt: skip
        rows.append(row)
    return rows


def measure_insert(conn: psycopg.Connection, rows: int) -> dict:
    """100,000 new results of a new run, into each table: the indexes' maintenance as the table grows."""
    top_id, top_run = conn.execute(f"SELECT max(id), max(run_id) FROM {PLAIN}").fetchone()
    names = columns(conn)
    renumbered = {"id": f"id + {top_id} + 1", "run_id": str(top_run)}
    source = f"SELECT {', '.join(renumbered.get(c, c) for c in names)} FROM {PLAIN} ORDER BY id DESC LIMIT {rows}"  # the newest rows, renumbered into the newest run (whose partition exists)
    out = {}
    for table in (PLAIN, PART):
        times = []
        for _ in range(3):
            with conn.transaction(force_rollback=True):
                started = time.perf_counter()
                conn.execute(f"INSERT INTO {table} ({', '.join(names)}) {source}")
                times.append(time.perf_counter() - started)
        out[table] = round(min(times), 2)
    say(f"  insert {rows:,} results: whole table {out[PLAIN]:.2f} s, partitioned {out[PART]:.2f} s (best of 3)")
    return {"rows": rows, "whole_s": out[PLAIN], "partitioned_s": out[PART]}


def measure_retention(conn: psycopg.Connection, oldest: str, per: int) -> dict:
    """Blank the text of the oldest partition's runs: UPDATE in place, or rewrite the partition."""
    start = int(oldest.rsplit("_", 1)[1]) * per
    bounds = (start, start + per)
    count = conn.execute(f"SELECT count(*) FROM {oldest}").fetchone()[0]
    with conn.transaction(force_rollback=True):
        started = time.perf_counter()
        conn.execute(
            f"UPDATE {PLAIN} SET message = '', details = '' WHERE run_id >= %s AND run_id < %s "
            "AND (message <> '' OR details <> '')",
            bounds,
        )
        update_s = time.perf_counter() - started
    with conn.transaction(force_rollback=True):
        started = time.perf_counter()
        blanked = {"message": "''::text AS message", "details": "''::text AS details"}
        conn.execute(f"CREATE TABLE {oldest}_pruned (LIKE {PART} INCLUDING DEFAULTS)")
        names = columns(conn)
        conn.execute(
            f"INSERT INTO {oldest}_pruned ({', '.join(names)}) "
            f"SELECT {', '.join(blanked.get(c, c) for c in names)} FROM {oldest}"
        )
        conn.execute(f"ALTER TABLE {PART} DETACH PARTITION {oldest}")
        conn.execute(
            f"ALTER TABLE {PART} ATTACH PARTITION {oldest}_pruned FOR VALUES FROM ({bounds[0]}) TO ({bounds[1]})"
        )
        conn.execute(f"DROP TABLE {oldest}")
        rewrite_s = time.perf_counter() - started
    say(f"  blank the text of {count:,} results: UPDATE {update_s:.1f} s (then VACUUM FULL to give the disk "
        f"back), rewrite the partition {rewrite_s:.1f} s (disk given back at once)")  # fmt: skip
    return {"rows": count, "update_s": round(update_s, 1), "rewrite_partition_s": round(rewrite_s, 1)}


def sizes(conn: psycopg.Connection, names: list[str]) -> dict:
    def mb(sql: str, args: tuple = ()) -> float:
        return round(conn.execute(sql, args).fetchone()[0] / 1e6, 1)

    whole = mb("SELECT pg_indexes_size(%s)", (PLAIN,))
    per = [mb("SELECT pg_indexes_size(%s)", (name,)) for name in names]
    rows = [conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in names]
    say(f"  indexes: whole table {whole:,.0f} MB; per partition {min(per):,.0f}-{max(per):,.0f} MB "
        f"({min(rows):,}-{max(rows):,} rows each)")  # fmt: skip
    return {"whole_indexes_mb": whole, "partition_indexes_mb": per, "partition_rows": rows,
            "whole_table_mb": mb("SELECT pg_total_relation_size(%s)", (PLAIN,))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="ld_scale_5m")
    parser.add_argument("--runs-per-partition", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--insert-rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep bench_results_part afterwards")
    parser.add_argument("--out", type=Path, default=OUT / "partitions.json")
    args = parser.parse_args()
    with psycopg.connect(dsn(args.database), autocommit=True) as conn:
        results = conn.execute(f"SELECT count(*) FROM {PLAIN}").fetchone()[0]
        say(f"{args.database}: {results:,} results; load average {os.getloadavg()[0]:.1f}")
        names = build_partitioned(conn, args.runs_per_partition)
        try:
            report = {
                "database": args.database,
                "results": results,
                "runs_per_partition": args.runs_per_partition,
                "loadavg_start": os.getloadavg(),
                "sizes": sizes(conn, names),
                "queries": measure_queries(conn, args.repeat),
                "insert": measure_insert(conn, args.insert_rows),
                "retention": measure_retention(conn, names[0], args.runs_per_partition),
                "loadavg_end": os.getloadavg(),
            }
        finally:
            if not args.keep:
                conn.execute(f"DROP TABLE IF EXISTS {PART}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    say(f"written {args.out}")


if __name__ == "__main__":
    main()
