"""The worker keeps a copy of each whole log in the database when the work ends.

Workers share no disk with the web (docker-compose, workers on other machines): the ``output.log`` a
run, a shard or a deployment writes under the worker's ``MEDIA_ROOT`` is out of the web's reach. So
at every end the worker has a say in (finished, failed, error, timed out, cancelled: the ``finalize``
of ``run_execution`` and ``shard_execution``, ``deploy._finish_deployment``, a sharded run's planning
in ``shard_planning``) it stores the file as a ``StoredLog`` row, gzip-compressed, read and compressed
chunk by chunk. A log longer than ``LOOPDASH_STORED_LOG_MAX_BYTES`` keeps its first and last halves
(cut at line ends) with a line in between saying how much was left out: the start says what ran, the
end how it ended, and a runaway log cannot fill the database.

Storing never fails the work: any error is logged and the row keeps its ``log_tail``. Work that the
reaper declares lost has no worker left to store anything; its page says so (``selectors.logs``).
"""

from __future__ import annotations

import logging
import socket
import zlib
from pathlib import Path

from celery import current_task
from django.conf import settings
from django.db import transaction

from ..models import StoredLog

log = logging.getLogger(__name__)

CHUNK = 1 << 20
GZIP_WBITS = 31  # zlib's gzip container: the stored bytes are a plain .gz file
LEVEL = 6


def max_bytes() -> int:
    return int(getattr(settings, "LOOPDASH_STORED_LOG_MAX_BYTES", 20 * 1024 * 1024))


def cut_note(size: int, cut: int, limit: int) -> bytes:
    """The line that stands for the middle of a log too long to keep whole."""
    return (
        f"\n[loopdash] {cut:,} bytes cut from the middle of this {size:,}-byte log: the stored copy keeps its "
        f"first and last {limit // 2:,} bytes or so (LOOPDASH_STORED_LOG_MAX_BYTES={limit})\n"
    ).encode()


def compress_log(path: Path, limit: int) -> tuple[bytes, int, int]:
    """The file as gzip, bounded by ``limit`` bytes of text; returns (gzip bytes, file size, bytes cut).

    Reads at most ``limit`` bytes however large the file is. The head ends at a line end and the tail
    starts after one (when the halves hold any), so no line is shown half.
    """
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WBITS)
    parts: list[bytes] = []
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        if size <= limit:
            left = size
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                parts.append(packer.compress(chunk))
            parts.append(packer.flush())
            return b"".join(parts), size, 0
        half = limit // 2
        head = handle.read(half)
        end = head.rfind(b"\n")
        if end >= 0:
            head = head[: end + 1]
        handle.seek(size - half)
        tail = handle.read(half)
        start = tail.find(b"\n")
        if 0 <= start < len(tail) - 1:
            tail = tail[start + 1 :]
    cut = size - len(head) - len(tail)
    parts.append(packer.compress(head))
    parts.append(packer.compress(cut_note(size, cut, limit)))
    parts.append(packer.compress(tail))
    parts.append(packer.flush())
    return b"".join(parts), size, cut


def store_log(
    path: Path | str | None,
    *,
    run_id: int | None = None,
    shard_id: int | None = None,
    attempt: int = 1,
    deployment_id: int | None = None,
    worker: str = "",
) -> StoredLog | None:
    """Store the log at ``path`` for its owner (replacing an earlier copy); None when nothing was stored.

    Never raises: the work's end must not depend on it. Inside a caller's transaction it runs in a
    savepoint of its own, so a failed write leaves the caller's transaction usable.
    """
    limit = max_bytes()
    if not path or limit <= 0:
        return None
    file = Path(path)
    try:
        if not file.is_file():
            return None
        data, size, cut = compress_log(file, limit)
        owner = {"deployment_id": deployment_id} if deployment_id else {"run_id": run_id, "shard_id": shard_id}
        with transaction.atomic():
            stored, _created = StoredLog.objects.update_or_create(
                **owner,
                attempt=attempt if shard_id else 1,
                defaults={"data": data, "size": size, "cut_bytes": cut, "worker": (worker or _host())[:255]},
            )
        return stored
    except Exception:
        what = f"deployment {deployment_id}" if deployment_id else f"run {run_id}"
        if shard_id:
            what += f" shard {shard_id}"
        log.exception("could not store the log of %s (%s): the row keeps its tail", what, file)
        return None


def _host() -> str:
    """The Celery node name of the worker running this task (as shards record theirs), else the host name."""
    task = current_task
    hostname = getattr(getattr(task, "request", None), "hostname", None) if task else None
    return str(hostname or socket.gethostname())
