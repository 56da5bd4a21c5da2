"""Webhooks, the request side: what an event says, which webhooks get it, and queueing its deliveries.

``emit`` is called where things happen (the run-completion pipeline, the fix lifecycle, a deployment's
end on the worker). It writes one ``WebhookDelivery`` per webhook that wants the event and follows its
session, with the exact body to send, and sends ``sessions.tasks.deliver_webhook`` when the transaction
commits. It never blocks or fails the caller: a broker that refuses leaves the delivery pending with the
error recorded. The worker side (sending, signing, retrying) is ``work/webhooks.py``.

Bodies: loopdash's JSON ``{"event", "at", "data": {..., "url"}}`` or, for ``format=slack``, a Slack
incoming-webhook message ``{"text", "blocks"}`` (text escaped as Slack asks: ``&``, ``<``, ``>``).
Every ``url`` is absolute, from ``LOOPDASH_BASE_URL``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from ..models import WEBHOOK_EVENTS, Deployment, FailureSignature, Fix, TestRun, Webhook, WebhookDelivery

log = logging.getLogger(__name__)


class Invalid(ValueError):
    """A webhook setting that cannot be used; the message starts with the field's name ("url: ...")."""


TASK = "sessions.tasks.deliver_webhook"
# One run can show many new signatures: beyond this many, the rest are not announced one by one.
NEW_SIGNATURES_PER_RUN = 25
SLACK_SECTION_MAX = 3000  # Slack refuses a section text longer than this


def absolute(path: str) -> str:
    return settings.LOOPDASH_BASE_URL.rstrip("/") + path


# -- configuration (the CLI and the admin) ---------------------------------------------------------------------


def clean_url(url: object) -> str:
    """An http(s) URL with a host; anything else (file:, ftp:, javascript:, no host) is refused."""
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Invalid(f"url: only http:// or https:// URLs with a host are accepted, got {text[:200]!r}")
    if len(text) > 1000:
        raise Invalid("url: at most 1000 characters")
    return text


def clean_events(events: object) -> list[str]:
    """A list of known event names (empty: every event)."""
    if isinstance(events, str):
        events = [e for e in (part.strip() for part in events.split(",")) if e]
    names = list(dict.fromkeys(events or []))
    unknown = [e for e in names if e not in WEBHOOK_EVENTS]
    if unknown:
        raise Invalid(f"events: unknown event {unknown[0]!r}; use {', '.join(WEBHOOK_EVENTS)}")
    return names


def add_webhook(
    url: object, secret: object, *, events: object = (), format: str = "json", sessions: list | tuple = ()
) -> Webhook:
    """Create a webhook (``manage.py webhook add``); Invalid names the bad field."""
    text = clean_url(url)
    key = str(secret or "")
    if not key.strip():
        raise Invalid("secret: required (it signs every body)")
    if len(key) > 200:
        raise Invalid("secret: at most 200 characters")
    if format not in Webhook.Format.values:
        raise Invalid(f"format: json or slack, got {format!r}")
    names = clean_events(events)
    with transaction.atomic():
        hook = Webhook.objects.create(url=text, secret=key, events=names, format=format)
        if sessions:
            hook.sessions.set(sessions)
    return hook


# -- event data ------------------------------------------------------------------------------------------------


def run_data(run: TestRun) -> dict:
    return {
        "run": run.pk,
        "session": run.session.slug,
        "cycle": run.cycle.number,
        "label": run.label,
        "status": run.status,
        "counted": run.counted,
        "incomplete": run.incomplete,
        "excluded_reason": run.excluded_reason if run.excluded else None,
        "totals": {
            "tests": run.total,
            "passed": run.passed,
            "failed": run.failed,
            "errors": run.errors,
            "skipped": run.skipped,
        },
        "quarantined": run.quarantined,
        "pass_rate": run.pass_rate,
        "mrr_at_risk": float(run.mrr_at_risk),
        "url": absolute(reverse("run_detail", args=[run.pk])),
    }


def signature_data(signature: FailureSignature, run: TestRun | None) -> dict:
    return {
        "signature": signature.pk,
        "title": signature.title,
        "status": signature.status,
        "error_type": signature.error_type,
        "environment": signature.environment.name,
        "run": run.pk if run else None,
        "session": run.session.slug if run else None,
        "url": absolute(reverse("signature_detail", args=[signature.pk])),
    }


# -- Slack messages --------------------------------------------------------------------------------------------


def slack_escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url}|{slack_escape(label).replace('|', '¦')}>"


def slack_text(event: str, data: dict) -> str:
    """One line of Slack mrkdwn for the event, with a link to its page."""
    url = data.get("url", "")
    if event == "run.finished":
        rate = "—" if data.get("pass_rate") is None else f"{data['pass_rate']:.1f}%"
        totals = data.get("totals", {})
        counted = "" if data.get("counted") else " (does not count)"
        quarantined = f", {data['quarantined']} quarantined" if data.get("quarantined") else ""
        return (
            f"{_link(url, 'Run ' + str(data.get('run')))} of {slack_escape(data.get('session'))} "
            f"{slack_escape(data.get('status'))}{counted}: pass rate {rate}, "
            f"{totals.get('failed', 0)} failed, {totals.get('errors', 0)} errors{quarantined}"
        )
    if event in ("signature.new", "signature.regressed"):
        what = "New signature" if event == "signature.new" else "Regressed signature"
        return f"{what} {_link(url, data.get('title') or '')} in {slack_escape(data.get('environment'))}"
    if event in ("fix.verified", "fix.did_not_fix"):
        verdict = "verified" if event == "fix.verified" else "did not fix"
        return (
            f"Fix `{slack_escape(data.get('sha', '')[:12])}` {verdict}: {_link(url, data.get('title') or '')} "
            f"(run {data.get('run')})"
        )
    if event == "deployment.finished":
        return (
            f"{_link(url, 'Deployment ' + str(data.get('deployment')))} of "
            f"{slack_escape(data.get('revision'))} to {slack_escape(data.get('environment'))}: "
            f"{slack_escape(data.get('status'))}"
        )
    return f"{slack_escape(event)}: {_link(url, url)}"


def body_for(hook: Webhook, event: str, at: str, data: dict) -> str:
    """The exact body to POST (what the signature covers)."""
    if hook.format == Webhook.Format.SLACK:
        text = slack_text(event, data)
        message = {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_SECTION_MAX]}}],
        }
        return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return json.dumps({"event": event, "at": at, "data": data}, ensure_ascii=False, separators=(",", ":"))


# -- emitting --------------------------------------------------------------------------------------------------


def _subscribers(event: str, session_id: int | None) -> list[Webhook]:
    hooks = Webhook.objects.filter(active=True).prefetch_related("sessions")
    chosen = []
    for hook in hooks:
        if not hook.wants(event):
            continue
        follows = {s.pk for s in hook.sessions.all()}
        if follows and session_id not in follows:
            continue
        chosen.append(hook)
    return chosen


def _send(ids: list[int]) -> None:
    for pk in ids:
        try:
            current_app.send_task(TASK, args=[pk])
        except Exception as exc:  # the broker refused: the delivery stays pending, saying why
            log.warning("webhook delivery %s not queued: %s", pk, exc)
            WebhookDelivery.objects.filter(pk=pk).update(last_error=f"not queued: {exc}"[:1000])


def emit(event: str, data: dict, *, session_id: int | None = None) -> list[WebhookDelivery]:
    """Queue ``event`` for every active webhook that wants it and follows ``session_id``.

    Sent once the current transaction commits (at once outside one); never raises into the caller's work
    for a delivery problem.
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = _subscribers(event, session_id)
    if not hooks:
        return []
    at = timezone.now().isoformat()
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=hook, event=event, payload=body_for(hook, event, at, data)) for hook in hooks]
    )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: _send(ids), robust=True)
    return deliveries


def _never_raises(notify: Callable[..., None]) -> Callable[..., None]:
    """A notification must never fail the work it reports on (a run's completion, a deploy's end)."""

    @wraps(notify)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            with transaction.atomic():  # a savepoint: a failure here leaves the caller's transaction usable
                notify(*args, **kwargs)
        except Exception:
            log.exception("webhook event not recorded (%s)", notify.__name__)

    return wrapper


@_never_raises
def run_finished(run: TestRun) -> None:
    """The last step of ``complete_run``: ``signature.new`` for the signatures a counted run saw first,
    then ``run.finished``."""
    if not Webhook.objects.filter(active=True).exists():
        return
    run = TestRun.objects.select_related("session", "cycle").get(pk=run.pk)
    if run.counted:
        new = (
            FailureSignature.objects.filter(first_seen_run=run, internal=False, merged_into__isnull=True)
            .select_related("environment")
            .order_by("-result_count", "pk")[:NEW_SIGNATURES_PER_RUN]
        )
        for signature in new:
            emit("signature.new", signature_data(signature, run), session_id=run.session_id)
    emit("run.finished", run_data(run), session_id=run.session_id)


@_never_raises
def signature_regressed(signature_id: int, run: TestRun) -> None:
    if not Webhook.objects.filter(active=True).exists():
        return
    signature = FailureSignature.objects.select_related("environment").get(pk=signature_id)
    emit("signature.regressed", signature_data(signature, run), session_id=run.session_id)


@_never_raises
def fix_judged(fix: Fix, run: TestRun, signature_id: int, verified: bool) -> None:
    if not Webhook.objects.filter(active=True).exists():
        return
    signature = FailureSignature.objects.select_related("environment").get(pk=signature_id)
    data = {
        **signature_data(signature, run),
        "fix": fix.pk,
        "sha": fix.sha,
        "message": fix.message,
        "verdict": "verified" if verified else "did_not_fix",
    }
    emit("fix.verified" if verified else "fix.did_not_fix", data, session_id=run.session_id)


@_never_raises
def deployment_finished(deployment: Deployment) -> None:
    if not Webhook.objects.filter(active=True).exists():
        return
    deployment = Deployment.objects.select_related("environment", "cycle", "cycle__session").get(pk=deployment.pk)
    session = deployment.cycle.session if deployment.cycle_id else None
    data = {
        "deployment": deployment.pk,
        "environment": deployment.environment.name,
        "session": session.slug if session else None,
        "cycle": deployment.cycle.number if deployment.cycle_id else None,
        "revision": deployment.revision,
        "commit": deployment.commit_sha,
        "status": deployment.status,
        "exit_code": deployment.exit_code,
        "url": absolute(reverse("deployment_detail", args=[deployment.pk])),
    }
    emit("deployment.finished", data, session_id=session.pk if session else None)
