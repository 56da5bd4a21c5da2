"""Benchmark: comparing two runs of 10,000 and of 100,000 tests, per request (before) and stored (after).

Run: `.venv/bin/python bench/compare.py [--sizes 10000,100000] [--repeat 30]`.

In one process and one fresh PostgreSQL database (`BENCH_DATABASE_URL`, default `ld_bench_compare`, dropped and
made again, dropped at the end unless `--keep`): for each size, two runs of the same suite are ingested through
`ingest_file` into a session of their own (the second run: 8 % of the tests failing, the failures moved by
one test in three, 1 % of the tests new, 1 % gone, 2 % slower); then the comparison page of the second run
with the first, `/runs/<b>/compare/<a>/`, is requested with Django's test `Client` (in process, a logged-in
superuser, `DEBUG` off): `--warmup` untimed then `--repeat` timed requests, median, p95 and queries, twice:

- **per request** (the way before stored comparisons, and still the way while a run is live): every list's
  count by one aggregation over both runs' results, each list's page by set operations;
- **stored**: the counts from the `RunComparison` row and each list's page from an index range of its
  entries, as the page does once both runs have ended.

Also timed: writing the stored comparison once (what the run-completion pipeline adds at a run's end).
Writes bench/out/compare.json. Not a test: figures for docs/PERFORMANCE.md (## Compare).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_URL = "postgres://root@127.0.0.1:5432/ld_bench_compare"


def junit(n: int, *, second: bool) -> bytes:
    """A pytest-style JUnit file of ``n`` tests; ``second``: failures moved, tests added and gone, some slower."""
    out = ['<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="bench">']
    trace = "Traceback (most recent call last):\\n" + "  File &quot;tests/test_x.py&quot;, line 9\\n" * 12
    for i in range(n):
        if second and i % 100 == 0:
            continue  # 1 % gone
        failing = (i % 12 == 1) if not second else (i % 12 == 1 and i % 36 != 1) or (i % 36 == 5)
        slow = second and i % 50 == 7
        attrs = f'classname="tests.test_mod{i % 97}" name="test_{i:07d}" time="{3.0 if slow else 1.0}"'
        if failing:
            out.append(f'<testcase {attrs}><failure message="AssertionError: {i % 40}">{trace}</failure></testcase>')
        else:
            out.append(f"<testcase {attrs}/>")
    if second:
        out.extend(
            f'<testcase classname="tests.test_new" name="test_new_{i:07d}" time="1.0"/>' for i in range(n // 100)
        )
    out.append("</testsuite></testsuites>")
    return "\n".join(out).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def prepare(url: str) -> None:
    import psycopg

    db = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def drop(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    db = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def timed_page(client, url: str, repeat: int, warmup: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        assert client.get(url).status_code == 200
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)  # this process only: steadier than wall time on a busy machine
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return {
        "slowest_sql": sorted(
            ({"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"][:200]} for q in captured.captured_queries),
            key=lambda q: -q["ms"],
        )[:3],
        "median_ms": round(statistics.median(times), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "min_ms": round(min(times), 1),
        "queries": len(captured.captured_queries),
        "sql_ms": round(sum(float(q["time"]) for q in captured.captured_queries) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--out", type=Path, default=OUT / "compare.json")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    prepare(url)
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "loopdash.settings", "DEBUG": "0"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from sessions.models import RunComparison
    from sessions.selectors import compare as compare_selector
    from sessions.services.comparisons import stored_comparison
    from sessions.services.ingestion.upload import ingest_file

    user = get_user_model().objects.create_superuser("bench", "bench@example.invalid", "bench")
    client = Client()
    client.force_login(user)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    report: dict = {"loadavg_start": os.getloadavg(), "sizes": {}}
    for n in sizes:
        runs = []
        for second in (False, True):
            t0 = time.perf_counter()
            runs.append(
                ingest_file(
                    io.BytesIO(junit(n, second=second)), f"run-{int(second)}.xml", session_slug=f"cmp-{n}",
                    cycle_number=1 + int(second), environment_name=f"bench-{n}", create_environment=True,
                ).run
            )  # fmt: skip
            ingest_s = time.perf_counter() - t0
        first, second_run = runs
        RunComparison.objects.filter(run=second_run, base=first).delete()
        t0 = time.perf_counter()
        comparison = stored_comparison(second_run, first)
        store_ms = (time.perf_counter() - t0) * 1000
        page = reverse("run_compare_with", args=[second_run.pk, first.pk])
        stored = timed_page(client, page, args.repeat, args.warmup)
        ended = compare_selector.has_ended
        compare_selector.has_ended = lambda run: False  # the page as before: everything from the results
        try:
            per_request = timed_page(client, page, args.repeat, args.warmup)
        finally:
            compare_selector.has_ended = ended
        report["sizes"][n] = {
            "tests": n,
            "counts": comparison.counts,
            "second_ingest_s": round(ingest_s, 2),
            "store_once_ms": round(store_ms, 1),
            "per_request": per_request,
            "stored": stored,
        }
        print(
            f"{n:>8,} tests: store once {store_ms:7.1f} ms | per request {per_request['median_ms']:7.1f} ms "
            f"({per_request['queries']} q, {per_request['sql_ms']} ms SQL) | stored {stored['median_ms']:6.1f} ms "
            f"({stored['queries']} q, {stored['sql_ms']} ms SQL, {stored['cpu_median_ms']} ms CPU) | "
            f"counts {comparison.counts}",
            flush=True,
        )
    report["loadavg_end"] = os.getloadavg()
    if len(sizes) >= 2:
        small, large = report["sizes"][sizes[0]], report["sizes"][sizes[-1]]
        report["ratio"] = {
            kind: round(large[kind]["median_ms"] / small[kind]["median_ms"], 2) for kind in ("per_request", "stored")
        }
        print(f"ratio {sizes[-1]:,} / {sizes[0]:,}: {report['ratio']}  (goal for stored: <= 1.5, median < 100 ms)")
    print(f"load average: start {report['loadavg_start']}, end {report['loadavg_end']}")
    OUT.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    if not args.keep:
        drop(url)


if __name__ == "__main__":
    main()
