"""Plain HTTP: ``GET /health``, ``/api/...`` and ``/api/v1/...``, and the gate before ``/ws``.

websockets calls :meth:`HttpApi.process_request` for every incoming request
before any upgrade: plain GETs are answered here, upgrades to ``/ws`` are
handed to the :class:`~service.auth.Authenticator`, anything else is a 404.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import json
import os
import time
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import agents
from .auth import Authenticator
from .bugs import RevisionBugs
from .connection import JsonDict
from .revisions import Revision
from .settings import Settings

SERVICE_NAME = "loopdash-staging-agent"


def json_response(status: int, payload: JsonDict) -> Response:
    """HTTP response with a JSON body (websockets' ``respond`` is text/plain only)."""
    body = json.dumps(payload).encode()
    status_obj = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "application/json"),
        ]
    )
    return Response(status_obj.value, status_obj.phrase, headers, body)


class HttpApi:
    """The HTTP side of the service: health, the small REST API, the upgrade gate."""

    def __init__(self, rev: Revision, settings: Settings, bugs: RevisionBugs, auth: Authenticator) -> None:
        self.rev = rev
        self.settings = settings
        self.bugs = bugs
        self.auth = auth
        self.started_at = time.time()

    @property
    def features(self) -> list[str]:
        """Capabilities advertised on /health."""
        feats = ["websocket_agents", "streaming", "threads", "http_api"]
        if self.bugs.context_isolation_deployed:
            feats.append("context_isolation")
        return feats

    def health(self) -> JsonDict:
        """Body of GET /health (deploy.py waits for its revision and pid)."""
        return {
            "status": "ok",
            "service": SERVICE_NAME,
            "revision": self.rev.revision,
            "commit": self.rev.commit,
            "message": self.rev.message,
            "features": self.features,
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 3),
            "pid": os.getpid(),
            "port": self.settings.port,
        }

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Serve plain HTTP routes and authenticate WebSocket upgrades."""
        path = urlsplit(request.path).path
        is_upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if not is_upgrade:
            if path == "/ws":
                await asyncio.sleep(self.settings.api_delay_s)
                return None  # websockets answers 426 Upgrade Required
            return await self._serve_http(path)
        if path != "/ws":
            return json_response(404, {"error": "not found", "path": path})
        return await self.auth.check_upgrade(connection, request)

    async def _serve_http(self, path: str) -> Response:
        await asyncio.sleep(self.settings.api_delay_s)  # database round trip
        if path == "/health":
            return json_response(200, self.health())
        prefix = None
        if path.startswith("/api/v1/") or path == "/api/v1":
            if self.bugs.api_v1_missing:
                return json_response(404, {"error": "not found", "path": path})
            prefix = "/api/v1"
        elif path.startswith("/api/"):
            prefix = "/api"
        if prefix is not None:
            rest = path[len(prefix) :].rstrip("/")
            if rest == "/health":
                return json_response(200, self.health())
            if rest == "/agents":
                return json_response(200, {"agents": [a.as_dict() for a in agents.AGENTS.values()]})
            if rest.startswith("/agents/"):
                spec = agents.AGENTS.get(rest.removeprefix("/agents/"))
                if spec is None:
                    return json_response(404, {"error": "unknown agent", "path": path})
                return json_response(200, spec.as_dict())
            if rest == "/tools":
                tools = sorted({a.tool: a.name for a in agents.AGENTS.values()}.items())
                return json_response(200, {"tools": [{"name": t, "agent": a} for t, a in tools]})
        return json_response(404, {"error": "not found", "path": path})
