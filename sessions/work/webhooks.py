"""Webhooks, the worker side: POST one delivery, signed, and say whether and when to try again.

Each attempt POSTs the delivery's stored body byte for byte with ``Content-Type: application/json`` and
``X-Loopdash-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`` (plus
``X-Loopdash-Event`` and ``X-Loopdash-Delivery``), with a short timeout (``LOOPDASH_WEBHOOK_TIMEOUT_S``)
and without following redirects. A 2xx answer delivers it. Anything else (a 3xx, 4xx or 5xx, a timeout, a
refused connection) is recorded on the row (attempts, response code, last error) and retried after
``LOOPDASH_WEBHOOK_BACKOFF_S`` × 2^(attempt-1) seconds, up to ``LOOPDASH_WEBHOOK_MAX_ATTEMPTS``
attempts; then the delivery is *failed*. The task (``tasks.deliver_webhook``) does the waiting through
Celery's countdown, so no worker process sleeps.

A delivery whose task never reached the broker (refused when the event was recorded, or when a retry
was sent) would stay *pending* for ever: ``stranded`` finds those whose next attempt is overdue by
``STRANDED_AFTER_S``, and beat's ``tasks.resend_webhooks`` sends them again.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from ..models import WebhookDelivery

USER_AGENT = "loopdash-webhooks/1"
# A pending delivery whose next attempt is this late has no task on the way: it is sent again.
STRANDED_AFTER_S = 60.0
STRANDED_BATCH = 500


def signature_header(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of the exact body with the webhook's secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook URL answers itself: a redirect is a failed attempt, not a hop to somewhere else."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """The HTTP status of one POST; raises OSError (URLError, timeouts) when no answer came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(1024)
            return response.status
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx: an answer, not a delivery
        return exc.code


def backoff_s(attempts: int) -> float:
    """The wait before the next attempt, after ``attempts`` failed ones: base × 2^(attempts-1)."""
    return float(settings.LOOPDASH_WEBHOOK_BACKOFF_S) * (2 ** max(0, attempts - 1))


def attempt(delivery_id: int) -> float | None:
    """Make one attempt; the seconds to wait before the next one, or None when there is none to make."""
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return None  # deleted, or done by an earlier (redelivered) message
    hook = delivery.webhook
    body = delivery.payload.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Loopdash-Event": delivery.event,
        "X-Loopdash-Delivery": str(delivery.pk),
        "X-Loopdash-Signature": signature_header(hook.secret, body),
    }
    code, problem, permanent = None, "", True
    if urlsplit(hook.url).scheme.lower() not in ("http", "https"):
        problem = "refused: only http:// and https:// URLs are called"
    elif not hook.active:
        problem = "webhook deactivated"
    else:
        permanent = False
        try:
            code = _post(hook.url, body, headers, float(settings.LOOPDASH_WEBHOOK_TIMEOUT_S))
            if not 200 <= code < 300:
                problem = f"HTTP {code}"
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, a bad URL
            problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    now = timezone.now()
    attempts = delivery.attempts + 1
    final = not problem or permanent or attempts >= settings.LOOPDASH_WEBHOOK_MAX_ATTEMPTS
    if not problem:
        status = WebhookDelivery.Status.DELIVERED
    else:
        status = WebhookDelivery.Status.FAILED if final else WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
        attempts=F("attempts") + 1,
        status=status,
        response_code=code,
        last_error=problem[:1000],
        last_attempt_at=now,
        delivered_at=now if not problem else None,
    )
    return None if final else backoff_s(attempts)


def stranded(now: datetime | None = None, limit: int = STRANDED_BATCH) -> list[int]:
    """Pending deliveries whose next attempt is overdue by ``STRANDED_AFTER_S``: no task is on its way.

    Due at creation for a delivery never attempted, else ``backoff_s`` after its last attempt. A queue
    so backed up that a task waits longer than that may get a second message: the first attempt to
    end wins (the update is a compare-and-set on ``pending``), and a repeated POST carries the same
    ``X-Loopdash-Delivery`` (delivery is at least once).
    """
    now = now or timezone.now()
    late = timedelta(seconds=STRANDED_AFTER_S)
    candidates = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, created_at__lt=now - late)
        .order_by("created_at", "id")
        .values_list("pk", "attempts", "created_at", "last_attempt_at")[:limit]
    )
    found = []
    for pk, attempts, created_at, last_attempt_at in candidates:
        due = created_at if not attempts else (last_attempt_at or created_at) + timedelta(seconds=backoff_s(attempts))
        if now - due > late:
            found.append(pk)
    return found
