"""Deploys and runs on a real Celery worker: the example target's cycle, reruns, timeouts, cancels, crashes, the lock.

Each test writes its own environment: a tiny pytest suite in a temporary folder (slow enough to be
cancelled or timed out half-way, with a helper process that only a group kill ends), or the example
staging target on a free port with a state folder of its own. The worker is a real
``celery worker`` subprocess on the test database and the configured broker (sessions.tests.worker).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from lxml import etree

from sessions.models import (
    DEPLOY_FINAL_STATUSES,
    LIVE_STATUSES,
    Deployment,
    Environment,
    FailureSignature,
    LoopSession,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
)
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.tests.worker import celery_worker, running_worker  # noqa: F401 - the fixture
from sessions.work import cancel, queueing, reaper, run_execution, runners
from sessions.work.errors import Refused

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
on_worker = pytest.mark.usefixtures("celery_worker")

STAGING_DIR = Path(settings.BASE_DIR) / "examples" / "staging"
PYTEST = ["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]

SLOW_CONFTEST = '''
import os, subprocess, pytest

@pytest.fixture(scope="session", autouse=True)
def helper_process():
    """A child in pytest's process group that outlives pytest unless the whole group is killed."""
    proc = subprocess.Popen(["sleep", "600"])
    with open(os.path.join(os.path.dirname(__file__), "..", "helper.pid"), "w") as f:
        f.write(str(proc.pid))
    yield proc
'''
SLOW_TESTS = """
import time, pytest

@pytest.mark.parametrize("i", range(400))
def test_slow(i):
    time.sleep(0.1)
"""
OUTCOME_TESTS = """
import pytest

@pytest.fixture
def broken_setup():
    raise ConnectionError("no database")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")

@pytest.mark.parametrize("i", range(12))
def test_passes(i):
    pass

@pytest.mark.parametrize("i", range(3))
def test_fails(i):
    assert i < 0, "negative expected"

def test_setup_error(broken_setup):
    pass

def test_teardown_error(broken_teardown):
    pass

def test_skipped():
    pytest.skip("not today")

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False
"""


# -- helpers -------------------------------------------------------------------------------------------------


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ended_run(pk: int, timeout: float = 120.0) -> TestRun:
    def check() -> TestRun | None:
        run = TestRun.objects.get(pk=pk)
        return run if run.status not in LIVE_STATUSES and run.summary_written else None

    return wait_for(check, timeout, f"run {pk} to end")  # type: ignore[return-value]


def ended_deployment(pk: int, timeout: float = 60.0) -> Deployment:
    def check() -> Deployment | None:
        deployment = Deployment.objects.get(pk=pk)
        return deployment if deployment.status in DEPLOY_FINAL_STATUSES and deployment.finished_at else None

    return wait_for(check, timeout, f"deployment {pk} to end")  # type: ignore[return-value]


def make_session(slug: str, folder: Path, *, test_command: list[str] | None = None, **fields: object) -> LoopSession:
    env = Environment.objects.create(name=slug, working_dir=str(folder), test_command=test_command or PYTEST, **fields)
    return LoopSession.objects.create(environment=env, title=slug.title(), slug=slug)


def write_suite(folder: Path, **files: str) -> Path:
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / "tests" / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def record_of(run: TestRun) -> runners.ProcessRecord:
    record = runners.ProcessRecord.load(Path(run.log_path).parent / runners.PROCESS_RECORD)
    assert record is not None, "the worker records the process group it started"
    return record


def assert_group_gone(pgid: int) -> None:
    """No process of the group is left, zombies included (they were reaped)."""

    def gone() -> bool:
        runners.reap_children()  # members re-parented to this process (a subreaper) once their parent died
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 10, f"process group {pgid} to be gone")
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def assert_pid_gone(pid: int) -> None:
    state = runners._stat(pid)
    assert state is None or state[0] in ("Z", "X"), f"pid {pid} is still running"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored_nodeids(run: TestRun) -> list[str]:
    return list(TestResult.objects.filter(run=run).values_list("case__nodeid", flat=True))


# -- the example target: a whole cycle ------------------------------------------------------------------------


@pytest.fixture
def staging(tmp_path):
    """A session on the example staging target, on a free port; the service is stopped afterwards."""
    port = free_port()
    env_vars = {
        "STAGING_PORT": str(port),
        "STAGING_URL": f"ws://127.0.0.1:{port}",
        "STAGING_STATE_DIR": str(tmp_path / "state"),
    }
    revisions = json.loads((STAGING_DIR / "revisions.json").read_text())
    session = make_session(
        "staging-cycle",
        STAGING_DIR,
        deploy_command=["{python}", "deploy.py", "--revision", "{revision}"],
        env_vars=env_vars,
        revisions=[{k: r[k] for k in ("revision", "commit", "message")} for r in revisions],
        default_revision="r3",
        timeout_s=900,
        deploy_timeout_s=120,
    )
    yield session
    subprocess.run(
        [sys.executable, "deploy.py", "--stop"],
        cwd=STAGING_DIR,
        env={**os.environ, **env_vars},
        capture_output=True,
        timeout=60,
    )


def collected_count(folder: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    match = re.search(r"(\d+) tests? collected", out)
    assert match, out[-2000:]
    return int(match.group(1))


@on_worker
def test_a_cycle_on_the_example_target_deploys_then_stores_every_result(staging) -> None:
    deployment, run = queueing.request_cycle(staging, revision="r3", source=TestRun.Source.API)
    assert deployment.cycle_id == run.cycle_id and run.deployment_id == deployment.pk

    deployment = ended_deployment(deployment.pk, timeout=120)
    assert deployment.status == WorkStatus.SUCCEEDED, deployment.log_tail
    assert deployment.commit_sha.startswith("e22fa359")
    assert "deployed revision=r3" in deployment.log_tail

    run = ended_run(run.pk, timeout=900)
    assert run.status == WorkStatus.FINISHED, run.log_tail
    assert run.started_at >= deployment.finished_at
    suite_size = collected_count(STAGING_DIR)
    assert suite_size >= 1000
    assert run.total == suite_size == TestResult.objects.filter(run=run).count()
    assert run.passed + run.failed + run.errors + run.skipped + run.xfailed + run.xpassed == run.total
    assert run.exitstatus in (0, 1) and not run.incomplete
    # The JUnit file pytest wrote beside the report-log names the same number of tests.
    junit = etree.parse(str(Path(run.log_path).parent / "junit.xml"))
    assert len(junit.getroot().findall(".//testcase")) == suite_size
    assert len(set(stored_nodeids(run))) == suite_size  # every result once: nothing ingested twice

    # Rerun failed: exactly the failed and errored tests of that run, nothing else.
    failing = set(
        TestResult.objects.filter(run=run, outcome__in=("failed", "error")).values_list("case__nodeid", flat=True)
    )
    assert failing, "revision r3 of the example target has known bugs"
    rerun = queueing.request_tests(staging, rerun_of=run, scope=TestRun.Scope.FAILED, source=TestRun.Source.API)
    rerun = ended_run(rerun.pk, timeout=300)
    assert rerun.status == WorkStatus.FINISHED, rerun.log_tail
    assert set(stored_nodeids(rerun)) == failing
    assert rerun.total == len(failing)


# -- selections ------------------------------------------------------------------------------------------------


@on_worker
def test_rerun_failed_runs_exactly_the_failed_and_errored_tests(tmp_path) -> None:
    session = make_session("outcomes", write_suite(tmp_path, test_outcomes=OUTCOME_TESTS))
    first = ended_run(queueing.request_tests(session).pk)
    assert first.status == WorkStatus.FINISHED and first.exitstatus == 1
    assert (first.total, first.passed, first.failed, first.errors, first.skipped, first.xfailed) == (19, 12, 3, 2, 1, 1)
    failing = set(
        TestResult.objects.filter(run=first, outcome__in=("failed", "error")).values_list("case__nodeid", flat=True)
    )
    assert len(failing) == 5

    rerun = ended_run(queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.FAILED).pk)
    assert rerun.status == WorkStatus.FINISHED
    assert set(stored_nodeids(rerun)) == failing
    assert "-p" in rerun.command and "loopdash_select" in rerun.command  # the suite's own `tests` path is narrowed

    # A chosen test (TestCase ids, never free text) runs alone.
    case_id = TestResult.objects.filter(run=first, case__nodeid__endswith="test_fails[1]").values_list(
        "case_id", flat=True
    )[0]
    single = ended_run(
        queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.SELECTED, case_ids=[case_id]).pk
    )
    assert stored_nodeids(single) == ["tests/test_outcomes.py::test_fails[1]"]


@on_worker
def test_a_long_selection_goes_through_an_argument_file(tmp_path) -> None:
    suite = """
    import pytest
    @pytest.mark.parametrize("i", range(60))
    def test_many(i):
        assert i % 2
    """
    session = make_session("many", write_suite(tmp_path, test_many=suite))
    first = ended_run(queueing.request_tests(session).pk)
    assert first.failed == 30
    rerun = ended_run(queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.FAILED).pk)
    selection_file = Path(rerun.log_path).parent / "selection.json"
    assert rerun.command[-6:-4] == ["-p", "loopdash_select"]  # then --report-log PATH, --junitxml PATH
    assert not any("test_many" in arg for arg in rerun.command)
    assert len(json.loads(selection_file.read_text())) == 30
    assert rerun.total == rerun.failed == 30


# Every separator argparse's argument files split on (str.splitlines), and the classic ones.
LINE_SEPARATORS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r\n"]


@on_worker
def test_stored_test_names_never_become_pytest_options_in_a_rerun(tmp_path) -> None:
    """Uploaded names holding line separators, or starting with ``-`` or ``@``, are rerun as data only."""
    suite = """
    import pytest
    @pytest.mark.parametrize("i", range(25))
    def test_many(i):
        assert False
    """
    session = make_session("inject", write_suite(tmp_path, test_many=suite))
    first = ended_run(queueing.request_tests(session).pk)
    assert first.failed == 25
    planted = tmp_path / "planted"
    planted.mkdir()
    argfile = planted / "args.txt"
    argfile.write_text(f"--debug={planted / 'from-argfile.log'}\n")
    hostile = [
        f"tests/test_many.py::test_x{sep}--debug={planted / f'sep-{i}.log'}" for i, sep in enumerate(LINE_SEPARATORS)
    ]
    hostile += [f"--debug={planted / 'dash.log'}", f"@{argfile}", "--co", f"tests/test_many.py::@{argfile}"]
    for nodeid in hostile:  # as an upload would store them: failed results of the first run
        case = TestCase.objects.create(
            environment=session.environment,
            nodeid=nodeid,
            nodeid_hash=hashlib.sha1(nodeid.encode()).hexdigest(),
            name=nodeid[-50:],
        )
        TestResult.objects.create(run=first, case=case, outcome="failed")

    rerun = ended_run(queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.FAILED).pk)
    assert rerun.status == WorkStatus.FINISHED, rerun.log_tail
    assert sorted(os.listdir(planted)) == ["args.txt"], "no planted option was read by pytest"
    assert not any(name in arg for arg in rerun.command for name in hostile)
    assert rerun.total == rerun.failed == 25  # the real tests ran; the planted names matched nothing
    assert set(json.loads((Path(rerun.log_path).parent / "selection.json").read_text())) >= set(hostile)

    # The same names chosen one by one, alone (a one-test rerun): still nothing but data.
    case_id = TestCase.objects.get(environment=session.environment, nodeid=f"@{argfile}").pk
    single = ended_run(
        queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.SELECTED, case_ids=[case_id]).pk
    )
    assert sorted(os.listdir(planted)) == ["args.txt"]
    assert single.total == 0 and f"@{argfile}" not in single.command


# -- timeouts, cancels, crashes ------------------------------------------------------------------------------


@on_worker
def test_a_timeout_kills_the_whole_process_group_and_keeps_partial_results(tmp_path) -> None:
    # 20 s: pytest itself takes about 5 s to start here (every installed plugin loads), and the run must
    # have stored some of its 40 s of tests before the timeout cuts it.
    session = make_session("slow", write_suite(tmp_path, conftest=SLOW_CONFTEST, test_slow=SLOW_TESTS), timeout_s=20)
    run = ended_run(queueing.request_tests(session).pk, timeout=90)
    assert run.status == WorkStatus.TIMED_OUT
    assert run.incomplete and run.summary_written
    assert 0 < run.total < 400 and run.total == TestResult.objects.filter(run=run).count(), run.log_tail
    assert "timed out after 20 s" in run.log_tail
    assert_group_gone(record_of(run).pgid)
    assert_pid_gone(int((tmp_path / "helper.pid").read_text()))


@on_worker
def test_a_cancel_kills_the_whole_process_group_and_keeps_partial_results(tmp_path) -> None:
    session = make_session("cancel", write_suite(tmp_path, conftest=SLOW_CONFTEST, test_slow=SLOW_TESTS))
    run = queueing.request_tests(session)
    wait_for(lambda: TestRun.objects.get(pk=run.pk).total >= 5, 60, "some results to be stored")
    live = TestRun.objects.get(pk=run.pk)
    assert live.status == WorkStatus.RUNNING and live.current_test.startswith("tests/test_slow.py::")
    record = record_of(live)

    cancel.cancel_run(live)
    run = ended_run(run.pk, timeout=30)
    assert run.status == WorkStatus.CANCELLED and run.incomplete
    assert 5 <= run.total < 400 and run.total == TestResult.objects.filter(run=run).count()
    assert_group_gone(record.pgid)
    assert_pid_gone(int((tmp_path / "helper.pid").read_text()))
    with pytest.raises(Refused) as refused:
        cancel.cancel_run(run)
    assert refused.value.status == 409
    # A cancelled run does not count, and the test it cut off is loopdash's doing, not the product's.
    session.refresh_from_db()
    assert not run.counted and session.latest_run_id is None
    assert not FailureSignature.objects.filter(run_counts__run=run, internal=False).exists()


@on_worker
def test_a_run_against_a_stopped_target_ends_excluded_at_once(staging) -> None:
    """The example target is not deployed (nothing listens on its port): its health check says so."""
    env = staging.environment
    env.health_check = ["{python}", "deploy.py", "--status"]
    env.save()
    run = ended_run(queueing.request_tests(staging).pk, timeout=60)
    assert run.status == WorkStatus.FINISHED and run.total == 0
    assert run.excluded and not run.counted and run.excluded_by is None
    assert run.excluded_reason.startswith("target unreachable: the health check exited 1"), run.excluded_reason
    staging.refresh_from_db()
    assert staging.latest_run_id is None
    assert "no test was run" in Path(run.log_path).read_text()


def test_a_killed_worker_takes_its_suite_with_it_and_a_page_read_marks_the_run_lost(
    tmp_path,
    django_db_setup,
    client,
    admin_user,
    settings,
) -> None:
    """No beat at all here: the run's process guard ends pytest, and the web side notices the silence."""
    settings.LOOPDASH_LOST_AFTER_S = 2
    folder = write_suite(tmp_path, conftest=SLOW_CONFTEST, test_slow=SLOW_TESTS)
    session = make_session("crash", folder)
    with running_worker(tmp_path / "worker", concurrency=1) as worker:
        run = queueing.request_tests(session)
        wait_for(lambda: TestRun.objects.get(pk=run.pk).total >= 3, 60, "some results to be stored")
        record = record_of(TestRun.objects.get(pk=run.pk))
        helper = int((folder / "helper.pid").read_text())
        worker.kill_hard()
    assert_group_gone(record.pgid)  # pytest and the helper it started ended with their worker
    assert_pid_gone(helper)

    time.sleep(2.5)  # heartbeats stopped; the bound is 2 s
    client.force_login(admin_user)
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    run = TestRun.objects.get(pk=run.pk)
    assert run.status == WorkStatus.LOST and run.summary_written and run.incomplete
    assert run.total >= 3 and run.total == TestResult.objects.filter(run=run).count()
    assert "lost: no heartbeat" in run.log_tail
    assert "the worker (pid" in Path(run.log_path).read_text()  # the guard said why it ended the group
    assert reaper.reap_lost(bound_s=2)["runs"] == 0  # nothing twice


def test_the_reaper_still_ends_orphans_on_its_own_host(tmp_path, django_db_setup) -> None:
    """The backstop when a guard itself was killed: the reaper kills the recorded group (same host)."""
    session = make_session("orphans", write_suite(tmp_path, conftest=SLOW_CONFTEST, test_slow=SLOW_TESTS))
    with running_worker(tmp_path / "worker", concurrency=1) as worker:
        run = queueing.request_tests(session)
        wait_for(lambda: TestRun.objects.get(pk=run.pk).total >= 3, 60, "some results to be stored")
        record = record_of(TestRun.objects.get(pk=run.pk))
        os.kill(record.pgid, signal.SIGSTOP)  # the guard (group leader) can no longer act
        worker.kill_hard()
    assert runners.group_alive(record.pgid)
    time.sleep(2.5)
    assert reaper.reap_lost(bound_s=2)["runs"] == 1
    run = TestRun.objects.get(pk=run.pk)
    assert run.status == WorkStatus.LOST and "orphaned process group was killed" in run.log_tail
    assert_group_gone(record.pgid)


def test_the_reaper_leaves_live_work_alone_and_ends_a_silent_deployment(tmp_path) -> None:
    from django.utils import timezone

    session = make_session("reap", tmp_path, deploy_command=["true"])
    now = timezone.now()
    beating = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=now, heartbeat_at=now,
    )  # fmt: skip
    silent = Deployment.objects.create(
        environment=session.environment, revision="r1", status=WorkStatus.RUNNING,
        started_at=now - timezone.timedelta(minutes=5), heartbeat_at=now - timezone.timedelta(minutes=5),
    )  # fmt: skip
    waiting = TestRun.objects.create(
        session=session, cycle=beating.cycle, environment=session.environment, deployment=silent,
        status=WorkStatus.QUEUED, source=TestRun.Source.UI,
    )  # fmt: skip
    counts = reaper.reap_lost()
    assert counts["runs"] == 0 and counts["deployments"] == 1
    assert TestRun.objects.get(pk=beating.pk).status == WorkStatus.RUNNING
    assert Deployment.objects.get(pk=silent.pk).status == WorkStatus.LOST
    waiting = TestRun.objects.get(pk=waiting.pk)
    assert waiting.status == WorkStatus.CANCELLED and waiting.summary_written
    assert f"deployment {silent.pk}" in waiting.log_tail


def test_a_failing_hook_after_the_summary_does_not_leave_the_run_running(tmp_path, monkeypatch) -> None:
    from django.utils import timezone

    from sessions.services import flaky

    session = make_session("hook", tmp_path)
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip

    def broken_step(*_args: object) -> None:
        raise RuntimeError("a step after the summary failed")

    monkeypatch.setattr(flaky, "record_run", broken_step)
    execution = run_execution.RunExecution(run)
    with pytest.raises(RuntimeError):
        execution.finalize(WorkStatus.FINISHED, 0)
    execution.live.finish()
    run.refresh_from_db()
    assert run.status == WorkStatus.FINISHED and run.summary_written and run.exitstatus == 0


def test_the_reaper_writes_a_summary_a_dead_worker_left_unwritten(tmp_path) -> None:
    from django.utils import timezone

    session = make_session("unwritten", tmp_path)
    long_ago = timezone.now() - timezone.timedelta(minutes=10)
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.CANCELLED, source=TestRun.Source.UI, started_at=long_ago, heartbeat_at=long_ago,
    )  # fmt: skip
    assert reaper.reap_lost()["unfinished"] == 1
    run.refresh_from_db()
    assert run.status == WorkStatus.CANCELLED and run.summary_written and run.incomplete


# -- deploys --------------------------------------------------------------------------------------------------


@on_worker
def test_two_concurrent_deploys_never_overlap(tmp_path) -> None:
    from sessions import tasks

    slow_deploy = ["{python}", "-c", "import sys, time; time.sleep(1.5); print('deployed', sys.argv[1])", "{revision}"]
    session = make_session("lock", tmp_path, deploy_command=slow_deploy, default_revision="r1")

    first = queueing.request_deploy(session, revision="r1")
    with pytest.raises(Refused) as refused:
        queueing.request_deploy(session, revision="r2")
    assert refused.value.status == 409 and f"deployment {first.pk}" in str(refused.value)
    ended_deployment(first.pk)

    # Two queued at once (as a race between two requests would leave them): the worker-side lock decides.
    pair = [
        Deployment.objects.create(environment=session.environment, revision=rev, status=WorkStatus.QUEUED)
        for rev in ("r2", "r3")
    ]
    for deployment in pair:
        tasks.deploy.delay(deployment.pk)
    a, b = (ended_deployment(d.pk) for d in pair)
    assert a.status == b.status == WorkStatus.SUCCEEDED, (a.log_tail, b.log_tail)
    assert a.finished_at <= b.started_at or b.finished_at <= a.started_at, "the two deploys overlapped"


@on_worker
def test_a_failed_deploy_stops_the_cycle_and_says_why(tmp_path) -> None:
    failing = ["{python}", "-c", "import sys; print('cannot reach the host'); sys.exit(3)"]
    session = make_session("broken-deploy", tmp_path, deploy_command=failing, default_revision="r1")
    deployment, run = queueing.request_cycle(session)
    deployment = ended_deployment(deployment.pk)
    assert deployment.status == WorkStatus.FAILED and deployment.exit_code == 3
    assert "cannot reach the host" in deployment.log_tail
    run = ended_run(run.pk, timeout=30)
    assert run.status == WorkStatus.CANCELLED and run.started_at is None and run.total == 0
    assert f"deployment {deployment.pk} of r1 ended failed (exit code 3)" in run.log_tail


@on_worker
def test_a_command_that_crashes_is_an_error_with_its_log(tmp_path) -> None:
    session = make_session(
        "crashing", tmp_path, test_command=["{python}", "-c", "import sys; print('no tests here'); sys.exit(7)"]
    )
    run = ended_run(queueing.request_tests(session).pk, timeout=30)
    assert run.status == WorkStatus.ERROR and run.incomplete and run.exitstatus == 7
    assert "no tests here" in run.log_tail


# -- the CLI ----------------------------------------------------------------------------------------------------


@on_worker
def test_trigger_waits_and_prints_the_final_status(tmp_path) -> None:
    session = make_session(
        "cli", write_suite(tmp_path, test_outcomes=OUTCOME_TESTS), deploy_command=["true"], default_revision="r9"
    )
    out = StringIO()
    call_command("trigger", "cycle", "--session", session.slug, "--wait", "--poll", "0.2", stdout=out)
    deployment = Deployment.objects.get(environment=session.environment)
    run = TestRun.objects.get(session=session)
    assert out.getvalue().splitlines() == [
        f"deployment {deployment.pk}",
        f"run {run.pk}",
        f"deployment {deployment.pk} succeeded",
        f"run {run.pk} finished",
    ]
    assert run.source == TestRun.Source.CLI


@on_worker
def test_trigger_exits_non_zero_when_the_run_did_not_finish(tmp_path) -> None:
    from django.core.management.base import CommandError

    session = make_session("cli-error", tmp_path, test_command=["{python}", "-c", "raise SystemExit(3)"])
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("trigger", "tests", "--session", session.slug, "--wait", "--poll", "0.2", stdout=out)
    assert failed.value.returncode == 1
    run = TestRun.objects.get(session=session)
    assert out.getvalue().splitlines() == [f"run {run.pk}", f"run {run.pk} error"]


@on_worker
def test_healthz_counts_the_workers_that_answer(client) -> None:
    body = client.get("/healthz").json()
    assert body["broker"] == "ok" and body["workers"] >= 1
