"""Failure text: exception types, bounded text, and the signature key.

The signature key (``signature_key``) groups failures that are one problem across runs, cycles,
sessions and tests: the exception type, the first non-empty line of the message with the volatile
parts masked (``fingerprint``, which was the whole key before migration 0011), and the *site*:
the project's own frames between the failure and the test (``frames.project_frames``), so that
the same assertion text at two places is two signatures and one helper failing under many tests
is one. A failure without a readable traceback (no frame of the project) keeps the message-only
key, so its signature did not change when sites were added. docs/TRIAGE.md has examples.

Masking rule, chosen to be simple and predictable rather than clever: **every digit run is masked**,
after the larger volatile shapes (timestamps, UUIDs, hex, addresses, temporary paths, quoted values,
random tokens) have been masked whole. Consequences, accepted on purpose:

- ``TimeoutError: Timeout after 120s`` and ``... after 30s`` are one signature (the wait differs, the
  problem does not).
- WebSocket close codes and HTTP statuses lose their digits: ``received 1011 (internal error)`` and
  ``received 1006 (abnormal closure)`` stay apart only through their words. Where two codes carry the
  same words the signatures merge; signatures can be merged by hand but never split, yet keeping
  selected numbers would split every retry count, port and size, which is the commoner noise.
- ``KeyError: 'user_42'`` and ``KeyError: 'session'`` are one signature: quoted values are data.

The exception type is never masked, so ``ConnectionClosedError: received 1011 (internal error)`` and
``TimeoutError: Timeout after 120s`` can never collide.
"""

from __future__ import annotations

import hashlib
import re

from .frames import project_frames

MAX_NORMALIZED_CHARS = 500
_ASSERTION_TYPES = ("AssertionError", "AssertionFailedError", "ComparisonFailure", "AssertionException")

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # ISO-8601 timestamps and dates, then bare clock times.
        (r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?", "<time>"),
        (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
        (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<uuid>"),
        # Temporary directories: POSIX, macOS, Windows.
        (r"(?:/private)?/(?:tmp|var/folders|var/tmp)/[^\s'\"),;]*", "<tmp>"),
        (r"[A-Za-z]:\\[^\s'\"]*?\\Temp\\[^\s'\"),;]*", "<tmp>"),
        # IP addresses with an optional port (IPv6 in brackets or bare with at least two colons).
        (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "<ip>"),
        (r"\[[0-9a-fA-F:]*:[0-9a-fA-F:]*\](?::\d+)?", "<ip>"),
        (r"0x[0-9a-fA-F]+", "<hex>"),
        # Long hex runs (hashes, commit ids, object ids): with a digit *and* a letter, so that a long
        # plain number stays a number (<n>) whatever its length.
        (r"(?<![0-9A-Za-z])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}(?![0-9A-Za-z])", "<hex>"),
        # Quoted values; a quote preceded by a letter is an apostrophe ("can't"), not an opening.
        (r"(?<!\w)'[^'\n]*'", "'<q>'"),
        (r'"[^"\n]*"', '"<q>"'),
        # Random tokens: request ids, API keys (long, mixed letters and digits).
        (r"(?<![0-9A-Za-z])(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}(?![0-9A-Za-z])", "<id>"),
        (r"\d+", "<n>"),
        (r"\s+", " "),
    )
)

# For each mask, in order: substrings one of which every match contains (empty: always run).
_NEEDS: tuple[tuple[str, ...], ...] = (
    ("-",),
    (":",),
    ("-",),
    ("/tmp/", "/var/"),
    ("\\Temp\\",),
    (".",),
    ("[",),
    ("0x",),
    (),
    ("'",),
    ('"',),
    (),
    (),
    (),
)


def fingerprint(error_type: str, message: str) -> tuple[str, str]:
    """Return ``(sha1 hex, normalized text)`` for a failure; see the module docstring for the rule.

    A message that repeats its type (``ValueError: bad``, as pytest and node write it) is not
    counted twice: the leading ``ValueError:`` (or ``pkg.ValueError:``) is dropped before masking.
    """
    error_type = error_type.strip()
    line = _first_line(message)
    if error_type:
        short = re.escape(error_type.rsplit(".", 1)[-1])
        line = re.sub(rf"^(?:[\w.]+\.)?{short}(?:\s*\[[^\]]*\])?(?::\s*|$)", "", line)
    for (pattern, replacement), needs in zip(_MASKS, _NEEDS, strict=True):
        # A pattern whose literal part is absent cannot match: skipping it changes nothing, saves time.
        if not needs or any(n in line for n in needs):
            line = pattern.sub(replacement, line)
    line = line.strip()
    if error_type and line:
        normalized = f"{error_type}: {line}"
    else:
        normalized = error_type or line or "<no message>"
    normalized = normalized[:MAX_NORMALIZED_CHARS]
    return hashlib.sha1(normalized.encode("utf-8")).hexdigest(), normalized


def signature_key(error_type: str, message: str, details: str) -> tuple[str, str]:
    """Return ``(sha1 hex, normalized text)``: ``fingerprint`` plus the failure's site, when known.

    The normalized text reads ``AssertionError: assert '<q>' == '<q>' @ e2e/test_chat.py:test_send``
    (frames innermost first, joined by `` < ``); it is what the signature page shows as its key.
    """
    return key_with_site(error_type, message, site_of(error_type, details))


def is_assertion(error_type: str) -> bool:
    """An assertion failure (Python's, node's ``AssertionError [ERR_ASSERTION]``, JUnit's), not an error."""
    return error_type.rsplit(".", 1)[-1].endswith(_ASSERTION_TYPES)


def site_of(error_type: str, details: str) -> tuple[str, ...]:
    """The failure's site (``frames.project_frames``): a test's own line counts for assertions only."""
    return project_frames(details, is_assertion(error_type))


def key_with_site(error_type: str, message: str, site: tuple[str, ...]) -> tuple[str, str]:
    """``signature_key`` once the site is known (ingestion memoises keys by type, message and site)."""
    digest, normalized = fingerprint(error_type, message)
    if not site:
        return digest, normalized
    keyed = f"{normalized} @ {' < '.join(site)}"[: MAX_NORMALIZED_CHARS + 300]
    return hashlib.sha1(keyed.encode("utf-8")).hexdigest(), keyed


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


# -- exception types from failure text ---------------------------------------------------------------

_NAME = r"[A-Za-z_][\w.]*"
# "ValueError: bad", "ValueError(bad)", "AssertionError [ERR_ASSERTION]: x", "Error"
_LEADING_TYPE = re.compile(rf"^\s*(?:E\s+)?({_NAME})(?:\s*\[[^\]\n]*\])?(?::\s|:$|\(|$)")
# pytest's last traceback line: "tests/test_x.py:33: AssertionError"
_FILELOC_TYPE = re.compile(rf"^\S[^\n]*:\d+: ({_NAME})\s*$", re.M)
# node's ERR_TEST_FAILURE wrapper: "cause: AssertionError [ERR_ASSERTION]: ..."
_NODE_CAUSE = re.compile(rf"^\s*cause: ({_NAME})", re.M)
_PYTEST_E_LINE = re.compile(rf"^E\s+({_NAME})(?::\s|:$|\()", re.M)
_WRAPPED = re.compile(r'^failed on (setup|teardown) with "(.*)"\s*$', re.S)


def looks_like_type(name: str) -> bool:
    """A class-like name (``ValueError``, ``requests.ConnectionError``), not a word like ``assert``."""
    last = name.rsplit(".", 1)[-1]
    return bool(last) and last[0].isupper()


def leading_type(message: str) -> str:
    """The type a message starts with: ``ValueError: x`` → ``ValueError``; ``assert 1 == 2`` → ``""``."""
    match = _LEADING_TYPE.match(message)
    if match and looks_like_type(match.group(1)):
        return match.group(1)
    return ""


def error_type_from(message: str, details: str) -> str:
    """Best guess of the exception type from a failure's message and traceback text.

    Order matters: the message names the *final* exception; in a traceback the first ``E   X:`` line
    may belong to an earlier link of a chained exception, and node wraps every failure in a generic
    ``Error [ERR_TEST_FAILURE]`` whose ``cause:`` is the real one.
    """
    found = leading_type(message)
    if found in ("", "Error") and details:
        cause = _NODE_CAUSE.search(details)
        if cause:
            return cause.group(1)
    if found or not details:
        return found
    locations = _FILELOC_TYPE.findall(details)
    if locations and looks_like_type(locations[-1]):
        return locations[-1]
    e_line = _PYTEST_E_LINE.search(details)
    if e_line and looks_like_type(e_line.group(1)):
        return e_line.group(1)
    return leading_type(details)


def unwrap_pytest_error(message: str) -> tuple[str, str]:
    """``failed on setup with "ConnectionError: boom"`` → ``("setup", "ConnectionError: boom")``.

    pytest's JUnit writer wraps every setup/teardown error this way; left wrapped, all setup errors
    would share one signature. Returns ``("", message)`` for anything else.
    """
    match = _WRAPPED.match(message)
    if match:
        return match.group(1), match.group(2)
    return "", message


# -- bounded text ------------------------------------------------------------------------------------


def bounded_head(text: str, limit: int) -> str:
    """The start of ``text``, at most ``limit`` characters (messages: their start says what happened)."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def bounded_tail(text: str, limit: int) -> str:
    """At most ``limit`` characters, keeping the first quarter and the end.

    Tracebacks end with the exception that matters, and a 5 MB captured log ends with the lines just
    before the failure, so the tail is worth more than the middle.
    """
    if len(text) <= limit:
        return text
    marker = f"\n… [{len(text) - limit:,} characters cut] …\n"
    keep = limit - len(marker)
    head = keep // 4
    return text[:head] + marker + text[len(text) - (keep - head) :]


# -- failure summaries shared by the JUnit and report-log parsers ------------------------------------

_E_LINE = re.compile(r"^E\s+(.*\S)\s*$", re.M)


def collect_message(text: str) -> str:
    """The line that says why collection failed, from pytest's collection-error text.

    pytest's JUnit message for every collection error is the useless ``collection failure``; the real
    reason is the last ``E   Name: ...`` line (an ImportError or SyntaxError). Report-log carries the
    same text, so both formats get the same message and therefore the same signature.
    """
    lines = _E_LINE.findall(text)
    for line in reversed(lines):
        if leading_type(line):
            return line
    if lines:
        return lines[-1]
    return _first_line(text)


def failure_type(type_attr: str, message: str, details: str) -> str:
    """The exception type of a failure: an explicit type attribute when it names a class, else guessed.

    node writes ``type="testCodeFailure"`` (a failure category, not a class), so a lower-case type
    attribute is ignored in favour of the text. pytest's strict XPASS has no exception at all.
    """
    if type_attr and looks_like_type(type_attr):
        return type_attr
    if message.startswith("[XPASS(strict)]"):
        return "XPASS(strict)"
    return error_type_from(message, details)
