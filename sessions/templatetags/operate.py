"""What the operate partials need on pages whose views belong to others: roles and live progress.

The includes in ``session_detail``, ``run_detail`` and ``deployment_detail`` load this library instead
of asking those views for context. Nothing here queries the database except for a queued run of a
cycle (its deployment's status, read by ``selectors.operate``): the pages keep their query bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from .. import roles
from ..models import LIVE_STATUSES, Deployment, LoopSession, TestRun, WorkStatus
from ..selectors.operate import deployment_waited_for, revision_deployed_now

register = template.Library()

FAILING = ("failed", "error")


@register.filter
def can_operate(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Operators and admins trigger deploys and runs; everyone else does not see the buttons."""
    return bool(getattr(user, "is_authenticated", False) and roles.can_operate(user))


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


def progress_of(run: TestRun, now: datetime | None = None) -> Progress:
    """Counts, elapsed time and an ETA from the last durations of the same tests (stored at start).

    The remaining test time (expected minus done) is scaled by how wall time has compared with test
    time so far in this run, which accounts for parallel workers and set-up overhead.
    """
    now = now or timezone.now()
    elapsed_s = (now - run.started_at).total_seconds() if run.started_at else None
    eta = (run.properties or {}).get("eta") or {}
    expected = int(eta.get("expected_tests") or 0) or None
    expected_s = float(eta.get("expected_s") or 0.0)
    done_s = float(run.tests_duration_s or 0.0)
    remaining = None
    if run.status == WorkStatus.RUNNING and elapsed_s:
        if expected_s and done_s > 0:
            ratio = min(max(elapsed_s / done_s, 0.05), 20.0)
            remaining = max(0.0, expected_s - done_s) * ratio
        elif expected and run.total:
            remaining = elapsed_s * max(0, expected - run.total) / run.total
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
        eta=("about " + _clock(remaining) + " left") if remaining is not None else "",
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
