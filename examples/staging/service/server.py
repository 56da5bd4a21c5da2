"""Start-up: wire the parts of the staging agent service together and serve.

``python -m service`` (``__main__.py``, what deploy.py runs) calls
:func:`run_service`, which listens on one port for both plain HTTP and
WebSocket upgrades (websockets' ``serve``) until SIGTERM/SIGINT.

Where things live (all under ``service/``):

* ``settings.py`` -- ``STAGING_*`` environment knobs (:class:`Settings`);
* ``revisions.py`` -- which revision is deployed and its bug flags;
* ``bugs.py`` -- what each bug flag makes the service do (the simulations);
* ``http_api.py`` -- ``/health``, ``/api/...``, ``/api/v1/...``, the gate before ``/ws``;
* ``auth.py`` -- token extraction and validation at the handshake (``tokens.py`` signs/verifies);
* ``protocol.py`` -- the per-connection loop and the JSON message router;
* ``agent_runs.py`` -- ``start_agent`` / ``execute_agent`` and the events of one run;
* ``agents.py`` -- the simulated agents' deterministic outputs;
* ``user_context.py`` -- threads and run counters per user;
* ``connection.py`` -- per-connection state and JSON frame/error sending;
* ``service_log.py`` -- the JSON event log on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from websockets.asyncio.server import serve

from .agent_runs import AgentRunner
from .auth import Authenticator
from .bugs import RevisionBugs
from .http_api import HttpApi
from .protocol import MessageProtocol
from .revisions import Revision
from .service_log import ServiceLog
from .settings import Settings
from .user_context import UserContextStore


class StagingService:
    """The agent backend for one revision: its parts, built once per process."""

    def __init__(self, rev: Revision, settings: Settings) -> None:
        self.rev = rev
        self.settings = settings
        self.log = ServiceLog(rev.revision)
        self.bugs = RevisionBugs(rev, settings)
        self.store = UserContextStore(shared=self.bugs.user_contexts_shared)
        self.auth = Authenticator(self.bugs, settings, self.log)
        self.http = HttpApi(rev, settings, self.bugs, self.auth)
        self.runner = AgentRunner(self.bugs, settings, self.store, self.log)
        self.protocol = MessageProtocol(rev, self.bugs, self.auth, self.store, self.runner, self.log)


async def run_service(rev: Revision, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then close connections (1001) and return."""
    service = StagingService(rev, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with serve(
        service.protocol.handler,
        settings.host,
        settings.port,
        process_request=service.http.process_request,
        select_subprotocol=service.auth.select_subprotocol,
        compression=None,
        reuse_address=True,
    ):
        service.log(
            "service_ready",
            commit=rev.commit,
            host=settings.host,
            port=settings.port,
            pid=os.getpid(),
            bugs=sorted(rev.bugs),
            flake_seed=settings.flake_seed,
        )
        await stop.wait()
        service.log("service_stopping", pid=os.getpid())
