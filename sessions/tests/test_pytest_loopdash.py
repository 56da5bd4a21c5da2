"""The pytest plugin (clients/pytest-loopdash) against a live loopdash: real pytest runs in subprocesses.

Each test runs a small suite with ``python -m pytest -p pytest_loopdash.plugin`` and the plugin's
source on PYTHONPATH (what ``pip install ./clients/pytest-loopdash`` installs, without the install
step), a real token, and pytest-django's live server as loopdash. What loopdash stored is compared with
pytest's own summary line. The live test blocks its suite on a file this test creates, not on time.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from sessions.models import TestResult, TestRun, WorkStatus
from sessions.services.tokens import issue_token
from sessions.tests.browser import launch, require_chromium, shot

from . import samples

PLUGIN = Path(__file__).resolve().parents[2] / "clients" / "pytest-loopdash"
SUITE = """
import os, pathlib, time
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_pass_one():
    pass

def test_pass_two():
    assert 1 + 1 == 2

def test_fails():
    assert 2 + 2 == 5, "arithmetic is off"

def test_setup_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n > 0

def test_waits_for_the_gate():
    gate = os.environ.get("SUITE_GATE")
    if gate:
        deadline = time.monotonic() + 120
        while not pathlib.Path(gate).exists():
            assert time.monotonic() < deadline, "the gate was never opened"
            time.sleep(0.05)

def test_after_the_gate():
    pass
"""
QUARANTINE_SUITE = """
def test_steady():
    pass

def test_flaky():
    assert False, "fails on CI only"
"""
SUITE_TESTS = 11
BEFORE_GATE = 9  # tests that finish before test_waits_for_the_gate
KEYS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's threads see committed rows


@pytest.fixture
def ci_token(make_user) -> str:
    user = make_user("cici", "engineer")
    return issue_token(user, name="ci", scopes=["upload", "read"])


def write_suite(root: Path, source: str, name: str = "test_suite.py") -> Path:
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "tests" / name).write_text(source)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def pytest_command(*args: str, plugin: bool = True) -> list[str]:
    load = ["-p", "pytest_loopdash.plugin"] if plugin else []
    if "-n" in args:
        load += ["-p", "xdist.plugin"]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *load, "-c", "pytest.ini",
            "-q", *args]  # fmt: skip


def suite_env(token: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "COV_", "LOOPDASH_"))}
    env["PYTHONPATH"] = str(PLUGIN / "src")
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins named with -p: seconds less per run
    if token is not None:
        env["LOOPDASH_TOKEN"] = token
    return {**env, **extra}


def run_suite(
    root: Path, token: str | None, *args: str, plugin: bool = True, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_command(*args, plugin=plugin),
        cwd=root,
        env=suite_env(token, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary_counts(stdout: str) -> dict[str, int]:
    """pytest's own final line ("1 failed, 7 passed, ... in 0.12s") as loopdash's totals."""
    line = [x for x in stdout.splitlines() if re.search(r"\bin [0-9.]+s\b", x)][-1]
    counts = dict.fromkeys(KEYS, 0)
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)\b", line):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def summary_line(stdout: str) -> str:
    line = [x for x in stdout.splitlines() if re.search(r"\bin [0-9.]+s\b", x)][-1]
    return re.sub(r" in [0-9.]+s.*", "", line)


def totals(run: TestRun) -> dict[str, int]:
    return {key: getattr(run, key) for key in KEYS}


def ci_runs(slug: str) -> list[TestRun]:
    return list(TestRun.objects.filter(session__slug=slug, source=TestRun.Source.CI).order_by("pk"))


def wait_for(what: str, check: Callable[[], object], bound_s: float = 90.0) -> object:
    """Poll until ``check`` answers something true; fail naming ``what`` past a generous bound."""
    deadline = time.monotonic() + bound_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {bound_s:g} s for {what}")
        time.sleep(0.1)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_run_streams_in_and_its_totals_equal_pytests_summary(live_server, tmp_path, ci_token) -> None:
    root = write_suite(tmp_path, SUITE)
    done = run_suite(root, ci_token, "--loopdash-url", live_server.url, "--loopdash-session", "ci-plain",
                     "--loopdash-revision", "abc123", "--loopdash-cycle", "4")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (run,) = ci_runs("ci-plain")
    assert run.status == WorkStatus.FINISHED and run.summary_written and run.exitstatus == 1
    assert totals(run) == summary_counts(done.stdout)
    assert run.total == SUITE_TESTS and run.counted and not run.incomplete
    assert run.cycle.number == 4 and run.properties["revision"] == "abc123"
    failure = TestResult.objects.get(run=run, outcome="failed")
    assert "arithmetic is off" in failure.message and failure.signature_id is not None
    assert f"loopdash: run {run.pk}: {live_server.url}/runs/{run.pk}/" in done.stdout
    assert "loopdash: warning" not in done.stdout


def test_xdist_gives_one_run_with_every_test_once(live_server, tmp_path, ci_token) -> None:
    root = write_suite(tmp_path, SUITE)
    done = run_suite(root, ci_token, "-n", "2", "--loopdash-url", live_server.url, "--loopdash-session", "ci-xdist")
    assert done.returncode == 1, done.stdout + done.stderr
    (run,) = ci_runs("ci-xdist")
    nodeids = list(TestResult.objects.filter(run=run).values_list("case__nodeid", flat=True))
    assert len(nodeids) == len(set(nodeids)) == SUITE_TESTS
    assert totals(run) == summary_counts(done.stdout)
    assert run.status == WorkStatus.FINISHED and not run.incomplete


def test_loopdash_unreachable_leaves_the_suite_unchanged(tmp_path) -> None:
    root = write_suite(tmp_path, SUITE)
    alone = run_suite(root, None, plugin=False)  # pytest without the plugin
    url = f"http://127.0.0.1:{closed_port()}"
    down = run_suite(root, "some-token", "--loopdash-url", url, "--loopdash-session", "ci-down")
    assert down.returncode == alone.returncode == 1
    assert summary_line(down.stdout) == summary_line(alone.stdout)
    warnings = [line for line in down.stdout.splitlines() if line.startswith("loopdash:")]
    assert len(warnings) == 1 and warnings[0].startswith("loopdash: warning: could not open a run: cannot reach")
    assert "Connection refused" in warnings[0]  # at once: nothing waited for a timeout
    half = run_suite(root, "some-token", "--loopdash-session", "ci-down")  # no URL: a mistake, said once
    assert half.returncode == 1 and summary_line(half.stdout) == summary_line(alone.stdout)
    assert [x for x in half.stdout.splitlines() if x.startswith("loopdash:")] == [
        "loopdash: warning: --loopdash-url and --loopdash-session go together: results not sent;"
        " the test run itself is unaffected"
    ]


def test_loopdash_answering_errors_leaves_the_suite_unchanged(live_server, tmp_path, ci_token) -> None:
    root = write_suite(tmp_path, SUITE)
    alone = run_suite(root, None, plugin=False)  # pytest without the plugin
    refused = run_suite(root, "not-a-token", "--loopdash-url", live_server.url, "--loopdash-session", "ci-401")
    assert refused.returncode == alone.returncode
    assert summary_line(refused.stdout) == summary_line(alone.stdout)
    warnings = [line for line in refused.stdout.splitlines() if line.startswith("loopdash:")]
    assert len(warnings) == 1 and "HTTP 401" in warnings[0]
    no_token = run_suite(root, None, "--loopdash-url", live_server.url, "--loopdash-session", "ci-401")
    assert [x for x in no_token.stdout.splitlines() if x.startswith("loopdash:")] == [
        "loopdash: warning: LOOPDASH_TOKEN is not set: results not sent; the test run itself is unaffected"
    ]
    assert summary_line(no_token.stdout) == summary_line(alone.stdout) and not ci_runs("ci-401")


def test_quarantined_tests_are_skipped_or_marked(live_server, tmp_path, ci_token, client) -> None:
    """E's endpoint (sessions/api_quarantine.py) lists the quarantine; the plugin skips or marks from it."""
    root = write_suite(tmp_path, QUARANTINE_SUITE, "test_q.py")
    options = ("--loopdash-url", live_server.url, "--loopdash-session", "ci-quarantine")
    first = run_suite(root, ci_token, *options)
    assert first.returncode == 1
    environment = ci_runs("ci-quarantine")[0].environment.name
    until = (datetime.date.today() + datetime.timedelta(days=7)).isoformat()
    added = client.post(
        f"/api/v1/environments/{environment}/quarantine",
        json.dumps({"test": "tests/test_q.py::test_flaky", "reason": "flaky on CI", "until": until}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ci_token}",
    )
    assert added.status_code == 201, added.content

    skipped = run_suite(root, ci_token, *options, "--loopdash-quarantine", "skip")
    assert skipped.returncode == 0, skipped.stdout
    assert summary_line(skipped.stdout).strip("= ") == "1 passed, 1 skipped"
    run = ci_runs("ci-quarantine")[-1]
    flaky = TestResult.objects.get(run=run, case__nodeid="tests/test_q.py::test_flaky")
    assert flaky.outcome == "skipped" and flaky.message.startswith("quarantined in loopdash: flaky on CI")

    marked = run_suite(root, ci_token, *options, "-n", "2")  # mark is the default; xdist workers get the list
    assert marked.returncode == 0, marked.stdout
    assert summary_line(marked.stdout).strip("= ") == "1 passed, 1 xfailed"
    run = ci_runs("ci-quarantine")[-1]
    flaky = TestResult.objects.get(run=run, case__nodeid="tests/test_q.py::test_flaky")
    assert flaky.outcome == "failed" and "fails on CI only" in flaky.message  # loopdash sees the real outcome
    assert "; 1 quarantined" in marked.stdout

    off = run_suite(root, ci_token, *options, "--loopdash-quarantine", "off")
    assert off.returncode == 1 and summary_line(off.stdout).strip("= ") == "1 failed, 1 passed"


def test_the_package_declares_the_pytest11_entry_point() -> None:
    """``pip install ./clients/pytest-loopdash`` registers the plugin with pytest by this entry point."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"loopdash": "pytest_loopdash.plugin"}
    assert project["project"]["dependencies"] == ["pytest>=7.0"]  # and the standard library, nothing else
    plugin_sources = (PLUGIN / "src" / "pytest_loopdash").glob("*.py")
    imports = {m for path in plugin_sources for m in re.findall(r"^(?:from|import) (\w+)", path.read_text(), re.M)}
    assert imports - {"pytest"} <= sys.stdlib_module_names, imports - sys.stdlib_module_names


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.browser
def test_the_run_page_shows_results_while_the_suite_still_runs(
    allow_orm_beside_playwright, live_server, tmp_path, ci_token
) -> None:
    executable = require_chromium()
    from playwright.sync_api import expect, sync_playwright  # imported here: only browser tests need it

    root = write_suite(tmp_path, SUITE)
    gate = tmp_path / "gate"
    command = pytest_command("--loopdash-url", live_server.url, "--loopdash-session", "ci-live")
    env = suite_env(ci_token, SUITE_GATE=str(gate))
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:

        def streamed() -> TestRun | None:
            runs = ci_runs("ci-live")
            if runs and TestResult.objects.filter(run=runs[0]).count() >= BEFORE_GATE:
                return runs[0]
            return None

        run = wait_for("the results before the gate", streamed)
        with sync_playwright() as playwright:
            browser = launch(playwright, executable)
            page = browser.new_page()
            try:
                page.goto(f"{live_server.url}/accounts/login/?next=/runs/{run.pk}/")
                page.fill("input[name=username]", "cici")
                page.fill("input[name=password]", "pw-cici")
                page.click("button[type=submit], input[type=submit]")
                expect(page).to_have_url(f"{live_server.url}/runs/{run.pk}/")
                expect(page.get_by_text("test_fails", exact=False).first).to_be_visible()
                expect(page.get_by_text("test_pass_one", exact=False).first).to_be_visible()
                shot(page, "ci-live-run")
                assert proc.poll() is None  # the suite is still waiting at the gate
                assert TestRun.objects.get(pk=run.pk).status == WorkStatus.RUNNING
                assert not TestResult.objects.filter(run=run, case__nodeid__endswith="test_after_the_gate").exists()
            finally:
                page.goto("about:blank")  # stop the running run's page polling before the browser goes
                browser.close()
        gate.touch()
        output, _ = proc.communicate(timeout=120)
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, output
    run.refresh_from_db()
    assert run.status == WorkStatus.FINISHED and totals(run) == summary_counts(output) and run.total == SUITE_TESTS


def test_batches_of_one_run_sent_at_once_from_several_processes_are_all_stored(live_server, ci_token) -> None:
    """The plugin sends from xdist's controller only, but any client may send from each worker: the run row's
    lock stores concurrent batches one after another, and every test arrives once."""
    headers = {"Authorization": f"Bearer {ci_token}", "Content-Type": "text/plain"}

    def call(path: str, body: bytes, content_type: str = "text/plain") -> dict:
        request = urllib.request.Request(
            f"{live_server.url}/api/v1{path}", data=body, headers={**headers, "Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    run_id = call("/sessions/ci-concurrent/runs/live", b"{}", "application/json")["id"]
    errors: list[BaseException] = []

    def sender(worker: int) -> None:
        try:
            for batch in range(8):
                records = []
                for n in range(5):
                    records += samples.passing(f"tests/test_w{worker}.py::test_{batch}_{n}")
                call(f"/runs/{run_id}/results", b"".join(json.dumps(r).encode() + b"\n" for r in records))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    body = call(f"/runs/{run_id}/finish", b'{"exitstatus": 0}', "application/json")
    assert body["status"] == "finished" and body["totals"]["tests"] == body["totals"]["passed"] == 3 * 8 * 5
    nodeids = list(TestResult.objects.filter(run_id=run_id).values_list("case__nodeid", flat=True))
    assert len(nodeids) == len(set(nodeids)) == 120
