"""What the worker benchmarks (loop.py, shards.py) share: a port, a migrated database, a real worker.

Imported as ``from worker_setup import ...``: bench/ is on sys.path when a benchmark runs as a script.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(dsn: str) -> None:
    """Create the benchmark's database if needed and bring it up to the current migrations."""
    import psycopg

    base, _, name = dsn.rpartition("/")
    with psycopg.connect(base.replace("postgres://", "postgresql://") + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": dsn}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def start_worker(queue: str, env: dict[str, str], log: Path, concurrency: int = 1) -> subprocess.Popen:
    """A real Celery worker on ``queue`` (also its default queue, so the tasks it sends itself stay there)."""
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "sessions.tests.worker", queue, f"--concurrency={concurrency}",
             "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             f"--hostname={queue}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return worker
