"""A real Celery worker in a subprocess, on the test database and the configured broker.

Used as a pytest fixture helper by the worker and browser tests, and runnable as the worker itself::

    python -m sessions.tests.worker QUEUE [celery worker options...]

which is ``celery -A loopdash worker -Q QUEUE`` with the app's default queue set to QUEUE too. Every test
session gets a queue of its own: a worker started by someone else's test session on the same Redis
database (or the same filesystem broker folder) never takes these tasks, and the tasks a worker sends
itself (the second step of a cycle's chain) stay on this queue.

The worker reaches pytest-django's test database: ``connection.settings_dict["NAME"]`` is the test
database's name once ``django_db_setup`` ran (on SQLite settings already make it a file in VAR_DIR).
With ``LOOPDASH_REQUIRE_SERVICES=true`` (``make test`` under CI) a run on SQLite or on the filesystem
broker fails instead of passing quietly on the embedded fallback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

READY_TIMEOUT_S = 60.0


def services_required() -> bool:
    return os.environ.get("LOOPDASH_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def require_services() -> None:
    """Fail (never skip) when CI demands PostgreSQL and Redis and the tests run on the fallbacks."""
    if not services_required():
        return
    from django.db import connection

    problems = []
    if connection.vendor != "postgresql":
        problems.append(f"the database is {connection.vendor}, not PostgreSQL (DATABASE_URL)")
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        problems.append(f"the broker is {settings.CELERY_BROKER_URL.split(':', 1)[0]}, not Redis (CELERY_BROKER_URL)")
    if problems:
        pytest.fail("LOOPDASH_REQUIRE_SERVICES=true but " + " and ".join(problems), pytrace=False)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the worker that names the test database."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(name).resolve()}"
    if engine.endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(name, safe='')}"
    raise RuntimeError(f"no worker DATABASE_URL for engine {engine}")


class Worker:
    """One ``celery worker`` process group, consuming its own queue."""

    def __init__(
        self,
        *,
        concurrency: int = 2,
        log_dir: Path,
        env: dict[str, str] | None = None,
        queue: str | None = None,
        name: str | None = None,
    ) -> None:
        from django.db import connection

        # Workers given the same queue share its tasks (the sharding tests); ``name`` tells them apart.
        self.queue = queue or f"loopdash-test-{uuid.uuid4().hex[:10]}"
        self.name = name or self.queue
        self.concurrency = concurrency
        self.log_path = log_dir / f"worker-{self.name}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(connection.settings_dict),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "LOOPDASH_VAR_DIR": str(settings.VAR_DIR),
            "LOOPDASH_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "DJANGO_SETTINGS_MODULE": "loopdash.settings",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.popen: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "sessions.tests.worker", self.queue,
            f"--concurrency={self.concurrency}", "--pool=prefork", "--loglevel=INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            f"--hostname={self.name}@%h",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                args, cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.popen.returncode}:\n{self.log()}")
            if " ready." in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"celery worker not ready after {READY_TIMEOUT_S:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def kill_hard(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or an OOM kill would."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole group if it takes too long."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill_hard()
        try:
            os.killpg(self.pgid, signal.SIGKILL)  # pool processes that outlived their parent
        except ProcessLookupError:
            pass


@contextmanager
def routed_to(queue: str) -> Iterator[None]:
    """Send this process's tasks to ``queue`` (the worker's own) for the duration."""
    from loopdash.celery import app

    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        yield
    finally:
        app.conf.task_default_queue = previous


@contextmanager
def running_worker(log_dir: Path, *, concurrency: int = 2, env: dict[str, str] | None = None) -> Iterator[Worker]:
    """Start a worker, route this process's tasks to it, stop it at the end."""
    from sessions.work.runners import become_subreaper

    require_services()
    # Processes a killed worker orphans are adopted here, so they can be reaped (see sessions.work.runners).
    become_subreaper()
    worker = Worker(concurrency=concurrency, log_dir=log_dir, env=env).start()
    try:
        with routed_to(worker.queue):
            yield worker
    finally:
        worker.stop()


def main(argv: list[str]) -> None:
    """``python -m sessions.tests.worker QUEUE [options]``: the loopdash worker on its own default queue."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")
    django.setup()
    from loopdash.celery import app

    queue, options = argv[0], argv[1:]
    app.conf.task_default_queue = queue
    app.worker_main(["worker", "-Q", queue, *options])


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """A worker shared by a test module's worker tests (three processes: enough for two concurrent deploys)."""
    with running_worker(tmp_path_factory.mktemp("celery-worker"), concurrency=3) as worker:
        yield worker


if __name__ == "__main__":
    main(sys.argv[1:])
