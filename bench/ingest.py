"""Benchmark: ingest pytest-style JUnit files end to end, beside the floor of parse + COPY.

Run: `make bench-ingest` (or `.venv/bin/python bench/ingest.py [--sizes 1000,10000,100000]`).
Needs PostgreSQL (default postgres://root@127.0.0.1:5432/loopdash_bench, created if missing;
override with BENCH_DATABASE_URL). Each measurement runs in a fresh subprocess so that its
peak RSS is its own; each also reports its client and server (PostgreSQL backend) CPU seconds, which
move less than seconds on a shared machine. `--before TREE DSN` measures another checkout (the code
before a change, on a database migrated by that checkout) interleaved with the rest, so that before
and after share the machine's load. Not a test: it prints figures for docs/PERFORMANCE.md.
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


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a PostgreSQL backend on this machine, from /proc (0 if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_floor(path: str, dsn: str) -> dict:
    """Stream-parse with lxml and COPY the rows with psycopg: no Django, no signatures, no cases."""
    import psycopg
    from lxml import etree

    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        backend = conn.info.backend_pid
        # A regular (WAL-logged) table with a primary key, as the results table is; a TEMP
        # table would skip the WAL and make the floor unfairly low.
        conn.execute("DROP TABLE IF EXISTS bench_floor_results")
        conn.execute(
            "CREATE TABLE bench_floor_results (id bigserial PRIMARY KEY, name text, classname text, outcome text, "
            "duration float8, message text, details text)"
        )
        conn.commit()
        start, cpu, server = time.perf_counter(), time.process_time(), backend_cpu(backend)
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
        seconds = time.perf_counter() - start
        cpu, server = time.process_time() - cpu, backend_cpu(backend) - server
    return {
        "seconds": seconds,
        "client_cpu_s": cpu,
        "server_cpu_s": server,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_loopdash(path: str, dsn: str, root: Path = ROOT) -> dict:
    os.environ["DATABASE_URL"] = dsn
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")
    sys.path.insert(0, str(root))
    import django

    django.setup()
    from django.db import connection

    from sessions.services.ingestion.upload import ingest_file

    connection.ensure_connection()  # as the floor, which connects before its clock starts
    backend = connection.connection.info.backend_pid
    slug = f"bench-{Path(path).name.replace('.', '-')}-{time.time_ns()}"
    start, cpu, server = time.perf_counter(), time.process_time(), backend_cpu(backend)
    with open(path, "rb") as f:
        outcome = ingest_file(f, path, session_slug=slug, environment_name=slug, create_environment=True)
    seconds = time.perf_counter() - start
    cpu, server = time.process_time() - cpu, backend_cpu(backend) - server
    run = outcome.run
    return {
        "seconds": seconds,
        "client_cpu_s": cpu,
        "server_cpu_s": server,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tests": run.total,
        "passed": run.passed,
        "failed": run.failed,
        "errors": run.errors,
        "skipped": run.skipped,
        "signatures": run.signature_counts.count(),
    }


def child(kind: str, path: str, dsn: str, root: Path = ROOT) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, path, "--dsn", dsn, "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} on {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_database(dsn: str, *, fresh: bool = False, root: Path = ROOT) -> None:
    import psycopg

    name = dsn.rsplit("/", 1)[1]
    admin = dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": dsn}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=root, env=env, check=True)


def cpu_of(runs: list[dict]) -> str:
    """Client + server CPU seconds of the run that used the least CPU (steadier than seconds under load)."""
    best = min(runs, key=lambda r: r["client_cpu_s"] + r["server_cpu_s"])
    return f"{best['client_cpu_s']:.2f}+{best['server_cpu_s']:.2f}"


def machine() -> str:
    """What the figures were taken on: cores and load average (other work on the machine moves them)."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of N runs of each measurement")
    parser.add_argument("--dsn", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # the tree a child imports
    parser.add_argument(
        "--before",
        nargs=2,
        metavar=("TREE", "DSN"),
        help="also measure another checkout (e.g. the code before a change) on its own database, "
        "interleaved with the others",
    )
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
        result = measure_floor(path, dsn) if kind == "floor" else measure_loopdash(path, dsn, args.root)
        print(json.dumps(result))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    prepare_database(dsn, fresh=args.fresh)
    before = None
    if args.before:
        before = (Path(args.before[0]).resolve(), args.before[1].replace("postgres://", "postgresql://"))
        prepare_database(before[1], fresh=args.fresh, root=before[0])
    rows = []
    print(f"start: {machine()}")
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
        runs: dict[str, list[dict]] = {"floor": [], "junit": [], "reportlog": [], "before": [], "before_rl": []}
        for _ in range(args.repeat):
            runs["floor"].append(child("floor", str(junit), dsn))
            runs["junit"].append(child("loopdash", str(junit), dsn))
            runs["reportlog"].append(child("loopdash", str(rlog), dsn))
            if before:
                runs["before"].append(child("loopdash", str(junit), before[1], before[0]))
                runs["before_rl"].append(child("loopdash", str(rlog), before[1], before[0]))
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
            "cpu_s": {k: cpu_of(v) for k, v in runs.items() if v},
            "runs": runs,
        }
        if before:
            best = min(runs["before"], key=lambda r: r["seconds"])
            best_rl = min(runs["before_rl"], key=lambda r: r["seconds"])
            row.update(before_s=best["seconds"], before_ratio=best["seconds"] / floor["seconds"])
            row.update(before_reportlog_s=best_rl["seconds"])
        rows.append(row)
        print(
            f"{n:>8} {row['file_mb']:>8.1f} {row['floor_s']:>8.2f} {row['loopdash_s']:>10.2f} {row['ratio']:>6.2f} "
            f"{row['peak_rss_mb']:>8.0f} {row['reportlog_s']:>11.2f} {row['reportlog_ratio']:>8.2f} {row['reportlog_peak_rss_mb']:>10.0f}"
        )
        print(
            f"{'':>8} client+server CPU s of the least-CPU run: "
            + ", ".join(f"{k} {v}" for k, v in row["cpu_s"].items())
        )
        if before:
            print(
                f"{'':>8} before ({before[0]}): JUnit {row['before_s']:.2f} s (ratio {row['before_ratio']:.2f}), "
                f"report-log {row['before_reportlog_s']:.2f} s"
            )
    print(f"end: {machine()}")
    (OUT / "ingest.json").write_text(json.dumps(rows, indent=2))
    print(f"\nfigures written to {OUT / 'ingest.json'}")


if __name__ == "__main__":
    main()
