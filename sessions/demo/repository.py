"""The demo's suite as a git repository: examples/staging, one tagged commit per revision (r1 ... r7).

So that a newcomer's first cycle goes the way a team's own will: the demo environment names this
repository, a deploy resolves ``r3`` to a commit, and a test run checks that commit out into a folder
of its own on the worker (``sessions/work/checkout.py``). The example target keeps its own way of
switching revisions (``revisions.json`` turns its bugs on and off); the commits differ by the
changelog each adds, and they are what the pages and the fix lifecycle see.

The repository is **deterministic**: the same files give the same commit ids on every machine
(fixed author, committer and dates), so a worker on another disk that builds it from the same image
(``ensure_for_worker``) holds exactly the commits the database names. It is rebuilt only when the
files of examples/staging change (a fingerprint of them is kept beside it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings

from ..models import Environment
from ..work import git

STAGING_DIR = Path(settings.BASE_DIR) / "examples" / "staging"
AUTHOR = ("loopdash demo", "demo@loopdash.invalid")
FIRST_DATE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # one revision a day from here
_SKIPPED_DIRS = {"__pycache__", ".state", ".pytest_cache"}


@dataclass(frozen=True, slots=True)
class DemoRepository:
    path: Path
    commits: dict[str, str]  # revision (tag) -> commit id


def repository_path() -> Path:
    """Where the demo repository lives: under the var dir, beside the workers' mirrors and checkouts."""
    return Path(settings.VAR_DIR).resolve() / "demo" / "staging-repo"


def source_files(source: Path = STAGING_DIR) -> list[Path]:
    """The example's files as committed: no caches, no deploy state, no compiled files."""
    found = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix != ".pyc":
            found.append(relative)
    return found


def fingerprint(source: Path = STAGING_DIR) -> str:
    """What decides a rebuild: every file's path, mode and bytes, and the revisions' catalogue."""
    digest = hashlib.sha256()
    for relative in source_files(source):
        path = source / relative
        digest.update(f"{relative.as_posix()}\0{path.stat().st_mode & 0o111:o}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _git(path: Path, *args: str, when: datetime | None = None) -> str:
    """``git -C path args`` with the fixed identity and date that make commit ids reproducible."""
    extra = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    if when is not None:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
        extra |= {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    name, email = AUTHOR
    command = ["git", "-c", f"user.name={name}", "-c", f"user.email={email}", "-c", "commit.gpgsign=false"]
    command += ["-c", "tag.gpgsign=false", "-c", "core.autocrlf=false", "-C", str(path), *args]
    done = subprocess.run(
        command, env=git.environment(extra), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise git.GitError(f"git {args[0]} failed while building the demo repository: {git.last_line(done.stderr)}")
    return done.stdout.strip()


def _changelog(revisions: list[dict], upto: int) -> str:
    lines = ["# Changelog of the example staging service", ""]
    lines += [f"- {r['revision']}: {r.get('message', '')}" for r in reversed(revisions[: upto + 1])]
    return "\n".join(lines) + "\n"


def build(path: Path, source: Path = STAGING_DIR) -> DemoRepository:
    """Make the repository from scratch: the example's files, then one commit and tag per revision."""
    revisions = json.loads((source / "revisions.json").read_text(encoding="utf-8"))
    scratch = path.with_name(path.name + ".building")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    _git(scratch, "init", "--quiet", "--initial-branch=main")
    for relative in source_files(source):
        target = scratch / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target)
    commits = {}
    for index, entry in enumerate(revisions):
        (scratch / "CHANGELOG.md").write_text(_changelog(revisions, index), encoding="utf-8")
        _git(scratch, "add", "--all")
        when = FIRST_DATE + timedelta(days=index)
        message = f"{entry['revision']}: {entry.get('message', '')}".strip()
        _git(scratch, "commit", "--quiet", "--allow-empty", "-m", message, when=when)
        _git(scratch, "tag", entry["revision"], when=when)
        commits[entry["revision"]] = _git(scratch, "rev-parse", "HEAD")
    (scratch / ".git" / "loopdash-demo.json").write_text(json.dumps({"fingerprint": fingerprint(source), **commits}))
    shutil.rmtree(path, ignore_errors=True)
    scratch.rename(path)
    return DemoRepository(path=path, commits=commits)


def ensure(path: Path | None = None, source: Path = STAGING_DIR) -> DemoRepository:
    """The demo repository, built when missing or when examples/staging changed since it was built."""
    path = path or repository_path()
    marker = path / ".git" / "loopdash-demo.json"
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded and recorded.pop("fingerprint", None) == fingerprint(source):
        return DemoRepository(path=path, commits=recorded)
    return build(path, source)


def ensure_for_worker() -> None:
    """A worker whose disk lacks the demo repository that an environment names builds it (same ids).

    Workers share no disk with the web (docker-compose): the demo's repository, made by ``load_demo``
    on the web's disk, is made again here from the same files, which gives the same commits.
    """
    path = repository_path()
    if not (path / ".git").exists() and Environment.objects.filter(repository=str(path)).exists():
        ensure(path)
