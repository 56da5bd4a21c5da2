"""Deploys and test runs on the workers: queue a row, claim it, run the command, stream results, always end.

The request side (views, API, CLI) only writes rows: ``request_deploy``, ``request_tests`` and
``request_cycle`` create queued rows and enqueue the task on commit. The worker side
(``execute_deployment``, ``execute_run``) claims a row with a compare-and-set from ``queued`` to
``running``, so a task delivered twice does nothing the second time, runs the command through
``sessions.runners``, and leaves the row in a final status whatever happens (``finally``).

State lives in the rows, never in a Celery result:

- Cancel is a compare-and-set of the status to ``cancelled``. The worker's once-a-second heartbeat
  is itself a compare-and-set (``status=running``); when it updates no row, the run was cancelled
  (or declared lost), and the worker kills the process group and writes the summary.
- A worker that dies stops beating. ``reap_lost`` (celery beat, every 15 s) declares ``lost`` what
  has been silent longer than ``locks.lost_after_s()`` (60 s), writes the summary of what was
  stored, and kills the orphaned process group when it runs on the reaper's host.
- One deploy at a time per environment: see ``locks``.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from .. import runners
from ..ingest.live import FileTail, LiveReportLog
from ..ingest.records import IngestError, Outcome, ParsedResult, RunInfo
from ..models import Deployment, LoopSession, TestCase, TestResult, TestRun, WorkStatus
from . import locks
from .ingestion import ResultWriter, resolve_cycle
from .lifecycle import on_deployment_succeeded
from .summary import finish_run, pass_rate

log = logging.getLogger(__name__)

TICK_S = 1.0  # heartbeat, log tail, live results and counts: once a second
POLL_S = 0.1  # how often the process is checked for its exit between ticks
SELECTION_MAX = 50_000
PROCESS_RECORD = "process.json"
LIVE = (WorkStatus.QUEUED, WorkStatus.RUNNING)
DEPLOY_FINAL = (
    WorkStatus.SUCCEEDED,
    WorkStatus.FAILED,
    WorkStatus.TIMED_OUT,
    WorkStatus.CANCELLED,
    WorkStatus.LOST,
)
# A revision goes into an argument list: no leading dash (it would read as an option), no spaces.
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+@-]{0,99}$")
_COUNT_FIELD = {
    Outcome.PASSED: "passed",
    Outcome.FAILED: "failed",
    Outcome.ERROR: "errors",
    Outcome.SKIPPED: "skipped",
    Outcome.XFAILED: "xfailed",
    Outcome.XPASSED: "xpassed",
}


class Refused(Exception):
    """A request that cannot be queued; ``status`` is the HTTP code that says why (400, 404, 409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- requests -------------------------------------------------------------------------------------------------


def _user_or_none(user: object) -> object | None:
    return user if getattr(user, "is_authenticated", False) else None


def check_revision(session: LoopSession, revision: str | None) -> tuple[str, str]:
    """(revision, commit) for a deploy: a known revision of the environment, or its default."""
    env = session.environment
    revision = (revision or env.default_revision or "").strip()
    if not revision:
        raise Refused(f"no revision given and environment {env.name} has no default revision", 400)
    known = [r for r in env.revisions or [] if isinstance(r, dict) and r.get("revision")]
    if known:
        entry = next((r for r in known if str(r["revision"]) == revision), None)
        if entry is None:
            names = ", ".join(str(r["revision"]) for r in known[:30])
            raise Refused(f"unknown revision {revision!r} for environment {env.name} (known: {names})", 400)
        return revision, str(entry.get("commit") or "")[:64]
    if not REVISION_RE.match(revision):
        raise Refused(f"revision {revision!r} is not a plain name (letters, digits, . _ / + @ -)", 400)
    return revision, ""


def next_cycle(session: LoopSession):  # noqa: ANN201 - a Cycle
    """A new cycle after the session's latest: a deployment opens one."""
    latest = session.cycles.aggregate(n=Max("number"))["n"] or 0
    return resolve_cycle(session, latest + 1)


def _create_deployment(session: LoopSession, revision: str | None, user: object) -> Deployment:
    """The queued deployment, in a new cycle; refused (409) while another one is queued or running."""
    env = session.environment
    if not env.deploy_command:
        raise Refused(f"environment {env.name} has no deploy command (set it in the admin)", 400)
    revision, commit = check_revision(session, revision)
    with locks.environment_locked(env.pk):
        reap_deployments(Deployment.objects.filter(environment=env))  # a dead worker's deploy must not block
        busy = locks.holder(env.pk, include_queued=True)
        if busy is not None:
            raise Refused(
                f"deployment {busy.pk} of {busy.revision} is already {busy.status} on {env.name}: "
                "one deploy at a time per environment; wait for it or cancel it",
                409,
            )
        return Deployment.objects.create(
            environment=env,
            cycle=next_cycle(session),
            revision=revision,
            commit_sha=commit,
            triggered_by=_user_or_none(user),
        )


def request_deploy(session: LoopSession, *, revision: str | None = None, user: object = None) -> Deployment:
    """Queue a deploy of ``revision`` (default: the environment's default revision)."""
    from .. import tasks

    with transaction.atomic():
        deployment = _create_deployment(session, revision, user)
        tasks.deploy.delay_on_commit(deployment.pk)
    return deployment


def safe_nodeid(nodeid: str) -> bool:
    """Can this node id go on a pytest command line as a test and nothing else?

    Node ids come from stored TestCase rows, but those rows come from uploaded files: an id that
    starts with ``-`` or ``@`` would be read as an option or an argument file, an absolute path or
    ``..`` would collect code outside the working directory, and a newline would split a line of
    the selection file in two.
    """
    if not nodeid or nodeid[0] in "-@" or any(c in nodeid for c in "\n\r\x00"):
        return False
    path = nodeid.partition("::")[0]
    return not path.startswith(("/", "\\", "~")) and ".." not in re.split(r"[/\\]", path)


def failed_case_ids(run: TestRun) -> list[int]:
    """The failed and errored tests of a run, in the order the run reported them."""
    ids = TestResult.objects.filter(run=run, outcome__in=(Outcome.FAILED, Outcome.ERROR)).order_by("id")
    return list(dict.fromkeys(ids.values_list("case_id", flat=True)))


def _selection(rerun_of: TestRun | None, scope: str, case_ids: Iterable[object] | None) -> list[int]:
    if scope == TestRun.Scope.ALL:
        return []
    if rerun_of is None:
        raise Refused(f"scope {scope!r} needs the run to rerun (rerun)", 400)
    if scope == TestRun.Scope.FAILED:
        chosen = failed_case_ids(rerun_of)
        if not chosen:
            raise Refused(f"run {rerun_of.pk} has no failed or errored test to rerun", 400)
    else:
        chosen = []
        for value in case_ids or []:
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
                raise Refused(f"test ids must be whole numbers (TestCase ids), got {value!r}", 400)
            chosen.append(int(value))
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise Refused("scope 'selected' needs at least one test id (tests)", 400)
        if len(chosen) > SELECTION_MAX:
            raise Refused(f"at most {SELECTION_MAX} tests can be selected", 400)
        known = set(TestResult.objects.filter(run=rerun_of, case_id__in=chosen).values_list("case_id", flat=True))
        missing = [pk for pk in chosen if pk not in known]
        if missing:
            shown = ", ".join(map(str, missing[:10]))
            raise Refused(f"test ids not in run {rerun_of.pk}: {shown}", 400)
    unsafe = [n for n in TestCase.objects.filter(pk__in=chosen).values_list("nodeid", flat=True) if not safe_nodeid(n)]
    if unsafe:
        raise Refused(f"refusing to pass these node ids to pytest: {unsafe[:3]!r}", 400)
    return chosen


def _label(scope: str, rerun_of: TestRun | None, count: int, default: str) -> str:
    if rerun_of is None:
        return default
    if scope == TestRun.Scope.FAILED:
        return f"rerun failed of run {rerun_of.pk} ({count} tests)"
    if scope == TestRun.Scope.SELECTED:
        return f"rerun {count} selected of run {rerun_of.pk}"
    return f"rerun of run {rerun_of.pk}"


def _create_run(
    session: LoopSession,
    *,
    user: object,
    source: str,
    rerun_of: TestRun | None = None,
    scope: str = TestRun.Scope.ALL,
    case_ids: Iterable[object] | None = None,
    deployment: Deployment | None = None,
    cycle=None,  # noqa: ANN001
    label: str = "tests",
) -> TestRun:
    env = session.environment
    if not env.test_command:
        raise Refused(f"environment {env.name} has no test command (set it in the admin)", 400)
    if scope not in TestRun.Scope.values:
        raise Refused(f"scope must be one of {', '.join(TestRun.Scope.values)}, got {scope!r}", 400)
    if rerun_of is not None and rerun_of.session_id != session.pk:
        raise Refused(f"no run {rerun_of.pk} in session {session.slug}", 404)
    selection = _selection(rerun_of, scope, case_ids)
    if deployment is None:
        deployment = (
            Deployment.objects.filter(environment=env, status=WorkStatus.SUCCEEDED).order_by("-finished_at").first()
        )
    return TestRun.objects.create(
        session=session,
        cycle=cycle or resolve_cycle(session, None),
        environment=env,
        deployment=deployment,
        label=_label(scope, rerun_of, len(selection), label),
        status=WorkStatus.QUEUED,
        source=source,
        format="reportlog" if env.writes_report_log else "junit",
        rerun_of=rerun_of,
        scope=scope,
        selection=selection,
        triggered_by=_user_or_none(user),
    )


def request_tests(
    session: LoopSession,
    *,
    user: object = None,
    source: str = TestRun.Source.UI,
    rerun_of: TestRun | None = None,
    scope: str = TestRun.Scope.ALL,
    case_ids: Iterable[object] | None = None,
) -> TestRun:
    """Queue a test run: the whole suite, or the failed / chosen tests of ``rerun_of``."""
    from .. import tasks

    with transaction.atomic():
        run = _create_run(session, user=user, source=source, rerun_of=rerun_of, scope=scope, case_ids=case_ids)
        tasks.run_tests.delay_on_commit(run.pk)
    return run


def request_cycle(
    session: LoopSession, *, revision: str | None = None, user: object = None, source: str = TestRun.Source.UI
) -> tuple[Deployment, TestRun]:
    """A new cycle: deploy, then run the suite, as one Celery chain.

    The run waits as ``queued`` behind its deployment; when the deploy does not succeed the run is
    cancelled with a message naming the deployment (it never runs against a half-deployed target).
    """
    from celery import chain

    from .. import tasks

    with transaction.atomic():
        deployment = _create_deployment(session, revision, user)
        run = _create_run(
            session,
            user=user,
            source=source,
            deployment=deployment,
            cycle=deployment.cycle,
            label=f"cycle {deployment.cycle.number}",
        )
        work = chain(tasks.deploy.si(deployment.pk), tasks.run_tests.si(run.pk))
        transaction.on_commit(work.apply_async)
    return deployment, run


# -- cancel ---------------------------------------------------------------------------------------------------


def cancel_run(run: TestRun, *, reason: str = "cancelled by a user") -> None:
    """Cancel a queued run at once; ask a running one to stop (its worker kills it within a second)."""
    now = timezone.now()
    if TestRun.objects.filter(pk=run.pk, status=WorkStatus.QUEUED).update(
        status=WorkStatus.CANCELLED, finished_at=now, log_tail=f"Not run: {reason}."
    ):
        run.refresh_from_db()
        finish_run(run, None, None, status=WorkStatus.CANCELLED)
        return
    if TestRun.objects.filter(pk=run.pk, status=WorkStatus.RUNNING).update(status=WorkStatus.CANCELLED):
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
            finish_run(run, None, None, status=WorkStatus.CANCELLED)
            cancelled += 1
    return cancelled


# -- the worker: shared pieces ---------------------------------------------------------------------------------


def work_dir(kind: str, pk: int) -> Path:
    return Path(settings.MEDIA_ROOT) / kind / str(pk)


def _fresh_dir(kind: str, pk: int) -> Path:
    """An empty folder for this row's files: a leftover report-log of a reused id must never be ingested."""
    path = work_dir(kind, pk)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


TIMED_OUT, STOPPED, EXITED = "timed_out", "stopped", "exited"


def supervise(proc: runners.GroupProcess, *, timeout_s: float, tick: Callable[[], bool]) -> str:
    """Watch the process until it exits, its time is up, or ``tick`` says its row stopped being ``running``.

    ``tick`` runs about once a second; on a timeout or a stop the whole process group is killed.
    """
    deadline = time.monotonic() + max(1.0, float(timeout_s))
    next_tick = time.monotonic() + TICK_S
    while True:
        if proc.poll() is not None:
            return EXITED
        now = time.monotonic()
        if now >= deadline:
            proc.kill()
            return TIMED_OUT
        if now >= next_tick:
            if not tick():
                proc.kill()
                return STOPPED
            next_tick = time.monotonic() + TICK_S
        time.sleep(POLL_S)


# -- the worker: deployments -----------------------------------------------------------------------------------


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


def _beat_deployment(pk: int, log_path: Path) -> bool:
    """Heartbeat and log tail; False when the row is no longer ``running`` (cancelled, or declared lost)."""
    return bool(
        Deployment.objects.filter(pk=pk, status=WorkStatus.RUNNING).update(
            heartbeat_at=timezone.now(), log_tail=runners.read_tail(log_path)
        )
    )


_COMMIT_RE = re.compile(r"\bcommit[=: ]+([0-9a-f]{7,64})\b")


def execute_deployment(pk: int) -> None:
    """Run the environment's deploy command for a queued deployment; always end in a final status."""
    deployment = claim_deployment(pk)
    if deployment is None:
        return
    env = deployment.environment
    folder = _fresh_dir("deployments", pk)
    log_path = folder / "output.log"
    status, code, proc = WorkStatus.FAILED, None, None
    try:
        args = runners.expand_command(env.deploy_command, revision=deployment.revision)
        Deployment.objects.filter(pk=pk).update(command=args, log_path=str(log_path))
        proc = runners.GroupProcess(
            args,
            cwd=runners.resolve_working_dir(env.working_dir),
            env=runners.child_environment(env.env_vars),
            log_path=log_path,
            record_path=folder / PROCESS_RECORD,
        )
        proc.start()
        ending = supervise(proc, timeout_s=env.deploy_timeout_s, tick=lambda: _beat_deployment(pk, log_path))
        code = proc.returncode
        if ending == TIMED_OUT:
            status = WorkStatus.TIMED_OUT
            runners.append_log(log_path, f"timed out after {env.deploy_timeout_s} s: process group killed")
        elif ending == STOPPED:
            status = WorkStatus.CANCELLED
        else:
            status = WorkStatus.SUCCEEDED if code == 0 else WorkStatus.FAILED
    except runners.CommandError as exc:
        runners.append_log(log_path, f"cannot run the deploy command: {exc}")
    except Exception:
        runners.append_log(log_path, "loopdash failed while deploying:\n" + traceback.format_exc())
        raise
    finally:
        if proc is not None and proc.popen is not None:
            proc.finish()
        _finish_deployment(pk, status, code, log_path)


def _finish_deployment(pk: int, status: str, code: int | None, log_path: Path) -> None:
    """Write the final status (the row's own when a cancel or the reaper got there first), then follow up."""
    with transaction.atomic():
        row = Deployment.objects.select_for_update().get(pk=pk)
        if row.status != WorkStatus.RUNNING:
            status = row.status if row.status in DEPLOY_FINAL else WorkStatus.FAILED
        if status == WorkStatus.CANCELLED:
            runners.append_log(log_path, "cancelled: process group killed")
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
        on_deployment_succeeded(deployment)
    else:
        cancel_waiting_runs(deployment)


# -- the worker: test runs ---------------------------------------------------------------------------------------


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
        if deployment.status in DEPLOY_FINAL:
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
        self.folder = _fresh_dir("runs", run.pk)
        self.log_path = self.folder / "output.log"
        self.reportlog_path = self.folder / "report-log.jsonl"
        self.junit_path = self.folder / "junit.xml"
        self.writer = ResultWriter(run)
        self.live = LiveReportLog(str(self.reportlog_path))
        self.tail = FileTail(self.reportlog_path)
        self.counts: Counter[str] = Counter()
        self.tests_duration = 0.0
        self.info: RunInfo | None = None
        self.used_junit = False
        self.problem = ""
        self.proc: runners.GroupProcess | None = None

    # -- the command ---------------------------------------------------------------------------------------

    def revision(self) -> str:
        if self.run.deployment_id and self.run.deployment:
            return self.run.deployment.revision
        return self.env.default_revision

    def selection(self) -> list[str]:
        """Node ids of the chosen tests, from TestCase rows (never from text a user typed)."""
        ids = list(self.run.selection or [])
        nodeids = dict(TestCase.objects.filter(pk__in=ids, environment=self.env).values_list("pk", "nodeid"))
        return [nodeids[pk] for pk in ids if pk in nodeids and safe_nodeid(nodeids[pk])]

    def command(self, child_env: dict[str, str]) -> list[str]:
        """The environment's command, then the selection (for a rerun), then where results go."""
        args = runners.expand_command(self.env.test_command, revision=self.revision())
        if self.run.scope != TestRun.Scope.ALL:
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
        ids = list(self.run.selection or [])
        spent = TestResult.objects.filter(run_id=self.run.rerun_of_id, case_id__in=ids).aggregate(s=Sum("duration"))
        return {"expected_tests": len(ids), "expected_s": spent["s"] or 0.0}

    # -- running -------------------------------------------------------------------------------------------

    def execute(self) -> None:
        status = WorkStatus.ERROR
        code: int | None = None
        try:
            child_env = runners.child_environment(self.env.env_vars)
            args = self.command(child_env)
            properties = {**(self.run.properties or {}), "eta": self.expectation()}
            TestRun.objects.filter(pk=self.run.pk).update(
                command=args, log_path=str(self.log_path), properties=properties
            )
            self.proc = runners.GroupProcess(
                args,
                cwd=runners.resolve_working_dir(self.env.working_dir),
                env=child_env,
                log_path=self.log_path,
                record_path=self.folder / PROCESS_RECORD,
            )
            self.proc.start()
            ending = supervise(self.proc, timeout_s=self.env.timeout_s, tick=self.tick)
            code = self.proc.returncode
            if ending == TIMED_OUT:
                runners.append_log(self.log_path, f"timed out after {self.env.timeout_s} s: process group killed")
            self.collect_rest()
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
            self.finalize(status, code)

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
            self.counts[_COUNT_FIELD.get(result.outcome, "passed")] += 1
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
        from ..ingest import parse

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
        if ending == TIMED_OUT:
            return WorkStatus.TIMED_OUT
        if ending == STOPPED:
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
        run.refresh_from_db()
        run.finished_at = run.finished_at or finished_at
        run.log_tail = runners.read_tail(self.log_path) or run.log_tail
        info = self.info
        if info is not None:
            info.duration = None  # the run's duration is its wall time, not the tests' span
        elif code is not None and code >= 0:
            run.exitstatus = code
        finish_run(run, self.writer, info, status=status)


# -- the reaper ------------------------------------------------------------------------------------------------


def _kill_orphans(log_path: str) -> bool:
    """Kill the process group a dead worker left behind, when it runs on this host (see runners)."""
    if not log_path:
        return False
    record_path = Path(log_path).parent / PROCESS_RECORD
    record = runners.ProcessRecord.load(record_path)
    if record is None:
        return False
    killed = runners.kill_recorded_group(record)
    record_path.unlink(missing_ok=True)
    return killed


def _stale(cutoff) -> Q:  # noqa: ANN001
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def _lose_deployment(deployment: Deployment, cutoff) -> bool:  # noqa: ANN001
    note = f"lost: no heartbeat since {deployment.heartbeat_at or deployment.started_at:%H:%M:%S}"
    if not Deployment.objects.filter(_stale(cutoff), pk=deployment.pk, status=WorkStatus.RUNNING).update(
        status=WorkStatus.LOST, finished_at=timezone.now()
    ):
        return False
    if _kill_orphans(deployment.log_path):
        note += "; its orphaned process group was killed"
    if deployment.log_path:
        runners.append_log(Path(deployment.log_path), note)
    Deployment.objects.filter(pk=deployment.pk).update(log_tail=(deployment.log_tail + f"\n[loopdash] {note}")[-20000:])
    deployment.refresh_from_db()
    cancel_waiting_runs(deployment)
    return True


def reap_deployments(queryset, *, cutoff=None) -> int:  # noqa: ANN001
    """Deployments whose worker went silent: ``lost``; their waiting runs are cancelled."""
    cutoff = cutoff or locks.stale_before()
    reaped = _each(
        queryset.filter(_stale(cutoff), status=WorkStatus.RUNNING), "deployment", lambda d: _lose_deployment(d, cutoff)
    )
    # A cancel whose worker died before it could finish the row.
    queryset.filter(_stale(cutoff), status=WorkStatus.CANCELLED, finished_at__isnull=True).update(
        finished_at=timezone.now()
    )
    return reaped


def _each(rows: Iterable, what: str, action: Callable[[object], bool]) -> int:
    """Apply ``action`` to each row, logging (not raising) a failure: one bad row must not stop the reaper."""
    done = 0
    for row in rows:
        try:
            done += int(action(row) or 0)
        except Exception:  # noqa: BLE001 - the reaper is the backstop; it must reach every row
            log.exception("reaper: could not end %s %s", what, row.pk)
    return done


def _lose_run(run: TestRun, cutoff, bound_s: float | None) -> bool:  # noqa: ANN001
    if not TestRun.objects.filter(_stale(cutoff), pk=run.pk, status=WorkStatus.RUNNING).update(
        status=WorkStatus.LOST, finished_at=timezone.now()
    ):
        return False
    note = f"lost: no heartbeat for {locks.lost_after_s() if bound_s is None else bound_s:g} s (worker gone)"
    if _kill_orphans(run.log_path):
        note += "; its orphaned process group was killed"
    if run.log_path:
        runners.append_log(Path(run.log_path), note)
    run.refresh_from_db()
    run.log_tail = (run.log_tail + f"\n[loopdash] {note}")[-20000:]
    finish_run(run, None, None, status=WorkStatus.LOST)
    return True


def _write_missing_summary(run: TestRun) -> bool:
    _kill_orphans(run.log_path)
    finish_run(run, None, None, status=run.status)
    return True


def reap_lost(*, bound_s: float | None = None) -> dict[str, int]:
    """Mark work whose heartbeat is older than the bound as ``lost`` and write what it stored.

    Also finishes what a dead worker left half-done: a run in a final status without its summary (a
    cancel the worker never saw, a summary that failed), a queued run whose deployment ended without
    succeeding.
    """
    cutoff = locks.stale_before(bound_s=bound_s)
    workers_runs = TestRun.objects.exclude(source=TestRun.Source.UPLOAD)
    lost_runs = _each(
        workers_runs.filter(_stale(cutoff), status=WorkStatus.RUNNING), "run", lambda r: _lose_run(r, cutoff, bound_s)
    )
    unfinished = _each(
        workers_runs.filter(_stale(cutoff), status__in=TestRun.FINAL_STATUSES, summary_written=False),
        "run",
        _write_missing_summary,
    )
    lost_deployments = reap_deployments(Deployment.objects.all(), cutoff=cutoff)
    failed_deploys = (
        Deployment.objects.filter(status__in=DEPLOY_FINAL, runs__status=WorkStatus.QUEUED)
        .exclude(status=WorkStatus.SUCCEEDED)
        .distinct()
    )
    waiting = sum(_each([d], "deployment", cancel_waiting_runs) for d in failed_deploys)
    if lost_runs or lost_deployments:
        log.warning("reaper: %s run(s) and %s deployment(s) lost", lost_runs, lost_deployments)
    return {"runs": lost_runs, "deployments": lost_deployments, "unfinished": unfinished, "waiting": waiting}
