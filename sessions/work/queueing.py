"""The request side of work: validate a deploy, a test run or a cycle, write its queued rows, send the task.

Views, the API and the CLI call these; they only write rows and enqueue on commit, never run anything.
A task that cannot be sent (the broker down) ends its rows at once (``_enqueue_on_commit``), so no
row waits ``queued`` for ever, holding its environment's deploy lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from celery import chain
from django.db import transaction
from django.utils import timezone

from .. import tasks
from ..models import (
    Cycle,
    Deployment,
    LoopSession,
    Outcome,
    TestResult,
    TestRun,
    WorkStatus,
)
from ..services.ingestion.cycles import next_cycle, resolve_cycle
from ..services.run_completion import complete_run
from . import locks
from .cancel import cancel_waiting_runs
from .errors import Refused
from .reaper import reap_deployments, reap_if_due

log = logging.getLogger(__name__)

SELECTION_MAX = 50_000


# A revision goes into an argument list: no leading dash (it would read as an option), no spaces.
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+@-]{0,99}$")


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
    reap_if_due()
    with transaction.atomic():
        deployment = _create_deployment(session, revision, user)
        _enqueue_on_commit(lambda: tasks.deploy.delay(deployment.pk), deployments=[deployment])
    return deployment


def _broker_problem(exc: BaseException) -> str:
    """One line for the page: the exception, with any password in a URL masked."""
    text = re.sub(r"//[^/@\s]*@", "//***@", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _enqueue_on_commit(
    send: Callable[[], object], *, deployments: Iterable[Deployment] = (), runs: Iterable[TestRun] = ()
) -> None:
    """Send the task once the rows are committed; if the broker refuses, end the rows and say so.

    The rows are committed first (a worker must find them), so a send that fails would otherwise
    leave them ``queued`` for ever, and a queued deployment holds its environment's deploy lock. The
    rows become failed with the broker's error, and the caller gets a 503 naming them.
    """

    def enqueue() -> None:
        try:
            send()
        except Exception as exc:
            problem = _broker_problem(exc)
            log.error("could not queue work: %s", problem)
            now = timezone.now()
            ended = []
            for deployment in deployments:
                Deployment.objects.filter(pk=deployment.pk, status=WorkStatus.QUEUED).update(
                    status=WorkStatus.FAILED, finished_at=now, log_tail=f"Not deployed: could not queue it ({problem})."
                )
                deployment.refresh_from_db()
                cancel_waiting_runs(deployment)
                ended.append(f"deployment {deployment.pk}")
            for run in runs:
                if TestRun.objects.filter(pk=run.pk, status=WorkStatus.QUEUED).update(
                    status=WorkStatus.ERROR, finished_at=now, log_tail=f"Not run: could not queue it ({problem})."
                ):
                    run.refresh_from_db()
                    complete_run(run, status=WorkStatus.ERROR)
                ended.append(f"run {run.pk}")
            raise Refused(
                f"the task queue (broker) could not be reached, so nothing was queued: {problem}; "
                f"{' and '.join(ended)} marked as not started",
                503,
            ) from exc

    transaction.on_commit(enqueue)


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
            # ASCII digits, short enough for a bigint: "²".isdigit() is true but int("²") fails.
            if (
                isinstance(value, bool)
                or not isinstance(value, int | str)
                or not re.fullmatch(r"[0-9]{1,18}", str(value))
            ):
                raise Refused(f"tests: test ids must be whole numbers (TestCase ids), got {value!r}", 400)
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
    cycle: Cycle | None = None,
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
    reap_if_due()
    with transaction.atomic():
        run = _create_run(session, user=user, source=source, rerun_of=rerun_of, scope=scope, case_ids=case_ids)
        _enqueue_on_commit(lambda: tasks.run_tests.delay(run.pk), runs=[run])
    return run


def request_cycle(
    session: LoopSession, *, revision: str | None = None, user: object = None, source: str = TestRun.Source.UI
) -> tuple[Deployment, TestRun]:
    """A new cycle: deploy, then run the suite, as one Celery chain.

    The run waits as ``queued`` behind its deployment; when the deploy does not succeed the run is
    cancelled with a message naming the deployment (it never runs against a half-deployed target).
    """
    reap_if_due()
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
        _enqueue_on_commit(work.apply_async, deployments=[deployment], runs=[run])
    return deployment, run
