"""Visual Studio TRX (``dotnet test --logger trx``, vstest, MSTest): one result per ``<UnitTestResult>``.

Counting (docs/INGESTION.md): by ``outcome``: Passed, PassedButRunAborted, Completed and Warning are
passed; Failed is failed; Error, Timeout, Aborted, Disconnected and InProgress are errors;
NotExecuted, NotRunnable, Inconclusive and Pending are skipped. A data-driven result that holds
``<InnerResults>`` is counted through its inner results (each a ``<UnitTestResult>`` of its own).
The ``<Counters>`` summary is never read, as JUnit's count attributes are not.

Trap: the NUnit and MSTest adapters write only the method name in ``testName`` (``FailTest``); the
class is in ``<TestDefinitions>``, which ``dotnet test`` writes *after* ``<Results>``. When the upload
can be read twice (a file, an upload: always in practice) a first pass reads the definitions (test id
→ class, a small map) and the second pass yields the results; otherwise the class is taken from the
test name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .dotnet import describe, make_result, seconds, split_name, timestamp
from .junit_evidence import add_suite_output
from .records import INTERRUPTED_MESSAGE, MAX_RUN_SECONDS, IngestError, Outcome, ParsedResult, RunInfo
from .source import Source
from .xml_stream import child, element_ends, release, text_of

ROOTS = (b"TestRun",)
EXPECTED = "<TestRun>"
OUTCOMES = {
    "passed": Outcome.PASSED,
    "passedbutrunaborted": Outcome.PASSED,
    "completed": Outcome.PASSED,
    "warning": Outcome.PASSED,
    "failed": Outcome.FAILED,
    "error": Outcome.ERROR,
    "timeout": Outcome.ERROR,
    "aborted": Outcome.ERROR,
    "disconnected": Outcome.ERROR,
    "inprogress": Outcome.ERROR,
    "notexecuted": Outcome.SKIPPED,
    "notrunnable": Outcome.SKIPPED,
    "inconclusive": Outcome.SKIPPED,
    "pending": Outcome.SKIPPED,
}
_TAGS = ("{*}UnitTestResult", "{*}UnitTest", "{*}Times", "{*}ResultSummary")


def parse_trx(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """Yield one result per leaf ``<UnitTestResult>``; ``info`` gets the run's times and its messages."""
    classes: dict[str, str] = {}
    if src.rewindable:
        for name, el in element_ends(src, ROOTS, EXPECTED, _TAGS):
            if name == "UnitTest":
                method = child(el, "TestMethod")
                if method is not None and method.get("className"):
                    classes[el.get("id") or ""] = _class_name(method.get("className"))
            release(el)
        again = src.reopen()
        if again is None:
            raise IngestError(src.source, "a TRX file must be readable twice (its test classes come last)")
        src = again
    for name, el in element_ends(src, ROOTS, EXPECTED, _TAGS):
        if name == "UnitTestResult":
            inner = child(el, "InnerResults")
            if inner is None or len(inner) == 0:
                yield _result(el, classes)
        elif name == "Times":
            info.started_at = timestamp(el.get("start"))
            finish = timestamp(el.get("finish"))
            if info.started_at is not None and finish is not None:
                took = finish - info.started_at
                info.duration = took if 0 <= took <= MAX_RUN_SECONDS else None
        elif name == "ResultSummary":
            _summary(el, info)
        release(el)


def _class_name(value: str) -> str:
    """``Ns.Class, Assembly, Version=...`` (older MSTest) → ``Ns.Class``."""
    return value.split(",", 1)[0].strip()


def _result(el: Any, classes: dict[str, str]) -> ParsedResult:
    outcome_text = (el.get("outcome") or "").strip()
    outcome = OUTCOMES.get(outcome_text.lower(), Outcome.ERROR)
    classname, name = split_name(el.get("testName") or "", classes.get(el.get("testId") or "", ""))
    if not name:
        name = el.get("testId") or el.get("executionId") or "UnitTestResult"
    result = make_result(classname, name, outcome, seconds(el.get("duration")))
    output = child(el, "Output")
    message = text_of(output, "ErrorInfo", "Message")
    trace = text_of(output, "ErrorInfo", "StackTrace")
    logs = "\n".join(t for t in (text_of(output, "StdOut"), text_of(output, "StdErr")) if t.strip())
    if outcome is Outcome.PASSED and not message:
        return result
    if outcome_text.lower() == "inprogress" and not message:
        message = INTERRUPTED_MESSAGE
    elif outcome_text.lower() not in OUTCOMES and not message:
        message = f"unknown TRX outcome {outcome_text or '(none)'!r}"
    elif outcome is Outcome.ERROR and not message:
        message = f"the test ended with outcome {outcome_text}"  # Timeout, Aborted: TRX says no more
    describe(result, message, trace, logs)
    return result


def _summary(el: Any, info: RunInfo) -> None:
    """Run-level messages (a crashed test host, a data collector's error) for the run page."""
    output = child(el, "Output")
    add_suite_output(info, "StdOut", text_of(output, "StdOut"), "run")
    add_suite_output(info, "StdErr", text_of(output, "StdErr"), "run")
    infos = child(el, "RunInfos")
    for run_info in infos if infos is not None else ():
        if isinstance(run_info.tag, str):
            level = run_info.get("outcome") or "info"
            add_suite_output(info, f"RunInfo {level}", text_of(run_info, "Text"), run_info.get("computerName") or "run")
