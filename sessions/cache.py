"""Caching helpers for pages: versioned keys, so that nothing ever has to be invalidated.

A key carries a *version* read from the database in one cheap query: when anything the cached value
depends on changes, the version changes, the old entry is simply never asked for again and expires.
Whatever the cache backend (``CACHES``: Django's default per-process memory cache, or Redis), a stale
value cannot be served, and a cache that is down or empty only costs the time of building the value.

The session page's trend chart is the main case: with 500 cycles it reads every run of the
session and builds a 500-point plotly figure on every request (about 50 ms of the page's 180 ms at
1,000,000 results; docs/PERFORMANCE.md, Pages and load). Its version is the session's goal plus an
aggregate of its runs that changes when a run is added, finishes, is deleted, or changes scope.
(Comparisons of two ended runs are not cached here: they are stored, ``services/comparisons.py``.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.core.cache import cache
from django.db.models import Count, Max, Q

from .models import LoopSession, TestRun

PREFIX = "loopdash:v1:"
DEFAULT_TIMEOUT_S = 6 * 3600


def make_key(*parts: object) -> str:
    """A cache key from any parts: hashed, so that it is short and safe for every backend."""
    text = "\x1f".join(str(p) for p in parts)
    return PREFIX + hashlib.sha1(text.encode("utf-8")).hexdigest()


def cached[T](key: str, build: Callable[[], T], timeout: int = DEFAULT_TIMEOUT_S) -> T:
    """The cached value of ``key``, else ``build()`` stored under it. A failing cache is only a miss."""
    try:
        found = cache.get(key)
    except Exception:
        found = None
    if found is not None:
        return found
    value = build()
    try:
        cache.set(key, value, timeout)
    except Exception:
        pass
    return value


def session_runs_version(session: LoopSession) -> str:
    """Changes whenever the session's runs change in a way the trend chart can show; one indexed query."""
    row = TestRun.objects.filter(session_id=session.pk).aggregate(
        n=Count("id"),
        last=Max("id"),
        finished=Max("finished_at"),
        full=Count("id", filter=Q(scope=TestRun.Scope.ALL, incomplete=False, summary_written=True)),
        counted=Count("id", filter=Q(counted=True)),
        excluded=Max("excluded_at"),
    )
    finished = row["finished"].timestamp() if row["finished"] else 0
    excluded = row["excluded"].timestamp() if row["excluded"] else 0
    return (
        f"{row['n']}.{row['last']}.{finished}.{row['full']}.{row['counted']}.{excluded}."
        f"{session.latest_run_id}.{session.cycle_count}"
    )


def forget(key: str) -> None:
    """Drop a cached value that was found out of date (a failing cache: nothing to drop)."""
    try:
        cache.delete(key)
    except Exception:
        pass


def session_trend[T](session: LoopSession, build: Callable[[], T], *parts: object, version: str | None = None) -> T:
    """The session's trend chart (or anything built from all its cycles), rebuilt only when its runs change.

    ``parts`` adds whatever else the value depends on (the chart's priority, say); the session's goal
    is always part of the key.
    """
    version = version or session_runs_version(session)  # the caller's, when it reads it for other values too
    key = make_key("trend", session.pk, session.goal_pass_rate, session.goal_priority, version, *parts)
    return cached(key, build)
