"""Small result files for storage, API and page tests, written as real runners write them."""

from __future__ import annotations

import gzip
import json


def junit(cases: list[tuple[str, str, str]], *, suite: str = "pytest") -> bytes:
    """cases: (classname, name, kind) with kind in passed/failed/error/skipped/xfailed/setup_error/script."""
    parts = ['<?xml version="1.0" encoding="utf-8"?><testsuites>', f'<testsuite name="{suite}" tests="999">']
    for classname, name, kind in cases:
        attrs = f'classname="{classname}" name="{name}" time="0.5"'
        body = {
            "passed": "",
            "failed": '<failure message="AssertionError: expected 5 events, got 3">assert 3 == 5</failure>',
            "timeout": '<failure message="TimeoutError: Timeout after 120s">TimeoutError: Timeout after 120s</failure>',
            "ws1011": '<failure message="ConnectionClosedError: received 1011 (internal error)">E ConnectionClosedError</failure>',
            "error": '<error message="RuntimeError: boom">RuntimeError: boom</error>',
            "setup_error": '<error message="failed on setup with &quot;ConnectionRefusedError: [Errno 111] refused&quot;">'
            "ConnectionRefusedError: [Errno 111] refused</error>",
            "skipped": '<skipped type="pytest.skip" message="needs GPU">needs GPU</skipped>',
            "xfailed": '<skipped type="pytest.xfail" message="known bug" />',
            "script": '<failure message="&lt;script&gt;alert(1)&lt;/script&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</failure>',
        }[kind]
        parts.append(f"<testcase {attrs}>{body}</testcase>" if body else f"<testcase {attrs} />")
    parts.append("</testsuite></testsuites>")
    return "".join(parts).encode()


def reportlog(records: list[dict], *, exitstatus: int | None = 1) -> bytes:
    lines = [json.dumps({"pytest_version": "9.2.0", "$report_type": "SessionStart"})]
    lines += [json.dumps(r) for r in records]
    if exitstatus is not None:
        lines.append(json.dumps({"exitstatus": exitstatus, "$report_type": "SessionFinish"}))
    return ("\n".join(lines) + "\n").encode()


def report(
    nodeid: str, when: str, outcome: str, *, duration: float = 0.2, longrepr=None, keywords=None, user_properties=None
) -> dict:
    return {
        "nodeid": nodeid,
        "location": [nodeid.split("::")[0], 1, nodeid.split("::")[-1]],
        "keywords": keywords or {},
        "outcome": outcome,
        "longrepr": longrepr,
        "when": when,
        "user_properties": user_properties or [],
        "sections": [],
        "duration": duration,
        "$report_type": "TestReport",
    }


def passing(nodeid: str, **kw) -> list[dict]:
    return [
        report(nodeid, "setup", "passed", duration=0.001),
        report(nodeid, "call", "passed", **kw),
        report(nodeid, "teardown", "passed", duration=0.001),
    ]


def failing(nodeid: str, message: str, **kw) -> list[dict]:
    longrepr = {
        "reprcrash": {"path": "x.py", "lineno": 1, "message": message},
        "reprtraceback": {"reprentries": [], "extraline": None, "style": "long"},
        "sections": [],
        "chain": [],
    }
    return [
        report(nodeid, "setup", "passed", duration=0.001),
        report(nodeid, "call", "failed", longrepr=longrepr, **kw),
        report(nodeid, "teardown", "passed", duration=0.001),
    ]


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuites><testsuite><testcase classname="a" name="&lol3;"/></testsuite></testsuites>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuites><testsuite><testcase classname="a" name="&xxe;"/></testsuite></testsuites>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites SYSTEM "http://127.0.0.1:9/evil.dtd">
<testsuites><testsuite><testcase classname="a" name="b"/></testsuite></testsuites>"""

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "' + b"x" * 50_000 + b'">]><testsuites><testsuite>'
    b'<testcase classname="a" name="' + b"&a;" * 1000 + b'"/></testsuite></testsuites>'
)

HOSTILE = {
    "entity-bomb.xml": BILLION_LAUGHS,
    "quadratic.xml": QUADRATIC,
    "external-entity.xml": EXTERNAL_ENTITY,
    "external-dtd.xml": EXTERNAL_DTD,
    "truncated.xml": junit([("a", "b", "passed")] * 3)[:-40],
    "not-xml.xml": b"this is not xml at all\n",
    "random.bin": bytes(range(256)) * 8,
    "wrong-root.xml": b"<html><body><testsuite><testcase classname='a' name='b'/></testsuite></body></html>",
    "empty.xml": b"",
    "invalid-utf8.xml": b'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite><testcase classname="a" name="\xff\xfe"/></testsuite></testsuites>',
    "illegal-char.xml": b'<testsuites><testsuite><testcase classname="a" name="b\x01"/></testsuite></testsuites>',
    "corrupt-line.jsonl": reportlog(passing("t.py::a"))[:-1] + b'\n{"nodeid": "t.py::b", "when": \n',
    "not-records.jsonl": b'{"foo": 1}\n[1, 2]\n',
    "truncated.jsonl": reportlog(passing("t.py::a"), exitstatus=None)
    + b'{"nodeid": "t.py::b", "$report_type": "TestRe',
}
