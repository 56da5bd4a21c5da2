"""Retention: dropping the bulky text of old results, keeping everything the figures are made of.

A failing result's message, traceback and captured output (``message``, ``details``) are most of the
database's bytes, and nobody reads them once the failure is fixed and verified. After an environment's
retention window (``Environment.detail_days`` / ``detail_cycles``, defaults ``LOOPDASH_RETENTION_DAYS`` /
``LOOPDASH_RETENTION_CYCLES``) a run's results lose that text and the run its logs (the files and the copies
workers stored in the database) and suite output; each result keeps its outcome, duration, suspect flag,
signature and properties, the run its summary, and the signatures their counters, so trends, test
histories, signature pages and comparisons show the same figures as before.

Kept whatever their age: a session's latest run, and the runs a triaged signature points to (the first
and last runs of a signature that has an analysis, the runs of a fix's deployment and the run that
judged it), which are the evidence behind an analysis.

Deployments' logs follow the same window (``prunable_deployments``): an ended deployment outside it
loses its log file, its stored copy and its last lines, and keeps everything else (revision, commit,
status, exit code, times). Kept whatever their age: each environment's current deployment (its latest
succeeded one), a deployment that carried a fix, and the deployment of a run that keeps its detail.

Batched: one short transaction per ``BATCH`` results of a run (an id range), so memory stays flat and
no lock is held long; a run is marked pruned (``TestRun.detail_pruned_at``) after its last batch, and
an interrupted prune picks the run up again. Idempotent: pruned runs are skipped, and only results that
still have text are written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from ..models import (
    DEPLOY_FINAL_STATUSES,
    Analysis,
    Cycle,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    LoopSession,
    StoredLog,
    TestResult,
    TestRun,
    WorkStatus,
)
from .media import local_file

BATCH = 5_000


@dataclass(slots=True)
class PruneReport:
    """What a prune dropped (or, in a dry run, would drop)."""

    runs: int = 0
    results: int = 0
    text_bytes: int = 0
    log_bytes: int = 0  # runs' and deployments' logs
    run_ids: list[int] = field(default_factory=list)
    deployment_ids: list[int] = field(default_factory=list)

    def describe(self, *, dry_run: bool) -> str:
        deployments = f" and the logs of {len(self.deployment_ids)} deployment(s)" if self.deployment_ids else ""
        if not dry_run:
            return (
                f"dropped the detail of {self.runs} run(s){deployments}: the text of {self.results} result(s), "
                f"{self.log_bytes / 1_000_000:.1f} MB of logs"
            )
        mb = (self.text_bytes + self.log_bytes) / 1_000_000
        return (
            f"would drop the detail of {self.runs} run(s){deployments}: the text of {self.results} result(s), "
            f"about {mb:.1f} MB ({self.text_bytes / 1_000_000:.1f} MB of result text, "
            f"{self.log_bytes / 1_000_000:.1f} MB of logs)"
        )


def window(environment: Environment) -> tuple[int, int]:
    """The environment's (days, cycles) of full detail; 0 means no limit of that kind."""
    days = environment.detail_days if environment.detail_days is not None else settings.LOOPDASH_RETENTION_DAYS
    cycles = environment.detail_cycles if environment.detail_cycles is not None else settings.LOOPDASH_RETENTION_CYCLES
    return max(0, int(days)), max(0, int(cycles))


def protected_run_ids() -> set[int]:
    """Runs that keep their detail whatever their age: sessions' latest runs and triage's evidence."""
    analysed = FailureSignature.objects.filter(pk__in=Analysis.objects.values("signature_id")).values_list(
        "first_seen_run_id", "last_seen_run_id"
    )
    ids = {run_id for pair in analysed for run_id in pair if run_id}
    ids |= set(Fix.objects.exclude(verified_by=None).values_list("verified_by_id", flat=True))
    fixed_deployments = Fix.objects.exclude(deployment=None).values("deployment_id")
    ids |= set(TestRun.objects.filter(deployment_id__in=fixed_deployments).values_list("pk", flat=True))
    ids |= set(LoopSession.objects.exclude(latest_run=None).values_list("latest_run_id", flat=True))
    return ids


def _latest_cycle(session: str) -> Subquery:
    """The number of the newest cycle of the row's session (``session``: the path to its session id)."""
    return Subquery(Cycle.objects.filter(session_id=OuterRef(session)).order_by("-number").values("number")[:1])


def _outside_window(now: dt.datetime) -> Q:
    """Runs or deployments (``latest_cycle`` annotated) outside their environment's window.

    Outside means every limit that is set says so: finished more than ``days`` ago, and in a cycle not
    among its session's latest ``cycles`` (a row outside any cycle never is). An environment with
    neither limit keeps all.
    """
    outside = Q(pk__in=[])
    for environment in Environment.objects.only("id", "detail_days", "detail_cycles"):
        days, cycles = window(environment)
        if not days and not cycles:
            continue
        condition = Q(environment_id=environment.pk)
        if days:
            condition &= Q(finished_at__lt=now - dt.timedelta(days=days))
        if cycles:
            condition &= Q(cycle__isnull=False, cycle__number__lte=F("latest_cycle") - cycles)
        outside |= condition
    return outside


def prunable_runs(now: dt.datetime | None = None) -> QuerySet[TestRun]:
    """Ended, not yet pruned runs outside their environment's window and not protected, oldest first.

    A run is outside the window when every limit that is set says so: finished more than ``days`` ago,
    and not among its session's latest ``cycles`` cycles. An environment with neither limit keeps all.
    """
    return (
        TestRun.objects.annotate(latest_cycle=_latest_cycle("session_id"))
        .filter(
            _outside_window(now or timezone.now()),
            detail_pruned_at=None,
            summary_written=True,
            status__in=TestRun.FINAL_STATUSES,
        )
        .exclude(pk__in=protected_run_ids())
        .order_by("finished_at", "pk")
    )


def _with_text(run_id: int) -> QuerySet[TestResult]:
    return TestResult.objects.filter(run_id=run_id).exclude(message="", details="")


def _log_files(run: TestRun) -> list[Path]:
    """The run's log and its sibling result files, only inside MEDIA_ROOT (where workers write them)."""
    if not run.log_path:
        return []
    log = Path(run.log_path).resolve()
    media = Path(settings.MEDIA_ROOT).resolve()
    if not log.is_relative_to(media) or log.parent == media:
        return []
    return [path for path in log.parent.iterdir() if path.is_file()] if log.parent.is_dir() else []


def _stored_log_bytes(stored: QuerySet[StoredLog]) -> int:
    """The compressed bytes of stored logs (``StoredLog``): a run's and its shards', or a deployment's."""
    return int(stored.aggregate(n=Coalesce(Sum(Length("data")), 0))["n"])


def estimate(runs: QuerySet[TestRun]) -> PruneReport:
    """What pruning ``runs`` would drop: results with text, their text's size (characters), logs' sizes."""
    report = PruneReport()
    for run in runs.only("id", "log_path").iterator(chunk_size=500):
        figures = _with_text(run.pk).aggregate(
            results=Count("id"), chars=Coalesce(Sum(Length("message") + Length("details")), 0)
        )
        report.runs += 1
        report.run_ids.append(run.pk)
        report.results += figures["results"]
        report.text_bytes += figures["chars"]
        report.log_bytes += sum(path.stat().st_size for path in _log_files(run)) + _stored_log_bytes(
            StoredLog.objects.filter(run_id=run.pk)
        )
    return report


def prune_run(run: TestRun, *, batch: int = BATCH) -> tuple[int, int]:
    """Drop one run's result text (batch by batch, each its own transaction) and its logs; mark it pruned.

    Its logs: the files on this machine, and the copies its workers stored in the database (``StoredLog``).

    Returns (results written, log bytes deleted).
    """
    written, cursor = 0, 0
    while True:
        with transaction.atomic():
            bound = (
                TestResult.objects.filter(run_id=run.pk, pk__gt=cursor)
                .order_by("pk")
                .values_list("pk", flat=True)[batch - 1 : batch]
            )
            upper = next(iter(bound), None)
            window_qs = _with_text(run.pk).filter(pk__gt=cursor)
            if upper is not None:
                window_qs = window_qs.filter(pk__lte=upper)
            written += window_qs.update(message="", details="")
        if upper is None:
            break
        cursor = upper
    freed = 0
    for path in _log_files(run):
        freed += path.stat().st_size
        path.unlink(missing_ok=True)
    freed += _stored_log_bytes(StoredLog.objects.filter(run_id=run.pk))
    StoredLog.objects.filter(run_id=run.pk).delete()  # the copies in the database: the run's and its shards'
    TestRun.objects.filter(pk=run.pk).update(detail_pruned_at=timezone.now(), log_tail="", suite_output="")
    return written, freed


def prune(*, dry_run: bool = False, now: dt.datetime | None = None, batch: int = BATCH) -> PruneReport:
    """Prune every run and deployment outside its window (``dry_run``: only say what would go)."""
    runs = prunable_runs(now)
    deployments = list(prunable_deployments(now).only("id", "log_path"))
    if dry_run:
        report = estimate(runs)
        for deployment in deployments:
            report.deployment_ids.append(deployment.pk)
            report.log_bytes += sum(path.stat().st_size for path in _deployment_files(deployment))
            report.log_bytes += _stored_log_bytes(StoredLog.objects.filter(deployment_id=deployment.pk))
        return report
    report = PruneReport()
    for run in list(runs.only("id", "log_path")):
        written, freed = prune_run(run, batch=batch)
        report.runs += 1
        report.run_ids.append(run.pk)
        report.results += written
        report.log_bytes += freed
    for deployment in deployments:
        report.deployment_ids.append(deployment.pk)
        report.log_bytes += prune_deployment(deployment)
    return report


# -- deployments' logs ---------------------------------------------------------------------------------------


def protected_deployment_ids() -> set[int]:
    """Deployments that keep their log whatever its age: the environments' current ones and the evidence."""
    ids = set(Fix.objects.exclude(deployment=None).values_list("deployment_id", flat=True))
    ids |= set(
        TestRun.objects.filter(pk__in=protected_run_ids())
        .exclude(deployment=None)
        .values_list("deployment_id", flat=True)
    )
    current = (
        Deployment.objects.filter(environment_id=OuterRef("pk"), status=WorkStatus.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    ids |= {
        pk for pk in Environment.objects.annotate(current=Subquery(current)).values_list("current", flat=True) if pk
    }
    return ids


def prunable_deployments(now: dt.datetime | None = None) -> QuerySet[Deployment]:
    """Ended deployments with a log left, outside their environment's window and not protected.

    The window as for runs: every limit that is set must say so (finished more than ``days`` ago; its
    cycle not among its session's latest ``cycles``). A deployment outside any cycle is judged by the
    days alone, and kept when only cycles are limited.
    """
    return (
        Deployment.objects.annotate(latest_cycle=_latest_cycle("cycle__session_id"))
        .filter(_outside_window(now or timezone.now()), detail_pruned_at=None, status__in=DEPLOY_FINAL_STATUSES)
        .exclude(pk__in=protected_deployment_ids())
        .order_by("finished_at", "pk")
    )


def _deployment_files(deployment: Deployment) -> list[Path]:
    """The deployment's log file, only when it lies inside MEDIA_ROOT (where workers write logs)."""
    log = local_file(deployment.log_path)
    return [log] if log is not None else []


def prune_deployment(deployment: Deployment) -> int:
    """Drop one deployment's log: the file, the stored copy and the last lines; mark it. Returns bytes freed."""
    freed = 0
    for path in _deployment_files(deployment):
        freed += path.stat().st_size
        path.unlink(missing_ok=True)
    freed += _stored_log_bytes(StoredLog.objects.filter(deployment_id=deployment.pk))
    StoredLog.objects.filter(deployment_id=deployment.pk).delete()
    Deployment.objects.filter(pk=deployment.pk).update(detail_pruned_at=timezone.now(), log_tail="")
    return freed
