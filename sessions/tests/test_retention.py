"""Retention: old results lose their text, never their figures; protected runs and dry runs change nothing."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from loopdash.celery import app
from sessions import tasks
from sessions.models import (
    Analysis,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    RunComparison,
    RunSignature,
    StoredLog,
    TestCase,
    TestResult,
    TestRun,
)
from sessions.selectors.cases import case_facts, case_history
from sessions.selectors.compare import compare_counts, compare_page
from sessions.services import retention
from sessions.tests.test_pages import Case, ingest
from sessions.work.stored_logs import store_log

pytestmark = pytest.mark.django_db

TRACE = "Traceback (most recent call last):\n" + "  File 'tests/test_chat.py', line 12, in test\n" * 40


def cycle_cases(cycle: int) -> list[Case]:
    """A cycle of 40 tests: a few failing with long tracebacks, which ones moving from cycle to cycle."""
    cases = []
    for i in range(40):
        if i % 5 == cycle % 5:
            cases.append(Case(f"test_{i:02d}", "failed", 1.0 + i / 10, f"AssertionError: step {i}\n{TRACE}"))
        elif i % 13 == cycle:
            cases.append(Case(f"test_{i:02d}", "error", 0.5, f"TimeoutError: {i}\n{TRACE}"))
        else:
            cases.append(Case(f"test_{i:02d}", "passed", 1.0 + cycle / 10))
    return cases


@pytest.fixture
def loop() -> list[TestRun]:
    """Four cycles of one session; full detail kept for the latest cycle only (no limit in days)."""
    runs = [ingest(cycle_cases(cycle), cycle=cycle, label=f"c{cycle}") for cycle in range(1, 5)]
    Environment.objects.filter(name="staging").update(detail_days=0, detail_cycles=1)
    return [TestRun.objects.get(pk=run.pk) for run in runs]


def figures(runs: list[TestRun], client) -> dict:
    """Everything the pages draw from old runs: summaries, trend page, histories, comparisons, signatures."""
    summary_fields = ("total", "passed", "failed", "errors", "skipped", "pass_rate", "tests_duration_s", "by_priority")
    cache.clear()  # the trend is built again from the runs, not read from the cache
    first, second = runs[0], runs[1]
    page = compare_page(second, first, mismatch=False, wanted="", after=None)
    session_html = client.get(reverse("session_detail", args=["golden-path"])).content.decode()
    histories = {}
    for case in TestCase.objects.order_by("pk"):
        history = case_history(case)
        histories[case.nodeid] = (
            [(r.run_id, r.outcome, r.duration, r.suspect, r.signature_id) for r in history],
            case_facts(history).durations,
        )
    return {
        "summaries": list(TestRun.objects.order_by("pk").values_list(*summary_fields)),
        "session_page": re.sub(r'nonce="[^"]*"|[A-Za-z0-9]{64}', "", session_html),  # per-request nonce, CSRF
        "histories": histories,
        "compare_counts": compare_counts(second, first),
        "compare_lists": {
            item.name: [(row.case.pk, row.now and row.now.outcome, row.was and row.was.outcome) for row in item.rows]
            for item in page["lists"]
        },
        "stored_comparisons": list(RunComparison.objects.order_by("pk").values_list("run_id", "base_id", "counts")),
        "signatures": list(
            FailureSignature.objects.order_by("pk").values_list("result_count", "test_count", "module_count")
        ),
        "run_signatures": list(RunSignature.objects.order_by("pk").values_list("run_id", "signature_id", "results")),
        "results": list(TestResult.objects.order_by("pk").values_list("outcome", "duration", "signature_id")),
    }


def texts(run: TestRun) -> list[tuple[str, str]]:
    return list(TestResult.objects.filter(run=run).exclude(message="", details="").values_list("message", "details"))


def test_pruning_keeps_trends_histories_comparisons_and_counts(loop, client, viewer) -> None:
    client.force_login(viewer)
    before = figures(loop, client)
    report = retention.prune(batch=7)  # several batches per run
    assert report.runs == 3 and sorted(report.run_ids) == [run.pk for run in loop[:3]]
    for run in loop[:3]:
        assert texts(run) == []
        assert TestRun.objects.get(pk=run.pk).detail_pruned_at is not None
    assert texts(loop[3]) and TestRun.objects.get(pk=loop[3].pk).detail_pruned_at is None
    assert figures(loop, client) == before


def test_a_second_prune_changes_nothing(loop) -> None:
    first = retention.prune()
    assert first.runs == 3 and first.results > 0
    pruned_at = dict(TestRun.objects.values_list("pk", "detail_pruned_at"))
    again = retention.prune()
    assert (again.runs, again.results) == (0, 0)
    assert dict(TestRun.objects.values_list("pk", "detail_pruned_at")) == pruned_at


def test_dry_run_says_what_would_go_and_changes_nothing(loop) -> None:
    stored = list(TestResult.objects.order_by("pk").values_list("message", "details"))
    out = io.StringIO()
    call_command("prune", "--dry-run", stdout=out)
    failing = TestResult.objects.filter(run__in=loop[:3], outcome__in=["failed", "error"]).count()
    assert f"would drop the detail of 3 run(s): the text of {failing} result(s)" in out.getvalue()
    expected_chars = sum(
        len(m) + len(d) for m, d in TestResult.objects.filter(run__in=loop[:3]).values_list("message", "details")
    )
    assert retention.prune(dry_run=True).text_bytes == expected_chars
    assert list(TestResult.objects.order_by("pk").values_list("message", "details")) == stored
    assert not TestRun.objects.exclude(detail_pruned_at=None).exists()
    out = io.StringIO()
    call_command("prune", stdout=out)
    assert f"dropped the detail of 3 run(s): the text of {failing} result(s)" in out.getvalue()


def test_runs_that_triage_points_to_keep_their_detail(loop) -> None:
    signature = FailureSignature.objects.filter(first_seen_run=loop[0]).order_by("pk").first()
    analysis = Analysis.objects.create(signature=signature, problem="chat drops")
    Fix.objects.create(analysis=analysis, sha="abc123", status=Fix.Status.VERIFIED, verified_by=loop[1])
    protected = {signature.first_seen_run_id, signature.last_seen_run_id, loop[1].pk}
    report = retention.prune()
    assert set(report.run_ids) == {run.pk for run in loop[:3]} - protected
    for run in loop:
        assert bool(texts(run)) == (run.pk in protected or run == loop[3])


def test_the_window_in_days(loop, settings) -> None:
    Environment.objects.update(detail_days=None, detail_cycles=None)
    settings.LOOPDASH_RETENTION_DAYS, settings.LOOPDASH_RETENTION_CYCLES = 30, 0
    assert retention.prune(dry_run=True).runs == 0
    TestRun.objects.filter(pk=loop[0].pk).update(finished_at=timezone.now() - dt.timedelta(days=31))
    assert retention.prune().run_ids == [loop[0].pk]
    settings.LOOPDASH_RETENTION_DAYS = 0  # no limit at all: nothing more goes
    TestRun.objects.filter(pk=loop[1].pk).update(finished_at=timezone.now() - dt.timedelta(days=400))
    assert retention.prune().runs == 0


def test_both_limits_must_agree(loop) -> None:
    """Days and cycles: a run keeps its detail while either says so."""
    Environment.objects.update(detail_days=30, detail_cycles=1)
    assert retention.prune(dry_run=True).runs == 0  # outside the latest cycle, but younger than 30 days
    TestRun.objects.filter(pk__in=[loop[0].pk, loop[3].pk]).update(finished_at=timezone.now() - dt.timedelta(days=31))
    assert retention.prune().run_ids == [loop[0].pk]  # the latest cycle keeps its detail whatever its age


def test_live_runs_are_never_pruned(loop) -> None:
    TestRun.objects.filter(pk=loop[0].pk).update(status="running")
    assert loop[0].pk not in retention.prune().run_ids
    assert texts(loop[0])


def test_the_run_log_goes_and_the_run_page_says_when(loop, client, viewer) -> None:
    folder = Path(settings.MEDIA_ROOT) / "runs" / str(loop[0].pk)
    shutil.rmtree(folder, ignore_errors=True)  # files an earlier test's run of the same id left there
    folder.mkdir(parents=True)
    log = folder / "output.log"
    log.write_text("collected 40 items\n" * 1000)
    outside = Path(settings.VAR_DIR) / f"not-a-run-log-{loop[1].pk}.txt"
    outside.write_text("kept")
    TestRun.objects.filter(pk=loop[0].pk).update(log_path=str(log), log_tail="last lines", suite_output="<system-out>")
    TestRun.objects.filter(pk=loop[1].pk).update(log_path=str(outside))
    assert retention.prune(dry_run=True).log_bytes == log.stat().st_size
    report = retention.prune()
    assert report.log_bytes == len("collected 40 items\n") * 1000
    assert not log.exists() and outside.read_text() == "kept"
    outside.unlink()
    run = TestRun.objects.get(pk=loop[0].pk)
    assert run.log_tail == "" and run.suite_output == ""
    client.force_login(viewer)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'id="run-pruned"' in html and f"detail pruned {run.detail_pruned_at:%b} " in html
    html = client.get(reverse("run_detail", args=[loop[3].pk])).content.decode()
    assert 'id="run-pruned"' not in html


def test_the_periodic_task_prunes_and_is_scheduled(loop) -> None:
    assert app.conf.beat_schedule["prune-detail"]["task"] == "sessions.tasks.prune_detail"
    assert tasks.prune_detail() == 3
    assert tasks.prune_detail() == 0


def test_negative_windows_keep_everything(loop) -> None:
    Environment.objects.update(detail_days=None, detail_cycles=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "LOOPDASH_RETENTION_DAYS", -5)
        patch.setattr(settings, "LOOPDASH_RETENTION_CYCLES", -1)
        assert retention.prune(dry_run=True).runs == 0


def deployment(run: TestRun, status: str = "succeeded", *, cycle: bool = True, days_ago: int = 0) -> Deployment:
    """A deployment of ``run``'s cycle with a log file under MEDIA_ROOT, its stored copy and its tail."""
    finished = timezone.now() - dt.timedelta(days=days_ago)
    made = Deployment.objects.create(
        environment_id=run.environment_id,
        cycle_id=run.cycle_id if cycle else None,
        revision=f"r{run.cycle.number}",
        status=status,
        log_tail="deployed",
        started_at=finished - dt.timedelta(seconds=30),
        finished_at=None if status == "running" else finished,
    )
    folder = Path(settings.MEDIA_ROOT) / "deployments"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"retention-test-{made.pk}.log"
    log.write_text("building release\n" * 2000)
    Deployment.objects.filter(pk=made.pk).update(log_path=str(log))
    store_log(log, deployment_id=made.pk)
    made.refresh_from_db()
    return made


def test_old_deployments_lose_their_logs_and_current_and_evidence_keep_them(loop, client, viewer) -> None:
    old = deployment(loop[0])  # cycle 1: outside the window (latest cycle only)
    fixed = deployment(loop[1], "failed")  # carried a fix: evidence
    Fix.objects.create(
        analysis=Analysis.objects.create(signature=FailureSignature.objects.first(), problem="p"),
        sha="abc1234",
        deployment=fixed,
    )
    running = deployment(loop[2], "running")
    stale = deployment(loop[2], "succeeded", cycle=False, days_ago=400)  # no cycle, only cycles limited
    current = deployment(loop[3])  # the environment's current deployment, inside the window anyway
    newest = deployment(loop[1], "succeeded")  # the latest succeeded one: the current deployment
    Deployment.objects.filter(pk=current.pk).update(status="failed")
    file_size = Path(old.log_path).stat().st_size
    stored = StoredLog.objects.get(deployment=old).data

    dry = retention.prune(dry_run=True)
    assert dry.deployment_ids == [old.pk], dry
    assert dry.log_bytes >= file_size + len(stored)
    assert Path(old.log_path).exists() and StoredLog.objects.filter(deployment=old).exists()
    assert "and the logs of 1 deployment(s)" in dry.describe(dry_run=True)

    report = retention.prune()
    assert report.deployment_ids == [old.pk]
    assert not Path(old.log_path).exists() and not StoredLog.objects.filter(deployment=old).exists()
    old.refresh_from_db()
    assert old.detail_pruned_at is not None and old.log_tail == ""
    assert (old.revision, old.status, old.finished_at) == ("r1", "succeeded", old.finished_at)
    for kept in (fixed, running, stale, current, newest):
        kept.refresh_from_db()
        assert kept.detail_pruned_at is None and kept.log_tail == "deployed", kept
        assert Path(kept.log_path).exists() and StoredLog.objects.filter(deployment=kept).exists()
    assert retention.prune().deployment_ids == []  # idempotent

    client.force_login(viewer)
    answer = client.get(reverse("operate_deployment_log", args=[old.pk]))
    assert answer.status_code == 404
    assert f"was pruned on {old.detail_pruned_at.date().isoformat()}" in answer.content.decode()
    html = client.get(reverse("deployment_detail", args=[old.pk])).content.decode()
    assert 'id="deployment-log-pruned"' in html and "Pruned " in html
    html = client.get(reverse("deployment_detail", args=[fixed.pk])).content.decode()
    assert 'id="deployment-log-pruned"' not in html and 'id="operate-deployment-log"' in html


def test_deployments_follow_the_window_in_days(loop, settings) -> None:
    Environment.objects.update(detail_days=30, detail_cycles=0)
    old = deployment(loop[0], "failed", days_ago=40)
    recent = deployment(loop[0], "failed", days_ago=5)
    deployment(loop[3])  # current
    assert retention.prune().deployment_ids == [old.pk]
    recent.refresh_from_db()
    assert recent.detail_pruned_at is None
