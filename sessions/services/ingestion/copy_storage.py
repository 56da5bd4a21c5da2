"""The PostgreSQL storage engine: test cases and results go in with ``COPY``, pipelined with parsing.

A batch's new test cases and its results are COPYed by a helper thread (``CopyThread``) *while the
next batch is parsed*. Rows are formatted as COPY text by plain string operations, never adapted
value by value. Case ids come from the table's sequence, reserved a batch ahead, so a result row
names its new case before the case is stored; an environment with up to ``PRELOAD_LIMIT`` cases is
read once, so that no batch has to ask which of its cases exist. The test cases' deferred foreign
keys are checked COPY by COPY (on the helper thread) rather than at commit. The measurements behind
each choice are in docs/PERFORMANCE.md (Ingestion).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

import psycopg
from django.db import DatabaseError, connection
from django.utils import timezone

from ...ingest.records import ParsedResult
from ...models import TestCase, TestResult, identity_hash
from .copy_thread import CopyThread
from .signature_lookup import resolve_signatures
from .state import FAILING, TIMED, Undo, WriterState, collect_metrics
from .tally import FIRST_LETTER
from .tally import LIMIT as TALLY_LIMIT
from .text import clean_json, clean_text, module_of

PRELOAD_LIMIT = 20_000  # cases of an environment read at once; above it, each batch asks for its own
BATCH_CHARS = 16_000_000  # a batch also ends at this much failure text, whatever its length
_CASE_COLUMNS = (
    "id, environment_id, nodeid, nodeid_hash, name, file, module, priority, area_id, markers, created_at, recent"
)
_NEXTVAL = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"
_RESULT_COLUMNS = (
    "run_id, case_id, outcome, duration, suspect, phase, message, details, signature_id, properties, attempts"
)


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


class CopyStorage:
    """Stores batches with COPY; keeps what only this engine needs between calls (ids reserved ahead)."""

    def __init__(self, state: WriterState) -> None:
        self.state = state
        self._preloaded = False
        self._case_sequence: str | None = None
        self._spare_ids: Future | None = None
        self._case_constraints: str | None = None  # the test cases' deferred foreign keys, quoted
        self._checking_now = False

    def add(self, results: Iterable[ParsedResult], undo: Undo, metrics: dict[str, list[float]]) -> int:
        """Store ``results`` inside the caller's transaction; return how many."""
        stored = 0
        batch_size = self.state.batch_size
        with connection.cursor() as cursor, connection.wrap_database_errors:
            raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            if not self._preloaded:
                self._preload_cases(raw)
            worker = CopyThread(raw.connection)
            try:
                batch: list[ParsedResult] = []
                append = batch.append
                size = 0
                for result in results:
                    append(result)
                    size += len(result.details)
                    if len(batch) >= batch_size or size >= BATCH_CHARS:
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
        env_id = self.state.environment.pk
        raw.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE environment_id = %s LIMIT %s) AS c",
            (env_id, PRELOAD_LIMIT + 1),
        )
        if raw.fetchone()[0] > PRELOAD_LIMIT:
            return
        raw.execute(f"SELECT nodeid_hash, id, priority FROM {table} WHERE environment_id = %s", (env_id,))
        self.state.remember_cases(raw.fetchall())
        self.state.all_cases_known = True

    def _copy_batch(
        self, raw: Any, worker: CopyThread, batch: list[ParsedResult], undo: Undo, metrics: dict[str, list[float]]
    ) -> int:
        """Queue a batch's new cases and its results for the COPY thread."""
        case_ids = self._copy_cases(raw, worker, batch, undo)
        signature_ids = resolve_signatures(self.state, batch, undo)
        limit = self.state.suspect_limit
        prefix = f"{self.state.run.pk}\t"
        lines: list[str] = []
        add_line = lines.append
        field = _copy_field
        dumps = json.dumps
        tally = self.state.tally
        total = tally.duration if tally is not None else 0.0
        pairs = tally.signature_cases if tally is not None else None
        untimed = suspects = 0
        for result, case_id in zip(batch, case_ids, strict=True):
            duration = result.duration
            outcome = result.outcome
            if duration is None:
                took = "\\N"
                suspect = "f"
                untimed += 1
            else:
                took = repr(duration)
                total += duration
                if limit is not None and duration < limit and outcome in TIMED:
                    suspect = "t"
                    suspects += 1
                else:
                    suspect = "f"
            # A passed test has no text: only the others pay for escaping.
            phase, message, details, props = result.phase, result.message, result.details, result.properties
            if phase:
                phase = field(phase)
            if message:
                message = field(message)
            if details:
                details = field(details)
            if props:
                collect_metrics(props, metrics)
                props = field(dumps(clean_json(props)))
            else:
                props = "\\N"
            if outcome in FAILING and id(result) in signature_ids:
                sig = signature_ids[id(result)]
                if tally is not None:
                    tally.signature_results[sig] += 1
                    if pairs is not None:
                        pairs.add((sig, case_id))
            else:
                sig = "\\N"
            tries = result.attempts
            tries = field(dumps(clean_json(tries))) if tries else "\\N"
            add_line(
                f"{prefix}{case_id}\t{outcome}\t{took}\t{suspect}\t{phase}\t{message}\t{details}\t{sig}\t{props}"
                f"\t{tries}\n"
            )
        worker.copy(f"COPY {TestResult._meta.db_table} ({_RESULT_COLUMNS}) FROM STDIN", _copy_bytes("".join(lines)))
        if tally is not None:
            tally.add_outcomes([result.outcome for result in batch], suspects, total, len(batch) - untimed)
            if pairs is not None and len(pairs) > TALLY_LIMIT:
                tally.signature_cases = None  # bounded memory: the run's end reads the pairs from the rows
        return len(batch)

    def _copy_cases(self, raw: Any, worker: CopyThread, batch: list[ParsedResult], undo: Undo) -> list[int]:
        """The case id of every result: known ones from the cache or the database, new ones created.

        New ids are taken from the table's sequence (reserved a batch ahead, by the COPY thread), so
        the new cases go in with one COPY and their results can name them at once. Two uploads adding
        the same new test at the same moment make the later one fail its unique check;
        ``ingest_file`` then retries it once, when the case exists.
        """
        state = self.state
        known = state.case_ids
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
        if missing and not state.all_cases_known:
            raw.execute(
                f"SELECT nodeid_hash, id, priority FROM {TestCase._meta.db_table} "
                "WHERE environment_id = %s AND nodeid_hash = ANY(%s)",
                (state.environment.pk, list(missing)),
            )
            found = raw.fetchall()
            state.remember_cases(found)
            for key, _pk, _priority in found:
                undo.cases.append(key)
                del missing[key]
        if missing:
            self._create_cases(raw, worker, missing, undo)
        if not state.prioritized:
            prioritized = state.prioritized_ids
            if prioritized:
                state.prioritized = any(known[key] in prioritized for key in keys)
        return [known[key] for key in keys]

    def _take_ids(self, raw: Any, worker: CopyThread, count: int) -> list[int]:
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

    def _check_cases_now(self, raw: Any, worker: CopyThread) -> None:
        """Check the test cases' foreign keys at the end of each COPY rather than at commit.

        Django declares them deferred: 200,000 checks of a 100,000-case file would then run at commit,
        after everything else; checked statement by statement they run on the COPY thread, while the
        next batch is parsed. ``add`` defers them again when it is done.
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

    def _create_cases(self, raw: Any, worker: CopyThread, missing: dict[str, ParsedResult], undo: Undo) -> None:
        if not self._checking_now:
            self._check_cases_now(raw, worker)
        ids = self._take_ids(raw, worker, len(missing))
        state = self.state
        head = f"\t{state.environment.pk}\t"
        now = timezone.now().isoformat()
        known = state.case_ids
        classify = state.classify
        unmarked = classify("", ()) if state.by_markers is not None else None  # most tests carry no marker
        prioritized = state.prioritized_ids
        # A sole writer's new failing case gets its first history letter now (tally.py), not updated later.
        first = state.tally.first_failures if state.tally is not None else None
        new_modules = state.tally.new_modules if state.tally is not None else None
        dumps = json.dumps
        lines: dict[str, str] = {}  # hash → row (the hashes of ``missing`` are distinct)
        nulls = 0
        for pk, (key, result) in zip(ids, missing.items(), strict=True):
            recent = ""
            if first is not None and result.outcome in FAILING and len(first) < TALLY_LIMIT:
                recent = first[pk] = FIRST_LETTER[result.outcome]
            nodeid, markers, file = result.nodeid, result.markers, result.file
            if markers:
                priority, area_id = classify(nodeid, markers)
                marks = dumps(clean_json(list(markers)))
            else:
                priority, area_id = unmarked or classify(nodeid, markers)
                marks = "[]"
            if priority:
                prioritized.add(pk)
            if area_id is None:
                area_id = "\\N"
                nulls += 1
            module = file or (nodeid.split("::", 1)[0] if "::" in nodeid else "")  # module_of, inlined
            if recent:
                new_modules[pk] = clean_text(module)  # as COPY stores it (_copy_bytes)
            name = result.name or nodeid
            lines[key] = (
                f"{pk}{head}{nodeid}\t{key}\t{name}\t{file}\t{module}\t{priority}\t{area_id}\t{marks}\t{now}\t{recent}\n"
            )
            known[key] = pk
        undo.cases.extend(missing)
        # In the order of the unique index (environment, hash): its B-tree then takes the batch page by
        # page, a fifth less work for the server than in random order. Ids still follow the file. (Sorting
        # the hashes alone takes half the time of sorting (hash, row) pairs.)
        text = "".join([lines[key] for key in sorted(lines)])
        # Test identities seldom hold a tab, newline or backslash: check the whole batch at once.
        n = len(lines)
        if text.count("\t") != 11 * n or text.count("\n") != n or text.count("\\") != nulls or "\r" in text:
            text = self._escaped_cases(ids, missing, head, now)
        worker.copy(f"COPY {TestCase._meta.db_table} ({_CASE_COLUMNS}) FROM STDIN", _copy_bytes(text))

    def _escaped_cases(self, ids: list[int], missing: dict[str, ParsedResult], head: str, now: str) -> str:
        """The COPY text of new cases, every value escaped (a node id with a tab or a backslash...)."""
        field = _copy_field
        lines = []
        first = self.state.tally.first_failures if self.state.tally is not None else {}
        for pk, (key, result) in zip(ids, missing.items(), strict=True):
            nodeid, markers, file = result.nodeid, result.markers, result.file
            priority, area_id = self.state.classify(nodeid, markers)
            area = "\\N" if area_id is None else area_id
            marks = json.dumps(clean_json(list(markers))) if markers else "[]"
            module = module_of(nodeid, file)
            name = result.name or nodeid
            lines.append(
                (
                    key,
                    f"{pk}{head}{field(nodeid)}\t{key}\t{field(name)}\t{field(file)}\t{field(module)}\t"
                    f"{field(priority)}\t{area}\t{field(marks)}\t{now}\t{first.get(pk, '')}\n",
                )
            )
        lines.sort()
        return "".join([line for _key, line in lines])
