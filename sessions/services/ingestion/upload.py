"""Uploads: one results file becomes one run, atomically, in the session (and environment) it names.

``ingest_file`` is what the API, ``manage.py ingest``, the demo and the history generator call. It
refuses a file before storing anything (empty, too large, not a results file: ``IngestError``) and
an upload aimed at the wrong place (``UploadRefused``); the same bytes uploaded again to the same
session return the run they made the first time (a SHA-256 of the content). Where an upload may go
is in docs/INGESTION.md, "Sessions and environments".
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ...ingest import parse
from ...ingest.records import IngestError, RunInfo
from ...models import Environment, LoopSession, TestRun, WorkStatus
from ..run_completion import complete_run
from ..signatures import acting_user
from .cycles import resolve_cycle
from .writer import ResultWriter

ENVIRONMENT_NAME_MAX = 64  # Environment.name
SESSION_SLUG_MAX = 100  # LoopSession.slug
_SLUG_RE = re.compile(r"[-a-zA-Z0-9_]+")  # Django's validate_slug, as the admin checks names


class UploadRefused(ValueError):
    """An upload aimed at the wrong place: an invalid or unknown environment, a session of another one.

    Environments are admin configuration (their commands are what workers run), so an upload may
    only name one that exists. ``field`` names the offending input and ``status`` is the HTTP status
    the API answers with; nothing is stored.
    """

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        self.field = field
        self.status = status
        super().__init__(message)


@dataclass(slots=True)
class IngestOutcome:
    """What ``ingest_file`` did: the run, and whether this call made it."""

    run: TestRun
    created: bool  # False when the same file had been ingested before
    environment_created: Environment | None = None  # the environment this upload created, if any


def _shown(value: str) -> str:
    """A user's value quoted in an error message, cut so that a huge one does not flood it."""
    return repr(value if len(value) <= 80 else value[:80] + "…")


def check_slug(field: str, value: str, max_length: int) -> str:
    """Refuse a name that could not be stored or linked to: the admin's own rule for slugs."""
    if not _SLUG_RE.fullmatch(value):
        raise UploadRefused(
            field, f"{field} must be a slug (ASCII letters, digits, '-' and '_' only), got {_shown(value)}"
        )
    if len(value) > max_length:
        raise UploadRefused(field, f"{field} must be at most {max_length} characters, got {len(value)}")
    return value


def check_environment_name(name: str) -> str:
    """An environment name as the admin would accept it; ``UploadRefused`` (field ``environment``) if not."""
    return check_slug("environment", name, ENVIRONMENT_NAME_MAX)


def resolve_session(
    slug: str, environment_name: str | None = None, *, create_environment: bool = False
) -> tuple[LoopSession, Environment | None]:
    """The session an upload goes to, created when new; also the environment created for it, if any.

    - An existing session keeps its environment: naming another one is refused (409), because a
      session's runs, test cases and signatures all live in that one environment.
    - A new session goes into the environment named, which must exist unless ``create_environment``
      (``manage.py ingest``, run by someone with a shell on the server; never the API): then an
      unknown name is created *without commands*.
    - A new session with no environment named gets an environment of its own, named after it and
      without commands — never a shared or admin-made one, whose commands the uploader did not choose
      (docs/INGESTION.md, "Sessions and environments").
    """
    if environment_name is not None:
        check_environment_name(environment_name)
    session = LoopSession.objects.select_related("environment").filter(slug=slug).first()
    if session is not None:
        current = session.environment.name
        if environment_name is not None and environment_name != current:
            raise UploadRefused(
                "environment",
                f"session {slug!r} belongs to environment {current!r}, not {environment_name!r}: a session's "
                "runs stay in its environment; leave environment out, or upload to another session",
                status=409,
            )
        return session, None
    check_slug("session", slug, SESSION_SLUG_MAX)
    created: Environment | None = None
    if environment_name is not None:
        environment = Environment.objects.filter(name=environment_name).first()
        if environment is None:
            if not create_environment:
                raise UploadRefused(
                    "environment",
                    f"no environment {environment_name!r}: environments are created by admins; name an existing "
                    "one, or leave environment out and the new session gets its own environment without commands",
                )
            environment = created = Environment.objects.create(
                name=environment_name, description=f"Created by manage.py ingest for session {slug!r}; no commands."
            )
    else:
        environment = created = Environment.objects.create(
            name=_free_environment_name(slug),
            description=f"Created for the uploads of session {slug!r}; no commands until an admin sets them.",
        )
    session = LoopSession.objects.create(environment=environment, slug=slug, title=slug.replace("-", " ").title())
    return session, created


def _free_environment_name(slug: str) -> str:
    """The session's slug as an environment name, or with -2, -3... when an environment has that name."""
    name = slug[:ENVIRONMENT_NAME_MAX]
    number = 1
    while Environment.objects.filter(name=name).exists():
        number += 1
        suffix = f"-{number}"
        name = slug[: ENVIRONMENT_NAME_MAX - len(suffix)] + suffix
    return name


def file_sha256(fileobj: BinaryIO) -> str:
    """The SHA-256 of a file's content, read in 1 MiB chunks: how an upload sent twice is recognised."""
    digest = hashlib.sha256()
    fileobj.seek(0)
    for chunk in iter(lambda: fileobj.read(1024 * 1024), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def ingest_file(
    fileobj: BinaryIO,
    source: str,
    *,
    session_slug: str,
    cycle_number: int | None = None,
    environment_name: str | None = None,
    user: object | None = None,
    origin: str = TestRun.Source.CLI,
    max_bytes: int | None = None,
    create_environment: bool = False,
) -> IngestOutcome:
    """Parse and store one results file as one run, atomically.

    Raises IngestError (naming the file and the problem) and stores nothing
    when the file is refused, and UploadRefused when the session or environment
    may not receive it (``resolve_session``: only a caller on the server passes
    ``create_environment``). The same bytes ingested again into the same
    session return the existing run.
    """
    max_bytes = max_bytes or settings.INGEST_MAX_BYTES
    size = _size_of(fileobj)
    if size == 0:
        raise IngestError(source, "the file is empty")
    if size is not None and size > max_bytes:
        raise IngestError(source, f"file is larger than the limit of {max_bytes // (1024 * 1024)} MB")
    content_hash = file_sha256(fileobj)
    arguments = (
        fileobj, source, session_slug, cycle_number, environment_name, user, origin, max_bytes, content_hash,
        create_environment,
    )  # fmt: skip
    try:
        return _ingest_once(*arguments)
    except IntegrityError:
        # Another upload or run created one of this file's new test cases (or the same run) at the
        # same moment: everything of this attempt was rolled back, and a second one finds the rows.
        fileobj.seek(0)
        return _ingest_once(*arguments)


def _ingest_once(
    fileobj: BinaryIO,
    source: str,
    session_slug: str,
    cycle_number: int | None,
    environment_name: str | None,
    user: object | None,
    origin: str,
    max_bytes: int,
    content_hash: str,
    create_environment: bool,
) -> IngestOutcome:
    with transaction.atomic():
        session, environment_created = resolve_session(
            session_slug, environment_name, create_environment=create_environment
        )
        existing = TestRun.objects.filter(session=session, content_hash=content_hash).first()
        if existing is not None:
            return IngestOutcome(run=existing, created=False)
        cycle = resolve_cycle(session, cycle_number)
        now = timezone.now()
        run = TestRun.objects.create(
            session=session,
            cycle=cycle,
            environment=session.environment,
            label=os.path.basename(source)[:200],
            status=WorkStatus.RUNNING,
            source=origin,
            content_hash=content_hash,
            triggered_by=acting_user(user),
            started_at=now,
        )
        parsed = parse(fileobj, source, max_bytes=max_bytes)
        writer = ResultWriter(run, sole=True)  # the run is new and completes in this transaction
        writer.add(parsed.results)
        info: RunInfo = parsed.info
        run.format = info.format
        complete_run(run, writer=writer, info=info, status=WorkStatus.FINISHED)
    return IngestOutcome(run=run, created=True, environment_created=environment_created)


def _size_of(fileobj: BinaryIO) -> int | None:
    """The file's size without reading it, or None when it cannot seek (then the parser enforces the limit)."""
    try:
        here = fileobj.tell()
        fileobj.seek(0, os.SEEK_END)
        size = fileobj.tell()
        fileobj.seek(here)
        return size
    except (OSError, AttributeError, ValueError):
        return None
