"""Retention on a real Celery worker: the beat task, sent through the broker, prunes what the window says."""

from __future__ import annotations

import time

import pytest

from sessions import tasks
from sessions.models import Environment, TestResult, TestRun
from sessions.tests.test_pages import Case, ingest
from sessions.tests.worker import running_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
WAIT_S = 60.0


def test_the_periodic_task_prunes_on_a_worker(tmp_path) -> None:
    cases = [Case("test_ok"), Case("test_broken", "failed", 1.0, "AssertionError: broken\n" + "  frame\n" * 50)]
    old, latest = ingest(cases, cycle=1, label="old"), ingest(cases, cycle=2, label="latest")
    Environment.objects.update(detail_days=0, detail_cycles=1)
    with running_worker(tmp_path, concurrency=1):
        tasks.prune_detail.delay()
        deadline = time.monotonic() + WAIT_S
        while TestRun.objects.get(pk=old.pk).detail_pruned_at is None and time.monotonic() < deadline:
            time.sleep(0.2)
    assert TestRun.objects.get(pk=old.pk).detail_pruned_at is not None, "the worker did not prune within 60 s"
    assert not TestResult.objects.filter(run=old).exclude(message="", details="").exists()
    assert TestResult.objects.get(run=old, case__nodeid__endswith="test_broken").outcome == "failed"
    assert TestRun.objects.get(pk=latest.pk).detail_pruned_at is None
    assert TestResult.objects.filter(run=latest).exclude(message="").count() == 1
