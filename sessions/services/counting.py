"""Which runs count, and the operator's word on it: exclude and include.

A run **counts** (in trends, the headline, MRR at risk, criteria, flakiness, fix verdicts and cycles to
green) when it finished, ran to its end and is not excluded. Incomplete runs (cancelled, timed out,
lost, an internal error) never count. A run is **excluded** by an operator (with a reason), or by
itself when it never reached the system under test:

- the environment's health check failed before the tests (``work.run_execution``), or
- nearly all of its executed tests failed with one infrastructure signature: at least
  ``Environment.unreachable_share`` % (default 90) of them failed, at least that share failed with the
  *same* signature, that signature's text names an infrastructure fault (``INFRASTRUCTURE``: connection
  refused or reset, DNS, no route, 502/503/504 from the target...), and at least ``MIN_EXECUTED`` tests
  ran. 0 turns the rule off for an environment.

An excluded run keeps its results, browsable; it is shown marked, with the reason, everywhere, and
never becomes the headline. Excluding or including a run afterwards makes every figure follow at
once (``follow_up``). docs/COUNTING.md explains the rule for users.
"""

from __future__ import annotations

import re

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ..models import LoopSession, RunSignature, SessionEvent, SuccessCriterion, TestRun, WorkStatus
from . import criteria, flaky, lifecycle
from .signatures import acting_user
from .triage import Invalid

MIN_EXECUTED = 5
REASON_MAX = 500
INFRASTRUCTURE = re.compile(
    r"connection ?refused|econnrefused|errno 111|connect call failed|connection reset|econnreset"
    r"|name or service not known|nodename nor servname|getaddrinfo|temporary failure in name resolution"
    r"|no address associated with hostname|could not resolve host|no route to host|network is unreachable"
    r"|failed to establish a new connection|cannot connect to host|connecterror"
    r"|\b50[234]\b|bad gateway|service unavailable|gateway time-?out",
    re.IGNORECASE,
)


def counts(run: TestRun) -> bool:
    """Finished, complete, summarised and not excluded."""
    return run.status == WorkStatus.FINISHED and not run.incomplete and not run.excluded and run.summary_written


def unreachable_reason(run: TestRun) -> str | None:
    """Why this finished run never reached its target, by the environment's rule; None when it did."""
    share = run.environment.unreachable_share
    executed = run.passed + run.failed + run.errors
    if not share or executed < MIN_EXECUTED or (run.failed + run.errors) * 100 < share * executed:
        return None
    top = (
        RunSignature.objects.filter(run=run)
        .select_related("signature")
        .only("results", "signature__title", "signature__error_type", "signature__normalized")
        .order_by("-results")
        .first()
    )
    if top is None or top.results * 100 < share * executed:
        return None
    signature = top.signature
    if not INFRASTRUCTURE.search(f"{signature.error_type} {signature.normalized}"):
        return None
    return (
        f"target unreachable: {top.results} of {executed} executed tests failed with one infrastructure "
        f"failure (#{signature.pk} {signature.title[:120]})"
    )


def decide(run: TestRun) -> TestRun:
    """The pipeline's counting step: exclude a run that never reached its target, then set ``counted``."""
    if not run.excluded and run.status == WorkStatus.FINISHED and not run.incomplete:
        reason = unreachable_reason(run)
        if reason:
            _exclude(run, reason, user=None)
    run.counted = counts(run)
    TestRun.objects.filter(pk=run.pk).update(counted=run.counted)
    refresh_headline(run.session_id)
    return run


def refresh_headline(session_id: int) -> None:
    """The session's headline is its latest counted run (an excluded or incomplete one never is)."""
    latest = TestRun.objects.filter(session_id=session_id, counted=True).order_by("-finished_at", "-id").first()
    LoopSession.objects.filter(pk=session_id).update(latest_run=latest)


def _exclude(run: TestRun, reason: str, user: AbstractBaseUser | None, who: str = "automatically") -> None:
    now = timezone.now()
    run.excluded, run.excluded_reason, run.excluded_by, run.excluded_at = True, reason, acting_user(user), now
    run.counted = False
    TestRun.objects.filter(pk=run.pk).update(
        excluded=True, excluded_reason=reason, excluded_by=run.excluded_by, excluded_at=now, counted=False
    )
    if user is not None and getattr(user, "is_authenticated", False):
        who = f"by {user.get_username()}"
    SessionEvent.objects.create(
        session_id=run.session_id,
        run=run,
        user=run.excluded_by,
        action="excluded",
        detail=f"run {run.pk} excluded {who}: {reason}"[:500],
    )


def exclude_automatically(run: TestRun, reason: str) -> None:
    """The worker's word: the run never reached its target (its health check failed)."""
    _exclude(run, reason[:REASON_MAX], user=None)


def _reason(reason: object) -> str:
    text = " ".join(str(reason or "").split())
    if not text:
        raise Invalid("reason: say why the run is excluded (it is shown on the run and in the session)")
    if len(text) > REASON_MAX:
        raise Invalid(f"reason: at most {REASON_MAX} characters")
    return text


def _ended(run: TestRun) -> None:
    if run.status in (WorkStatus.QUEUED, WorkStatus.RUNNING) or not run.summary_written:
        raise Invalid(f"run {run.pk} has not ended yet: exclude or include it once it has")


def exclude_run(
    run: TestRun, reason: object, user: AbstractBaseUser | None, *, who: str = "from the command line"
) -> TestRun:
    """An operator sets a run aside, with a reason; every figure follows at once.

    ``who`` says who it was when there is no user (a script or ``manage.py run exclude``).
    """
    _ended(run)
    text = _reason(reason)
    with transaction.atomic():
        _exclude(run, text, user, who)
        follow_up(run)
    return run


def include_run(run: TestRun, user: AbstractBaseUser | None, reason: object = "") -> TestRun:
    """An operator takes a run back in; it counts again if it finished complete."""
    _ended(run)
    if not run.excluded:
        raise Invalid(f"run {run.pk} is not excluded")
    note = " ".join(str(reason or "").split())[:REASON_MAX]
    with transaction.atomic():
        run.excluded, run.excluded_reason, run.excluded_by, run.excluded_at = False, "", None, None
        run.counted = counts(run)
        TestRun.objects.filter(pk=run.pk).update(
            excluded=False, excluded_reason="", excluded_by=None, excluded_at=None, counted=run.counted
        )
        who = f" by {user.get_username()}" if user is not None and getattr(user, "is_authenticated", False) else ""
        SessionEvent.objects.create(
            session_id=run.session_id,
            run=run,
            user=acting_user(user),
            action="included",
            detail=(f"run {run.pk} included{who}" + (f": {note}" if note else ""))[:500],
        )
        follow_up(run)
    return run


def follow_up(run: TestRun) -> None:
    """After a run's counting changed: headline, flakiness, fix verdicts and criteria follow."""
    refresh_headline(run.session_id)
    flaky.recount_after_counting_changed(run)
    lifecycle.reconsider_after_counting_changed(run)
    for criterion in SuccessCriterion.objects.filter(session_id=run.session_id).select_related("session"):
        criteria.reevaluate(criterion)  # from the latest counted full run, or "no complete run yet"
