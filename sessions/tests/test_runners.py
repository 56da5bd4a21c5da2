"""The subprocess edge and the live report-log reader, with real processes and real pytest output (no worker)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.conf import settings

from sessions.ingest.live import FileTail, LiveReportLog
from sessions.work import runners

SUITE = """
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")

@pytest.mark.parametrize("i", range(8))
def test_numbers(i):
    assert i != 5

def test_skipped():
    pytest.skip("later")

def test_teardown(broken_teardown):
    pass
"""


def run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        # As the worker does: without it, pytest-django (installed here) would look for loopdash's settings.
        env=env or runners.child_environment({}),
        timeout=120,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_suite.py").write_text(textwrap.dedent(SUITE))
    return tmp_path


@pytest.fixture
def report_log(suite: Path) -> Path:
    path = suite / "report.jsonl"
    run_pytest(suite, "tests", "--report-log", str(path))
    return path


# -- commands -------------------------------------------------------------------------------------------------


def test_placeholders_are_filled_inside_single_arguments() -> None:
    args = runners.expand_command(
        ["{python}", "deploy.py", "--revision={revision}", "{not-a-placeholder}"], revision="r3"
    )
    assert args == [sys.executable, "deploy.py", "--revision=r3", "{not-a-placeholder}"]
    evil = runners.expand_command(["echo", "{revision}"], revision="r1; rm -rf /")
    assert evil == ["echo", "r1; rm -rf /"]  # one argument, never a shell


@pytest.mark.parametrize("bad", [[], "python -m pytest", ["python", 3]])
def test_a_command_must_be_a_list_of_strings(bad: object) -> None:
    with pytest.raises(runners.CommandError):
        runners.expand_command(bad)  # type: ignore[arg-type]


def test_relative_working_dirs_are_relative_to_the_project(tmp_path: Path) -> None:
    assert runners.resolve_working_dir("examples/staging") == Path(settings.BASE_DIR) / "examples" / "staging"
    assert runners.resolve_working_dir(str(tmp_path)) == tmp_path
    with pytest.raises(runners.CommandError, match="does not exist"):
        runners.resolve_working_dir(str(tmp_path / "missing"))


def test_children_do_not_inherit_loopdash_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/prod")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://secret")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "loopdash.settings")
    env = runners.child_environment({"STAGING_PORT": 9000, "DATABASE_URL": "sqlite:///the-suite-own.db"})
    assert "SECRET_KEY" not in env and "CELERY_BROKER_URL" not in env and "DJANGO_SETTINGS_MODULE" not in env
    assert env["DATABASE_URL"] == "sqlite:///the-suite-own.db"  # the environment's own variables win
    assert env["STAGING_PORT"] == "9000" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == os.environ["PATH"]


# -- process groups ------------------------------------------------------------------------------------------------


def spawn(tmp_path: Path, script: str, **kwargs: object) -> runners.GroupProcess:
    proc = runners.GroupProcess(
        ["sh", "-c", script],
        cwd=tmp_path,
        env=runners.child_environment({}),
        log_path=tmp_path / "out.log",
        record_path=tmp_path / "process.json",
        **kwargs,  # type: ignore[arg-type]
    )
    proc.start()
    return proc


def test_kill_ends_the_whole_group_even_children_that_ignore_sigterm(tmp_path: Path) -> None:
    proc = spawn(tmp_path, "trap '' TERM; sleep 300 & sleep 300 & echo started; wait")
    time.sleep(0.3)
    assert runners.group_alive(proc.pgid)
    started = time.monotonic()
    proc.kill(grace=0.5)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pgid, 0)  # no member left, zombies included
    assert "started" in (tmp_path / "out.log").read_text()


def test_finish_ends_stragglers_a_command_left_behind(tmp_path: Path) -> None:
    proc = spawn(tmp_path, "sleep 300 & echo done")
    while proc.poll() is None:
        time.sleep(0.05)
    assert proc.returncode == 0 and runners.group_alive(proc.pgid)  # the background sleep lives on
    proc.finish()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pgid, 0)


def test_a_missing_executable_is_a_command_error_in_the_log(tmp_path: Path) -> None:
    proc = runners.GroupProcess(
        ["/nonexistent/pytest"], cwd=tmp_path, env={}, log_path=tmp_path / "out.log", record_path=None
    )
    with pytest.raises(runners.CommandError, match="could not start"):
        proc.start()
    assert "could not start" in (tmp_path / "out.log").read_text()


def test_an_orphaned_group_is_killed_only_from_a_matching_record(tmp_path: Path) -> None:
    proc = spawn(tmp_path, "sleep 300")
    record = runners.ProcessRecord.load(tmp_path / "process.json")
    assert record is not None and record.pgid == proc.pgid and record.host == socket.gethostname()

    elsewhere = runners.ProcessRecord(host="another-host", pgid=record.pgid, start_ticks=record.start_ticks)
    assert not runners.kill_recorded_group(elsewhere)
    recycled = runners.ProcessRecord(host=record.host, pgid=record.pgid, start_ticks=(record.start_ticks or 0) + 1)
    assert not runners.kill_recorded_group(recycled), "a pid now used by another process is left alone"
    assert runners.group_alive(proc.pgid)

    assert runners.kill_recorded_group(record, grace=0.5)
    proc.popen.wait(timeout=5)
    assert not runners.group_alive(proc.pgid)


def test_the_log_tail_keeps_the_last_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    tail = runners.read_tail(log, max_bytes=1000, max_lines=10)
    assert tail.splitlines() == [f"line {i}" for i in range(4990, 5000)]
    assert runners.read_tail(tmp_path / "missing.log") == ""


# -- selections -----------------------------------------------------------------------------------------------------


def test_a_selection_narrows_the_suites_own_paths(suite: Path) -> None:
    env = runners.child_environment({})
    args = runners.selection_arguments(
        ["tests/test_suite.py::test_numbers[5]", "tests/test_suite.py::test_skipped"], suite, env
    )
    assert args[:2] == ["-p", runners.SELECT_PLUGIN]
    report = suite / "selected.jsonl"
    done = run_pytest(suite, "tests", *args, "--report-log", str(report), env=env)
    assert "1 failed, 1 skipped, 8 deselected" in done.stdout, done.stdout
    ran = {json.loads(line).get("nodeid") for line in report.read_text().splitlines() if '"TestReport"' in line}
    assert ran == {"tests/test_suite.py::test_numbers[5]", "tests/test_suite.py::test_skipped"}


HOSTILE_NAMES = [
    *(f"tests/test_suite.py::test_x{sep}--debug=DEBUG.log" for sep in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"),
    "--debug=DEBUG.log",
    "-p",
    "@ARGS.txt",
    "tests/test_suite.py::@ARGS.txt",
]


def test_no_node_id_ever_reaches_the_command_line(suite: Path) -> None:
    """Whatever a stored name holds, the arguments are fixed and the names travel as JSON data."""
    (suite / "ARGS.txt").write_text("--debug=FROM-ARGFILE.log\n")
    env = runners.child_environment({})
    nodeids = [*(f"tests/test_suite.py::test_numbers[{i}]" for i in range(8)), *HOSTILE_NAMES]
    args = runners.selection_arguments(nodeids, suite, env)
    assert args == ["-p", runners.SELECT_PLUGIN]
    assert json.loads((suite / runners.SELECTION_FILE).read_text()) == nodeids
    done = run_pytest(suite, "tests", *args, env=env)
    assert "1 failed, 7 passed, 2 deselected" in done.stdout, done.stdout
    assert not list(suite.glob("*DEBUG*.log")) and not (suite / "FROM-ARGFILE.log").exists()


def test_a_selection_collects_only_the_files_it_names(suite: Path) -> None:
    (suite / "tests" / "test_broken.py").write_text("raise RuntimeError('must not be imported')\n")
    env = runners.child_environment({})
    args = runners.selection_arguments(["tests/test_suite.py::test_numbers[1]"], suite, env)
    done = run_pytest(suite, "tests", *args, env=env)
    assert "1 passed" in done.stdout and "must not be imported" not in done.stdout, done.stdout


def test_the_guard_ends_the_group_when_its_worker_dies(tmp_path: Path) -> None:
    """A worker killed with SIGKILL takes its command's whole process group with it."""
    script = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")
django.setup()
from sessions.work import runners
proc = runners.GroupProcess(["sh", "-c", "sleep 300 & sleep 300"], cwd=Path({str(tmp_path)!r}), env=dict(os.environ),
                            log_path=Path({str(tmp_path / "out.log")!r}))
proc.start()
print(proc.pgid, flush=True)
time.sleep(300)
"""
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pgid = int(worker.stdout.readline())
    assert runners.group_alive(pgid)
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 20
    while runners.group_alive(pgid) and time.monotonic() < deadline:
        runners.reap_children()
        time.sleep(0.1)
    assert not runners.group_alive(pgid), "the command outlived its worker"
    assert "the worker (pid" in (tmp_path / "out.log").read_text()


def test_the_guard_keeps_the_commands_exit_status(tmp_path: Path) -> None:
    assert spawn_and_wait(tmp_path, "exit 3") == 3
    assert spawn_and_wait(tmp_path, "kill -TERM $$") == -signal.SIGTERM


def spawn_and_wait(tmp_path: Path, script: str) -> int:
    proc = spawn(tmp_path, script)
    while proc.poll() is None:
        time.sleep(0.05)
    return proc.returncode


# -- the live report-log ---------------------------------------------------------------------------------------------


def test_live_reading_yields_each_test_once_its_teardown_is_written(report_log: Path) -> None:
    lines = report_log.read_bytes().splitlines(keepends=True)
    reader = LiveReportLog(str(report_log))
    seen = []
    for line in lines:
        finished = reader.feed(line)
        record = json.loads(line)
        if record.get("$report_type") == "TestReport" and record["when"] == "teardown":
            assert [r.nodeid for r in finished] == [record["nodeid"]]
            assert reader.last_nodeid == record["nodeid"]
        else:
            assert finished == []
        seen += finished
    seen += reader.finish()
    assert len(seen) == 10
    outcomes = {r.nodeid.rsplit("::", 1)[1]: str(r.outcome) for r in seen}
    assert outcomes["test_numbers[5]"] == "failed"
    assert outcomes["test_skipped"] == "skipped"
    assert outcomes["test_teardown"] == "error"  # combined by reportlog.py's rules, not re-implemented
    assert reader.info.exitstatus == 1 and not reader.info.incomplete and reader.saw_session_finish


def test_a_cut_off_report_log_ends_incomplete_with_the_test_in_flight(report_log: Path) -> None:
    lines = report_log.read_bytes().splitlines(keepends=True)
    # Stop right after the setup of test_numbers[3]: pytest was killed during that test.
    cut = next(i for i, line in enumerate(lines) if b'test_numbers[3]"' in line and b'"when": "setup"' in line)
    reader = LiveReportLog()
    results = reader.feed(b"".join(lines[: cut + 1])) + reader.finish()
    assert [r.nodeid.rsplit("::", 1)[1] for r in results] == [f"test_numbers[{i}]" for i in range(4)]
    assert str(results[-1].outcome) == "error" and reader.info.incomplete and not reader.saw_session_finish


def test_a_file_tail_hands_out_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "growing.jsonl"
    tail = FileTail(path)
    assert tail.read_lines() == b""  # not created yet
    with open(path, "ab") as f:
        f.write(b'{"a": 1}\n{"b":')
    assert tail.read_lines() == b'{"a": 1}\n'
    assert tail.leftover == b'{"b":'
    with open(path, "ab") as f:
        f.write(b" 2}\n")
    assert tail.read_lines() == b'{"b": 2}\n'
    assert tail.read_lines() == b"" and tail.leftover == b""


def test_a_malformed_line_stops_the_results_and_says_where(report_log: Path) -> None:
    reader = LiveReportLog("report.jsonl")
    lines = report_log.read_bytes().splitlines(keepends=True)
    reader.feed(b"".join(lines[:4]))
    assert reader.feed(b"this is not json\n") == []
    reader.finish()
    assert reader.error is not None and "report.jsonl:5" in str(reader.error)
