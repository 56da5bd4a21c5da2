"""What the operate partials need on pages whose views belong to others: roles and live progress.

The includes in ``session_detail``, ``run_detail`` and ``deployment_detail`` load this library instead
of asking those views for context. Nothing here queries the database except for a queued run of a
cycle (its deployment's status, read by ``selectors.operate``) and the live panel's signature titles
(``live_panel_of``, one query by primary key): the pages keep their query bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from .. import roles
from ..models import LIVE_STATUSES, Deployment, FailureSignature, LoopSession, TestRun, WorkStatus
from ..selectors.operate import deployment_waited_for, revision_deployed_now
from ..selectors.run_live import LivePanel, live_panel

register = template.Library()

FAILING = ("failed", "error")


@register.filter
def can_operate(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Operators and admins trigger deploys and runs; everyone else does not see the buttons."""
    return bool(getattr(user, "is_authenticated", False) and roles.can_operate(user))


@register.filter
def can_operate_tests(user: AbstractBaseUser | AnonymousUser | None, session: LoopSession) -> bool:
    """May this user start a run of chosen tests in ``session`` (an operator, and a test command to run)?"""
    return can_operate(user) and bool(session.environment.test_command)


@register.filter
def can_operate_signature(user: AbstractBaseUser | AnonymousUser | None, signature: FailureSignature) -> bool:
    """May this user run tests of ``signature`` (an operator; it was seen in a run; a test command to run)?"""
    return can_operate(user) and bool(signature.last_seen_run_id) and bool(signature.environment.test_command)


@register.filter
def is_live(obj: TestRun | Deployment) -> bool:
    return getattr(obj, "status", None) in LIVE_STATUSES


@register.filter
def run_ended(run: TestRun) -> bool:
    """Ended and summarised: a cancelled run stays "live" for a second, until its worker wrote the summary."""
    return run.status not in LIVE_STATUSES and bool(run.summary_written)


@register.filter
def is_failing(outcome: str) -> bool:
    return str(outcome) in FAILING


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass(slots=True)
class Progress:
    """A live run as the progress partial shows it."""

    elapsed: str
    eta: str
    percent: int | None  # of the expected tests, when a previous run tells how many to expect
    expected: int | None
    segments: list[tuple[str, int, float]]  # (css class, count, width %)
    waiting_for: Deployment | None


def time_left(run: TestRun, expected: int | None) -> str:
    """ "about 1 min 10 s left", from the recent rate the worker measured (``live_figures.rate``).

    The recent rate, not the average since the start: collection and set-up do not inflate it, and a
    suite that slows down or speeds up is followed. Never "0 s" while tests remain: once the expected
    count is reached the run is "finishing", and under 5 s left is "a few seconds".
    """
    if run.status != WorkStatus.RUNNING or not expected:
        return ""
    rate = (run.live_figures or {}).get("rate")
    remaining = expected - run.total
    if remaining <= 0:
        return "finishing: the expected number of tests has run"
    if rate is None:
        return "estimating the time left…"
    if rate <= 0:
        return "no test ended in the last 30 s: no estimate"
    seconds = remaining / rate
    if seconds < 5:
        return "a few seconds left"
    return "about " + _clock(seconds) + " left"


def progress_of(run: TestRun, now: datetime | None = None) -> Progress:
    """Counts, elapsed time and the time left (from the recent rate) of a live run.

    The bar's segments and the cards read the same columns of the same row (the worker writes them in
    one UPDATE), so they always agree; the bar is scaled to the expected count (the previous complete
    run of the same tests, stored at start) or to what has run when that is more.
    """
    now = now or timezone.now()
    elapsed_s = (now - run.started_at).total_seconds() if run.started_at else None
    eta = (run.properties or {}).get("eta") or {}
    expected = int(eta.get("expected_tests") or 0) or None
    scale = max(expected or 0, run.total, 1)
    counts = [
        ("b-passed", run.passed),
        ("b-failed", run.failed),
        ("b-error", run.errors),
        ("b-skipped", run.skipped),
        ("b-xfailed", run.xfailed + run.xpassed),
    ]
    segments = [(css, n, round(100.0 * n / scale, 2)) for css, n in counts if n]
    percent = min(99, int(100 * run.total / expected)) if expected and run.status == WorkStatus.RUNNING else None
    waiting_for = deployment_waited_for(run) if run.status == WorkStatus.QUEUED else None
    return Progress(
        elapsed=_clock(elapsed_s),
        eta=time_left(run, expected),
        percent=percent,
        expected=expected,
        segments=segments,
        waiting_for=waiting_for,
    )


@register.simple_tag
def run_progress(run: TestRun) -> Progress:
    """``{% run_progress run as p %}``."""
    return progress_of(run)


@register.simple_tag
def live_panel_of(run: TestRun) -> LivePanel:
    """``{% live_panel_of run as live %}``: the live run page's failures by signature and priorities so far."""
    return live_panel(run)


@register.simple_tag
def revision_choices(session: LoopSession) -> list[tuple[str, str, bool]]:
    """(revision, label, selected) for the Deploy form, newest first; the newest preselected.

    The revision deployed now is labelled so: a stale form never hides what staging runs. Choosing an
    older one is a rollback, which the form must confirm (the request side refuses it otherwise).
    """
    env = session.environment
    deployed = revision_deployed_now(env.pk)
    out = []
    for entry in reversed(env.revisions or []):
        if not isinstance(entry, dict) or not entry.get("revision"):
            continue
        name = str(entry["revision"])
        message = str(entry.get("message") or "")
        label = f"{name} · {message[:60]}" if message else name
        if name == deployed:
            label += " · deployed now"
        out.append((name, label, not out))
    if not out and env.default_revision:
        out.append((env.default_revision, env.default_revision, True))
    return out
