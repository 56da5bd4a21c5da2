"""Streaming parser for ``go test -json`` (test2json events, one JSON object a line).

Counting (docs/INGESTION.md): every test and subtest whose last event is ``pass``, ``fail`` or ``skip``
is one result (``TestTable`` and ``TestTable/4+4`` are two); a package that fails without any of its
tests failing (it did not build, its ``TestMain`` or an ``init`` failed, it panicked or timed out
outside a reported test) is one error result named after the package. Traps handled here:

- Up to Go 1.23 a package that does not build writes no JSON at all: ``go test -json`` prints the
  plain line ``FAIL\t<package> [build failed]`` among the JSON lines (and the compiler's messages on
  stderr; with ``2>&1`` they are in the stream too). Go 1.24 writes ``build-output``/``build-fail``
  events and a package ``fail`` with ``FailedBuild``. Both become the same error result. Other plain
  text lines are kept as context for that error, never refused: they are go's own output.
- Parallel tests interleave their events; each test's output is held (bounded) only until its own
  final event, so memory follows the tests in flight, not the file.
- Output does not say which line is the failure: ``t.Log`` and ``t.Error`` look alike. The message is
  a ``panic:`` line when there is one, else the last ``file.go:N:`` line (``t.Errorf`` usually comes
  after the logs), without its ``file.go:N:`` prefix so that the same failure groups across lines.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .fingerprint import bounded_head, bounded_tail, failure_type
from .records import (
    MAX_DETAILS_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_TEST_SECONDS,
    IngestError,
    Outcome,
    ParsedResult,
    RunInfo,
)
from .reportlog import json_lines
from .source import Source

_OUTPUT_CHARS = MAX_DETAILS_CHARS // 4
_MAX_LINE_CHARS = 1_000_000
_FINAL = {"pass": Outcome.PASSED, "fail": Outcome.FAILED, "skip": Outcome.SKIPPED}
_FRAMING = re.compile(r"^\s*(?:=== (?:RUN|PAUSE|CONT|NAME)|--- (?:PASS|FAIL|SKIP):|PASS$|FAIL$|ok\s|FAIL\t)")
_SOURCE_LINE = re.compile(r"^\s*[\w./-]+\.go:\d+: ?")
_BUILD_FAILED = re.compile(r"^FAIL\t(\S+) \[(build failed|setup failed)\]\s*$")
# Plain lines go itself writes among the JSON ones (build failures before Go 1.24, with 2>&1 the
# compiler's messages): how a go stream may begin before its first JSON event.
_GO_TEXT = re.compile(r"^(?:FAIL\t|ok  \t|# |\S+\.go:\d+|\?   \t)")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def looks_like_go(first_lines: list[bytes]) -> bool:
    """True when the first JSON line is a test2json event (``"Action"``), after at most go's own text."""
    for raw in first_lines:
        line = raw.strip()
        if not line:
            continue
        if not line.startswith(b"{"):
            if _GO_TEXT.match(line.decode("utf-8", "replace")):
                continue
            return False
        try:
            record = json.loads(line)
        except ValueError:
            return False
        return isinstance(record, dict) and isinstance(record.get("Action"), str) and "$report_type" not in record
    return False


class _Test:
    __slots__ = ("lines", "message", "panic", "size")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.message = ""  # the last file.go:N: line seen
        self.panic = ""

    def add(self, text: str) -> None:
        stripped = text.strip()
        if stripped.startswith("panic:") and not self.panic:
            self.panic = stripped
        elif _SOURCE_LINE.match(text):
            self.message = _SOURCE_LINE.sub("", stripped, count=1).strip() or stripped
        if _FRAMING.match(text):
            return
        self.lines.append(text)
        self.size += len(text)
        if self.size > 2 * _OUTPUT_CHARS:  # keep the tail, bounded
            kept = bounded_tail("".join(self.lines), _OUTPUT_CHARS)
            self.lines, self.size = [kept], len(kept)

    def text(self) -> str:
        return bounded_tail("".join(self.lines), _OUTPUT_CHARS)

    def reason(self) -> str:
        if self.panic:
            return self.panic
        if self.message:
            return self.message
        for line in self.lines:
            if line.strip() and not _FRAMING.match(line):
                return line.strip()
        return ""


class _Package:
    __slots__ = ("ended", "failed_tests", "output", "reported")

    def __init__(self) -> None:
        self.output = _Test()
        self.failed_tests = 0
        self.reported = False  # its package-level error result was yielded
        self.ended = False  # its own pass, fail or skip event came


def parse_gotest(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """Yield one result per test and subtest that ended, and per package that failed on its own."""
    source = src.source
    tests: dict[tuple[str, str], _Test] = {}
    packages: dict[str, _Package] = {}
    loose = _Test()  # plain text lines: go's own build messages
    builds: dict[str, _Test] = {}  # Go 1.24's build-output events, by ImportPath
    first_time = last_time = None
    for lineno, raw, complete in json_lines(src):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith(b"{"):
            text = _text_line(source, lineno, raw)
            built = _BUILD_FAILED.match(text)
            if built is None:
                loose.add(text + "\n")
                continue
            package = packages.setdefault(built.group(1), _Package())
            package.ended = True
            if not package.reported:
                package.reported = True
                package.output.lines[:0] = loose.lines
                loose = _Test()
                yield _package_error(built.group(1), package, f"[{built.group(2)}]")
            continue
        event = _event(source, lineno, raw, complete)
        action = event["Action"]
        if action in ("build-output", "build-fail"):
            path = str(event.get("ImportPath") or "")
            build = builds.get(path)
            if build is None:
                if len(builds) > 1000:
                    builds.clear()
                build = builds[path] = _Test()
            build.add(_output(event))
            continue
        name = event.get("Package") or ""
        if not isinstance(name, str):
            raise IngestError(source, '"Package" is not a string', line=lineno)
        stamp = event.get("Time")
        if isinstance(stamp, str):
            first_time = first_time or stamp
            last_time = stamp
        test = event.get("Test")
        package = packages.get(name)
        if package is None:
            package = packages[name] = _Package()
        if test is None or test == "":
            failed_build = event.get("FailedBuild")
            if isinstance(failed_build, str) and failed_build in builds:
                package.output.lines[:0] = builds.pop(failed_build).lines
            yield from _package_event(name, package, action, event)
            continue
        if not isinstance(test, str):
            raise IngestError(source, '"Test" is not a string', line=lineno)
        key = (name, test)
        if action == "output":
            held = tests.get(key)
            if held is None:
                held = tests[key] = _Test()
            held.add(_output(event))
        elif action in _FINAL:
            held = tests.pop(key, None) or _Test()
            outcome = _FINAL[action]
            if outcome is Outcome.FAILED:
                package.failed_tests += 1
            yield _result(name, test, outcome, held, event.get("Elapsed"))
        elif action == "run" and key not in tests:
            tests[key] = _Test()
    info.started_at = _epoch(first_time)
    finish = _epoch(last_time)
    if info.started_at is not None and finish is not None and finish >= info.started_at:
        info.duration = finish - info.started_at
    # Tests or packages that never ended: the stream was cut (or go was killed) before the run's end.
    if tests or not all(p.ended for p in packages.values()):
        info.incomplete = True


def _package_event(name: str, package: _Package, action: str, event: dict[str, Any]) -> Iterator[ParsedResult]:
    if action == "output":
        package.output.add(_output(event))
        return
    if action in _FINAL:
        package.ended = True
    if action == "fail" and not package.failed_tests and not package.reported:
        package.reported = True
        built = event.get("FailedBuild")
        yield _package_error(name, package, "[build failed]" if built else "")


def _package_error(name: str, package: _Package, why: str) -> ParsedResult:
    """A package that failed with no failed test: one error, its output (or the build's) as details."""
    details = package.output.text()
    message = package.output.reason() or f"FAIL {name} {why}".strip()
    result = ParsedResult(name, name.rpartition("/")[2] or name, name, Outcome.ERROR)
    result.phase = "setup"
    result.message = bounded_head(message, MAX_MESSAGE_CHARS)
    result.details = details
    result.error_type = "build failed" if "build failed" in why else failure_type("", message, details)
    return result


def _result(package: str, test: str, outcome: Outcome, held: _Test, elapsed: Any) -> ParsedResult:
    took = elapsed if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) else None
    if took is not None and not (0.0 <= took <= MAX_TEST_SECONDS and math.isfinite(took)):
        took = None
    result = ParsedResult(f"{package}::{test}", test, package, outcome, float(took) if took is not None else None)
    if outcome is Outcome.PASSED:
        return result
    details = held.text()
    message = held.reason()
    result.message = bounded_head(message, MAX_MESSAGE_CHARS)
    result.details = details
    if outcome is Outcome.FAILED:
        result.phase = "call"
        result.error_type = "panic" if held.panic else failure_type("", message, details)
    return result


def _event(source: str, lineno: int, raw: bytes, complete: bool) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(source, f"invalid UTF-8 ({exc.reason} at byte {exc.start + 1})", line=lineno) from None
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if not complete:
            raise IngestError(source, "the last line is cut off (not valid JSON)", line=lineno) from None
        raise IngestError(
            source, f"line is not JSON ({getattr(exc, 'msg', 'nested too deeply')})", line=lineno
        ) from None
    if not isinstance(event, dict) or not isinstance(event.get("Action"), str):
        raise IngestError(source, 'line is not a go test -json event (a JSON object with "Action")', line=lineno)
    return event


def _text_line(source: str, lineno: int, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise IngestError(source, f"invalid UTF-8 ({exc.reason} at byte {exc.start + 1})", line=lineno) from None
    if len(text) > _MAX_LINE_CHARS:
        raise IngestError(source, "a line of plain text longer than 1,000,000 characters", line=lineno)
    return text


def _output(event: dict[str, Any]) -> str:
    output = event.get("Output")
    return output if isinstance(output, str) else ""


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", stamp.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        return None
