"""The worker side of a test run: claim it, run the test command, stream its results, always end it.

``execute_run`` claims the row with a compare-and-set from ``queued`` to ``running`` (a task
delivered twice does nothing the second time); ``RunExecution`` builds the command, starts it under
the process guard in its own process group (``runners``), stores the report-log's results once a
second while it runs (the same write is the heartbeat and the live counts), and finally hands the
run to ``run_completion.complete_run``, whatever happened.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from pathlib import Path

from django.db import IntegrityError
from django.db.models import Q, Sum
from django.utils import timezone

from ..ingest import parse
from ..ingest.live import FileTail, LiveReportLog
from ..ingest.records import IngestError, ParsedResult, RunInfo
from ..models import (
    DEPLOY_FINAL_STATUSES,
    Deployment,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
)
from ..services import counting
from ..services.ingestion.writer import ResultWriter
from ..services.live_figures import LiveFigures
from ..services.run_completion import complete_run
from ..services.summary import COUNT_FIELD, pass_rate
from . import checkout, locks, runners, stored_logs
from .cancel import cancel_run, cancel_waiting_runs

log = logging.getLogger(__name__)


def claim_run(pk: int) -> bool:
    now = timezone.now()
    return bool(
        TestRun.objects.filter(pk=pk, status=WorkStatus.QUEUED).update(
            status=WorkStatus.RUNNING, started_at=now, heartbeat_at=now
        )
    )


def _deployment_ready(run: TestRun) -> bool:
    """A cycle's run starts only after its deployment succeeded; wait (bounded) while it is still live."""
    if run.deployment_id is None:
        return True
    env = run.environment
    deadline = time.monotonic() + env.deploy_timeout_s + locks.lost_after_s() + 60
    while True:
        deployment = Deployment.objects.filter(pk=run.deployment_id).first()
        if deployment is None or deployment.status == WorkStatus.SUCCEEDED:
            return True
        if deployment.status in DEPLOY_FINAL_STATUSES:
            cancel_waiting_runs(deployment)
            return False
        if time.monotonic() > deadline:
            cancel_run(run, reason=f"deployment {deployment.pk} did not finish in time")
            return False
        if not TestRun.objects.filter(pk=run.pk, status=WorkStatus.QUEUED).exists():
            return False
        time.sleep(1.0)


def execute_run(pk: int) -> None:
    """Run the environment's test command for a queued run; always end in a final status."""
    run = TestRun.objects.select_related("environment", "deployment", "rerun_of").filter(pk=pk).first()
    if run is None or run.status != WorkStatus.QUEUED:
        return
    if not _deployment_ready(run) or not claim_run(pk):
        return
    run.refresh_from_db()
    RunExecution(run).execute()


class RunExecution:
    """One claimed run, from its command line to its summary."""

    def __init__(self, run: TestRun) -> None:
        self.run = run
        self.env = run.environment
        self.folder = runners.fresh_dir("runs", run.pk)
        self.log_path = self.folder / "output.log"
        self.reportlog_path = self.folder / "report-log.jsonl"
        self.junit_path = self.folder / "junit.xml"
        self.writer = ResultWriter(run)
        self.live = LiveReportLog(str(self.reportlog_path))
        self.tail = FileTail(self.reportlog_path)
        self.counts: Counter[str] = Counter()
        self.tests_duration = 0.0
        self.figures = LiveFigures(run.pk)  # the run page's live figures, read by its one poll
        self.info: RunInfo | None = None
        self.used_junit = False
        self.problem = ""
        self.proc: runners.GroupProcess | None = None

    # -- the command ---------------------------------------------------------------------------------------

    def revision(self) -> str:
        if self.run.revision:
            return self.run.revision
        if self.run.deployment_id and self.run.deployment:
            return self.run.deployment.revision
        return self.env.default_revision

    def selection(self) -> list[str]:
        """Node ids of the chosen tests, from TestCase rows (never from text a user typed)."""
        ids = list(self.run.selection or [])
        nodeids = dict(TestCase.objects.filter(pk__in=ids, environment=self.env).values_list("pk", "nodeid"))
        return [nodeids[pk] for pk in ids if pk in nodeids]

    def command(self, child_env: dict[str, str]) -> list[str]:
        """The environment's command, then the subset or the selection, then where results go.

        A marker or keyword goes in through the environment's template, inside one argument
        (``runners.subset_arguments``); chosen tests go through a file (``selection_arguments``).
        """
        args = self.expand(self.env.test_command)
        if self.run.scope == TestRun.Scope.SUBSET:
            if not (self.run.marker or self.run.keyword):
                raise runners.CommandError("a subset run without a marker or keyword expression")
            if self.run.marker:
                args += runners.subset_arguments(self.env.marker_args, "marker", self.run.marker)
            if self.run.keyword:
                args += runners.subset_arguments(self.env.keyword_args, "keyword", self.run.keyword)
        elif self.run.scope != TestRun.Scope.ALL:
            nodeids = self.selection()
            if not nodeids:
                raise runners.CommandError("none of the selected tests exists any more")
            args += runners.selection_arguments(nodeids, self.folder, child_env)
        if self.env.writes_report_log:
            args += ["--report-log", str(self.reportlog_path)]
        if self.env.writes_junit:
            args += ["--junitxml", str(self.junit_path)]
        return args

    def expectation(self) -> dict[str, float]:
        """What this run should take, from the last durations of the same tests (for the ETA)."""
        if self.run.scope == TestRun.Scope.ALL:
            previous = (
                TestRun.objects.filter(
                    environment=self.env, status=WorkStatus.FINISHED, scope=TestRun.Scope.ALL, summary_written=True
                )
                .exclude(pk=self.run.pk)
                .filter(Q(incomplete=False))
                .order_by("-finished_at")
                .values("total", "tests_duration_s", "duration_s")
                .first()
            )
            if not previous or not previous["total"]:
                return {}
            return {
                "expected_tests": previous["total"],
                "expected_s": previous["tests_duration_s"] or 0.0,
                "expected_wall_s": previous["duration_s"] or 0.0,
            }
        if self.run.scope == TestRun.Scope.SUBSET:
            return {}  # how many tests an expression selects is known only once pytest collected them
        ids = list(self.run.selection or [])
        source = self.run.rerun_of_id  # a subset by stored ids (P1, a signature's tests): the last full run
        if source is None:
            source = (
                TestRun.objects.filter(environment=self.env, counted=True, scope=TestRun.Scope.ALL)
                .order_by("-finished_at")
                .values_list("pk", flat=True)
                .first()
            )
        spent = TestResult.objects.filter(run_id=source, case_id__in=ids).aggregate(s=Sum("duration"))
        return {"expected_tests": len(ids), "expected_s": spent["s"] or 0.0}

    # -- running -------------------------------------------------------------------------------------------

    def execute(self) -> None:
        status = WorkStatus.ERROR
        code: int | None = None
        try:
            child_env = runners.child_environment(self.env.env_vars)
            TestRun.objects.filter(pk=self.run.pk).update(log_path=str(self.log_path))
            ending = self.prepare_suite(child_env) or self.check_health(child_env)
            if ending is not None:
                status = self.decide(ending, None) if ending != runners.EXITED else WorkStatus.FINISHED
                return  # the target is unreachable (excluded) or the run was cancelled meanwhile
            args = self.command(child_env)
            properties = {**(self.run.properties or {}), "eta": self.expectation()}
            TestRun.objects.filter(pk=self.run.pk).update(
                command=args, log_path=str(self.log_path), properties=properties
            )
            self.proc = runners.GroupProcess(
                args,
                cwd=self.suite_dir(),
                env=child_env,
                log_path=self.log_path,
                record_path=self.folder / runners.PROCESS_RECORD,
            )
            self.proc.start()
            ending = runners.supervise(self.proc, timeout_s=self.env.timeout_s, tick=self.tick)
            code = self.proc.returncode
            if ending == runners.TIMED_OUT:
                runners.append_log(self.log_path, f"timed out after {self.env.timeout_s} s: process group killed")
            self.collect_rest()
            self.figures.observe(sum(self.counts.values()))  # the last lines too: the figures end complete
            TestRun.objects.filter(pk=self.run.pk).update(live_figures=self.figures.as_json())
            status = self.decide(ending, code)
        except runners.CommandError as exc:
            self.problem = str(exc)
            runners.append_log(self.log_path, f"cannot run the test command: {exc}")
        except Exception:
            runners.append_log(self.log_path, "loopdash failed while running the tests:\n" + traceback.format_exc())
            raise
        finally:
            if self.proc is not None and self.proc.popen is not None:
                self.proc.finish()
            self.live.finish()  # never leave the reader's thread waiting
            self.release_suite()
            self.finalize(status, code)

    # -- the suite from a repository (work/checkout.py) -------------------------------------------------------

    def prepare_suite(self, child_env: dict[str, str]) -> str | None:
        """With a repository: the run's commit checked out in a fresh folder, its setup done or reused.

        None when the suite is ready (or there is no repository); ``runners.STOPPED`` when the run was
        cancelled during the setup. A repository that cannot be fetched, an unknown ref or a failing
        setup excludes the run with that one-line reason and raises ``CheckoutError``: no test ran.
        """
        if not self.env.repository:
            return None
        shard = getattr(self, "shard", None)
        try:
            self.checkout = checkout.prepare(
                repository=self.env.repository,
                ref=self.revision(),
                commit=self.wanted_commit(),
                kind="shard" if shard is not None else "run",
                pk=shard.pk if shard is not None else self.run.pk,
                working_dir=self.env.working_dir,
                log_path=self.log_path,
            )
            if self.run.commit != self.checkout.commit:
                self.run.commit = self.checkout.commit
                TestRun.objects.filter(pk=self.run.pk).update(commit=self.checkout.commit)
            if self.env.setup_command:
                checkout.run_setup(
                    self.checkout,
                    env_id=self.env.pk,
                    command=self.env.setup_command,
                    cache_files=self.env.setup_cache_files,
                    expand=lambda template, setup_dir: self.expand(template, setup_dir=setup_dir),
                    child_env=child_env,
                    log_path=self.log_path,
                    record_path=self.folder / runners.PROCESS_RECORD,
                    timeout_s=self.env.timeout_s,
                    tick=self.tick,
                )
        except checkout.SetupStopped:
            return runners.STOPPED
        except checkout.CheckoutError as exc:
            reason = checkout.one_line(str(exc))
            runners.append_log(self.log_path, f"{reason}; no test was run")
            counting.exclude_automatically(self.run, f"suite not ready: {reason}")
            raise checkout.CheckoutError(reason) from None
        return None

    def wanted_commit(self) -> str:
        """The commit resolved when the run was asked for, else its deployment's (a cycle's run)."""
        if self.run.commit:
            return self.run.commit
        deployment = self.run.deployment if self.run.deployment_id else None
        if deployment is not None and deployment.commit_sha and deployment.revision == self.revision():
            return deployment.commit_sha
        return ""

    def suite_dir(self) -> Path:
        """Where the commands run: working_dir inside the checkout, else working_dir on the worker's disk."""
        found = getattr(self, "checkout", None)
        return found.cwd if found is not None else runners.resolve_working_dir(self.env.working_dir)

    def expand(self, template: list, *, setup_dir: str | None = None) -> list[str]:
        """A command of the environment with ``{revision}``, ``{commit}`` and ``{setup_dir}`` filled in."""
        found = getattr(self, "checkout", None)
        if setup_dir is None:
            setup_dir = str(found.setup_dir) if found is not None and found.setup_dir else ""
        commit = found.commit if found is not None else self.run.commit
        return runners.expand_command(template, revision=self.revision(), commit=commit, setup_dir=setup_dir)

    def release_suite(self) -> None:
        checkout.release(getattr(self, "checkout", None))
        self.checkout = None

    def check_health(self, child_env: dict[str, str]) -> str | None:
        """Run the environment's health check; None when it passed (or there is none).

        A check that fails or times out excludes the run at once, "target unreachable", before a
        single test runs against nothing (``runners.EXITED`` is returned); a cancel meanwhile returns
        ``runners.STOPPED``. Its output goes to the run's log.
        """
        if not self.env.health_check:
            return None
        args = self.expand(self.env.health_check)
        runners.append_log(self.log_path, f"health check: {' '.join(args)}")
        check = runners.GroupProcess(
            args,
            cwd=self.suite_dir(),
            env=child_env,
            log_path=self.log_path,
            record_path=self.folder / runners.PROCESS_RECORD,
        )
        check.start()
        try:
            ending = runners.supervise(check, timeout_s=self.env.health_check_timeout_s, tick=self.tick)
        finally:
            check.finish()
        if ending == runners.STOPPED:
            return ending
        if ending == runners.EXITED and check.returncode == 0:
            runners.append_log(self.log_path, "health check passed")
            return None
        how = (
            f"timed out after {self.env.health_check_timeout_s} s"
            if ending == runners.TIMED_OUT
            else f"exited {check.returncode}"
        )
        last = (runners.read_tail(self.log_path, max_lines=3).splitlines() or [""])[-1].strip()
        reason = f"target unreachable: the health check {how}" + (f" ({last[:200]})" if last else "")
        runners.append_log(self.log_path, f"{reason}; no test was run")
        counting.exclude_automatically(self.run, reason)
        return runners.EXITED

    def store(self, results: list[ParsedResult]) -> None:
        if not results:
            return
        try:
            self.writer.add(results)
        except IntegrityError:
            # Another run of the environment created one of these new test cases at the same moment;
            # the batch was rolled back whole, and a second try finds the case.
            self.writer.add(results)
        for result in results:
            self.counts[COUNT_FIELD.get(result.outcome, "passed")] += 1
            if result.duration is not None:
                self.tests_duration += result.duration

    def read_reportlog(self) -> None:
        lines = self.tail.read_lines()
        if lines:
            self.store(self.live.feed(lines))

    def tick(self) -> bool:
        """Once a second: store new results, then heartbeat; False when the run was cancelled or declared lost."""
        self.read_reportlog()
        counts = self.counts
        self.figures.observe(sum(counts.values()))
        return bool(
            TestRun.objects.filter(pk=self.run.pk, status=WorkStatus.RUNNING).update(
                heartbeat_at=timezone.now(),
                log_tail=runners.read_tail(self.log_path),
                current_test=self.live.last_nodeid[:1000],
                total=sum(counts.values()),
                passed=counts["passed"],
                failed=counts["failed"],
                errors=counts["errors"],
                skipped=counts["skipped"],
                xfailed=counts["xfailed"],
                xpassed=counts["xpassed"],
                pass_rate=pass_rate(counts["passed"], counts["failed"], counts["errors"]),
                tests_duration_s=self.tests_duration,
                live_figures=self.figures.as_json(),
            )
        )

    def collect_rest(self) -> None:
        """After the process ended: the report-log's last lines, else (no report-log at all) the JUnit file."""
        while True:
            before = self.tail.offset
            self.read_reportlog()
            if self.tail.offset == before:
                break
        if self.tail.leftover:
            runners.append_log(self.log_path, "the report-log's last line was cut off (process killed); ignored")
        self.store(self.live.finish())
        if self.live.error is not None:
            self.problem = str(self.live.error)
            runners.append_log(self.log_path, f"report-log refused: {self.live.error}")
        if self.live.lines:
            self.info = self.live.info
            return
        if self.junit_path.exists() and self.junit_path.stat().st_size:
            self.ingest_junit()

    def ingest_junit(self) -> None:
        """The fallback when no report-log exists: the JUnit file, read once at the end."""
        try:
            with open(self.junit_path, "rb") as handle:
                parsed = parse(handle, str(self.junit_path))
                self.store(list(parsed.results))
            self.info = parsed.info
            self.used_junit = True
        except IngestError as exc:
            self.problem = str(exc)
            runners.append_log(self.log_path, f"JUnit file refused: {exc}")

    def decide(self, ending: str, code: int | None) -> str:
        """The final status from how the process ended and what it left behind.

        Exit status 1 means tests failed: the run *finished*. A crash (2-4, a signal, no or an
        unfinished report-log) is an *error*; its log says why.
        """
        if ending == runners.TIMED_OUT:
            return WorkStatus.TIMED_OUT
        if ending == runners.STOPPED:
            return WorkStatus.CANCELLED  # unless the row says lost: finalize reads the row
        if self.problem:
            return WorkStatus.ERROR
        if self.live.lines:
            exitstatus = self.live.info.exitstatus
            if exitstatus is None or exitstatus in (2, 3, 4):
                return WorkStatus.ERROR
            return WorkStatus.FINISHED
        if self.used_junit:
            return WorkStatus.FINISHED if code in (0, 1) else WorkStatus.ERROR
        return WorkStatus.FINISHED if code == 0 else WorkStatus.ERROR

    def finalize(self, status: str, code: int | None) -> None:
        """Put the run in its final status, then write its summary.

        The status is taken first, with a compare-and-set from ``running`` (the row's own status wins
        when a cancel or the reaper got there first), and the summary is written in a transaction of
        its own afterwards: a failure in what follows the summary (the lifecycle hooks) must not roll
        the run back to ``running``. Should the summary itself fail, the reaper writes it later (a
        final status without a summary, silent past the bound).
        """
        run = self.run
        finished_at = timezone.now()
        if not TestRun.objects.filter(pk=run.pk, status=WorkStatus.RUNNING).update(
            status=status, finished_at=finished_at
        ):
            status = TestRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
            if status == WorkStatus.CANCELLED:
                runners.append_log(self.log_path, "cancelled: process group killed")
        stored_logs.store_log(self.log_path, run_id=run.pk)  # before the summary: an ended run has its log
        run.refresh_from_db()
        run.finished_at = run.finished_at or finished_at
        run.log_tail = runners.read_tail(self.log_path) or run.log_tail
        info = self.info
        if info is not None:
            info.duration = None  # the run's duration is its wall time, not the tests' span
        elif code is not None and code >= 0:
            run.exitstatus = code
        complete_run(run, writer=self.writer, info=info, status=status)
