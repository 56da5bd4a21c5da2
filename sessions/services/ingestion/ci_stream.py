"""Runs fed live from CI over HTTP: open one, store batches of report-log lines, finish it.

The same path as a worker's run, cut at the HTTP requests: a batch goes through ``LiveReportLog``
(the report-log parser, fed like the worker feeds it from the file it tails), its finished results
through ``ResultWriter``, and the end through ``run_completion.complete_run``. So a CI run is
counted, grouped into signatures and judged exactly like a run a worker ran.

What differs is where the parser's memory lives. A worker keeps one parser for the whole run; a
batch may reach any web process, so the lines of the tests still in flight (``LiveStream.pending``)
are stored with the run and fed again in front of the next batch: a test's setup, call and teardown
may arrive in three different batches. Each batch locks the run row, so batches of one run are
stored one after another, in the order they arrive, and a refused batch stores nothing.

Each batch (an empty one too) is the run's heartbeat; a run whose client falls silent for
``LOOPDASH_LOST_AFTER_S`` is declared lost by the reaper, like a worker's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ...ingest.live import LiveReportLog
from ...ingest.records import IngestError, ParsedResult, RunInfo
from ...ingest.reportlog import INCOMPLETE_EXITSTATUS
from ...models import LiveStream, LoopSession, TestRun, WorkStatus
from ..live_figures import LiveFigures
from ..run_completion import complete_run
from ..signatures import acting_user
from ..summary import COUNT_FIELD, pass_rate
from .cycles import resolve_cycle
from .state import collect_metrics
from .writer import ResultWriter

REVISION_MAX = 100  # Deployment.revision
SHARD_MAX = 40
MAX_IN_FLIGHT = 10_000  # tests begun and not finished; pytest-xdist has one per worker


class StreamRefused(ValueError):
    """A batch or finish the run cannot take (unknown run, not a CI run, already ended): nothing stored."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did: results stored (finished tests), tests still in flight, and whether it was a retry."""

    stored: int
    in_flight: int
    duplicate: bool = False


class StoredMetrics:
    """``summary.StoredResults`` for a run whose results were written by many writers, one per batch.

    ``count`` is -1 so the summary always counts by priority from the rows (no single writer saw all).
    """

    count = -1
    prioritized = True

    def __init__(self, values: dict[str, list[float]]) -> None:
        self.values = values

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, numbers in self.values.items():
            ordered = sorted(numbers)
            if not ordered:
                continue
            mid = len(ordered) // 2
            out[name] = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return out


def open_run(
    session: LoopSession, *, cycle_number: int | None, revision: str, shard: str, user: object | None
) -> TestRun:
    """A new running run of ``session``, fed from CI; its stream starts empty."""
    with transaction.atomic():
        cycle = resolve_cycle(session, cycle_number)
        now = timezone.now()
        label = "CI" + (f" {revision}" if revision else "") + (f" shard {shard}" if shard else "")
        properties: dict[str, str] = {}
        if revision:
            properties["revision"] = revision
        if shard:
            properties["shard"] = shard
        run = TestRun.objects.create(
            session=session,
            cycle=cycle,
            environment=session.environment,
            label=label,
            status=WorkStatus.RUNNING,
            source=TestRun.Source.CI,
            format="reportlog",
            triggered_by=acting_user(user),
            started_at=now,
            heartbeat_at=now,
            properties=properties,
        )
        LiveStream.objects.create(run=run)
    return run


def _locked_stream(pk: int) -> tuple[TestRun, LiveStream]:
    """The run and its stream, the run row locked until the caller's transaction ends."""
    run = TestRun.objects.select_for_update().select_related("environment").filter(pk=pk).first()
    if run is None:
        raise StreamRefused(f"no run {pk}", 404)
    stream = LiveStream.objects.filter(run=run).first()
    if stream is None:
        raise StreamRefused(f"run {pk} is not fed from CI (open one with POST /api/v1/sessions/<slug>/runs/live)", 409)
    return run, stream


def _ensure_running(run: TestRun) -> None:
    if run.status != WorkStatus.RUNNING:
        why = " (no batch arrived for too long: the reaper ended it)" if run.status == WorkStatus.LOST else ""
        raise StreamRefused(f"run {run.pk} has ended ({run.status}){why}: it takes no more results", 409)


def _in_flight_lines(data: bytes, finished: set[str]) -> tuple[bytes, int]:
    """The TestReport/SubTestReport lines of ``data`` whose test has not finished, and how many tests.

    The lines were all accepted by the parser already. A test is finished once the parser returned
    its result; every line of a test still running (its earlier attempts too, for a rerun plugin) is
    kept, so that the next parse sees the test whole.
    """
    kept: list[bytes] = []
    tests: set[str] = set()
    for line in data.splitlines(keepends=True):
        if b'TestReport"' not in line:
            continue
        record = json.loads(line)
        if record.get("$report_type") not in ("TestReport", "SubTestReport"):
            continue
        nodeid = record.get("nodeid")
        if nodeid not in finished:
            kept.append(line)
            tests.add(nodeid)
    return b"".join(kept), len(tests)


def _session_start_line(data: bytes) -> bytes | None:
    for line in data.splitlines(keepends=True):
        if b'"SessionStart"' in line and json.loads(line).get("$report_type") == "SessionStart":
            return line
    return None


def _parse(head: bytes, batch: bytes, *, at_end: bool, source: str) -> tuple[list[ParsedResult], RunInfo, int]:
    """Feed ``head`` (already accepted lines) then ``batch``; the finished results, the info, the cut-off count.

    A bad line raises IngestError numbered within ``batch``. With ``at_end`` the tests still in flight
    are returned too, as the parser reports a cut-off file (errors: "the run ended before ...").
    """
    live = LiveReportLog(source)
    try:
        results = live.feed(head + batch)
    finally:
        leftover = live.finish()  # ends the reader's thread in every case
    if live.error is not None:
        error = live.error
        line = None if error.line is None else error.line - head.count(b"\n")
        raise IngestError(source, error.problem, line=line)
    cut_off = 0
    if at_end:
        results += leftover
        cut_off = len(leftover)
    return results, live.info, cut_off


def _store(run: TestRun, results: list[ParsedResult]) -> None:
    if not results:
        return
    try:
        ResultWriter(run).add(results)
    except IntegrityError:
        # Another run created one of these test cases at the same moment: the savepoint was rolled
        # back whole, and a second writer finds the case.
        ResultWriter(run).add(results)


def _live_counts(run: TestRun, results: list[ParsedResult]) -> dict[str, Any]:
    """The run row's live figures after ``results`` (the summary rewrites them from the rows at the end)."""
    counts = {field: getattr(run, field) for field in ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")}
    spent = run.tests_duration_s or 0.0
    for result in results:
        counts[COUNT_FIELD.get(result.outcome, "passed")] += 1
        if result.duration is not None:
            spent += result.duration
    return {
        **counts,
        "total": sum(counts.values()),
        "pass_rate": pass_rate(counts["passed"], counts["failed"], counts["errors"]),
        "tests_duration_s": spent,
    }


def _last_nodeid(results: list[ParsedResult], pending: bytes) -> str:
    """What the run is busy with, for the progress line: the last test in flight, else the last finished."""
    for line in reversed(pending.splitlines()):
        nodeid = json.loads(line).get("nodeid")
        if isinstance(nodeid, str):
            return nodeid[:1000]
    return results[-1].nodeid[:1000] if results else ""


def add_batch(pk: int, body: bytes, *, batch_number: int | None = None) -> BatchOutcome:
    """Store the tests a batch of report-log lines finished; keep the lines of those still in flight.

    ``batch_number`` (1, 2, ...) makes a client's retry safe: a number already stored is answered
    without storing it again; a gap (a batch lost) is refused, 409. An empty body is a heartbeat.
    """
    if body and not body.endswith(b"\n"):
        body += b"\n"  # a request ends its last line
    with transaction.atomic():
        run, stream = _locked_stream(pk)
        _ensure_running(run)
        if not body.strip():  # a heartbeat: the client is alive, nothing else changes
            TestRun.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
            return BatchOutcome(stored=0, in_flight=_in_flight_lines(stream.pending.encode(), set())[1])
        if batch_number is not None:
            if batch_number <= stream.batches:
                TestRun.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
                return BatchOutcome(stored=0, in_flight=0, duplicate=True)
            if batch_number != stream.batches + 1:
                raise StreamRefused(
                    f"batch {batch_number} of run {pk} came before batch {stream.batches + 1}: send them in order", 409
                )
        head = stream.session_start.encode() + stream.pending.encode()
        results, _info, _cut = _parse(head, body, at_end=False, source=f"batch {stream.batches + 1}")
        start = _session_start_line(body)
        if start is not None and not stream.session_start:
            stream.session_start = start.decode()
        pending, in_flight = _in_flight_lines(stream.pending.encode() + body, {r.nodeid for r in results})
        if in_flight > MAX_IN_FLIGHT:  # each batch parses them again: a bound keeps batches cheap
            raise IngestError(
                f"batch {stream.batches + 1}",
                f"{in_flight} tests begun and not finished (at most {MAX_IN_FLIGHT}): send each test's teardown",
            )
        _store(run, results)
        for result in results:
            collect_metrics(result.properties, stream.metric_values)
        stream.pending = pending.decode()
        stream.batches = batch_number if batch_number is not None else stream.batches + 1
        stream.lines += body.count(b"\n")
        stream.save()
        counts = _live_counts(run, results)
        figures = LiveFigures.resume(pk, run.live_figures)  # the run page's cards, as a worker's run has them
        figures.observe(counts["total"], now=time.time())
        TestRun.objects.filter(pk=pk).update(
            heartbeat_at=timezone.now(),
            current_test=_last_nodeid(results, pending),
            live_figures=figures.as_json(with_state=True),
            **counts,
        )
    return BatchOutcome(stored=len(results), in_flight=in_flight)


def finish_run(pk: int, exitstatus: int) -> TestRun:
    """End the run: tests still in flight become cut-off errors, then ``complete_run`` as for a worker's run.

    Finishing a run that already finished this way answers it again (a client's retry); any other
    ended run is refused (409).
    """
    with transaction.atomic():
        run, stream = _locked_stream(pk)
        ended_so = run.status in (WorkStatus.FINISHED, WorkStatus.ERROR) and run.exitstatus == exitstatus
        if ended_so and run.summary_written:
            return run  # the client's retry of a finish that worked
        _ensure_running(run)
        head = stream.session_start.encode()
        results, info, cut_off = _parse(head, stream.pending.encode(), at_end=True, source="in-flight tests")
        _store(run, results)
        for result in results:
            collect_metrics(result.properties, stream.metric_values)
        stream.pending = ""
        stream.save()
        info.exitstatus = exitstatus
        info.incomplete = exitstatus in INCOMPLETE_EXITSTATUS or cut_off > 0
        info.duration = None  # the run's duration is its wall time, from open to finish
        # As a worker decides: pytest's 2-4 (interrupted, internal error, usage error) is an error.
        status = WorkStatus.ERROR if exitstatus in INCOMPLETE_EXITSTATUS else WorkStatus.FINISHED
        TestRun.objects.filter(pk=pk).update(status=status, finished_at=timezone.now())
    run.refresh_from_db()
    return complete_run(run, writer=StoredMetrics(stream.metric_values), info=info, status=status)
