"""What a JUnit file says beside a test's outcome, kept rather than thrown away (docs/INGESTION.md).

- Surefire's reruns: ``<flakyFailure>``/``<flakyError>`` (a try that failed before the test passed) and
  ``<rerunFailure>``/``<rerunError>`` (tries of a test that failed every time). Each becomes an attempt
  on the result; the outcome still comes from ``<failure>``/``<error>``/``<skipped>``.
- A ``status`` attribute saying the test did not run (tst's ``disabled``, others' ``skipped``,
  ``notrun``, ``not run``, any case) makes it skipped whatever else it holds.
- Repeated ``<property>`` names keep every value (a list), where a dict would keep only the last.
- Suite-level ``<system-out>``/``<system-err>``: Bazel writes a failing target's whole log there.
- Test cases without a name get one from their suite and position, so that four bare ``<testcase/>``
  elements stay four tests instead of landing on one empty identity.
"""

from __future__ import annotations

from typing import Any

from .fingerprint import bounded_head, bounded_tail
from .records import MAX_DETAILS_CHARS, MAX_MESSAGE_CHARS, MAX_SUITE_OUTPUT_CHARS, RunInfo

RERUN_TAGS = frozenset(("flakyFailure", "flakyError", "rerunFailure", "rerunError"))
NOT_RUN = frozenset(("disabled", "skipped", "notrun", "not run", "not_run"))
_ATTEMPT_DETAILS = MAX_DETAILS_CHARS // 8
MAX_ATTEMPTS = 20  # a test rerun more often keeps its first tries' evidence; the count stays exact


def did_not_run(status: str | None) -> bool:
    """True for a ``status`` attribute that says the test was not run (disabled, skipped, notrun...)."""
    return bool(status) and status.strip().lower() in NOT_RUN


def attempt(child: Any, tag: str) -> dict[str, str]:
    """One failed try from a Surefire rerun element: its message, exception type and stack trace."""
    trace = ""
    outputs = []
    for part in child:
        name = part.tag if isinstance(part.tag, str) else ""
        name = name.rpartition("}")[2]
        if name == "stackTrace":
            trace = part.text or ""
        elif name in ("system-out", "system-err") and (part.text or "").strip():
            outputs.append(f"--- {name} ---\n{part.text.strip()}")
    text = "\n\n".join(t for t in (trace.strip("\n") or (child.text or "").strip("\n"), *outputs) if t)
    message = child.get("message")
    if message is None or not message.strip():
        message = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return {
        "outcome": "error" if tag.endswith("Error") else "failed",
        "message": bounded_head(message.strip(), MAX_MESSAGE_CHARS),
        "type": (child.get("type") or "")[:200],
        "details": bounded_tail(text, _ATTEMPT_DETAILS),
    }


def properties(el: Any) -> dict[str, str | list[str]]:
    """``<property name value>`` children; a name written twice or more keeps all its values, in order."""
    found: dict[str, str | list[str]] = {}
    for prop in el:
        tag = prop.tag
        if not isinstance(tag, str) or tag.rpartition("}")[2] != "property":
            continue
        name = prop.get("name")
        if name is None:
            continue
        value = prop.get("value")
        if value is None:
            value = prop.text or ""
        if name not in found:
            found[name] = value
        else:
            before = found[name]
            found[name] = [*before, value] if isinstance(before, list) else [before, value]
    return found


def merge_properties(into: dict[str, str | list[str]], more: dict[str, str | list[str]]) -> None:
    """Suite-level properties of several suites: a name seen again with another value keeps both."""
    for name, value in more.items():
        if name not in into or into[name] == value:
            into[name] = value
            continue
        before = into[name]
        values = before if isinstance(before, list) else [before]
        added = value if isinstance(value, list) else [value]
        into[name] = [*values, *(v for v in added if v not in values)]


def add_suite_output(info: RunInfo, tag: str, text: str | None, suite: str) -> None:
    """Keep a suite's ``<system-out>``/``<system-err>`` for the run page, bounded for the whole file."""
    if not text or not text.strip():
        return
    room = MAX_SUITE_OUTPUT_CHARS - len(info.suite_output)
    if room <= 200:
        return
    header = f"--- {suite or 'testsuite'}: {tag} ---\n"
    body = bounded_tail(text.strip("\n"), room - len(header) - 2)
    info.suite_output += ("\n\n" if info.suite_output else "") + header + body


class NamelessCases:
    """Identities for test cases without a name: ``<suite>::testcase <n>``, n counting within the suite.

    An unnamed suite is ``testsuite <k>`` (k counting unnamed suites in the file). Counters are kept
    per open suite element and dropped when it ends, so memory does not grow with the file.
    """

    def __init__(self) -> None:
        # Keyed by id(); the value holds the element too, so that lxml keeps the same proxy object alive
        # (and the same id) until the suite ends.
        self._cases: dict[int, tuple[Any, int]] = {}
        self._suites: dict[int, tuple[Any, str]] = {}
        self._unnamed_suites = 0

    def identity(self, classname: str, parent: Any) -> tuple[str, str]:
        """(classname, name) for a nameless test case under ``parent``."""
        key = id(parent)
        number = self._cases.get(key, (None, 0))[1] + 1
        self._cases[key] = (parent, number)
        if not classname:
            classname = self.suite_label(parent)
        return classname, f"testcase {number}"

    def suite_label(self, parent: Any) -> str:
        name = (parent.get("name") or "").strip() if parent is not None else ""
        if name:
            return name
        key = id(parent)
        known = self._suites.get(key)
        if known is not None:
            return known[1]
        self._unnamed_suites += 1
        label = f"testsuite {self._unnamed_suites}"
        self._suites[key] = (parent, label)
        return label

    def suite_ended(self, el: Any) -> None:
        self._cases.pop(id(el), None)
        self._suites.pop(id(el), None)
