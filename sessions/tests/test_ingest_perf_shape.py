"""The shape of ingestion's work, never its speed: what goes through COPY, statements per batch, retries.

No test here times anything. On PostgreSQL these tests cover the COPY path (text formatted by hand,
a helper thread, ids from the sequence); on SQLite the bulk_create path, which must store the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import tracemalloc
from collections.abc import Iterator

import psycopg
import pytest
from django.db import IntegrityError, connection

from sessions.ingest import parse
from sessions.ingest.records import IngestError, Outcome, ParsedResult
from sessions.models import Environment, LoopSession, TestCase, TestResult, TestRun, identity_hash
from sessions.services.ingestion import copy_storage, state
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.upload import ingest_file
from sessions.services.ingestion.writer import ResultWriter

from . import samples

pytestmark = pytest.mark.django_db
ON_POSTGRES = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the COPY path is PostgreSQL's")


def ingest(data: bytes, name: str = "results.xml", slug: str = "s", environment: str | None = None) -> TestRun:
    return ingest_file(
        io.BytesIO(data), name, session_slug=slug, environment_name=environment, create_environment=True
    ).run


def stored(run: TestRun) -> list[tuple]:
    rows = TestResult.objects.filter(run=run).select_related("case").order_by("id")
    return [
        (r.case.nodeid, r.case.name, r.case.file, r.case.module, r.case.markers, r.outcome, r.duration, r.phase,
         r.message, r.details, r.properties)
        for r in rows
    ]  # fmt: skip


def expected(data: bytes, name: str) -> list[tuple]:
    out = []
    for r in parse(io.BytesIO(data), name).results:
        module = r.file or (r.nodeid.split("::", 1)[0] if "::" in r.nodeid else "")
        out.append((r.nodeid, r.name or r.nodeid, r.file, module, list(r.markers), r.outcome.value, r.duration,
                    r.phase, r.message, r.details, r.properties or None))  # fmt: skip
    return out


ODD = 'tab\there, newline\nthere, cr\rhere, back\\slash, \\N, quote" and ü'


def test_odd_text_is_stored_exactly_as_parsed() -> None:
    """Every character COPY's text format treats specially, in every text column."""
    records = []
    for i, (nodeid, message) in enumerate(
        [
            ("tests/test_a.py::test_tab[a\tb]", ODD),
            ("tests/test_a.py::test_newline[a\nb]", "x\\ny"),
            ("tests/test_a.py::test_back[a\\b]", "\\"),
            ("tests/test_a.py::test_plain", ""),
        ]
    ):
        keywords = {"slow\\mark": 1, "tab\tmark": 1, "test_a.py": 1}
        props = [["note", ODD], ["n", i]]
        if message:
            records += samples.failing(nodeid, message, keywords=keywords, user_properties=props)
        else:
            records += samples.passing(nodeid, keywords=keywords, user_properties=props)
    data = samples.reportlog(records)
    run = ingest(data, "odd.jsonl")
    assert run.total == 4
    assert stored(run) == expected(data, "odd.jsonl")


def test_odd_junit_attributes_are_stored_exactly_as_parsed() -> None:
    cases = "".join(
        f'<testcase classname="{cls}" name="{name}" file="{file}" time="{t}">{body}</testcase>'
        for cls, name, file, t, body in [
            ("tests.test_a", "test_x[a&#9;b]", "", "0.25", ""),
            ("tests.test_a", "test_y[a&#10;b]", "", "1e-05", '<failure message="back\\slash">line1&#13;\nline2\t\\N</failure>'),
            ("c", "t\\z", "dir\\sub\\f.js", "nonsense", '<skipped message="tab&#9;reason"/>'),
            ("", "bare", "", "", '<properties><property name="k\\" value="v&#9;w"/></properties>'),
        ]
    )  # fmt: skip
    data = f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>'.encode()
    run = ingest(data)
    assert stored(run) == expected(data, "results.xml")


def test_nul_and_lone_surrogates_are_cleaned_in_every_column() -> None:
    nodeid = "tests/test_a.py::test_nul[\x00\ud800]"
    records = samples.failing(nodeid, "ValueError: \x00 and \udcff", user_properties=[["p", "\x00\ud800"]])
    run = ingest(samples.reportlog(records), "nul.jsonl")
    result = TestResult.objects.select_related("case").get(run=run)
    assert result.case.nodeid == "tests/test_a.py::test_nul[\ufffd\ufffd\ufffd\ufffd]"
    assert result.case.nodeid_hash == identity_hash(result.case.nodeid)
    assert result.message == "ValueError: \ufffd and \ufffd\ufffd\ufffd"
    assert "\x00" not in json.dumps(result.properties)


def many(n: int, *, distinct: int | None = None) -> bytes:
    """n results over ``distinct`` test identities (repeats across batches), a tenth of them failed."""
    distinct = distinct or n
    kinds = ["failed" if i % 10 == 3 else "passed" for i in range(n)]
    return samples.junit([(f"tests.test_m{i % distinct % 3}", f"test_{i % distinct}", k) for i, k in enumerate(kinds)])


def test_batches_repeat_identities_without_duplicating_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "BATCH_SIZE", 7)
    data = many(60, distinct=25)
    run = ingest(data)
    assert (run.total, run.failed) == (60, 6)
    assert TestCase.objects.count() == 25
    assert stored(run) == expected(data, "results.xml")  # file order, each result on its own case


@pytest.mark.parametrize("preload", [True, False], ids=["environment-read-once", "asked-batch-by-batch"])
def test_a_second_file_finds_the_cases_of_the_first(preload: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "BATCH_SIZE", 9)
    if not preload:
        monkeypatch.setattr(copy_storage, "PRELOAD_LIMIT", 0)
    first = ingest(many(40))
    ids = dict(TestCase.objects.values_list("nodeid", "id"))
    second = ingest(many(50))  # ten more tests, and a different file
    assert (first.total, second.total) == (40, 50)
    assert TestCase.objects.count() == 50
    assert {n: i for n, i in TestCase.objects.values_list("nodeid", "id") if n in ids} == ids
    assert sorted(TestResult.objects.filter(run=second).values_list("case_id", flat=True)) == sorted(
        TestCase.objects.values_list("id", flat=True)
    )


def test_new_case_ids_follow_the_file() -> None:
    run = ingest(many(30))
    names = list(TestResult.objects.filter(run=run).order_by("case_id").values_list("case__name", flat=True))
    assert names == [f"test_{i}" for i in range(30)]


def writer_for(slug: str = "live") -> ResultWriter:
    env, _ = Environment.objects.get_or_create(name="default")
    session = LoopSession.objects.create(environment=env, slug=slug, title=slug)
    run = TestRun.objects.create(session=session, cycle=resolve_cycle(session, None), environment=env)
    return ResultWriter(run)


def results(names: list[str], *, fail_at: int | None = None) -> Iterator[ParsedResult]:
    for i, name in enumerate(names):
        if i == fail_at:
            raise IngestError("x.jsonl", "line is not JSON", line=i)
        outcome = Outcome.FAILED if i % 2 else Outcome.PASSED
        yield ParsedResult(f"t.py::{name}", name, "t.py", outcome, 0.5, message=f"E{i % 3}: boom", error_type="E")


def test_an_add_that_fails_half_way_stores_nothing_and_forgets_its_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "BATCH_SIZE", 4)
    writer = writer_for()
    names = [f"test_{i}" for i in range(11)]
    with pytest.raises(IngestError):
        writer.add(results(names, fail_at=9))
    assert (TestCase.objects.count(), TestResult.objects.count(), writer.count) == (0, 0, 0)
    assert writer.state.case_ids == {} and writer.state.signature_ids == {}
    assert writer.add(results(names)) == 11
    assert (TestCase.objects.count(), TestResult.objects.count(), writer.count) == (11, 11, 11)


def test_a_case_created_by_someone_else_meanwhile_is_found_on_the_retry() -> None:
    """The live run's retry (run_execution.RunExecution.store): the first add fails whole, the second finds the case."""
    writer = writer_for()
    writer.add(results(["test_0"]))  # the environment is now read once and known
    other = TestCase.objects.get()
    TestCase.objects.create(environment=other.environment, nodeid="t.py::test_1", nodeid_hash=identity_hash("t.py::test_1"),
                            name="test_1")  # fmt: skip
    try:
        writer.add(results(["test_0", "test_1", "test_2"]))
    except IntegrityError:
        assert connection.vendor == "postgresql"  # COPY met the unique index; a Django error, not psycopg's
        assert writer.add(results(["test_0", "test_1", "test_2"])) == 3
    assert TestCase.objects.count() == 3
    assert TestResult.objects.count() == 4


@contextlib.contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every statement psycopg sends, from Django's cursors and from the COPY thread alike."""
    seen: list[str] = []
    execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy

    def counted_execute(self, query, *args, **kwargs):
        seen.append(str(query)[:60])
        return execute(self, query, *args, **kwargs)

    def counted_copy(self, statement, *args, **kwargs):
        seen.append(str(statement)[:60])
        return copy(self, statement, *args, **kwargs)

    psycopg.Cursor.execute, psycopg.Cursor.copy = counted_execute, counted_copy
    try:
        yield seen
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.copy = execute, copy


@ON_POSTGRES
def test_statements_grow_with_batches_not_with_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "BATCH_SIZE", 100)
    counts = {}
    for n in (100, 1000, 2000):
        with counting_statements() as seen:
            ingest(many(n), slug=f"s{n}", environment=f"e{n}")  # every test is new
        counts[n] = len(seen)
        copies = [s for s in seen if s.startswith("COPY")]
        assert len(copies) == 2 * (n // 100)  # the batch's new cases, then its results
    per_batch = (counts[2000] - counts[1000]) / 10
    assert per_batch <= 3, counts  # two COPYs and the ids reserved for the next batch
    assert counts[100] < 100, counts  # the run, its summary and the signatures: a fixed cost


def test_memory_stays_flat_as_files_grow(monkeypatch: pytest.MonkeyPatch) -> None:
    """tracemalloc sees every thread's Python objects: a writer that kept rows would grow with the file.

    The same 1,500 tests run again and again: only the case cache grows with distinct tests (by design).
    """
    monkeypatch.setattr(state, "BATCH_SIZE", 2000)
    peaks = []
    for n in (6000, 18000):
        data = many(n, distinct=1500)
        tracemalloc.start()
        try:
            ingest(data, slug=f"m{n}")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.25, peaks
