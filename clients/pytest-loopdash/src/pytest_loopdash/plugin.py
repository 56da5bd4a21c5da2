"""pytest-loopdash: stream a pytest run's results to loopdash while it runs; apply loopdash's quarantine.

Enabled by ``--loopdash-url`` and ``--loopdash-session`` with a token in ``LOOPDASH_TOKEN``; without
them it does nothing. The run is opened when the session starts, each test report is sent as a
pytest report-log line (the records ``pytest --report-log`` writes) by a background thread in
batches, and the exit status is sent at the end. With pytest-xdist only the controller process
talks to loopdash: it receives every worker's reports, so one run gets every test once, in order.

Whatever loopdash does (down, slow, refusing), the suite's outcome is not touched: every request
has a short timeout, the first failure switches the plugin off for the rest of the run, and the
terminal summary gets one line saying so. The exit status and pytest's own summary stay as they
were.

Quarantine (``--loopdash-quarantine``, default ``mark``), from the list loopdash keeps for the
session's environment:

- ``mark``: a quarantined test runs and its real outcome is sent to loopdash (which leaves it out
  of its figures); locally, a failure in its setup or call is shown as ``xfailed`` with the
  quarantine's reason, so it does not fail the suite. A pass stays a pass.
- ``skip``: a quarantined test is skipped ("quarantined in loopdash: <reason>").
- ``off``: the list is not fetched.
"""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest

from .client import Client, LoopdashError, Streamer

QUARANTINE_MODES = ("mark", "skip", "off")
WORKER_KEY = "loopdash_quarantine"  # what the xdist controller hands its workers
RECORD_ATTR = "loopdash_record"  # the real outcome of a quarantined test shown as xfailed
_QUARANTINE = pytest.StashKey[dict]()  # node id -> {"reason", "until"}: the environment's active list
_QUARANTINE_REASON = pytest.StashKey[str]()  # on an item to mark: the reason its failure shows as xfailed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loopdash", "stream results to loopdash")
    group.addoption("--loopdash-url", default=None, help="loopdash's base URL, e.g. https://loopdash.example")
    group.addoption("--loopdash-session", default=None, help="the loopdash session (slug) this run belongs to")
    group.addoption("--loopdash-cycle", type=int, default=None, help="the session's cycle (default: its latest)")
    group.addoption("--loopdash-revision", default=None, help="the revision under test, e.g. $GITHUB_SHA")
    group.addoption("--loopdash-shard", default=None, help="a label for one job of a split suite, e.g. 2/4")
    group.addoption(
        "--loopdash-quarantine",
        choices=QUARANTINE_MODES,
        default="mark",
        help="quarantined tests: mark (run; a failure shows as xfailed), skip, or off (default: mark)",
    )
    group.addoption(
        "--loopdash-timeout",
        type=float,
        default=5.0,
        help="seconds each request to loopdash may take (default 5)",
    )


class LoopdashReporter:
    """The controller's side: opens the run, queues report-log lines, finishes the run, says how it went."""

    def __init__(self, config: pytest.Config, client: Client) -> None:
        self.config = config
        self.client = client
        self.run_id: int | None = None
        self.run_url = ""
        self.environment = ""
        self.streamer: Streamer | None = None
        self.problem: str | None = None
        self.quarantine: dict[str, dict] = {}
        self.finished = False

    # -- start ---------------------------------------------------------------------------------------------

    def open(self) -> None:
        option = self.config.option
        payload: dict[str, object] = {}
        if option.loopdash_cycle is not None:
            payload["cycle"] = option.loopdash_cycle
        if option.loopdash_revision:
            payload["revision"] = option.loopdash_revision
        if option.loopdash_shard:
            payload["shard"] = option.loopdash_shard
        session = urllib.parse.quote(option.loopdash_session, safe="")
        try:
            answer = self.client.post_json(f"/sessions/{session}/runs/live", payload)
            self.run_id = int(answer["id"])  # type: ignore[index]
            self.run_url = str(answer.get("url") or "")  # type: ignore[union-attr]
            self.environment = str(answer.get("environment") or "")  # type: ignore[union-attr]
        except (LoopdashError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self.problem = f"could not open a run: {exc}"
            return
        self.streamer = Streamer(self.client, self.run_id)
        self.streamer.start()
        if option.loopdash_quarantine != "off" and self.environment:
            self.quarantine = self.fetch_quarantine()

    def fetch_quarantine(self) -> dict[str, dict]:
        """The environment's active quarantine by node id; nothing (and a note) when it cannot be read."""
        name = urllib.parse.quote(self.environment, safe="")
        try:
            answer = self.client.request("GET", f"/environments/{name}/quarantine")
        except LoopdashError as exc:
            self.problem = f"could not read the quarantine list ({exc}); quarantined tests ran as usual"
            return {}
        entries = answer.get("quarantine") if isinstance(answer, dict) else answer
        found: dict[str, dict] = {}
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and isinstance(entry.get("test"), str):
                found[entry["test"]] = {
                    "reason": str(entry.get("reason") or ""),
                    "until": str(entry.get("until") or ""),
                }
        return found

    # -- while the suite runs --------------------------------------------------------------------------------

    def send(self, record: dict) -> None:
        if self.streamer is None:
            return
        try:
            line = json.dumps(record, default=str).encode() + b"\n"
        except (TypeError, ValueError):  # a report pytest could serialise but json cannot: never fail the test
            return
        self.streamer.put(line)

    def give_up(self, what: str, exc: BaseException) -> None:
        """Something unexpected in the plugin itself: stop sending, never let it reach the test run."""
        if self.problem is None:
            self.problem = f"plugin error while {what}: {exc!r}"
        if self.streamer is not None:
            self.streamer.problem = self.streamer.problem or self.problem
        self.streamer = None

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.streamer is None:
            return
        try:
            record = getattr(report, RECORD_ATTR, None)
            if not isinstance(record, dict):
                record = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            if record:
                self.send(record)
        except Exception as exc:
            self.give_up("sending a test report", exc)

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self.streamer is None or report.passed:
            return  # only failed and skipped collectors become results; the rest is traffic
        try:
            record = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            if record:
                self.send(record)
        except Exception as exc:
            self.give_up("sending a collection report", exc)

    # -- the end ---------------------------------------------------------------------------------------------

    def finish(self, exitstatus: int) -> None:
        if self.finished or self.streamer is None:
            return
        self.finished = True
        self.send({"exitstatus": exitstatus, "$report_type": "SessionFinish"})
        timeout = self.client.timeout
        if not self.streamer.close(wait_s=max(10.0, 3 * timeout)):
            self.problem = f"results not sent: {self.streamer.problem}"
            return
        try:
            self.client.post_json(f"/runs/{self.run_id}/finish", {"exitstatus": exitstatus})
        except LoopdashError as exc:
            self.problem = f"could not finish run {self.run_id}: {exc}"

    def summary_line(self) -> str:
        if self.problem is not None:
            where = f" (run {self.run_id})" if self.run_id is not None else ""
            return f"loopdash: warning: {self.problem}{where}; the test run itself is unaffected"
        marked = f"; {len(self.quarantine)} quarantined" if self.quarantine else ""
        return f"loopdash: run {self.run_id}: {self.run_url or self.client.base_url}{marked}"


# -- hooks ------------------------------------------------------------------------------------------------------


def _reporter(config: pytest.Config) -> LoopdashReporter | None:
    return config.pluginmanager.get_plugin("loopdash-reporter")


def _wanted(config: pytest.Config) -> int:
    """How many of the two options that turn the plugin on were given: 0 (off), 1 (a mistake) or 2."""
    return bool(config.getoption("loopdash_url")) + bool(config.getoption("loopdash_session"))


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller talks to loopdash
        quarantine = config.workerinput.get(WORKER_KEY)
        config.stash[_QUARANTINE] = quarantine if isinstance(quarantine, dict) else {}
        return
    wanted = _wanted(config)
    if not wanted or config.option.collectonly:
        return
    token = os.environ.get("LOOPDASH_TOKEN", "").strip()
    client = Client(config.option.loopdash_url or "", token, timeout=config.option.loopdash_timeout)
    reporter = LoopdashReporter(config, client)
    if wanted == 1:
        reporter.problem = "--loopdash-url and --loopdash-session go together: results not sent"
    elif not token:
        reporter.problem = "LOOPDASH_TOKEN is not set: results not sent"
    config.pluginmanager.register(reporter, "loopdash-reporter")


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers, which get the quarantine list
def pytest_sessionstart(session: pytest.Session) -> None:
    reporter = _reporter(session.config)
    if reporter is None or reporter.problem is not None:
        return
    try:
        reporter.open()
        session.config.stash[_QUARANTINE] = reporter.quarantine
        reporter.send({"pytest_version": pytest.__version__, "$report_type": "SessionStart"})
    except Exception as exc:
        reporter.give_up("opening the run", exc)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # pytest-xdist: hand the quarantine list to each worker
    quarantine = node.config.stash.get(_QUARANTINE, {})
    node.workerinput[WORKER_KEY] = quarantine


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    quarantine = config.stash.get(_QUARANTINE, {})
    if not quarantine:
        return
    mode = config.getoption("loopdash_quarantine")
    for item in items:
        entry = quarantine.get(item.nodeid)
        if entry is None:
            continue
        reason = f"quarantined in loopdash: {entry['reason']}" + (
            f" (until {entry['until']})" if entry["until"] else ""
        )
        if mode == "skip":
            item.add_marker(pytest.mark.skip(reason=reason))
        elif mode == "mark":
            item.stash[_QUARANTINE_REASON] = reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """``mark``: a quarantined test's failure is shown as xfailed; its real report goes to loopdash."""
    outcome = yield
    reason = item.stash.get(_QUARANTINE_REASON, None)
    if reason is None:
        return
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        record = item.config.hook.pytest_report_to_serializable(config=item.config, report=report)
        setattr(report, RECORD_ATTR, record)
        report.outcome = "skipped"
        report.wasxfail = reason


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = _reporter(session.config)
    if reporter is not None:
        try:
            reporter.finish(int(exitstatus))
        except Exception as exc:
            reporter.give_up("finishing the run", exc)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    reporter = _reporter(config)
    if reporter is not None:
        terminalreporter.write_line(reporter.summary_line())
