"""The git command line, run as argument lists: refs, URLs and masks.

Used by the web side (resolving a ref before anything is queued) and by workers (``work.checkout``).
Every call is ``git`` plus fixed options plus single arguments, never a shell; a ref or a URL is one
argument and may never start with ``-`` (``--end-of-options`` also stops git from reading one as an
option). Git never prompts (``GIT_TERMINAL_PROMPT=0``, ssh in batch mode) and every call has a
timeout, so a private repository without credentials fails at once instead of hanging a worker.
Credentials come only from the process's own environment (SSH agent, credential helper, the
``GIT_*`` variables); a password written into a repository URL is masked in every message.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from . import runners

# A ref as a user types it: a branch, a tag, a commit (full or abbreviated), HEAD. No leading dash,
# no spaces, no ".." (a range), no "@{" (reflog syntax), no control characters.
REF_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/+@-]{1,100}$")
SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_URL_PASSWORD_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*)(?P<password>:[^/@\s]*)?@")
REMOTE_TIMEOUT_S = 120.0  # a fetch or a clone on a worker
RESOLVE_TIMEOUT_S = 15.0  # ls-remote on the web side: a request must not wait longer
LOCAL_TIMEOUT_S = 60.0  # rev-parse, worktree, merge-base: no network


class GitError(RuntimeError):
    """A git command that failed: the message is one line, any password masked."""


def mask(text: str) -> str:
    """``https://user:secret@host/x`` becomes ``https://user:***@host/x``; ``https://TOKEN@host`` ``https://***@host``.

    A user part alone over http(s) is usually a token; over ssh (``ssh://git@host``) it is a login name.
    """

    def hide(match: re.Match[str]) -> str:
        scheme, user = match.group("scheme"), match.group("user")
        if match.group("password") is not None:
            return f"{scheme}{user}:***@"
        if scheme.lower().startswith("http"):
            return f"{scheme}***@"
        return match.group(0)

    return _URL_PASSWORD_RE.sub(hide, text)


def mask_args(args: Sequence[str]) -> list[str]:
    return [mask(str(a)) for a in args]


def is_remote(repository: str) -> bool:
    """A URL (``https://``, ``ssh://``, ``git@host:path``) rather than a path on this machine."""
    if "://" in repository:
        return not repository.startswith("file://")
    return bool(re.match(r"^[^/\\]+@[^/\\:]+:", repository))


def check_repository(repository: str) -> str:
    """The repository as one argument: stripped, not empty, never an option, no control characters."""
    text = (repository or "").strip()
    if not text:
        raise GitError("repository is empty")
    if text.startswith("-") or any(ord(c) < 32 or c == "\x7f" for c in text):
        raise GitError(f"repository {mask(text)!r} is not a URL or a path")
    return text


def check_ref(ref: str) -> str:
    text = (ref or "").strip()
    if not REF_RE.match(text):
        raise GitError(f"{text[:100]!r} is not a git ref (a branch, tag or commit; letters, digits, . _ / + @ -)")
    return text


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process's environment (its credentials; not loopdash's own settings) with git told never to prompt."""
    env = runners.child_environment(None)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=15")
    env["GCM_INTERACTIVE"] = "never"
    env["LC_ALL"] = "C"  # messages we match are English
    env.update(extra or {})
    return env


def run(
    args: Sequence[str], *, cwd: Path | None = None, timeout: float = LOCAL_TIMEOUT_S, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``git <args>``; a non-zero exit (with ``check``) or a timeout raises GitError with git's last line."""
    command = ["git", "-c", "credential.interactive=never", *args]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f} s") from None
    except OSError as exc:
        raise GitError(f"git could not be started: {exc.strerror or exc}") from None
    if check and done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {last_line(done.stderr or done.stdout)}")
    return done


def last_line(text: str) -> str:
    """The most telling line of git's output (``fatal:`` first), masked, at most 300 characters."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    chosen = (fatal or lines or ["no message"])[-1]
    return mask(chosen)[:300]


def _local_resolve(repository: str, ref: str, timeout: float) -> tuple[str, str]:
    """(ref, commit) in a repository on this machine; ``HEAD`` becomes its current branch's name."""
    path = repository.removeprefix("file://")
    if not Path(path).exists():
        raise GitError(f"repository {mask(repository)} does not exist")
    done = run(
        ["-C", path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        check=False,
        timeout=timeout,
    )
    if done.returncode != 0:
        return ref, ""
    commit = done.stdout.strip()
    if ref == "HEAD":
        branch = run(["-C", path, "symbolic-ref", "--quiet", "--short", "HEAD"], check=False, timeout=timeout)
        ref = branch.stdout.strip() or ref
    return ref, commit


def _remote_resolve(repository: str, ref: str, timeout: float) -> tuple[str, str]:
    """(ref, commit) from ``git ls-remote``: a branch, a tag (peeled) or HEAD; a bare sha is left to the worker."""
    args = ["ls-remote", "--symref", "--end-of-options", repository]
    if ref != "HEAD":
        args += [ref, f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"]
    else:
        args += ["HEAD"]
    done = run(args, timeout=timeout)
    found: dict[str, str] = {}
    branch = ""
    for line in done.stdout.splitlines():
        left, _tab, name = line.partition("\t")
        if left.startswith("ref: ") and name == "HEAD":
            branch = left.removeprefix("ref: ").removeprefix("refs/heads/")
        elif SHA_RE.match(left):
            found[name] = left
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref, "HEAD"):
        if name in found and (name != "HEAD" or ref == "HEAD"):
            return (branch or ref) if ref == "HEAD" else ref, found[name]
    if FULL_SHA_RE.match(ref):
        return ref, ref  # a commit cannot be looked up remotely: the worker's fetch checks it
    return ref, ""


def resolve(repository: str, ref: str, *, timeout: float = RESOLVE_TIMEOUT_S) -> tuple[str, str]:
    """(the ref's name, its commit) — ``HEAD`` names the default branch; commit "" when the ref is unknown.

    A path is read directly (``rev-parse``); a URL is asked with ``ls-remote`` (branches and tags; a
    full commit id is accepted as it is and checked by the worker's fetch). Raises GitError when the
    repository cannot be reached.
    """
    repository = check_repository(repository)
    ref = check_ref(ref)
    if is_remote(repository):
        return _remote_resolve(repository, ref, timeout)
    return _local_resolve(repository, ref, timeout)
