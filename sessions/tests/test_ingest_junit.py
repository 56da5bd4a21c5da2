"""JUnit XML parsing: the counting rules (docs/INGESTION.md, Counting), identities, dialects, streaming."""

from __future__ import annotations

import codecs
import gzip
import io
import subprocess
import sys
import textwrap
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions.ingest import parse
from sessions.ingest.junit import LOOKBACK, duration, pytest_prefix
from sessions.ingest.records import MAX_DETAILS_CHARS, MAX_MESSAGE_CHARS, IngestError, ParsedResult, RunInfo

DATA = Path(__file__).parent / "data"


def parse_bytes(data: bytes, source: str = "results.xml") -> tuple[list[ParsedResult], RunInfo]:
    parsed = parse(io.BytesIO(data), source)
    return list(parsed.results), parsed.info


def suite(body: str, *, name: str = "pytest") -> bytes:
    return f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="{name}">{body}</testsuite></testsuites>'.encode()


def outcomes(results: list[ParsedResult]) -> list[str]:
    return [r.outcome.value for r in results]


class GeneratedFile:
    """A file-like object whose content is produced on demand, so big inputs cost no memory up front."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.consumed += len(data)
        return data


TRACEBACK = textwrap.dedent("""\
    def test_thing(client):
            resp = client.get("/api/v1/items/{i}")
    &gt;       assert resp.status_code == 200
    E       AssertionError: assert 500 == 200
    E        +  where 500 = &lt;Response [500]&gt;.status_code

    tests/e2e/test_mod{m}.py:{i}: AssertionError""")


def pytest_style_cases(n: int, fail_every: int = 12) -> Iterator[bytes]:
    """pytest-like JUnit: ``n`` cases, one in ``fail_every`` failed with a multi-line traceback (~8%)."""
    yield b'<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest">\n'
    batch = []
    for i in range(n):
        m = i // 500
        head = f'<testcase classname="tests.e2e.test_mod{m}.TestThing" name="test_case_{i}[p-{i % 7}]" time="0.012"'
        if i % fail_every == 0:
            message = "AssertionError: assert 500 == 200&#10; +  where 500 = &lt;Response [500]&gt;.status_code"
            body = TRACEBACK.format(i=i, m=m)
            batch.append(f'{head}><failure message="{message}">{body}</failure></testcase>\n')
        else:
            batch.append(head + " />\n")
        if len(batch) == 1000:
            yield "".join(batch).encode()
            batch = []
    yield "".join(batch).encode()
    yield b"</testsuite></testsuites>\n"


# -- counting rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ("", "passed"),
        ("<system-out>hello</system-out>", "passed"),
        ('<skipped type="pytest.xfail" message="known bug"/>', "xfailed"),
        ('<skipped type="pytest.skip" message="not today"/>', "skipped"),
        ("<skipped/>", "skipped"),
        ('<skipped type="todo"/><failure message="still broken"/>', "skipped"),  # node's failing todo
        ('<failure message="a"/><skipped/>', "skipped"),
        ('<failure message="a"/>', "failed"),
        ('<failure message="a"/><failure message="b"/>', "failed"),
        ('<failure message="a"/><error message="b"/>', "failed"),
        ('<error message="boom"/>', "error"),
        ('<error message="a"/><error message="b"/>', "error"),
    ],
)
def test_outcome_from_children(children: str, expected: str) -> None:
    results, _ = parse_bytes(suite(f'<testcase classname="t" name="x">{children}</testcase>', name="other"))
    assert outcomes(results) == [expected]


def test_count_attributes_are_never_used() -> None:
    data = b"""<testsuites tests="99" failures="40" errors="7" skipped="3">
      <testsuite name="a" tests="50" failures="20" errors="3" skipped="1" time="nonsense">
        <testcase classname="c" name="one" time="-3"/>
        <testcase classname="c" name="two" time="NaN"><failure message="x"/></testcase>
      </testsuite>
    </testsuites>"""
    results, _ = parse_bytes(data)
    assert outcomes(results) == ["passed", "failed"]
    assert [r.duration for r in results] == [None, None]


def test_repeated_identities_are_separate_results() -> None:
    body = '<testcase classname="c" name="same"/>' * 2 + '<testcase classname="c" name="same"><failure/></testcase>'
    results, _ = parse_bytes(suite(body, name="other"))
    assert outcomes(results) == ["passed", "passed", "failed"]
    assert {r.nodeid for r in results} == {"c::same"}


def test_every_testcase_at_any_depth_is_counted() -> None:
    data = b"""<testsuites>
      <testcase classname="c" name="top"/>
      <testsuite name="a">
        <testcase classname="c" name="a1"/>
        <testsuite name="b">
          <testcase classname="c" name="b1"><failure/></testcase>
          <testsuite name="c"><testcase classname="c" name="c1"><skipped/></testcase></testsuite>
        </testsuite>
        <testcase classname="c" name="a2"/>
      </testsuite>
    </testsuites>"""
    results, _ = parse_bytes(data)
    assert [r.name for r in results] == ["top", "a1", "b1", "c1", "a2"]
    assert Counter(outcomes(results)) == {"passed": 3, "failed": 1, "skipped": 1}


def test_zero_test_cases() -> None:
    for data in (
        b"<testsuites/>",
        b'<testsuite tests="12" failures="3"></testsuite>',
        b"<testsuites><testsuite/></testsuites>",
    ):
        assert parse_bytes(data)[0] == []


# -- pytest's teardown duplicate ------------------------------------------------------------------------

TEARDOWN = '<error message="failed on teardown with &quot;RuntimeError: teardown exploded&quot;">E   RuntimeError: teardown exploded</error>'


def test_teardown_duplicate_of_failed_test_is_merged() -> None:
    body = f"""
      <testcase classname="tests.test_a" name="test_x" time="1.5"><failure message="ValueError: call failed">E   ValueError: call failed</failure></testcase>
      <testcase classname="tests.test_a" name="test_x" time="0.5">{TEARDOWN}</testcase>
      <testcase classname="tests.test_a" name="test_y"/>"""
    results, _ = parse_bytes(suite(body))
    assert [(r.nodeid, r.outcome.value) for r in results] == [
        ("tests/test_a.py::test_x", "failed"),
        ("tests/test_a.py::test_y", "passed"),
    ]
    merged = results[0]
    assert (merged.phase, merged.error_type, merged.message) == ("call", "ValueError", "ValueError: call failed")
    assert "teardown exploded" in merged.details
    assert merged.duration == 2.0


def test_teardown_duplicate_turns_a_passed_test_into_an_error() -> None:
    body = f'<testcase classname="tests.test_a" name="test_x" time="1"/><testcase classname="tests.test_a" name="test_x">{TEARDOWN}</testcase>'
    [result], _ = parse_bytes(suite(body))
    assert (result.outcome, result.phase, result.error_type) == ("error", "teardown", "RuntimeError")
    assert result.message == "RuntimeError: teardown exploded"


def test_pytest_single_testcase_with_teardown_error_is_an_error() -> None:
    """pytest writes a teardown error of a *passing* test into the same testcase (no duplicate)."""
    [result], _ = parse_bytes(suite(f'<testcase classname="tests.test_a" name="test_x">{TEARDOWN}</testcase>'))
    assert (result.outcome, result.phase) == ("error", "teardown")


def test_teardown_duplicate_is_merged_across_interleaved_tests() -> None:
    others = "".join(f'<testcase classname="tests.test_b" name="test_{i}"/>' for i in range(LOOKBACK - 2))
    body = (
        '<testcase classname="tests.test_a" name="test_x"><failure message="boom"/></testcase>'
        + others
        + f'<testcase classname="tests.test_a" name="test_x">{TEARDOWN}</testcase>'
    )
    results, _ = parse_bytes(suite(body))
    assert len(results) == LOOKBACK - 1
    assert results[0].outcome == "failed" and "teardown exploded" in results[0].details


def test_teardown_duplicate_beyond_the_look_back_counts_on_its_own() -> None:
    """The look-back is bounded so memory stays flat; pytest writes the pair adjacently anyway."""
    others = "".join(f'<testcase classname="tests.test_b" name="test_{i}"/>' for i in range(LOOKBACK + 5))
    body = (
        '<testcase classname="tests.test_a" name="test_x"><failure message="boom"/></testcase>'
        + others
        + f'<testcase classname="tests.test_a" name="test_x">{TEARDOWN}</testcase>'
    )
    results, _ = parse_bytes(suite(body))
    assert len(results) == LOOKBACK + 7
    assert (results[0].outcome, results[-1].outcome) == ("failed", "error")


def test_results_keep_file_order() -> None:
    body = "".join(f'<testcase classname="c" name="t{i}"/>' for i in range(LOOKBACK * 3))
    results, _ = parse_bytes(suite(body, name="x"))
    assert [r.name for r in results] == [f"t{i}" for i in range(LOOKBACK * 3)]


# -- identity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("classname", "file", "suite_name", "expected"),
    [
        ("tests.e2e.test_chat.TestAgent", "", "pytest", "tests/e2e/test_chat.py::TestAgent"),
        ("tests.e2e.test_chat", "", "pytest", "tests/e2e/test_chat.py"),
        ("test_a.TestOuter.TestInner", "", "pytest", "test_a.py::TestOuter::TestInner"),
        ("tests.Integration.test_x.TestA", "", "pytest", "tests/Integration/test_x.py::TestA"),
        ("tests.e2e.test_chat.TestAgent", "tests/e2e/test_chat.py", "pytest", "tests/e2e/test_chat.py::TestAgent"),
        # A dotted directory is only recoverable with xunit1's file attribute.
        ("tests.v1.2.test_a.TestX", "tests/v1.2/test_a.py", "pytest", "tests/v1.2/test_a.py::TestX"),
        # An inherited test: file names the base class's module, which disagrees; the classname wins.
        ("tests.test_child.TestChild", "tests/base.py", "pytest", "tests/test_child.py::TestChild"),
        # Windows paths in the file attribute are normalised before this point; a custom suite name
        # still looks like pytest when the module is test_*.py.
        ("tests.unit.test_models.TestUser", "", "my-suite", "tests/unit/test_models.py::TestUser"),
        ("pkg.models_test", "", "", "pkg/models_test.py"),
        # Not pytest: jest, node, mocha, Java.
        ("cart sums prices", "", "jest tests", None),
        ("test", "", "", None),
        ("sums prices", "", "cart", None),
        ("com.example.FooTest", "", "", None),
        ("", "", "pytest", None),
    ],
)
def test_pytest_prefix(classname: str, file: str, suite_name: str, expected: str | None) -> None:
    assert pytest_prefix(classname, file, suite_name) == expected


def test_pytest_nodeid_from_classname_and_name() -> None:
    body = """
      <testcase classname="tests.e2e.test_chat.TestAgent" name="test_x[a-ü]"/>
      <testcase classname="tests.e2e.test_chat" name="test_y[a.b::c]"/>
      <testcase classname="" name="tests.e2e.test_broken"><error message="collection failure">E   ImportError: x</error></testcase>"""
    results, _ = parse_bytes(suite(body))
    assert [(r.nodeid, r.name, r.file) for r in results] == [
        ("tests/e2e/test_chat.py::TestAgent::test_x[a-ü]", "test_x[a-ü]", "tests/e2e/test_chat.py"),
        ("tests/e2e/test_chat.py::test_y[a.b::c]", "test_y[a.b::c]", "tests/e2e/test_chat.py"),
        ("tests/e2e/test_broken.py", "tests.e2e.test_broken", "tests/e2e/test_broken.py"),
    ]


def test_other_runners_use_classname_and_name() -> None:
    data = b"""<testsuites><testsuite name="cart" file="/src/cart.spec.js">
      <testcase classname=" cart adds " name=" cart adds "/>
      <testcase classname="" name="bare name"/>
      <testcase name="no classname at all"/>
    </testsuite></testsuites>"""
    results, _ = parse_bytes(data)
    assert [r.nodeid for r in results] == ["cart adds::cart adds", "bare name", "no classname at all"]
    assert {r.file for r in results} == {"/src/cart.spec.js"}


# -- failure text -----------------------------------------------------------------------------------------


def test_pytest_setup_error_is_unwrapped() -> None:
    body = """<testcase classname="tests.test_a" name="test_x"><error message="failed on setup with &quot;ConnectionError: boom&quot;">@pytest.fixture
    def db():
&gt;       raise ConnectionError("boom")
E       ConnectionError: boom

tests/test_a.py:13: ConnectionError</error></testcase>"""
    [result], _ = parse_bytes(suite(body))
    assert (result.outcome, result.phase, result.error_type, result.message) == (
        "error",
        "setup",
        "ConnectionError",
        "ConnectionError: boom",
    )
    assert "raise ConnectionError" in result.details


def test_error_type_from_type_attribute_or_text() -> None:
    body = """
      <testcase classname="m" name="typed"><failure message="nope" type="AssertionError">x</failure></testcase>
      <testcase classname="m" name="node"><failure type="testCodeFailure" message="Expected values to be strictly equal:2 !== 3">
[Error [ERR_TEST_FAILURE]: Expected values to be strictly equal:
  cause: AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:
]</failure></testcase>
      <testcase classname="m" name="jest"><failure>TypeError: gateway is not a function
    at Object.&lt;anonymous&gt; (cart.test.js:27:13)</failure></testcase>
      <testcase classname="m" name="bare-assert"><failure message="assert 1 == 2">&gt; assert 1 == 2
E       assert 1 == 2

tests/test_a.py:3: AssertionError</failure></testcase>"""
    results, _ = parse_bytes(suite(body, name="x"))
    assert [(r.name, r.error_type) for r in results] == [
        ("typed", "AssertionError"),
        ("node", "AssertionError"),
        ("jest", "TypeError"),
        ("bare-assert", "AssertionError"),
    ]
    assert results[2].message == "TypeError: gateway is not a function"
    assert all(r.phase == "call" for r in results)


def test_captured_output_is_kept_for_failures_only() -> None:
    body = """
      <testcase classname="m" name="ok"><system-out>chatty pass</system-out></testcase>
      <testcase classname="m" name="bad"><failure message="x">trace</failure><system-out>the log</system-out><system-err>warn</system-err></testcase>"""
    ok, bad = parse_bytes(suite(body, name="x"))[0]
    assert ok.details == ""
    assert bad.details == "trace\n\n--- system-out ---\nthe log\n\n--- system-err ---\nwarn"


def test_huge_texts_are_bounded() -> None:
    name = "n" * 10_000
    message = "ValueError: " + "m" * 5_000_000
    body = f'<testcase classname="m" name="{name}"><failure message="{message}">{message}</failure><system-out>{"o" * 1_000_000}</system-out></testcase>'
    [result], _ = parse_bytes(suite(body, name="x"))
    assert result.name == name and result.nodeid == f"m::{name}"
    assert len(result.message) == MAX_MESSAGE_CHARS
    assert len(result.details) <= MAX_DETAILS_CHARS
    assert result.error_type == "ValueError"


def test_properties() -> None:
    data = b"""<testsuites><testsuite name="pytest">
      <properties><property name="build" value="42"/><property name="branch">main</property></properties>
      <testcase classname="tests.test_a" name="test_x">
        <properties><property name="ticket" value="LD-1"/><property name="attempts" value="3"/></properties>
      </testcase>
    </testsuite></testsuites>"""
    [result], info = parse_bytes(data)
    assert result.properties == {"ticket": "LD-1", "attempts": "3"}
    assert result.outcome == "passed"
    assert info.properties == {"build": "42", "branch": "main"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.5", 1.5), ("0", 0.0), ("1e3", 1000.0), ("-1", None), ("NaN", None), ("inf", None), ("-inf", None),
     ("abc", None), ("", None), (None, None), ("1,5", None)],
)  # fmt: skip
def test_duration(value: str | None, expected: float | None) -> None:
    assert duration(value) == expected


def test_run_info() -> None:
    _, info = parse_bytes(
        b'<testsuites><testsuite name="pytest" time="12.5" timestamp="2026-01-02T03:04:05+00:00"/></testsuites>'
    )
    assert (info.format, info.duration, info.started_at) == ("junit", 12.5, 1767323045.0)
    _, info = parse_bytes(b'<testsuites time="3.25"><testsuite timestamp="2026-01-02T03:04:05"/></testsuites>')
    assert (info.duration, info.started_at) == (3.25, 1767323045.0)  # zone-less: taken as UTC
    assert (info.exitstatus, info.incomplete) == (None, False)


# -- dialects ------------------------------------------------------------------------------------------------

DIALECTS = {
    "nested": '<testsuites><testsuite name="a"><testsuite name="b"><testcase classname="c" name="ü"/></testsuite></testsuite></testsuites>',
    "bare-testsuite": '<testsuite name="a" tests="1"><testcase classname="c" name="ü"/></testsuite>',
    "node-direct-testcases": '<testsuites>\n\t<testcase name="ü" time="0.1" classname="c"/>\n</testsuites>',
    "namespaced": '<t:testsuites xmlns:t="urn:x"><t:testcase classname="c" name="ü"/></t:testsuites>',
    "prolog": '<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment -->\n<?pi x?>\n<testsuites><testcase classname="c" name="ü"/></testsuites>',
}
ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8-bom": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16-le-bom": lambda text: codecs.BOM_UTF16_LE + text.replace("UTF-8", "UTF-16").encode("utf-16-le"),
    "utf-16-be-bom": lambda text: codecs.BOM_UTF16_BE + text.replace("UTF-8", "UTF-16").encode("utf-16-be"),
    "utf-16-no-bom": lambda text: text.replace("UTF-8", "UTF-16").encode("utf-16-le"),
    "latin-1-declared": lambda text: ('<?xml version="1.0" encoding="ISO-8859-1"?>' + text.split("?>", 1)[-1]).encode(
        "latin-1"
    ),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialects(dialect: str, encoding: str, gz: bool) -> None:
    data = ENCODINGS[encoding](DIALECTS[dialect])
    if gz:
        data = gzip.compress(data)
    [result], info = parse_bytes(data, "upload.bin")
    assert (result.nodeid, result.outcome, info.format) == ("c::ü", "passed", "junit")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pytest_xunit1.xml", {"passed": 14, "failed": 5, "error": 3, "skipped": 3, "xfailed": 1}),
        ("pytest_xunit2.xml", {"passed": 14, "failed": 5, "error": 3, "skipped": 3, "xfailed": 1}),
        ("node_junit.xml", {"passed": 4, "failed": 2, "skipped": 3}),
        ("jest_junit.xml", {"passed": 7, "failed": 2, "skipped": 1}),
        ("mocha_junit.xml", {"passed": 3, "failed": 3, "skipped": 2}),
    ],
)
def test_real_files(name: str, expected: dict[str, int]) -> None:
    for data in ((DATA / name).read_bytes(), gzip.compress((DATA / name).read_bytes())):
        results, _ = parse_bytes(data, name)
        assert Counter(outcomes(results)) == expected


def test_real_pytest_file_details() -> None:
    results = {r.nodeid: r for r in parse_bytes((DATA / "pytest_xunit2.xml").read_bytes())[0]}
    base = "tests/e2e/test_outcomes.py::"
    assert results[base + "test_xfail"].message == "known bug"
    assert results[base + "test_skip"].message == "not today"
    assert results["tests/e2e/test_skipped_module.py"].message == "needs the staging database"
    assert results[base + "test_xpass_strict"].error_type == "XPASS(strict)"
    subtests = results[base + "test_subtests_some_fail"]
    assert (subtests.error_type, subtests.message.splitlines()[0]) == ("AssertionError", "AssertionError: step 1 broke")
    assert "contains 1 failed subtest" in subtests.details
    teardown_on_fail = results[base + "test_teardown_error_on_fail"]
    assert (teardown_on_fail.outcome, teardown_on_fail.error_type) == ("failed", "ValueError")
    assert "teardown exploded" in teardown_on_fail.details
    assert results[base + "TestAgent::test_method_fail"].message == "KeyError: 'missing'"


# -- streaming -------------------------------------------------------------------------------------------------


def test_results_stream_before_the_file_is_read() -> None:
    source = GeneratedFile(pytest_style_cases(100_000))
    parsed = parse(source, "big.xml")
    first = next(parsed.results)
    assert first.nodeid == "tests/e2e/test_mod0.py::TestThing::test_case_0[p-0]"
    assert source.consumed < 2 * 1024 * 1024  # of about 13 MB
    assert sum(1 for _ in parsed.results) == 99_999


def test_python_memory_stays_flat_on_100k_cases() -> None:
    """tracemalloc sees Python objects only: a parser that kept results or elements would show here."""
    tracemalloc.start()
    try:
        counts = Counter(r.outcome.value for r in parse(GeneratedFile(pytest_style_cases(100_000)), "big.xml").results)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts == {"passed": 91_666, "failed": 8_334}
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


RSS_SCRIPT = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from sessions.tests.test_ingest_junit import GeneratedFile, pytest_style_cases
from sessions.ingest import parse
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = sum(1 for _ in parse(GeneratedFile(pytest_style_cases(200_000)), "big.xml").results)
print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


def test_native_memory_stays_flat_on_200k_cases() -> None:
    """libxml2's tree lives outside tracemalloc: peak RSS growth shows whether handled elements are freed.

    Measured: about 0 MB growth when elements are dropped, about 165 MB when they are not.
    """
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(root)], capture_output=True, text=True, timeout=300, check=True
    )
    count, growth_mb = map(int, proc.stdout.split())
    assert count == 200_000
    assert growth_mb < 60, f"peak RSS grew by {growth_mb} MB"


class Trickle(io.BytesIO):
    """A stream that hands out a few bytes per read, as a slow socket or pipe does."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(min(7, size) if size is not None and size >= 0 else 7)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_tiny_reads(encoding: str, gz: bool) -> None:
    text = (DATA / "pytest_xunit2.xml").read_text("utf-8").replace('encoding="utf-8"', f'encoding="{encoding}"')
    data = text.encode(encoding)
    if gz:
        data = gzip.compress(data)
    results = list(parse(Trickle(data), "slow.xml").results)
    assert len(results) == 26
    assert "tests/e2e/test_outcomes.py::test_param[日本語]" in {r.nodeid for r in results}


# -- deeper than libxml2 goes: the expat fallback ------------------------------------------------------------


def deep_suites(depth: int, *, before: int = 0, inside: str = "", head: str = "") -> bytes:
    """``depth`` nested suites, each holding one test case; ``before`` flat cases ahead of them."""
    flat = "".join(f'<testcase classname="tests.test_flat" name="test_{i}" time="0.5"/>' for i in range(before))
    opening = "".join(f'<testsuite name="level{i}"><testcase classname="c" name="deep_{i}"/>' for i in range(depth))
    return (
        f'{head}<testsuites time="7.5"><properties><property name="ci" value="yes"/></properties>{flat}'
        f"{opening}{inside}{'</testsuite>' * depth}"
        '<testcase classname="c" name="last"><failure message="boom">tb</failure></testcase></testsuites>'
    ).encode()


def test_ten_thousand_nested_suites_are_parsed() -> None:
    results, info = parse_bytes(deep_suites(10_000))
    assert len(results) == 10_001
    assert [r.nodeid for r in results[:2]] == ["c::deep_0", "c::deep_1"]
    assert (results[-2].nodeid, results[-1].nodeid, results[-1].outcome) == ("c::deep_9999", "c::last", "failed")
    assert (info.duration, info.properties) == (7.5, {"ci": "yes"})


def test_results_yielded_before_the_depth_limit_are_not_repeated() -> None:
    """lxml yields results until it meets the 2049th level; the expat pass skips exactly those."""
    parsed = parse(io.BytesIO(deep_suites(3000, before=5 * LOOKBACK)), "deep.xml")
    names = [r.name for r in parsed.results]
    assert names == [f"test_{i}" for i in range(5 * LOOKBACK)] + [f"deep_{i}" for i in range(3000)] + ["last"]
    assert parsed.info.properties == {"ci": "yes"}  # not doubled by the second pass


def test_a_teardown_duplicate_is_merged_beyond_the_depth_limit() -> None:
    teardown = f'<testcase classname="c" name="deep_2999">{TEARDOWN}</testcase>'
    results, _ = parse_bytes(deep_suites(3000, inside=teardown))
    assert len(results) == 3001
    assert (results[2999].nodeid, results[2999].outcome, results[2999].phase) == ("c::deep_2999", "error", "teardown")


def test_deep_gzipped_and_utf16_files_are_parsed() -> None:
    data = deep_suites(2500)
    assert len(parse_bytes(gzip.compress(data))[0]) == 2501
    utf16 = data.decode("utf-8").encode("utf-16")
    assert len(parse_bytes(utf16)[0]) == 2501


def test_a_deep_file_with_an_entity_declaration_is_refused() -> None:
    data = deep_suites(3000, head='<!DOCTYPE testsuites [<!ENTITY x "y">]>')
    with pytest.raises(IngestError, match="deep.xml:1: <!DOCTYPE found: DTDs and entity declarations are refused"):
        list(parse(io.BytesIO(data), "deep.xml").results)


def test_an_entity_reference_beyond_the_depth_limit_is_refused() -> None:
    data = deep_suites(3000, inside='<testcase classname="c" name="&xxe;"/>')
    with pytest.raises(IngestError, match=r"entity references are refused \(Entity 'xxe' not defined\)"):
        list(parse(io.BytesIO(data), "deep.xml").results)


def test_malformed_xml_beyond_the_depth_limit_is_refused_with_its_line() -> None:
    data = deep_suites(3000).replace(b"</testsuites>", b"\n\n</testsuite>")
    with pytest.raises(IngestError) as caught:
        list(parse(io.BytesIO(data), "deep.xml").results)
    assert "malformed XML" in caught.value.problem and caught.value.line == 3


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE testsuites [<!ENTITY x "y">]>',
        '<!DOCTYPE testsuites SYSTEM "file:///etc/passwd">',
        '<!DOCTYPE t [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>',
    ],
)
def test_the_expat_parser_refuses_dtds_by_itself(prolog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with the prolog scan switched off, expat's own handlers still refuse every DTD."""
    from sessions.ingest import junit
    from sessions.ingest.source import Source

    monkeypatch.setattr(junit, "read_prolog", lambda src, roots, expected: src.read())
    data = (prolog + '<testsuites><testcase classname="c" name="&x;"/></testsuites>').encode()
    with pytest.raises(IngestError, match="DTDs and entity declarations are refused"):
        list(junit._parse_expat(Source(io.BytesIO(data), "x.xml", 1 << 20), RunInfo()))


def test_the_expat_parser_yields_what_lxml_yields() -> None:
    from sessions.ingest import junit
    from sessions.ingest.source import Source

    for path in sorted(DATA.glob("*.xml")):
        data = path.read_bytes()
        lxml_info, expat_info = RunInfo(format="junit"), RunInfo(format="junit")
        by_lxml = list(junit._parse_lxml(Source(io.BytesIO(data), path.name, 1 << 30), lxml_info))
        by_expat = list(junit._parse_expat(Source(io.BytesIO(data), path.name, 1 << 30), expat_info))
        assert (by_expat, expat_info) == (by_lxml, lxml_info), path.name


def test_a_deep_stream_that_cannot_be_read_twice_is_refused_clearly() -> None:
    chunks = iter([deep_suites(3000)])
    with pytest.raises(IngestError, match="nested deeper than 2048 levels, in a stream that cannot be read twice"):
        list(parse(GeneratedFile(chunks), "deep.xml").results)


@pytest.mark.django_db
def test_ten_thousand_nested_suites_are_stored() -> None:
    from sessions.services.ingestion.upload import ingest_file

    run = ingest_file(io.BytesIO(deep_suites(10_000)), "deep.xml", session_slug="deep").run
    assert (run.total, run.passed, run.failed) == (10_001, 10_000, 1)
    assert run.results.count() == 10_001


@pytest.mark.parametrize(
    "attributes",
    [
        'classname="tests.e2e.test_chat.TestAgent" name=" test_send[a] " time="1.5"',  # pytest's order
        'time="1.5" name=" test_send[a] " classname="tests.e2e.test_chat.TestAgent"',
        'classname="tests.e2e.test_chat.TestAgent" name=" test_send[a] " time="1.5" status="run"',
        'classname="tests.e2e.test_chat.TestAgent" name=" test_send[a] " time="1.5" file="tests/e2e/test_chat.py"',
    ],
)
def test_the_attribute_order_changes_nothing(attributes: str) -> None:
    """pytest's own attribute layout is read with one call; every other layout must read the same."""
    results, _ = parse_bytes(suite(f"<testcase {attributes}/>"))
    (result,) = results
    assert (result.nodeid, result.name, result.file, result.outcome, result.duration) == (
        "tests/e2e/test_chat.py::TestAgent::test_send[a]",
        "test_send[a]",
        "tests/e2e/test_chat.py",
        "passed",
        1.5,
    )
