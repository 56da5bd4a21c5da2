#!/usr/bin/env python3
"""Deploy (or stop) one revision of the example staging service.

Usage (argument lists, no shell needed)::

    python examples/staging/deploy.py --revision r3 [--commit SHA] [--port 8765] [--state-dir DIR]
    python examples/staging/deploy.py --stop [--port 8765] [--state-dir DIR]
    python examples/staging/deploy.py --status [--port 8765] [--state-dir DIR]

What a deploy does, and why:

1. validates the revision against ``revisions.json`` (fail fast, exit 2);
2. takes a per-port lock in the state dir so two deploys cannot interleave;
3. stops the service previously deployed on that port (pid file in the state
   dir; SIGTERM to its process group, SIGKILL after a grace period) -- only
   if the pid still belongs to *our* service, so a recycled pid is never hit;
4. refuses to start when something else holds the port (exit 3);
5. installs the release: copies ``service/`` and ``revisions.json`` into
   ``release-PORT/`` in the state dir and starts ``python -m service`` there,
   detached (``start_new_session=True``), with its output in
   ``service-PORT.log``, so it outlives this script *and* the folder it was
   deployed from (a loopdash worker removes its checkout when the deploy
   ends), like a real deploy;
6. polls ``/health`` until it reports the requested revision *and* our pid
   (exit 4 if the process dies, 5 on timeout -- the half-started process is
   killed either way, nothing is left behind);
7. prints ``deployed revision=... commit=... url=... pid=...`` and exits 0.

Defaults: port from ``STAGING_PORT`` or 8765, state dir from
``STAGING_STATE_DIR`` or ``examples/staging/.state``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STAGING_DIR = Path(__file__).resolve().parent
REVISIONS_FILE = STAGING_DIR / "revisions.json"
DEFAULT_STATE_DIR = STAGING_DIR / ".state"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PORT_BUSY = 3
EXIT_DIED = 4
EXIT_TIMEOUT = 5
EXIT_STOP_FAILED = 6


class DeployError(Exception):
    """A failure with a user-facing message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """Progress line, flushed at once so a worker streaming our output sees it live."""
    print(f"[deploy] {message}", flush=True)


def load_revisions() -> list[dict[str, Any]]:
    """Ordered revision entries from revisions.json."""
    data = json.loads(REVISIONS_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DeployError(f"{REVISIONS_FILE} must hold a JSON list", EXIT_USAGE)
    return data


def find_revision(name: str) -> dict[str, Any]:
    """Revision entry called ``name`` or a DeployError listing the known ones."""
    revisions = load_revisions()
    for entry in revisions:
        if entry.get("revision") == name:
            return entry
    known = ", ".join(str(e.get("revision")) for e in revisions)
    raise DeployError(f"unknown revision {name!r} (known: {known})", EXIT_USAGE)


class StatePaths:
    """Files kept per port in the state dir (so several ports can coexist)."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.dir = state_dir
        self.port = port
        self.pid = state_dir / f"service-{port}.pid"
        self.meta = state_dir / f"service-{port}.json"
        self.log = state_dir / f"service-{port}.log"
        self.lock = state_dir / f"service-{port}.lock"


@contextlib.contextmanager
def port_lock(paths: StatePaths) -> Iterator[None]:
    """Exclusive lock so concurrent deploy/stop calls on one port serialise."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def process_state(pid: int) -> str | None:
    """Linux process state letter ('R', 'S', 'Z', ...) or None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "?"
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid: int) -> bool:
    """True for a running (non-zombie) process."""
    state = process_state(pid)
    return state is not None and state not in ("Z", "X")


def is_our_service(pid: int, port: int) -> bool:
    """Guard against pid reuse: the cmdline must be our service on this port."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return is_alive(pid)  # no /proc: trust the pid file
    args = [a.decode(errors="replace") for a in argv]
    return "service" in args and "--port" in args and str(port) in args


def read_pid(paths: StatePaths) -> int | None:
    """Pid recorded by the previous deploy, if any."""
    try:
        return int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def read_meta(paths: StatePaths) -> dict[str, Any]:
    """Metadata of the previous deploy (revision, commit...), empty if unknown."""
    try:
        data = json.loads(paths.meta.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone or a zombie; True on success."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def kill_group(pid: int, grace: float) -> None:
    """SIGTERM the process group (the service is a session leader), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    if wait_gone(pid, grace):
        return
    say(f"pid {pid} ignored SIGTERM for {grace:.1f}s, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if not wait_gone(pid, 3.0):
        raise DeployError(f"could not stop pid {pid}", EXIT_STOP_FAILED)


def port_is_free(host: str, port: int) -> bool:
    """Can we bind host:port right now? (SO_REUSEADDR ignores TIME_WAIT leftovers.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def stop_service(paths: StatePaths, port: int, host: str, grace: float) -> bool:
    """Stop the service recorded for ``port``; True if one was running."""
    pid = read_pid(paths)
    if pid is None:
        return False
    meta = read_meta(paths)
    stopped = False
    if is_alive(pid) and is_our_service(pid, port):
        say(f"stopping {meta.get('revision', '?')} (pid {pid}) on port {port}")
        started = time.monotonic()
        kill_group(pid, grace)
        say(f"stopped pid {pid} in {time.monotonic() - started:.2f}s")
        stopped = True
    else:
        say(f"stale pid file (pid {pid} is not running our service), removing it")
    for path in (paths.pid, paths.meta):
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + 3.0
    while stopped and not port_is_free(host, port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return stopped


def fetch_health(host: str, port: int, timeout: float) -> dict[str, Any] | None:
    """GET /health; None when not answering (yet)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        data = json.loads(body)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def log_tail(path: Path, lines: int = 15) -> str:
    """Last lines of the service log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def install_release(paths: StatePaths) -> Path:
    """Copy what the service needs into ``release-PORT/`` of the state dir (after the old one stopped)."""
    release = paths.dir / f"release-{paths.port}"
    shutil.rmtree(release, ignore_errors=True)
    shutil.copytree(STAGING_DIR / "service", release / "service", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REVISIONS_FILE, release / "revisions.json")
    return release


def start_service(entry: dict[str, Any], paths: StatePaths, host: str, port: int, timeout: float) -> dict[str, Any]:
    """Spawn the revision detached and wait until /health confirms it."""
    revision = str(entry["revision"])
    if not port_is_free(host, port):
        raise DeployError(
            f"port {port} on {host} is busy and not held by a service recorded in {paths.dir} "
            "(stop whatever listens there, or deploy with --port)",
            EXIT_PORT_BUSY,
        )
    release = install_release(paths)
    cmd = [sys.executable, "-u", "-m", "service", "--revision", revision, "--host", host, "--port", str(port)]
    cmd += ["--commit", str(entry["commit"])]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    say("starting: " + " ".join(cmd))
    say(f"service log: {paths.log}")
    with open(paths.log, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=release,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    paths.pid.write_text(f"{proc.pid}\n")
    meta = {
        "revision": revision,
        "commit": entry["commit"],
        "pid": proc.pid,
        "pgid": proc.pid,
        "host": host,
        "port": port,
        "url": f"ws://{host}:{port}",
        "started_at": time.time(),
        "cmd": cmd,
        "log": str(paths.log),
    }
    paths.meta.write_text(json.dumps(meta, indent=2) + "\n")

    say(f"waiting for http://{host}:{port}/health (timeout {timeout:g}s)")
    started = time.monotonic()
    while True:
        code = proc.poll()
        if code is not None:
            paths.pid.unlink(missing_ok=True)
            paths.meta.unlink(missing_ok=True)
            raise DeployError(
                f"service exited with code {code} during start-up; log tail:\n{log_tail(paths.log)}", EXIT_DIED
            )
        health = fetch_health(host, port, timeout=0.5)
        if health and health.get("revision") == revision and health.get("pid") == proc.pid:
            break
        if time.monotonic() - started > timeout:
            kill_group(proc.pid, 2.0)
            proc.wait(timeout=1)
            paths.pid.unlink(missing_ok=True)
            paths.meta.unlink(missing_ok=True)
            raise DeployError(
                f"service did not become healthy within {timeout:g}s; log tail:\n{log_tail(paths.log)}",
                EXIT_TIMEOUT,
            )
        time.sleep(0.05)
    say(f"healthy after {time.monotonic() - started:.2f}s (pid {proc.pid}, commit {health.get('commit')})")
    return meta


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; environment provides the defaults loopdash workers rely on."""
    parser = argparse.ArgumentParser(description="Deploy a revision of the loopdash example staging service.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--revision", help="revision to deploy, e.g. r3 (see revisions.json)")
    action.add_argument("--stop", action="store_true", help="stop the service on --port")
    action.add_argument("--status", action="store_true", help="show what runs on --port (exit 1 if nothing)")
    parser.add_argument("--commit", help="the commit being deployed (default: the one revisions.json names)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STAGING_PORT") or 8765))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("STAGING_STATE_DIR") or DEFAULT_STATE_DIR)
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for /health")
    parser.add_argument("--stop-grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the requested action; return the process exit code."""
    args = parse_args(argv)
    paths = StatePaths(args.state_dir.resolve(), args.port)
    try:
        if args.status:
            pid = read_pid(paths)
            if pid is not None and is_alive(pid) and is_our_service(pid, args.port):
                meta = read_meta(paths)
                print(f"running revision={meta.get('revision')} commit={meta.get('commit')} pid={pid} port={args.port}")
                return EXIT_OK
            print(f"not running on port {args.port}")
            return 1
        if args.stop:
            with port_lock(paths):
                if not stop_service(paths, args.port, args.host, args.stop_grace):
                    say(f"nothing to stop on port {args.port}")
            print(f"stopped port={args.port}", flush=True)
            return EXIT_OK
        entry = find_revision(args.revision)
        if args.commit:  # the commit the deployer checked out (a loopdash worker passes its own)
            if not re.fullmatch(r"[0-9a-f]{7,64}", args.commit):
                raise DeployError(f"--commit {args.commit!r} is not a commit id (7 to 64 hex digits)", EXIT_USAGE)
            entry = {**entry, "commit": args.commit}
        say(f"revision {entry['revision']} commit {entry['commit']}: {entry.get('message', '')}")
        with port_lock(paths):
            stop_service(paths, args.port, args.host, args.stop_grace)
            meta = start_service(entry, paths, args.host, args.port, args.timeout)
        print(
            f"deployed revision={meta['revision']} commit={meta['commit']} url={meta['url']} pid={meta['pid']}",
            flush=True,
        )
        return EXIT_OK
    except DeployError as exc:
        print(f"deploy failed: {exc}", file=sys.stderr, flush=True)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
