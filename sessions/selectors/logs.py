"""What the "Whole log" link serves: the parts of a run's or a deployment's log, and where each one is.

A log is on the worker's disk while the work runs (``log_path``, under that worker's ``MEDIA_ROOT``),
and in the database once it ended (``StoredLog``, stored by the worker: ``work/stored_logs.py``). The
web serves the file when it is on its own disk (``make run``: one machine), else the stored copy, else
says why there is none. A sharded run's whole log is its planning worker's log followed by each
shard's, every shard under a header line (index, attempt, worker, status).

This module reads rows only; the view (``views_logs.py``) looks at the disk and streams.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from ..models import LIVE_STATUSES, Deployment, RunShard, StoredLog, TestRun, WorkStatus

DECOMPRESS_IN = 64 * 1024
DECOMPRESS_OUT = 1 << 20
GZIP_WBITS = 31


@dataclass(slots=True)
class LogPart:
    """One part of a whole log: a local file, a stored copy, or a note saying why neither is there."""

    header: str = ""
    path: str = ""  # the worker's file, served when it is on this machine
    stored_id: int | None = None
    stored_size: int | None = None  # the worker's file size when it stored it: a local file of another size is stale
    note: str = ""  # shown in place of the content when neither is available


@dataclass(slots=True)
class WholeLog:
    """A run's or a deployment's whole log: its parts, its file name, why it is missing if it is."""

    filename: str
    parts: list[LogPart] = field(default_factory=list)
    missing: str = ""  # the 404's text when no part has any content
    sharded: bool = False


def _stored_meta() -> QuerySet[StoredLog]:
    """Stored logs without their bytes (read one at a time by ``stored_text`` as the response streams)."""
    return StoredLog.objects.defer("data").order_by("attempt", "pk")


def _why_missing(kind: str, pk: int, *, status: str, started: bool, pruned_on: str = "") -> str:
    """Why there is no whole log to serve, in one sentence a person can act on."""
    if status == WorkStatus.QUEUED:
        return f"{kind} {pk} is waiting for a worker: there is no log yet."
    if status in LIVE_STATUSES:
        return (
            f"{kind} {pk} is running on another machine: the log stays on the worker's disk until the {kind} "
            f"ends, then it is stored and served here. Its page shows the last lines meanwhile."
        )
    if pruned_on:
        return f"No log was kept: the detail of {kind} {pk} was pruned on {pruned_on} (docs/RETENTION.md)."
    if status == WorkStatus.LOST:
        return (
            f"No log was kept: {kind} {pk} was lost (its worker stopped answering, so nothing could store its "
            "log). Its page shows the last lines it sent."
        )
    if not started:
        return f"No log was kept: {kind} {pk} never started on a worker. Its page says why."
    return f"No log was kept for {kind} {pk} (the worker could not store it). Its page shows the last lines."


def run_whole_log(pk: int) -> WholeLog:
    """A run's whole log: its own file or stored copy; for a sharded run, the planning log then each shard's."""
    run = get_object_or_404(TestRun.objects.only("id", "status", "log_path", "started_at", "detail_pruned_at"), pk=pk)
    pruned_on = run.detail_pruned_at.date().isoformat() if run.detail_pruned_at else ""
    stored = list(_stored_meta().filter(run_id=run.pk))
    own = next((s for s in stored if s.shard_id is None), None)
    whole = WholeLog(filename=f"run-{run.pk}.log")
    whole.missing = _why_missing("run", run.pk, status=run.status, started=bool(run.started_at), pruned_on=pruned_on)
    if not run.log_path and not stored and run.status not in LIVE_STATUSES and not pruned_on:
        whole.missing = (  # results that came as a file, from the CLI or from a CI job: no worker, no log
            f"Run {run.pk} was not run by a worker: its results were uploaded (a file, the CLI or a CI job), "
            "which sends no log. Its page shows every result."
        )
    shards = list(
        RunShard.objects.filter(run_id=run.pk)
        .order_by("index")
        .only("id", "index", "status", "attempt", "worker", "lost_worker", "log_tail")
    )
    if not shards:
        whole.parts.append(
            LogPart(path=run.log_path, stored_id=own.pk if own else None, stored_size=own.size if own else None)
        )
        return whole
    whole.sharded = True
    planner = f" (worker {own.worker})" if own and own.worker else ""
    whole.parts.append(
        LogPart(
            header=f"===== run {run.pk}: planning{planner} =====",
            path=run.log_path,
            stored_id=own.pk if own else None,
            stored_size=own.size if own else None,
            note="[loopdash] the planning worker's log was not kept",
        )
    )
    by_shard: dict[int, list[StoredLog]] = {}
    for item in stored:
        if item.shard_id is not None:
            by_shard.setdefault(item.shard_id, []).append(item)
    for shard in shards:
        whole.parts.extend(_shard_parts(shard, len(shards), by_shard.get(shard.pk, [])))
    return whole


def shard_log_path(shard_id: int) -> str:
    """Where a shard's worker writes its log, relative to that worker's MEDIA_ROOT (``runners.work_dir``)."""
    return f"shards/{shard_id}/output.log"


def _shard_parts(shard: RunShard, count: int, stored: list[StoredLog]) -> list[LogPart]:
    """A shard's stored attempts, then its current attempt (its file here, its stored copy, or a note)."""
    parts = []
    for item in stored:
        if item.attempt == shard.attempt:
            continue
        who = item.worker or shard.lost_worker or "?"
        parts.append(
            LogPart(
                header=f"===== shard {shard.index} of {count} (attempt {item.attempt}, worker {who}): retried =====",
                stored_id=item.pk,
                stored_size=item.size,
            )
        )
    current = next((s for s in stored if s.attempt == shard.attempt), None)
    worker = shard.worker or (current.worker if current else "") or "none yet"
    header = f"===== shard {shard.index} of {count} (attempt {shard.attempt}, worker {worker}): {shard.status} ====="
    last = "\n".join(shard.log_tail.splitlines()[-20:])
    if shard.status == WorkStatus.QUEUED:
        note = "[loopdash] not started yet"
    elif shard.status in LIVE_STATUSES:
        note = "[loopdash] running: the log stays on the worker's disk until the shard ends; its last lines:\n" + last
    elif shard.status == WorkStatus.LOST:
        note = "[loopdash] lost with its worker: no log was kept; the last lines it sent:\n" + last
    else:
        note = "[loopdash] no log was kept" + (f"; its last lines:\n{last}" if last else "")
    parts.append(
        LogPart(
            header=header,
            path=shard_log_path(shard.pk),
            stored_id=current.pk if current else None,
            stored_size=current.size if current else None,
            note=note,
        )
    )
    return parts


def deployment_whole_log(deployment: Deployment) -> WholeLog:
    """A deployment's whole log: its file on this machine, else its stored copy."""
    own = _stored_meta().filter(deployment_id=deployment.pk).first()
    whole = WholeLog(filename=f"deployment-{deployment.pk}.log")
    pruned_on = deployment.detail_pruned_at.date().isoformat() if deployment.detail_pruned_at else ""
    whole.missing = _why_missing(
        "deployment", deployment.pk, status=deployment.status, started=bool(deployment.started_at), pruned_on=pruned_on
    )
    whole.parts.append(
        LogPart(path=deployment.log_path, stored_id=own.pk if own else None, stored_size=own.size if own else None)
    )
    return whole


def stored_text(stored_id: int) -> Iterator[bytes]:
    """A stored log, decompressed piece by piece (its text is never held whole in memory)."""
    data = StoredLog.objects.filter(pk=stored_id).values_list("data", flat=True).first()
    if data is None:
        return
    view = memoryview(bytes(data))
    unpacker = zlib.decompressobj(GZIP_WBITS)
    for start in range(0, len(view), DECOMPRESS_IN):
        pending = view[start : start + DECOMPRESS_IN]
        while pending:
            out = unpacker.decompress(pending, DECOMPRESS_OUT)
            if out:
                yield out
            pending = unpacker.unconsumed_tail
    rest = unpacker.flush()
    if rest:
        yield rest
