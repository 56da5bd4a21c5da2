"""Celery tasks: thin wrappers around ``services.runs``; every fact lives in the rows, none in a result.

Late acknowledgement (settings): a task whose worker dies is delivered again, and the second delivery
finds its row no longer ``queued`` and does nothing; the reaper declares the first attempt ``lost``.
Retries are for infrastructure faults only (the database or the broker unreachable), never because
a deploy or a test failed: those are outcomes, written to the row.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from .services import runs

INFRASTRUCTURE_FAULTS = (OperationalError, InterfaceError, BrokerError, ConnectionError)
_RETRY = {
    "autoretry_for": INFRASTRUCTURE_FAULTS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def deploy(deployment_id: int) -> None:
    """Deploy a queued deployment (the chain of a cycle continues with its test run)."""
    runs.execute_deployment(deployment_id)


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def run_tests(run_id: int) -> None:
    """Run a queued test run to its end."""
    runs.execute_run(run_id)


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def cancel(kind: str, pk: int) -> None:
    """Cancel a run or a deployment from a script; views call the service directly for an instant answer."""
    from .models import Deployment, TestRun

    try:
        if kind == "deployment":
            runs.cancel_deployment(Deployment.objects.get(pk=pk))
        else:
            runs.cancel_run(TestRun.objects.get(pk=pk))
    except (runs.Refused, Deployment.DoesNotExist, TestRun.DoesNotExist):
        pass  # already ended or gone: nothing to cancel


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def reap() -> dict[str, int]:
    """Declare lost what went silent (celery beat runs this every 15 s; see docs/WORKERS.md)."""
    return runs.reap_lost()
