"""The demo goes the real way: examples/staging as a git repository, deployed and tested through checkouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from sessions.demo import loader, repository
from sessions.models import Deployment, Fix, LoopSession, TestRun, WorkStatus
from sessions.tests.test_tasks_integration import ended_deployment, ended_run, free_port
from sessions.tests.worker import celery_worker, running_worker  # noqa: F401 - the fixture
from sessions.work import queueing


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_repository_has_one_tagged_commit_per_revision_in_order(tmp_path) -> None:
    built = repository.build(tmp_path / "repo")
    revisions = [line.split(":", 1)[0] for line in git(built.path, "log", "--reverse", "--format=%s").splitlines()]
    assert revisions == list(built.commits) == [f"r{n}" for n in range(1, 8)]
    for revision, commit in built.commits.items():
        assert git(built.path, "rev-parse", f"{revision}^{{commit}}") == commit
    assert git(built.path, "status", "--porcelain") == ""  # every file of the example is committed
    files = set(git(built.path, "ls-files").splitlines())
    assert {"deploy.py", "revisions.json", "pytest.ini", "service/server.py", "CHANGELOG.md"} <= files
    assert not any("__pycache__" in name or name.startswith(".state") for name in files)


def test_the_same_files_give_the_same_commits_and_a_change_rebuilds(tmp_path) -> None:
    """A worker on another disk builds the very commits the database names (workers share no disk)."""
    first = repository.build(tmp_path / "a")
    assert repository.build(tmp_path / "b").commits == first.commits
    assert repository.ensure(tmp_path / "a").commits == first.commits  # unchanged: reused, not rebuilt

    source = tmp_path / "source"
    shutil.copytree(repository.STAGING_DIR, source, ignore=shutil.ignore_patterns("__pycache__", ".state"))
    assert repository.ensure(tmp_path / "c", source).commits == first.commits
    (source / "tests" / "test_added.py").write_text("def test_added():\n    pass\n")
    changed = repository.ensure(tmp_path / "c", source)
    assert changed.commits["r1"] != first.commits["r1"]
    assert "tests/test_added.py" in git(changed.path, "ls-files")


@pytest.mark.django_db
def test_the_demo_environment_names_the_repository_and_its_commits() -> None:
    session = loader.load(lambda line: None)
    env = session.environment
    suite = repository.ensure()
    assert env.repository == str(repository.repository_path()) == str(suite.path)
    assert {r["revision"]: r["commit"] for r in env.revisions} == suite.commits
    assert env.env_vars["STAGING_STATE_DIR"] == str(loader.staging_state_dir())
    for deployment in Deployment.objects.filter(environment=env):
        assert deployment.commit_sha == suite.commits[deployment.revision]
    # Fixes follow git on the demo too: the verified fix is an ancestor of (or is) the last deploy.
    verified = Fix.objects.filter(status=Fix.Status.VERIFIED, analysis__signature__environment=env).first()
    assert verified is not None
    last = loader.deployed_revision()
    assert last == ("r7", suite.commits["r7"])
    ancestor = subprocess.run(["git", "-C", str(suite.path), "merge-base", "--is-ancestor", verified.sha, last[1]])
    assert ancestor.returncode == 0


@pytest.mark.django_db
def test_a_worker_missing_the_demo_repository_builds_the_same_one() -> None:
    session = loader.load(lambda line: None)
    commits = {r["revision"]: r["commit"] for r in session.environment.revisions}
    shutil.rmtree(repository.repository_path())
    repository.ensure_for_worker()
    assert repository.ensure().commits == commits


@pytest.fixture
def demo_on_own_port(tmp_path):
    """The demo's environment as `load_demo` writes it, but its target on a free port with its own state."""
    from sessions.demo.loader import ensure_environment, ensure_users

    ensure_users()
    env = ensure_environment()
    port = free_port()
    env.env_vars = {
        "STAGING_PORT": str(port),
        "STAGING_URL": f"ws://127.0.0.1:{port}",
        "STAGING_STATE_DIR": str(tmp_path / "state"),
    }
    env.save(update_fields=["env_vars"])
    session = LoopSession.objects.create(environment=env, title="Demo through git", slug="demo-git")
    yield session
    subprocess.run(
        [sys.executable, str(repository.STAGING_DIR / "deploy.py"), "--stop"],
        env={**os.environ, **env.env_vars},
        capture_output=True,
        timeout=60,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_demo_deploy_and_run_go_through_a_checkout_of_the_tagged_commit(demo_on_own_port) -> None:
    session = demo_on_own_port
    commits = {r["revision"]: r["commit"] for r in session.environment.revisions}
    deployment = queueing.request_deploy(session, revision="r7")
    deployment = ended_deployment(deployment.pk, timeout=120)
    assert deployment.status == WorkStatus.SUCCEEDED, deployment.log_tail
    assert deployment.commit_sha == commits["r7"]
    assert f"checked out {commits['r7'][:12]} (r7)" in deployment.log_tail
    assert f"deployed revision=r7 commit={commits['r7']}" in deployment.log_tail
    # The target outlived the checkout it was deployed from: it runs from its installed release.
    state = Path(session.environment.env_vars["STAGING_STATE_DIR"])
    assert (state / f"release-{session.environment.env_vars['STAGING_PORT']}" / "service").is_dir()

    run = queueing.request_tests(session, marker="p1", source=TestRun.Source.API)
    run = ended_run(run.pk, timeout=300)
    assert run.status == WorkStatus.FINISHED, run.log_tail
    assert run.commit == commits["r7"]
    assert run.total >= 25 and run.failed == run.errors == 0  # r7 is the green revision
    assert not list((Path(settings.VAR_DIR) / "checkouts").glob("run-*"))  # removed when the run ended
