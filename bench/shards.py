"""Benchmark: one run split over 1, 2 and 4 shards, on the example suite and on a suite of sleeps.

Run: `make bench-shards` (or `.venv/bin/python bench/shards.py [--rounds 3] [--sleep-tests 160]`).

What it measures:

1. **The example suite** (examples/staging, 1,030 websocket tests against revision r3 of the example
   target, deployed once on a free port — never 8765): a run requested with ``request_tests(shards=N)``
   for N = 1, 2, 4, alternating within each round, timed from the request until the summary is written.
   One real ``celery worker`` with ``--concurrency=4`` (four processes: one per shard) on PostgreSQL and
   Redis. 1 shard is today's unsharded path (no collection step).
2. **A suite of sleeps** (generated under bench/out: ``--sleep-tests`` tests of ``--sleep-s`` seconds
   each, I/O-bound, no CPU): the ideal speed-up of N shards is N, so the figure shows what the
   scheduling (collection, the split, task pick-up, pytest start-up, the once-a-second tick, the summary)
   costs.
3. **Concurrent writes**: every run must store each test exactly once (checked: no test with two
   results, the total equal to the 1-shard run's); each shard logs how long its once-a-second store +
   heartbeat took (median and max), collected here for 2 and 4 shards.

Medians over the rounds. Needs PostgreSQL and Redis (defaults:
postgres://root@127.0.0.1:5432/loopdash_bench_shards, created if missing, and redis://127.0.0.1:6379/13;
override with BENCH_DATABASE_URL / BENCH_BROKER_URL). Not a test: it prints figures for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from worker_setup import free_port, prepare_database, start_worker  # bench/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
STAGING = ROOT / "examples" / "staging"
DEFAULT_DB = "postgres://root@127.0.0.1:5432/loopdash_bench_shards"
DEFAULT_BROKER = "redis://127.0.0.1:6379/13"
SHARDS = (1, 2, 4)
GOALS = {"example": 1.8, "sleep": 3.3}  # 4 shards vs 1
TICK_RE = re.compile(r"(\d+) ticks; store \+ heartbeat took median (\d+) ms, max (\d+) ms")


def write_sleep_suite(folder: Path, tests: int, seconds: float) -> None:
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n")  # its own rootdir: not loopdash's pyproject (Django settings)
    (folder / "tests" / "test_sleep.py").write_text(
        textwrap.dedent(f"""
        import time, pytest

        @pytest.mark.parametrize("i", range({tests}))
        def test_waits_on_io(i):
            time.sleep({seconds})
        """)
    )


def timed_run(session, shards: int) -> dict:
    """Request a run of ``shards`` shards; wait for its summary; check every test was stored once."""
    from django.db.models import Count

    from sessions.models import LIVE_STATUSES, RunShard, TestResult, TestRun
    from sessions.work.queueing import request_tests

    started = time.perf_counter()
    run = request_tests(session, source=TestRun.Source.CLI, shards=shards)
    while True:
        status, written = TestRun.objects.filter(pk=run.pk).values_list("status", "summary_written").get()
        if status not in LIVE_STATUSES and written:
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    run.refresh_from_db()
    repeated = TestResult.objects.filter(run=run).values("case_id").annotate(n=Count("id")).filter(n__gt=1).count()
    failing = sorted(
        TestResult.objects.filter(run=run, outcome__in=("failed", "error")).values_list("case__nodeid", flat=True)
    )
    ticks = []
    planned = []
    for shard in RunShard.objects.filter(run=run).order_by("index"):
        found = TICK_RE.search(shard.log_tail)
        if found:
            ticks.append({"ticks": int(found[1]), "median_ms": int(found[2]), "max_ms": int(found[3])})
        planned.append({"index": shard.index, "tests": shard.tests, "planned_s": shard.planned_s,
                        "took_s": shard.duration_s, "worker": shard.worker})  # fmt: skip
    print(
        f"    {shards} shard(s): {elapsed:6.2f} s  run {run.pk} {run.status}, {run.total} tests, "
        f"{run.failed + run.errors} failing, {repeated} repeated"
        + (
            f", shard write median/max {max(t['median_ms'] for t in ticks)}/{max(t['max_ms'] for t in ticks)} ms"
            if ticks
            else ""
        )  # fmt: skip
    )
    return {
        "shards": shards,
        "seconds": elapsed,
        "run": run.pk,
        "status": run.status,
        "tests": run.total,
        "repeated": repeated,
        "failing": failing,
        "ticks": ticks,
        "plan": planned,
    }


def suite_figures(name: str, results: list[dict]) -> dict:
    by = {n: [r for r in results if r["shards"] == n] for n in SHARDS}
    medians = {n: statistics.median(r["seconds"] for r in by[n]) for n in SHARDS}
    base_tests = {r["tests"] for r in by[1]}
    exact = all(r["repeated"] == 0 and {r["tests"]} == base_tests for r in results)
    same_failures = len({tuple(r["failing"]) for r in results}) == 1
    ticks = {n: [t for r in by[n] for t in r["ticks"]] for n in SHARDS if n > 1}
    return {
        "suite": name,
        "tests": sorted(base_tests),
        "median_s": {str(n): round(medians[n], 2) for n in SHARDS},
        "speedup": {str(n): round(medians[1] / medians[n], 2) for n in SHARDS},
        "every_test_once": exact,
        "same_failures_in_every_run": same_failures,
        "shard_write_ms": {
            str(n): {
                "median_of_medians": statistics.median(t["median_ms"] for t in ticks[n]) if ticks[n] else None,
                "max": max((t["max_ms"] for t in ticks[n]), default=None),
            }
            for n in ticks
        },
        "rounds": [{k: v for k, v in r.items() if k != "failing"} for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--revision", default="r3")
    parser.add_argument("--sleep-tests", type=int, default=160)
    parser.add_argument("--sleep-s", type=float, default=0.5)
    parser.add_argument("--skip-example", action="store_true", help="only the suite of sleeps")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    var = OUT / "shards-var"
    state = OUT / "shards-staging-state"
    sleep_dir = OUT / "shards-sleep-suite"
    write_sleep_suite(sleep_dir, args.sleep_tests, args.sleep_s)
    port = free_port()
    queue = f"bench-shards-{uuid.uuid4().hex[:8]}"
    prepare_database(args.dsn)
    os.environ.update(
        DATABASE_URL=args.dsn, CELERY_BROKER_URL=args.broker, LOOPDASH_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="loopdash.settings",
    )  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from loopdash.celery import app
    from sessions.models import Environment, LoopSession
    from sessions.work.runners import child_environment

    app.conf.task_default_queue = queue
    target = {"STAGING_PORT": str(port), "STAGING_URL": f"ws://127.0.0.1:{port}", "STAGING_STATE_DIR": str(state)}
    # The suites run as in an environment of their own: only the plugin loopdash needs (report-log), not the
    # twenty plugins of loopdash's development venv (schemathesis alone costs ~3 CPU-seconds per pytest start,
    # paid once per shard). Both the 1-shard and the sharded runs use this same command.
    pytest_command = [
        "{python}",
        "-m",
        "pytest",
        "tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_reportlog.plugin",
    ]
    lean = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    sessions = {}
    for name, folder, env_vars in (("example", STAGING, {**target, **lean}), ("sleep", sleep_dir, lean)):
        env_row, _ = Environment.objects.update_or_create(
            name=f"bench-shards-{name}",
            defaults={"working_dir": str(folder), "test_command": pytest_command, "env_vars": env_vars,
                      "default_revision": args.revision, "timeout_s": 1800},
        )  # fmt: skip
        sessions[name], _ = LoopSession.objects.get_or_create(
            slug=f"bench-shards-{name}", defaults={"environment": env_row, "title": f"Bench shards {name}"}
        )
    suites = ["sleep"] if args.skip_example else ["example", "sleep"]
    if "example" in suites:
        print(f"deploying {args.revision} of the example target on port {port}")
        deployed = subprocess.run(
            [sys.executable, "deploy.py", "--revision", args.revision], cwd=STAGING, env=child_environment(target),
            capture_output=True, text=True,
        )  # fmt: skip
        if deployed.returncode:
            raise SystemExit(f"deploy failed:\n{deployed.stdout}\n{deployed.stderr}")
    worker = start_worker(queue, os.environ.copy(), OUT / "shards-worker.log", concurrency=4)
    results: dict[str, list[dict]] = {name: [] for name in suites}
    try:
        for name in suites:  # one run first, so that the next ones split by recorded durations
            print(f"{name}: warm-up (records durations)")
            timed_run(sessions[name], 1)
        for n in range(1, args.rounds + 1):
            order = SHARDS if n % 2 else tuple(reversed(SHARDS))  # alternate, so that drift hits all alike
            for name in suites:
                print(f"round {n}/{args.rounds} · {name}")
                for shards in order:
                    results[name].append(timed_run(sessions[name], shards))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        if "example" in suites:
            subprocess.run(
                [sys.executable, "deploy.py", "--stop"], cwd=STAGING, env=child_environment(target),
                capture_output=True,
            )  # fmt: skip

    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    figures = {"machine": machine, "rounds": args.rounds, "worker_concurrency": 4}
    print()
    for name in suites:
        fig = figures[name] = suite_figures(name, results[name])
        if name == "sleep":
            fig["ideal_s"] = {str(n): round(args.sleep_tests * args.sleep_s / n, 2) for n in SHARDS}
        goal = GOALS[name]
        four = fig["speedup"]["4"]
        print(f"{name}: {fig['tests']} tests, {args.rounds} round(s), medians")
        for n in SHARDS:
            print(f"  {n} shard(s)  {fig['median_s'][str(n)]:7.2f} s   speed-up {fig['speedup'][str(n)]:.2f}x")
        print(f"  4 shards vs 1: {four:.2f}x (goal >= {goal}) {'ok' if four >= goal else 'MISSED'}")
        print(f"  every test stored once: {fig['every_test_once']}; same failures: {fig['same_failures_in_every_run']}")
        print(f"  shard store + heartbeat write (ms): {fig['shard_write_ms']}")
    print(f"machine: {machine}")
    (OUT / "shards.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {OUT / 'shards.json'}")


if __name__ == "__main__":
    main()
