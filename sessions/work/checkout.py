"""The suite from a repository, on a worker: its mirror, the commit's checkout, the setup, the cleanup.

Like a CI agent: each worker keeps a bare mirror of the environment's repository under
``LOOPDASH_VAR_DIR/git/`` (a blob-less partial clone for a remote URL: commits and trees come
at once, file contents only for the commits checked out), fetches it under a file lock (two runs on
one machine never fetch at once; a commit already in the mirror needs no fetch at all), and checks
the run's commit out with ``git worktree add --detach`` into a folder of its own under
``LOOPDASH_VAR_DIR/checkouts/`` — named after the row and the commit, so two runs never share one.
``setup_command`` then runs in the checkout's ``working_dir``; what it builds goes into
``{setup_dir}`` (``LOOPDASH_SETUP_DIR``), a folder under ``LOOPDASH_VAR_DIR/setup/<environment>/``
named by the hash of the setup command and the contents of ``setup_cache_files`` (the commit when
none of them exists), so it is built once and reused while those files are unchanged.

Every checkout folder has an owner file (the worker process's pid and start time) beside it; the
folder is removed when its run ends, and folders whose owner process is gone (a killed worker) are
removed when a worker starts (``worker_ready``) and before each checkout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from . import git, runners

log = logging.getLogger(__name__)

SETUP_DONE = ".loopdash-setup-done"
SETUP_KEEP = 5  # setup folders kept per environment (the newest used); older ones are removed
OWNER_SUFFIX = ".owner"


class CheckoutError(runners.CommandError):
    """The suite could not be made ready (repository unreachable, ref unknown, setup failed): one line."""


class SetupStopped(Exception):
    """The row stopped being ``running`` (cancelled, lost) while the setup ran: its group was killed."""


@dataclass(slots=True)
class Checkout:
    root: Path  # the fresh folder holding the commit
    commit: str
    cwd: Path  # working_dir inside it
    setup_dir: Path | None = None
    mirror: Path | None = None


def var_dir(*parts: str) -> Path:
    path = Path(settings.VAR_DIR).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one machine (released if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mirror_path(repository: str) -> Path:
    """The mirror's folder: named by a hash of the URL (which may hold a token), never the URL itself."""
    return var_dir("git") / (hashlib.sha256(repository.encode()).hexdigest()[:20] + ".git")


def _has_commit(mirror: Path, ref: str) -> str:
    done = git.run(
        ["-C", str(mirror), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def fetch(repository: str, ref: str, commit: str, note: Callable[[str], None]) -> tuple[Path, str]:
    """The mirror, fetched as needed, and the full commit of ``commit`` (else of ``ref``) in it.

    A known commit already in the mirror needs no network. Otherwise branches and tags are fetched
    (pruned), then, if the commit is still missing, the commit itself (servers allow fetching a
    commit by id when it is reachable). Raises CheckoutError naming what could not be found.
    """
    repository = git.check_repository(repository)
    shown = git.mask(repository)
    mirror = mirror_path(repository)
    with file_lock(mirror.with_suffix(".lock")):
        try:
            if not (mirror / "HEAD").exists():
                shutil.rmtree(mirror, ignore_errors=True)
                note(f"cloning {shown} (a mirror of its own on this worker)")
                args = ["clone", "--bare", "--no-tags"]
                if git.is_remote(repository):
                    args += ["--filter=blob:none"]
                git.run([*args, "--end-of-options", repository, str(mirror)], timeout=git.REMOTE_TIMEOUT_S)
            git.run(["-C", str(mirror), "worktree", "prune"])
            found = _has_commit(mirror, commit) if commit and git.SHA_RE.match(commit) else ""
            if not found:
                note(f"fetching {shown}")
                git.run(
                    ["-C", str(mirror), "fetch", "--prune", "--force", "--end-of-options", repository]
                    + ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                    timeout=git.REMOTE_TIMEOUT_S,
                )
                wanted = commit or ref or "HEAD"
                found = _has_commit(mirror, wanted)
                if not found and commit and git.FULL_SHA_RE.match(commit):
                    git.run(
                        ["-C", str(mirror), "fetch", "--end-of-options", repository, commit],
                        timeout=git.REMOTE_TIMEOUT_S,
                        check=False,
                    )
                    found = _has_commit(mirror, commit)
            if not found:
                raise CheckoutError(f"unknown revision {commit or ref or 'HEAD'!r} in {shown}")
        except git.GitError as exc:
            raise CheckoutError(f"could not fetch {shown}: {exc}") from None
    return mirror, found


# -- the checkout folder -------------------------------------------------------------------------------------


def _owner_alive(owner: Path) -> bool:
    try:
        data = json.loads(owner.read_text())
        pid, ticks = int(data["pid"]), data.get("start_ticks")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if data.get("host", socket.gethostname()) != socket.gethostname():
        return True  # another machine's folder (a shared disk): not ours to judge
    if pid == os.getpid():
        return True
    now = runners.process_start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def clean_leftovers() -> int:
    """Remove checkout folders whose worker process is gone (killed mid-run); how many were removed."""
    base = var_dir("checkouts")
    removed = 0
    for entry in list(base.iterdir()):
        if entry.name.endswith(OWNER_SUFFIX):
            if not (base / entry.name.removesuffix(OWNER_SUFFIX)).exists() and not _owner_alive(entry):
                entry.unlink(missing_ok=True)
            continue
        owner = base / (entry.name + OWNER_SUFFIX)
        if entry.is_dir() and not _owner_alive(owner):
            shutil.rmtree(entry, ignore_errors=True)
            owner.unlink(missing_ok=True)
            removed += 1
    if removed:
        for mirror in var_dir("git").glob("*.git"):
            with contextlib.suppress(git.GitError):
                git.run(["-C", str(mirror), "worktree", "prune"])
        log.info("removed %d checkout folder(s) left by a worker that is gone", removed)
    return removed


def _new_folder(kind: str, pk: int, commit: str) -> Path:
    """A folder name no other run can have: the row, the commit, and random letters (a redelivery too)."""
    base = var_dir("checkouts")
    folder = base / f"{kind}-{pk}-{commit[:12]}-{secrets.token_hex(3)}"
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "start_ticks": runners.process_start_ticks(os.getpid())}
    (base / (folder.name + OWNER_SUFFIX)).write_text(json.dumps(owner))
    return folder


def check_out(mirror: Path, commit: str, kind: str, pk: int, working_dir: str) -> Checkout:
    """The commit in a fresh folder (a detached worktree of the mirror), and working_dir inside it."""
    folder = _new_folder(kind, pk, commit)
    try:
        with file_lock(mirror.with_suffix(".lock")):
            git.run(
                ["-C", str(mirror), "worktree", "add", "--detach", "--force", str(folder), commit],
                timeout=git.REMOTE_TIMEOUT_S,  # a partial clone fetches the commit's files now
            )
    except git.GitError as exc:
        release(Checkout(root=folder, commit=commit, cwd=folder, mirror=mirror))
        raise CheckoutError(f"could not check out {commit[:12]}: {exc}") from None
    cwd = (folder / (working_dir or ".")).resolve()
    if not cwd.is_relative_to(folder.resolve()) or not cwd.is_dir():
        release(Checkout(root=folder, commit=commit, cwd=folder, mirror=mirror))
        raise CheckoutError(f"working directory {working_dir!r} does not exist in commit {commit[:12]}")
    return Checkout(root=folder, commit=commit, cwd=cwd, mirror=mirror)


def contained(mirror: Path, commit: str, candidates: Iterable[str]) -> set[str]:
    """The candidates (commit ids, full or abbreviated) that ``commit`` contains: itself or its ancestors.

    A fix is deployed by any deploy of a commit that descends from it, not only by a deploy of the fix
    commit itself. Only the worker has the repository, so it answers this while the deploy's mirror is
    at hand; a candidate the mirror does not know is not contained.
    """
    found = set()
    for sha in candidates:
        if (
            git.SHA_RE.match(sha)
            and git.run(["-C", str(mirror), "merge-base", "--is-ancestor", sha, commit], check=False).returncode == 0
        ):
            found.add(sha)
    return found


def release(checkout: Checkout | None) -> None:
    """Remove the run's folder (and its worktree entry in the mirror); never raises."""
    if checkout is None:
        return
    shutil.rmtree(checkout.root, ignore_errors=True)
    (checkout.root.parent / (checkout.root.name + OWNER_SUFFIX)).unlink(missing_ok=True)
    if checkout.mirror is not None:
        with contextlib.suppress(git.GitError, OSError), file_lock(checkout.mirror.with_suffix(".lock")):
            git.run(["-C", str(checkout.mirror), "worktree", "prune"])


# -- the setup -------------------------------------------------------------------------------------------------


def setup_key(command: list, cache_files: list, checkout: Checkout) -> str:
    """What decides reuse: the setup command and the named files' contents (the commit when none exists)."""
    digest = hashlib.sha256(json.dumps(command).encode())
    present = 0
    for name in cache_files or []:
        path = (checkout.cwd / str(name)).resolve()
        digest.update(f"\0{name}\0".encode())
        if path.is_file() and path.is_relative_to(checkout.root.resolve()):  # never a file outside the checkout
            digest.update(path.read_bytes())
            present += 1
    if not present:
        digest.update(f"\0commit\0{checkout.commit}".encode())
    return digest.hexdigest()[:24]


def _prune_setups(base: Path, keep: Path) -> None:
    folders = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[SETUP_KEEP:]:
        if old != keep and time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)


def run_setup(
    checkout: Checkout,
    *,
    env_id: int,
    command: list,
    cache_files: list,
    expand: Callable[[list, str], list[str]],
    child_env: dict[str, str],
    log_path: Path,
    record_path: Path,
    timeout_s: float,
    tick: Callable[[], bool],
) -> None:
    """Build ``{setup_dir}`` once per key (under a lock: a second run waits, then reuses it)."""
    base = var_dir("setup", str(env_id))
    key = setup_key(command, cache_files, checkout)
    target = base / key
    checkout.setup_dir = target
    child_env["LOOPDASH_SETUP_DIR"] = str(target)
    with file_lock(base / f"{key}.lock"):
        if (target / SETUP_DONE).exists():
            os.utime(target)
            runners.append_log(log_path, f"setup reused: {target.name} (the files it depends on are unchanged)")
            return
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        args = expand(command, str(target))
        runners.append_log(log_path, f"setup: {' '.join(git.mask_args(args))}")
        proc = runners.GroupProcess(args, cwd=checkout.cwd, env=child_env, log_path=log_path, record_path=record_path)
        proc.start()
        try:
            ending = runners.supervise(proc, timeout_s=timeout_s, tick=tick)
        finally:
            proc.finish()
        if ending == runners.STOPPED:
            raise SetupStopped()
        if ending == runners.TIMED_OUT or proc.returncode != 0:
            how = f"timed out after {timeout_s:.0f} s" if ending == runners.TIMED_OUT else f"exited {proc.returncode}"
            last = (runners.read_tail(log_path, max_lines=3).splitlines() or [""])[-1].strip()
            shutil.rmtree(target, ignore_errors=True)
            raise CheckoutError(f"setup_command {how}" + (f" ({git.mask(last)[:200]})" if last else ""))
        (target / SETUP_DONE).write_text(checkout.commit + "\n")
    _prune_setups(base, target)


def prepare(
    *,
    repository: str,
    ref: str,
    commit: str,
    kind: str,
    pk: int,
    working_dir: str,
    log_path: Path,
) -> Checkout:
    """Fetch as needed and check the commit (else the ref, else the default branch) out into a fresh folder."""
    clean_leftovers()
    note = lambda text: runners.append_log(log_path, text)  # noqa: E731
    mirror, found = fetch(repository, ref, commit, note)
    checkout = check_out(mirror, found, kind, pk, working_dir)
    note(f"checked out {found[:12]} ({ref or 'default branch'}) into {checkout.root.name}")
    return checkout


def one_line(text: str) -> str:
    """A reason as the page shows it: one line, masked, bounded."""
    return re.sub(r"\s+", " ", git.mask(text)).strip()[:480]
