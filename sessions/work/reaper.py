"""The reaper: no queued or running row outlives its work.

A worker that dies stops beating; ``reap_lost`` declares ``lost`` what has been silent longer than
``locks.lost_after_s()`` (60 s), writes the summary of what was stored, kills an orphaned process
group left on this host (the process guard normally ended it already), finishes what a dead worker
left half-done, and ends queued work no worker claimed within ``locks.queued_max_s()``.

It runs on celery beat every 15 s (``tasks.reap``), a process of its own, never inside a worker;
and from the web side (``reap_if_due``, ``notice_stale``) when a page shows live work that went
silent, on every trigger and on ``/healthz``, so lost work is noticed even with no beat at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..models import (
    DEPLOY_FINAL_STATUSES,
    LIVE_STATUSES,
    Deployment,
    TestRun,
    WorkStatus,
)
from ..services import webhooks
from ..services.run_completion import complete_run
from . import locks, runners
from .cancel import cancel_waiting_runs
from .shard_end import reap_shards

log = logging.getLogger(__name__)


def _kill_orphans(log_path: str) -> bool:
    """Kill the process group a dead worker left behind, when it runs on this host (see runners)."""
    if not log_path:
        return False
    record_path = Path(log_path).parent / runners.PROCESS_RECORD
    record = runners.ProcessRecord.load(record_path)
    if record is None:
        return False
    killed = runners.kill_recorded_group(record)
    record_path.unlink(missing_ok=True)
    return killed


def _stale(cutoff: datetime) -> Q:
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def _lose_deployment(deployment: Deployment, cutoff: datetime) -> bool:
    note = f"lost: no heartbeat since {deployment.heartbeat_at or deployment.started_at:%H:%M:%S}"
    if not Deployment.objects.filter(_stale(cutoff), pk=deployment.pk, status=WorkStatus.RUNNING).update(
        status=WorkStatus.LOST, finished_at=timezone.now()
    ):
        return False
    if _kill_orphans(deployment.log_path):
        note += "; its orphaned process group was killed"
    if deployment.log_path:
        runners.append_log(Path(deployment.log_path), note)
    Deployment.objects.filter(pk=deployment.pk).update(log_tail=(deployment.log_tail + f"\n[loopdash] {note}")[-20000:])
    deployment.refresh_from_db()
    cancel_waiting_runs(deployment)
    webhooks.deployment_finished(deployment)  # receivers hear of a lost deploy as of any other end
    return True


def reap_deployments(queryset: QuerySet[Deployment], *, cutoff: datetime | None = None) -> int:
    """Deployments whose worker went silent: ``lost``; their waiting runs are cancelled."""
    cutoff = cutoff or locks.stale_before()
    reaped = _each(
        queryset.filter(_stale(cutoff), status=WorkStatus.RUNNING), "deployment", lambda d: _lose_deployment(d, cutoff)
    )
    # A cancel whose worker died before it could finish the row.
    queryset.filter(_stale(cutoff), status=WorkStatus.CANCELLED, finished_at__isnull=True).update(
        finished_at=timezone.now()
    )
    return reaped


def _each(rows: Iterable, what: str, action: Callable[[object], bool]) -> int:
    """Apply ``action`` to each row, logging (not raising) a failure: one bad row must not stop the reaper."""
    done = 0
    for row in rows:
        try:
            done += int(action(row) or 0)
        except Exception:
            log.exception("reaper: could not end %s %s", what, row.pk)
    return done


def _lose_run(run: TestRun, cutoff: datetime, bound_s: float | None) -> bool:
    if not TestRun.objects.filter(_stale(cutoff), pk=run.pk, status=WorkStatus.RUNNING).update(
        status=WorkStatus.LOST, finished_at=timezone.now()
    ):
        return False
    note = f"lost: no heartbeat for {locks.lost_after_s() if bound_s is None else bound_s:g} s (worker gone)"
    if _kill_orphans(run.log_path):
        note += "; its orphaned process group was killed"
    if run.log_path:
        runners.append_log(Path(run.log_path), note)
    run.refresh_from_db()
    run.log_tail = (run.log_tail + f"\n[loopdash] {note}")[-20000:]
    complete_run(run, status=WorkStatus.LOST)
    return True


def _write_missing_summary(run: TestRun) -> bool:
    _kill_orphans(run.log_path)
    complete_run(run, status=run.status)
    return True


def _unclaimed_deployment(deployment: Deployment, cutoff: datetime) -> bool:
    why = f"Not deployed: no worker claimed it within {locks.queued_max_s()} s (is a worker running?)."
    if not Deployment.objects.filter(pk=deployment.pk, status=WorkStatus.QUEUED, created_at__lt=cutoff).update(
        status=WorkStatus.FAILED, finished_at=timezone.now(), log_tail=why
    ):
        return False
    deployment.refresh_from_db()
    cancel_waiting_runs(deployment)
    return True


def _unclaimed_run(run: TestRun, cutoff: datetime) -> bool:
    why = f"Not run: no worker claimed it within {locks.queued_max_s()} s (is a worker running?)."
    if not TestRun.objects.filter(pk=run.pk, status=WorkStatus.QUEUED, created_at__lt=cutoff).update(
        status=WorkStatus.ERROR, finished_at=timezone.now(), log_tail=why
    ):
        return False
    run.refresh_from_db()
    complete_run(run, status=WorkStatus.ERROR)
    return True


def reap_unclaimed(*, bound_s: float | None = None) -> int:
    """End queued work that no worker claimed within ``locks.queued_max_s()``: its message was lost.

    A run queued behind its cycle's deployment waits for that deployment, not for a worker: it is
    left to the deployment's own end (``cancel_waiting_runs``).
    """
    cutoff = locks.queued_before(bound_s=bound_s)
    ended = _each(
        Deployment.objects.filter(status=WorkStatus.QUEUED, created_at__lt=cutoff),
        "deployment",
        lambda d: _unclaimed_deployment(d, cutoff),
    )
    waiting_on_live_deploy = Q(deployment__status__in=LIVE_STATUSES)
    return ended + _each(
        TestRun.objects.filter(status=WorkStatus.QUEUED, created_at__lt=cutoff)
        .exclude(source=TestRun.Source.UPLOAD)
        .exclude(waiting_on_live_deploy),
        "run",
        lambda r: _unclaimed_run(r, cutoff),
    )


_last_reap = [0.0]


REAP_EVERY_S = 15.0


def reap_if_due() -> None:
    """The web side's share of the reaper: run it when this process has not for ``REAP_EVERY_S``.

    Beat may have died with the worker it ran in (``worker -B``); requests that trigger or read live
    work then still end what a dead worker left, so lost work never waits for a worker to come back.
    """
    now = time.monotonic()
    if now - _last_reap[0] < REAP_EVERY_S:
        return
    _last_reap[0] = now
    try:
        reap_lost()
    except Exception:
        log.exception("reaper (web side) failed")


def notice_stale(row: TestRun | Deployment) -> bool:
    """Reap when a row a page is about to show is live but silent past its bound; True when it changed.

    Costs no query for healthy work: it reads the row's own heartbeat and timestamps.
    """
    if row.status not in LIVE_STATUSES:
        return False
    now = timezone.now()
    if row.status == WorkStatus.RUNNING:
        beat = row.heartbeat_at or row.started_at
        silent = beat is not None and beat < locks.stale_before(now)
    else:
        silent = row.created_at is not None and row.created_at < locks.queued_before(now)
    if not silent:
        return False
    _last_reap[0] = 0.0
    reap_if_due()
    row.refresh_from_db()
    return True


def reap_lost(*, bound_s: float | None = None) -> dict[str, int]:
    """Mark work whose heartbeat is older than the bound as ``lost`` and write what it stored.

    Also finishes what a dead worker left half-done: a run in a final status without its summary (a
    cancel the worker never saw, a summary that failed), a queued run whose deployment ended without
    succeeding.
    """
    cutoff = locks.stale_before(bound_s=bound_s)
    workers_runs = TestRun.objects.exclude(source=TestRun.Source.UPLOAD)
    # A sharded run's heartbeat is its shards': they are reaped (retried once, or lost) one by one.
    shards = reap_shards(bound_s=bound_s)
    lost_runs = _each(
        workers_runs.filter(_stale(cutoff), status=WorkStatus.RUNNING, shards__isnull=True),
        "run",
        lambda r: _lose_run(r, cutoff, bound_s),
    )
    unfinished = _each(
        workers_runs.filter(_stale(cutoff), status__in=TestRun.FINAL_STATUSES, summary_written=False).exclude(
            shards__status__in=LIVE_STATUSES
        ),
        "run",
        _write_missing_summary,
    )
    lost_deployments = reap_deployments(Deployment.objects.all(), cutoff=cutoff)
    failed_deploys = (
        Deployment.objects.filter(status__in=DEPLOY_FINAL_STATUSES, runs__status=WorkStatus.QUEUED)
        .exclude(status=WorkStatus.SUCCEEDED)
        .distinct()
    )
    waiting = sum(_each([d], "deployment", cancel_waiting_runs) for d in failed_deploys)
    unclaimed = reap_unclaimed()
    if lost_runs or lost_deployments or unclaimed or shards:
        log.warning(
            "reaper: %s run(s) and %s deployment(s) lost, %s never claimed", lost_runs, lost_deployments, unclaimed
        )
    return {
        "runs": lost_runs,
        "deployments": lost_deployments,
        "unfinished": unfinished,
        "waiting": waiting,
        "unclaimed": unclaimed,
        "shards": shards,
    }
