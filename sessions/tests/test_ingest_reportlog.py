"""pytest report-log parsing: combining phases (docs/INGESTION.md, Counting), xdist, longrepr shapes."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions.ingest import parse
from sessions.ingest.records import MAX_DETAILS_CHARS, MAX_MESSAGE_CHARS, ParsedResult, RunInfo
from sessions.ingest.reportlog import longrepr_text, markers, node_name

DATA = Path(__file__).parent / "data"
START = {"$report_type": "SessionStart", "pytest_version": "9.2.0"}
FINISH = {"$report_type": "SessionFinish", "exitstatus": 1}


def report(nodeid: str, when: str, outcome: str = "passed", **extra: Any) -> dict[str, Any]:
    record = {
        "$report_type": "TestReport",
        "nodeid": nodeid,
        "location": [nodeid.partition("::")[0], 1, node_name(nodeid)],
        "keywords": {node_name(nodeid): 1, "test_a.py": 1, "tests": 1, "project": 1, "": 1},
        "outcome": outcome,
        "longrepr": None,
        "when": when,
        "user_properties": [],
        "sections": [],
        "duration": 0.25,
        "start": 1000.0,
        "stop": 1000.25,
    }
    record.update(extra)
    return record


def phases(nodeid: str, setup: str = "passed", call: str | None = "passed", teardown: str = "passed",
           **call_extra: Any) -> list[dict[str, Any]]:  # fmt: skip
    records = [report(nodeid, "setup", setup)]
    if call is not None:
        records.append(report(nodeid, "call", call, **call_extra))
    records.append(report(nodeid, "teardown", teardown))
    return records


def jsonl(*records: dict[str, Any], start: bool = True, finish: bool = True) -> bytes:
    lines = ([START] if start else []) + list(records) + ([FINISH] if finish else [])
    return "".join(json.dumps(r) + "\n" for r in lines).encode()


def parse_records(*records: dict[str, Any], **kwargs: bool) -> tuple[list[ParsedResult], RunInfo]:
    parsed = parse(io.BytesIO(jsonl(*records, **kwargs)), "report.jsonl")
    return list(parsed.results), parsed.info


def crash(message: str, path: str = "tests/test_a.py", lineno: int = 3) -> dict[str, Any]:
    entry = {"type": "ReprEntry", "data": {"lines": ["    def test_x():", ">       boom()", f"E       {message}"],
             "reprfuncargs": {"args": []}, "reprlocals": None,
             "reprfileloc": {"path": path, "lineno": lineno, "message": message.split(":")[0]}, "style": "long"}}  # fmt: skip
    traceback = {"reprentries": [entry], "extraline": None, "style": "long"}
    reprcrash = {"path": "/abs/" + path, "lineno": lineno, "message": message}
    return {"reprcrash": reprcrash, "reprtraceback": traceback, "sections": [], "chain": [[traceback, reprcrash, None]]}


T = "tests/test_a.py::test_x"
XFAIL = {"wasxfail": "reason: known bug"}


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (phases(T), ("passed", "")),
        (phases(T, setup="failed", call=None), ("error", "setup")),
        (phases(T, setup="skipped", call=None), ("skipped", "")),
        ([report(T, "setup", "skipped", **XFAIL), report(T, "teardown")], ("xfailed", "")),
        (phases(T, call="failed"), ("failed", "call")),
        (phases(T, call="skipped"), ("skipped", "")),
        (phases(T, call="skipped", **XFAIL), ("xfailed", "")),
        (phases(T, call="passed", **XFAIL), ("xpassed", "")),
        (phases(T, teardown="failed"), ("error", "teardown")),
        (phases(T, call="failed", teardown="failed"), ("failed", "call")),
        (phases(T, call="skipped", teardown="failed"), ("error", "teardown")),
        (phases(T, call="skipped", teardown="failed", **XFAIL), ("error", "teardown")),
        (phases(T, call="passed", teardown="failed", **XFAIL), ("error", "teardown")),
        (phases(T, setup="failed", call=None, teardown="failed"), ("error", "setup")),
    ],
    ids=[
        "passed", "setup-failed", "setup-skipped", "setup-xfail", "call-failed", "call-skipped", "xfailed",
        "xpassed", "teardown-failed", "failed-and-teardown", "skipped-and-teardown", "xfailed-and-teardown",
        "xpassed-and-teardown", "setup-and-teardown",
    ],
)  # fmt: skip
def test_phases_combine(records: list[dict[str, Any]], expected: tuple[str, str]) -> None:
    [result], _ = parse_records(*records)
    assert (result.outcome.value, result.phase) == expected


def test_failure_text_comes_from_the_deciding_phase() -> None:
    records = phases(T, call="failed", teardown="failed")
    records[1]["longrepr"] = crash("ValueError: bad value 7")
    records[2]["longrepr"] = crash("RuntimeError: teardown exploded")
    [result], _ = parse_records(*records)
    assert (result.error_type, result.message) == ("ValueError", "ValueError: bad value 7")
    assert "E       ValueError: bad value 7" in result.details
    assert "tests/test_a.py:3: ValueError" in result.details
    assert "--- teardown ---" in result.details and "teardown exploded" in result.details


def test_teardown_error_describes_the_teardown() -> None:
    records = phases(T, teardown="failed")
    records[2]["longrepr"] = crash("RuntimeError: teardown exploded")
    [result], _ = parse_records(*records)
    assert (result.outcome, result.phase, result.error_type) == ("error", "teardown", "RuntimeError")


def test_skip_and_xfail_reasons_match_pytest_junit() -> None:
    skipped = phases("t.py::test_s", call="skipped", longrepr=["/abs/t.py", 4, "Skipped: not today"])
    xfailed = phases("t.py::test_x", call="skipped", wasxfail="reason: known bug", longrepr=crash("AssertionError"))
    xpassed = phases("t.py::test_p", call="passed", wasxfail="flaky")
    results, _ = parse_records(*skipped, *xfailed, *xpassed)
    assert [(r.outcome.value, r.message) for r in results] == [
        ("skipped", "not today"),
        ("xfailed", "known bug"),
        ("xpassed", "flaky"),
    ]
    assert results[0].details == "/abs/t.py:4: Skipped: not today"


# -- subtests --------------------------------------------------------------------------------------------


def subtest(nodeid: str, outcome: str, message: str = "") -> dict[str, Any]:
    record = report(nodeid, "call", outcome, longrepr=crash(message) if message else None)
    record["$report_type"] = "SubTestReport"
    record["_subtest.context"] = {"msg": "step", "kwargs": {"i": "1"}}
    return record


def test_failed_subtest_fails_a_passed_test() -> None:
    records = phases(T)
    records[1:1] = [subtest(T, "passed"), subtest(T, "failed", "AssertionError: step 1 broke"), subtest(T, "passed")]
    [result], _ = parse_records(*records)
    assert (result.outcome, result.error_type, result.message) == (
        "failed",
        "AssertionError",
        "AssertionError: step 1 broke",
    )


def test_failed_subtest_names_the_problem_of_a_failed_test() -> None:
    """pytest 9 also fails the test itself with ``contains 1 failed subtest``: the subtest says why."""
    records = phases(T, call="failed", longrepr="contains 1 failed subtest")
    records[1:1] = [subtest(T, "failed", "AssertionError: step 1 broke")]
    [result], _ = parse_records(*records)
    assert (result.outcome, result.message) == ("failed", "AssertionError: step 1 broke")


def test_passing_subtests_do_not_count() -> None:
    records = phases(T)
    records[1:1] = [subtest(T, "passed"), subtest(T, "passed")]
    results, _ = parse_records(*records)
    assert outcomes(results) == ["passed"]


# -- collection ------------------------------------------------------------------------------------------

IMPORT_ERROR = """ImportError while importing test module '/abs/tests/test_broken.py'.
Traceback:
tests/test_broken.py:3: in <module>
    import missing_module
E   ModuleNotFoundError: No module named 'missing_module'"""


def collect(nodeid: str, outcome: str, longrepr: Any = None) -> dict[str, Any]:
    return {"$report_type": "CollectReport", "nodeid": nodeid, "outcome": outcome, "longrepr": longrepr, "result": None,
            "sections": []}  # fmt: skip


def test_collect_reports() -> None:
    results, _ = parse_records(
        collect("", "passed"),
        collect("tests/test_broken.py", "failed", IMPORT_ERROR),
        collect("tests/test_skipped.py", "skipped", ["/abs/tests/test_skipped.py", 5, "Skipped: needs staging"]),
        collect("tests/test_a.py", "passed"),
    )
    broken, skipped = results
    assert (broken.nodeid, broken.file, broken.outcome, broken.phase) == (
        "tests/test_broken.py", "tests/test_broken.py", "error", "collect",
    )  # fmt: skip
    assert (broken.error_type, broken.message) == (
        "ModuleNotFoundError",
        "ModuleNotFoundError: No module named 'missing_module'",
    )
    assert (skipped.outcome, skipped.message) == ("skipped", "needs staging")


def test_syntax_error_collection_message() -> None:
    text = 'E     File "/abs/tests/test_s.py", line 3\nE       def (\nE           ^\nE   SyntaxError: invalid syntax'
    [result], _ = parse_records(collect("tests/test_s.py", "failed", text))
    assert (result.error_type, result.message) == ("SyntaxError", "SyntaxError: invalid syntax")


# -- streaming, xdist, incomplete runs -----------------------------------------------------------------


def test_xdist_interleaving() -> None:
    a, b = phases("t.py::test_a", call="failed"), phases("t.py::test_b")
    interleaved = [a[0], b[0], b[1], a[1], b[2], a[2]]
    results, _ = parse_records(*interleaved)
    assert [(r.nodeid, r.outcome.value) for r in results] == [("t.py::test_b", "passed"), ("t.py::test_a", "failed")]


def test_results_stream_while_reading() -> None:
    """Each test is yielded at its teardown: the parser never holds more than the tests in flight."""

    def lines() -> Iterator[bytes]:
        yield json.dumps(START).encode() + b"\n"
        for i in range(50_000):
            for record in phases(f"t.py::test_{i}"):
                yield json.dumps(record).encode() + b"\n"

    class Lines:
        def __init__(self) -> None:
            self.source, self.consumed = lines(), 0

        def read(self, size: int = -1) -> bytes:
            data = b"".join(line for _, line in zip(range(100), self.source, strict=False))
            self.consumed += len(data)
            return data

    source = Lines()
    parsed = parse(source, "report.jsonl")
    assert parsed.info.format == "reportlog"
    assert next(parsed.results).nodeid == "t.py::test_0"
    assert source.consumed < 1024 * 1024  # of about 75 MB
    assert sum(1 for _ in parsed.results) == 49_999
    assert parsed.info.incomplete  # no SessionFinish


def test_unfinished_tests_are_reported() -> None:
    """The test that hung until the run was killed is the one to show: as an error, never dropped."""
    results, info = parse_records(
        *phases("t.py::test_done"),
        report("t.py::test_hung", "setup"),
        report("t.py::test_called", "setup"),
        report("t.py::test_called", "call", "failed", longrepr=crash("AssertionError: x")),
        finish=False,
    )
    assert [(r.nodeid, r.outcome.value, r.phase) for r in results] == [
        ("t.py::test_done", "passed", ""),
        ("t.py::test_hung", "error", "call"),
        ("t.py::test_called", "failed", "call"),
    ]
    assert results[1].message == "the run ended before this test finished (no call report)"
    assert info.incomplete and info.exitstatus is None


def test_xdist_worker_crash() -> None:
    crashed = report("t.py::test_c", "???", "failed", longrepr="worker 'gw0' crashed while running 't.py::test_c'")
    results, _ = parse_records(report("t.py::test_c", "setup"), crashed, *phases("t.py::test_d"))
    assert [(r.nodeid, r.outcome.value) for r in results] == [("t.py::test_c", "error"), ("t.py::test_d", "passed")]
    assert results[0].message.startswith("worker 'gw0' crashed")


def test_rerun_attempts_do_not_count() -> None:
    """pytest-rerunfailures reports earlier attempts with outcome "rerun"; the last attempt counts."""
    records = [*phases(T, call="rerun"), *phases(T, call="rerun"), *phases(T)]
    results, _ = parse_records(*records)
    assert outcomes(results) == ["passed"]


@pytest.mark.parametrize(
    ("status", "incomplete"), [(0, False), (1, False), (2, True), (3, True), (4, True), (5, False)]
)
def test_exitstatus(status: int, incomplete: bool) -> None:
    data = (
        jsonl(*phases(T), finish=False) + json.dumps({"$report_type": "SessionFinish", "exitstatus": status}).encode()
    )
    parsed = parse(io.BytesIO(data), "report.jsonl")
    list(parsed.results)
    assert (parsed.info.exitstatus, parsed.info.incomplete) == (status, incomplete)


def test_other_records_are_ignored() -> None:
    data = (
        jsonl(start=True, finish=False)
        + b'{"$report_type": "WarningMessage", "message": "deprecated", "category": "DeprecationWarning"}\n'
        + b'{"$report_type": "SomethingNew", "whatever": [1, 2, 3]}\n'
        + b"\n   \n"
        + "".join(json.dumps(r) + "\r\n" for r in phases(T)).encode()
        + b'{"$report_type": "SessionFinish", "exitstatus": 0}'  # no newline at the end: still complete
    )
    parsed = parse(io.BytesIO(data), "report.jsonl")
    assert outcomes(list(parsed.results)) == ["passed"]
    assert (parsed.info.exitstatus, parsed.info.incomplete) == (0, False)


def test_durations_and_run_times() -> None:
    records = phases(T)
    records[0].update(duration=0.5, start=100.0, stop=100.5)
    records[1].update(duration=2.0, start=100.5, stop=102.5)
    records[2].update(duration=-1, start=102.5, stop=103.0)  # nonsense: skipped
    nonsense = phases("t.py::test_n")
    for record in nonsense:
        record.update(duration="fast", start=101.0, stop=101.5)
    results, info = parse_records(*records, *nonsense)
    assert [r.duration for r in results] == [2.5, None]
    assert (info.started_at, info.duration) == (100.0, 3.0)


# -- longrepr, markers, properties -----------------------------------------------------------------------


def test_longrepr_shapes() -> None:
    assert longrepr_text(None) == ""
    assert longrepr_text("plain text") == "plain text"
    assert longrepr_text(["/abs/t.py", 3, "Skipped: x"]) == "/abs/t.py:3: Skipped: x"
    chained = crash("KeyError: 'k'")
    second = crash("RuntimeError: wrapped")
    chained["chain"].append([second["reprtraceback"], second["reprcrash"], None])
    chained["chain"][0][2] = "During handling of the above exception, another exception occurred:"
    text = longrepr_text(chained)
    assert text.index("KeyError") < text.index("During handling") < text.index("RuntimeError: wrapped")
    no_chain = crash("OSError: disk")
    del no_chain["chain"]
    assert "OSError: disk" in longrepr_text(no_chain)
    assert longrepr_text({"reprcrash": {"message": "only a crash"}}) == "only a crash"
    assert longrepr_text({"weird": True}) == ""


def test_chained_exception_type_is_the_final_one() -> None:
    longrepr = crash("KeyError: 'k'")
    final = crash("RuntimeError: wrapped")
    longrepr["chain"].append([final["reprtraceback"], final["reprcrash"], None])
    longrepr["reprcrash"] = final["reprcrash"]
    [result], _ = parse_records(*phases(T, call="failed", longrepr=longrepr))
    assert (result.error_type, result.message) == ("RuntimeError", "RuntimeError: wrapped")


def test_bare_assert_gets_its_type_from_the_traceback() -> None:
    longrepr = crash("assert 1 == 2")
    longrepr["reprtraceback"]["reprentries"][0]["data"]["reprfileloc"]["message"] = "AssertionError"
    longrepr["chain"][0][0] = longrepr["reprtraceback"]
    [result], _ = parse_records(*phases(T, call="failed", longrepr=longrepr))
    assert (result.error_type, result.message) == ("AssertionError", "assert 1 == 2")


def test_captured_sections_are_kept_and_everything_is_bounded() -> None:
    sections = [["Captured stdout call", "x" * 1_000_000], ["Captured log call", "INFO started"]]
    longrepr = "ValueError: " + "v" * 5_000_000
    [result], _ = parse_records(*phases(T, call="failed", longrepr=longrepr, sections=sections))
    assert len(result.message) == MAX_MESSAGE_CHARS
    assert len(result.details) <= MAX_DETAILS_CHARS
    assert "--- Captured log call ---\nINFO started" in result.details
    assert result.error_type == "ValueError"


@pytest.mark.parametrize(
    ("keywords", "nodeid", "expected"),
    [
        # Real pytest 9 keywords: a mark named like the directory it is in ("e2e") is kept.
        ({"test_pass_marked": 1, "e2e": 1, "p1": 1, "pytestmark": 1, "test_outcomes.py": 1, "tests": 1, "rs": 1, "": 1},
         "tests/e2e/test_outcomes.py::test_pass_marked", ("e2e", "p1")),
        ({"test_pass": 1, "test_outcomes.py": 1, "e2e": 1, "tests": 1, "rs": 1, "": 1},
         "tests/e2e/test_outcomes.py::test_pass", ()),
        ({"test_inner[1-x]": 1, "parametrize": 1, "pytestmark": 1, "1-x": 1, "slow": 1, "TestNested": 1,
          "TestAgent": 1, "area_billing": 1, "test_outcomes.py": 1, "smoke": 1, "e2e": 1, "tests": 1, "main": 1, "": 1},
         "tests/e2e/test_outcomes.py::TestAgent::TestNested::test_inner[1-x]", ("slow", "area_billing", "smoke")),
        ({"test_w": 1, "__wrapped__": 1, "usefixtures": 1, "filterwarnings": 1, "xfail": 1, "t.py": 1, "r": 1, "": 1},
         "t.py::test_w", ("xfail",)),
    ],
)  # fmt: skip
def test_markers(keywords: dict[str, int], nodeid: str, expected: tuple[str, ...]) -> None:
    assert markers(keywords, nodeid) == expected


def test_markers_before_pytest_8_keep_the_last_keyword() -> None:
    """pytest 7 has no root directory node: the keyword before "" may be a module mark."""
    start = {"$report_type": "SessionStart", "pytest_version": "7.4.4"}
    record = report("t.py::test_x", "call", keywords={"test_x": 1, "t.py": 1, "nightly": 1, "": 1})
    data = b"".join(json.dumps(r).encode() + b"\n" for r in (start, report("t.py::test_x", "setup"), record,
                                                               report("t.py::test_x", "teardown"), FINISH))  # fmt: skip
    [result] = list(parse(io.BytesIO(data), "r.jsonl").results)
    assert result.markers == ("nightly",)


def test_user_properties() -> None:
    records = phases(T)
    records[2]["user_properties"] = [["ticket", "LD-1"], ["attempts", 3], ["flag", True], ["bad"], "junk"]
    [result], _ = parse_records(*records)
    assert result.properties == {"ticket": "LD-1", "attempts": "3", "flag": "True"}


def test_node_name_keeps_parameters_whole() -> None:
    assert node_name("t.py::TestA::test_x[a::b-c.d]") == "test_x[a::b-c.d]"
    assert node_name("t.py") == "t.py"


# -- real files ---------------------------------------------------------------------------------------------------


def outcomes(results: list[ParsedResult]) -> list[str]:
    return [r.outcome.value for r in results]


@pytest.mark.parametrize("name", ["pytest_report.jsonl", "pytest_xdist_report.jsonl"])
def test_real_files(name: str) -> None:
    for data in ((DATA / name).read_bytes(), gzip.compress((DATA / name).read_bytes())):
        parsed = parse(io.BytesIO(data), name)
        results = list(parsed.results)
        assert Counter(outcomes(results)) == {
            "passed": 13, "failed": 5, "error": 3, "skipped": 3, "xfailed": 1, "xpassed": 1,
        }  # fmt: skip
        assert (parsed.info.exitstatus, parsed.info.incomplete) == (1, False)


def test_real_files_agree_with_junit() -> None:
    def ids(name: str) -> list[str]:
        return sorted(r.nodeid for r in parse((DATA / name).open("rb"), name).results)

    assert ids("pytest_report.jsonl") == ids("pytest_xdist_report.jsonl") == ids("pytest_xunit1.xml")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
@pytest.mark.parametrize("tiny_reads", [False, True])
def test_encodings_and_tiny_reads(encoding: str, tiny_reads: bool) -> None:
    data = (DATA / "pytest_report.jsonl").read_text("utf-8").encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data

    class Stream(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(5 if tiny_reads else size)

    results = list(parse(Stream(data), "report.jsonl").results)
    assert len(results) == 26
    assert "tests/e2e/test_outcomes.py::test_param[日本語]" in {r.nodeid for r in results}
