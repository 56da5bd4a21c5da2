"""No queued or running row outlives its work: a failed enqueue, unclaimed work, a silent worker, seen from the web.

No worker here (the worker tests are in test_tasks_integration): the broker is made unreachable for
real, by pointing the Celery app at a closed port, and silence is made by dating the rows back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from loopdash.celery import app as celery_app
from sessions.models import LIVE_STATUSES, Deployment, Environment, LoopSession, TestRun, WorkStatus
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.tokens import issue_token
from sessions.work import locks, queueing, reaper

HX = {"HX-Request": "true"}


@pytest.fixture
def session(db) -> LoopSession:
    env = Environment.objects.create(
        name="staging",
        working_dir="examples/staging",
        deploy_command=["{python}", "deploy.py", "--revision", "{revision}"],
        test_command=["{python}", "-m", "pytest", "tests"],
        revisions=[{"revision": "r1", "commit": "a" * 40}, {"revision": "r2", "commit": "b" * 40}],
        default_revision="r1",
    )
    return LoopSession.objects.create(environment=env, title="Golden path", slug="golden")


def _reset_pools() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def broker_refusing() -> Iterator[None]:
    """The Celery app's broker on a port where nothing listens (a real refused connection), restored after."""
    keys = ("broker_url", "broker_write_url", "broker_read_url", "broker_transport_options")
    saved = {key: celery_app.conf[key] for key in keys}
    celery_app.conf.update(
        broker_url="redis://127.0.0.1:9/0",
        broker_write_url="redis://127.0.0.1:9/0",
        broker_read_url="redis://127.0.0.1:9/0",
        broker_transport_options={},
    )
    _reset_pools()
    try:
        yield
    finally:
        celery_app.conf.update(saved)
        _reset_pools()


@pytest.fixture
def broker_down():
    """The whole test with a broker that refuses (``broker_refusing``)."""
    with broker_refusing():
        yield


# -- a failed enqueue ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_deploy_the_broker_refuses_ends_failed_and_blocks_nothing(client, operator, session, broker_down) -> None:
    client.force_login(operator)
    response = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r2"})
    assert response.status_code == 503
    assert "could not be reached" in response.content.decode()
    deployment = Deployment.objects.get()
    assert deployment.status == WorkStatus.FAILED and deployment.finished_at
    assert "could not queue it" in deployment.log_tail and "127.0.0.1:9" in deployment.log_tail

    # The next deploy is not "already queued" (409): it is refused for the same reason, and ends the same way.
    response = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r2"})
    assert response.status_code == 503
    assert set(Deployment.objects.values_list("status", flat=True)) == {WorkStatus.FAILED}


@pytest.mark.django_db(transaction=True)
def test_a_cycle_and_a_run_the_broker_refuses_end_with_a_summary(client, operator, session, broker_down) -> None:
    token = issue_token(operator)
    auth = {"Authorization": f"Bearer {token}"}
    response = client.post(
        f"/api/v1/sessions/{session.slug}/trigger", {"action": "cycle"}, content_type="application/json", headers=auth
    )
    assert response.status_code == 503 and "broker" in response.json()["error"]
    deployment = Deployment.objects.get()
    cycle_run = TestRun.objects.get()
    assert deployment.status == WorkStatus.FAILED
    assert cycle_run.status == WorkStatus.CANCELLED and cycle_run.summary_written

    response = client.post(
        f"/api/v1/sessions/{session.slug}/trigger", {"action": "tests"}, content_type="application/json", headers=auth
    )
    assert response.status_code == 503
    run = TestRun.objects.exclude(pk=cycle_run.pk).get()
    assert run.status == WorkStatus.ERROR and run.summary_written and run.incomplete
    assert "could not queue it" in run.log_tail
    assert not TestRun.objects.filter(status__in=LIVE_STATUSES).exists()


def test_a_broker_password_never_reaches_the_page() -> None:
    problem = queueing._broker_problem(ConnectionError("cannot reach redis://user:s3cret@redis:6379/0"))
    assert "s3cret" not in problem and "redis://***@redis:6379/0" in problem


# -- work no worker claims ----------------------------------------------------------------------------------------


def _age(model: type, pk: int, seconds: float, **fields: object) -> None:
    model.objects.filter(pk=pk).update(created_at=timezone.now() - timedelta(seconds=seconds), **fields)


def test_a_queued_deployment_nobody_claims_is_ended_and_releases_the_lock(session, settings) -> None:
    settings.LOOPDASH_QUEUED_MAX_S = 60
    stuck = Deployment.objects.create(
        environment=session.environment, cycle=resolve_cycle(session, 1), revision="r1", status=WorkStatus.QUEUED
    )
    waiting = TestRun.objects.create(
        session=session, cycle=stuck.cycle, environment=session.environment, deployment=stuck,
        status=WorkStatus.QUEUED, source=TestRun.Source.UI,
    )  # fmt: skip
    with locks.environment_locked(session.environment.pk):
        assert locks.holder(session.environment.pk, include_queued=True) == stuck
    _age(Deployment, stuck.pk, 61)
    with locks.environment_locked(session.environment.pk):
        assert locks.holder(session.environment.pk, include_queued=True) is None

    assert reaper.reap_lost()["unclaimed"] == 1
    stuck.refresh_from_db()
    waiting.refresh_from_db()
    assert stuck.status == WorkStatus.FAILED and "no worker claimed it within 60 s" in stuck.log_tail
    assert waiting.status == WorkStatus.CANCELLED and waiting.summary_written
    assert reaper.reap_lost()["unclaimed"] == 0


def test_a_queued_run_nobody_claims_is_ended_but_one_waiting_for_its_deploy_is_not(session, settings) -> None:
    settings.LOOPDASH_QUEUED_MAX_S = 60
    cycle = resolve_cycle(session, 1)
    deploying = Deployment.objects.create(
        environment=session.environment, cycle=cycle, revision="r1", status=WorkStatus.RUNNING,
        started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    common = {"session": session, "cycle": cycle, "environment": session.environment, "source": TestRun.Source.UI}
    lonely = TestRun.objects.create(status=WorkStatus.QUEUED, **common)
    behind = TestRun.objects.create(status=WorkStatus.QUEUED, deployment=deploying, **common)
    fresh = TestRun.objects.create(status=WorkStatus.QUEUED, **common)
    _age(TestRun, lonely.pk, 61)
    _age(TestRun, behind.pk, 61)
    assert reaper.reap_lost()["unclaimed"] == 1
    lonely.refresh_from_db()
    assert lonely.status == WorkStatus.ERROR and lonely.summary_written and "no worker claimed" in lonely.log_tail
    assert TestRun.objects.get(pk=behind.pk).status == WorkStatus.QUEUED
    assert TestRun.objects.get(pk=fresh.pk).status == WorkStatus.QUEUED


# -- the web side notices silence ---------------------------------------------------------------------------------


def test_reading_a_silent_run_marks_it_lost_without_beat(client, viewer, session, settings) -> None:
    settings.LOOPDASH_LOST_AFTER_S = 30
    long_ago = timezone.now() - timedelta(seconds=31)
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=long_ago, heartbeat_at=long_ago,
    )  # fmt: skip
    client.force_login(viewer)
    response = client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == WorkStatus.LOST and run.summary_written
    assert "Lost" in response.content.decode()


def test_reading_a_silent_deployment_marks_it_lost(client, viewer, session, settings) -> None:
    settings.LOOPDASH_LOST_AFTER_S = 30
    long_ago = timezone.now() - timedelta(seconds=31)
    deployment = Deployment.objects.create(
        environment=session.environment, cycle=resolve_cycle(session, 1), revision="r1", status=WorkStatus.RUNNING,
        started_at=long_ago, heartbeat_at=long_ago,
    )  # fmt: skip
    client.force_login(viewer)
    response = client.get(f"/deployments/{deployment.pk}/log/", headers=HX)
    deployment.refresh_from_db()
    assert deployment.status == WorkStatus.LOST
    assert response.status_code == 286  # the partial stops polling


def test_a_live_healthy_run_costs_the_page_no_reaper_query(
    client, viewer, session, django_assert_max_num_queries
) -> None:
    now = timezone.now()
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=now, heartbeat_at=now,
    )  # fmt: skip
    client.force_login(viewer)
    assert reaper.notice_stale(run) is False
    response = client.get(f"/runs/{run.pk}/progress/", headers=HX)
    assert response.status_code == 200 and TestRun.objects.get(pk=run.pk).status == WorkStatus.RUNNING


def test_a_queued_run_says_it_waits_for_a_worker(client, viewer, session) -> None:
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.QUEUED, source=TestRun.Source.UI,
    )  # fmt: skip
    client.force_login(viewer)
    body = client.get(f"/runs/{run.pk}/progress/", headers=HX).content.decode()
    assert "waiting for a worker" in body and "queued" in body.lower()


def test_healthz_reports_how_many_workers_answer(client, db) -> None:
    body = client.get("/healthz").json()
    assert body["database"] == "ok" and body["broker"] == "ok"
    assert isinstance(body["workers"], int) and body["workers"] >= 0
