"""Failure signatures: what must group together, what must stay apart, and the text helpers behind them."""

from __future__ import annotations

import re

import pytest

from sessions.ingest.fingerprint import (
    MAX_NORMALIZED_CHARS,
    bounded_head,
    bounded_tail,
    collect_message,
    error_type_from,
    failure_type,
    fingerprint,
    leading_type,
    unwrap_pytest_error,
)


def normalized(error_type: str, message: str) -> str:
    return fingerprint(error_type, message)[1]


def test_shape() -> None:
    digest, text = fingerprint("ValueError", "bad value")
    assert re.fullmatch(r"[0-9a-f]{40}", digest)
    assert text == "ValueError: bad value"
    assert fingerprint("ValueError", "bad value") == (digest, text)


def test_close_codes_and_timeouts_are_different_signatures() -> None:
    closed = fingerprint("ConnectionClosedError", "received 1011 (internal error); then sent 1011 (internal error)")
    timeout = fingerprint("TimeoutError", "Timeout after 120s")
    assert closed[0] != timeout[0]
    assert closed[1] == "ConnectionClosedError: received <n> (internal error); then sent <n> (internal error)"
    assert timeout[1] == "TimeoutError: Timeout after <n>s"


@pytest.mark.parametrize(
    ("error_type", "first", "second"),
    [
        ("TimeoutError", "Timeout after 120s", "Timeout after 30s"),
        ("AssertionError", "assert 3 == 4", "assert 17 == 4"),
        ("AssertionError", "expected 9999999 rows", "expected 10000000 rows"),
        ("ValueError", "object at 0x7f3a2b1c0d90 is closed", "object at 0x7f00deadbeef is closed"),
        ("KeyError", "'user_42'", "'session'"),
        ("RuntimeError", 'config "staging" missing', 'config "prod-eu" missing'),
        (
            "LookupError",
            "run 550e8400-e29b-41d4-a716-446655440000 gone",
            "run 6ba7b810-9dad-11d1-80b4-00c04fd430c8 gone",
        ),
        ("AssertionError", "started 2026-01-02T03:04:05.123Z late", "started 2025-12-31 23:59:59 late"),
        ("AssertionError", "at 12:34:56 the job stopped", "at 01:02:03.5 the job stopped"),
        ("FileNotFoundError", "/tmp/pytest-of-ci/pytest-3/test_x0/out.json", "/tmp/tmpab12cd/out.json"),
        ("FileNotFoundError", "/var/folders/xy/abc123/T/out.json", "/private/var/folders/zz/q/T/other"),
        ("FileNotFoundError", r"C:\Users\ci\AppData\Local\Temp\pytest-1\x.txt", r"D:\a\Temp\y.txt"),
        ("ConnectionRefusedError", "connect to 10.0.0.12:5432 failed", "connect to 127.0.0.1:6379 failed"),
        ("ConnectionRefusedError", "connect to [::1]:8000 failed", "connect to [fe80::1]:80 failed"),
        ("HTTPError", "request req_8fJ2kLm9Qz7pW4vB3x failed", "request req_Zq81LmN0pQ7rT5sY2w failed"),
        ("CommitError", "commit 3f2a9c1e44 not found", "commit 0badc0de12 not found"),
        ("ValueError", "ValueError: bad  \t spacing", "bad spacing"),  # type prefix and whitespace
        ("pkg.errors.AppError", "pkg.errors.AppError: broke", "AppError: broke"),
    ],
)
def test_volatile_parts_are_masked(error_type: str, first: str, second: str) -> None:
    assert fingerprint(error_type, first) == fingerprint(error_type, second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("TimeoutError", "Timeout after 1s"), ("ConnectionError", "Timeout after 1s")),
        (
            ("ConnectionClosedError", "received 1011 (internal error)"),
            ("ConnectionClosedError", "received 1006 (abnormal closure)"),
        ),
        (("AssertionError", "expected login page"), ("AssertionError", "expected dashboard")),
        (("", "no type at all"), ("", "no type either")),
    ],
)
def test_words_and_types_keep_signatures_apart(first: tuple[str, str], second: tuple[str, str]) -> None:
    assert fingerprint(*first)[0] != fingerprint(*second)[0]


def test_first_non_empty_line_only() -> None:
    assert normalized("AssertionError", "\n\n  numbers differ\nassert 1 == 2") == "AssertionError: numbers differ"


def test_apostrophes_are_not_quotes() -> None:
    assert normalized("OSError", "can't open 'x.txt' (don't retry)") == "OSError: can't open '<q>' (don't retry)"


def test_empty_parts() -> None:
    assert normalized("AssertionError", "") == "AssertionError"
    assert normalized("AssertionError", "AssertionError") == "AssertionError"
    assert normalized("", "") == "<no message>"
    assert normalized("", "plain words") == "plain words"


def test_length_is_capped() -> None:
    assert len(normalized("ValueError", "word " * 10_000)) == MAX_NORMALIZED_CHARS


# -- exception types and messages from text ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("ValueError: bad", "ValueError"),
        ("requests.exceptions.ConnectionError: refused", "requests.exceptions.ConnectionError"),
        ("AssertionError [ERR_ASSERTION]: x", "AssertionError"),
        ("HTTPError(500)", "HTTPError"),
        ("AssertionError", "AssertionError"),
        ("E   KeyError: 'k'", "KeyError"),
        ("assert 1 == 2", ""),
        ("Timeout after 120s", ""),
        ("", ""),
    ],
)
def test_leading_type(message: str, expected: str) -> None:
    assert leading_type(message) == expected


def test_error_type_from_traceback() -> None:
    pytest_text = ">       assert 1 == 2\nE       assert 1 == 2\n\ntests/test_a.py:3: AssertionError"
    assert error_type_from("assert 1 == 2", pytest_text) == "AssertionError"
    chained = "E   KeyError: 'k'\n\ntests/a.py:2: KeyError\n\nDuring handling...\n\ntests/a.py:5: RuntimeError"
    assert error_type_from("", chained) == "RuntimeError"
    node = "[Error [ERR_TEST_FAILURE]: nope] {\n  cause: RangeError [Error]: discount out of range\n"
    assert error_type_from("Error [ERR_TEST_FAILURE]: nope", node) == "RangeError"
    assert error_type_from("discount out of range", node) == "RangeError"
    assert error_type_from("", "E       ZeroDivisionError: division by zero") == "ZeroDivisionError"
    assert error_type_from("it broke", "no clue here") == ""


def test_failure_type() -> None:
    assert failure_type("AssertionError", "x", "") == "AssertionError"
    assert failure_type("testCodeFailure", "x", "  cause: TypeError: y") == "TypeError"
    assert failure_type("", "[XPASS(strict)] should fail", "[XPASS(strict)] should fail") == "XPASS(strict)"


def test_unwrap_pytest_error() -> None:
    assert unwrap_pytest_error('failed on setup with "ConnectionError: boom"') == ("setup", "ConnectionError: boom")
    assert unwrap_pytest_error("failed on teardown with \"KeyError: 'x'\"") == ("teardown", "KeyError: 'x'")
    assert unwrap_pytest_error('failed on teardown with "a "quoted" word"') == ("teardown", 'a "quoted" word')
    assert unwrap_pytest_error("ValueError: x") == ("", "ValueError: x")


def test_collect_message() -> None:
    text = "ImportError while importing test module 'x'.\nE   ModuleNotFoundError: No module named 'y'"
    assert collect_message(text) == "ModuleNotFoundError: No module named 'y'"
    assert collect_message("E   something odd\nE   still odd") == "still odd"
    assert collect_message("\nno E lines at all\nsecond") == "no E lines at all"


def test_bounded_text() -> None:
    assert bounded_head("short", 10) == "short"
    assert bounded_head("x" * 20, 10) == "x" * 9 + "…"
    text = "HEAD" + "m" * 10_000 + "TAIL"
    cut = bounded_tail(text, 1_000)
    assert len(cut) == 1_000
    assert cut.startswith("HEAD") and cut.endswith("TAIL") and "characters cut" in cut
