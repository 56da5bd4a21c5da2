"""Streaming JUnit XML parser: every ``<testcase>`` at any depth is one result (docs/INGESTION.md, Counting).

Traps, each handled here on purpose:

- Count attributes (``tests``, ``failures``...) lie: pytest 9 counts subtests in them, mocha counts
  tests it never wrote, nested suites are cumulative. They are never read.
- ``<skipped type="pytest.xfail">`` is an xfail; any other ``<skipped>`` wins even over a ``<failure>``
  beside it (node's failing todo tests).
- pytest writes a failed teardown of a failed test as a *second* ``testcase`` holding only
  ``<error message="failed on teardown with ...">``; it is merged into the first one through a bounded
  look-back, so that memory stays flat while a file of any length streams through.
- pytest 9 writes no ``file`` attribute by default (xunit2), so the node id is rebuilt from
  ``classname`` + ``name`` and must equal the report-log's ``nodeid`` for the same test.
- DTDs are refused before lxml sees them (billion laughs, quadratic blow-up, external entities); the
  parser also runs with entity resolution, DTD loading and network access off.
- libxml2 caps element nesting at 2048 levels even with ``huge_tree``. A deeper file is parsed again
  from its start by expat (no depth limit, DTDs refused by handlers as well as by the prolog scan),
  skipping the results already yielded: both parsers yield the same results in the same order, so the
  restart is invisible to the caller. lxml stays the first choice: it is several times faster.

Speed: the per-``<testcase>`` work is the cost of ingestion (lxml itself takes a fifth of it), so the
common case (a passed test: attributes only) takes a short path, and held results are released in
blocks rather than one by one.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import TreeBuilder
from xml.parsers import expat

from lxml import etree

from .fingerprint import (
    bounded_head,
    bounded_tail,
    collect_message,
    failure_type,
    unwrap_pytest_error,
)
from .junit_evidence import (
    RERUN_TAGS,
    NamelessCases,
    add_suite_output,
    attempt,
    did_not_run,
    merge_properties,
    properties,
)
from .records import (
    MAX_DETAILS_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_RUN_SECONDS,
    MAX_TEST_SECONDS,
    IngestError,
    Outcome,
    ParsedResult,
    RunInfo,
)
from .source import CHUNK, Source
from .xml_guard import (
    LineCount,
    TooDeep,
    expat_error,
    pull_parser,
    read_prolog,
    refuse_doctype,
    syntax_error,
    xml_feeds,
)

ROOTS = (b"testsuites", b"testsuite")
# Any root other than these four formats' comes here and is refused by this wording.
EXPECTED = "<testsuites> or <testsuite> (JUnit), <TestRun> (TRX), <test-run> (NUnit 3) or <assemblies> (xUnit.net v2)"
LOOKBACK = 1000  # results held back for the teardown merge; pytest writes the pair adjacently
_TAGS = ("{*}testcase", "{*}testsuite", "{*}testsuites", "{*}properties", "{*}system-out", "{*}system-err")
_OUTPUT_TAGS = ("system-out", "system-err")
_CONTAINERS = ("testsuite", "testsuites")
_OUTPUT_CHARS = MAX_DETAILS_CHARS // 8
_TEARDOWN_PREFIX = "failed on teardown with"
_COLLECTOR_MESSAGES = ("collection failure", "collection skipped")
# A classname that a pytest module path produced: dotted identifiers with a test_*/*_test module.
_PYTEST_CLASSNAME = re.compile(r"^[A-Za-z_][\w-]*(?:\.[\w-]+)*$")
_PYTEST_MODULE = re.compile(r"(?:^|\.)(?:test_[\w-]*|[\w-]*_test)(?:\.|$)")


def parse_junit(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """Yield one result per ``<testcase>``; fills ``info`` (properties, start, duration) on the way."""
    yielded = 0
    try:
        for result in _parse_lxml(src, info):
            yield result
            yielded += 1
        return
    except TooDeep:
        pass
    # Deeper than libxml2 goes: parse again from the start with expat, skipping what was yielded.
    fresh = src.reopen()
    if fresh is None:
        raise IngestError(
            src.source, "elements nested deeper than 2048 levels, in a stream that cannot be read twice"
        ) from None
    info.properties.clear()
    info.started_at = info.duration = None
    for index, result in enumerate(_parse_expat(fresh, info)):
        if index >= yielded:
            yield result


def _parse_lxml(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    source = src.source
    prolog = read_prolog(src, ROOTS, EXPECTED)
    parser = pull_parser(_TAGS, src.encoding)
    state = _State(info)
    held = _Lookback()
    lines = LineCount()
    etree.clear_error_log()
    first = True
    for data in xml_feeds(src, prolog):
        try:
            if data:
                lines.feed(data)
                parser.feed(data)
            else:
                parser.close()
            events = list(parser.read_events())
        except etree.XMLSyntaxError as exc:
            raise syntax_error(source, exc, lines.ended() if not data else lines) from None
        if first and events:
            first = False
            refuse_doctype(source, events[0][1])
        last = None  # the last test case handled: it and the siblings before it are freed at once
        for _event, el in events:
            tag = el.tag
            if tag[0] == "{":
                tag = tag.rpartition("}")[2]
            parent = el.getparent()
            if tag == "testcase":
                result, teardown_only = _testcase(el, state, parent)
                if not (teardown_only and held.merge(result)):
                    released = held.push(result)
                    if released is not None:
                        yield from released
                el.clear(keep_tail=False)
                last = el
            elif tag == "testsuite":
                state.suite_end(el, _depth(parent))
                _drop(el, parent)
            elif tag == "testsuites":
                state.root_end(el)
            elif tag == "properties":
                state.properties_end(el, parent)
            else:
                state.output_end(el, tag, parent)
        if last is not None:
            _drop_before(last)
    yield from held.drain()


def _drop_before(el: etree._Element) -> None:
    """Free the handled siblings before ``el`` with one slice: a deletion per test case cost more."""
    parent = el.getparent()
    if parent is not None:
        del parent[: parent.index(el)]


def _depth(parent: etree._Element | None) -> int:
    """0 for the root, 1 for a child of the root, 2 for anything deeper."""
    if parent is None:
        return 0
    return 1 if parent.getparent() is None else 2


# -- the expat fallback, for files nested deeper than libxml2 allows -----------------------------------


class _ExpatTree:
    """Builds ElementTree elements from expat's callbacks and handles each wanted element at its end.

    Only the open elements and the current test case's children are kept: a handled element is
    removed from its parent, as ``_drop`` does on the lxml side.
    """

    def __init__(self, state: _State, held: _Lookback) -> None:
        self.builder = TreeBuilder()
        self.stack: list[Any] = []
        self.state = state
        self.held = held
        self.ready: list[ParsedResult] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if "}" in name:
            name = "{" + name
        self.stack.append(self.builder.start(name, attrs))

    def end(self, name: str) -> None:
        stack = self.stack
        el = stack.pop()
        self.builder.end(el.tag)
        parent = stack[-1] if stack else None
        tag = el.tag.rpartition("}")[2] if el.tag[0] == "{" else el.tag
        if tag == "testcase":
            result, teardown_only = _testcase(el, self.state, parent)
            if not (teardown_only and self.held.merge(result)):
                released = self.held.push(result)
                if released is not None:
                    self.ready.extend(released)
        elif tag == "testsuite":
            self.state.suite_end(el, min(len(stack), 2))
        elif tag == "testsuites":
            self.state.root_end(el)
            return
        else:
            if tag == "properties":
                self.state.properties_end(el, parent)
            elif tag in _OUTPUT_TAGS:
                self.state.output_end(el, tag, parent)
            if parent is None or _local(parent.tag) not in _CONTAINERS:
                return  # inside a test case (or a <properties>): read with it
        if parent is not None:
            parent.remove(el)


def _parse_expat(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """The same results as ``_parse_lxml``, from expat; DTDs and entities are refused here too."""
    source = src.source
    data = read_prolog(src, ROOTS, EXPECTED)
    parser = expat.ParserCreate(src.encoding, namespace_separator="}")
    parser.buffer_text = True
    parser.ordered_attributes = False
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    tree = _ExpatTree(_State(info), _Lookback())

    def refuse(*_args: object) -> None:
        raise IngestError(source, "DTDs and entity declarations are refused", line=parser.CurrentLineNumber)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = tree.start
    parser.EndElementHandler = tree.end
    parser.CharacterDataHandler = tree.builder.data
    while True:
        try:
            parser.Parse(data, not data)
        except expat.ExpatError as exc:
            raise expat_error(source, exc, data) from None
        if tree.ready:
            yield from tree.ready
            tree.ready.clear()
        if not data:
            break
        data = src.read(CHUNK)
    yield from tree.held.drain()


# -- prolog: DTD refusal and the root check, before lxml parses anything ----------------------------


def _drop(el: etree._Element, parent: etree._Element | None) -> None:
    """Free a handled element and everything before it, so memory does not grow with the file."""
    el.clear(keep_tail=False)
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


# -- per-element work ---------------------------------------------------------------------------------


class _State:
    """What the parser learns about the whole file, plus the per-classname node id cache."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.top_level_time = 0.0
        # classname → prefix when the test case has no file attribute, (classname, file) → prefix else.
        self.prefixes: dict[str | tuple[str, str], str | None] = {}
        self.nameless = NamelessCases()

    def suite_end(self, el: Any, depth: int) -> None:
        """``depth``: 0 for the root, 1 for a child of the root, 2 for deeper suites."""
        self.nameless.suite_ended(el)
        started = _timestamp(el.get("timestamp"))
        if started is not None and (self.info.started_at is None or started < self.info.started_at):
            self.info.started_at = started
        took = duration(el.get("time"), MAX_RUN_SECONDS)
        if depth == 0:  # <testsuite> root
            self.info.duration = took
        elif depth == 1 and took is not None:
            self.top_level_time += took
            self.info.duration = self.top_level_time

    def root_end(self, el: Any) -> None:
        took = duration(el.get("time"), MAX_RUN_SECONDS)
        if took is not None:
            self.info.duration = took
        started = _timestamp(el.get("timestamp"))
        if started is not None:
            self.info.started_at = started

    def properties_end(self, el: Any, parent: Any) -> None:
        if parent is None or _local(parent.tag) == "testcase":
            return  # the test case reads its own
        merge_properties(self.info.properties, properties(el))

    def output_end(self, el: Any, tag: str, parent: Any) -> None:
        """A suite's own ``<system-out>``/``<system-err>`` (a test case's are read with it)."""
        if parent is not None and _local(parent.tag) in _CONTAINERS:
            add_suite_output(self.info, tag, el.text, self.nameless.suite_label(parent))

    def prefix(self, classname: str, file: str, parent: Any) -> str | None:
        key = (classname, file) if file else classname
        try:
            return self.prefixes[key]
        except KeyError:
            pass
        if len(self.prefixes) > 10_000:
            self.prefixes.clear()
        suite = parent.get("name", "") if parent is not None else ""
        found = pytest_prefix(classname, file, suite)
        self.prefixes[key] = found
        return found


_MAX_TOOK = MAX_TEST_SECONDS
_PYTEST_ATTRIBUTES = ["classname", "name", "time"]
_LXML_ELEMENT = etree._Element  # the expat fallback's ElementTree elements have no ``values()``
_PASSED = Outcome.PASSED


def _testcase(el: Any, state: _State, parent: Any) -> tuple[ParsedResult, bool]:
    """The result for one ``<testcase>``, and whether it is a pytest teardown-only duplicate."""
    if el.__class__ is _LXML_ELEMENT and el.keys() == _PYTEST_ATTRIBUTES:
        # pytest's own layout: the three values in one call (five ``el.get`` cost lxml twice as much)
        classname, name, took = el.values()
        file = status = None
    else:
        get = el.get
        classname, name, took, file, status = get("classname"), get("name"), get("time"), get("file"), get("status")
    classname = classname.strip() if classname else ""
    name = name.strip() if name else ""
    if not name:
        classname, name = state.nameless.identity(classname, parent)
    file = file.replace("\\", "/") if file else ""
    prefix = state.prefix(classname, file, parent)
    if prefix is not None:
        nodeid = f"{prefix}::{name}"
        path = prefix.partition("::")[0]
    else:
        nodeid = f"{classname}::{name}" if classname else name
        path = file or _suite_file(parent)
    if took:  # duration(), inlined: this runs for every test case
        try:
            took = float(took)
        except ValueError:
            took = None
        else:
            if not 0.0 <= took <= _MAX_TOOK:  # negative, NaN, infinite or over a day: unknown
                took = None
    else:
        took = None
    result = ParsedResult(nodeid, name, path, _PASSED, took)
    if len(el) == 0 and not status:
        return result, False

    skipped = failures = errors = None
    outputs: list[str] = []
    attempts: list[dict[str, str]] = []
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag[0] == "{":
            tag = tag.rpartition("}")[2]
        if tag == "failure":
            failures = failures or []
            failures.append(child)
        elif tag == "error":
            errors = errors or []
            errors.append(child)
        elif tag == "skipped":
            skipped = skipped if skipped is not None else child
        elif tag in ("system-out", "system-err"):
            text = child.text
            if text and text.strip():
                outputs.append(f"--- {tag} ---\n{bounded_tail(text, _OUTPUT_CHARS)}")
        elif tag == "properties":
            result.properties.update(properties(child))
        elif tag in RERUN_TAGS:
            attempts.append(attempt(child, tag))

    if attempts:
        result.attempts = attempts
        result.message = attempts[0]["message"]  # a passed test keeps its first failure's message
    if status and did_not_run(status):
        result.outcome = Outcome.SKIPPED
        reason = skipped if skipped is not None else None
        result.message = bounded_head((reason.get("message") if reason is not None else "") or status, 200)
        return result, False
    collector = (errors or [skipped])[0]
    if not classname and collector is not None and collector.get("message") in _COLLECTOR_MESSAGES:
        # A pytest collector (module) that failed or skipped: classname "" and the dotted path as name.
        result.nodeid = result.file = file or name.replace(".", "/") + ".py"
    if skipped is not None:
        result.outcome = Outcome.XFAILED if skipped.get("type") == "pytest.xfail" else Outcome.SKIPPED
        message = skipped.get("message") or _first_line(skipped.text)
        if message == "collection skipped":
            message = _collection_skip_reason(skipped.text or "")
        result.message = bounded_head(message, MAX_MESSAGE_CHARS)
        result.details = bounded_tail(skipped.text or "", MAX_DETAILS_CHARS)
        return result, False
    problems = failures or errors
    if problems is None:
        return result, False
    result.outcome = Outcome.FAILED if failures else Outcome.ERROR
    _describe(result, problems, outputs, failed=bool(failures))
    teardown_only = (
        not failures and len(errors or ()) == 1 and (errors[0].get("message") or "").startswith(_TEARDOWN_PREFIX)
    )
    return result, teardown_only


def _describe(result: ParsedResult, problems: list[Any], outputs: list[str], *, failed: bool) -> None:
    """message, error_type, phase and details from the first ``<failure>``/``<error>`` (and the rest)."""
    first = problems[0]
    texts = ["".join(p.itertext()) for p in problems]
    message = first.get("message")
    if message is None:
        message = _first_line(texts[0])
    phase, message = unwrap_pytest_error(message)
    if phase:
        result.phase = phase
    elif message == "collection failure":
        result.phase = "collect"
        message = collect_message(texts[0])
    else:
        result.phase = "call" if failed else ""
    details = "\n\n".join(t.strip("\n") for t in texts if t.strip())
    result.message = bounded_head(message, MAX_MESSAGE_CHARS)
    result.error_type = failure_type(first.get("type") or "", message, texts[0])
    if outputs:
        details = bounded_tail(details, MAX_DETAILS_CHARS * 3 // 4) + "\n\n" + "\n\n".join(outputs)
    result.details = bounded_tail(details, MAX_DETAILS_CHARS)


def _collection_skip_reason(text: str) -> str:
    """pytest writes a module-level skip as the repr of ``(path, line, "Skipped: reason")``."""
    try:
        value = ast.literal_eval(text.strip()) if len(text) < 100_000 else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, tuple) and len(value) == 3:
        return str(value[2]).removeprefix("Skipped: ")
    return "collection skipped"


def _suite_file(parent: Any) -> str:
    """mocha-junit-reporter puts the file on the enclosing ``<testsuite>``, not on the test case."""
    return (parent.get("file") or "") if parent is not None else ""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


# -- identity -------------------------------------------------------------------------------------------


def pytest_prefix(classname: str, file: str, suite_name: str) -> str | None:
    """The node id up to the test name (``tests/e2e/test_chat.py::TestAgent``), or None if not pytest.

    pytest's JUnit writer turns ``tests/e2e/test_chat.py::TestAgent::test_x[a-ü]`` into classname
    ``tests.e2e.test_chat.TestAgent`` and name ``test_x[a-ü]``. Reversing it needs the module/class
    split: the ``file`` attribute (xunit1) decides when it agrees with the classname; otherwise the
    trailing components that start with an upper-case letter are classes and the rest is the path.
    A directory with a dot in its name cannot be recovered without ``file``.
    """
    is_pytest = file.endswith(".py") or suite_name == "pytest"
    if not classname:
        return None
    if not is_pytest and not (_PYTEST_CLASSNAME.match(classname) and _PYTEST_MODULE.search(classname)):
        return None
    if file:
        stem = file[:-3] if file.endswith(".py") else file
        dotted = stem.replace("/", ".")
        if classname == dotted or classname.startswith(dotted + "."):
            classes = classname[len(dotted) + 1 :]
            return f"{file}::{classes.replace('.', '::')}" if classes else file
    parts = classname.split(".")
    split = len(parts)
    while split > 1 and parts[split - 1][:1].isupper():
        split -= 1
    path = "/".join(parts[:split]) + ".py"
    return "::".join([path, *parts[split:]])


def duration(value: str | None, limit: float = MAX_TEST_SECONDS) -> float | None:
    """Seconds, or None for missing, negative, NaN, infinite, non-numeric or over ``limit`` (a day)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds < 0 or not math.isfinite(seconds) or seconds > limit:
        return None
    return seconds


def _timestamp(value: str | None) -> float | None:
    """Epoch seconds from an ISO timestamp; a zone-less one (jest-junit, mocha) is taken as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class _Lookback:
    """The last LOOKBACK results, held so a later teardown-only duplicate can be merged into its test.

    Results are released in blocks of LOOKBACK once twice as many are held (a deque popped once per
    result cost more than the rest of a passed test's handling); only the last LOOKBACK pushed can
    take a merge, exactly as if each result were released as soon as LOOKBACK newer ones came.
    """

    def __init__(self) -> None:
        self.held: list[ParsedResult] = []
        self.first = 0  # the push number of held[0]
        self.pushed = 0
        self.latest: dict[str, int] = {}  # node id → push number of its latest result (maybe released)

    def push(self, result: ParsedResult) -> list[ParsedResult] | None:
        held = self.held
        held.append(result)
        self.latest[result.nodeid] = self.pushed
        self.pushed += 1
        if len(held) < 2 * LOOKBACK:
            return None
        released = held[:LOOKBACK]
        del held[:LOOKBACK]
        self.first += LOOKBACK
        if len(self.latest) > 4 * LOOKBACK:
            self.latest = {r.nodeid: self.first + i for i, r in enumerate(held)}
        return released

    def merge(self, teardown: ParsedResult) -> bool:
        """Fold a teardown-only error into the held result of the same test; False if none is held."""
        number = self.latest.get(teardown.nodeid)
        if number is None or number < self.pushed - LOOKBACK:
            return False
        target = self.held[number - self.first]
        if target.duration is not None and teardown.duration is not None:
            target.duration += teardown.duration
        if target.outcome in (Outcome.FAILED, Outcome.ERROR):
            details = f"{target.details}\n\n--- teardown ---\n{teardown.details}"
            target.details = bounded_tail(details, MAX_DETAILS_CHARS)
            return True
        target.outcome = Outcome.ERROR
        target.phase = teardown.phase
        target.message = teardown.message
        target.error_type = teardown.error_type
        target.details = teardown.details
        return True

    def drain(self) -> Iterator[ParsedResult]:
        held, self.held = self.held, []
        self.first += len(held)
        self.latest.clear()
        yield from held
