"""The end of a shard, and of a sharded run: exactly one party writes the run's summary.

Every change of a shard's status that can make it final happens inside a transaction that holds the
run's row lock (``SELECT ... FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` serialises writers), and in
that same transaction the caller checks whether any shard is still live. Two shards ending at the
same moment queue on the lock: the first sees the other still live, the second sees none, so
exactly one of them is last. The last one claims the summary with a mark in the run's properties
(also under the lock: a cancel or the reaper finishing the same run at that moment finds the mark
and stops), then calls ``complete_run`` once, outside the lock.

The reaper's part lives here too: a running shard whose heartbeat is older than the lost-worker
bound lost its worker. The first time, its partial results are deleted and its counts taken off the
run's live counts (replaced, not doubled), and it is queued again for another worker with the same
tests; the second time it ends ``lost`` and the run ends incomplete with what it has. Nothing here
imports the tasks: the retry is sent by task name.
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import current_app
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import LIVE_STATUSES, RunShard, TestCase, TestResult, TestRun, WorkStatus, identity_hash
from ..services.run_completion import complete_run
from . import locks

log = logging.getLogger(__name__)

RUN_SHARD_TASK = "sessions.tasks.run_shard"
COUNTS = ("total", "passed", "failed", "errors", "skipped", "xfailed", "xpassed")
_COMPLETING = "shards_completed"
# How the shards' ends make the run's status, worst first.
_WORST_FIRST = (WorkStatus.TIMED_OUT, WorkStatus.LOST, WorkStatus.ERROR, WorkStatus.CANCELLED)


def run_status_from(statuses: list[str]) -> str:
    """A sharded run's status from its shards' final statuses: the worst of them, else finished."""
    for status in _WORST_FIRST:
        if status in statuses:
            return status
    return WorkStatus.FINISHED


def _claim_completion(run_id: int) -> TestRun | None:
    """Inside the run's lock: when no shard is live and nobody claimed the summary yet, claim it."""
    run = TestRun.objects.select_for_update().get(pk=run_id)
    if run.summary_written or (run.properties or {}).get(_COMPLETING):
        return None
    if RunShard.objects.filter(run_id=run_id, status__in=LIVE_STATUSES).exists():
        return None
    statuses = list(RunShard.objects.filter(run_id=run_id).values_list("status", flat=True))
    if not statuses:
        return None  # still being planned: the coordinator ends it
    now = timezone.now()
    if run.status == WorkStatus.RUNNING:
        run.status = run_status_from(statuses)
    codes = [c for c in RunShard.objects.filter(run_id=run_id).values_list("exit_code", flat=True) if c is not None]
    run.properties = {**(run.properties or {}), _COMPLETING: True}
    run.finished_at = run.finished_at or now
    run.exitstatus = max(codes) if codes else run.exitstatus
    TestRun.objects.filter(pk=run_id).update(
        status=run.status, properties=run.properties, finished_at=run.finished_at, exitstatus=run.exitstatus
    )
    return run


def finish_shard(shard: RunShard, status: str, **fields: object) -> bool:
    """Put a running shard in its final status; write the run's summary when it was the last. True if last."""
    with transaction.atomic():
        TestRun.objects.select_for_update().filter(pk=shard.run_id).values_list("pk").get()
        RunShard.objects.filter(pk=shard.pk, status=WorkStatus.RUNNING, attempt=shard.attempt).update(
            status=status, finished_at=timezone.now(), **fields
        )
        run = _claim_completion(shard.run_id)
    if run is not None:
        _complete(run)
        return True
    return False


def complete_if_done(run_id: int) -> bool:
    """Write the summary of a sharded run none of whose shards is live any more (cancel, reaper)."""
    with transaction.atomic():
        run = _claim_completion(run_id)
    if run is not None:
        _complete(run)
        return True
    return False


def _complete(run: TestRun) -> None:
    run.refresh_from_db()
    tails = RunShard.objects.filter(run=run).values_list("index", "status", "log_tail")
    run.log_tail = "\n".join(
        f"[shard {index}: {status}]\n" + "\n".join(tail.splitlines()[-10:]) for index, status, tail in tails
    )[-20000:]
    complete_run(run, status=run.status)


def stop_queued_shards(run: TestRun) -> int:
    """A cancelled or ended run: its shards still waiting for a worker will never start."""
    with transaction.atomic():
        TestRun.objects.select_for_update().filter(pk=run.pk).values_list("pk").get()
        stopped = RunShard.objects.filter(run=run, status=WorkStatus.QUEUED).update(
            status=WorkStatus.CANCELLED, finished_at=timezone.now(), log_tail="not started: the run ended"
        )
    complete_if_done(run.pk)
    return stopped


# -- the reaper's part ----------------------------------------------------------------------------------------


def shard_case_ids(run: TestRun, nodeids: list[str]) -> list[int]:
    """The test cases a shard's node ids name (a whole module selected: every case of that file)."""
    ids: list[int] = []
    env = run.environment_id
    for start in range(0, len(nodeids), 2000):
        chunk = nodeids[start : start + 2000]
        hashes = [identity_hash(n) for n in chunk]
        ids += TestCase.objects.filter(environment_id=env, nodeid_hash__in=hashes).values_list("pk", flat=True)
    for module in (n for n in nodeids if "::" not in n):
        ids += TestCase.objects.filter(environment_id=env, nodeid__startswith=f"{module}::").values_list(
            "pk", flat=True
        )
    return ids


def _retry_or_lose(shard: RunShard, cutoff: datetime) -> bool:
    """One lost shard: queued again (first loss, partial results deleted) or ended ``lost`` (second)."""
    retry = False
    with transaction.atomic():
        TestRun.objects.select_for_update().filter(pk=shard.run_id).values_list("pk").get()
        current = RunShard.objects.filter(
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff),
            pk=shard.pk,
            status=WorkStatus.RUNNING,
        ).first()
        if current is None:
            return False
        run = TestRun.objects.select_related("environment").get(pk=shard.run_id)
        note = f"lost: worker {current.worker or '?'} stopped beating"
        if current.attempt == 1 and run.status == WorkStatus.RUNNING:
            cases = shard_case_ids(run, list(current.nodeids or []))
            deleted = 0
            for start in range(0, len(cases), 5000):
                deleted += TestResult.objects.filter(run=run, case_id__in=cases[start : start + 5000]).delete()[0]
            TestRun.objects.filter(pk=run.pk).update(
                **{name: F(name) - getattr(current, name) for name in COUNTS},
                tests_duration_s=F("tests_duration_s") - current.tests_duration_s,
            )
            RunShard.objects.filter(pk=current.pk).update(
                status=WorkStatus.QUEUED,
                attempt=2,
                lost_worker=current.worker,
                worker="",
                started_at=None,
                heartbeat_at=None,
                current_test="",
                tests_duration_s=0.0,
                log_tail=f"{current.log_tail[-4000:]}\n[loopdash] {note}; {deleted} partial results removed; "
                "retrying on another worker",
                **dict.fromkeys(COUNTS, 0),
            )
            transaction.on_commit(lambda: current_app.send_task(RUN_SHARD_TASK, args=[current.pk]))
            retry = True
        else:
            RunShard.objects.filter(pk=current.pk).update(
                status=WorkStatus.LOST,
                finished_at=timezone.now(),
                log_tail=f"{current.log_tail[-4000:]}\n[loopdash] {note} (attempt {current.attempt}): not retried",
            )
            if run.status == WorkStatus.RUNNING:
                TestRun.objects.filter(pk=run.pk, status=WorkStatus.RUNNING).update(status=WorkStatus.LOST)
    if retry:
        log.warning("shard %s of run %s lost its worker: retried", shard.index, shard.run_id)
    else:
        stop_queued_shards(TestRun.objects.get(pk=shard.run_id))
    return True


def reap_shards(*, bound_s: float | None = None) -> int:
    """Shards whose worker went silent (retry or lose), queued shards nobody took, runs left unsummarised."""
    cutoff = locks.stale_before(bound_s=bound_s)
    stale = RunShard.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff), status=WorkStatus.RUNNING
    )
    done = 0
    for shard in stale:
        try:
            done += int(_retry_or_lose(shard, cutoff))
        except Exception:
            log.exception("reaper: could not end shard %s", shard.pk)
    unclaimed = RunShard.objects.filter(status=WorkStatus.QUEUED, created_at__lt=locks.queued_before())
    for shard in unclaimed:
        with transaction.atomic():
            TestRun.objects.select_for_update().filter(pk=shard.run_id).values_list("pk").get()
            RunShard.objects.filter(pk=shard.pk, status=WorkStatus.QUEUED).update(
                status=WorkStatus.ERROR,
                finished_at=timezone.now(),
                log_tail=f"not run: no worker claimed it within {locks.queued_max_s()} s",
            )
        complete_if_done(shard.run_id)
        done += 1
    # A run whose shards all ended but whose last writer died before the summary.
    orphans = TestRun.objects.filter(status__in=[WorkStatus.RUNNING, *TestRun.FINAL_STATUSES], summary_written=False)
    orphans = orphans.filter(shards__isnull=False).exclude(shards__status__in=LIVE_STATUSES).distinct()
    for run_id in orphans.values_list("pk", flat=True):
        done += int(complete_if_done(run_id))
    return done
