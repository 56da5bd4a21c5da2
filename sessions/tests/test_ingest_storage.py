"""Storing parsed files: exact counts, atomic refusals, signatures, impact, identities."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from sessions.ingest.records import IngestError, Outcome, ParsedResult
from sessions.models import (
    BusinessArea,
    Environment,
    FailureSignature,
    ImpactRule,
    LoopSession,
    SignatureCategory,
    TestCase,
    TestResult,
    TestRun,
)
from sessions.services.ingestion.copy_storage import CopyStorage
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.orm_storage import OrmStorage
from sessions.services.ingestion.upload import ingest_file
from sessions.services.ingestion.writer import ResultWriter

from . import samples

pytestmark = pytest.mark.django_db


def ingest(data: bytes, name: str = "results.xml", slug: str = "s", **kw) -> TestRun:
    return ingest_file(io.BytesIO(data), name, session_slug=slug, **kw).run


def row_counts() -> dict[str, int]:
    models = list(apps.get_app_config("loop_sessions").get_models())
    return {m.__name__: m.objects.count() for m in models}


def test_it_counts_a_junit_file_from_elements_not_attributes():
    run = ingest(
        samples.junit(
            [
                ("tests.test_a.TestX", "test_ok", "passed"),
                ("tests.test_a.TestX", "test_bad", "failed"),
                ("tests.test_a", "test_err", "error"),
                ("tests.test_a", "test_skip", "skipped"),
                ("tests.test_a", "test_xf", "xfailed"),
            ]
        )
    )
    assert (run.total, run.passed, run.failed, run.errors, run.skipped, run.xfailed) == (5, 1, 1, 1, 1, 1)
    assert run.pass_rate == pytest.approx(33.33, abs=0.01)
    assert run.status == "finished" and run.summary_written
    assert TestResult.objects.filter(run=run).count() == 5


def test_it_stores_the_same_file_twice_as_one_run():
    data = samples.junit([("a", "b", "passed")])
    first = ingest_file(io.BytesIO(data), "r.xml", session_slug="s")
    second = ingest_file(io.BytesIO(data), "again.xml", session_slug="s")
    assert first.created and not second.created
    assert first.run.pk == second.run.pk
    assert TestRun.objects.count() == 1


def test_a_run_joins_the_latest_cycle_unless_it_names_one():
    first = ingest(samples.junit([("a", "one", "passed")]))
    assert first.cycle.number == 1
    third = ingest(samples.junit([("a", "two", "passed")]), cycle_number=3)
    assert third.cycle.number == 3
    latest = ingest(samples.junit([("a", "three", "passed")]))
    assert latest.cycle.number == 3
    assert LoopSession.objects.get(slug="s").cycles.count() == 2


def test_a_run_with_nothing_executed_has_no_pass_rate():
    run = ingest(samples.junit([("a", "s", "skipped")]))
    assert run.pass_rate is None
    empty = ingest(b"<testsuites></testsuites>", "empty-suite.xml")
    assert empty.total == 0 and empty.pass_rate is None


def test_an_interrupted_report_log_run_is_incomplete():
    run = ingest(samples.reportlog(samples.passing("t.py::a"), exitstatus=2), "r.jsonl")
    assert run.incomplete and run.exitstatus == 2


def test_setup_errors_are_fingerprinted_by_their_inner_error():
    run = ingest(samples.junit([("a", "x", "setup_error"), ("a", "y", "setup_error"), ("a", "z", "error")]))
    sigs = FailureSignature.objects.all()
    assert sigs.count() == 2
    refused = sigs.get(error_type__icontains="ConnectionRefused")
    assert refused.result_count == 2 and refused.test_count == 2
    assert run.signature_counts.count() == 2


def test_signatures_are_shared_across_runs_and_count_results_tests_and_modules():
    ingest(samples.junit([("tests.m1", "a", "timeout"), ("tests.m2", "b", "timeout")]), "one.xml")
    ingest(samples.junit([("tests.m1", "a", "timeout")]), "two.xml")
    sig = FailureSignature.objects.get()
    assert (sig.result_count, sig.test_count, sig.module_count) == (3, 2, 2)
    assert sig.first_seen_run_id != sig.last_seen_run_id


def test_mrr_at_risk_counts_each_failing_area_once():
    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    auth = BusinessArea.objects.create(name="auth", mrr=Decimal("50000"))
    BusinessArea.objects.create(name="billing", mrr=Decimal("999"))
    ImpactRule.objects.create(match="glob", pattern="tests/test_chat.py::*", area=chat, priority="P1")
    ImpactRule.objects.create(match="glob", pattern="tests/test_auth.py::*", area=auth)
    records = (
        samples.failing("tests/test_chat.py::test_a", "AssertionError: a")
        + samples.failing("tests/test_chat.py::test_b", "AssertionError: b")
        + samples.failing("tests/test_auth.py::test_c", "AssertionError: c")
        + samples.passing("tests/test_billing.py::test_d")
    )
    run = ingest(samples.reportlog(records), "r.jsonl")
    assert run.mrr_at_risk == Decimal("170000")
    assert run.by_priority["P1"]["failed"] == 2
    assert TestCase.objects.get(nodeid="tests/test_chat.py::test_a").priority == "P1"


def test_priority_and_area_come_from_markers():
    BusinessArea.objects.create(name="events", mrr=Decimal("42000"))
    records = samples.failing(
        "t.py::test_e", "AssertionError: no event", keywords={"p1": 1, "area_events": 1, "t.py": 1}
    )
    run = ingest(samples.reportlog(records), "r.jsonl")
    case = TestCase.objects.get()
    assert case.priority == "P1" and case.area.name == "events"
    assert run.mrr_at_risk == Decimal("42000")


def test_fast_end_to_end_tests_are_suspect():
    records = samples.passing("t.py::fast", duration=0.0) + samples.passing("t.py::real", duration=1.5)
    run = ingest(samples.reportlog(records), "r.jsonl")
    assert run.suspect == 1
    assert TestResult.objects.get(suspect=True).case.nodeid == "t.py::fast"


def test_a_test_has_one_identity_in_junit_and_report_log():
    ingest(samples.reportlog(samples.passing("tests/e2e/test_chat.py::TestAgent::test_x")), "r.jsonl")
    ingest(samples.junit([("tests.e2e.test_chat.TestAgent", "test_x", "failed")]), "r.xml")
    assert TestCase.objects.count() == 1


def test_valid_oddities_are_stored():
    long_name = "test_" + "n" * 10_000
    huge = "E" * 5_000_000
    data = (
        '<testsuites><testsuite tests="-3" failures="abc">'
        f'<testcase classname="a" name="{long_name}" time="NaN"><failure message="boom">{huge}</failure></testcase>'
        '<testcase classname="a" name="dup" time="-1"/><testcase classname="a" name="dup" time="inf"/>'
        "</testsuite></testsuites>"
    ).encode()
    run = ingest(data)
    assert run.total == 3 and run.failed == 1
    failure = TestResult.objects.get(outcome="failed")
    assert failure.duration is None
    assert len(failure.details) < 100_000
    assert len(failure.case.nodeid) > 10_000


def test_nul_and_lone_surrogates_in_a_report_log_are_stored():
    records = samples.failing("t.py::test_nul", "ValueError: bad \x00 byte \ud800 here")
    run = ingest(samples.reportlog(records), "r.jsonl")
    assert run.failed == 1
    assert "\x00" not in TestResult.objects.get().message


def test_gzipped_files_are_ingested():
    run = ingest(samples.gz(samples.junit([("a", "b", "passed")])), "r.xml.gz")
    assert run.passed == 1


@pytest.mark.parametrize("name", sorted(samples.HOSTILE))
def test_a_refused_file_stores_nothing(name):
    before = row_counts()
    with pytest.raises(IngestError) as refused:
        ingest(samples.HOSTILE[name], name, slug="brand-new")
    assert name in str(refused.value)
    assert row_counts() == before


def test_a_file_over_the_size_limit_is_refused():
    with pytest.raises(IngestError, match="larger than the limit"):
        ingest(samples.junit([("a", "b", "passed")] * 100), max_bytes=1024)
    assert TestRun.objects.count() == 0


@pytest.mark.parametrize("name", ["entity-bomb.xml", "corrupt-line.jsonl", "wrong-root.xml", "empty.xml"])
def test_the_ingest_command_names_the_file_and_exits_non_zero(name, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(samples.HOSTILE[name])
    before = row_counts()
    with pytest.raises(SystemExit) as exited:
        call_command("ingest", str(path), "--session", "cli")
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]
    if name.endswith(".jsonl"):
        assert f"{path}:" in err[0]  # the line number follows the file name
    assert row_counts() == before


def test_the_ingest_command_prints_run_and_url(tmp_path, capsys):
    one, two = tmp_path / "one.xml", tmp_path / "two.jsonl.gz"
    one.write_bytes(samples.junit([("a", "b", "passed")]))
    two.write_bytes(samples.gz(samples.reportlog(samples.passing("t.py::x"))))
    call_command("ingest", str(one), str(two), "--session", "cli", "--cycle", "2", "--environment", "ci")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        word, pk, url = line.split()[:3]
        assert word == "run" and url.endswith(f"/runs/{pk}/")
    session = LoopSession.objects.get(slug="cli")
    assert session.environment.name == "ci"
    assert set(session.runs.values_list("cycle__number", flat=True)) == {2}


def test_ten_thousand_nested_suites_are_stored():
    depth = 10_000
    data = b"<testsuites>" + b'<testsuite name="s">' * depth + b'<testcase classname="deep" name="t"/>'
    data += b"</testsuite>" * depth + b"</testsuites>"
    run = ingest(data, "deep.xml")
    assert run.total == run.passed == 1


def engine_results() -> list[ParsedResult]:
    """What the two engines format differently: COPY escapes, NUL, lone surrogates, markers, properties."""
    return [
        ParsedResult("t.py::test_fast", "test_fast", "t.py", Outcome.PASSED, 0.001),
        ParsedResult(
            "t.py::test_odd[tab\there]",
            "test_odd[tab\there]",
            "t.py",
            Outcome.FAILED,
            1.5,
            message="E: back\\slash\nnew\rline \\N",
            details="trace with \x00 and \ud800",
            error_type="E",
            phase="call",
            markers=("p1", "area_chat"),
            properties={"ws_latency_ms": "12.5", "k\x00": "v\ud800"},
        ),
        ParsedResult(
            "no_file_test",
            "",
            "",
            Outcome.ERROR,
            None,
            message="RuntimeError: boom",
            error_type="RuntimeError",
            phase="setup",
        ),
        ParsedResult("t.py::test_skip", "test_skip", "t.py", Outcome.SKIPPED, 0.0, message="needs GPU"),
        ParsedResult(
            "t.py::test_\u00fc\ud800",
            "test_\u00fc\ud800",
            "t.py",
            Outcome.FAILED,
            2.0,
            message="E: boom",
            error_type="E",
            properties={"ws_latency_ms": "20"},
        ),
    ]


def stored_by(run: TestRun) -> list[tuple]:
    rows = TestResult.objects.filter(run=run).select_related("case", "case__area", "signature__category")
    return [
        (r.case.nodeid, r.case.nodeid_hash, r.case.name, r.case.file, r.case.module, r.case.priority,
         r.case.area.name if r.case.area else None, r.case.markers, r.outcome, r.duration, r.suspect, r.phase,
         r.message, r.details, r.properties,
         r.signature and (r.signature.fingerprint, r.signature.title, r.signature.error_type, r.signature.normalized,
                          r.signature.sample_message, r.signature.category and r.signature.category.name))
        for r in rows.order_by("case__nodeid")
    ]  # fmt: skip


def test_both_storage_engines_store_the_same_rows() -> None:
    """The ORM engine (SQLite's) against the database's own, in one run: on PostgreSQL that is COPY."""
    BusinessArea.objects.create(name="chat", mrr=Decimal("1000"))
    SignatureCategory.objects.create(name="assertions", pattern=r"^E\b", position=0)
    seen = {}
    for name in ("default", "orm"):
        env = Environment.objects.create(name=f"env-{name}")
        session = LoopSession.objects.create(environment=env, slug=name, title=name)
        run = TestRun.objects.create(session=session, cycle=resolve_cycle(session, None), environment=env)
        writer = ResultWriter(run)
        if name == "orm":
            writer.storage = OrmStorage(writer.state)
        else:
            assert isinstance(writer.storage, CopyStorage if connection.vendor == "postgresql" else OrmStorage)
        assert writer.add(engine_results()[:2]) + writer.add(engine_results()[2:]) == 5  # two calls, as a live run
        assert writer.count == 5 and writer.prioritized
        seen[name] = (stored_by(run), writer.metrics())
    assert seen["default"] == seen["orm"]
    rows, metrics = seen["default"]
    assert metrics == {"ws_latency_ms": 16.25}
    odd = next(r for r in rows if "tab" in r[0])
    assert odd[0] == "t.py::test_odd[tab\there]" and odd[12] == "E: back\\slash\nnew\rline \\N"
    replaced = "\ufffd" * 3  # a lone surrogate: its three bytes, each replaced
    assert odd[13] == f"trace with \ufffd and {replaced}"
    assert odd[14] == {"ws_latency_ms": "12.5", "k\ufffd": f"v{replaced}"}
    assert (odd[5], odd[6], odd[10]) == ("P1", "chat", False)
    assert odd[15][5] == "assertions"
    assert next(r for r in rows if r[0] == "t.py::test_fast")[10]  # 0.001 s on an end-to-end environment: suspect


def test_a_category_whose_pattern_no_longer_compiles_does_not_stop_an_upload() -> None:
    """A row saved before the model validator existed is skipped; the other categories still label."""
    SignatureCategory.objects.create(name="old", pattern="(unclosed", position=0)
    SignatureCategory.objects.create(name="assertions", pattern="(?i)assertionerror", position=1)
    run = ingest(samples.junit([("tests.test_a", "test_bad", "failed")]))
    assert run.failed == 1
    assert FailureSignature.objects.get().category.name == "assertions"
