"""Store parsed results: test cases, results and signatures, in bulk, then the run's summary.

One ``ResultWriter`` serves both paths: an uploaded file (one transaction, so a refused file stores
nothing) and a live run (a transaction for each call of ``add``, about every second while the
report-log grows). On PostgreSQL rows go in with ``COPY`` through psycopg 3 (docs/PERFORMANCE.md,
Ingestion); elsewhere with ``bulk_create``.

The PostgreSQL path is a pipeline, because the database and the parser can work at the same time
(they are two processes): a batch's new test cases and its results are COPYed by a helper thread
*while the next batch is parsed* (``_CopyWorker``). Rows are formatted as COPY text by plain string
operations, never adapted value by value. Case ids come from the table's sequence, reserved a batch
ahead, so a result row names its new case before the case is stored; an environment with up to
``PRELOAD_LIMIT`` cases is read once, so that no batch has to ask which of its cases exist. The test
cases' deferred foreign keys are checked COPY by COPY (on the helper thread) rather than at commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, BinaryIO

import psycopg
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..ingest import parse
from ..ingest.fingerprint import fingerprint
from ..ingest.records import IngestError, Outcome, ParsedResult, RunInfo
from ..models import (
    Cycle,
    Environment,
    FailureSignature,
    ImpactRule,
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
PRELOAD_LIMIT = 20_000  # cases of an environment read at once; above it, each batch asks for its own
BATCH_CHARS = 16_000_000  # a batch also ends at this much failure text, whatever its length
_SLICE = 128 * 1024  # bytes per write: psycopg splits larger buffers anyway
_MEMO_LIMIT = 4096
_FAILING = (Outcome.FAILED, Outcome.ERROR)
_TIMED = (Outcome.PASSED, Outcome.FAILED)
_CASE_COLUMNS = "id, environment_id, nodeid, nodeid_hash, name, file, module, priority, area_id, markers, created_at"
_NEXTVAL = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"
_RESULT_COLUMNS = "run_id, case_id, outcome, duration, suspect, phase, message, details, signature_id, properties"


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


def _clean_json(value: Any) -> Any:
    """Strings of a JSON value (property names and values, markers) made storable by ``clean_text``.

    json.dumps writes NUL as ``\\u0000`` and a lone surrogate as its escape: jsonb refuses both.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def module_of(nodeid: str, file: str) -> str:
    """The module a test lives in: its file, else the node id up to the first '::'."""
    if file:
        return file
    return nodeid.split("::", 1)[0] if "::" in nodeid else ""


def _copy_field(text: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    return text


def _copy_bytes(text: str) -> bytes:
    """COPY text made storable and encoded, as ``clean_text`` would do value by value.

    Cleaning is local to each character (NUL and lone surrogates become U+FFFD) and the separators
    are ASCII, so cleaning the whole text once equals cleaning every value.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")


class _CopyWorker:
    """Runs the COPY statements of one ``add`` on a helper thread, in order, while the caller parses on.

    The thread spends its time waiting on the socket (psycopg releases the GIL there), so the
    server stores one batch while this process parses and formats the next. psycopg's connection
    lock serialises the caller's own queries (case look-ups, new signatures) with a running COPY.
    At most ``depth`` jobs wait, which bounds the memory held by formatted batches.
    """

    def __init__(self, conn: Any, depth: int = 2) -> None:
        self._conn = conn
        self._jobs: queue.Queue[tuple[str, str, Any, Future | None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def copy(self, statement: str, data: bytes) -> None:
        self._put(("copy", statement, data, None))

    def execute(self, statement: str) -> None:
        self._put(("execute", statement, None, None))

    def query(self, statement: str, params: tuple) -> Future:
        """Run a query after the jobs already queued; the future gets its rows."""
        future: Future = Future()
        self._put(("query", statement, params, future))
        return future

    def finish(self) -> None:
        """Wait for every queued job; raise the first error of the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def stop(self) -> BaseException | None:
        """Drop the jobs not started, wait for the running one (the transaction is being abandoned).

        Returns the thread's error, if it had one: the cause, when the caller's own next statement
        then failed only because the transaction was already aborted.
        """
        self._stopping = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        return error

    def _put(self, job: tuple[str, str, Any, Future | None]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="loopdash-copy", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        cursor = self._conn.cursor()
        while (job := self._jobs.get()) is not None:
            kind, statement, payload, future = job
            if self._stopping or self._error is not None:
                if future is not None:
                    future.cancel()
                continue
            try:
                if kind == "copy":
                    view = memoryview(payload)
                    with cursor.copy(statement) as copy:
                        for i in range(0, len(view), _SLICE):
                            copy.write(view[i : i + _SLICE])
                elif kind == "query":
                    cursor.execute(statement, payload)
                    future.set_result(cursor.fetchall())
                else:
                    cursor.execute(statement)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
                if future is not None:
                    future.set_exception(exc)
        cursor.close()


class _Undo:
    """Cache entries added by one ``add`` call, forgotten if its transaction is rolled back."""

    __slots__ = ("cases", "signatures")

    def __init__(self) -> None:
        self.cases: list[str] = []
        self.signatures: list[str] = []


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
        # True once a result stored by this writer belongs to a case with a priority. While it is False
        # (and the writer stored all of the run's results), finish_run skips counting by priority.
        self.prioritized = False
        self._prioritized_ids: set[int] = set()
        self._case_sequence: str | None = None
        self._spare_ids: Future | None = None
        self._case_constraints: str | None = None  # the test cases' deferred foreign keys, quoted
        self._checking_now = False
        self._all_cases_known = False  # case_ids holds every case of the environment
        self._preloaded = False
        # Without glob rules a case's priority and area depend on its markers only.
        globs = ImpactRule.objects.filter(
            Q(environment=self.environment) | Q(environment__isnull=True), match=ImpactRule.Match.GLOB
        )
        self._by_markers: dict[tuple[str, ...], tuple[str, int | None]] | None = None if globs.exists() else {}
        self._fingerprints: dict[tuple[str, str], tuple[str, str]] = {}

    # -- public -------------------------------------------------------------------------------------

    def add(self, results: Iterable[ParsedResult]) -> int:
        """Store results in one transaction (a savepoint inside an upload's); return how many.

        On any error nothing of this call is stored, and the caches forget what it added, so that
        the same results can be added again (a live run retries after a unique-check race).
        """
        undo = _Undo()
        metrics: dict[str, list[float]] = {}
        prioritized = self.prioritized
        try:
            with transaction.atomic():
                if self.use_copy:
                    stored = self._add_copy(results, undo, metrics)
                else:
                    stored = self._add_orm(results, undo, metrics)
        except BaseException as exc:
            for key in undo.cases:
                self.case_ids.pop(key, None)
            for key in undo.signatures:
                self.signature_ids.pop(key, None)
            self.prioritized = prioritized
            if isinstance(exc, IntegrityError):
                self._all_cases_known = False  # another run created a case: ask the database again
            raise
        for name, values in metrics.items():
            self.metric_values.setdefault(name, []).extend(values)
        self.count += stored
        return stored

    def metrics(self) -> dict[str, float]:
        """The median of each numeric property the tests reported (record_property / <properties>)."""
        out: dict[str, float] = {}
        for name, values in self.metric_values.items():
            ordered = sorted(values)
            mid = len(ordered) // 2
            out[name] = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return out

    # -- PostgreSQL: COPY, pipelined with parsing ---------------------------------------------------

    def _add_copy(self, results: Iterable[ParsedResult], undo: _Undo, metrics: dict[str, list[float]]) -> int:
        stored = 0
        with connection.cursor() as cursor, connection.wrap_database_errors:
            raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            if not self._preloaded:
                self._preload_cases(raw)
            worker = _CopyWorker(raw.connection)
            try:
                batch: list[ParsedResult] = []
                append = batch.append
                size = 0
                for result in results:
                    append(result)
                    size += len(result.details)
                    if len(batch) >= BATCH_SIZE or size >= BATCH_CHARS:
                        stored += self._copy_batch(raw, worker, batch, undo, metrics)
                        batch = []
                        append = batch.append
                        size = 0
                if batch:
                    stored += self._copy_batch(raw, worker, batch, undo, metrics)
                if self._checking_now:
                    worker.execute(f"SET CONSTRAINTS {self._case_constraints} DEFERRED")
                worker.finish()
            except BaseException as exc:
                cause = worker.stop()
                if cause is not None and isinstance(exc, (DatabaseError, psycopg.Error)):
                    raise cause from None  # translated to Django's class by wrap_database_errors
                raise
            finally:
                self._spare_ids = None  # ids of a future batch: not needed by the next call
                self._checking_now = False
        return stored

    def _preload_cases(self, raw: Any) -> None:
        """Read every case of a small environment once; a big one is asked batch by batch."""
        self._preloaded = True
        table = TestCase._meta.db_table
        env_id = self.environment.pk
        raw.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE environment_id = %s LIMIT %s) AS c",
            (env_id, PRELOAD_LIMIT + 1),
        )
        if raw.fetchone()[0] > PRELOAD_LIMIT:
            return
        raw.execute(f"SELECT nodeid_hash, id, priority FROM {table} WHERE environment_id = %s", (env_id,))
        self._remember_cases(raw.fetchall())
        self._all_cases_known = True

    def _remember_cases(self, rows: list[tuple[str, int, str]]) -> None:
        known = self.case_ids
        for key, pk, priority in rows:
            known[key] = pk
            if priority:
                self._prioritized_ids.add(pk)

    def _copy_batch(
        self, raw: Any, worker: _CopyWorker, batch: list[ParsedResult], undo: _Undo, metrics: dict[str, list[float]]
    ) -> int:
        """Queue a batch's new cases and its results for the COPY thread."""
        case_ids = self._copy_cases(raw, worker, batch, undo)
        signature_ids = self._resolve_signatures(batch, undo)
        limit = self.suspect_limit
        prefix = f"{self.run.pk}\t"
        lines: list[str] = []
        add_line = lines.append
        field = _copy_field
        collect = self._collect_metrics
        dumps = json.dumps
        for result, case_id in zip(batch, case_ids, strict=True):
            duration = result.duration
            outcome = result.outcome
            if duration is None:
                took = "\\N"
                suspect = "f"
            else:
                took = repr(duration)
                suspect = "t" if limit is not None and duration < limit and outcome in _TIMED else "f"
            # A passed test has no text: only the others pay for escaping.
            phase, message, details, props = result.phase, result.message, result.details, result.properties
            if phase:
                phase = field(phase)
            if message:
                message = field(message)
            if details:
                details = field(details)
            if props:
                collect(props, metrics)
                props = field(dumps(_clean_json(props)))
            else:
                props = "\\N"
            sig = signature_ids.get(id(result), "\\N") if outcome in _FAILING else "\\N"
            add_line(
                f"{prefix}{case_id}\t{outcome}\t{took}\t{suspect}\t{phase}\t{message}\t{details}\t{sig}\t{props}\n"
            )
        worker.copy(f"COPY {TestResult._meta.db_table} ({_RESULT_COLUMNS}) FROM STDIN", _copy_bytes("".join(lines)))
        return len(batch)

    def _copy_cases(self, raw: Any, worker: _CopyWorker, batch: list[ParsedResult], undo: _Undo) -> list[int]:
        """The case id of every result: known ones from the cache or the database, new ones created.

        New ids are taken from the table's sequence (reserved a batch ahead, by the COPY thread), so
        the new cases go in with one COPY and their results can name them at once. Two uploads adding
        the same new test at the same moment make the later one fail its unique check;
        ``ingest_file`` then retries it once, when the case exists.
        """
        known = self.case_ids
        sha1 = hashlib.sha1
        keys: list[str] = []
        add_key = keys.append
        missing: dict[str, ParsedResult] = {}
        for result in batch:
            nodeid = result.nodeid
            if nodeid.isascii() and "\x00" not in nodeid:
                key = sha1(nodeid.encode()).hexdigest()  # identity_hash, for the common case
            else:
                nodeid = result.nodeid = clean_text(nodeid)
                key = identity_hash(nodeid)
            add_key(key)
            if key not in known and key not in missing:
                missing[key] = result
        if missing and not self._all_cases_known:
            raw.execute(
                f"SELECT nodeid_hash, id, priority FROM {TestCase._meta.db_table} "
                "WHERE environment_id = %s AND nodeid_hash = ANY(%s)",
                (self.environment.pk, list(missing)),
            )
            found = raw.fetchall()
            self._remember_cases(found)
            for key, _pk, _priority in found:
                undo.cases.append(key)
                del missing[key]
        if missing:
            self._create_cases(raw, worker, missing, undo)
        if not self.prioritized:
            prioritized = self._prioritized_ids
            if prioritized:
                self.prioritized = any(known[key] in prioritized for key in keys)
        return [known[key] for key in keys]

    def _take_ids(self, raw: Any, worker: _CopyWorker, count: int) -> list[int]:
        """``count`` new case ids; then reserves as many for the next batch, on the COPY thread."""
        if self._case_sequence is None:
            raw.execute("SELECT pg_get_serial_sequence(%s, 'id')", (TestCase._meta.db_table,))
            self._case_sequence = raw.fetchone()[0]
        spare = self._spare_ids
        ids = [row[0] for row in spare.result()] if spare is not None else []
        if len(ids) < count:
            raw.execute(_NEXTVAL, (self._case_sequence, count - len(ids)))
            ids += [row[0] for row in raw.fetchall()]
        # A batch that creates cases is usually followed by another one: its ids are ready when it is.
        self._spare_ids = worker.query(_NEXTVAL, (self._case_sequence, count))
        return ids[:count]

    def _check_cases_now(self, raw: Any, worker: _CopyWorker) -> None:
        """Check the test cases' foreign keys at the end of each COPY rather than at commit.

        Django declares them deferred: 200,000 checks of a 100,000-case file would then run at commit,
        after everything else; checked statement by statement they run on the COPY thread, while the
        next batch is parsed. ``_add_copy`` defers them again when it is done.
        """
        if self._case_constraints is None:
            raw.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' AND condeferred",
                (TestCase._meta.db_table,),
            )
            self._case_constraints = ", ".join(connection.ops.quote_name(row[0]) for row in raw.fetchall())
        if self._case_constraints:
            worker.execute(f"SET CONSTRAINTS {self._case_constraints} IMMEDIATE")
            self._checking_now = True

    def _create_cases(self, raw: Any, worker: _CopyWorker, missing: dict[str, ParsedResult], undo: _Undo) -> None:
        if not self._checking_now:
            self._check_cases_now(raw, worker)
        ids = self._take_ids(raw, worker, len(missing))
        head = f"\t{self.environment.pk}\t"
        now = timezone.now().isoformat()
        known = self.case_ids
        classify = self._classify
        memo = self._by_markers
        unmarked = classify("", ()) if memo is not None else None  # most tests carry no marker
        prioritized = self._prioritized_ids
        dumps = json.dumps
        lines: list[tuple[str, str]] = []
        add_line = lines.append
        nulls = 0
        for pk, (key, result) in zip(ids, missing.items(), strict=True):
            nodeid, markers, file = result.nodeid, result.markers, result.file
            if markers:
                priority, area_id = classify(nodeid, markers)
                marks = dumps(_clean_json(list(markers)))
            else:
                priority, area_id = unmarked or classify(nodeid, markers)
                marks = "[]"
            if priority:
                prioritized.add(pk)
            if area_id is None:
                area_id = "\\N"
                nulls += 1
            module = file or (nodeid.split("::", 1)[0] if "::" in nodeid else "")
            name = result.name or nodeid
            add_line((key, f"{pk}{head}{nodeid}\t{key}\t{name}\t{file}\t{module}\t{priority}\t{area_id}\t{marks}\t{now}\n"))
            known[key] = pk
        undo.cases.extend(missing)
        # In the order of the unique index (environment, hash): its B-tree then takes the batch page by
        # page, a fifth less work for the server than in random order. Ids still follow the file.
        lines.sort()
        text = "".join([line for _key, line in lines])
        # Test identities seldom hold a tab, newline or backslash: check the whole batch at once.
        n = len(lines)
        if text.count("\t") != 10 * n or text.count("\n") != n or text.count("\\") != nulls or "\r" in text:
            text = self._escaped_cases(ids, missing, head, now)
        worker.copy(f"COPY {TestCase._meta.db_table} ({_CASE_COLUMNS}) FROM STDIN", _copy_bytes(text))

    def _escaped_cases(self, ids: list[int], missing: dict[str, ParsedResult], head: str, now: str) -> str:
        """The COPY text of new cases, every value escaped (a node id with a tab or a backslash...)."""
        field = _copy_field
        lines = []
        for pk, (key, result) in zip(ids, missing.items(), strict=True):
            nodeid, markers, file = result.nodeid, result.markers, result.file
            priority, area_id = self._classify(nodeid, markers)
            area = "\\N" if area_id is None else area_id
            marks = json.dumps(_clean_json(list(markers))) if markers else "[]"
            module = file or (nodeid.split("::", 1)[0] if "::" in nodeid else "")
            name = result.name or nodeid
            lines.append(
                (
                    key,
                    f"{pk}{head}{field(nodeid)}\t{key}\t{field(name)}\t{field(file)}\t{field(module)}\t"
                    f"{field(priority)}\t{area}\t{field(marks)}\t{now}\n",
                )
            )
        lines.sort()
        return "".join([line for _key, line in lines])

    def _classify(self, nodeid: str, markers: tuple[str, ...]) -> tuple[str, int | None]:
        memo = self._by_markers
        if memo is not None:
            found = memo.get(markers)
            if found is None:
                if len(memo) > _MEMO_LIMIT:
                    memo.clear()
                cls = self.classifier.classify(nodeid, markers)
                found = memo[markers] = (cls.priority, cls.area_id)
            return found
        cls = self.classifier.classify(nodeid, markers)
        return cls.priority, cls.area_id

    # -- other databases: bulk_create -----------------------------------------------------------------

    def _add_orm(self, results: Iterable[ParsedResult], undo: _Undo, metrics: dict[str, list[float]]) -> int:
        stored = 0
        batch: list[ParsedResult] = []
        for result in results:
            batch.append(result)
            if len(batch) >= BATCH_SIZE:
                stored += self._write_batch_orm(batch, undo, metrics)
                batch = []
        if batch:
            stored += self._write_batch_orm(batch, undo, metrics)
        return stored

    def _write_batch_orm(self, batch: list[ParsedResult], undo: _Undo, metrics: dict[str, list[float]]) -> int:
        case_ids = self._resolve_cases_orm(batch, undo)
        signature_ids = self._resolve_signatures(batch, undo)
        run_id = self.run.pk
        limit = self.suspect_limit
        rows = []
        for result, case_id in zip(batch, case_ids, strict=True):
            duration = result.duration
            suspect = bool(
                limit is not None and duration is not None and duration < limit and result.outcome in _TIMED
            )
            props = result.properties or None
            if props:
                self._collect_metrics(props, metrics)
                props = _clean_json(props)
            rows.append(
                TestResult(
                    run_id=run_id,
                    case_id=case_id,
                    outcome=str(result.outcome),
                    duration=duration,
                    suspect=suspect,
                    phase=result.phase,
                    message=clean_text(result.message),
                    details=clean_text(result.details),
                    signature_id=signature_ids.get(id(result)),
                    properties=props,
                )
            )
        TestResult.objects.bulk_create(rows, batch_size=500)
        return len(rows)

    def _resolve_cases_orm(self, batch: list[ParsedResult], undo: _Undo) -> list[int]:
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
            env_id = self.environment.pk
            found = dict(
                TestCase.objects.filter(environment_id=env_id, nodeid_hash__in=list(missing)).values_list(
                    "nodeid_hash", "id"
                )
            )
            now = timezone.now()
            new = []
            for key, result in missing.items():
                if key in found:
                    continue
                priority, area_id = self._classify(result.nodeid, result.markers)
                new.append(
                    TestCase(
                        environment_id=env_id,
                        nodeid=result.nodeid,
                        nodeid_hash=key,
                        name=clean_text(result.name) or result.nodeid,
                        file=clean_text(result.file),
                        module=clean_text(module_of(result.nodeid, result.file)),
                        priority=priority,
                        area_id=area_id,
                        markers=_clean_json(list(result.markers)),
                        created_at=now,
                    )
                )
            TestCase.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
            if new:
                found.update(
                    TestCase.objects.filter(environment_id=env_id, nodeid_hash__in=[c.nodeid_hash for c in new]).values_list(
                        "nodeid_hash", "id"
                    )
                )
            known.update(found)
            undo.cases.extend(found)
        self.prioritized = True  # not tracked on this path: finish_run counts by priority
        return [known[h] for h in hashes]

    def _collect_metrics(self, props: dict[str, str], metrics: dict[str, list[float]]) -> None:
        for name, value in props.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if number == number and abs(number) != float("inf"):
                metrics.setdefault(name, []).append(number)

    # -- signatures ---------------------------------------------------------------------------------

    def _resolve_signatures(self, batch: list[ParsedResult], undo: _Undo) -> dict[int, int]:
        """Map id(result) → signature id for every failed or errored result of the batch."""
        wanted: dict[int, str] = {}
        new: dict[str, tuple[str, str, ParsedResult]] = {}
        memo = self._fingerprints
        for result in batch:
            if result.outcome not in _FAILING:
                continue
            result.error_type = error_type = clean_text(result.error_type)
            result.message = message = clean_text(result.message)
            text = message or clean_text(result.details[:500])
            key = (error_type, text)
            found = memo.get(key)
            if found is None:
                if len(memo) > _MEMO_LIMIT:
                    memo.clear()
                found = memo[key] = fingerprint(error_type, text)
            fp = found[0]
            wanted[id(result)] = fp
            if fp not in self.signature_ids and fp not in new:
                new[fp] = (found[1], error_type, result)
        if new:
            self._load_or_create_signatures(new, undo)
        return {key: self.signature_ids[fp] for key, fp in wanted.items()}

    def _load_or_create_signatures(self, new: dict[str, tuple[str, str, ParsedResult]], undo: _Undo) -> None:
        env_id = self.environment.pk
        existing = FailureSignature.objects.filter(environment_id=env_id, fingerprint__in=list(new)).values_list(
            "fingerprint", "id", "merged_into_id"
        )
        for fp, pk, merged_into in existing:
            self.signature_ids[fp] = self._follow_merges(merged_into) if merged_into else pk
            undo.signatures.append(fp)
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
            for fp, pk in created:
                self.signature_ids[fp] = pk
                undo.signatures.append(fp)

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
    arguments = (fileobj, source, session_slug, cycle_number, environment_name, user, origin, max_bytes, content_hash)
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
    user,  # noqa: ANN001
    origin: str,
    max_bytes: int,
    content_hash: str,
) -> IngestOutcome:
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
