"""xUnit.net v2 XML (``dotnet test --logger xunit``, ``xunit.console -xml``): ``<assemblies>`` root, one
result per ``<test>``, by ``result`` (docs/INGESTION.md).

``Pass`` is passed, ``Fail`` failed, ``Skip`` and ``NotRun`` skipped; an unknown value is an error.
The ``total``/``passed`` attributes of assemblies and collections are never read. An assembly's
``<errors>`` (a fixture's cleanup that threw) are no tests, as xUnit's own total says: they go to the
run's suite output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .dotnet import describe, make_result, seconds, split_name, timestamp
from .junit_evidence import add_suite_output
from .records import MAX_RUN_SECONDS, Outcome, ParsedResult, RunInfo
from .source import Source
from .xml_stream import child, element_ends, release, text_of

ROOTS = (b"assemblies",)
EXPECTED = "<assemblies>"
OUTCOMES = {"pass": Outcome.PASSED, "fail": Outcome.FAILED, "skip": Outcome.SKIPPED, "notrun": Outcome.SKIPPED}
_TAGS = ("{*}test", "{*}collection", "{*}assembly", "{*}errors")


def parse_xunit2(src: Source, info: RunInfo) -> Iterator[ParsedResult]:
    """Yield one result per ``<test>``; ``info`` gets the assemblies' time and their errors."""
    total = 0.0
    for name, el in element_ends(src, ROOTS, EXPECTED, _TAGS):
        if name == "test":
            yield _result(el)
        elif name == "assembly":
            took = seconds(el.get("time"), MAX_RUN_SECONDS)
            if took is not None:
                total += took
                info.duration = total
            started = timestamp(f"{el.get('run-date')}T{el.get('run-time')}") if el.get("run-date") else None
            if started is not None and (info.started_at is None or started < info.started_at):
                info.started_at = started
        elif name == "errors":
            _errors(el, info)
        release(el)


def _result(el: Any) -> ParsedResult:
    result_text = (el.get("result") or "").strip()
    outcome = OUTCOMES.get(result_text.lower(), Outcome.ERROR)
    classname, name = split_name(el.get("name") or el.get("method") or "test", (el.get("type") or "").strip())
    result = make_result(classname, name, outcome, seconds(el.get("time")))
    traits = child(el, "traits")
    if traits is not None:
        for trait in traits:
            if isinstance(trait.tag, str) and trait.get("name") is not None:
                _add_value(result.properties, trait.get("name"), trait.get("value") or "")
    failure = child(el, "failure")
    message = text_of(failure, "message") if failure is not None else text_of(el, "reason")
    trace = text_of(failure, "stack-trace")
    if outcome is Outcome.PASSED and not message:
        return result
    if outcome is Outcome.ERROR and not message:
        message = f"unknown xUnit.net result {result_text or '(none)'!r}"
    error_type = (failure.get("exception-type") or "") if failure is not None else ""
    describe(result, message, trace, text_of(el, "output"), error_type=error_type)
    return result


def _add_value(found: dict[str, str | list[str]], name: str, value: str) -> None:
    if name not in found:
        found[name] = value
        return
    before = found[name]
    found[name] = [*before, value] if isinstance(before, list) else [before, value]


def _errors(errors: Any, info: RunInfo) -> None:
    """An assembly's ``<errors>`` (it comes before the collections, so it is read at its own end)."""
    assembly = errors.getparent()
    for error in errors:
        if not isinstance(error.tag, str):
            continue
        failure = child(error, "failure")
        text = "\n".join(t for t in (text_of(failure, "message"), text_of(failure, "stack-trace")) if t.strip())
        label = f"{error.get('type') or 'error'} {error.get('name') or ''}".strip()
        add_suite_output(info, label, text, (assembly.get("name") if assembly is not None else "") or "assembly")
