"""Webhook gaps closed: refused sends are sent again by beat; a deployment the reaper declares lost is announced.

Deliveries whose task the broker refused are sent again by ``tasks.resend_webhooks``: the refusal is
real (the Celery app pointed at a closed port, as in test_lost_work); the resend goes through a real
worker to a real receiver on 127.0.0.1 (the fixtures of test_webhooks). ``deployment.finished`` is sent
for a deployment whose worker went silent, as for any other end.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions import tasks
from sessions.models import Deployment, Environment, LoopSession, WebhookDelivery, WorkStatus
from sessions.services import webhooks
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.tests.test_lost_work import broker_down, broker_refusing  # noqa: F401 - the fixture
from sessions.tests.test_webhooks import SECRET, receiver, wait_for, webhook_worker  # noqa: F401 - fixtures
from sessions.work import reaper
from sessions.work.webhooks import STRANDED_AFTER_S, stranded

Status = WebhookDelivery.Status


def aged(delivery: WebhookDelivery, seconds: float, **fields: object) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds), **fields
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broker_down")
def test_a_refused_send_leaves_the_delivery_pending_until_it_is_overdue() -> None:
    webhooks.add_webhook("http://127.0.0.1:9/hook", SECRET)
    (delivery,) = webhooks.emit("run.finished", {"run": 1})
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and delivery.last_error.startswith("not queued:")
    assert stranded() == []  # not a minute old yet
    aged(delivery, STRANDED_AFTER_S + 5)
    assert stranded() == [delivery.pk]


@pytest.mark.django_db
def test_a_delivery_waiting_for_its_retry_is_not_stranded(settings) -> None:
    settings.LOOPDASH_WEBHOOK_BACKOFF_S = 10
    hook = webhooks.add_webhook("http://127.0.0.1:9/hook", SECRET)
    now = timezone.now()
    waiting = WebhookDelivery.objects.create(webhook=hook, event="run.finished", payload="{}", attempts=3)
    lost = WebhookDelivery.objects.create(webhook=hook, event="run.finished", payload="{}", attempts=1)
    done = WebhookDelivery.objects.create(webhook=hook, event="run.finished", payload="{}", status=Status.DELIVERED)
    aged(waiting, 600, last_attempt_at=now - timedelta(seconds=50))  # retry due 40 s after it: +10 s late
    aged(lost, 600, last_attempt_at=now - timedelta(seconds=200))  # retry due 10 s after it: 190 s late
    aged(done, 600)
    assert stranded(now) == [lost.pk]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("webhook_worker")
def test_beats_resend_delivers_a_stranded_delivery(request, broker_down_then_up) -> None:
    listener = request.getfixturevalue("receiver")  # test_webhooks' receiver on 127.0.0.1
    webhooks.add_webhook(f"{listener.url}/resent", SECRET)
    with broker_down_then_up():
        (delivery,) = webhooks.emit("run.finished", {"run": 2})
    aged(delivery, STRANDED_AFTER_S + 5)
    assert tasks.resend_webhooks.apply().get() == 1  # beat's task, run here: it sends to the worker's queue
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == Status.DELIVERED, "the resent delivery")
    assert [r.json["data"] for r in listener.on("/resent")] == [{"run": 2}]


@pytest.fixture
def broker_down_then_up():
    """A context in which the broker refuses (a closed port), restored after it."""
    return broker_refusing


@pytest.mark.django_db
def test_a_deployment_the_reaper_declares_lost_sends_deployment_finished() -> None:
    webhooks.add_webhook("http://127.0.0.1:9/hook", SECRET, events="deployment.finished")
    env = Environment.objects.create(name="staging", working_dir="examples/staging")
    session = LoopSession.objects.create(environment=env, title="Golden path", slug="golden")
    silent = timezone.now() - timedelta(minutes=10)
    deployment = Deployment.objects.create(
        environment=env, cycle=resolve_cycle(session, None), revision="r7",
        status=WorkStatus.RUNNING, started_at=silent, heartbeat_at=silent,
    )  # fmt: skip
    assert reaper.reap_deployments(Deployment.objects.all()) == 1
    deployment.refresh_from_db()
    assert deployment.status == WorkStatus.LOST
    (delivery,) = WebhookDelivery.objects.filter(event="deployment.finished")
    assert '"status":"lost"' in delivery.payload and f'"deployment":{deployment.pk}' in delivery.payload
