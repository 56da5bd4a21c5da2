"""Store parsed results: test cases, results and signatures, in bulk, then the run's summary.

One ``ResultWriter`` serves both paths: an uploaded file (every batch inside
one transaction, so a refused file stores nothing) and a live run (a batch
committed about every second while the report-log grows).
On PostgreSQL results go in with ``COPY`` through psycopg 3; elsewhere with
``bulk_create``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..ingest import parse
from ..ingest.fingerprint import fingerprint
from ..ingest.records import IngestError, Outcome, ParsedResult, RunInfo
from ..models import (
    Cycle,
    Environment,
    FailureSignature,
    LoopSession,
    SignatureCategory,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
    identity_hash,
)
from .impact import ImpactClassifier
from .summary import finish_run

BATCH_SIZE = 10_000
_FAILING = (Outcome.FAILED, Outcome.ERROR)
_TIMED = (Outcome.PASSED, Outcome.FAILED)


def clean_text(text: str) -> str:
    """Make text storable everywhere: PostgreSQL refuses NUL and lone surrogates."""
    if not text:
        return text
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def module_of(nodeid: str, file: str) -> str:
    """The module a test lives in: its file, else the node id up to the first '::'."""
    if file:
        return file
    return nodeid.split("::", 1)[0] if "::" in nodeid else ""


class ResultWriter:
    """Write results of one run in batches; keeps the caches that make batches cheap."""

    def __init__(self, run: TestRun) -> None:
        self.run = run
        self.environment = run.environment
        self.classifier = ImpactClassifier(self.environment)
        self.case_ids: dict[str, int] = {}
        self.signature_ids: dict[str, int] = {}
        self.categories = [(c.pk, re.compile(c.pattern)) for c in SignatureCategory.objects.all()]
        self.suspect_limit = settings.SUSPECT_DURATION_S if self.environment.end_to_end else None
        self.metric_values: dict[str, list[float]] = {}
        self.count = 0
        self.use_copy = connection.vendor == "postgresql"
        self._case_sequence: str | None = None

    # -- public -------------------------------------------------------------------------------------

    def add(self, results: Iterable[ParsedResult]) -> int:
        """Store results in batches of BATCH_SIZE; return how many were stored."""
        stored = 0
        batch: list[ParsedResult] = []
        for result in results:
            batch.append(result)
            if len(batch) >= BATCH_SIZE:
                stored += self._write_batch(batch)
                batch = []
        if batch:
            stored += self._write_batch(batch)
        return stored

    def metrics(self) -> dict[str, float]:
        """The median of each numeric property the tests reported (record_property / <properties>)."""
        out: dict[str, float] = {}
        for name, values in self.metric_values.items():
            ordered = sorted(values)
            mid = len(ordered) // 2
            out[name] = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return out

    # -- batches ------------------------------------------------------------------------------------

    def _write_batch(self, batch: list[ParsedResult]) -> int:
        # A savepoint inside an upload's transaction; a transaction of its own for a live run.
        with transaction.atomic():
            return self._write_batch_now(batch)

    def _write_batch_now(self, batch: list[ParsedResult]) -> int:
        case_ids = self._resolve_cases(batch)
        signature_ids = self._resolve_signatures(batch)
        rows = []
        run_id = self.run.pk
        limit = self.suspect_limit
        for result, case_id in zip(batch, case_ids, strict=True):
            duration = result.duration
            suspect = bool(
                limit is not None and duration is not None and duration < limit and result.outcome in _TIMED
            )
            sig_id = signature_ids.get(id(result))
            props = result.properties or None
            if props:
                self._collect_metrics(props)
            rows.append(
                (
                    run_id,
                    case_id,
                    str(result.outcome),
                    duration,
                    suspect,
                    result.phase,
                    clean_text(result.message),
                    clean_text(result.details),
                    sig_id,
                    props,
                )
            )
        if self.use_copy:
            self._copy_results(rows)
        else:
            TestResult.objects.bulk_create(
                [
                    TestResult(
                        run_id=r[0], case_id=r[1], outcome=r[2], duration=r[3], suspect=r[4], phase=r[5],
                        message=r[6], details=r[7], signature_id=r[8], properties=r[9],
                    )
                    for r in rows
                ],
                batch_size=500,
            )
        self.count += len(rows)
        return len(rows)

    def _collect_metrics(self, props: dict[str, str]) -> None:
        for name, value in props.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if number == number and abs(number) != float("inf"):
                self.metric_values.setdefault(name, []).append(number)

    def _copy_results(self, rows: list[tuple]) -> None:
        table = TestResult._meta.db_table
        cols = "run_id, case_id, outcome, duration, suspect, phase, message, details, signature_id, properties"
        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            with raw.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    if row[9] is not None:
                        row = (*row[:9], json.dumps(row[9]))
                    copy.write_row(row)

    # -- test cases ---------------------------------------------------------------------------------

    def _resolve_cases(self, batch: list[ParsedResult]) -> list[int]:
        hashes: list[str] = []
        missing: dict[str, ParsedResult] = {}
        known = self.case_ids
        for result in batch:
            nodeid = clean_text(result.nodeid)
            result.nodeid = nodeid
            key = identity_hash(nodeid)
            hashes.append(key)
            if key not in known and key not in missing:
                missing[key] = result
        if missing:
            self._load_or_create_cases(missing)
        return [known[h] for h in hashes]

    def _load_or_create_cases(self, missing: dict[str, ParsedResult]) -> None:
        env_id = self.environment.pk
        now = timezone.now()
        rows = []
        for key, result in missing.items():
            cls = self.classifier.classify(result.nodeid, result.markers)
            rows.append(
                (
                    env_id,
                    result.nodeid,
                    key,
                    clean_text(result.name) or result.nodeid,
                    clean_text(result.file),
                    clean_text(module_of(result.nodeid, result.file)),
                    cls.priority,
                    cls.area_id,
                    list(result.markers),
                    now,
                )
            )
        if self.use_copy:
            self.case_ids.update(self._copy_cases(rows))
            return
        found = dict(
            TestCase.objects.filter(environment_id=env_id, nodeid_hash__in=list(missing)).values_list("nodeid_hash", "id")
        )
        fields = ("environment_id", "nodeid", "nodeid_hash", "name", "file", "module", "priority", "area_id", "markers",
                  "created_at")
        new = [TestCase(**dict(zip(fields, row, strict=True))) for row in rows if row[2] not in found]
        TestCase.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
        if new:
            found.update(
                TestCase.objects.filter(environment_id=env_id, nodeid_hash__in=[c.nodeid_hash for c in new]).values_list(
                    "nodeid_hash", "id"
                )
            )
        self.case_ids.update(found)

    def _copy_cases(self, rows: list[tuple]) -> list[tuple[str, int]]:
        """Read the ids of known cases, take ids for new ones from the sequence, COPY the new ones.

        Three round trips per batch whatever its size. Two uploads adding the
        same new test at the same moment make the later one fail its unique
        check; ``ingest_file`` then retries it once, when the case exists.
        """
        table = TestCase._meta.db_table
        cols = "id, environment_id, nodeid, nodeid_hash, name, file, module, priority, area_id, markers, created_at"
        with connection.cursor() as cursor:
            raw = cursor.cursor
            raw.execute(
                f"SELECT nodeid_hash, id FROM {table} WHERE environment_id = %s AND nodeid_hash = ANY(%s)",
                (self.environment.pk, [row[2] for row in rows]),
            )
            found = raw.fetchall()
            known = {h for h, _ in found}
            new = [row for row in rows if row[2] not in known]
            if not new:
                return found
            if self._case_sequence is None:
                raw.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
                self._case_sequence = raw.fetchone()[0]
            raw.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (self._case_sequence, len(new)))
            ids = [r[0] for r in raw.fetchall()]
            with raw.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for pk, row in zip(ids, new, strict=True):
                    markers = json.dumps(row[8]) if row[8] else "[]"
                    copy.write_row((pk, *row[:8], markers, row[9]))
                    found.append((row[2], pk))
        return found

    # -- signatures ---------------------------------------------------------------------------------

    def _resolve_signatures(self, batch: list[ParsedResult]) -> dict[int, int]:
        """Map id(result) → signature id for every failed or errored result of the batch."""
        wanted: dict[int, str] = {}
        new: dict[str, tuple[str, str, ParsedResult]] = {}
        for result in batch:
            if result.outcome not in _FAILING:
                continue
            result.error_type = clean_text(result.error_type)
            result.message = clean_text(result.message)
            fp, normalized = fingerprint(result.error_type, result.message or clean_text(result.details[:500]))
            wanted[id(result)] = fp
            if fp not in self.signature_ids and fp not in new:
                new[fp] = (normalized, result.error_type, result)
        if new:
            self._load_or_create_signatures(new)
        return {key: self.signature_ids[fp] for key, fp in wanted.items()}

    def _load_or_create_signatures(self, new: dict[str, tuple[str, str, ParsedResult]]) -> None:
        env_id = self.environment.pk
        existing = FailureSignature.objects.filter(environment_id=env_id, fingerprint__in=list(new)).values_list(
            "fingerprint", "id", "merged_into_id"
        )
        for fp, pk, merged_into in existing:
            self.signature_ids[fp] = self._follow_merges(merged_into) if merged_into else pk
        to_create = []
        for fp, (normalized, error_type, result) in new.items():
            if fp in self.signature_ids:
                continue
            sample = clean_text(result.message or result.details[:500])
            title = clean_text(_title_of(error_type, sample, normalized))
            category_id = next((pk for pk, rx in self.categories if rx.search(normalized) or rx.search(sample)), None)
            to_create.append(
                FailureSignature(
                    environment_id=env_id,
                    fingerprint=fp,
                    error_type=clean_text(error_type)[:300],
                    normalized=clean_text(normalized),
                    title=title[:300],
                    sample_message=sample[:2000],
                    category_id=category_id,
                )
            )
        if to_create:
            FailureSignature.objects.bulk_create(to_create, ignore_conflicts=True)
            created = FailureSignature.objects.filter(
                environment_id=env_id, fingerprint__in=[s.fingerprint for s in to_create]
            ).values_list("fingerprint", "id")
            self.signature_ids.update(created)

    @staticmethod
    def _follow_merges(pk: int) -> int:
        seen = set()
        while pk not in seen:
            seen.add(pk)
            nxt = FailureSignature.objects.filter(pk=pk).values_list("merged_into_id", flat=True).first()
            if not nxt:
                return pk
            pk = nxt
        return pk


def _title_of(error_type: str, sample: str, normalized: str) -> str:
    first = next((line.strip() for line in sample.splitlines() if line.strip()), "")
    if not first:
        return normalized or error_type or "Unknown failure"
    if error_type and not first.startswith(error_type):
        return f"{error_type}: {first}"
    return first


# -- uploads ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class IngestOutcome:
    run: TestRun
    created: bool  # False when the same file had been ingested before


def file_sha256(fileobj: BinaryIO) -> str:
    digest = hashlib.sha256()
    fileobj.seek(0)
    for chunk in iter(lambda: fileobj.read(1024 * 1024), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def resolve_session(slug: str, environment_name: str | None = None, *, create: bool = True) -> LoopSession:
    """Find a session by slug, creating it (and its environment) when asked to."""
    session = LoopSession.objects.select_related("environment").filter(slug=slug).first()
    if session is not None:
        return session
    if not create:
        raise LoopSession.DoesNotExist(f"no session {slug!r}")
    environment, _ = Environment.objects.get_or_create(name=environment_name or "default")
    return LoopSession.objects.create(environment=environment, slug=slug, title=slug.replace("-", " ").title())


def resolve_cycle(session: LoopSession, number: int | None) -> Cycle:
    """A named cycle (created if new), else the session's latest, else cycle 1."""
    if number is None:
        latest = session.cycles.order_by("-number").first()
        if latest is not None:
            return latest
        number = 1
    cycle, created = Cycle.objects.get_or_create(session=session, number=number)
    if created:
        LoopSession.objects.filter(pk=session.pk).update(cycle_count=session.cycles.count())
    return cycle


def ingest_file(
    fileobj: BinaryIO,
    source: str,
    *,
    session_slug: str,
    cycle_number: int | None = None,
    environment_name: str | None = None,
    user=None,  # noqa: ANN001
    origin: str = TestRun.Source.CLI,
    max_bytes: int | None = None,
) -> IngestOutcome:
    """Parse and store one results file as one run, atomically.

    Raises IngestError (naming the file and the problem) and stores nothing
    when the file is refused. The same bytes ingested again into the same
    session return the existing run.
    """
    max_bytes = max_bytes or settings.INGEST_MAX_BYTES
    size = _size_of(fileobj)
    if size == 0:
        raise IngestError(source, "the file is empty")
    if size is not None and size > max_bytes:
        raise IngestError(source, f"file is larger than the limit of {max_bytes // (1024 * 1024)} MB")
    content_hash = file_sha256(fileobj)
    with transaction.atomic():
        session = resolve_session(session_slug, environment_name)
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
            triggered_by=user if getattr(user, "is_authenticated", False) else None,
            started_at=now,
        )
        parsed = parse(fileobj, source, max_bytes=max_bytes)
        writer = ResultWriter(run)
        writer.add(parsed.results)
        info: RunInfo = parsed.info
        run.format = info.format
        finish_run(run, writer, info, status=WorkStatus.FINISHED)
    return IngestOutcome(run=run, created=True)


def _size_of(fileobj: BinaryIO) -> int | None:
    try:
        here = fileobj.tell()
        fileobj.seek(0, os.SEEK_END)
        size = fileobj.tell()
        fileobj.seek(here)
        return size
    except (OSError, AttributeError, ValueError):
        return None
