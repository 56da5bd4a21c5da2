"""TRX, NUnit 3, xUnit.net v2 and real ``go test -json``: counted so that totals equal each runner's
own summary, stored like JUnit, and refused like JUnit when hostile (nothing stored)."""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from django.apps import apps

from sessions.ingest import IngestError, parse
from sessions.services.ingestion.upload import ingest_file
from sessions.tests import format_samples as fs

GO_MODULE = Path(__file__).parent / "data" / "gotest"
TOTALS = ("tests", "passed", "failed", "errors", "skipped")


def totals(data: bytes, name: str = "results.xml") -> tuple[dict[str, int], str, list]:
    parsed = parse(io.BytesIO(data), name)
    results = list(parsed.results)
    counts = Counter(r.outcome.value for r in results)
    found = {
        "tests": len(results),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
    }
    return found, parsed.info.format, results


@pytest.mark.parametrize(
    ("sample", "summary", "fmt"),
    [
        (fs.trx, fs.TRX_SUMMARY, "trx"),
        (fs.nunit3, fs.NUNIT3_SUMMARY, "nunit3"),
        (fs.xunit2, fs.XUNIT2_SUMMARY, "xunit2"),
    ],
)
@pytest.mark.parametrize("wrap", ["plain", "gz"])
def test_dotnet_formats_are_detected_and_counted_like_their_runners(sample, summary, fmt, wrap) -> None:
    data = sample()
    if wrap == "gz":
        data = gzip.compress(data)
    found, detected, _ = totals(data, "anything.bin")
    assert detected == fmt
    assert found == summary


def test_trx_identity_comes_from_the_test_definitions_written_after_the_results() -> None:
    _, _, results = totals(fs.trx())
    ids = [r.nodeid for r in results]
    assert "Chat.Tests.SocketTests::Connects" in ids and "Chat.Tests.RoomTests::Connects" in ids
    failed = next(r for r in results if r.nodeid == "Chat.Tests.SocketTests::Reconnects")
    assert failed.message == "Expected: 1011"
    assert "SocketTests.cs:line 42" in failed.details and "connecting to ws://staging:8765" in failed.details
    assert failed.duration == 1.5
    timeout = next(r for r in results if r.nodeid == "Chat.Tests.RoomTests::Hangs")
    assert timeout.message == "the test ended with outcome Timeout" and timeout.duration == 60.0


def test_trx_from_a_stream_that_cannot_be_read_twice_names_tests_by_their_test_name() -> None:
    class OneWay(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    parsed = parse(OneWay(fs.xunit2()), "pipe.xml")
    assert len(list(parsed.results)) == 5
    parsed = parse(OneWay(fs.trx()), "pipe.trx")
    results = list(parsed.results)
    assert len(results) == 6 and results[0].nodeid == "Connects"


def test_nunit3_keeps_messages_reasons_output_and_the_fixture_teardown_failure() -> None:
    parsed = parse(io.BytesIO(fs.nunit3()), "TestResult.xml")
    results = {r.nodeid: r for r in parsed.results}
    failed = results["Shop.Tests.CartTests::AppliesDiscount(10,90)"]
    assert failed.message == "Expected: 90" and "discount service answered 500" in failed.details
    assert results["Shop.Tests.CartTests::Refund"].message == "payments sandbox down"
    assert results["Shop.Tests.CartTests::Checkout"].outcome == "error"
    assert "the cart database is locked" in parsed.info.suite_output
    assert parsed.info.duration == 2.125


def test_xunit2_keeps_exception_types_repeated_traits_and_assembly_errors() -> None:
    parsed = parse(io.BytesIO(fs.xunit2()), "xunit.xml")
    results = {r.nodeid: r for r in parsed.results}
    assert results["Api.Tests.OrderTests::Cancels"].error_type == "Xunit.Sdk.EqualException"
    assert results["Api.Tests.OrderTests::Creates"].properties == {"Category": ["smoke", "p1"]}
    assert results["Api.Tests.OrderTests::Archives"].message == "archive service not deployed"
    assert "the database did not stop" in parsed.info.suite_output


# -- real go test -json -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_run(tmp_path_factory) -> tuple[bytes, str]:
    """``go test -json ./...`` and ``go test -v ./...`` of the module in data/gotest, offline, in a temp dir."""
    go = shutil.which("go")
    assert go, "Go is needed for these tests: apt-get install golang-go (.ci/run does)"
    work = tmp_path_factory.mktemp("go")
    module = work / "module"
    shutil.copytree(GO_MODULE, module)
    env = {
        **os.environ,
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GO111MODULE": "on",
    }
    as_json = subprocess.run([go, "test", "-json", "./..."], cwd=module, env=env, capture_output=True, timeout=300)
    verbose = subprocess.run([go, "test", "-v", "./..."], cwd=module, env=env, capture_output=True, timeout=300)
    assert as_json.returncode != 0  # a failing test and a package that does not build
    return as_json.stdout, verbose.stdout.decode() + verbose.stderr.decode()


def go_summary(verbose: str) -> dict[str, int]:
    """go's own account: a ``--- PASS/FAIL/SKIP`` line per test and subtest, a ``[build failed]`` per package."""
    lines = Counter(m.group(1) for m in re.finditer(r"^\s*--- (PASS|FAIL|SKIP): ", verbose, re.M))
    broken = len(re.findall(r"^FAIL\t\S+ \[build failed\]", verbose, re.M))
    return {
        "tests": sum(lines.values()) + broken,
        "passed": lines["PASS"],
        "failed": lines["FAIL"],
        "errors": broken,
        "skipped": lines["SKIP"],
    }


def test_go_test_json_totals_equal_go_test_verbose(go_run) -> None:
    stream, verbose = go_run
    found, fmt, results = totals(stream, "go.json")
    assert fmt == "gotest"
    summary = go_summary(verbose)
    assert found == summary
    assert summary == {"tests": 15, "passed": 9, "failed": 3, "errors": 1, "skipped": 2}
    by_id = {r.nodeid: r for r in results}
    sub = by_id["example.com/loopdashgo/calc::TestTable/4+4"]
    assert sub.outcome == "failed" and sub.message == "got 8, want 9"
    assert by_id["example.com/loopdashgo/calc::TestAddFails"].message == "Add(2, 2) = 4, want 5"
    assert by_id["example.com/loopdashgo/calc::TestNestedSkip/inner/deep"].message == "not on this platform"
    broken = by_id["example.com/loopdashgo/broken"]
    assert broken.outcome == "error" and "build failed" in broken.message


def test_go_build_errors_in_the_stream_become_the_details(go_run) -> None:
    stream, _ = go_run
    # With 2>&1 the compiler's messages come first, as plain lines.
    text = b'# example.com/loopdashgo/broken\nbroken/broken.go:4:28: cannot use "forty-two"\n' + stream
    _, fmt, results = totals(text, "go.log")
    assert fmt == "gotest"
    broken = next(r for r in results if r.nodeid == "example.com/loopdashgo/broken")
    assert "cannot use" in broken.details


def test_a_go_1_24_build_failure_event_is_one_error() -> None:
    lines = [
        '{"ImportPath":"x/y [x/y.test]","Action":"build-output","Output":"# x/y\\n"}',
        '{"ImportPath":"x/y [x/y.test]","Action":"build-output","Output":"y.go:3:1: syntax error\\n"}',
        '{"ImportPath":"x/y [x/y.test]","Action":"build-fail"}',
        '{"Time":"2026-03-02T10:00:00Z","Action":"start","Package":"x/y"}',
        '{"Time":"2026-03-02T10:00:00Z","Action":"output","Package":"x/y","Output":"FAIL\\tx/y [build failed]\\n"}',
        '{"Time":"2026-03-02T10:00:00Z","Action":"fail","Package":"x/y","Elapsed":0,"FailedBuild":"x/y [x/y.test]"}',
    ]
    found, fmt, results = totals("\n".join(lines).encode(), "go.json")
    assert fmt == "gotest" and found["errors"] == 1 and found["tests"] == 1
    assert "syntax error" in results[0].details


@pytest.mark.django_db
def test_go_results_are_stored_with_their_signatures(go_run) -> None:
    stream, _ = go_run
    run = ingest_file(io.BytesIO(stream), "go.jsonl", session_slug="go").run
    assert (run.format, run.total, run.passed, run.failed, run.errors, run.skipped) == ("gotest", 15, 9, 3, 1, 2)
    failing = run.results.filter(outcome__in=["failed", "error"])
    assert failing.count() == 4 and not failing.filter(signature__isnull=True).exists()


# -- hostile variants: refused, nothing stored ----------------------------------------------------------


def row_counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in apps.get_app_config("loop_sessions").get_models()}


HOSTILE = {
    "trx-dtd.trx": (fs.trx(hostile_prolog=fs.DTD_PROLOG), "DTDs and entity declarations are refused"),
    "nunit-dtd.xml": (fs.nunit3(hostile_prolog=fs.DTD_PROLOG), "DTDs and entity declarations are refused"),
    "xunit-dtd.xml": (fs.xunit2(hostile_prolog=fs.DTD_PROLOG), "DTDs and entity declarations are refused"),
    "trx-entity.trx": (fs.trx().replace(b"Expected: 1011", b"&xxe;"), "entity references are refused"),
    "nunit-cut.xml": (
        fs.nunit3()[: fs.nunit3().index(b"But was")],
        "the file ends inside a CDATA section opened on line",
    ),
    "xunit-bad-utf8.xml": (fs.xunit2().replace(b"Creates", b"Cr\xffates"), "invalid UTF-8"),
    "go-not-an-event.json": (b'{"Action":"run","Package":"p","Test":"T"}\n{"nope":1}\n', "not a go test -json event"),
    "go-cut.json": (b'{"Action":"run","Package":"p","Test":"T"}\n{"Action":"pa', "the last line is cut off"),
    "go-bad-utf8.json": (b'{"Action":"run","Package":"p","Test":"T"}\nFAIL\t\xff\n', "invalid UTF-8"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_variants_are_refused_and_nothing_is_stored(name) -> None:
    data, problem = HOSTILE[name]
    before = row_counts()
    with pytest.raises(IngestError) as refused:
        ingest_file(io.BytesIO(data), name, session_slug="hostile")
    assert str(refused.value).startswith(name) and problem in str(refused.value)
    assert row_counts() == before


@pytest.mark.django_db
@pytest.mark.parametrize("sample", [fs.trx, fs.nunit3, fs.xunit2])
def test_each_dotnet_format_over_the_size_limit_is_refused(sample) -> None:
    with pytest.raises(IngestError, match="larger than the limit"):
        ingest_file(io.BytesIO(gzip.compress(sample() * 50)), "big.gz", session_slug="big", max_bytes=4096)
    assert row_counts()["TestRun"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sample", "summary"), [(fs.trx, fs.TRX_SUMMARY), (fs.nunit3, fs.NUNIT3_SUMMARY), (fs.xunit2, fs.XUNIT2_SUMMARY)]
)
def test_dotnet_runs_are_stored_with_their_runners_totals_and_suite_output(sample, summary) -> None:
    run = ingest_file(io.BytesIO(sample()), "results.xml", session_slug="dotnet").run
    assert {k: getattr(run, k if k != "tests" else "total") for k in TOTALS} == summary
    if sample is not fs.trx:
        assert run.suite_output
