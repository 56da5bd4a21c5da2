"""The load benchmark's databases and live runs: copying the scaled database, seeding users, feeding runs.

Used by bench/load.py (in its own process, and in the child processes it starts with ``--prepare`` and
``--feed``). Kept apart so that load.py holds the load itself: users, gunicorn, the ingest, the report.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG_URL", "postgres://root@127.0.0.1:5432")
SOURCE_DB, LOAD_DB = "ld_scale_1m", "ld_scale_load"


def dsn(db: str) -> str:
    return f"{PG}/{db}"


def psql_url(db: str) -> str:
    return dsn(db).replace("postgres://", "postgresql://")


def child_env(db: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn(db),
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "loopdash.settings",
        "LOG_LEVEL": "WARNING",
    }


def copy_database(source: str, target: str) -> float:
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(psql_url("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (source,)).fetchone():
            raise SystemExit(f"no database {source}: run bench/pages.py first (it builds and caches it)")
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}" STRATEGY FILE_COPY')
    return time.perf_counter() - t0


def drop_scale_indexes(db: str) -> None:
    import psycopg

    with psycopg.connect(psql_url(db), autocommit=True) as conn:
        for name in ("result_run_id", "result_run_suspect", "result_signature_recent"):
            conn.execute(f"DROP INDEX IF EXISTS {name}")


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(psql_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(users: int, live_runs: int) -> dict:
    """In a child process bound to the scratch database: users with sessions, live runs, the URL pools."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.urls import reverse
    from django.utils import timezone

    from sessions import roles
    from sessions.models import Deployment, FailureSignature, LoopSession, TestCase, TestResult, TestRun, WorkStatus

    roles.ensure_groups()
    model = get_user_model()
    cookies = []
    for i in range(users):
        user, _ = model.objects.get_or_create(username=f"load-{i:02d}")
        role = roles.OPERATOR if i % 5 == 0 else roles.VIEWER
        user.groups.set([Group.objects.get(name=role)])
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        cookies.append(f"sessionid={store.session_key}")

    history = LoopSession.objects.get(slug="history")
    big = TestRun.objects.filter(session__slug="big-run").order_by("-total").first()
    last_cycle = history.cycles.order_by("-number").first()
    live = []
    now = timezone.now()
    for i in range(live_runs):
        run = TestRun.objects.create(
            session=history,
            cycle=last_cycle,
            environment=history.environment,
            label=f"live-{i}",
            status=WorkStatus.RUNNING,
            source=TestRun.Source.UI,
            started_at=now,
            heartbeat_at=now,
            properties={"eta": {"expected_tests": 1800, "expected_s": 2400.0}},
        )
        live.append(run.pk)
    runs = list(TestRun.objects.filter(session=history).order_by("-id").values_list("id", flat=True)[:60])
    ids = list(TestResult.objects.filter(run=big).order_by("id").values_list("id", flat=True)[::500])
    failed_ids = list(
        TestResult.objects.filter(run=big, outcome="failed").order_by("id").values_list("id", flat=True)[::200]
    )
    cases = list(
        TestCase.objects.filter(environment=history.environment).order_by("id").values_list("id", flat=True)[:1800:9]
    )
    signatures = list(FailureSignature.objects.order_by("-result_count").values_list("id", flat=True)[:12])
    deployments = list(
        Deployment.objects.filter(cycle__session=history).order_by("-id").values_list("id", flat=True)[:40]
    )
    run_url = reverse("run_detail", args=[big.pk])
    pools: dict[str, list[str]] = {
        "sessions list": [reverse("sessions_list")],
        "session": [reverse("session_detail", args=[history.slug]), reverse("session_detail", args=["big-run"])],
        "run": [reverse("run_detail", args=[pk]) for pk in runs] + [run_url],
        "run partial": [f"{run_url}?after={pk}" for pk in ids]
        + [f"{run_url}?outcome=failed&after={pk}" for pk in failed_ids]
        + [f"{run_url}?q=test_chat", f"{run_url}?priority=P1", f"{run_url}?outcome=error"]
        + [f"{reverse('run_detail', args=[pk])}?outcome=failed" for pk in runs[:20]],
        "signature": [reverse("signature_detail", args=[pk]) for pk in signatures],
        "test": [reverse("test_detail", args=[pk]) for pk in cases],
        "deployment": [reverse("deployment_detail", args=[pk]) for pk in deployments],
    }
    sys.path.insert(0, str(ROOT / "bench"))
    from django.urls import get_resolver
    from pages import _reverse_guess  # the same discovery as bench/pages.py

    full = list(TestRun.objects.filter(session=history, scope=TestRun.Scope.ALL).order_by("-id")[:2])
    for name in sorted(
        n for n in get_resolver().reverse_dict if isinstance(n, str) and ("compare" in n or "flaky" in n)
    ):
        url = _reverse_guess(name, history, full)
        if url:
            pools[name.replace("_", " ")] = [url]
    # A live run's page polls one partial, its live panel (cards, progress, failures by signature).
    live_urls = [(reverse("run_detail", args=[pk]), reverse("run_live", args=[pk])) for pk in live]
    return {"cookies": cookies, "pools": pools, "live": live, "live_urls": live_urls}


def feed(run_ids: list[int], seconds: float, per_tick: int) -> None:
    """Keep runs live: every second, results through ResultWriter.add and the running counts, as a worker does."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from collections import Counter

    from django.utils import timezone

    from sessions.demo.history_suite import build_suite
    from sessions.ingest.records import Outcome, ParsedResult
    from sessions.models import TestRun, WorkStatus
    from sessions.services.ingestion.writer import ResultWriter
    from sessions.services.live_figures import LiveFigures
    from sessions.services.summary import pass_rate

    suite = build_suite(1800, 1, 0.02)
    writers = {pk: ResultWriter(TestRun.objects.get(pk=pk)) for pk in run_ids}
    counts = {pk: Counter() for pk in run_ids}
    figures = {pk: LiveFigures(pk) for pk in run_ids}
    done_s = dict.fromkeys(run_ids, 0.0)
    position = dict.fromkeys(run_ids, 0)
    rng = random.Random(7)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tick = time.monotonic()
        for pk, writer in writers.items():
            batch = []
            for _ in range(per_tick):
                spec = suite[position[pk] % len(suite)]
                position[pk] += 1
                failed = rng.random() < 0.05
                duration = round(rng.uniform(0.2, 3.0), 3)
                batch.append(
                    ParsedResult(
                        nodeid=spec.nodeid,
                        name=spec.name,
                        file=spec.file,
                        outcome=Outcome.FAILED if failed else Outcome.PASSED,
                        duration=duration,
                        message="TimeoutError: Timeout after 120s waiting for agent_completed" if failed else "",
                        details="E   TimeoutError: Timeout after 120s" if failed else "",
                        error_type="TimeoutError" if failed else "",
                        phase="call" if failed else "",
                    )
                )
                counts[pk]["failed" if failed else "passed"] += 1
                done_s[pk] += duration
            writer.add(batch)
            c = counts[pk]
            figures[pk].observe(sum(c.values()))
            TestRun.objects.filter(pk=pk, status=WorkStatus.RUNNING).update(
                heartbeat_at=timezone.now(),
                current_test=batch[-1].nodeid,
                total=sum(c.values()),
                passed=c["passed"],
                failed=c["failed"],
                pass_rate=pass_rate(c["passed"], c["failed"], 0),
                tests_duration_s=done_s[pk],
                live_figures=figures[pk].as_json(),
            )
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
