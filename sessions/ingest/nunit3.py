"""NUnit 3 results (``nunit3-console``, ``dotnet test --logger nunit``): ``<test-run>`` root, one result
per ``<test-case>`` at any depth, by ``result`` and ``label`` (docs/INGESTION.md).

``Passed`` and ``Warning`` are passed; ``Failed`` is failed, or an error when its label is ``Error``,
``Cancelled`` or ``Invalid`` (the console's "Errors" and "Invalid"); ``Skipped`` (Ignored, Explicit)
and ``Inconclusive`` are skipped. The ``total``/``passed``/``failed`` attributes are never read. A
suite's own failure (a ``OneTimeTearDown`` that threw: ``site="TearDown"``) is no test: it goes to
the run's suite output, beside the run's ``<command-line>``-free messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .dotnet import describe, make_result, seconds, split_name, timestamp
from .junit_evidence import add_suite_output, properties
from .records import MAX_RUN_SECONDS, Outcome, ParsedResult, RunInfo
from .source import Source
from .xml_stream import child, element_ends, release, text_of

ROOTS = (b"test-run",)
EXPECTED = "<test-run>"
_ERROR_LABELS = frozenset(("error", "cancelled", "invalid"))
_TAGS = ("{*}test-case", "{*}test-suite", "{*}test-run", "{*}failure")


def parse_nunit3(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """Yield one result per ``<test-case>``; ``info`` gets the run's start, duration and suite failures."""
    for name, el in element_ends(src, ROOTS, EXPECTED, _TAGS):
        if name == "test-case":
            yield _result(el)
        elif name == "failure":
            _suite_failure(el, info)
            continue  # read again with its test case, or freed with its suite
        elif name == "test-suite":
            pass
        else:
            info.started_at = timestamp(el.get("start-time"))
            info.duration = seconds(el.get("duration"), MAX_RUN_SECONDS)
        release(el)


def outcome_of(result: str, label: str) -> Outcome:
    result, label = result.strip().lower(), label.strip().lower()
    if result in ("passed", "warning"):
        return Outcome.PASSED
    if result == "failed":
        return Outcome.ERROR if label in _ERROR_LABELS else Outcome.FAILED
    if result in ("skipped", "inconclusive"):
        return Outcome.SKIPPED
    return Outcome.ERROR


def _result(el: Any) -> ParsedResult:
    outcome = outcome_of(el.get("result") or "", el.get("label") or "")
    classname = (el.get("classname") or "").strip()
    name = (el.get("name") or "").strip()
    if not name:
        classname, name = split_name(el.get("fullname") or el.get("id") or "test-case")
    elif not classname:
        classname = split_name(el.get("fullname") or "")[0]
    result = make_result(classname, name, outcome, seconds(el.get("duration")))
    props = child(el, "properties")
    if props is not None:
        result.properties = properties(props)
    problem = child(el, "failure")
    if problem is None:
        problem = child(el, "reason")
    message = text_of(problem, "message")
    trace = text_of(problem, "stack-trace")
    output = text_of(el, "output")
    if outcome is Outcome.PASSED and not message:
        return result
    if not message and outcome is not Outcome.SKIPPED:
        message = f"{el.get('result')}{': ' + el.get('label') if el.get('label') else ''}"
    describe(result, message, trace, output)
    return result


def _suite_failure(failure: Any, info: RunInfo) -> None:
    """A suite's own failure (its SetUp or TearDown threw), read at the failure's end: a child suite,
    released before its parent ends, takes the earlier siblings (this failure) with it."""
    suite = failure.getparent()
    if suite is None or not suite.tag.endswith("test-suite") or suite.get("site") not in ("SetUp", "TearDown"):
        return
    text = "\n".join(t for t in (text_of(failure, "message"), text_of(failure, "stack-trace")) if t.strip())
    add_suite_output(info, f"{suite.get('site')} failure", text, suite.get("fullname") or suite.get("name") or "")
