"""Benchmark: the example suite run by hand vs. triggered through loopdash, and how fast results show up.

Run: `make bench-loop` (or `.venv/bin/python bench/loop.py [--rounds 3] [--revision r3]`).

What it measures, in one run:

1. Deploys the example staging target once (a free port, a state folder under bench/out).
2. Plain: `python -m pytest tests --junitxml=...` in examples/staging, wall time.
3. loopdash: the same suite queued with ``request_tests`` and run by a real worker (a
   `celery -A loopdash worker` subprocess on PostgreSQL + Redis), from the request until its last
   result is stored and until its summary is written.
4. Latency: while the loopdash run goes, a thread tails the run's report-log and notes when each
   test's teardown line appears (the test has finished); the main thread polls the database for
   stored results. Latency = first seen in the database - first seen in the file.

Rounds alternate plain and loopdash; medians are reported. Needs PostgreSQL and Redis (defaults:
postgres://root@127.0.0.1:5432/loopdash_bench_loop, created if missing, and redis://127.0.0.1:6379/14;
override with BENCH_DATABASE_URL / BENCH_BROKER_URL). Not a test: it prints figures for docs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from worker_setup import free_port, prepare_database, start_worker  # bench/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
STAGING = ROOT / "examples" / "staging"
DEFAULT_DB = "postgres://root@127.0.0.1:5432/loopdash_bench_loop"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"
GOAL_RATIO = 1.15
GOAL_LATENCY_S = 3.0


def staging_env(port: int, state: Path) -> dict[str, str]:
    return {"STAGING_PORT": str(port), "STAGING_URL": f"ws://127.0.0.1:{port}", "STAGING_STATE_DIR": str(state)}


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The plain run's environment: the shell's, without loopdash's own settings (as a worker's child)."""
    from sessions.work.runners import child_environment

    return child_environment(extra)


# -- plain ------------------------------------------------------------------------------------------------------


def plain_run(env: dict[str, str], junit: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
        cwd=STAGING,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    print(
        f"  plain:    {elapsed:6.2f} s  ({done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.returncode})"
    )
    return elapsed


# -- loopdash ----------------------------------------------------------------------------------------------------


class ReportLogWatcher(threading.Thread):
    """Tail a growing report-log; note when each test's teardown line first appears (its end)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.finished_at: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        offset, partial = 0, b""
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            now = time.perf_counter()
            if data:
                offset += len(data)
                data = partial + data
                cut = data.rfind(b"\n") + 1
                partial = data[cut:]
                for line in data[:cut].splitlines():
                    if b'"teardown"' in line and b'"TestReport"' in line:
                        nodeid = json.loads(line).get("nodeid")
                        self.finished_at.setdefault(nodeid, now)
            time.sleep(0.02)


def loopdash_run(session, expected: int) -> dict[str, float]:
    from django.conf import settings

    from sessions.models import LIVE_STATUSES, TestResult, TestRun
    from sessions.work.queueing import request_tests

    started = time.perf_counter()
    run = request_tests(session, source=TestRun.Source.CLI)
    folder = Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)
    watcher = ReportLogWatcher(folder / "report-log.jsonl")
    watcher.start()
    seen_at: dict[str, float] = {}
    last_id = 0
    all_stored = None
    summary = None
    while True:
        rows = list(
            TestResult.objects.filter(run_id=run.pk, id__gt=last_id).order_by("id").values_list("id", "case__nodeid")
        )
        now = time.perf_counter()
        for pk, nodeid in rows:
            seen_at.setdefault(nodeid, now)
            last_id = pk
        if all_stored is None and len(seen_at) >= expected:
            all_stored = now - started
        status, written = TestRun.objects.filter(pk=run.pk).values_list("status", "summary_written").get()
        if status not in LIVE_STATUSES and written:
            summary = time.perf_counter() - started
            break
        time.sleep(0.1)
    watcher.stop.set()
    watcher.join()
    run.refresh_from_db()
    latencies = [seen_at[n] - t for n, t in watcher.finished_at.items() if n in seen_at]
    all_stored = all_stored if all_stored is not None else summary
    print(
        f"  loopdash: {all_stored:6.2f} s to the last result, {summary:6.2f} s to the summary "
        f"(run {run.pk} {run.status}: {run.total} tests, {run.failed} failed, {run.errors} errors)"
    )
    if run.total != expected:
        print(f"  !! stored {run.total} results, the plain run had {expected}")
    return {
        "last_result_s": all_stored,
        "summary_s": summary,
        "stored": run.total,
        "latency_median_s": statistics.median(latencies) if latencies else float("nan"),
        "latency_p95_s": sorted(latencies)[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "latency_samples": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--revision", default="r3")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    var = OUT / "loop-var"
    state = OUT / "loop-staging-state"
    port = free_port()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
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

    app.conf.task_default_queue = queue
    target = staging_env(port, state)
    env_row, _ = Environment.objects.update_or_create(
        name="bench-staging",
        defaults={
            "working_dir": str(STAGING),
            "deploy_command": ["{python}", "deploy.py", "--revision", "{revision}"],
            "test_command": ["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
            "env_vars": target,
            "default_revision": args.revision,
            "timeout_s": 1800,
        },
    )
    session, _ = LoopSession.objects.get_or_create(
        slug="bench-loop", defaults={"environment": env_row, "title": "Bench loop"}
    )

    print(f"deploying {args.revision} of the example target on port {port}")
    deployed = subprocess.run(
        [sys.executable, "deploy.py", "--revision", args.revision], cwd=STAGING, env=child_env(target),
        capture_output=True, text=True,
    )  # fmt: skip
    if deployed.returncode:
        raise SystemExit(f"deploy failed:\n{deployed.stdout}\n{deployed.stderr}")
    worker = start_worker(queue, os.environ.copy(), OUT / "loop-worker.log")
    plain: list[float] = []
    through: list[dict[str, float]] = []
    try:
        for n in range(1, args.rounds + 1):
            print(f"round {n}/{args.rounds}")
            plain.append(plain_run(child_env(target), OUT / "loop-plain.xml"))
            expected = _count_testcases(OUT / "loop-plain.xml")
            through.append(loopdash_run(session, expected))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        subprocess.run([sys.executable, "deploy.py", "--stop"], cwd=STAGING, env=child_env(target), capture_output=True)

    plain_s = statistics.median(plain)
    last_s = statistics.median(r["last_result_s"] for r in through)
    summary_s = statistics.median(r["summary_s"] for r in through)
    latency = {k: statistics.median(r[k] for r in through) for k in ("latency_median_s", "latency_p95_s")}
    latency_max = max(r["latency_max_s"] for r in through)
    figures = {
        "tests": expected,
        "rounds": args.rounds,
        "plain_s": round(plain_s, 2),
        "loopdash_last_result_s": round(last_s, 2),
        "loopdash_summary_s": round(summary_s, 2),
        "ratio_last_result": round(last_s / plain_s, 3),
        "ratio_summary": round(summary_s / plain_s, 3),
        "latency_median_s": round(latency["latency_median_s"], 3),
        "latency_p95_s": round(latency["latency_p95_s"], 3),
        "latency_max_s": round(latency_max, 3),
        "all_rounds": {"plain_s": [round(p, 2) for p in plain], "loopdash": through},
    }
    (OUT / "loop.json").write_text(json.dumps(figures, indent=2) + "\n")
    ok_ratio = figures["ratio_last_result"] <= GOAL_RATIO
    ok_latency = figures["latency_max_s"] <= GOAL_LATENCY_S
    print()
    print(f"example suite: {expected} tests, {args.rounds} round(s), medians")
    print(f"  plain pytest                      {plain_s:7.2f} s")
    print(f"  loopdash, to the last result      {last_s:7.2f} s   ratio {figures['ratio_last_result']:.3f} "
          f"(goal <= {GOAL_RATIO}) {'ok' if ok_ratio else 'MISSED'}")  # fmt: skip
    print(f"  loopdash, to the summary          {summary_s:7.2f} s   ratio {figures['ratio_summary']:.3f}")
    print(f"  result latency median / p95 / max {figures['latency_median_s']:.2f} / {figures['latency_p95_s']:.2f} / "
          f"{figures['latency_max_s']:.2f} s (goal <= {GOAL_LATENCY_S:.0f} s) {'ok' if ok_latency else 'MISSED'}")  # fmt: skip
    print(f"figures: {OUT / 'loop.json'}")


def _count_testcases(junit: Path) -> int:
    from lxml import etree

    return len(etree.parse(str(junit)).getroot().findall(".//testcase"))


if __name__ == "__main__":
    main()
