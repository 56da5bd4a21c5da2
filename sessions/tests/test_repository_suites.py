"""The suite from a repository: real git repositories made in the test, a real Celery worker.

Each test builds a tiny pytest suite in a ``git init`` folder, commits versions of it whose tests
differ, and points an environment's ``repository`` at it. The worker fetches its own mirror, checks
the commit out into a fresh folder, runs ``setup_command`` (reused while the lock file is unchanged)
and the tests there, and removes the folder. Refusals happen before anything is queued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from sessions.models import (
    DEPLOY_FINAL_STATUSES,
    LIVE_STATUSES,
    Analysis,
    Cycle,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    LoopSession,
    TestResult,
    TestRun,
    WorkStatus,
)
from sessions.selectors.api_json import run_as_json
from sessions.services.tokens import issue_token
from sessions.tests.worker import celery_worker, running_worker  # noqa: F401 - the fixture
from sessions.work import checkout, git, queueing, runners
from sessions.work.errors import Refused

PYTEST = ["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
SUITE_A = """
def test_one():
    pass

def test_two():
    assert 1 + 1 == 3, "arithmetic is broken at A"
"""
SUITE_B = """
def test_one():
    pass

def test_two():
    assert 1 + 1 == 2

def test_three():
    pass
"""
SUITE_C = (
    SUITE_B
    + """
def test_four():
    pass
"""
)
SETUP_CHECK = """
import os

def test_the_setup_dir_was_built():
    assert open(os.path.join(os.environ["LOOPDASH_SETUP_DIR"], "built")).read() == "yes"
"""
PASSWORD = "s3cret-Pa55word"
UNREACHABLE = f"https://alice:{PASSWORD}@127.0.0.1:9/team/app.git"  # the discard port: connection refused


# -- helpers -------------------------------------------------------------------------------------------------


def sh_git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    """Write the files, commit them all; the new commit's id."""
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", message)
    return sh_git(repo, "rev-parse", "HEAD")


def make_repo(folder: Path) -> tuple[Path, str, str]:
    """A repository whose tag v1 (commit A) has a failing test and whose main (commit B) fixes it and adds one."""
    repo = folder / "product"
    repo.mkdir(parents=True)
    sh_git(repo, "init", "-q", "-b", "main")
    first = commit(
        repo, "A", {"pytest.ini": "[pytest]\n", "requirements.txt": "pytest\n", "tests/test_app.py": SUITE_A}
    )
    sh_git(repo, "tag", "v1")
    second = commit(repo, "B", {"tests/test_app.py": SUITE_B})
    return repo, first, second


def make_session(slug: str, repository: str, **fields: object) -> LoopSession:
    env = Environment.objects.create(
        name=slug,
        repository=repository,
        test_command=PYTEST,
        deploy_command=["{python}", "-c", "import sys; print('deploying', sys.argv[1:])", "{revision}", "{commit}"],
        timeout_s=300,
        deploy_timeout_s=120,
        **fields,
    )
    return LoopSession.objects.create(environment=env, title=slug.title(), slug=slug)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ended_run(pk: int) -> TestRun:
    def check() -> TestRun | None:
        run = TestRun.objects.get(pk=pk)
        return run if run.status not in LIVE_STATUSES and run.summary_written else None

    return wait_for(check, 180, f"run {pk} to end")  # type: ignore[return-value]


def ended_deployment(pk: int) -> Deployment:
    def check() -> Deployment | None:
        row = Deployment.objects.get(pk=pk)
        return row if row.status in DEPLOY_FINAL_STATUSES and row.finished_at else None

    return wait_for(check, 180, f"deployment {pk} to end")  # type: ignore[return-value]


def deploy(session: LoopSession, revision: str | None = None) -> Deployment:
    deployment = ended_deployment(queueing.request_deploy(session, revision=revision).pk)
    assert deployment.status == WorkStatus.SUCCEEDED, deployment.log_tail
    return deployment


def run_tests(session: LoopSession, revision: str | None = None) -> TestRun:
    return ended_run(queueing.request_tests(session, revision=revision).pk)


def outcomes(run: TestRun) -> dict[str, str]:
    rows = TestResult.objects.filter(run=run).values_list("case__nodeid", "outcome")
    return {nodeid.rsplit("::", 1)[-1]: outcome for nodeid, outcome in rows}


def checkout_folders(kind: str, pk: int) -> list[Path]:
    return [p for p in checkout.var_dir("checkouts").glob(f"{kind}-{pk}-*") if not p.name.endswith(".owner")]


# -- without a worker: refusals and masks ---------------------------------------------------------------------


def test_a_password_in_a_url_is_masked() -> None:
    assert git.mask(UNREACHABLE) == "https://alice:***@127.0.0.1:9/team/app.git"
    assert git.mask("fatal: https://ghp_TOKEN@github.com/x.git") == "fatal: https://***@github.com/x.git"
    assert git.mask("ssh://git@host/x.git") == "ssh://git@host/x.git"


def test_refs_resolve_in_a_local_repository(tmp_path: Path) -> None:
    repo, first, second = make_repo(tmp_path)
    assert git.resolve(str(repo), "v1") == ("v1", first)
    assert git.resolve(str(repo), "HEAD") == ("main", second)
    assert git.resolve(str(repo), first[:10]) == (first[:10], first)
    assert git.resolve(str(repo), "no-such-branch") == ("no-such-branch", "")
    with pytest.raises(git.GitError, match="is not a git ref"):
        git.resolve(str(repo), "--upload-pack=touch x")


@pytest.mark.django_db
def test_an_unknown_ref_is_refused_before_anything_is_queued(tmp_path: Path, operator) -> None:
    repo, _first, _second = make_repo(tmp_path)
    session = make_session("unknown-ref", str(repo))
    cycles = Cycle.objects.count()
    with pytest.raises(Refused) as refused:
        queueing.request_deploy(session, revision="release-9")
    assert refused.value.status == 400 and "unknown revision 'release-9'" in str(refused.value)
    with pytest.raises(Refused, match="unknown revision 'nope'"):
        queueing.request_tests(session, revision="nope")
    with pytest.raises(CommandError, match="unknown revision 'nope'"):
        call_command("trigger", "tests", "--session", session.slug, "--revision", "nope")
    token = issue_token(operator)
    response = Client().post(
        f"/api/v1/sessions/{session.slug}/trigger",
        {"action": "cycle", "revision": "gone"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400 and "unknown revision 'gone'" in response.json()["error"]
    assert not TestRun.objects.exists() and not Deployment.objects.exists() and Cycle.objects.count() == cycles


@pytest.mark.django_db
def test_a_revision_for_tests_needs_a_repository(tmp_path: Path) -> None:
    env = Environment.objects.create(name="plain", working_dir=str(tmp_path), test_command=PYTEST)
    session = LoopSession.objects.create(environment=env, title="Plain", slug="plain")
    with pytest.raises(Refused, match="has no repository"):
        queueing.request_tests(session, revision="main")
    assert not TestRun.objects.exists()


# -- on a worker ---------------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_each_run_runs_the_suite_of_its_commit(tmp_path: Path, viewer) -> None:
    repo, first, second = make_repo(tmp_path)
    session = make_session("repo-suite", str(repo))

    at_a = deploy(session, "v1")
    assert (at_a.revision, at_a.commit_sha) == ("v1", first)
    assert at_a.command[-2:] == ["v1", first]  # {revision} and {commit}
    run_a = run_tests(session)
    assert run_a.status == WorkStatus.FINISHED, run_a.log_tail
    # counting is the pipeline's step after the summary: wait for it rather than read between the two
    wait_for(lambda: TestRun.objects.filter(pk=run_a.pk, counted=True).exists(), 30, "run A to count")
    assert (run_a.revision, run_a.commit) == ("v1", first)
    assert outcomes(run_a) == {"test_one": "passed", "test_two": "failed"}

    at_b = deploy(session)  # no revision: the head of the default branch
    assert (at_b.revision, at_b.commit_sha) == ("main", second)
    run_b = run_tests(session)
    assert run_b.commit == second and run_b.failed == 0
    assert outcomes(run_b) == {"test_one": "passed", "test_two": "passed", "test_three": "passed"}
    sharded = ended_run(queueing.request_tests(session, shards=2).pk)  # each shard checks the commit out
    assert sharded.commit == second and sharded.total == 3 and sharded.failed == 0, sharded.log_tail

    third = commit(repo, "C", {"tests/test_app.py": SUITE_C})  # pushed after: the next deploy takes it
    assert deploy(session).commit_sha == third
    assert ended_run(queueing.request_cycle(session)[1].pk).total == 4

    older = run_tests(session, "v1")  # the suite of a ref, without deploying
    assert older.commit == first and set(outcomes(older)) == {"test_one", "test_two"}
    assert Deployment.objects.filter(environment=session.environment).count() == 4

    for run in (run_a, run_b, older):
        assert not checkout_folders("run", run.pk), "the checkout is removed when the run ends"
    assert json.loads(json.dumps(run_as_json(run_b)))["commit"] == second
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/runs/{run_a.pk}/").content.decode()
    assert f'<code id="run-commit">{first[:12]}</code>' in page


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_fix_is_deployed_by_any_deploy_of_a_commit_that_contains_it(tmp_path: Path) -> None:
    repo, first, second = make_repo(tmp_path)
    session = make_session("repo-fixes", str(repo))
    signature = FailureSignature.objects.create(
        environment=session.environment, fingerprint="f" * 40, normalized="AssertionError: arithmetic", title="math"
    )
    analysis = Analysis.objects.create(signature=signature, problem="1 + 1 is 3 at A")
    fix_in_b = Fix.objects.create(analysis=analysis, sha=second[:10])  # abbreviated, as people paste them
    elsewhere = Fix.objects.create(analysis=analysis, sha="0123456789abcdef")  # a commit the repository lacks

    at_a = deploy(session, "v1")  # A does not contain B
    fix_in_b.refresh_from_db()
    assert fix_in_b.status == Fix.Status.PENDING

    sh_git(repo, "checkout", "-q", "-b", "later")
    third = commit(repo, "C", {"tests/test_app.py": SUITE_C})
    at_c = deploy(session, "later")  # C descends from B: it carries B's fix
    assert at_c.commit_sha == third and at_a.commit_sha == first
    fix_in_b.refresh_from_db()
    elsewhere.refresh_from_db()
    assert (fix_in_b.status, fix_in_b.deployment_id) == (Fix.Status.DEPLOYED, at_c.pk)
    assert elsewhere.status == Fix.Status.PENDING
    assert list(at_c.fixes.all()) == [fix_in_b]  # what the deployment page lists as the fixes it carried


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_the_setup_is_reused_while_the_lock_file_is_unchanged(tmp_path: Path) -> None:
    repo, _first, _second = make_repo(tmp_path)
    commit(repo, "setup check", {"tests/test_setup.py": SETUP_CHECK})
    counter = tmp_path / "setups.txt"
    script = (
        "import os, sys; open(os.path.join(sys.argv[1], 'built'), 'w').write('yes'); "
        "open(sys.argv[2], 'a').write(open('requirements.txt').read())"
    )
    session = make_session(
        "repo-setup",
        str(repo),
        setup_command=["{python}", "-c", script, "{setup_dir}", str(counter)],
        setup_cache_files=["requirements.txt"],
    )

    first = run_tests(session)
    assert first.status == WorkStatus.FINISHED and first.passed == 4, first.log_tail
    second = run_tests(session)
    assert "setup reused" in Path(second.log_path).read_text()
    commit(repo, "tests only", {"tests/test_more.py": "def test_more():\n    pass\n"})
    third = run_tests(session)
    assert third.total == 5 and third.commit != first.commit
    assert counter.read_text() == "pytest\n", "one setup while requirements.txt did not change"

    commit(repo, "new dependency", {"requirements.txt": "pytest\nrequests\n"})
    fourth = run_tests(session)
    assert fourth.passed == 5, fourth.log_tail
    assert counter.read_text() == "pytest\npytest\nrequests\n", "the setup runs again when the lock file changes"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_failing_setup_ends_the_run_uncounted(tmp_path: Path) -> None:
    repo, _first, _second = make_repo(tmp_path)
    session = make_session(
        "repo-bad-setup", str(repo), setup_command=["{python}", "-c", "raise SystemExit('no compiler here')"]
    )
    run = run_tests(session)
    assert run.status == WorkStatus.ERROR and not run.counted and run.excluded
    assert run.excluded_reason.startswith("suite not ready: setup_command exited 1")
    assert "no compiler here" in run.log_tail and run.total == 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_an_unreachable_repository_ends_the_work_with_a_reason_and_no_password(viewer) -> None:
    session = make_session("repo-unreachable", UNREACHABLE)
    run = run_tests(session)  # the web side could not reach it either: the worker's fetch decides
    assert run.status == WorkStatus.ERROR and not run.counted and run.excluded
    assert "\n" not in run.excluded_reason
    assert run.excluded_reason.startswith("suite not ready: could not fetch https://alice:***@127.0.0.1:9/")
    deployment = ended_deployment(queueing.request_deploy(session).pk)
    assert deployment.status == WorkStatus.FAILED
    assert "not deployed: could not fetch https://alice:***@127.0.0.1:9/" in deployment.log_tail
    client = Client()
    client.force_login(viewer)
    seen = [
        json.dumps(run.command),
        run.log_tail,
        Path(run.log_path).read_text(),
        run.excluded_reason,
        json.dumps(run_as_json(run)),
        client.get(f"/runs/{run.pk}/").content.decode(),
        deployment.log_tail,
        json.dumps(deployment.command),
        client.get(f"/deployments/{deployment.pk}/").content.decode(),
    ]
    assert all(PASSWORD not in text for text in seen)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_checkout_folders_left_by_a_killed_worker_are_removed_when_a_worker_starts(tmp_path: Path) -> None:
    base = checkout.var_dir("checkouts")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    left = base / "run-999999-0123456789ab-dead00"
    (left / "tests").mkdir(parents=True)
    (base / (left.name + checkout.OWNER_SUFFIX)).write_text(json.dumps({"pid": dead_pid, "start_ticks": 1}))
    mine = base / "run-999998-0123456789ab-live00"  # its owner (this process) is alive: kept
    mine.mkdir()
    ticks = runners.process_start_ticks(os.getpid())
    (base / (mine.name + checkout.OWNER_SUFFIX)).write_text(json.dumps({"pid": os.getpid(), "start_ticks": ticks}))
    try:
        with running_worker(tmp_path / "worker", concurrency=1):
            wait_for(lambda: not left.exists(), 30, "the leftover checkout to be removed")
            assert mine.is_dir()
            assert not (base / (left.name + checkout.OWNER_SUFFIX)).exists()
    finally:
        checkout.release(checkout.Checkout(root=mine, commit="", cwd=mine))
    assert Path(settings.VAR_DIR) in base.parents
