"""Benchmark: every page's server time and SQL queries at 10,000 and at 1,000,000 stored results, side by side.

Run: `.venv/bin/python bench/pages.py [--rebuild] [--repeat 30] [--explain]`.

Two PostgreSQL databases hold the same shape of history at two sizes, made by `manage.py generate_history`
through the real ingest path and kept between runs (`--rebuild` drops and makes them again):

- `ld_scale_10k`: 50 cycles of 180 tests, plus one 1,000-test run ("big-run")       ≈ 10,000 results
- `ld_scale_1m`:  500 cycles of 1,800 tests, plus one 100,000-test run ("big-run")  ≈ 1,000,000 results

The small one has 50 cycles, so that pages which show at most 50 rows (a test's history, a signature's
runs) show as many rows at both sizes: what differs is the data behind them, not the page.

Each size is measured in its own process (Django bound to that database) with Django's test ``Client``,
in process, logged in as a superuser (who sees every control): ``--repeat`` timed requests per page after
``--warmup`` untimed ones; the median and p95 of the wall time of ``client.get`` (middleware, view,
queries, template: the server's time without the network), and the number of SQL queries of one more
request (``CaptureQueriesContext``). The pages are found by URL name (``django.urls.reverse``); any URL
name containing ``compare`` or ``flaky`` that exists is measured too. With ``--explain`` the slowest
queries of each page at the largest size get ``EXPLAIN (ANALYZE, BUFFERS)`` in bench/out/pages-explain.txt.

Writes bench/out/pages.json. Not a test: figures for docs/PERFORMANCE.md (## Pages and load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PG = os.environ.get("BENCH_PG_URL", "postgres://root@127.0.0.1:5432")

# name: (database, history cycles, tests per cycle, big run size)
DATASETS = {
    "10k": ("ld_scale_10k", 50, 180, 1_000),
    "1m": ("ld_scale_1m", 500, 1_800, 100_000),
    # Not measured by default (--sizes 10k,1m,5m): 15 minutes of generation on a quiet machine, 40 on a busy one.
    "5m": ("ld_scale_5m", 2_750, 1_800, 100_000),
}
HISTORY, BIG = "history", "big-run"
GOAL_MEDIAN_MS, GOAL_QUERIES, GOAL_RATIO = 100.0, 15, 1.5


def dsn(db: str) -> str:
    return f"{PG}/{db}"


def psql_url(db: str) -> str:
    return dsn(db).replace("postgres://", "postgresql://")


# -- building the databases (cached) -------------------------------------------------------------------


def manage(db: str, *args: str, quiet: bool = False) -> None:
    env = {**os.environ, "DATABASE_URL": dsn(db)}
    out = subprocess.DEVNULL if quiet else None
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=out)


META = "bench_meta"  # a table in each bench database: what it holds, so that any checkout can reuse it


def read_meta(db: str) -> dict | None:
    import psycopg

    with psycopg.connect(psql_url(db)) as conn:
        if conn.execute("SELECT to_regclass(%s)", (META,)).fetchone()[0] is None:
            return None
        row = conn.execute(f"SELECT value FROM {META} WHERE name = 'dataset'").fetchone()
    return row[0] if row else None


def write_meta(db: str, meta: dict) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(psql_url(db)) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {META} (name text PRIMARY KEY, value jsonb NOT NULL)")
        conn.execute(
            f"INSERT INTO {META} (name, value) VALUES ('dataset', %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (Jsonb(meta),),
        )


def build(name: str, rebuild: bool) -> dict:
    """Create (or reuse) one dataset's database; return what it holds and how long it took to make."""
    import psycopg

    db, cycles, tests, big = DATASETS[name]
    with psycopg.connect(psql_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            exists = False
        if not exists:
            conn.execute(f'CREATE DATABASE "{db}"')
    manage(db, "migrate", "--noinput", "-v", "0")  # also brings a cached database up to new migrations
    meta = read_meta(db)
    if meta and meta.get("complete") and (meta["cycles"], meta["tests"], meta["big_run"]) == (cycles, tests, big):
        print(f"[{name}] using cached database {db} ({meta['results']:,} results; --rebuild to make it again)")
        return meta
    if meta is not None or exists:
        raise SystemExit(f"[{name}] {db} holds something else than this dataset: run with --rebuild")
    print(f"[{name}] building {db}: {cycles} cycles x {tests} tests + a {big:,}-test run", flush=True)
    started = time.perf_counter()
    manage(db, "generate_history", "--session", HISTORY, "--cycles", str(cycles), "--tests", str(tests))
    history_s = time.perf_counter() - started
    t0 = time.perf_counter()
    manage(db, "generate_history", "--session", BIG, "--cycles", "1", "--tests", str(big), "--title", "One big run")
    big_s = time.perf_counter() - t0
    with psycopg.connect(psql_url(db), autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        vacuum_s = time.perf_counter() - t0
        results = conn.execute("SELECT count(*) FROM loop_sessions_testresult").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    meta = {
        "database": db,
        "cycles": cycles,
        "tests": tests,
        "big_run": big,
        "results": results,
        "size": size,
        "history_s": round(history_s, 1),
        "big_run_s": round(big_s, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        "results_per_s": round(results / (history_s + big_s)),
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "complete": True,
    }
    write_meta(db, meta)
    print(
        f"[{name}] built: {results:,} results, {size}, in {history_s + big_s:.0f} s "
        f"({meta['results_per_s']:,} results/s)",
        flush=True,
    )
    return meta


# -- measuring, in a child process bound to one database ---------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def targets() -> list[dict]:
    """The pages to measure, with the objects they show, found in the database and by URL name."""
    from django.db.models import Count
    from django.urls import NoReverseMatch, get_resolver, reverse

    from sessions.models import FailureSignature, LoopSession, TestResult, TestRun

    history = LoopSession.objects.get(slug=HISTORY)
    big = TestRun.objects.filter(session__slug=BIG).order_by("-total").first()
    signature = FailureSignature.objects.order_by("-result_count").first()
    last_full = list(TestRun.objects.filter(session=history, scope=TestRun.Scope.ALL).order_by("-cycle__number")[:2])
    # The test with the longest history: a flaky one, rerun in many cycles.
    case_id, case_results = (
        TestResult.objects.filter(run__session=history)
        .values("case_id")
        .annotate(n=Count("id"))
        .order_by("-n", "case_id")
        .values_list("case_id", "n")
        .first()
    )

    def nth_id(qs, fraction: float) -> int:
        n = qs.count()
        return qs.order_by("id").values_list("id", flat=True)[max(0, int(n * fraction) - 1)]

    results = TestResult.objects.filter(run=big)
    deep_all = nth_id(results, 0.95)
    deep_failed = nth_id(results.filter(outcome="failed"), 0.9)
    deep_q = nth_id(results.filter(case__nodeid__contains="test_chat"), 0.9)
    run_url = reverse("run_detail", args=[big.pk])
    hx = {"HTTP_HX_REQUEST": "true"}
    pages = [
        {"page": "sessions list", "url": reverse("sessions_list"), "note": f"{LoopSession.objects.count()} sessions"},
        {
            "page": "session",
            "url": reverse("session_detail", args=[history.slug]),
            "note": f"{history.cycle_count} cycles, {history.runs.count()} runs",
        },
        {"page": "run", "url": run_url, "note": f"{big.total:,} results"},
        {"page": "run results partial", "url": run_url, "headers": hx, "note": "first page"},
        {"page": "run partial deep", "url": f"{run_url}?after={deep_all}", "headers": hx, "note": "95% deep"},
        {
            "page": "run partial failed deep",
            "url": f"{run_url}?outcome=failed&after={deep_failed}",
            "headers": hx,
            "note": f"{big.failed:,} failed, 90% deep",
        },
        {
            "page": "run partial q deep",
            "url": f"{run_url}?q=test_chat&after={deep_q}",
            "headers": hx,
            "note": "node-id text filter, 90% deep",
        },
        {"page": "run partial P1", "url": f"{run_url}?priority=P1", "headers": hx, "note": "priority filter"},
        {
            "page": "signature",
            "url": reverse("signature_detail", args=[signature.pk]),
            "note": f"{signature.result_count:,} results",
        },
        {"page": "test", "url": reverse("test_detail", args=[case_id]), "note": f"{case_results} runs of history"},
    ]
    try:
        pages.append(
            {
                "page": "run progress partial",
                "url": reverse("operate_run_progress", args=[last_full[0].pk]),
                "headers": hx,
                "note": "ended run (286)",
            }
        )
    except NoReverseMatch:
        pass
    # Pages other engineers are adding: measured when their URL names exist.
    names = sorted(n for n in get_resolver().reverse_dict if isinstance(n, str) and ("compare" in n or "flaky" in n))
    for name in names:
        if name == "run_compare":  # a run against the previous complete full run of its session
            url, note = reverse(name, args=[last_full[0].pk]), "latest full run vs previous (1 cycle apart)"
        elif name == "run_compare_with":  # the worst case: the big run against a full run of the same environment
            url, note = reverse(name, args=[big.pk, last_full[0].pk]), f"{big.total:,}-result run vs a full run"
        else:
            url, note = _reverse_guess(name, history, last_full), "discovered"
        if url:
            pages.append({"page": name.replace("_", " "), "url": url, "note": note})
    return pages


def _reverse_guess(name: str, session, runs) -> str | None:
    """Reverse a URL name whose arguments we can only guess: a session slug, two run ids, or none."""
    from django.urls import NoReverseMatch, reverse

    a, b = (runs[1].pk, runs[0].pk) if len(runs) > 1 else (runs[0].pk, runs[0].pk)
    query = f"?a={a}&b={b}&base={a}&head={b}&run_a={a}&run_b={b}&left={a}&right={b}" if "compare" in name else ""
    for args in ([session.slug], [a, b], [b], []):
        try:
            url = reverse(name, args=args)
        except NoReverseMatch:
            continue
        return url + (query if len(args) < 2 else "")
    return None


def measure(repeat: int, warmup: int, explain: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", "bench@example.invalid", "bench")
    client = Client()
    client.force_login(user)
    rows = []
    plans = []
    for target in targets():
        headers = target.get("headers", {})
        for _ in range(warmup):
            client.get(target["url"], **headers)
        times = []
        status = size = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = client.get(target["url"], **headers)
            times.append((time.perf_counter() - t0) * 1000)
            status, size = response.status_code, len(response.content)
        with CaptureQueriesContext(connection) as captured:
            client.get(target["url"], **headers)
        queries = captured.captured_queries
        slowest = sorted(queries, key=lambda q: -float(q["time"]))[:3]
        row = {
            **{k: target[k] for k in ("page", "url", "note")},
            "status": status,
            "bytes": size,
            "median_ms": statistics.median(times),
            "p95_ms": percentile(times, 0.95),
            "min_ms": min(times),
            "queries": len(queries),
            "sql_ms": sum(float(q["time"]) for q in queries) * 1000,
            "slowest_sql": [{"ms": float(q["time"]) * 1000, "sql": q["sql"][:300]} for q in slowest],
        }
        rows.append(row)
        print(
            f"  {row['page']:<26} {row['median_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f}  {row['queries']:3d} q",
            file=sys.stderr,
            flush=True,
        )
        if explain:
            for q in slowest[:2]:
                if not q["sql"].lstrip().upper().startswith("SELECT") or float(q["time"]) < 0.002:
                    continue
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
                    plan = "\n".join(r[0] for r in cursor.fetchall())
                plans.append({"page": row["page"], "ms": float(q["time"]) * 1000, "sql": q["sql"], "plan": plan})
    return {"pages": rows, "plans": plans}


def child(name: str, repeat: int, warmup: int, explain: bool) -> dict:
    db = DATASETS[name][0]
    env = {**os.environ, "DATABASE_URL": dsn(db), "DJANGO_SETTINGS_MODULE": "loopdash.settings", "DEBUG": "0"}
    args = [sys.executable, __file__, "--child", name, "--repeat", str(repeat), "--warmup", str(warmup)]
    out = subprocess.run(
        args + (["--explain"] if explain else []), cwd=ROOT, env=env, check=False, stdout=subprocess.PIPE, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"measuring {name} failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the report ----------------------------------------------------------------------------------------


def verdicts(small: dict, large: dict) -> tuple[float, list[str]]:
    ratio = large["median_ms"] / small["median_ms"] if small["median_ms"] else float("inf")
    missed = []
    if large["median_ms"] >= GOAL_MEDIAN_MS:
        missed.append(f"median {large['median_ms']:.0f} ms (goal < {GOAL_MEDIAN_MS:.0f})")
    if large["queries"] > GOAL_QUERIES:
        missed.append(f"{large['queries']} queries (goal <= {GOAL_QUERIES})")
    if ratio > GOAL_RATIO:
        missed.append(f"{ratio:.2f}x its 10k time (goal <= {GOAL_RATIO})")
    return ratio, missed


def machine() -> dict:
    import psycopg

    with psycopg.connect(psql_url("postgres")) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    free = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "free_h": free, "postgresql": version, "python": sys.version.split()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="drop and generate the databases again")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE the slowest queries at the largest size"
    )
    parser.add_argument("--sizes", default="10k,1m", help="datasets to measure (default: 10k,1m; also: 5m)")
    parser.add_argument("--out", type=Path, default=OUT / "pages.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.repeat, args.warmup, args.explain)))
        return

    sizes = [s for s in args.sizes.split(",") if s]
    OUT.mkdir(parents=True, exist_ok=True)
    builds = {name: build(name, args.rebuild) for name in sizes}
    measured = {}
    for name in sizes:
        print(f"[{name}] measuring ({args.repeat} requests per page)", file=sys.stderr, flush=True)
        before = os.getloadavg()
        measured[name] = child(name, args.repeat, args.warmup, args.explain and name == sizes[-1])
        # The machine may be shared: the load average tells how much the figures were disturbed.
        measured[name]["loadavg"] = {"before": before, "after": os.getloadavg()}
    small, large = sizes[0], sizes[-1]
    by_page = {name: {r["page"]: r for r in measured[name]["pages"]} for name in sizes}
    table = []
    header = (
        f"{'page':<26} {'note (' + large + ')':<28} "
        + " ".join(f"{s + ' med':>9} {s + ' p95':>9} {'q':>3}" for s in sizes)
        + f" {'ratio':>6}  goals"
    )
    print("\n" + header)
    print("-" * len(header))
    for page, row in by_page[large].items():
        ref = by_page[small].get(page)
        ratio, missed = verdicts(ref, row) if ref and small != large else (1.0, [])
        cells = " ".join(
            f"{by_page[s][page]['median_ms']:9.1f} {by_page[s][page]['p95_ms']:9.1f} {by_page[s][page]['queries']:3d}"
            if page in by_page[s]
            else f"{'—':>9} {'—':>9} {'—':>3}"
            for s in sizes
        )
        verdict = "met" if not missed else "MISSED: " + "; ".join(missed)
        print(f"{page:<26} {row['note'][:28]:<28} {cells} {ratio:6.2f}  {verdict}")
        table.append(
            {
                "page": page,
                "ratio": ratio,
                "met": not missed,
                "missed": missed,
                **{s: by_page[s].get(page) for s in sizes},
            }
        )
    report = {
        "machine": machine(),
        "datasets": builds,
        "repeat": args.repeat,
        "table": table,
        "loadavg": {name: measured[name]["loadavg"] for name in sizes},
        "goals": {"median_ms": GOAL_MEDIAN_MS, "queries": GOAL_QUERIES, "ratio": GOAL_RATIO},
    }
    args.out.write_text(json.dumps(report, indent=2, default=str))
    plans = [p for name in sizes for p in measured[name]["plans"]]
    if plans:
        text = "\n\n".join(f"== {p['page']} ({p['ms']:.1f} ms)\n{p['sql']}\n\n{p['plan']}" for p in plans)
        (OUT / "pages-explain.txt").write_text(text + "\n")
        print(f"\nquery plans written to {OUT / 'pages-explain.txt'}")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
