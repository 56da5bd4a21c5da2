"""Whole logs without a shared disk: workers store them in the database when work ends; the web serves them.

The worker tests run a real ``celery worker`` (sessions.tests.worker) on a tiny suite written to
``tmp_path``; once the work has ended, the worker's log files are deleted from the disk, as if the worker
ran on another machine, and "Whole log" must still serve them (from ``StoredLog``).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from sessions.models import Deployment, Environment, LoopSession, RunShard, StoredLog, TestRun, WorkStatus
from sessions.services import retention
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.tests.test_retention import loop  # noqa: F401 - the fixture
from sessions.tests.test_tasks_integration import ended_deployment, ended_run, make_session, wait_for, write_suite
from sessions.tests.worker import celery_worker  # noqa: F401 - the fixture
from sessions.work import cancel, queueing, runners
from sessions.work.stored_logs import store_log

on_worker = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

SUITE = """
import pytest

@pytest.mark.parametrize("i", range(6))
def test_numbers(i):
    print("checking", i)
    assert i != 4, "four is unlucky"
"""
SLOW_SUITE = """
import time, pytest

@pytest.mark.parametrize("i", range(300))
def test_slow(i):
    time.sleep(0.1)
"""


def whole_log(client, url: str) -> tuple[int, str]:
    response = client.get(url)
    if response.status_code != 200:
        return response.status_code, response.content.decode()
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return 200, body.decode()


def forget_disk(*paths: str | Path) -> None:
    """Delete the worker's folders, as if it ran on another machine."""
    for path in paths:
        folder = Path(path).parent
        assert folder.is_relative_to(Path(settings.MEDIA_ROOT))
        shutil.rmtree(folder, ignore_errors=True)


# -- a real worker ---------------------------------------------------------------------------------------------


def worker_test(function):
    for mark in reversed(on_worker):
        function = mark(function)
    return function


@worker_test
def test_a_finished_run_s_log_is_served_after_the_worker_s_disk_is_gone(tmp_path, client, viewer) -> None:
    session = make_session("stored-run", write_suite(tmp_path, test_numbers=SUITE))
    run = ended_run(queueing.request_tests(session).pk)
    assert run.status == WorkStatus.FINISHED and run.failed == 1
    stored = StoredLog.objects.get(run=run, shard=None)
    assert stored.size == Path(run.log_path).stat().st_size and not stored.was_cut
    expected = Path(run.log_path).read_bytes()
    assert gzip.decompress(bytes(stored.data)) == expected
    forget_disk(run.log_path)

    client.force_login(viewer)
    response = client.get(f"/runs/{run.pk}/log/")
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'inline; filename="run-{run.pk}.log"'
    body = b"".join(response.streaming_content)
    assert body == expected
    assert b"four is unlucky" in body and b"1 failed, 5 passed" in body


@worker_test
def test_every_end_stores_the_log_cancelled_timed_out_and_error(tmp_path) -> None:
    slow = make_session("stored-cancel", write_suite(tmp_path / "slow", test_slow=SLOW_SUITE))
    run = queueing.request_tests(slow)
    wait_for(lambda: TestRun.objects.get(pk=run.pk).total >= 3, 60, "some results")
    cancel.cancel_run(TestRun.objects.get(pk=run.pk))
    run = ended_run(run.pk, timeout=60)
    assert run.status == WorkStatus.CANCELLED
    assert b"cancelled: process group killed" in gzip.decompress(bytes(StoredLog.objects.get(run=run).data))

    timing = make_session("stored-timeout", tmp_path / "slow", timeout_s=3)
    run = ended_run(queueing.request_tests(timing).pk, timeout=60)
    assert run.status == WorkStatus.TIMED_OUT
    assert b"timed out after 3 s" in gzip.decompress(bytes(StoredLog.objects.get(run=run).data))

    broken = make_session(
        "stored-error", tmp_path, test_command=["{python}", "-c", "import sys; sys.exit('no pytest')"]
    )
    run = ended_run(queueing.request_tests(broken).pk, timeout=60)
    assert run.status == WorkStatus.ERROR
    assert b"no pytest" in gzip.decompress(bytes(StoredLog.objects.get(run=run).data))


@worker_test
def test_a_deployment_s_log_is_served_after_the_worker_s_disk_is_gone(tmp_path, client, viewer) -> None:
    script = "print('[deploy] shipping r1'); print('[deploy] healthy')"
    session = make_session("stored-deploy", tmp_path, deploy_command=["{python}", "-c", script])
    deployment = ended_deployment(queueing.request_deploy(session, revision="r1").pk)
    assert deployment.status == WorkStatus.SUCCEEDED
    forget_disk(deployment.log_path)

    failing = make_session("stored-deploy-fails", tmp_path, deploy_command=["{python}", "-c", "raise SystemExit(3)"])
    failed = ended_deployment(queueing.request_deploy(failing, revision="r1").pk)
    assert failed.status == WorkStatus.FAILED and StoredLog.objects.filter(deployment=failed).exists()

    client.force_login(viewer)
    status, body = whole_log(client, f"/deployments/{deployment.pk}/log/")
    assert status == 200 and "[deploy] shipping r1\n[deploy] healthy" in body
    response = client.get(f"/deployments/{deployment.pk}/log/")
    assert response["Content-Disposition"] == f'inline; filename="deployment-{deployment.pk}.log"'


@worker_test
def test_a_sharded_run_s_whole_log_is_the_planning_log_then_each_shard_s(tmp_path, client, viewer) -> None:
    session = make_session("stored-shards", write_suite(tmp_path, test_numbers=SUITE))
    run = ended_run(queueing.request_tests(session, shards=2).pk, timeout=180)
    assert run.status == WorkStatus.FINISHED and run.total == 6
    shards = list(RunShard.objects.filter(run=run).order_by("index"))
    assert len(shards) == 2 and StoredLog.objects.filter(run=run).count() == 3  # planning + 2 shards
    forget_disk(run.log_path, *(Path(settings.MEDIA_ROOT) / "shards" / str(s.pk) / "output.log" for s in shards))

    client.force_login(viewer)
    status, body = whole_log(client, f"/runs/{run.pk}/log/")
    assert status == 200
    assert body.startswith(f"===== run {run.pk}: planning (worker {shards[0].worker}) =====\n")  # one node here
    assert "split into 2 shard(s)" in body
    headers = [line for line in body.splitlines() if line.startswith("===== shard")]
    assert [h.split(" (")[0] for h in headers] == ["===== shard 1 of 2", "===== shard 2 of 2"]
    for shard, header in zip(shards, headers, strict=True):
        assert f"(attempt 1, worker {shard.worker}): finished =====" in header
    assert body.index(headers[0]) < body.index("shard 1 (attempt 1)") < body.index(headers[1])
    assert body.count("passed") >= 2  # each shard's pytest summary


# -- the cap, the reasons, who may read, retention (no worker needed) ---------------------------------------------


@pytest.fixture
def ran(db, tmp_path) -> TestRun:
    env = Environment.objects.create(name="logs", working_dir=str(tmp_path), test_command=["pytest"])
    session = LoopSession.objects.create(environment=env, title="Logs", slug="logs")
    return TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=env, status=WorkStatus.RUNNING
    )


def write_log(run: TestRun, text: str) -> Path:
    folder = runners.fresh_dir("runs", run.pk)
    path = folder / "output.log"
    path.write_text(text)
    TestRun.objects.filter(pk=run.pk).update(log_path=str(path))
    return path


def test_a_log_over_the_cap_keeps_its_head_and_tail(ran, settings, client, viewer) -> None:
    settings.LOOPDASH_STORED_LOG_MAX_BYTES = 10_000
    lines = [f"line {n:06d} of the log" for n in range(5_000)]
    path = write_log(ran, "\n".join(lines) + "\n")
    size = path.stat().st_size
    stored = store_log(path, run_id=ran.pk)
    assert stored is not None and stored.size == size and stored.was_cut
    text = gzip.decompress(bytes(stored.data)).decode()
    kept = text.splitlines()
    assert kept[0] == lines[0] and kept[-1] == lines[-1]  # whole lines: the first ones and the last ones
    assert all(line in lines for line in kept if not line.startswith("[loopdash]") and line)
    note = next(line for line in kept if line.startswith("[loopdash]"))
    assert f"{stored.cut_bytes:,} bytes cut from the middle of this {size:,}-byte log" in note
    assert stored.cut_bytes == size - len(text.encode()) + len(note) + 2  # the note and its two newlines
    assert len(text.encode()) <= 10_000 + len(note) + 2

    # The web serves the stored copy once the file is gone; a log under the cap is kept whole.
    path.unlink()
    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.FINISHED)
    client.force_login(viewer)
    assert whole_log(client, f"/runs/{ran.pk}/log/") == (200, text)
    small = write_log(ran, "short\n")
    stored = store_log(small, run_id=ran.pk)  # replaces the earlier copy: one per run
    assert StoredLog.objects.filter(run=ran).count() == 1 and not stored.was_cut
    assert gzip.decompress(bytes(stored.data)) == b"short\n"


def test_no_cap_at_zero_stores_nothing(ran, settings) -> None:
    settings.LOOPDASH_STORED_LOG_MAX_BYTES = 0
    assert store_log(write_log(ran, "x\n"), run_id=ran.pk) is None
    assert not StoredLog.objects.exists()


def test_a_failure_to_store_never_breaks_the_caller(ran) -> None:
    path = write_log(ran, "the log\n")
    with transaction.atomic():
        assert store_log(path) is None  # no owner: refused by the database, logged, swallowed
        TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.FINISHED)  # the caller's transaction goes on
    assert TestRun.objects.get(pk=ran.pk).status == WorkStatus.FINISHED
    assert store_log(Path(settings.MEDIA_ROOT) / "no-such-file.log", run_id=ran.pk) is None


def test_missing_logs_say_why(ran, client, viewer) -> None:
    client.force_login(viewer)
    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.QUEUED)
    status, body = whole_log(client, f"/runs/{ran.pk}/log/")
    assert status == 404 and "waiting for a worker" in body

    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.RUNNING, log_path="/elsewhere/media/runs/9/output.log")
    status, body = whole_log(client, f"/runs/{ran.pk}/log/")
    assert status == 404 and "the log stays on the worker's disk until the run ends" in body

    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.LOST, log_tail="collected 9 items")
    status, body = whole_log(client, f"/runs/{ran.pk}/log/")
    assert status == 404 and "No log was kept" in body and "lost" in body
    page = client.get(ran.get_absolute_url()).content.decode()
    assert 'id="run-lost-tail"' in page and "collected 9 items" in page and 'id="operate-run-log"' not in page

    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.FINISHED, log_path="", source=TestRun.Source.UPLOAD)
    status, body = whole_log(client, f"/runs/{ran.pk}/log/")
    assert status == 404 and "was not run by a worker: its results were uploaded" in body

    env = ran.environment
    deployment = Deployment.objects.create(environment=env, revision="r1", status=WorkStatus.FAILED)
    status, body = whole_log(client, f"/deployments/{deployment.pk}/log/")
    assert status == 404 and "never started on a worker" in body


def test_logs_need_a_login_and_any_viewer_reads_them(ran, client, viewer) -> None:
    path = write_log(ran, "hello from the worker\n")
    store_log(path, run_id=ran.pk)
    path.unlink()
    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.FINISHED)
    response = client.get(f"/runs/{ran.pk}/log/")
    assert response.status_code == 302 and "/login" in response["Location"]
    client.force_login(viewer)
    assert whole_log(client, f"/runs/{ran.pk}/log/") == (200, "hello from the worker\n")


def test_a_local_file_that_is_not_the_stored_one_is_not_served(ran, client, viewer) -> None:
    """A file an earlier row of the same id left (a reset database) must not stand for this run's log."""
    client.force_login(viewer)
    path = write_log(ran, "this run's own log\n")
    store_log(path, run_id=ran.pk)
    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.FINISHED)
    assert whole_log(client, f"/runs/{ran.pk}/log/") == (200, "this run's own log\n")  # the local file, the same
    path.write_text("an older run's log of another length\n")
    assert whole_log(client, f"/runs/{ran.pk}/log/") == (200, "this run's own log\n")  # the stored copy


@pytest.mark.django_db
def test_prune_drops_the_stored_logs_of_the_runs_it_prunes(loop) -> None:  # noqa: F811
    old, latest = loop[0], loop[-1]
    shard = RunShard.objects.create(run=old, index=1, status=WorkStatus.FINISHED)
    for run in (old, latest):
        path = write_log(run, f"log of run {run.pk}\n" * 500)
        store_log(path, run_id=run.pk)
        path.unlink()
    store_log(write_log(old, "a shard's log\n"), run_id=old.pk, shard_id=shard.pk)
    stored_bytes = sum(len(bytes(s.data)) for s in StoredLog.objects.filter(run=old))

    assert retention.prune(dry_run=True).log_bytes >= stored_bytes
    assert StoredLog.objects.filter(run=old).count() == 2  # a dry run writes nothing
    report = retention.prune()
    assert old.pk in report.run_ids and latest.pk not in report.run_ids  # the latest run is kept
    assert not StoredLog.objects.filter(run=old).exists()  # the run's log and its shard's
    assert StoredLog.objects.filter(run=latest).count() == 1
    assert report.log_bytes >= stored_bytes


def test_a_sharded_run_with_a_lost_shard_shows_what_was_kept(ran, client, viewer) -> None:
    store_log(write_log(ran, "planned 2 shards\n"), run_id=ran.pk, worker="w0@a")
    Path(TestRun.objects.get(pk=ran.pk).log_path).unlink()
    done = RunShard.objects.create(run=ran, index=1, status=WorkStatus.FINISHED, worker="w1@b")
    lost = RunShard.objects.create(
        run=ran, index=2, status=WorkStatus.LOST, attempt=2, worker="w2@c", log_tail="collected 3 items\nteststart"
    )
    folder = runners.fresh_dir("shards", done.pk)
    (folder / "output.log").write_text("3 passed\n")
    store_log(folder / "output.log", run_id=ran.pk, shard_id=done.pk, worker="w1@b")
    (folder / "output.log").unlink()
    TestRun.objects.filter(pk=ran.pk).update(status=WorkStatus.LOST)
    shutil.rmtree(runners.work_dir("shards", lost.pk), ignore_errors=True)  # its worker's disk is elsewhere

    client.force_login(viewer)
    status, body = whole_log(client, f"/runs/{ran.pk}/log/")
    assert status == 200
    assert body == (
        f"===== run {ran.pk}: planning (worker w0@a) =====\nplanned 2 shards\n"
        "===== shard 1 of 2 (attempt 1, worker w1@b): finished =====\n3 passed\n"
        "===== shard 2 of 2 (attempt 2, worker w2@c): lost =====\n"
        "[loopdash] lost with its worker: no log was kept; the last lines it sent:\ncollected 3 items\nteststart\n"
    )
