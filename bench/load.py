"""Load benchmark: 50 users on gunicorn + PostgreSQL while a 100,000-test JUnit file is being ingested.

Run: `.venv/bin/python bench/load.py [--users 50] [--duration 60] [--ingest-at 10]` (after bench/pages.py has
built `ld_scale_1m`). It stops by itself: every child process is started and stopped here, and the whole
run is bounded by ``--duration`` plus at most ``--grace`` seconds for the ingest to end.

1. Copies `ld_scale_1m` (about 1,000,000 results, see bench/pages.py) to a scratch database `ld_scale_load`
   (``CREATE DATABASE ... TEMPLATE``), so that the cached database never changes; drops it at the end.
2. Writes a 100,000-test JUnit file (the generator's suite, a bad day: many failures with tracebacks) and
   ingests it once on the idle machine: ``manage.py ingest`` in a subprocess, wall time measured.
3. Starts gunicorn on 127.0.0.1 (``--workers 4 --threads 2``) and a feeder process that keeps a few runs
   live, writing results through ``ResultWriter.add``, the running counts and the live figures once a second,
   as a worker does.
4. Runs ``--users`` threads (stdlib ``http.client``, keep-alive, each user logged in with its own session):
   60 % browse (sessions list, session page, run pages and their HTMX result partials with filters and deep
   cursors, signature, test and deployment pages, and any compare or flaky page that exists) with 1-3 s of
   think time; 40 % watch a live run: its page, then its live panel (/runs/<id>/live/) every 2 s as HTMX polls it.
5. At ``--ingest-at`` seconds starts the same ingest again (into a fresh environment, like the idle one) and
   records its wall time; reports throughput, p50/p95/p99, errors (non-2xx/3xx and exceptions) overall, per
   page, and during the ingest window. Writes bench/out/load.json.

Only loopback addresses are used. No dependency beyond the project's own (gunicorn is in requirements.txt).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from load_setup import (  # bench/ is on sys.path: this file is run as a script
    LOAD_DB,
    SOURCE_DB,
    child_env,
    copy_database,
    drop_database,
    drop_scale_indexes,
    feed,
    prepare,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
HOST = "127.0.0.1"
GOAL_P95_MS, GOAL_INGEST_RATIO, GOAL_INGEST_P95_MS = 300.0, 2.0, 500.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- the scratch database and what the users need -----------------------------------------------------------


# -- the live runs' feeder (a child process) ------------------------------------------------------------------


# -- the users ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    at: float  # seconds since the start of the load, when the request was sent
    ms: float
    page: str
    status: int  # 0: an exception
    error: str = ""


class User(threading.Thread):
    def __init__(
        self,
        n: int,
        port: int,
        cookie: str,
        plan: dict,
        start: float,
        stop: threading.Event,
        samples: list[Sample],
        watcher: bool,
    ) -> None:
        super().__init__(name=f"user-{n}", daemon=True)
        self.port, self.cookie, self.plan, self.start_at, self.stop_event = port, cookie, plan, start, stop
        self.samples, self.watcher = samples, watcher
        self.rng = random.Random(n)
        self.conn: http.client.HTTPConnection | None = None

    def get(self, page: str, url: str, htmx: bool = False) -> None:
        headers = {"Cookie": self.cookie, "Host": f"{HOST}:{self.port}"}
        if htmx:
            headers["HX-Request"] = "true"
        sent = time.monotonic()
        status, error = 0, ""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
            self.conn.request("GET", url, headers=headers)
            response = self.conn.getresponse()
            response.read()
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
            if self.conn is not None:
                self.conn.close()
            self.conn = None
        self.samples.append(Sample(sent - self.start_at, (time.monotonic() - sent) * 1000, page, status, error))

    def pause(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    def run(self) -> None:
        self.pause(self.rng.uniform(0, 2))  # users do not all arrive in the same millisecond
        if self.watcher:
            page_url, live_url = self.rng.choice(self.plan["live_urls"])
            self.get("live run", page_url)
            while not self.stop_event.is_set():
                self.pause(2.0)
                if self.stop_event.is_set():
                    break
                # Now and then (one poll in 15 on average) the watcher reloads the page. At random, not
                # every 15th poll: watchers arrive together, and a fixed count made them all reload in
                # the same second, so the page's samples measured that burst rather than the page.
                if self.rng.random() < 1 / 15:
                    self.get("live run", page_url)
                else:
                    self.get("live partial", live_url, htmx=True)
            return
        pools = self.plan["pools"]
        weights = {
            "sessions list": 8,
            "session": 12,
            "run": 18,
            "run partial": 22,
            "signature": 10,
            "test": 15,
            "deployment": 5,
        }
        kinds = list(pools)
        chances = [weights.get(k, 5) for k in kinds]
        while not self.stop_event.is_set():
            kind = self.rng.choices(kinds, chances)[0]
            self.get(kind, self.rng.choice(pools[kind]), htmx=kind == "run partial")
            self.pause(self.rng.uniform(1.0, 3.0))


# -- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    args = [
        str(Path(sys.executable).parent / "gunicorn"),
        "loopdash.wsgi:application",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--keep-alive",
        "5",
        "--error-logfile",
        str(log),
    ]
    env = {**child_env(LOAD_DB), "DB_CONN_MAX_AGE": "60"}
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            pass
        time.sleep(0.25)
    stop(proc)
    raise SystemExit("gunicorn did not answer /healthz within 30 s")


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """Stop one child we started (its own process group: gunicorn's workers go with it)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def ingest_command(path: Path, slug: str) -> list[str]:
    return [sys.executable, "manage.py", "ingest", str(path), "--session", slug, "--environment", slug]


def write_junit(path: Path, tests: int) -> None:
    if path.exists():
        return
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")
    import django

    django.setup()
    from sessions.demo.history_files import HistoryBuilder
    from sessions.demo.history_suite import HistorySpec

    spec = HistorySpec(slug="load-ingest", cycles=1, tests=tests)
    plan_builder = HistoryBuilder(spec)
    rng = random.Random(11)
    outcomes = plan_builder.outcomes(1, rng, plan_builder.suite)
    path.write_bytes(plan_builder.junit(1, 1, outcomes, rng))


def timed_ingest(path: Path, slug: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        ingest_command(path, slug),
        cwd=ROOT,
        env=child_env(LOAD_DB),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return {
        "seconds": time.perf_counter() - t0,
        "exit": out.returncode,
        "stdout": out.stdout.strip()[-200:],
        "stderr": out.stderr.strip()[-500:],
    }


# -- the report ---------------------------------------------------------------------------------------------


def summarize(samples: list[Sample], seconds: float) -> dict:
    ok = [s for s in samples if 200 <= s.status < 400]
    errors = [s for s in samples if not 200 <= s.status < 400]
    ms = [s.ms for s in samples]
    return {
        "requests": len(samples),
        "throughput_rps": len(samples) / seconds if seconds else 0.0,
        "p50_ms": percentile(ms, 0.5),
        "p95_ms": percentile(ms, 0.95),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else None,
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": sorted({f"{s.page} {s.status} {s.error}" for s in errors})[:10],
    }


def by_page(samples: list[Sample]) -> dict:
    pages: dict[str, list[float]] = {}
    for s in samples:
        pages.setdefault(s.page, []).append(s.ms)
    return {
        page: {"n": len(v), "p50_ms": statistics.median(v), "p95_ms": percentile(v, 0.95), "max_ms": max(v)}
        for page, v in sorted(pages.items())
    }


def fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--watchers", type=float, default=0.4, help="share of users watching a live run")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds at the start left out of the figures (arrivals)"
    )
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--ingest-at", type=float, default=10.0)
    parser.add_argument("--ingest-tests", type=int, default=100_000)
    parser.add_argument("--grace", type=float, default=120.0, help="at most this long past --duration for the ingest")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="default: a free port on 127.0.0.1")
    parser.add_argument("--live-runs", type=int, default=3)
    parser.add_argument(
        "--source",
        default=SOURCE_DB,
        help=f"the cached dataset to copy (default {SOURCE_DB}; ld_scale_10k is built in seconds by bench/pages.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="drop migration 0003's indexes in the scratch copy first, to measure what they buy",
    )
    parser.add_argument("--out", type=Path, default=OUT / "load.json")
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--feed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare is not None:
        print(json.dumps(prepare(args.prepare, args.live_runs)))
        return
    if args.feed:
        feed([int(x) for x in args.feed.split(",")], args.duration, 25)
        return

    OUT.mkdir(parents=True, exist_ok=True)
    if not args.port:
        args.port = free_port()
    junit = OUT / f"load-junit-{args.ingest_tests}.xml"
    write_junit(junit, args.ingest_tests)
    loadavg_before = os.getloadavg()
    print(f"copying {args.source} to {LOAD_DB}...", flush=True)
    copy_s = copy_database(args.source, LOAD_DB)
    if args.baseline:
        drop_scale_indexes(LOAD_DB)
    gunicorn = feeder = ingest = None
    stamp = time.strftime("%H%M%S")
    try:
        print(f"  {copy_s:.1f} s; idle ingest of {junit.name}...", flush=True)
        idle = timed_ingest(junit, f"load-idle-{stamp}")
        if idle["exit"]:
            raise SystemExit(f"idle ingest failed: {idle['stderr']}")
        print(f"  idle ingest: {idle['seconds']:.1f} s", flush=True)
        prep = subprocess.run(
            [sys.executable, __file__, "--prepare", str(args.users), "--live-runs", str(args.live_runs)],
            cwd=ROOT,
            env=child_env(LOAD_DB),
            capture_output=True,
            text=True,
            check=True,
        )
        plan = json.loads(prep.stdout.strip().splitlines()[-1])
        gunicorn = start_gunicorn(args.port, args.workers, args.threads, OUT / "load-gunicorn.log")
        bound = args.duration + args.grace
        feeder = subprocess.Popen(
            [sys.executable, __file__, "--feed", ",".join(map(str, plan["live"])), "--duration", str(bound)],
            cwd=ROOT,
            env=child_env(LOAD_DB),
            start_new_session=True,
        )
        samples: list[Sample] = []
        stop_event = threading.Event()
        start = time.monotonic()
        watchers = round(args.users * args.watchers)
        users = [
            User(i, args.port, plan["cookies"][i], plan, start, stop_event, samples, i < watchers)
            for i in range(args.users)
        ]
        for u in users:
            u.start()
        print(
            f"  {args.users} users ({watchers} watching {args.live_runs} live runs) on gunicorn "
            f"{args.workers}x{args.threads} at {HOST}:{args.port}",
            flush=True,
        )
        time.sleep(args.ingest_at)
        ingest_start = time.monotonic() - start
        t0 = time.perf_counter()
        ingest = subprocess.Popen(
            ingest_command(junit, f"load-busy-{stamp}"),
            cwd=ROOT,
            env=child_env(LOAD_DB),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        busy_s = ingest_end = None
        while True:
            now = time.monotonic() - start
            if busy_s is None and ingest.poll() is not None:
                busy_s, ingest_end = time.perf_counter() - t0, now
            if now >= args.duration and (busy_s is not None or now >= bound):
                break
            time.sleep(0.05)
        stop_event.set()
        for u in users:
            u.join(35)
        elapsed = time.monotonic() - start
        if busy_s is None:
            print("  the ingest under load did not finish in time", flush=True)
        out_text, err_text = ingest.communicate(timeout=5) if ingest.poll() is not None else ("", "")
        busy = {
            "seconds": busy_s,
            "exit": ingest.returncode,
            "stdout": (out_text or "").strip()[-200:],
            "stderr": (err_text or "").strip()[-500:],
        }
    finally:
        stop(ingest)
        stop(feeder)
        stop(gunicorn)
        if not args.keep:
            drop_database(LOAD_DB)

    # The first seconds are the 50 users arriving together on a cold server: every page's worst requests
    # are there, and pages a user opens once on arrival (a watcher's live run page) would measure only
    # that. Their figures are kept apart (warm_up) and left out of the per-page and overall ones.
    warm_up = summarize([s for s in samples if s.at < args.warmup], args.warmup)
    samples = [s for s in samples if s.at >= args.warmup]
    window = [s for s in samples if ingest_start <= s.at <= (ingest_end or elapsed)]
    overall = summarize(samples, elapsed - args.warmup)
    during = summarize(window, (ingest_end or elapsed) - ingest_start)
    ratio = busy_s / idle["seconds"] if busy_s else None
    report = {
        "loadavg_after": os.getloadavg(),
        "loadavg_before": loadavg_before,
        "baseline": args.baseline,
        "users": args.users,
        "watchers": watchers,
        "live_runs": args.live_runs,
        "source": args.source,
        "duration_s": elapsed,
        "gunicorn": {"workers": args.workers, "threads": args.threads},
        "copy_database_s": copy_s,
        "ingest": {
            "tests": args.ingest_tests,
            "idle": idle,
            "under_load": busy,
            "ratio": ratio,
            "window_s": [ingest_start, ingest_end],
        },
        "warmup_s": args.warmup,
        "warm_up": warm_up,
        "overall": overall,
        "during_ingest": during,
        "pages": by_page(samples),
        "pages_during_ingest": by_page(window),
        "goals": {
            "errors_zero": overall["errors"] == 0,
            "p95_under_300ms": overall["p95_ms"] is not None and overall["p95_ms"] < GOAL_P95_MS,
            "ingest_within_2x": ratio is not None and ratio <= GOAL_INGEST_RATIO,
            "pages_p95_under_500ms_during_ingest": during["p95_ms"] is not None
            and during["p95_ms"] < GOAL_INGEST_P95_MS,
        },
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"\nleft out, the first {args.warmup:.0f} s (arrivals): {warm_up['requests']} requests, "
        f"p95 {fmt(warm_up['p95_ms'])} ms"
    )
    print(
        f"{args.users} users for {elapsed - args.warmup:.0f} s after that: {overall['requests']} requests, "
        f"{overall['throughput_rps']:.1f} req/s, p50 {fmt(overall['p50_ms'])} ms, p95 {fmt(overall['p95_ms'])} ms, "
        f"p99 {fmt(overall['p99_ms'])} ms, errors {overall['errors']}"
    )
    for sample in overall["error_samples"]:
        print(f"  error: {sample}")
    print(
        f"{args.ingest_tests:,}-test ingest: idle {idle['seconds']:.1f} s, under load {'—' if busy_s is None else f'{busy_s:.1f}'} s"
        f" (ratio {'—' if ratio is None else f'{ratio:.2f}'}); during it ({during['requests']} requests): "
        f"p50 {fmt(during['p50_ms'])} ms, p95 {fmt(during['p95_ms'])} ms, errors {during['errors']}"
    )
    print(f"\n{'page':<22} {'n':>5} {'p50':>6} {'p95':>6} {'max':>6}   {'n*':>4} {'p95*':>6}   (* during the ingest)")
    during_pages = report["pages_during_ingest"]
    for page, row in report["pages"].items():
        d = during_pages.get(page, {})
        print(
            f"{page:<22} {row['n']:>5} {fmt(row['p50_ms']):>6} {fmt(row['p95_ms']):>6} {fmt(row['max_ms']):>6}   "
            f"{d.get('n', 0):>4} {fmt(d.get('p95_ms')):>6}"
        )
    print("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in report["goals"].items()))
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
