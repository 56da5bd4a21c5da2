"""The process between a worker and its command: when the worker dies, the command dies with it.

Run as ``python -I process_guard.py WORKER_PID -- COMMAND...`` (``-I``: no project folder on
``sys.path``, whose ``selectors`` would shadow the standard library's). Standard library only.

Why it exists: a test run's pytest lives in a process group of its own, so that a cancel or a
timeout can kill it whole; the same isolation lets it outlive a worker killed with ``kill -9`` or by
the OOM killer. The reaper can kill such orphans only from the same host, and in docker-compose the
reaper (beat) runs in another container. So the guard, the leader of the command's group, watches
its parent: when it is re-parented (the worker is gone), it ends the whole group, SIGTERM first,
SIGKILL after a grace period, itself last. A staging server that a deploy started *in a session of
its own* on purpose is not in the group and is left alone.

The guard is transparent otherwise: the command inherits its stdio, cwd and environment, and the
guard exits with the command's status (re-raising the signal that killed it), so the worker reads
the same return code as without it. A SIGTERM to the group reaches the command directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.2
GRACE_S = 5.0
CANNOT_START = 127


def _end_group(child: subprocess.Popen, why: str) -> None:
    """Kill the whole group (the guard included, last)."""
    print(f"\n[loopdash] {why}: ending the command's process group", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    try:
        child.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: process_guard.py WORKER_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent = int(argv[0])
    try:
        child = subprocess.Popen(argv[2:])  # an argument list, never a shell; stdio, cwd, env inherited
    except OSError as exc:
        print(f"loopdash: could not start {argv[2]!r}: {exc}", file=sys.stderr, flush=True)
        return CANNOT_START
    while True:
        try:
            code = child.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                _end_group(child, f"the worker (pid {parent}) is gone")
    if code < 0:  # killed by a signal: die of the same one, so the worker sees it as before
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
