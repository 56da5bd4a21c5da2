"""Benchmark: ingest pytest-style JUnit files end to end, beside the floor of parse + COPY.

Run: `make bench-ingest` (or `.venv/bin/python bench/ingest.py [--sizes 1000,10000,100000]`).
Needs PostgreSQL (default postgres://root@127.0.0.1:5432/loopdash_bench, created if missing;
override with BENCH_DATABASE_URL). Each measurement runs in a fresh subprocess so that its
peak RSS is its own. Not a test: it prints figures for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_DB = "postgres://root@127.0.0.1:5432/loopdash_bench"

TRACEBACK = """self = <tests.e2e.test_agents.TestAgent object at 0x7f{n:010x}>
    def test_agent(self):
        ws = connect(STAGING_URL, timeout=120)
>       ws.send(json.dumps({{"type": "execute_agent", "id": {n}}}))
E       websockets.exceptions.ConnectionClosedError: received 1011 (internal error) Internal error; then sent 1011
tests/e2e/test_agents.py:{line}: ConnectionClosedError"""


def outcome_for(i: int) -> str:
    r = (i * 7919) % 100
    if r < 8:
        return "failed"
    if r < 10:
        return "error"
    if r < 13:
        return "skipped"
    return "passed"


def write_junit(path: Path, n: int) -> None:
    rnd = random.Random(n)
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites name="pytest tests">')
        f.write(f'<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="{n}" time="1.0">')
        for i in range(n):
            module, cls = f"tests.e2e.test_area_{i % 40}", f"TestFlow{i % 7}"
            attrs = f'classname="{module}.{cls}" name="test_case_{i}[user-{i % 13}]" time="{rnd.uniform(0.01, 3):.3f}"'
            kind = outcome_for(i)
            if kind == "passed":
                f.write(f"<testcase {attrs} />")
            elif kind == "failed":
                msg = (
                    "ConnectionClosedError: received 1011 (internal error)"
                    if i % 3
                    else f"TimeoutError: Timeout after {120 + i % 5}s"
                )
                f.write(
                    f"<testcase {attrs}><failure message={quoteattr(msg)}>{escape(TRACEBACK.format(n=i, line=i % 300))}</failure></testcase>"
                )
            elif kind == "error":
                msg = 'failed on setup with "ConnectionRefusedError: [Errno 111] Connection refused"'
                f.write(
                    f"<testcase {attrs}><error message={quoteattr(msg)}>{escape(TRACEBACK.format(n=i, line=7))}</error></testcase>"
                )
            else:
                f.write(
                    f'<testcase {attrs}><skipped type="pytest.skip" message="needs GPU">needs GPU</skipped></testcase>'
                )
        f.write("</testsuite></testsuites>\n")


def write_reportlog(path: Path, n: int) -> None:
    """The same tests as write_junit, as pytest --report-log lines (setup, call, teardown)."""
    rnd = random.Random(n)
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"pytest_version": "9.2.0", "$report_type": "SessionStart"}) + "\n")
        for i in range(n):
            nodeid = f"tests/e2e/test_area_{i % 40}.py::TestFlow{i % 7}::test_case_{i}[user-{i % 13}]"
            loc = [f"tests/e2e/test_area_{i % 40}.py", i, f"TestFlow{i % 7}.test_case_{i}[user-{i % 13}]"]
            kind = outcome_for(i)
            base = {
                "nodeid": nodeid,
                "location": loc,
                "keywords": {"e2e": 1},
                "sections": [],
                "user_properties": [],
                "$report_type": "TestReport",
            }
            dur = rnd.uniform(0.01, 3)
            setup = {**base, "when": "setup", "outcome": "passed", "longrepr": None, "duration": 0.001}
            if kind == "error":
                setup.update(
                    outcome="failed",
                    longrepr={
                        "reprcrash": {
                            "path": loc[0],
                            "lineno": 7,
                            "message": "ConnectionRefusedError: [Errno 111] Connection refused",
                        },
                        "reprtraceback": {"reprentries": [], "extraline": None, "style": "long"},
                        "sections": [],
                        "chain": [],
                    },
                )
                f.write(json.dumps(setup) + "\n")
            elif kind == "skipped":
                setup.update(outcome="skipped", longrepr=[loc[0], i, "Skipped: needs GPU"])
                f.write(json.dumps(setup) + "\n")
            else:
                f.write(json.dumps(setup) + "\n")
                call = {**base, "when": "call", "outcome": kind, "duration": dur, "longrepr": None}
                if kind == "failed":
                    msg = (
                        "ConnectionClosedError: received 1011 (internal error)"
                        if i % 3
                        else f"TimeoutError: Timeout after {120 + i % 5}s"
                    )
                    call["longrepr"] = {
                        "reprcrash": {"path": loc[0], "lineno": i % 300, "message": msg},
                        "reprtraceback": {
                            "reprentries": [
                                {
                                    "type": "ReprEntryNative",
                                    "data": {"lines": TRACEBACK.format(n=i, line=i % 300).splitlines()},
                                }
                            ],
                            "extraline": None,
                            "style": "long",
                        },
                        "sections": [],
                        "chain": [],
                    }
                f.write(json.dumps(call) + "\n")
            f.write(
                json.dumps({**base, "when": "teardown", "outcome": "passed", "longrepr": None, "duration": 0.001})
                + "\n"
            )
        f.write(json.dumps({"exitstatus": 1, "$report_type": "SessionFinish"}) + "\n")


# -- measurements, each in its own process ----------------------------------------------------------


def measure_floor(path: str, dsn: str) -> dict:
    """Stream-parse with lxml and COPY the rows with psycopg: no Django, no signatures, no cases."""
    import psycopg
    from lxml import etree

    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        # A regular (WAL-logged) table with a primary key, as the results table is; a TEMP
        # table would skip the WAL and make the floor unfairly low.
        conn.execute("DROP TABLE IF EXISTS bench_floor_results")
        conn.execute(
            "CREATE TABLE bench_floor_results (id bigserial PRIMARY KEY, name text, classname text, outcome text, "
            "duration float8, message text, details text)"
        )
        conn.commit()
        start = time.perf_counter()
        cols = "(name, classname, outcome, duration, message, details)"
        with conn.cursor().copy(f"COPY bench_floor_results {cols} FROM STDIN") as copy:
            for _event, el in etree.iterparse(
                path, events=("end",), tag="testcase", resolve_entities=False, no_network=True, huge_tree=True
            ):
                outcome, message, details = "passed", "", ""
                for child in el:
                    outcome = child.tag
                    message = child.get("message", "")
                    details = child.text or ""
                try:
                    duration = float(el.get("time", ""))
                except ValueError:
                    duration = None
                copy.write_row((el.get("name"), el.get("classname"), outcome, duration, message, details))
                el.clear(keep_tail=True)
                while el.getprevious() is not None:
                    del el.getparent()[0]
        conn.commit()
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_loopdash(path: str, dsn: str) -> dict:
    os.environ["DATABASE_URL"] = dsn
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from sessions.services.ingestion.upload import ingest_file

    connection.ensure_connection()  # as the floor, which connects before its clock starts
    slug = f"bench-{Path(path).name.replace('.', '-')}-{time.time_ns()}"
    start = time.perf_counter()
    with open(path, "rb") as f:
        outcome = ingest_file(f, path, session_slug=slug, environment_name=slug, create_environment=True)
    seconds = time.perf_counter() - start
    run = outcome.run
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tests": run.total,
        "passed": run.passed,
        "failed": run.failed,
        "errors": run.errors,
        "skipped": run.skipped,
        "signatures": run.signature_counts.count(),
    }


def child(kind: str, path: str, dsn: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, path, "--dsn", dsn],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} on {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_database(dsn: str, *, fresh: bool = False) -> None:
    import psycopg

    name = dsn.rsplit("/", 1)[1]
    admin = dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": dsn}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of N runs of each measurement")
    parser.add_argument("--dsn", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="drop and create the benchmark database first (figures then do not "
        "depend on what earlier runs left in it)",
    )
    args = parser.parse_args()
    dsn = args.dsn.replace("postgres://", "postgresql://")
    if args.child:
        kind, path = args.child
        result = measure_floor(path, dsn) if kind == "floor" else measure_loopdash(path, dsn)
        print(json.dumps(result))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    prepare_database(dsn, fresh=args.fresh)
    rows = []
    print(
        f"{'cases':>8} {'file MB':>8} {'floor s':>8} {'loopdash s':>10} {'ratio':>6} {'peak MB':>8} "
        f"{'reportlog s':>11} {'rl/junit':>8} {'rl peak MB':>10}"
    )
    for n in [int(s) for s in args.sizes.split(",")]:
        junit, rlog = OUT / f"junit-{n}.xml", OUT / f"reportlog-{n}.jsonl"
        if not junit.exists():
            write_junit(junit, n)
        if not rlog.exists():
            write_reportlog(rlog, n)
        # Interleaved, so that a busy moment of the machine costs each measurement alike.
        runs: dict[str, list[dict]] = {"floor": [], "junit": [], "reportlog": []}
        for _ in range(args.repeat):
            runs["floor"].append(child("floor", str(junit), dsn))
            runs["junit"].append(child("loopdash", str(junit), dsn))
            runs["reportlog"].append(child("loopdash", str(rlog), dsn))
        floor, full, rl = (min(runs[k], key=lambda r: r["seconds"]) for k in ("floor", "junit", "reportlog"))
        if rl["tests"] != full["tests"]:
            raise SystemExit(f"report-log stored {rl['tests']} results, JUnit {full['tests']}")
        row = {
            "cases": n,
            "file_mb": junit.stat().st_size / 1e6,
            "floor_s": floor["seconds"],
            "loopdash_s": full["seconds"],
            "ratio": full["seconds"] / floor["seconds"],
            "peak_rss_mb": full["peak_rss_mb"],
            "reportlog_s": rl["seconds"],
            "reportlog_ratio": rl["seconds"] / full["seconds"],
            "reportlog_peak_rss_mb": rl["peak_rss_mb"],
            "counts": {k: full[k] for k in ("tests", "passed", "failed", "errors", "skipped", "signatures")},
        }
        rows.append(row)
        print(
            f"{n:>8} {row['file_mb']:>8.1f} {row['floor_s']:>8.2f} {row['loopdash_s']:>10.2f} {row['ratio']:>6.2f} "
            f"{row['peak_rss_mb']:>8.0f} {row['reportlog_s']:>11.2f} {row['reportlog_ratio']:>8.2f} {row['reportlog_peak_rss_mb']:>10.0f}"
        )
    (OUT / "ingest.json").write_text(json.dumps(rows, indent=2))
    print(f"\nfigures written to {OUT / 'ingest.json'}")


if __name__ == "__main__":
    main()
