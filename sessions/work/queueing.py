"""The request side of work: validate a deploy, a test run or a cycle, write its queued rows, send the task.

Views, the API and the CLI call these; they only write rows and enqueue on commit, never run anything.
A task that cannot be sent (the broker down) ends its rows at once (``_enqueue_on_commit``), so no
row waits ``queued`` for ever, holding its environment's deploy lock.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable

from celery import chain
from django.db import transaction
from django.utils import timezone

from .. import tasks
from ..models import (
    SHARDS_MAX,
    Cycle,
    Deployment,
    Environment,
    FailureSignature,
    LoopSession,
    Outcome,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
)
from ..services.ingestion.cycles import next_cycle, resolve_cycle
from ..services.run_completion import complete_run
from ..services.signatures import root_of
from . import git, locks, runners
from .cancel import cancel_waiting_runs
from .errors import Refused
from .reaper import reap_deployments, reap_if_due

log = logging.getLogger(__name__)

SELECTION_MAX = 50_000
EXPRESSION_MAX = 200
# Subsets chosen by stored ids (run as a selection, like a rerun of chosen tests, but without a run to rerun).
SUBSET_P1 = "p1"
SUBSET_SIGNATURE = "signature"
SUBSET_TESTS = "tests"  # tests chosen by hand on a test list (case ids of the environment), no run to rerun
SUBSETS = (SUBSET_P1, SUBSET_SIGNATURE, SUBSET_TESTS)
# Characters an expression may not hold: control characters (NUL included) and every line separator
# str.splitlines knows (argparse's argument files split on them): \n \r \v \f \x1c \x1d \x1e \x85 are Cc,
# \u2028 is Zl, \u2029 is Zp; Cf (bidi overrides, zero-width) would hide what the page shows.
_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


# A revision goes into an argument list: no leading dash (it would read as an option), no spaces.
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+@-]{0,99}$")


def _user_or_none(user: object) -> object | None:
    return user if getattr(user, "is_authenticated", False) else None


def newest_revision(env: Environment) -> str:
    """What a deploy or a cycle takes without a revision: the newest listed (the last), else the default."""
    known = [str(r["revision"]) for r in env.revisions or [] if isinstance(r, dict) and r.get("revision")]
    return known[-1] if known else env.default_revision


def deployed_now(env: Environment) -> Deployment | None:
    """The environment's latest succeeded deployment: what its target runs now."""
    return (
        Deployment.objects.filter(environment=env, status=WorkStatus.SUCCEEDED).order_by("-finished_at", "-id").first()
    )


def resolve_in_repository(env: Environment, revision: str | None) -> tuple[str, str]:
    """(ref, commit) of a revision of the environment's repository; no revision: its default branch's head.

    Asked from the web process (``git ls-remote`` for a URL, ``rev-parse`` for a path, at most
    ``git.RESOLVE_TIMEOUT_S``), so that an unknown ref is refused (400, naming it) before anything is
    queued. When the repository cannot be reached from here (credentials live on the workers, a path
    that exists only there), the ref is queued unresolved and the worker's fetch decides: an unknown
    ref then ends the work with that reason.
    """
    ref = (revision or "HEAD").strip()
    try:
        git.check_ref(ref)
    except git.GitError as exc:
        raise Refused(f"revision: {exc}", 400) from None
    try:
        name, commit = git.resolve(env.repository, ref)
    except git.GitError as exc:
        log.warning("could not resolve %s in %s from the web side (%s): left to the worker", ref, env.name, exc)
        return ref, ""
    if not commit:
        shown = git.mask(env.repository)
        raise Refused(f"unknown revision {ref!r}: not a branch, tag or commit of {shown} (environment {env.name})", 400)
    return name, commit


def check_revision(session: LoopSession, revision: str | None, *, rollback: bool = False) -> tuple[str, str]:
    """(revision, commit) for a deploy: a known revision of the environment, or its newest.

    Going back to a revision older than the one deployed now is a rollback: refused (409) unless it
    is asked for, so that one click on a stale form never rolls staging back.
    """
    env = session.environment
    if env.repository:
        return resolve_in_repository(env, revision)
    revision = (revision or newest_revision(env) or "").strip()
    if not revision:
        raise Refused(f"no revision given and environment {env.name} lists none", 400)
    known = [r for r in env.revisions or [] if isinstance(r, dict) and r.get("revision")]
    if known:
        names = [str(r["revision"]) for r in known]
        if revision not in names:
            shown = ", ".join(names[:30])
            raise Refused(f"unknown revision {revision!r} for environment {env.name} (known: {shown})", 400)
        current = deployed_now(env)
        if not rollback and current is not None and current.revision in names:
            if names.index(revision) < names.index(current.revision):
                raise Refused(
                    f"{revision} is older than {current.revision}, deployed now: that is a rollback; confirm it "
                    '(tick "roll back" on the page, --rollback, or "rollback": true)',
                    409,
                )
        return revision, str(known[names.index(revision)].get("commit") or "")[:64]
    if not REVISION_RE.match(revision):
        raise Refused(f"revision {revision!r} is not a plain name (letters, digits, . _ / + @ -)", 400)
    return revision, ""


def _create_deployment(session: LoopSession, revision: str | None, user: object, rollback: bool) -> Deployment:
    """The queued deployment, in a new cycle; refused (409) while another one is queued or running."""
    env = session.environment
    if not env.deploy_command:
        raise Refused(f"environment {env.name} has no deploy command (set it in the admin)", 400)
    revision, commit = check_revision(session, revision, rollback=rollback)
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


def request_deploy(
    session: LoopSession, *, revision: str | None = None, user: object = None, rollback: bool = False
) -> Deployment:
    """Queue a deploy of ``revision`` (default: the environment's default revision)."""
    reap_if_due()
    with transaction.atomic():
        deployment = _create_deployment(session, revision, user, rollback)
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
        chosen = _case_ids(case_ids)
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


def _case_ids(values: Iterable[object] | None) -> list[int]:
    """TestCase ids as posted (numbers or digit strings), deduplicated in order; 400 for anything else."""
    chosen = []
    for value in values or []:
        # ASCII digits, short enough for a bigint: "²".isdigit() is true but int("²") fails.
        if isinstance(value, bool) or not isinstance(value, int | str) or not re.fullmatch(r"[0-9]{1,18}", str(value)):
            raise Refused(f"tests: test ids must be whole numbers (TestCase ids), got {value!r}", 400)
        chosen.append(int(value))
    return list(dict.fromkeys(chosen))


def chosen_case_ids(env: Environment, case_ids: Iterable[object] | None) -> list[int]:
    """Tests chosen by hand on a test list: ids of the environment's TestCase rows, at most SELECTION_MAX.

    Only ids travel: the node ids the worker passes on come from these rows, never from the request.
    """
    chosen = _bounded(_case_ids(case_ids), "tests: choose at least one test")
    known = set(TestCase.objects.filter(environment=env, pk__in=chosen).values_list("pk", flat=True))
    missing = [pk for pk in chosen if pk not in known]
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise Refused(f"tests: test ids not in environment {env.name}: {shown}", 400)
    return chosen


def check_expression(value: object, field: str) -> str:
    """A marker or keyword expression as the test command gets it: one argument, never an option.

    Stripped; refused (400, naming the field) when empty, longer than 200 characters, starting with
    ``-`` (an option) or ``@`` (an argument file), or holding a control character or a line separator.
    """
    if not isinstance(value, str):
        raise Refused(f"{field} must be text (an expression such as p1), got {value!r}", 400)
    text = value.strip()
    if not text:
        raise Refused(f"{field} is empty: give an expression such as p1", 400)
    if len(text) > EXPRESSION_MAX:
        raise Refused(f"{field} is {len(text)} characters long; at most {EXPRESSION_MAX}", 400)
    if text[0] in "-@":
        what = "an option" if text[0] == "-" else "an argument file"
        raise Refused(f"{field} must not start with {text[0]!r} (it would read as {what}): {text[:40]!r}", 400)
    for position, char in enumerate(text):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise Refused(
                f"{field} holds a control character or line separator (U+{ord(char):04X} at position {position})",
                400,
            )
    return text


def _expressions(env: Environment, marker: object, keyword: object) -> dict[str, str]:
    """The checked marker and keyword (only those given), each refused when the environment cannot pass it."""
    chosen = {}
    for field, value in (("marker", marker), ("keyword", keyword)):
        if value is None:
            continue
        text = check_expression(value, field)
        try:
            runners.subset_arguments(getattr(env, f"{field}_args"), field, text)
        except runners.CommandError as exc:
            raise Refused(f"environment {env.name}: {exc}", 400) from None
        chosen[field] = text
    return chosen


def _bounded(chosen: list[int], empty: str) -> list[int]:
    """The checks every selection passes: at least one test, at most SELECTION_MAX."""
    if not chosen:
        raise Refused(empty, 400)
    if len(chosen) > SELECTION_MAX:
        raise Refused(f"at most {SELECTION_MAX} tests can be selected", 400)
    return chosen


def signature_case_ids(env: Environment, signature_id: object) -> list[int]:
    """The tests a signature hit in the latest run it was seen in (its merged signatures included).

    The latest run, not all runs: what a fix must make pass now (the same rule decides whether a run
    can judge a fix), not every test the signature ever touched months ago.
    """
    if isinstance(signature_id, bool) or not re.fullmatch(r"[0-9]{1,18}", str(signature_id)):
        raise Refused(f"signature must be a signature id (a whole number), got {signature_id!r}", 400)
    signature = FailureSignature.objects.filter(pk=int(signature_id), environment=env).first()
    if signature is None:
        raise Refused(f"no signature {signature_id} in environment {env.name}", 404)
    root = root_of(signature.pk)
    family = {signature.pk, root, *FailureSignature.objects.filter(merged_into=root).values_list("pk", flat=True)}
    last = FailureSignature.objects.filter(pk=root).values_list("last_seen_run_id", flat=True).first()
    if last is None:
        raise Refused(f"signature #{signature.pk} was not seen in any run: no test to run", 400)
    hit = TestResult.objects.filter(run_id=last, signature_id__in=family).order_by("id")
    return list(dict.fromkeys(hit.values_list("case_id", flat=True)[: SELECTION_MAX + 1]))


def _subset_selection(env: Environment, subset: str, signature: object, case_ids: Iterable[object] | None) -> list[int]:
    """The stored case ids of a subset by ids: the P1 tests of the environment, a signature's tests, or
    tests chosen by hand."""
    if subset == SUBSET_P1:
        ids = TestCase.objects.filter(environment=env, priority__iexact="P1").order_by("id")
        chosen = list(ids.values_list("pk", flat=True)[: SELECTION_MAX + 1])
        return _bounded(chosen, f"environment {env.name} has no P1 test (priorities come from the impact rules)")
    if subset == SUBSET_SIGNATURE:
        return _bounded(signature_case_ids(env, signature), f"signature #{signature} hit no test in its latest run")
    if subset == SUBSET_TESTS:
        return chosen_case_ids(env, case_ids)
    raise Refused(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}", 400)


def _subset_properties(subset: str | None, signature: object) -> dict:
    """What a run by stored ids chose, kept with the run (``properties``) for the pages and the API."""
    if subset is None:
        return {}
    return {"subset": subset} | ({"signature": int(str(signature))} if subset == SUBSET_SIGNATURE else {})


def _label(
    *,
    scope: str,
    rerun_of: TestRun | None,
    count: int,
    revision: str,
    expressions: dict[str, str],
    subset: str | None,
    signature: object,
) -> str:
    """The run's name, by what it ran: "full suite on r5", "rerun of 24 failed (3 tests)", "P1 on r7"."""
    tests = f"{count} test{'' if count == 1 else 's'}"
    if rerun_of is not None:
        if scope == TestRun.Scope.FAILED:
            return f"rerun of {rerun_of.pk} failed ({tests})"
        if scope == TestRun.Scope.SELECTED:
            return f"rerun of {rerun_of.pk} selected ({tests})"
        return f"rerun of {rerun_of.pk} (full suite)"
    if expressions:
        what = ", ".join(f"{field} {text}" for field, text in expressions.items())
    elif subset == SUBSET_P1:
        what = "P1"
    elif subset == SUBSET_SIGNATURE:
        what = f"tests of signature #{signature}"
    elif subset == SUBSET_TESTS:
        what = f"{count} chosen test{'' if count == 1 else 's'}"
    else:
        what = "full suite"
    on = f" on {revision}" if revision else ""
    label = f"{what}{on}"
    return label if len(label) <= 200 else f"{what[: 199 - len(on)]}…{on}"


def shard_count(env: Environment, shards: object, tests: int | None) -> int:
    """How many shards a run gets: the request's number (1 to 32), else the environment's default.

    Never more shards than tests when the tests are known now (a rerun, a selection): a one-test
    rerun is one shard. A full run or an expression subset is capped once collected, on the worker.
    """
    if shards is None or shards == "":
        count = env.default_shards or 1
    else:
        text = str(shards).strip()
        if isinstance(shards, bool) or not isinstance(shards, int | str) or not re.fullmatch(r"[0-9]{1,3}", text):
            raise Refused(f"shards must be a whole number from 1 to {SHARDS_MAX}, got {shards!r}", 400)
        count = int(text)
        if not 1 <= count <= SHARDS_MAX:
            raise Refused(f"shards must be from 1 to {SHARDS_MAX}, got {count}", 400)
    count = max(1, min(int(count), SHARDS_MAX))
    return min(count, tests) if tests else count


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
    marker: object = None,
    keyword: object = None,
    subset: str | None = None,
    signature: object = None,
    shards: object = None,
    revision: str | None = None,
) -> TestRun:
    env = session.environment
    if not env.test_command:
        raise Refused(f"environment {env.name} has no test command (set it in the admin)", 400)
    if scope not in TestRun.Scope.values:
        raise Refused(f"scope must be one of {', '.join(TestRun.Scope.values)}, got {scope!r}", 400)
    if rerun_of is not None and rerun_of.session_id != session.pk:
        raise Refused(f"no run {rerun_of.pk} in session {session.slug}", 404)
    by_expression = marker is not None or keyword is not None
    if scope == TestRun.Scope.SUBSET and not by_expression:
        raise Refused("scope 'subset' is what a marker or keyword expression runs: give marker or keyword", 400)
    extra_ids = bool(case_ids) and subset != SUBSET_TESTS  # chosen tests are the one subset that takes ids
    if (by_expression or subset is not None) and (rerun_of is not None or scope != TestRun.Scope.ALL or extra_ids):
        raise Refused("marker, keyword and subset run part of the suite: not with rerun, scope or tests", 400)
    if by_expression and subset is not None:
        raise Refused("choose one subset: a marker or keyword expression, or the P1 / a signature's tests", 400)
    if signature is not None and subset != SUBSET_SIGNATURE:
        raise Refused("signature goes with subset 'signature'", 400)
    expressions = _expressions(env, marker, keyword)
    if expressions:
        scope, selection = TestRun.Scope.SUBSET, []
    elif subset is not None:
        scope, selection = TestRun.Scope.SELECTED, _subset_selection(env, subset, signature, case_ids)
    else:
        selection = _selection(rerun_of, scope, case_ids)
    if deployment is None:
        deployment = (
            Deployment.objects.filter(environment=env, status=WorkStatus.SUCCEEDED).order_by("-finished_at").first()
        )
    suite_revision, suite_commit = _suite(env, deployment, revision)
    label = _label(
        scope=scope,
        rerun_of=rerun_of,
        count=len(selection),
        revision=suite_revision or (deployment.revision if deployment is not None else ""),
        expressions=expressions,
        subset=subset,
        signature=signature,
    )
    return TestRun.objects.create(
        session=session,
        cycle=cycle or resolve_cycle(session, None),
        environment=env,
        deployment=deployment,
        label=label,
        status=WorkStatus.QUEUED,
        source=source,
        format="reportlog" if env.writes_report_log else "junit",
        rerun_of=rerun_of,
        scope=scope,
        selection=selection,
        marker=expressions.get("marker", ""),
        keyword=expressions.get("keyword", ""),
        properties=_subset_properties(subset, signature),
        triggered_by=_user_or_none(user),
        shards_requested=shard_count(env, shards, len(selection) if selection else None),
        revision=suite_revision,
        commit=suite_commit,
    )


def _suite(env: Environment, deployment: Deployment | None, revision: str | None) -> tuple[str, str]:
    """Which suite a run runs: the ref it names, else the commit deployed now (else the default branch).

    Only with a repository; without one the worker runs whatever ``working_dir`` holds.
    """
    if revision is not None and not env.repository:
        raise Refused(
            f"revision: environment {env.name} has no repository, so its tests cannot be run at another "
            "revision; deploy it instead",
            400,
        )
    if not env.repository:
        return "", ""
    if (
        revision is None
        and deployment is not None
        and (deployment.commit_sha or deployment.status == WorkStatus.QUEUED)
    ):
        return deployment.revision, deployment.commit_sha
    return resolve_in_repository(env, revision)


def request_tests(
    session: LoopSession,
    *,
    user: object = None,
    source: str = TestRun.Source.UI,
    rerun_of: TestRun | None = None,
    scope: str = TestRun.Scope.ALL,
    case_ids: Iterable[object] | None = None,
    marker: str | None = None,
    keyword: str | None = None,
    subset: str | None = None,
    signature: object = None,
    shards: object = None,
    revision: str | None = None,
) -> TestRun:
    """Queue a test run: the whole suite, the failed / chosen tests of ``rerun_of``, or a subset.

    A subset is a ``marker`` and/or ``keyword`` expression (passed to the command through the
    environment's ``marker_args`` / ``keyword_args``, scope ``subset``), or tests chosen by stored ids
    (``subset="p1"``: the environment's P1 tests; ``subset="signature"`` with ``signature``: the tests
    it hit in its latest run; ``subset="tests"`` with ``case_ids``: tests chosen on a test list), run as a
    selection (scope ``selected``) like a rerun of chosen tests.
    """
    reap_if_due()
    with transaction.atomic():
        run = _create_run(
            session,
            user=user,
            source=source,
            rerun_of=rerun_of,
            scope=scope,
            case_ids=case_ids,
            marker=marker,
            keyword=keyword,
            subset=subset,
            signature=signature,
            shards=shards,
            revision=revision,
        )
        _enqueue_on_commit(lambda: tasks.run_tests.delay(run.pk), runs=[run])
    return run


def request_cycle(
    session: LoopSession,
    *,
    revision: str | None = None,
    user: object = None,
    source: str = TestRun.Source.UI,
    rollback: bool = False,
    shards: object = None,
) -> tuple[Deployment, TestRun]:
    """A new cycle: deploy, then run the suite, as one Celery chain.

    The run waits as ``queued`` behind its deployment; when the deploy does not succeed the run is
    cancelled with a message naming the deployment (it never runs against a half-deployed target).
    """
    reap_if_due()
    with transaction.atomic():
        deployment = _create_deployment(session, revision, user, rollback)
        run = _create_run(
            session,
            user=user,
            source=source,
            deployment=deployment,
            cycle=deployment.cycle,
            shards=shards,
        )
        work = chain(tasks.deploy.si(deployment.pk), tasks.run_tests.si(run.pk))
        _enqueue_on_commit(work.apply_async, deployments=[deployment], runs=[run])
    return deployment, run
