"""Pieces the three .NET formats (TRX, NUnit 3, xUnit.net v2) share: failure text, identity, times."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from .fingerprint import bounded_head, bounded_tail, failure_type
from .records import MAX_DETAILS_CHARS, MAX_MESSAGE_CHARS, MAX_TEST_SECONDS, Outcome, ParsedResult

_OUTPUT_CHARS = MAX_DETAILS_CHARS // 4
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def split_name(full: str, classname: str = "") -> tuple[str, str]:
    """(class, test name) from a .NET test name: ``Ns.Class.Method(1, "a.b")`` → ``Ns.Class``, ``Method(1, "a.b")``.

    With ``classname`` known, a name that starts with it loses that prefix; else the last dot before
    any parameter list splits the two. A name without a dot is its own identity.
    """
    full = full.strip()
    if classname:
        if full.startswith(classname + "."):
            return classname, full[len(classname) + 1 :]
        return classname, full
    base = full.split("(", 1)[0]
    dot = base.rfind(".")
    if dot <= 0:
        return "", full
    return full[:dot], full[dot + 1 :]


def make_result(classname: str, name: str, outcome: Outcome, took: float | None) -> ParsedResult:
    nodeid = f"{classname}::{name}" if classname else name
    return ParsedResult(nodeid, name, "", outcome, took)


def seconds(value: str | None, limit: float = MAX_TEST_SECONDS) -> float | None:
    """Seconds from ``"0.0123"`` or a TimeSpan ``"00:00:00.0011482"``/``"1.02:03:04"``; None when unknown.

    Negative, NaN, infinite and over-``limit`` values (a day for one test) are unknown, as in JUnit.
    """
    if not value:
        return None
    value = value.strip()
    match = _TIMESPAN.match(value)
    try:
        if match:
            days, hours, minutes, secs = match.groups()
            took = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(secs)
        else:
            took = float(value)
    except ValueError:
        return None
    if not math.isfinite(took) or took < 0 or took > limit:
        return None
    return took


def timestamp(value: str | None) -> float | None:
    """Epoch seconds from an ISO time (7 fraction digits, ``Z`` or a space allowed); zone-less is UTC."""
    if not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip().replace(" ", "T", 1).replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def describe(result: ParsedResult, message: str, trace: str, output: str, *, error_type: str = "") -> None:
    """Message, exception type and details (stack trace, then the test's output) of a result."""
    message = message.strip()
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    if not first:
        first = next((line.strip() for line in trace.splitlines() if line.strip()), "")
    details = "\n\n".join(part for part in (message, trace.strip("\n")) if part)
    if output.strip():
        details = bounded_tail(details, MAX_DETAILS_CHARS * 3 // 4) + "\n\n--- output ---\n"
        details += bounded_tail(output.strip("\n"), _OUTPUT_CHARS)
    result.message = bounded_head(first, MAX_MESSAGE_CHARS)
    result.details = bounded_tail(details, MAX_DETAILS_CHARS)
    if result.outcome in (Outcome.FAILED, Outcome.ERROR):
        result.phase = "call"
        result.error_type = failure_type(error_type, first, details)
