"""The "Whole log" of a run or a deployment, wherever the worker that wrote it ran.

The worker's file when it is on this machine (a live run on ``make run``), else the copy the worker
stored in the database when the work ended (``StoredLog``, gzip, decompressed as it streams), else
a plain-text 404 saying why there is none ("the log stays on the worker's disk until the run ends",
"no log was kept"). A sharded run's whole log is the planning log followed by each shard's log under
a header line per shard. Only files under ``MEDIA_ROOT`` are ever read from the disk.

Anyone logged in may read logs (LoginRequiredMiddleware sends anonymous users to the login page).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from .models import Deployment
from .selectors.logs import WholeLog, deployment_whole_log, run_whole_log, stored_text
from .services.media import local_file

TEXT = "text/plain; charset=utf-8"
CHUNK = 256 * 1024


def _file_chunks(file: Path) -> Iterator[bytes]:
    with open(file, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _parts(whole: WholeLog, sources: list[tuple[str, Path | None, int | None, str]]) -> Iterator[bytes]:
    for header, file, stored_id, note in sources:
        if header:
            yield f"{header}\n".encode()
        ended_with_newline = True
        if file is not None:
            chunks: Iterator[bytes] = _file_chunks(file)
        elif stored_id is not None:
            chunks = stored_text(stored_id)
        else:
            chunks = iter([f"{note}\n".encode()] if note else [])
        for chunk in chunks:
            ended_with_newline = chunk.endswith(b"\n")
            yield chunk
        if whole.sharded and not ended_with_newline:
            yield b"\n"


def serve_whole_log(whole: WholeLog) -> HttpResponse:
    """The whole log as plain text (a file, a stored copy, or both joined); a 404 saying why when none."""
    sources = []
    found = False
    for part in whole.parts:
        file = local_file(part.path)
        if file is not None and part.stored_id is not None and file.stat().st_size != part.stored_size:
            file = None  # not the file that was stored: left by an earlier row of the same id (a reset database)
        stored_id = None if file is not None else part.stored_id
        found = found or file is not None or stored_id is not None
        sources.append((part.header, file, stored_id, part.note))
    if not found:
        return HttpResponse(whole.missing + "\n", status=404, content_type=TEXT)
    disposition = f'inline; filename="{whole.filename}"'
    if not whole.sharded and sources[0][1] is not None:
        response: HttpResponse = FileResponse(open(sources[0][1], "rb"), content_type=TEXT)
    else:
        response = StreamingHttpResponse(_parts(whole, sources), content_type=TEXT)
    response["Content-Disposition"] = disposition
    return response


@require_GET
def run_log(request: HttpRequest, pk: int) -> HttpResponse:
    """``/runs/<id>/log/``: the run's whole log (a sharded run's: planning, then every shard)."""
    return serve_whole_log(run_whole_log(pk))


def deployment_log_file(deployment: Deployment) -> HttpResponse:
    """``/deployments/<id>/log/`` without htmx (``views_operate.deployment_log``): the deployment's whole log."""
    return serve_whole_log(deployment_whole_log(deployment))
