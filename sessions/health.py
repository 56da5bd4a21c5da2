"""GET /healthz: is the database answering, and can the Celery broker be reached?

Load balancers and docker-compose poll it without a session, so it is exempt
from login and never cached. It answers which part failed and the exception's
class, never its message: the message of a broker error can carry the URL.
"""

from __future__ import annotations

import logging
import os

import kombu
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from loopdash.celery import app as celery_app

from .work.reaper import reap_if_due

log = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 2.0
PING_TIMEOUT_S = 1.0


def check_database(alias: str = "default") -> None:
    """Run a trivial query; raise when the database does not answer."""
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # A broken persistent connection would fail every later request too: drop it.
        connection.close()
        raise


def check_broker() -> None:
    """Open a connection to the broker once, with a short timeout; raise when it cannot be reached.

    Build the connection from the current settings rather than the Celery app:
    Celery reads its configuration once, so a changed ``CELERY_BROKER_URL``
    (tests, a reloaded config) would otherwise go unnoticed. The filesystem
    transport "connects" to anything, so check that its folder is writable too.
    """
    url = settings.CELERY_BROKER_URL
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {})
    if url.startswith("filesystem://"):
        folder = options.get("data_folder_in")
        if folder and not os.access(folder, os.W_OK):
            raise OSError(f"broker folder {folder} is not writable")
    with kombu.Connection(url, transport_options=options, connect_timeout=BROKER_TIMEOUT_S) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=BROKER_TIMEOUT_S
        )


def count_workers(timeout_s: float = PING_TIMEOUT_S) -> int:
    """How many Celery workers answer a broadcast ping within ``timeout_s`` (0 is an answer, not an error).

    Needs the broker's broadcast support: Redis's pub/sub, or the filesystem transport's
    ``control_folder`` (set in settings).
    """
    with celery_app.connection_for_write() as conn:
        replies = celery_app.control.ping(timeout=timeout_s, connection=conn) or []
    return len(replies)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, else 503; also how many workers answer a ping.

    Probes poll this every few seconds, so it also drives the web side's share of the reaper: lost
    work is noticed even when beat died with the worker it was embedded in.
    """
    body: dict[str, object] = {}
    failures: dict[str, str] = {}
    for name, check in (("database", check_database), ("broker", check_broker)):
        try:
            check()
        except Exception as exc:  # any failure of the outside world is a 503, not a 500
            log.warning("healthz: %s check failed", name, exc_info=True)
            body[name] = "error"
            failures[name] = type(exc).__name__
        else:
            body[name] = "ok"
    body["workers"] = 0
    if "broker" not in failures:
        try:
            body["workers"] = count_workers()
        except Exception:
            log.warning("healthz: worker ping failed", exc_info=True)
    if "database" not in failures:
        reap_if_due()
    if failures:
        body["errors"] = failures
    return JsonResponse(body, status=503 if failures else 200)
