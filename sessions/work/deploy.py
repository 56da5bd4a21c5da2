"""The worker side of a deployment: claim it under the environment's deploy lock, run it, always end it.

One deploy at a time per environment (``locks``). A succeeded deployment marks the fixes whose
commit it carries as deployed (``lifecycle.on_deployment_succeeded``); any other end cancels the
run its cycle queued behind it.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from ..models import (
    DEPLOY_FINAL_STATUSES,
    Deployment,
    Fix,
    WorkStatus,
)
from ..services import webhooks
from ..services.lifecycle import on_deployment_succeeded
from . import checkout, locks, runners, stored_logs
from .cancel import cancel_waiting_runs

log = logging.getLogger(__name__)


def _beat_deployment(pk: int, log_path: Path) -> bool:
    """Heartbeat and log tail; False when the row is no longer ``running`` (cancelled, or declared lost)."""
    return bool(
        Deployment.objects.filter(pk=pk, status=WorkStatus.RUNNING).update(
            heartbeat_at=timezone.now(), log_tail=runners.read_tail(log_path)
        )
    )


def claim_deployment(pk: int) -> Deployment | None:
    """Take a queued deployment: compare-and-set to ``running`` under the environment's deploy lock.

    While another deployment of the environment holds the lock, wait (polling once a second) rather
    than fail: the request side already refuses a second deploy, so this only happens in races. The
    wait is bounded by the holder's own timeout plus the lost-worker bound.
    """
    env_id = Deployment.objects.filter(pk=pk).values_list("environment_id", flat=True).first()
    if env_id is None:
        return None
    waited_for: int | None = None
    deadline = None
    while True:
        with locks.environment_locked(env_id) as env:
            deployment = Deployment.objects.filter(pk=pk).first()
            if deployment is None or deployment.status != WorkStatus.QUEUED:
                return None
            other = locks.holder(env_id, exclude=pk)
            if other is None:
                now = timezone.now()
                if not Deployment.objects.filter(pk=pk, status=WorkStatus.QUEUED).update(
                    status=WorkStatus.RUNNING, started_at=now, heartbeat_at=now
                ):
                    return None
                deployment.refresh_from_db()
                return deployment
            if waited_for != other.pk:
                waited_for = other.pk
                deadline = time.monotonic() + env.deploy_timeout_s + locks.lost_after_s()
                Deployment.objects.filter(pk=pk, status=WorkStatus.QUEUED).update(
                    log_tail=f"Waiting for deployment {other.pk} of {other.revision} to finish (one at a time)."
                )
        if deadline is not None and time.monotonic() > deadline:
            Deployment.objects.filter(pk=pk, status=WorkStatus.QUEUED).update(
                status=WorkStatus.FAILED,
                finished_at=timezone.now(),
                log_tail=f"Not deployed: deployment {waited_for} held the environment for too long.",
            )
            deployment = Deployment.objects.get(pk=pk)
            cancel_waiting_runs(deployment)
            return None
        time.sleep(1.0)


_COMMIT_RE = re.compile(r"\bcommit[=: ]+([0-9a-f]{7,64})\b")


def execute_deployment(pk: int) -> None:
    """Run the environment's deploy command for a queued deployment; always end in a final status."""
    deployment = claim_deployment(pk)
    if deployment is None:
        return
    env = deployment.environment
    folder = runners.fresh_dir("deployments", pk)
    log_path = folder / "output.log"
    status, code, proc, suite, carried = WorkStatus.FAILED, None, None, None, set()
    try:
        Deployment.objects.filter(pk=pk).update(log_path=str(log_path))
        if env.repository:  # the deploy command runs in a checkout of the commit (work/checkout.py)
            suite = checkout.prepare(
                repository=env.repository,
                ref=deployment.revision,
                commit=deployment.commit_sha,
                kind="deployment",
                pk=pk,
                working_dir=env.working_dir,
                log_path=log_path,
            )
            Deployment.objects.filter(pk=pk).update(commit_sha=suite.commit)
        cwd = suite.cwd if suite is not None else runners.resolve_working_dir(env.working_dir)
        commit = suite.commit if suite is not None else deployment.commit_sha
        args = runners.expand_command(env.deploy_command, revision=deployment.revision, commit=commit)
        Deployment.objects.filter(pk=pk).update(command=args)
        proc = runners.GroupProcess(
            args,
            cwd=cwd,
            env=runners.child_environment(env.env_vars),
            log_path=log_path,
            record_path=folder / runners.PROCESS_RECORD,
        )
        proc.start()
        ending = runners.supervise(proc, timeout_s=env.deploy_timeout_s, tick=lambda: _beat_deployment(pk, log_path))
        code = proc.returncode
        if ending == runners.TIMED_OUT:
            status = WorkStatus.TIMED_OUT
            runners.append_log(log_path, f"timed out after {env.deploy_timeout_s} s: process group killed")
        elif ending == runners.STOPPED:
            status = WorkStatus.CANCELLED
        else:
            status = WorkStatus.SUCCEEDED if code == 0 else WorkStatus.FAILED
        if status == WorkStatus.SUCCEEDED and suite is not None and suite.mirror is not None:
            carried = checkout.contained(suite.mirror, suite.commit, _pending_fix_commits(env.pk))
    except checkout.CheckoutError as exc:
        runners.append_log(log_path, f"not deployed: {checkout.one_line(str(exc))}")
    except runners.CommandError as exc:
        runners.append_log(log_path, f"cannot run the deploy command: {exc}")
    except Exception:
        runners.append_log(log_path, "loopdash failed while deploying:\n" + traceback.format_exc())
        raise
    finally:
        if proc is not None and proc.popen is not None:
            proc.finish()
        checkout.release(suite)
        _finish_deployment(pk, status, code, log_path, carried)


def _pending_fix_commits(environment_id: int) -> list[str]:
    return list(
        Fix.objects.filter(status=Fix.Status.PENDING, analysis__signature__environment_id=environment_id)
        .values_list("sha", flat=True)
        .distinct()
    )


def _finish_deployment(pk: int, status: str, code: int | None, log_path: Path, carried: set[str] | None = None) -> None:
    """Write the final status (the row's own when a cancel or the reaper got there first), then follow up."""
    with transaction.atomic():
        row = Deployment.objects.select_for_update().get(pk=pk)
        if row.status != WorkStatus.RUNNING:
            status = row.status if row.status in DEPLOY_FINAL_STATUSES else WorkStatus.FAILED
        if status == WorkStatus.CANCELLED:
            runners.append_log(log_path, "cancelled: process group killed")
        # Stored before the final status is visible, so an ended deployment has its whole log (a savepoint:
        # a failure to store leaves this transaction, and the end, intact).
        stored_logs.store_log(log_path, deployment_id=pk)
        tail = runners.read_tail(log_path) or row.log_tail
        commit = row.commit_sha
        if not commit and status == WorkStatus.SUCCEEDED:
            found = _COMMIT_RE.findall(tail)
            commit = found[-1] if found else ""
        Deployment.objects.filter(pk=pk).update(
            status=status,
            finished_at=row.finished_at or timezone.now(),
            exit_code=code,
            log_tail=tail,
            commit_sha=commit,
        )
        deployment = Deployment.objects.get(pk=pk)
        if status == WorkStatus.SUCCEEDED:
            # In the same transaction: nobody sees the deployment succeeded without the fixes it carried
            # marked deployed. A savepoint: a failure here is logged and the deployment's end still commits.
            try:
                with transaction.atomic():
                    on_deployment_succeeded(deployment, contained=carried or ())
            except Exception:
                log.exception("deployment %s: marking the fixes it carried failed", pk)
    if status != WorkStatus.SUCCEEDED:
        cancel_waiting_runs(deployment)
    webhooks.deployment_finished(deployment)
