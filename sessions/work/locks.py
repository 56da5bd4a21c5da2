"""One deploy at a time per environment: a lock kept in the database, so no crashed worker holds it forever.

The lock is not a separate object: it *is* the live Deployment row of the environment. A deployment
holds it while its status is ``running`` and its heartbeat is fresher than the lost-worker bound; a
worker that dies stops beating, and after the bound the row no longer counts (the reaper then marks
it ``lost``). Deciding "is anyone deploying?" and acting on the answer happens while holding the
environment's row lock (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``, which
settings turn on, serialises every writing transaction), so two checks cannot both see "free".

Works the same on PostgreSQL and SQLite, with Redis or the filesystem broker: the broker plays no part.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Deployment, Environment, WorkStatus

DEFAULT_LOST_AFTER_S = 60


def lost_after_s() -> int:
    """How long a heartbeat may be silent before its worker counts as gone (LOOPDASH_LOST_AFTER_S, 60 s).

    Workers beat about once a second; 60 s rides out a long database write or a paused VM without
    calling a live run lost, and bounds how long a crashed worker blocks its environment's deploys.
    """
    value = getattr(settings, "LOOPDASH_LOST_AFTER_S", None) or os.environ.get("LOOPDASH_LOST_AFTER_S")
    try:
        return max(1, int(value)) if value else DEFAULT_LOST_AFTER_S
    except ValueError:
        return DEFAULT_LOST_AFTER_S


DEFAULT_QUEUED_MAX_S = 3600


def queued_max_s() -> int:
    """How long work may wait ``queued`` for a worker before it is ended (LOOPDASH_QUEUED_MAX_S, 1 h).

    Long enough for work to wait behind busy workers; a row whose task message was lost (a broker
    wiped without persistence) must not hold its environment's deploy lock for ever.
    """
    value = getattr(settings, "LOOPDASH_QUEUED_MAX_S", None)
    try:
        return max(1, int(value)) if value else DEFAULT_QUEUED_MAX_S
    except (TypeError, ValueError):
        return DEFAULT_QUEUED_MAX_S


def queued_before(now: datetime | None = None, bound_s: float | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=queued_max_s() if bound_s is None else bound_s)


def stale_before(now: datetime | None = None, bound_s: float | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=lost_after_s() if bound_s is None else bound_s)


@contextmanager
def environment_locked(environment_id: int) -> Iterator[Environment]:
    """A transaction holding the environment's row lock: deploy decisions of one environment queue here."""
    with transaction.atomic():
        yield Environment.objects.select_for_update().get(pk=environment_id)


def holder(environment_id: int, *, exclude: int | None = None, include_queued: bool = False) -> Deployment | None:
    """The deployment that holds the environment's deploy lock, if any (call inside environment_locked).

    ``include_queued`` also counts a deployment waiting for a worker: a request made while one is
    queued is refused rather than queued behind it.
    """
    fresh = Q(status=WorkStatus.RUNNING) & (
        Q(heartbeat_at__gte=stale_before()) | Q(heartbeat_at__isnull=True, started_at__gte=stale_before())
    )
    if include_queued:
        fresh |= Q(status=WorkStatus.QUEUED, created_at__gte=queued_before())
    live = Deployment.objects.filter(fresh, environment_id=environment_id)
    if exclude is not None:
        live = live.exclude(pk=exclude)
    return live.order_by("created_at", "pk").first()
