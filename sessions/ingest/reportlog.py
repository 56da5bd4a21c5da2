"""Streaming parser for pytest ``--report-log`` JSON lines (docs/INGESTION.md, Counting).

Traps handled here:

- One test is up to three ``TestReport`` records (setup, call, teardown), plus ``SubTestReport``s; with
  pytest-xdist the records of different tests interleave. A test is held until its teardown arrives
  and only then combined and yielded, so memory grows with the tests *in flight*, not with the file.
- pytest's summary counts a teardown error twice (``1 passed, 1 error``); loopdash counts one result
  (error), because ``tests`` must equal the sum of the outcomes.
- ``keywords`` mixes real marks with the test's own name, its class and module, its directories, its
  parametrization ids, function attributes, the root directory's name and the session's ``""``; only
  the marks are kept (see ``markers``).
- A run that was cut off has no ``SessionFinish``: it is marked incomplete, and a test whose records
  stop before its teardown is still reported (an error if it never got a call report: the test that
  hung until the timeout killed the run is exactly the one to show).

Durations are the sum of the setup, call and teardown durations, as pytest's JUnit writer reports them
by default, so the same test has the same duration in both formats.

Speed: a report-log is about seven times the size of the JUnit file of the same run, and decoding its
JSON was most of the cost. Lines are decoded by orjson when it is installed (several times faster
than ``json``); a line orjson refuses, or one with an integer it would turn into a float, is decoded
by ``json`` instead, so that results and refusals are exactly those of ``json`` alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - an optional speed-up
    _fast_loads = None

from .fingerprint import bounded_head, bounded_tail, collect_message, failure_type
from .records import (
    INTERRUPTED_MESSAGE,
    MAX_DETAILS_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_TEST_SECONDS,
    IngestError,
    Outcome,
    ParsedResult,
    RunInfo,
)
from .source import CHUNK, Source

INCOMPLETE_EXITSTATUS = frozenset({2, 3, 4})
MAX_ATTEMPTS = 20  # failed tries kept per test; more reruns than that keep the first ones  # interrupted, internal error, usage error
# Marks that are pytest's plumbing rather than a label anyone filters by.
_PLUMBING = frozenset({"", "pytestmark", "parametrize", "usefixtures", "filterwarnings"})
_SECTION_CHARS = MAX_DETAILS_CHARS // 8
_ATTEMPT_DETAILS = MAX_DETAILS_CHARS // 8
_INF = math.inf
_MAX_TOOK = MAX_TEST_SECONDS
# orjson turns an integer beyond 64 bits into a float; json keeps it: a line with 19 digits in a row
# goes to json. Found by mapping every digit to "0" (a regular expression took four times longer).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_LONG_NUMBER = b"0" * 19


class _Node:
    """Everything seen so far of one test."""

    __slots__ = (
        "call",
        "crash",
        "duration",
        "keywords",
        "nodeid",
        "properties",
        "rerun",
        "setup",
        "subtest",
        "teardown",
        "tries",
    )

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.setup: dict[str, Any] | None = None
        self.call: dict[str, Any] | None = None
        self.teardown: dict[str, Any] | None = None
        self.crash: dict[str, Any] | None = None
        self.subtest: dict[str, Any] | None = None  # the first failed SubTestReport
        self.duration: float | None = None
        self.keywords: Any = None
        self.properties: Any = None
        self.rerun = False
        self.tries: list[dict[str, str]] | None = None  # pytest-rerunfailures' failed attempts


def parse_reportlog(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """Yield one result per test (and per failed or skipped collector); fills ``info`` on the way."""
    source = src.source
    pending: dict[str, _Node] = {}
    reran: dict[str, list[dict[str, str]]] = {}  # failed tries of tests whose next attempt has not begun
    finished = False
    roots_dir_keyword = True  # pytest >= 8 puts the root directory's name among the keywords
    first_start: float | None = None
    last_stop: float | None = None
    fast_loads = _fast_loads
    for lineno, raw, complete in _lines(src):
        record = None
        if fast_loads is not None and _LONG_NUMBER not in raw.translate(_DIGITS_AS_ZERO):
            try:
                record = fast_loads(raw)
            except ValueError:
                pass
        if record.__class__ is not dict or (kind := record.get("$report_type")).__class__ is not str:
            record = _record(source, lineno, raw, complete)  # json: the same result, or the precise refusal
            kind = record["$report_type"]
        if kind == "TestReport" or kind == "SubTestReport":
            nodeid, when, outcome = record.get("nodeid"), record.get("when"), record.get("outcome")
            if nodeid.__class__ is not str or when.__class__ is not str or outcome.__class__ is not str:
                nodeid, when, outcome = _fields(source, lineno, record)
            start = record.get("start")
            if start is not None:
                if start.__class__ is not float or not 0.0 <= start < _INF:  # _number(), inlined for floats
                    start = _number(start)
                if start is not None and (first_start is None or start < first_start):
                    first_start = start
            stop = record.get("stop")
            if stop is not None:
                if stop.__class__ is not float or not 0.0 <= stop < _INF:
                    stop = _number(stop)
                if stop is not None and (last_stop is None or stop > last_stop):
                    last_stop = stop
            node = pending.get(nodeid)
            if node is None:
                node = pending[nodeid] = _Node(nodeid)
                if reran:
                    node.tries = reran.pop(nodeid, None)
            if kind == "SubTestReport":
                if outcome == "failed" and node.subtest is None:
                    node.subtest = record
                continue
            _add(node, when, outcome, record)
            if when == "teardown" or node.crash is not None:
                del pending[nodeid]
                if not node.rerun:
                    yield _combine(node, roots_dir_keyword)
                elif node.tries:
                    reran[nodeid] = node.tries
        elif kind == "CollectReport":
            result = _collect(source, lineno, record)
            if result is not None:
                yield result
        elif kind == "SessionStart":
            version = str(record.get("pytest_version") or "")
            roots_dir_keyword = not version[:1].isdigit() or int(version.split(".")[0]) >= 8
        elif kind == "SessionFinish":
            finished = True
            status = record.get("exitstatus")
            info.exitstatus = status if isinstance(status, int) and not isinstance(status, bool) else None
        # WarningMessage and record types of future versions carry no results.
    for node in pending.values():
        if not node.rerun:
            yield _combine(node, roots_dir_keyword)
    for nodeid, tries in reran.items():  # rerun, and the run ended before the next attempt began
        node = _Node(nodeid)
        node.tries = tries
        yield _combine(node, roots_dir_keyword)
    info.incomplete = not finished or info.exitstatus in INCOMPLETE_EXITSTATUS
    info.started_at = first_start
    if first_start is not None and last_stop is not None and last_stop >= first_start:
        info.duration = last_stop - first_start


# -- lines and records ----------------------------------------------------------------------------------


def _lines(src: Source) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, ended with a newline), joining chunks without quadratic copying."""
    lineno = 0
    parts: list[bytes] = []
    while chunk := src.read(CHUNK):
        pieces = chunk.split(b"\n")
        if len(pieces) == 1:
            parts.append(chunk)
            continue
        if parts:
            parts.append(pieces[0])
            pieces[0] = b"".join(parts)
            parts = []
        for line in pieces[:-1]:
            lineno += 1
            yield lineno, line, True
        if pieces[-1]:
            parts.append(pieces[-1])
    if parts:
        yield lineno + 1, b"".join(parts), False


json_lines = _lines  # the same line splitting for the other JSON-lines format (``go test -json``)


def _record(source: str, lineno: int, raw: bytes, complete: bool) -> dict[str, Any]:
    if not raw.strip():
        return {"$report_type": ""}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(source, f"invalid UTF-8 ({exc.reason} at byte {exc.start + 1})", line=lineno) from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if not complete:
            raise IngestError(source, "the last line is cut off (not valid JSON)", line=lineno) from None
        reason = getattr(exc, "msg", "nested too deeply")
        raise IngestError(source, f"line is not JSON ({reason})", line=lineno) from None
    if not isinstance(record, dict) or not isinstance(record.get("$report_type"), str):
        raise IngestError(
            source, 'line is not a pytest report-log record (a JSON object with "$report_type")', line=lineno
        )
    return record


def _fields(source: str, lineno: int, record: dict[str, Any]) -> tuple[str, str, str]:
    nodeid, when, outcome = record.get("nodeid"), record.get("when"), record.get("outcome")
    if not isinstance(nodeid, str) or not isinstance(when, str) or not isinstance(outcome, str):
        raise IngestError(source, f"{record['$report_type']} without a string nodeid, when and outcome", line=lineno)
    return nodeid, when, outcome


def _add(node: _Node, when: str, outcome: str, record: dict[str, Any]) -> None:
    if outcome == "rerun":  # pytest-rerunfailures: this attempt does not decide, a later one will
        node.rerun = True
        if node.tries is None:
            node.tries = []
        if len(node.tries) < MAX_ATTEMPTS:
            node.tries.append(_attempt(record, when))
        return
    if node.rerun and when == "setup":
        tries = node.tries
        node.__init__(node.nodeid)  # a fresh attempt of a rerun test
        node.tries = tries
    get = record.get
    took = get("duration")
    if took is not None and (took.__class__ is not float or not 0.0 <= took <= _MAX_TOOK):  # _number(), inlined
        took = _number(took)
        if took is not None and took > _MAX_TOOK:  # over a day for one phase: a unit mistake, unknown
            took = None
    if took is not None:
        node.duration = took if node.duration is None else node.duration + took
    keywords = get("keywords")
    if keywords and (when == "call" or node.keywords is None):
        node.keywords = keywords
    properties = get("user_properties")
    if properties:
        node.properties = properties
    if when == "setup":
        node.setup = record
    elif when == "call":
        node.call = record
    elif when == "teardown":
        node.teardown = record
    elif outcome == "failed":  # xdist's crashed worker: when="???", and no teardown will follow
        node.crash = record


# -- combining ------------------------------------------------------------------------------------------


def _combine(node: _Node, roots_dir_keyword: bool) -> ParsedResult:
    nodeid = node.nodeid
    keywords, properties = node.keywords, node.properties
    result = ParsedResult(
        nodeid,
        node_name(nodeid),
        nodeid.partition("::")[0],
        Outcome.PASSED,
        node.duration,
        markers=markers(keywords, nodeid, roots_dir_keyword) if keywords else (),
        properties=_properties(properties) if properties else {},
    )
    setup, call, teardown = node.setup, node.call, node.teardown
    if setup is not None and setup["outcome"] == "failed":
        _problem(result, Outcome.ERROR, setup, "setup")
    elif setup is not None and setup["outcome"] == "skipped":
        _skip(result, setup)
    elif call is not None:
        outcome = call["outcome"]
        if outcome == "skipped":
            _skip(result, call)
        elif node.subtest is not None:
            # The first failed subtest names the problem, as the first <failure> does in JUnit.
            _problem(result, Outcome.FAILED, node.subtest, "call")
        elif outcome == "failed":
            _problem(result, Outcome.FAILED, call, "call")
        elif "wasxfail" in call:
            result.outcome = Outcome.XPASSED
            result.message = bounded_head(_xfail_reason(call), MAX_MESSAGE_CHARS)
    elif node.crash is not None:
        _problem(result, Outcome.ERROR, node.crash, "")
    elif node.tries and setup is None:
        # Rerun, and the run ended before the next attempt: the last try decides.
        last = node.tries[-1]
        result.outcome = Outcome.ERROR if last["outcome"] == "error" else Outcome.FAILED
        result.phase = "setup" if last["outcome"] == "error" else "call"
        result.message, result.error_type, result.details = last["message"], last["type"], last["details"]
    else:
        result.outcome = Outcome.ERROR
        result.phase = "call" if setup is not None else "setup"
        result.message = f"{INTERRUPTED_MESSAGE} (no call report)"
    if teardown is not None and teardown["outcome"] == "failed":
        if result.outcome in (Outcome.FAILED, Outcome.ERROR):
            extra = _details(teardown)
            result.details = bounded_tail(f"{result.details}\n\n--- teardown ---\n{extra}", MAX_DETAILS_CHARS)
        else:
            _problem(result, Outcome.ERROR, teardown, "teardown")
    if node.tries:
        result.attempts = node.tries
        if result.outcome in (Outcome.PASSED, Outcome.XPASSED):
            result.message = node.tries[0]["message"]  # flaky in this run: its first failure is kept
    return result


def _attempt(record: dict[str, Any], when: str) -> dict[str, str]:
    """A failed try that pytest-rerunfailures reported as ``rerun``, as JUnit's rerun elements are kept."""
    probe = ParsedResult("", "")
    _problem(probe, Outcome.FAILED, record, when)
    return {
        "outcome": "error" if when == "setup" else "failed",
        "message": probe.message,
        "type": probe.error_type,
        "details": bounded_tail(probe.details, _ATTEMPT_DETAILS),
    }


def _collect(source: str, lineno: int, record: dict[str, Any]) -> ParsedResult | None:
    """A failed collector is one error result; a skipped one (module-level skip) one skipped result."""
    outcome = record.get("outcome")
    if outcome not in ("failed", "skipped"):
        return None
    nodeid = record.get("nodeid")
    if not isinstance(nodeid, str):
        raise IngestError(source, "CollectReport without a string nodeid", line=lineno)
    result = ParsedResult(nodeid=nodeid, name=node_name(nodeid), file=nodeid.partition("::")[0])
    if outcome == "skipped":
        _skip(result, record)
        return result
    _problem(result, Outcome.ERROR, record, "collect")
    result.message = bounded_head(collect_message(result.details), MAX_MESSAGE_CHARS)
    result.error_type = failure_type("", result.message, result.details)
    return result


def _problem(result: ParsedResult, outcome: Outcome, report: dict[str, Any], phase: str) -> None:
    result.outcome = outcome
    result.phase = phase
    longrepr = report.get("longrepr")
    crash = longrepr.get("reprcrash") if isinstance(longrepr, dict) else None
    if isinstance(crash, dict) and isinstance(crash.get("message"), str):
        message = crash["message"]
    elif isinstance(longrepr, list) and len(longrepr) == 3:
        message = str(longrepr[2])
    else:
        message = _first_line(longrepr_text(longrepr))
    details = _details(report)
    result.message = bounded_head(message, MAX_MESSAGE_CHARS)
    result.error_type = failure_type("", message, details)
    result.details = details


def _skip(result: ParsedResult, report: dict[str, Any]) -> None:
    """skipped or xfailed; the reason is trimmed exactly as pytest's JUnit writer trims it."""
    if "wasxfail" in report:
        result.outcome = Outcome.XFAILED
        reason = _xfail_reason(report)
    else:
        result.outcome = Outcome.SKIPPED
        longrepr = report.get("longrepr")
        reason = str(longrepr[2]) if isinstance(longrepr, list) and len(longrepr) == 3 else ""
        reason = reason.removeprefix("Skipped: ")
    result.message = bounded_head(reason, MAX_MESSAGE_CHARS)
    result.details = bounded_tail(longrepr_text(report.get("longrepr")), MAX_DETAILS_CHARS)


def _xfail_reason(report: dict[str, Any]) -> str:
    return str(report.get("wasxfail") or "").removeprefix("reason: ")


def _details(report: dict[str, Any]) -> str:
    text = longrepr_text(report.get("longrepr"))
    sections = report.get("sections")
    if isinstance(sections, list):
        extra = [
            f"--- {s[0]} ---\n{bounded_tail(str(s[1]), _SECTION_CHARS)}"
            for s in sections
            if isinstance(s, list) and len(s) == 2 and str(s[1]).strip()
        ]
        if extra:
            text = bounded_tail(text, MAX_DETAILS_CHARS * 3 // 4) + "\n\n" + "\n\n".join(extra)
    return bounded_tail(text, MAX_DETAILS_CHARS)


# -- longrepr rendering ------------------------------------------------------------------------------------


def longrepr_text(longrepr: Any) -> str:
    """A readable traceback from any ``longrepr`` shape: null, str, [path, line, reason] or dict."""
    if longrepr is None:
        return ""
    if isinstance(longrepr, str):
        return longrepr
    if isinstance(longrepr, list):
        if len(longrepr) == 3:
            return f"{longrepr[0]}:{longrepr[1]}: {longrepr[2]}"
        return "\n".join(str(x) for x in longrepr)
    if not isinstance(longrepr, dict):
        return str(longrepr)
    parts: list[str] = []
    chain = longrepr.get("chain")
    if isinstance(chain, list) and chain:
        for link in chain:
            if isinstance(link, list) and len(link) == 3:
                parts.append(_traceback_text(link[0]))
                if link[2]:
                    parts.append(str(link[2]))
    else:
        parts.append(_traceback_text(longrepr.get("reprtraceback")))
        crash = longrepr.get("reprcrash")
        if not parts[-1] and isinstance(crash, dict):
            parts[-1] = str(crash.get("message") or "")
    return "\n\n".join(p for p in parts if p)


def _traceback_text(tb: Any) -> str:
    if not isinstance(tb, dict):
        return ""
    entries = []
    for entry in tb.get("reprentries") or ():
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, dict):
            continue
        lines = [str(x) for x in data.get("lines") or ()]
        loc = data.get("reprfileloc")
        if isinstance(loc, dict):
            lines.append("")
            lines.append(f"{loc.get('path')}:{loc.get('lineno')}: {loc.get('message')}")
        entries.append("\n".join(lines))
    text = "\n_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _\n\n".join(entries)
    if tb.get("extraline"):
        text += "\n" + str(tb["extraline"])
    return text


# -- identity and labels ------------------------------------------------------------------------------------


def node_name(nodeid: str) -> str:
    """The last node id part, splitting before any ``[params]`` (which may themselves contain ``::``)."""
    base, bracket, params = nodeid.partition("[")
    return base.rpartition("::")[2] + bracket + params


def markers(keywords: Any, nodeid: str, roots_dir_keyword: bool = True) -> tuple[str, ...]:
    """The marks among a report's ``keywords``; see the module docstring for what else is in there.

    ``keywords`` lists the test's own entries first (name, function marks, attributes, parameter id),
    then its class's, its module's (file name, module marks), its directories', the root directory's
    name and the session's ``""``, each name once. A mark may share a directory's name (``e2e`` in
    ``tests/e2e/``): before the module's file name it is a mark; after it, it is taken for the
    directory, so a *module-level* mark named like a directory is lost (the two orders are identical).
    Since pytest 8 the keyword just before ``""`` is the root directory's name: dropped by position.
    """
    if not isinstance(keywords, dict):
        return ()
    names = [k for k in keywords if isinstance(k, str)]
    if roots_dir_keyword and len(names) >= 2 and names[-1] == "":
        del names[-2:]
    if not names:
        return ()
    base, _, params = nodeid.partition("[")
    parts = base.split("::")
    *dirs, module = parts[0].split("/")
    own = {*parts[1:], node_name(nodeid)}
    if params:
        ids = params[:-1] if params.endswith("]") else params
        own.add(ids)
        own.update(ids.split("-"))
    found = []
    after_module = False
    for name in names:
        if name == module:
            after_module = True
        elif name in own or name in _PLUMBING or name.startswith("_") or (after_module and name in dirs):
            continue
        else:
            found.append(name)
    return tuple(found)


def _properties(pairs: Any) -> dict[str, str]:
    """``user_properties`` ([[name, value], ...]) as strings, ``str(value)`` as pytest's JUnit writes them."""
    found: dict[str, str] = {}
    if isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, list) and len(pair) == 2:
                found[str(pair[0])] = str(pair[1])
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if value >= 0 and math.isfinite(value) else None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
