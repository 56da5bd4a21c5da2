"""Cancelling work: a compare-and-set of the row's status, which the worker's next heartbeat notices.

A queued row ends at once (a later task finds nothing to claim); a running one is asked to stop, and
its worker kills the process group within a second. Runs waiting for a deployment that did not
succeed are cancelled with the reason, so a cycle never tests a half-deployed target.
"""

from __future__ import annotations

from django.utils import timezone

from ..models import (
    Deployment,
    TestRun,
    WorkStatus,
)
from ..services.run_completion import complete_run
from .errors import Refused
from .shard_end import stop_queued_shards


def cancel_run(run: TestRun, *, reason: str = "cancelled by a user") -> None:
    """Cancel a queued run at once; ask a running one to stop (its worker kills it within a second)."""
    now = timezone.now()
    if TestRun.objects.filter(pk=run.pk, status=WorkStatus.QUEUED).update(
        status=WorkStatus.CANCELLED, finished_at=now, log_tail=f"Not run: {reason}."
    ):
        run.refresh_from_db()
        complete_run(run, status=WorkStatus.CANCELLED)
        return
    if TestRun.objects.filter(pk=run.pk, status=WorkStatus.RUNNING).update(status=WorkStatus.CANCELLED):
        # A sharded run: running shards stop at their next heartbeat; waiting ones never start.
        stop_queued_shards(run)
        run.refresh_from_db()
        return
    run.refresh_from_db()
    raise Refused(f"run {run.pk} has already ended ({run.status})", 409)


def cancel_deployment(deployment: Deployment, *, reason: str = "cancelled by a user") -> None:
    """Cancel a queued deployment at once; ask a running one to stop. Runs waiting for it are cancelled."""
    now = timezone.now()
    if Deployment.objects.filter(pk=deployment.pk, status=WorkStatus.QUEUED).update(
        status=WorkStatus.CANCELLED, finished_at=now, log_tail=f"Not deployed: {reason}."
    ):
        deployment.refresh_from_db()
        cancel_waiting_runs(deployment)
        return
    if Deployment.objects.filter(pk=deployment.pk, status=WorkStatus.RUNNING).update(status=WorkStatus.CANCELLED):
        deployment.refresh_from_db()
        return
    deployment.refresh_from_db()
    raise Refused(f"deployment {deployment.pk} has already ended ({deployment.status})", 409)


def cancel_waiting_runs(deployment: Deployment) -> int:
    """Cancel the queued runs of a cycle whose deployment did not succeed, saying why."""
    why = (
        f"Not run: deployment {deployment.pk} of {deployment.revision} ended {deployment.status}"
        + (f" (exit code {deployment.exit_code})" if deployment.exit_code is not None else "")
        + f"; see {deployment.get_absolute_url()}"
    )
    cancelled = 0
    for run in TestRun.objects.filter(deployment=deployment, status=WorkStatus.QUEUED):
        if TestRun.objects.filter(pk=run.pk, status=WorkStatus.QUEUED).update(
            status=WorkStatus.CANCELLED, finished_at=timezone.now(), log_tail=why
        ):
            run.refresh_from_db()
            complete_run(run, status=WorkStatus.CANCELLED)
            cancelled += 1
    return cancelled
