"""Sharded runs on real Celery workers: the example suite over 4 shards, a shard whose worker dies, a cancel.

The workers are real ``celery worker`` subprocesses (sessions.tests.worker) on the test database and
the configured broker; several of them share one queue here, as several machines would.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db.models import Count

from sessions.models import RunShard, RunSignature, TestResult, TestRun, WorkStatus
from sessions.selectors.api_json import run_as_json
from sessions.tests.test_tasks_integration import (  # noqa: F401 - staging is a fixture
    STAGING_DIR,
    assert_group_gone,
    assert_pid_gone,
    collected_count,
    ended_deployment,
    ended_run,
    make_session,
    staging,
    wait_for,
    write_suite,
)
from sessions.tests.worker import Worker, require_services, routed_to
from sessions.work import cancel, queueing, reaper, runners

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SLOW_SUITE = """
import time, pytest

@pytest.mark.parametrize("i", range(40))
def test_slow(i):
    time.sleep(0.25)
    assert i % 13
"""
HELPER_CONFTEST = '''
import os, subprocess, pytest

@pytest.fixture(scope="session", autouse=True)
def helper_process():
    """A child in pytest's process group that outlives pytest unless the whole group is killed."""
    proc = subprocess.Popen(["sleep", "600"])
    folder = os.path.join(os.path.dirname(__file__), "..", "helpers")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{proc.pid}.pid"), "w") as f:
        f.write(str(proc.pid))
    yield proc
'''


def start_workers(tmp_path: Path, count: int, *, concurrency: int) -> list[Worker]:
    """``count`` workers on one shared queue, as on ``count`` machines; this process's tasks go there."""
    require_services()
    runners.become_subreaper()
    queue = f"loopdash-shards-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    workers = []
    for n in range(count):
        worker = Worker(concurrency=concurrency, log_dir=tmp_path / "workers", queue=queue, name=f"{queue}-w{n}")
        workers.append(worker.start())
    return workers


def nodename(worker: Worker) -> str:
    return f"{worker.name}@{socket.gethostname()}"


def assert_each_test_once(run: TestRun) -> None:
    repeated = TestResult.objects.filter(run=run).values("case_id").annotate(n=Count("id")).filter(n__gt=1).count()
    assert repeated == 0, f"{repeated} tests have more than one result"
    assert run.total == TestResult.objects.filter(run=run).count()


def test_a_four_shard_run_of_the_example_suite_is_one_run_with_every_test_once(staging, tmp_path) -> None:  # noqa: F811
    workers = start_workers(tmp_path, 1, concurrency=4)
    try:
        with routed_to(workers[0].queue):
            deployment = queueing.request_deploy(staging, revision="r3")
            assert ended_deployment(deployment.pk, timeout=120).status == WorkStatus.SUCCEEDED
            run = queueing.request_tests(staging, shards=4, source=TestRun.Source.API)
            assert run.shards_requested == 4
            run = ended_run(run.pk, timeout=600)
    finally:
        for worker in workers:
            worker.stop()
    assert run.status == WorkStatus.FINISHED, run.log_tail
    assert not run.incomplete and run.summary_written and run.exitstatus in (0, 1)
    suite_size = collected_count(STAGING_DIR)
    assert run.total == suite_size >= 1000
    assert_each_test_once(run)
    assert run.passed + run.failed + run.errors + run.skipped + run.xfailed + run.xpassed == run.total
    assert run.failed + run.errors > 0  # r3 has known bugs: one set of signatures for the whole run
    assert RunSignature.objects.filter(run=run).exists()

    shards = list(RunShard.objects.filter(run=run).order_by("index"))
    assert [s.index for s in shards] == [1, 2, 3, 4]
    assert all(s.status == WorkStatus.FINISHED and s.attempt == 1 for s in shards)
    assert all(s.worker == nodename(workers[0]) for s in shards)
    assert sum(s.tests for s in shards) == suite_size == sum(s.total for s in shards)
    assert len({n for s in shards for n in s.nodeids}) == suite_size  # the split placed each test once
    assert all(s.duration_s and s.duration_s > 0 for s in shards)

    body = run_as_json(run)
    assert [(s["index"], s["status"], s["tests"]) for s in body["shards"]] == [
        (s.index, "finished", s.tests) for s in shards
    ]
    assert all(s["worker"] and s["duration_s"] > 0 for s in body["shards"])


def test_a_shard_whose_worker_dies_is_retried_on_another_worker_without_duplicates(tmp_path, settings) -> None:
    folder = write_suite(tmp_path / "suite", test_slow=SLOW_SUITE)
    session = make_session("shard-crash", folder)
    workers = start_workers(tmp_path, 2, concurrency=1)
    try:
        with routed_to(workers[0].queue):
            run = queueing.request_tests(session, shards=2)

            def both_running() -> bool:
                shards = RunShard.objects.filter(run_id=run.pk, status=WorkStatus.RUNNING)
                return shards.count() == 2 and all(s.total >= 3 for s in shards)

            wait_for(both_running, 120, "both shards to run and store results")
            victim_worker = workers[0]
            victim = RunShard.objects.get(run_id=run.pk, worker=nodename(victim_worker))
            stored_before = victim.total
            victim_worker.kill_hard()  # the process guard ends its pytest at once

            def retried() -> bool:
                reaper.reap_lost(bound_s=2)
                return RunShard.objects.get(pk=victim.pk).attempt == 2

            wait_for(retried, 60, "the reaper to retry the lost shard", interval=0.5)
            run = ended_run(run.pk, timeout=180)
    finally:
        for worker in workers:
            worker.stop()
    victim.refresh_from_db()
    assert victim.attempt == 2 and victim.status == WorkStatus.FINISHED, victim.log_tail
    assert victim.lost_worker == nodename(workers[0]) and victim.worker == nodename(workers[1])
    assert "partial results removed" in victim.log_tail and stored_before >= 3
    assert run.status == WorkStatus.FINISHED and not run.incomplete, run.log_tail
    assert run.total == 40 and (run.passed, run.failed) == (36, 4)  # i % 13 == 0 for 0, 13, 26, 39
    assert_each_test_once(run)
    assert Counter(s.status for s in RunShard.objects.filter(run=run)) == {WorkStatus.FINISHED: 2}


def test_a_cancel_stops_every_shard_and_leaves_no_process(tmp_path) -> None:
    folder = write_suite(tmp_path / "suite", conftest=HELPER_CONFTEST, test_slow=SLOW_SUITE.replace("0.25", "1.0"))
    session = make_session("shard-cancel", folder)
    workers = start_workers(tmp_path, 1, concurrency=3)
    try:
        with routed_to(workers[0].queue):
            run = queueing.request_tests(session, shards=3)

            def all_running() -> list[RunShard] | None:
                shards = list(RunShard.objects.filter(run_id=run.pk, status=WorkStatus.RUNNING))
                return shards if len(shards) == 3 and all(s.total >= 1 for s in shards) else None

            shards = wait_for(all_running, 120, "three shards to run")
            records = []
            for shard in shards:
                record = runners.ProcessRecord.load(runners.work_dir("shards", shard.pk) / runners.PROCESS_RECORD)
                assert record is not None
                records.append(record)
            helpers = [int(p.read_text()) for p in (folder / "helpers").glob("*.pid")]
            assert len(helpers) == 3
            cancel.cancel_run(TestRun.objects.get(pk=run.pk))
            run = ended_run(run.pk, timeout=60)
    finally:
        for worker in workers:
            worker.stop()
    assert run.status == WorkStatus.CANCELLED and run.incomplete and run.summary_written
    assert set(RunShard.objects.filter(run=run).values_list("status", flat=True)) == {WorkStatus.CANCELLED}
    assert 3 <= run.total < 40
    assert_each_test_once(run)
    for record in records:
        assert_group_gone(record.pgid)
    for pid in helpers:
        assert_pid_gone(pid)
    assert json.loads(json.dumps(run_as_json(run)))["shards"][0]["status"] == "cancelled"


def test_a_one_test_rerun_is_one_shard_and_runs_unsharded(tmp_path) -> None:
    folder = write_suite(
        tmp_path / "suite",
        test_one=textwrap.dedent("""
            def test_a():
                assert False
            def test_b():
                pass
        """),
    )
    session = make_session("shard-one", folder)
    workers = start_workers(tmp_path, 1, concurrency=2)
    try:
        with routed_to(workers[0].queue):
            first = ended_run(queueing.request_tests(session, shards=2).pk, timeout=120)
            assert first.status == WorkStatus.FINISHED and RunShard.objects.filter(run=first).count() == 2
            rerun = queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.FAILED, shards=4)
            assert rerun.shards_requested == 1
            rerun = ended_run(rerun.pk, timeout=120)
    finally:
        for worker in workers:
            worker.stop()
    assert (first.total, first.failed) == (2, 1)
    assert rerun.status == WorkStatus.FINISHED and rerun.total == 1
    assert run_as_json(rerun)["shards"] == []
