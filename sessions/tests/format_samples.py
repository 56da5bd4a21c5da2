"""Result files of the .NET runners, written for these tests in the shapes the real tools write.

Each sample carries the runner's own summary (TRX ``<Counters>``, NUnit's ``<test-run>`` totals,
xUnit.net's ``<assembly>`` totals) so that a test can check loopdash's totals against it. The layout
follows what ``dotnet test --logger trx`` (vstest), ``nunit3-console`` and ``xunit.console -xml``
write: namespaces, TimeSpan durations, CDATA messages, the order of sections.
"""

from __future__ import annotations

TRX_NS = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"


def _trx_result(test_id: str, name: str, outcome: str, duration: str, body: str = "") -> str:
    return (
        f'<UnitTestResult executionId="e-{test_id}" testId="{test_id}" testName="{name}" computerName="ci-7" '
        f'duration="{duration}" startTime="2026-03-02T10:00:01.1234567+00:00" endTime="2026-03-02T10:00:01.2234567+00:00" '
        f'testType="13cdc9d9-ddb5-4fa4-a97d-d965ccfc6d4b" outcome="{outcome}" '
        f'testListId="8c84fa94-04c1-424b-9868-57a2d4851a1d">{body}</UnitTestResult>'
    )


def trx(*, hostile_prolog: str = "") -> bytes:
    """An NUnit-adapter TRX: method names only in ``testName``, classes in TestDefinitions after Results."""
    failure = (
        "<Output><StdOut>connecting to ws://staging:8765</StdOut><ErrorInfo><Message>  Expected: 1011\n"
        "  But was:  1006</Message><StackTrace>   at Chat.Tests.SocketTests.Reconnects() in "
        "/src/Chat.Tests/SocketTests.cs:line 42</StackTrace></ErrorInfo></Output>"
    )
    results = [
        _trx_result("t1", "Connects", "Passed", "00:00:00.0123456"),
        _trx_result("t2", "Reconnects", "Failed", "00:00:01.5000000", failure),
        _trx_result(
            "t3",
            "Slow",
            "NotExecuted",
            "00:00:00",
            "<Output><ErrorInfo><Message>Ignored: flaky on CI</Message></ErrorInfo></Output>",
        ),
        _trx_result("t4", "Hangs", "Timeout", "00:01:00.0000000"),
        _trx_result("t5", "Connects", "Passed", "00:00:00.0200000"),
        _trx_result("t6", "Cleanup", "Aborted", "00:00:00.0010000"),
    ]
    definitions = "".join(
        f'<UnitTest name="{name}" storage="/src/bin/chat.tests.dll" id="{tid}"><Execution id="e-{tid}" />'
        f'<TestMethod codeBase="/src/bin/Chat.Tests.dll" adapterTypeName="executor://nunit3testexecutor/" '
        f'className="{cls}" name="{name}" /></UnitTest>'
        for tid, name, cls in (
            ("t1", "Connects", "Chat.Tests.SocketTests"),
            ("t2", "Reconnects", "Chat.Tests.SocketTests"),
            ("t3", "Slow", "Chat.Tests.SocketTests"),
            ("t4", "Hangs", "Chat.Tests.RoomTests"),
            ("t5", "Connects", "Chat.Tests.RoomTests"),
            ("t6", "Cleanup", "Chat.Tests.RoomTests"),
        )
    )
    text = (
        f'\ufeff<?xml version="1.0" encoding="utf-8"?>{hostile_prolog}\n'
        f'<TestRun id="0b1e" name="ci@runner 2026-03-02 10:00:00" runUser="ci" xmlns="{TRX_NS}">\n'
        '  <Times creation="2026-03-02T10:00:00.0000000+00:00" queuing="2026-03-02T10:00:00.0000000+00:00" '
        'start="2026-03-02T10:00:00.5000000+00:00" finish="2026-03-02T10:01:05.5000000+00:00" />\n'
        '  <TestSettings name="default" id="s1"><Deployment runDeploymentRoot="ci_runner" /></TestSettings>\n'
        f"  <Results>\n    {'\n    '.join(results)}\n  </Results>\n"
        f"  <TestDefinitions>{definitions}</TestDefinitions>\n"
        '  <ResultSummary outcome="Failed">\n'
        '    <Counters total="6" executed="5" passed="2" failed="1" error="0" timeout="1" aborted="1" '
        'inconclusive="0" passedButRunAborted="0" notRunnable="0" notExecuted="1" disconnected="0" '
        'warning="0" completed="0" inProgress="0" pending="0" />\n'
        '    <RunInfos><RunInfo computerName="ci-7" outcome="Warning" timestamp="2026-03-02T10:01:05">'
        "<Text>Data collector 'Code Coverage' message: no coverage.</Text></RunInfo></RunInfos>\n"
        "  </ResultSummary>\n</TestRun>\n"
    )
    return text.encode("utf-8")


TRX_SUMMARY = {"tests": 6, "passed": 2, "failed": 1, "errors": 2, "skipped": 1}


def nunit3(*, hostile_prolog: str = "") -> bytes:
    """nunit3-console's result file: nested suites, labels, a OneTimeTearDown failure on a fixture."""
    case = (
        '<test-case id="{id}" name="{name}" fullname="Shop.Tests.CartTests.{name}" methodname="{method}" '
        'classname="Shop.Tests.CartTests" runstate="Runnable" seed="1" result="{result}"{label} '
        'start-time="2026-03-02T10:00:01.0000000Z" end-time="2026-03-02T10:00:01.0100000Z" duration="{took}" asserts="1">'
        "{body}</test-case>"
    )
    cases = [
        case.format(id="1-1", name="AddsItem", method="AddsItem", result="Passed", label="", took="0.010", body=""),
        case.format(
            id="1-2",
            name="AppliesDiscount(10,90)",
            method="AppliesDiscount",
            result="Failed",
            label="",
            took="0.020",
            body="<failure><message><![CDATA[  Expected: 90\n  But was:  100\n]]></message><stack-trace><![CDATA["
            "at Shop.Tests.CartTests.AppliesDiscount(Int32 pct, Int32 want) in /src/CartTests.cs:line 31\n]]>"
            "</stack-trace></failure><output><![CDATA[discount service answered 500\n]]></output>",
        ),
        case.format(
            id="1-3",
            name="Checkout",
            method="Checkout",
            result="Failed",
            label=' label="Error"',
            took="0.300",
            body="<failure><message><![CDATA[System.Net.Http.HttpRequestException : Connection refused]]></message>"
            "<stack-trace><![CDATA[   at Shop.Client.Post()]]></stack-trace></failure>",
        ),
        case.format(
            id="1-4",
            name="Refund",
            method="Refund",
            result="Skipped",
            label=' label="Ignored"',
            took="0.000",
            body='<properties><property name="_SKIPREASON" value="payments sandbox down" /></properties>'
            "<reason><message><![CDATA[payments sandbox down]]></message></reason>",
        ),
        case.format(id="1-5", name="Totals", method="Totals", result="Inconclusive", label="", took="0.001", body=""),
        case.format(
            id="1-6",
            name="Invalid(1)",
            method="Invalid",
            result="Failed",
            label=' label="Invalid"',
            took="0.000",
            body="<failure><message><![CDATA[Method has non-void return value]]></message></failure>",
        ),
        case.format(id="1-7", name="Warns", method="Warns", result="Warning", label="", took="0.002", body=""),
    ]
    text = (
        f'<?xml version="1.0" encoding="utf-8" standalone="no"?>{hostile_prolog}\n'
        '<test-run id="0" runstate="Runnable" testcasecount="7" result="Failed" total="7" passed="1" failed="3" '
        'warnings="1" inconclusive="1" skipped="1" asserts="5" engine-version="3.16.3.0" clr-version="8.0.1" '
        'start-time="2026-03-02 10:00:00Z" end-time="2026-03-02 10:00:02Z" duration="2.125">\n'
        "  <command-line><![CDATA[nunit3-console Shop.Tests.dll]]></command-line>\n"
        '  <test-suite type="Assembly" id="1-9" name="Shop.Tests.dll" fullname="/src/Shop.Tests.dll" result="Failed" '
        'site="Child" total="7">\n'
        '    <properties><property name="_PID" value="4242" /></properties>\n'
        '    <test-suite type="TestFixture" id="1-8" name="CartTests" fullname="Shop.Tests.CartTests" '
        'classname="Shop.Tests.CartTests" result="Failed" site="TearDown" total="7">\n'
        "      <failure><message><![CDATA[TearDown : System.IO.IOException : the cart database is locked]]>"
        "</message></failure>\n"
        f"      {''.join(cases)}\n"
        "    </test-suite>\n  </test-suite>\n</test-run>\n"
    )
    return text.encode("utf-8")


# nunit3-console: "Test Count: 7, Passed: 1, Failed: 3, Warnings: 1, Inconclusive: 1, Skipped: 1";
# "Failed Tests - Failures: 1, Errors: 1, Invalid: 1". loopdash: passed = Passed + Warnings,
# errors = Errors + Invalid, skipped = Skipped + Inconclusive.
NUNIT3_SUMMARY = {"tests": 7, "passed": 2, "failed": 1, "errors": 2, "skipped": 2}


def xunit2(*, hostile_prolog: str = "") -> bytes:
    """xunit.console -xml: an assembly with its (empty-but-one) errors first, then collections."""
    text = (
        f'\ufeff<?xml version="1.0" encoding="utf-8"?>{hostile_prolog}\n'
        '<assemblies timestamp="03/02/2026 10:00:03">\n'
        '  <assembly name="/src/bin/Api.Tests.dll" environment="64-bit .NET 8.0.1 [collection-per-class, parallel (2 threads)]" '
        'test-framework="xUnit.net 2.6.2.0" run-date="2026-03-02" run-time="10:00:00" total="5" passed="2" failed="2" '
        'skipped="1" time="1.500" errors="1">\n'
        '    <errors><error type="fixture-cleanup" name="Api.Tests.DbFixture"><failure exception-type="System.TimeoutException">'
        "<message><![CDATA[System.TimeoutException : the database did not stop]]></message>"
        "<stack-trace><![CDATA[   at Api.Tests.DbFixture.Dispose()]]></stack-trace></failure></error></errors>\n"
        '    <collection total="5" passed="2" failed="2" skipped="1" name="Test collection for Api.Tests.OrderTests" time="1.400">\n'
        '      <test name="Api.Tests.OrderTests.Creates" type="Api.Tests.OrderTests" method="Creates" time="0.1" result="Pass">'
        '<traits><trait name="Category" value="smoke" /><trait name="Category" value="p1" /></traits></test>\n'
        '      <test name="Api.Tests.OrderTests.Lists(page: 2)" type="Api.Tests.OrderTests" method="Lists" time="0.2" result="Pass" />\n'
        '      <test name="Api.Tests.OrderTests.Cancels" type="Api.Tests.OrderTests" method="Cancels" time="0.3" result="Fail">'
        '<failure exception-type="Xunit.Sdk.EqualException"><message><![CDATA[Assert.Equal() Failure\nExpected: Cancelled\n'
        "Actual:   Open]]></message><stack-trace><![CDATA[   at Api.Tests.OrderTests.Cancels() in /src/OrderTests.cs:line 57]]>"
        "</stack-trace></failure><output><![CDATA[PUT /orders/12 -> 409\n]]></output></test>\n"
        '      <test name="Api.Tests.OrderTests.Ships" type="Api.Tests.OrderTests" method="Ships" time="0.4" result="Fail">'
        '<failure exception-type="System.Net.Http.HttpRequestException"><message><![CDATA[Connection refused (staging:8080)]]>'
        "</message><stack-trace><![CDATA[   at Api.Client.Send()]]></stack-trace></failure></test>\n"
        '      <test name="Api.Tests.OrderTests.Archives" type="Api.Tests.OrderTests" method="Archives" time="0" result="Skip">'
        "<reason><![CDATA[archive service not deployed]]></reason></test>\n"
        "    </collection>\n  </assembly>\n</assemblies>\n"
    )
    return text.encode("utf-8")


XUNIT2_SUMMARY = {"tests": 5, "passed": 2, "failed": 2, "errors": 0, "skipped": 1}

DTD_PROLOG = '\n<!DOCTYPE x [<!ENTITY big "lol">]>'
