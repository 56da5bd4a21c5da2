"""Hostile and malformed files are refused with one clear error; odd but valid ones parse.

Every refusal is an IngestError whose text names the source and the problem (and the line where it
is known). Refusals of entity tricks and bombs happen before anything is expanded or inflated, which
the tracemalloc checks below make visible without timing anything.
"""

from __future__ import annotations

import gzip
import io
import random
import tracemalloc
from collections.abc import Callable

import pytest

from sessions.ingest import IngestError, parse
from sessions.ingest.records import ParsedResult, RunInfo
from sessions.ingest.source import describe_limit

SOURCE = "upload-17.xml"


def parse_all(data: bytes, max_bytes: int = 200 * 1024 * 1024) -> tuple[list[ParsedResult], RunInfo]:
    parsed = parse(io.BytesIO(data), SOURCE, max_bytes=max_bytes)
    return list(parsed.results), parsed.info


def refusal(data: bytes, max_bytes: int = 200 * 1024 * 1024) -> IngestError:
    with pytest.raises(IngestError) as caught:
        parse_all(data, max_bytes)
    error = caught.value
    assert str(error).startswith(SOURCE)
    assert error.source == SOURCE and error.problem in str(error)
    return error


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    except IngestError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuites><testcase classname="c" name="&lol9;"/></testsuites>
"""
QUADRATIC = (
    b'<?xml version="1.0"?>\n<!DOCTYPE t [<!ENTITY a "' + b"x" * 50_000 + b'">]>\n<testsuites><testcase name="'
    + b"&a;" * 50_000 + b'"/></testsuites>'
)  # fmt: skip
DTD_REFUSALS = {
    "billion-laughs": (BILLION_LAUGHS, 2),
    "quadratic-blowup": (QUADRATIC, 2),
    "external-entity": (b'<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><testsuites><testcase name="&x;"/></testsuites>', 1),
    "external-dtd": (b'<?xml version="1.0"?>\n<!-- c -->\n<!DOCTYPE testsuites SYSTEM "http://127.0.0.1:9/x.dtd">\n<testsuites/>', 3),
    "parameter-entity": (b'<!DOCTYPE t [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><testsuites/>', 1),
    "public-dtd": (b'<!DOCTYPE testsuites PUBLIC "-//x//EN" "x.dtd"><testsuites/>', 1),
    "bare-entity-declaration": (b'<!ENTITY x "y"><testsuites/>', 1),
}  # fmt: skip


@pytest.mark.parametrize("case", DTD_REFUSALS)
@pytest.mark.parametrize("wrap", ["plain", "gz", "utf-16"])
def test_dtds_and_entities_are_refused(case: str, wrap: str) -> None:
    data, line = DTD_REFUSALS[case]
    if wrap == "gz":
        data = gzip.compress(data)
    elif wrap == "utf-16":
        data = data.decode("utf-8").encode("utf-16")  # with a byte order mark
    error = refusal(data)
    assert "DTDs and entity declarations are refused" in error.problem
    assert error.line == line


def test_refusing_a_bomb_costs_nothing() -> None:
    assert peak_memory(lambda: parse_all(BILLION_LAUGHS)) < 1024 * 1024
    assert peak_memory(lambda: parse_all(QUADRATIC)) < 2 * 1024 * 1024  # the 200 KB file itself


def test_undeclared_entity_is_refused() -> None:
    error = refusal(b'<testsuites>\n<testcase name="&x;"/></testsuites>')
    assert (error.line, "Entity 'x' not defined" in error.problem) == (2, True)


def random_bytes() -> bytes:
    rng = random.Random(20261121)
    data = bytes(rng.randrange(256) for _ in range(4096))
    return b"\x80" + data  # never starts like XML, JSON, gzip or a byte order mark


REFUSALS = {
    "empty": (b"", "file is empty", None),
    "whitespace": (b" \n\t\n", "file contains only whitespace", None),
    "not-xml": (b"Traceback (most recent call last):\n  File ...", "neither JUnit XML nor JSON lines", 1),
    "random-bytes": (random_bytes(), "neither JUnit XML nor JSON lines", 1),
    "html": (b"<!doctype html>\n<html><body><testsuite/></body></html>", "DTDs and entity declarations are refused", 1),
    "wrong-root": (b"<?xml version='1.0'?>\n<html><body><testsuite/></body></html>", "root element is <html>, expected <testsuites> or <testsuite>", 2),
    "wrong-root-namespaced": (b'<h:html xmlns:h="urn:x"/>', "root element is <h:html>", 1),
    "truncated": (b'<testsuites>\n<testsuite name="a">\n<testcase name="x"/>\n', "truncated XML", 4),
    "truncated-mid-tag": (b'<testsuites>\n<testcase name="x', "malformed XML", 2),
    "text-after-root": (b"<testsuites/>\n<testsuites/>", "malformed XML (Extra content at the end of the document)", 2),
    "invalid-utf-8": (b'<testsuites>\n<testcase name="caf\xe9 \xff"/></testsuites>', "invalid UTF-8", 2),
    "illegal-char": (b'<testsuites>\n\n<testcase name="a">\x01</testcase></testsuites>', "character not allowed in XML", 3),
    "illegal-char-attribute": (b'<testsuites>\n\n<testcase name="a\x1b[31m"/></testsuites>', "character not allowed in XML", 3),
    "illegal-char-reference": (b'<testsuites>\n<testcase name="a&#1;"/></testsuites>', "character not allowed in XML", 2),
    "corrupt-gzip": (b"\x1f\x8b\x08\x00garbage-garbage-garbage", "corrupt gzip data", None),
    "truncated-gzip": (gzip.compress(b"<testsuites/>" * 100)[:-10], "corrupt gzip data", None),
    # report-log
    "corrupt-line": (b'{"$report_type": "SessionStart"}\n{"$report_type": "TestReport"\nnot json\n', "line is not JSON", 2),
    "truncated-last-line": (b'{"$report_type": "SessionStart"}\n{"$report_type": "TestRep', "the last line is cut off", 2),
    "json-object-without-type": (b'{"$report_type": "SessionStart"}\n{"foo": 1}\n', "not a pytest report-log record", 2),
    "json-array": (b"[1, 2]\n", "not a pytest report-log record", 1),
    "json-number": (b"42\n", "not a pytest report-log record", 1),
    "json-type-not-string": (b'{"$report_type": 7}\n', "not a pytest report-log record", 1),
    "json-invalid-utf-8": (b'{"$report_type": "SessionStart"}\n\n{"$report_type": "W\xff"}\n', "invalid UTF-8", 3),
    "json-nested-too-deep": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "line is not JSON", 1),
    "test-report-without-nodeid": (b'{"$report_type": "TestReport", "when": "call", "outcome": "passed"}\n', "TestReport without a string nodeid", 1),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals(case: str) -> None:
    data, problem, line = REFUSALS[case]
    error = refusal(data)
    assert problem in error.problem
    assert error.line == line


@pytest.mark.parametrize("case", ["corrupt-line", "illegal-char", "invalid-utf-8", "truncated"])
def test_refusals_inside_gzip_keep_their_line(case: str) -> None:
    data, problem, line = REFUSALS[case]
    error = refusal(gzip.compress(data))
    assert (problem in error.problem, error.line) == (True, line)


def test_refusal_in_the_middle_of_the_stream() -> None:
    """A bad line after good ones: results were already yielded; the caller's transaction drops them."""
    good = b'{"$report_type": "SessionStart"}\n' + b"".join(
        b'{"$report_type": "TestReport", "nodeid": "t.py::test_%d", "when": "%s", "outcome": "passed"}\n' % (i, when)
        for i in range(3)
        for when in (b"setup", b"call", b"teardown")
    )
    parsed = parse(io.BytesIO(good + b"oops\n"), SOURCE)
    seen = []
    with pytest.raises(IngestError, match="upload-17.xml:11: line is not JSON"):
        for result in parsed.results:
            seen.append(result.nodeid)
    assert seen == ["t.py::test_0", "t.py::test_1", "t.py::test_2"]


# -- size limit ------------------------------------------------------------------------------------------


def test_over_the_size_limit() -> None:
    data = b"<testsuites>" + b'<testcase classname="c" name="x"/>' * 100 + b"</testsuites>"
    assert len(parse_all(data, max_bytes=len(data))[0]) == 100
    error = refusal(data, max_bytes=len(data) - 1)
    assert error.problem == f"file is larger than the limit of {len(data) - 1} bytes"


def test_limit_applies_to_the_decompressed_size() -> None:
    data = b"<testsuites>" + b'<testcase classname="c" name="x"/>' * 1000 + b"</testsuites>"
    packed = gzip.compress(data)
    assert len(packed) < 1000 < len(data)
    error = refusal(packed, max_bytes=5000)
    assert "larger than the limit" in error.problem


def gzip_bomb(inflated: int) -> bytes:
    """A small .gz of valid-looking XML that inflates to ``inflated`` bytes.

    gzip allows concatenated members, so one compressed megabyte of spaces is simply repeated.
    """
    block = gzip.compress(b" " * (1024 * 1024), compresslevel=9)
    return gzip.compress(b"<testsuites><testsuite>") + block * (inflated // (1024 * 1024))


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip_bomb(1024 * 1024 * 1024)  # 1 GB of spaces in about 1 MB

    class Counting(io.BytesIO):
        consumed = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            Counting.consumed += len(data)
            return data

    def attempt() -> None:
        parse(Counting(bomb), SOURCE, max_bytes=10 * 1024 * 1024).results.__next__()

    peak = peak_memory(attempt)
    assert Counting.consumed < len(bomb) // 4  # gzip reads 128 KB steps; it stopped long before the end
    assert peak < 20 * 1024 * 1024
    with pytest.raises(IngestError, match="file is larger than the limit of 10 MB"):
        attempt()


def test_describe_limit() -> None:
    assert describe_limit(200 * 1024 * 1024) == "200 MB"
    assert describe_limit(1536 * 1024) == "1.5 MB"
    assert describe_limit(1000) == "1000 bytes"


# -- odd but valid ----------------------------------------------------------------------------------------


def test_long_name_and_huge_message() -> None:
    name = "test_" + "ü" * 10_000
    body = "AssertionError: " + "x" * 5 * 1024 * 1024
    data = f'<testsuites><testcase classname="m" name="{name}"><failure message="{body}">{body}</failure></testcase></testsuites>'
    [result], _ = parse_all(data.encode())
    assert result.name == name
    assert len(result.message) <= 4_000 and len(result.details) <= 64_000


@pytest.mark.parametrize("depth", [2000, 10_000])
def test_deeply_nested_suites_parse(depth: int) -> None:
    """Past libxml2's 2048 levels the parser falls back to expat; the result is the same."""
    data = b"<testsuites>" + b'<testsuite name="s">' * depth + b'<testcase classname="c" name="deep"/>'
    data += b"</testsuite>" * depth + b"</testsuites>"
    assert [r.nodeid for r in parse_all(data)[0]] == ["c::deep"]


def test_nonsense_attributes() -> None:
    data = b"""<testsuites tests="-5" failures="many" time="-1" timestamp="yesterday">
      <testsuite name="s" tests="NaN" errors="1e309" time="inf" timestamp="2026-13-45T99:99:99">
        <testcase classname="c" name="a" time="-0.5"/>
        <testcase classname="c" name="b" time="1e309"/>
        <testcase classname="c" name="c" time="12 seconds"/>
        <testcase classname="c" name="d" time="0.25"/>
      </testsuite>
    </testsuites>"""
    results, info = parse_all(data)
    assert [r.duration for r in results] == [None, None, None, 0.25]
    assert (info.duration, info.started_at) == (None, None)


def test_duplicate_names_are_all_counted() -> None:
    data = b"<testsuites>" + b'<testcase classname="c" name="same"/>' * 5 + b"</testsuites>"
    assert len(parse_all(data)[0]) == 5


def test_report_log_with_no_tests() -> None:
    results, info = parse_all(b'{"$report_type": "SessionStart"}\n{"$report_type": "SessionFinish", "exitstatus": 5}\n')
    assert results == [] and (info.exitstatus, info.incomplete) == (5, False)


def test_comments_and_processing_instructions_before_the_root() -> None:
    data = b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- <!DOCTYPE in a comment is only text -->\n<?x y?>\n<testsuites/>'
    assert parse_all(data) == ([], RunInfo(format="junit"))
