"""The subprocess edge: build a command, start it in its own process group, watch it, kill the whole group.

Nothing here touches the ORM; ``work.deploy`` and ``work.run_execution`` drive it. Traps this module exists for:

- Never a shell: commands are argument lists from the admin-edited Environment, and placeholders are
  replaced inside single arguments (``{python}``, ``{revision}``), so no value can become two arguments.
- Kill the whole process group, not the child: pytest-xdist workers, a browser a test launched, a
  ``sh -c`` wrapper all outlive a killed parent and keep the machine (and the port) busy.
- A zombie still counts as a member of its group (``killpg(pgid, 0)`` succeeds), and in a container
  PID 1 is often not an init that reaps orphans. The worker makes itself a child *subreaper*, so
  orphaned descendants are re-parented to it and reaped here; "the group is gone" then really means
  no process of it is left.
- Children inherit the worker's environment; loopdash's own secrets and settings (database URL,
  broker URL, secret key, Django settings module) are removed first, so a test suite that happens to
  load pytest-django never configures itself against loopdash's database.
- A pid can be recycled. An orphaned group is only killed from its record (host, pgid, start time
  in clock ticks) when all three still match.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

PLACEHOLDERS = ("{python}", "{revision}", "{commit}", "{setup_dir}")
# Keys of the worker's own environment that a command must not inherit.
_PRIVATE_ENV = frozenset({"DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL"})
_PRIVATE_PREFIXES = ("CELERY_", "LOOPDASH_TEST_")
_PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE_S = 5.0
KILL_WAIT_S = 5.0
TAIL_BYTES = 16 * 1024
TAIL_LINES = 60


class CommandError(ValueError):
    """An environment's command that cannot be run (empty, not a list of strings, bad directory)."""


# -- building a command ------------------------------------------------------------------------------------


def expand_command(
    template: Sequence[object], *, revision: str = "", commit: str = "", setup_dir: str = ""
) -> list[str]:
    """The argument list with ``{python}`` and ``{revision}`` filled in, each inside its own argument.

    Plain ``str.replace`` rather than ``str.format``: other braces in an argument (a JSON value, a
    glob) are left alone instead of raising ``KeyError``.
    """
    if not isinstance(template, list | tuple) or not template:
        raise CommandError("the command is empty: set it in the admin as a JSON list of arguments")
    args = []
    for item in template:
        if not isinstance(item, str):
            raise CommandError(f"every argument must be a string, got {item!r}")
        expanded = item.replace("{python}", sys.executable).replace("{revision}", revision)
        args.append(expanded.replace("{commit}", commit).replace("{setup_dir}", setup_dir))
    return args


def subset_arguments(template: object, name: str, value: str) -> list[str]:
    """The environment's ``<name>_args`` with ``{<name>}`` replaced by ``value`` inside its one argument.

    The template holds the placeholder in exactly one argument, so the user's expression is always
    one argument (never two, never an option of its own: the request side refuses a leading ``-``).
    No other placeholder is expanded afterwards: ``{python}`` typed by a user stays text.
    """
    placeholder = "{" + name + "}"
    if not isinstance(template, list | tuple) or not template:
        raise CommandError(
            f"{name}_args is empty: this test command cannot run a {name} subset "
            f'(set it in the admin, e.g. ["-{name[0]}", "{placeholder}"])'
        )
    if not all(isinstance(item, str) for item in template):
        raise CommandError(f"{name}_args: every argument must be a string, got {list(template)!r}")
    holders = [item for item in template if placeholder in item]
    if len(holders) != 1:
        raise CommandError(f"{name}_args must hold {placeholder} in exactly one argument, got {list(template)!r}")
    return [item.replace(placeholder, value) for item in template]


def resolve_working_dir(working_dir: str) -> Path:
    """The directory a command runs in; relative paths are relative to the project (BASE_DIR)."""
    path = Path(working_dir or ".")
    if not path.is_absolute():
        path = Path(settings.BASE_DIR) / path
    if not path.is_dir():
        raise CommandError(f"working directory {path} does not exist")
    return path


def child_environment(extra: Mapping[str, object] | None) -> dict[str, str]:
    """The worker's environment minus loopdash's own settings, plus the environment's variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _PRIVATE_ENV and not key.startswith(_PRIVATE_PREFIXES)
    }
    env["PYTHONUNBUFFERED"] = "1"  # the log on the page should be live, not a 4 KB block later
    for key, value in (extra or {}).items():
        env[str(key)] = str(value)
    return env


# -- processes and groups -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ProcessRecord:
    """Enough to find a process group again after its worker died, and not a stranger with its pid."""

    host: str
    pgid: int
    start_ticks: int | None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)) + "\n")

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(host=str(data["host"]), pgid=int(data["pgid"]), start_ticks=data.get("start_ticks"))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only), so that they can be reaped here; True when it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], pgrp [2], start [19])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw.rpartition(b")")[2].decode("ascii", "replace").split()


def process_start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _group_members(pgid: int) -> list[tuple[int, str, int]]:
    """(pid, state, ppid) of every process in the group, from /proc."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and len(fields) > 2 and fields[2] == str(pgid):
            members.append((int(entry.name), fields[0], int(fields[1])))
    return members


def reap_children(skip: Iterable[int] = ()) -> None:
    """Reap zombie children of this process (adopted orphans), leaving alone the pids in ``skip``.

    Only pids known to be zombies are waited for: a blanket ``waitpid(-1)`` would steal the exit
    status of a ``Popen`` that is still being watched.
    """
    if not os.path.isdir("/proc"):
        return
    me, skipped = os.getpid(), set(skip)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skipped:
            continue
        fields = _stat(int(entry.name))
        if fields and len(fields) > 1 and fields[0] == "Z" and fields[1] == str(me):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(int(entry.name), os.WNOHANG)


def group_alive(pgid: int) -> bool:
    """Is any process of the group still running? Zombies do not count (they are reaped when ours)."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return any(state not in ("Z", "X") for _pid, state, _ppid in _group_members(pgid))


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_group(pgid: int, *, grace: float = TERM_GRACE_S, popen: subprocess.Popen | None = None) -> None:
    """SIGTERM the whole group, SIGKILL it after ``grace`` seconds, and reap what is ours.

    Kill the group, not the child: pytest-xdist and ``sh -c`` leave children behind.
    """
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_group(pgid, grace, popen):
        _signal_group(pgid, signal.SIGKILL)
        _wait_group(pgid, KILL_WAIT_S, popen)


def _wait_group(pgid: int, timeout: float, popen: subprocess.Popen | None) -> bool:
    """Wait until no process of the group is left: running members ended, our zombies reaped.

    A member that dies after its parent is re-parented (to us, the subreaper) as a zombie a moment
    later, so "no running member" is not enough: loop until the group is empty, or holds only zombies
    that are not ours to reap (some other parent's, or PID 1's in a container without an init).
    """
    deadline = time.monotonic() + timeout
    me = os.getpid()
    while True:
        if popen is not None:
            popen.poll()  # reap the leader through Popen, so its exit status is kept
        reap_children(skip=[popen.pid] if popen is not None and popen.returncode is None else ())
        members = _group_members(pgid) if os.path.isdir("/proc") else []
        if not os.path.isdir("/proc"):
            if not group_alive(pgid):
                return True
        elif all(state in ("Z", "X") and ppid != me for _pid, state, ppid in members):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def kill_recorded_group(record: ProcessRecord, *, grace: float = TERM_GRACE_S) -> bool:
    """Kill an orphaned group from its record when it is on this host and its leader is the same process.

    The leader may be gone while members live on (xdist workers): then the group id cannot have been
    reused (Linux does not hand out a pid that is still some group's id), so the group is ours.
    """
    if record.host != socket.gethostname() or record.pgid <= 1:
        return False
    ticks = process_start_ticks(record.pgid)
    if ticks is not None and record.start_ticks is not None and ticks != record.start_ticks:
        return False  # the pid now belongs to another process
    if not group_alive(record.pgid):
        reap_children()
        return False
    kill_group(record.pgid, grace=grace)
    return True


GUARD_PATH = Path(__file__).parent / "runner_plugins" / "process_guard.py"


def find_executable(name: str, *, cwd: Path, path: str | None) -> str:
    """The program to start, checked before the guard starts it, so a missing one is a clear error here."""
    if os.sep in name:
        candidate = Path(name) if Path(name).is_absolute() else Path(cwd) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise FileNotFoundError(2, "No such file or directory (or not executable)", name)
    found = shutil.which(name, path=path)
    if found is None:
        raise FileNotFoundError(2, "No such file or directory", name)
    return found


class GroupProcess:
    """A command running in a new session (its own process group), output appended to a log file.

    The group's leader is ``process_guard``, which starts the command and ends the group when the
    worker that started it dies: no orphaned suite outlives its worker, whatever host the reaper is on.
    """

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        record_path: Path | None = None,
    ) -> None:
        self.args = args
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.record_path = record_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the command; a missing executable is written to the log and raised as CommandError."""
        become_subreaper()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                executable = find_executable(self.args[0], cwd=self.cwd, path=self.env.get("PATH"))
                self.popen = subprocess.Popen(
                    [sys.executable, "-I", str(GUARD_PATH), str(os.getpid()), "--", executable, *self.args[1:]],
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                log.write(f"loopdash: could not start {self.args[0]!r}: {exc}\n".encode())
                raise CommandError(f"could not start {self.args[0]!r}: {exc.strerror or exc}") from exc
        if self.record_path is not None:
            ProcessRecord(socket.gethostname(), self.pgid, process_start_ticks(self.pgid)).save(self.record_path)

    @property
    def pgid(self) -> int:
        assert self.popen is not None
        return self.popen.pid  # a session leader's pid is its group id

    def poll(self) -> int | None:
        assert self.popen is not None
        code = self.popen.poll()
        reap_children(skip=[self.popen.pid] if code is None else ())
        return code

    def kill(self, grace: float = TERM_GRACE_S) -> None:
        """End the whole group (also when the leader already exited and left children behind)."""
        assert self.popen is not None
        kill_group(self.pgid, grace=grace, popen=self.popen)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)

    def finish(self) -> None:
        """After the command exited: end stragglers it left in its group (the record stays, as a trace)."""
        if self.popen is None:
            return
        if group_alive(self.pgid):
            self.kill(grace=1.0)
        else:
            _wait_group(self.pgid, 1.0, self.popen)  # reap members re-parented to us as zombies

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.returncode


# -- a selection of tests ----------------------------------------------------------------------------------------

SELECT_PLUGIN = "loopdash_select"
SELECTION_FILE = "selection.json"
_SELECT_PLUGIN_PATH = Path(__file__).parent / "runner_plugins" / f"{SELECT_PLUGIN}.py"
SELECT_PLUGIN_PATH = _SELECT_PLUGIN_PATH  # also copied for a sharded run's collection (work.shard_planning)


def selection_arguments(nodeids: list[str], folder: Path, env: dict[str, str]) -> list[str]:
    """Arguments (and environment, updated in place) that make a pytest command run exactly ``nodeids``.

    The arguments are fixed (``-p loopdash_select``): no node id ever reaches the command line, so
    no stored name can become an option or an argument file, whatever characters it holds. The ids
    travel as JSON (no line splitting to trick) to a copied plugin that narrows collection to their
    files and deselects everything else the command's own paths collect.
    """
    selection = folder / SELECTION_FILE
    selection.write_text(json.dumps(nodeids), encoding="utf-8")
    shutil.copyfile(_SELECT_PLUGIN_PATH, folder / f"{SELECT_PLUGIN}.py")
    env["LOOPDASH_SELECTION_FILE"] = str(selection)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH", "")) if p)
    return ["-p", SELECT_PLUGIN]


# -- logs ---------------------------------------------------------------------------------------------------------


def read_tail(path: Path, *, max_bytes: int = TAIL_BYTES, max_lines: int = TAIL_LINES) -> str:
    """The last lines of a log file, decoded leniently; a cut first line is dropped."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").replace("\x00", "")
    lines = text.splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]
    return "\n".join(lines[-max_lines:])


def append_log(path: Path, message: str) -> None:
    """A line of loopdash's own in the command's log (why it was killed, what was not run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"\n[loopdash] {message}\n")


# -- supervising a command and its folder -----------------------------------------------------------------------

TICK_S = 1.0  # heartbeat, log tail, live results and counts: once a second
POLL_S = 0.1  # how often the process is checked for its exit between ticks
PROCESS_RECORD = "process.json"


def work_dir(kind: str, pk: int) -> Path:
    return Path(settings.MEDIA_ROOT) / kind / str(pk)


def fresh_dir(kind: str, pk: int) -> Path:
    """An empty folder for this row's files: a leftover report-log of a reused id must never be ingested."""
    path = work_dir(kind, pk)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


TIMED_OUT, STOPPED, EXITED = "timed_out", "stopped", "exited"


def supervise(proc: GroupProcess, *, timeout_s: float, tick: Callable[[], bool]) -> str:
    """Watch the process until it exits, its time is up, or ``tick`` says its row stopped being ``running``.

    ``tick`` runs about once a second; on a timeout or a stop the whole process group is killed.
    """
    deadline = time.monotonic() + max(1.0, float(timeout_s))
    next_tick = time.monotonic() + TICK_S
    while True:
        if proc.poll() is not None:
            return EXITED
        now = time.monotonic()
        if now >= deadline:
            proc.kill()
            return TIMED_OUT
        if now >= next_tick:
            if not tick():
                proc.kill()
                return STOPPED
            next_tick = time.monotonic() + TICK_S
        time.sleep(POLL_S)
