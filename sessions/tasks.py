"""Celery tasks: thin wrappers around ``sessions.work``; every fact lives in the rows, none in a result.

Late acknowledgement (settings): a task whose worker dies is delivered again, and the second delivery
finds its row no longer ``queued`` and does nothing; the reaper declares the first attempt ``lost``.
Retries are for infrastructure faults only (the database or the broker unreachable), never because
a deploy or a test failed: those are outcomes, written to the row.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from .demo import repository
from .models import Deployment, TestRun
from .services import retention
from .work import cancel as cancelling
from .work import checkout, reaper
from .work.deploy import execute_deployment
from .work.errors import Refused
from .work.shard_execution import execute_shard
from .work.shard_planning import execute_test_run
from .work.webhooks import attempt as attempt_delivery
from .work.webhooks import stranded as stranded_deliveries

INFRASTRUCTURE_FAULTS = (OperationalError, InterfaceError, BrokerError, ConnectionError)
_RETRY = {
    "autoretry_for": INFRASTRUCTURE_FAULTS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@worker_ready.connect
def clean_checkouts(**_kwargs: object) -> None:
    """A worker starting again removes the checkout folders its killed predecessor left (work/checkout.py)."""
    checkout.clean_leftovers()
    repository.ensure_for_worker()  # the demo's repository, when this worker's disk lacks it


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def deploy(deployment_id: int) -> None:
    """Deploy a queued deployment (the chain of a cycle continues with its test run)."""
    execute_deployment(deployment_id)


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def run_tests(run_id: int) -> None:
    """Run a queued test run to its end (a sharded one: plan it and send one ``run_shard`` per shard)."""
    execute_test_run(run_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, **_RETRY)
def run_shard(self, shard_id: int, deferrals: int = 0) -> None:
    """Run one shard of a sharded run; the last shard to end writes the run's summary."""
    execute_shard(shard_id, worker=str(self.request.hostname or ""), deferrals=deferrals)


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def cancel(kind: str, pk: int) -> None:
    """Cancel a run or a deployment from a script; views call the service directly for an instant answer."""
    try:
        if kind == "deployment":
            cancelling.cancel_deployment(Deployment.objects.get(pk=pk))
        else:
            cancelling.cancel_run(TestRun.objects.get(pk=pk))
    except (Refused, Deployment.DoesNotExist, TestRun.DoesNotExist):
        pass  # already ended or gone: nothing to cancel


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def reap() -> dict[str, int]:
    """Declare lost what went silent (celery beat runs this every 15 s; see docs/WORKERS.md)."""
    return reaper.reap_lost()


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def prune_detail() -> int:
    """Drop the bulky text of results outside their retention window (celery beat, hourly; idempotent)."""
    return retention.prune().runs


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def deliver_webhook(delivery_id: int) -> None:
    """POST one webhook delivery; when it failed and attempts are left, send itself again after the backoff.

    Queued by ``services.webhooks.emit`` on commit (by name: the services never import the tasks).
    """
    delay = attempt_delivery(delivery_id)
    if delay is not None:
        deliver_webhook.apply_async(args=[delivery_id], countdown=delay)


@shared_task(acks_late=True, ignore_result=True, **_RETRY)
def resend_webhooks() -> int:
    """Send again the pending deliveries whose task never reached the broker (celery beat, every minute)."""
    ids = stranded_deliveries()
    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)
    return len(ids)
