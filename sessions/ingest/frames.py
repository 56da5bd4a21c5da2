"""Where a failure happened: the project's own frames, read from the traceback text runners give.

A signature's key (``fingerprint.signature_key``) is the exception type, the masked message and the
*site*: the project frames between the failure and the test. This module finds that site in the
text that the parsers store as a result's ``details`` (JUnit ``<failure>`` text, report-log
``longrepr`` rendered by ``reportlog.longrepr_text``), in the shapes that occur:

- pytest ``--tb=long``/``auto``: an entry's source (``def helper(...)``, the ``>`` line, ``E`` lines)
  then its location ``path:LINE: `` (or ``path:LINE: ExcType`` for the last entry);
- pytest ``--tb=short`` (and the middle entries of ``auto``): ``path:LINE: in func``;
- pytest ``--tb=line``: one ``path:LINE: message`` line (the file is known, the function is not);
- Python's own traceback (``--tb=native``, unittest): ``File "path", line N, in func``;
- JavaScript stacks (node, jest, mocha): ``at func (path:LINE:COL)``, innermost first.

Only the last traceback of a chained exception counts (the final exception is the one reported),
and captured output sections (``--- Captured stdout call ---``...) are ignored: a log line that
looks like a frame is not where the test failed.

Frames that are not the project's are skipped: the test framework (``_pytest``, ``pluggy``,
``unittest``), installed packages (``site-packages``, ``dist-packages``, ``node_modules``) and the
standard library (``lib/pythonX.Y``, ``<frozen ...>``, ``node:internal``). From the innermost
project frame outwards the site keeps frames until it reaches a frame of a test (a function named
``test...`` or any function in a test file: ``test_*.py``, ``*_test.py``, ``*.test.js``,
``*.spec.ts``...), which it keeps only when it is the innermost *and* the failure is an assertion,
and at most ``MAX_FRAMES``. So:

- an ``assert`` in a test body: the site is that test (another test's assert is another site);
- a helper that raises under 50 tests: the site is the helper (and its callers below the tests),
  the same under all 50;
- an exception from a library: the site is the project code that called the library;
- an exception other than an assertion seen only at a test's line (its helper hidden from the
  traceback, or inside a package): no site, the message-only key, one signature under every test.

A frame is ``dir/file.py:function`` with the last two path parts (checkouts move between runs: a
worker checks every run out in a fresh folder) and no line number (lines move with every edit).
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_FRAMES = 3
# Tracebacks put the innermost frame last; the site is read from the last part of the text.
_SCAN_CHARS = 16_000

_FRAME_LINE = re.compile(
    r"""^(?:
        \s*File\ "(?P<npath>[^"\n]+)",\ line\ \d+,\ in\ (?P<nfunc>[^\s]+)          # Python native
      | (?P<fpath>(?:[A-Za-z]:)?[^\s:"'<>()]+\.\w+):\d+:(?:\ (?P<fmsg>[^\n]*))?   # pytest location
      | [ \t>]*(?:async\s+)?def\s+(?P<def>\w+)\s*\([^\n]*                               # pytest source
      | \s+at\ (?:(?:async\ )?(?P<jfunc>[^\s(]+)\ \()?(?P<jpath>[^\s()]+?):\d+:\d+\)?\s*  # JS stack
    )$""",
    re.M | re.X,
)
_CHAIN_BREAKS = (
    "\nDuring handling of the above exception, another exception occurred:",
    "\nThe above exception was the direct cause of the following exception:",
)
_SECTION = re.compile(r"^-{2,} (?:Captured|teardown) [^\n]*-{2,}\s*$|^-{3} [\w ]+ -{3}$", re.M)
_NOT_PROJECT = re.compile(
    r"(?:^|[/\\])(?:site-packages|dist-packages|node_modules|_pytest|pluggy|unittest|\.venv|\.pyenv)[/\\]"
    r"|(?:^|[/\\])lib(?:64)?[/\\]python\d|(?:^|[/\\])python\d\.\d+[/\\]"
    r"|^<frozen |^<string>|^node:|^internal[/\\]"
)
_TEST_FILE = re.compile(r"(?:^|[/\\])(?:test_[^/\\]*|[^/\\]*_test\.\w+|[^/\\]*\.(?:test|spec)\.\w+|conftest\.py)$")
_SEPARATORS = re.compile(r"[/\\]")
_LOCATION_TYPE = re.compile(r"^[A-Za-z_][\w.]*$")


def project_frames(details: str, assertion: bool = True) -> tuple[str, ...]:
    """The failure's site, innermost frame first: ``("tests/helpers.py:login",)``; ``()`` when unknown.

    ``assertion``: the failure is an assertion (``AssertionError``...), so a test's own frame is where
    it happened. Any other exception was raised by code the test called: test frames are then never
    part of the site, so a client error that pytest shows only at the test line (the helper hidden
    with ``__tracebackhide__``, or inside an installed package) is one signature under every test.
    """
    if not details:
        return ()
    text = _last_traceback(details)
    frames = _frames(text)  # innermost first
    site: list[str] = []
    for path, func in frames:
        short, in_project, test_file = _path_info(path)
        if not in_project:
            continue
        if test_file or func.startswith("test"):
            if assertion and not site:
                site.append(f"{short}:{func}" if func else short)
            break
        site.append(f"{short}:{func}" if func else short)
        if len(site) >= MAX_FRAMES:
            break
    return tuple(site)


def _last_traceback(details: str) -> str:
    """The traceback of the final exception, without captured output or teardown sections."""
    section = _SECTION.search(details) if "\n--" in details else None
    text = details[: section.start()] if section else details
    for marker in _CHAIN_BREAKS:
        at = text.rfind(marker)
        if at >= 0:
            text = text[at + len(marker) :]
    return text[-_SCAN_CHARS:]


def _frames(text: str) -> list[tuple[str, str]]:
    """(path, function) pairs, innermost first, from whichever traceback shape the text holds."""
    python: list[tuple[str, str]] = []
    js: list[tuple[str, str]] = []
    pending_def = ""
    for match in _FRAME_LINE.finditer(text):
        kind = match.lastgroup
        if kind == "def":
            pending_def = pending_def or match.group("def")
        elif kind == "nfunc":
            python.append((match.group("npath"), match.group("nfunc")))
            pending_def = ""
        elif match.group("fpath") is not None:
            message = (match.group("fmsg") or "").strip()
            if message.startswith("in "):
                func = message[3:].strip()
            elif not message or _LOCATION_TYPE.match(message) or pending_def:
                func = pending_def
            else:
                func = ""  # --tb=line: "path:LINE: message", the function is not given
            python.append((match.group("fpath"), func))
            pending_def = ""
        elif match.group("jpath") is not None:
            js.append((match.group("jpath"), _js_function(match.group("jfunc") or "")))
    if python:
        python.reverse()
        return python
    return js


def _js_function(name: str) -> str:
    """``Context.<anonymous>`` → ``<anonymous>``; ``Object.login`` → ``login``."""
    return name.rsplit(".", 1)[-1] if name else "<anonymous>"


@lru_cache(maxsize=4096)
def _path_info(path: str) -> tuple[str, bool, bool]:
    """(last two parts, is the project's, is a test file): paths repeat, so this is cached."""
    parts = [p for p in _SEPARATORS.split(path.removeprefix("file://")) if p and p != "."]
    return "/".join(parts[-2:]), not _NOT_PROJECT.search(path), bool(_TEST_FILE.search(path))
