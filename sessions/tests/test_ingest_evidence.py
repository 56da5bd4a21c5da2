"""Evidence beside the outcome is kept (docs/COUNTING.md, "Reruns and other evidence"): Surefire's and
pytest-rerunfailures' reruns (flaky in the run), the ``status`` attribute, suite logs, impossible
durations, repeated properties, nameless test cases and a file cut inside CDATA."""

from __future__ import annotations

import io

import pytest

from sessions.ingest import IngestError, parse
from sessions.selectors.api_json import run_as_json
from sessions.services.ingestion.upload import ingest_file
from sessions.tests import samples

SUREFIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="com.shop.CartIT" time="12.5" tests="4" errors="0" skipped="0" failures="1">
  <properties><property name="java.version" value="21"/><property name="tag" value="a"/><property name="tag" value="b"/></properties>
  <testcase name="addsItem" classname="com.shop.CartIT" time="1.25">
    <flakyFailure message="expected: &lt;1&gt; but was: &lt;0&gt;" type="org.opentest4j.AssertionFailedError">
      <stackTrace>org.opentest4j.AssertionFailedError: expected: &lt;1&gt; but was: &lt;0&gt;
	at com.shop.CartIT.addsItem(CartIT.java:31)</stackTrace>
      <system-out>cart service slow</system-out>
    </flakyFailure>
    <flakyError message="Connection reset" type="java.net.SocketException">
      <stackTrace>java.net.SocketException: Connection reset</stackTrace>
    </flakyError>
  </testcase>
  <testcase name="checksOut" classname="com.shop.CartIT" time="3.0">
    <failure message="timeout after 30s" type="java.util.concurrent.TimeoutException">java.util.concurrent.TimeoutException: timeout after 30s</failure>
    <rerunFailure message="timeout after 30s" type="java.util.concurrent.TimeoutException"><stackTrace>first try</stackTrace></rerunFailure>
    <rerunFailure message="timeout after 31s" type="java.util.concurrent.TimeoutException"><stackTrace>second try</stackTrace></rerunFailure>
  </testcase>
  <testcase name="lists" classname="com.shop.CartIT" time="0.5"/>
  <testcase name="ancient" classname="com.shop.CartIT" time="999638317"/>
</testsuite>
"""

TST = b"""<testsuites name="all" time="1967986371">
  <testsuite name="factorial">
    <testcase name="off" status="disabled" time="0"><failure message="would fail"/></testcase>
    <testcase name="later" status="Not Run"/>
    <testcase name="never" status="NOTRUN"/>
    <testcase name="fine" status="run" time="0.1"/>
    <testcase name="broke" status="failed" time="0.1"><failure message="boom"/></testcase>
  </testsuite>
  <testsuite>
    <testcase/>
    <testcase><skipped/></testcase>
    <testcase><failure/></testcase>
    <testcase><error/></testcase>
    <system-out><![CDATA[Executing tests from //bazel:failing_test
ModuleNotFoundError: No module named 'absent']]></system-out>
    <system-err>Generated test.err</system-err>
  </testsuite>
</testsuites>
"""


def parsed(data: bytes, name: str = "r.xml"):
    result = parse(io.BytesIO(data), name)
    return {r.nodeid: r for r in result.results}, result.info


def test_surefire_flaky_tries_make_a_passed_test_flaky_with_its_first_failure() -> None:
    results, info = parsed(SUREFIRE)
    flaky = results["com.shop.CartIT::addsItem"]
    assert flaky.outcome == "passed" and flaky.flaky
    assert flaky.message == "expected: <1> but was: <0>"
    assert [a["outcome"] for a in flaky.attempts] == ["failed", "error"]
    assert flaky.attempts[0]["type"] == "org.opentest4j.AssertionFailedError"
    assert "CartIT.java:31" in flaky.attempts[0]["details"] and "cart service slow" in flaky.attempts[0]["details"]


def test_surefire_reruns_of_a_test_that_failed_every_time_are_counted() -> None:
    results, _ = parsed(SUREFIRE)
    failed = results["com.shop.CartIT::checksOut"]
    assert failed.outcome == "failed" and not failed.flaky
    assert failed.message == "timeout after 30s"
    assert [a["message"] for a in failed.attempts] == ["timeout after 30s", "timeout after 31s"]


def test_durations_over_a_day_are_unknown_for_tests_and_runs() -> None:
    results, info = parsed(SUREFIRE)
    assert results["com.shop.CartIT::ancient"].duration is None
    assert results["com.shop.CartIT::lists"].duration == 0.5
    _, info = parsed(TST)
    assert info.duration is None  # 1967986371 "seconds" at the root: nanoseconds, 62 years


def test_repeated_property_names_keep_every_value() -> None:
    _, info = parsed(SUREFIRE)
    assert info.properties == {"java.version": "21", "tag": ["a", "b"]}


def test_a_status_that_says_not_run_is_skipped_whatever_the_test_case_holds() -> None:
    results, _ = parsed(TST)
    outcomes = {nodeid: r.outcome.value for nodeid, r in results.items() if nodeid in ("off", "later", "never")}
    assert outcomes == {"off": "skipped", "later": "skipped", "never": "skipped"}
    assert results["off"].message == "disabled"
    assert results["fine"].outcome == "passed" and results["broke"].outcome == "failed"


def test_nameless_test_cases_get_their_suite_and_position() -> None:
    results, _ = parsed(TST)
    nameless = {nodeid: r.outcome.value for nodeid, r in results.items() if "testcase" in nodeid}
    assert nameless == {
        "testsuite 1::testcase 1": "passed",
        "testsuite 1::testcase 2": "skipped",
        "testsuite 1::testcase 3": "failed",
        "testsuite 1::testcase 4": "error",
    }


def test_suite_level_output_is_kept() -> None:
    _, info = parsed(TST)
    assert "No module named 'absent'" in info.suite_output and "Generated test.err" in info.suite_output
    assert "testsuite 1: system-out" in info.suite_output


@pytest.mark.parametrize(
    ("cut_after", "problem", "line"),
    [
        (b"<![CDATA[Executing", "truncated XML: the file ends inside a CDATA section opened on line 14", 14),
        (b"<system-err>Gener", "truncated XML: the file ends before its elements are closed", 16),
    ],
)
def test_a_file_cut_off_says_what_was_left_open_and_where(cut_after, problem, line) -> None:
    data = TST[: TST.index(cut_after) + len(cut_after)]
    with pytest.raises(IngestError) as refused:
        parsed(data, "cut.xml")
    assert problem in refused.value.problem and "Unregistered" not in str(refused.value)
    assert refused.value.line == line


def test_a_long_section_cut_off_is_found_across_many_parser_feeds() -> None:
    """The parser is fed 16 KiB at a time; an unfinished CDATA section opened 300 KiB before the end
    (and 5,000 test cases into the file) is still named, with the line it opened on."""
    cases = "".join(f'<testcase classname="t.test_a" name="test_{i}" time="0.1"/>\n' for i in range(5000))
    body = "x" * 100 + "\n"
    data = (
        f'<testsuites><testsuite name="pytest">\n{cases}<testcase classname="t.test_a" name="test_last">'
        f"<failure><![CDATA[{body * 3000}"
    ).encode()
    with pytest.raises(IngestError) as refused:
        parsed(data, "cut.xml")
    assert "the file ends inside a CDATA section opened on line 5002" in refused.value.problem
    assert refused.value.line == 5002 + 3000


def rerun_records(final: str) -> list[dict]:
    crash = {
        "reprcrash": {"message": "AssertionError: socket closed", "path": "t.py", "lineno": 3},
        "reprtraceback": {},
    }
    tries = []
    for _try in range(2):
        tries += [
            samples.report("tests/test_ws.py::test_send", "setup", "passed"),
            samples.report("tests/test_ws.py::test_send", "call", "rerun", longrepr=crash),
            samples.report("tests/test_ws.py::test_send", "teardown", "passed"),
        ]
    last = samples.passing("tests/test_ws.py::test_send")
    if final == "failed":
        last = samples.failing("tests/test_ws.py::test_send", "AssertionError: still closed")
    return tries + last + samples.passing("tests/test_ws.py::test_other")


@pytest.mark.parametrize("final", ["passed", "failed"])
def test_report_log_reruns_decide_by_the_last_try_and_earlier_failures_make_it_flaky(final) -> None:
    results, _ = parsed(samples.reportlog(rerun_records(final)), "log.jsonl")
    assert len(results) == 2
    test = results["tests/test_ws.py::test_send"]
    assert test.outcome == final and len(test.attempts) == 2
    assert test.attempts[0]["message"] == "AssertionError: socket closed"
    assert test.flaky == (final == "passed")
    assert not results["tests/test_ws.py::test_other"].attempts


@pytest.mark.django_db
def test_flaky_runs_show_in_the_run_json_and_on_the_run_page(client, viewer) -> None:
    run = ingest_file(io.BytesIO(SUREFIRE), "TEST-com.shop.CartIT.xml", session_slug="shop").run
    assert (run.total, run.passed, run.failed) == (4, 3, 1)
    assert run_as_json(run)["flaky"] == 1
    stored = run.results.get(case__nodeid="com.shop.CartIT::addsItem")
    assert stored.attempts[1]["message"] == "Connection reset" and stored.signature_id is None
    log = ingest_file(io.BytesIO(samples.reportlog(rerun_records("passed"))), "log.jsonl", session_slug="ws").run
    assert run_as_json(log)["flaky"] == 1
    client.force_login(viewer)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "flaky in this run" in page and "2 reruns" in page
    assert "expected: &lt;1&gt; but was: &lt;0&gt;" in page and "Connection reset" in page


@pytest.mark.django_db
def test_suite_output_is_stored_and_shown_and_no_run_lasts_years(client, viewer) -> None:
    run = ingest_file(io.BytesIO(TST), "bazel.xml", session_slug="bazel").run
    # The file's 62 "years" are ignored: the run lasted as long as its upload took to store.
    assert run.duration_s is not None and run.duration_s < 3600 and "No module named" in run.suite_output
    assert run.skipped == 4 and run.total == 9
    client.force_login(viewer)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'id="suite-output"' in page and "No module named &#x27;absent&#x27;" in page
