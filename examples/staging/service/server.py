"""WebSocket + HTTP server that plays an AI agent backend on staging.

Protocol (all frames are JSON text):

* connect to ``ws://HOST:PORT/ws`` with a token, either as
  ``Authorization: Bearer <t>`` (header), ``?token=<t>`` (query) or the
  ``jwt.<t>`` subprotocol (what browsers use, they cannot set headers);
* the server greets with ``connection_established``;
* ``execute_agent`` / ``start_agent`` ``{"agent", "message", "stream"?,
  "thread_id"?, "id"?}`` produce ``agent_started``, ``agent_thinking``,
  ``tool_executing``, ``tool_completed`` (``partial_result`` chunks when
  streaming) and ``agent_completed`` with a result;
* ``ping``, ``list_agents``, ``get_connection_state``, ``create_thread``,
  ``list_threads``, ``get_thread`` and ``get_user_context`` cover the rest;
* errors come back as ``{"type": "error", "code", "error", "request_id"}``.

Plain HTTP GETs are answered from ``process_request``: ``/health`` (revision
and commit), ``/api/...`` and ``/api/v1/...``.

Each misbehaviour is guarded by ``self.rev.has("<bug>")`` at the precise code
path that a real developer would have got wrong, so failures are produced by
the real mechanism (e.g. ``json.dumps`` of an Enum raising inside the
handler, which websockets turns into a 1011 close), not by faking results.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import http
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from . import agents, tokens
from .revisions import Revision

SERVICE_NAME = "loopdash-staging-agent"
DEFAULT_SECRET = "loopdash-staging-shared-secret"
#: The secret the buggy revisions wrongly resolve for 'e2e' tokens.
LEGACY_E2E_SECRET = "staging-e2e-legacy-secret"

JsonDict = dict[str, Any]
MessageHandler = Callable[[ServerConnection, "ConnectionContext", JsonDict], Awaitable[None]]


class WebSocketState(enum.Enum):
    """Connection lifecycle, modelled on Starlette's (a plain, non-JSON Enum)."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2


def safe_websocket_state_for_logging(state: WebSocketState) -> str:
    """The fix from the seeds: log ``state.name``, never the Enum itself."""
    return state.name


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Runtime knobs.

    The latencies are small sleeps standing in for network and backend round
    trips: they make every real test take >= ~12 ms, above loopdash's 0.01 s
    suspect line, so the only tests flagged as suspect are the ones that really
    did nothing.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    secret: str = DEFAULT_SECRET
    step_s: float = 0.0005
    auth_delay_s: float = 0.012
    api_delay_s: float = 0.012
    flake_rate: float = 0.35
    flake_seed: int = 0

    @classmethod
    def from_env(cls, host: str, port: int) -> Settings:
        """Read STAGING_* variables (documented in the README)."""
        seed_raw = os.environ.get("STAGING_FLAKE_SEED", "")
        return cls(
            host=host,
            port=port,
            secret=os.environ.get("STAGING_JWT_SECRET") or DEFAULT_SECRET,
            step_s=_env_float("STAGING_AGENT_STEP_MS", 0.5) / 1000,
            auth_delay_s=_env_float("STAGING_AUTH_DELAY_MS", 12.0) / 1000,
            api_delay_s=_env_float("STAGING_API_DELAY_MS", 12.0) / 1000,
            flake_rate=_env_float("STAGING_FLAKE_RATE", 0.35),
            flake_seed=int(seed_raw) if seed_raw else time.time_ns() % 2**32,
        )


@dataclass(frozen=True)
class AuthInfo:
    """Who is on the other end, decided during the HTTP handshake."""

    user_id: str
    kind: str
    transport: str
    token_chars: int


@dataclass
class ConnectionContext:
    """Per-connection state; ``active_runs`` drives the pipeline race bug."""

    connection_id: str
    auth: AuthInfo
    state: WebSocketState = WebSocketState.CONNECTING
    active_runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)


@dataclass
class Thread:
    """A chat thread with its message history."""

    thread_id: str
    owner: str
    title: str
    created_at: float
    messages: list[JsonDict] = field(default_factory=list)

    def summary(self) -> JsonDict:
        """Listing view (no messages)."""
        return {
            "thread_id": self.thread_id,
            "owner": self.owner,
            "title": self.title,
            "created_at": self.created_at,
            "message_count": len(self.messages),
        }


class UserContextStore:
    """Threads and run counters, scoped per user -- unless ``shared`` (the leak bug).

    The leak is modelled the way it usually happens: the store is keyed by a
    scope, and the buggy version computes the same scope for everybody.
    """

    def __init__(self, *, shared: bool) -> None:
        self.shared = shared
        self._threads: dict[str, dict[str, Thread]] = {}
        self._runs: dict[str, int] = {}
        self._last_agent: dict[str, str] = {}

    def _scope(self, user_id: str) -> str:
        return "global" if self.shared else f"user:{user_id}"

    def create_thread(self, user_id: str, title: str) -> Thread:
        """Create and return a new thread owned by ``user_id``."""
        thread = Thread(f"thread-{uuid.uuid4().hex[:12]}", user_id, title, time.time())
        self._threads.setdefault(self._scope(user_id), {})[thread.thread_id] = thread
        return thread

    def threads(self, user_id: str) -> list[Thread]:
        """Threads visible to ``user_id``."""
        return list(self._threads.get(self._scope(user_id), {}).values())

    def get_thread(self, user_id: str, thread_id: str) -> Thread | None:
        """A thread visible to ``user_id`` or None."""
        return self._threads.get(self._scope(user_id), {}).get(thread_id)

    def record_run(self, user_id: str, agent: str) -> None:
        """Count a completed run for the user's context."""
        scope = self._scope(user_id)
        self._runs[scope] = self._runs.get(scope, 0) + 1
        self._last_agent[scope] = agent

    def context(self, user_id: str) -> JsonDict:
        """The UserExecutionContext view returned by get_user_context."""
        scope = self._scope(user_id)
        return {
            "user_id": user_id,
            "context_scope": scope,
            "runs": self._runs.get(scope, 0),
            "threads": len(self._threads.get(scope, {})),
            "last_agent": self._last_agent.get(scope),
        }


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


class StagingService:
    """The agent backend for one revision."""

    def __init__(self, rev: Revision, settings: Settings) -> None:
        self.rev = rev
        self.settings = settings
        self.started_at = time.time()
        self.rng = random.Random(settings.flake_seed)
        self.store = UserContextStore(shared=rev.has("thread_history_shared_between_users"))
        self._pending_auth: weakref.WeakKeyDictionary[ServerConnection, AuthInfo] = weakref.WeakKeyDictionary()
        self._connections = 0
        self.routes: dict[str, MessageHandler] = {
            "ping": self._on_ping,
            "list_agents": self._on_list_agents,
            "start_agent": self._on_start_agent,
            "execute_agent": self._on_start_agent,
            "get_connection_state": self._on_connection_state,
            "create_thread": self._on_create_thread,
            "list_threads": self._on_list_threads,
            "get_thread": self._on_get_thread,
            "get_user_context": self._on_user_context,
        }
        if rev.has("execute_agent_not_routed"):
            # The seeds' bug: only the canonical START_AGENT type was mapped.
            del self.routes["execute_agent"]
        if rev.has("context_isolation_not_deployed"):
            del self.routes["get_user_context"]

    # ------------------------------------------------------------------ logging
    def log(self, event: str, **fields: Any) -> None:
        """Structured (Cloud-Run style) JSON log line on stdout.

        ``json.dumps`` is called on whatever the caller passes -- which is
        exactly why logging an Enum crashes the caller in buggy revisions.
        """
        record = {"ts": round(time.time(), 6), "severity": "INFO", "revision": self.rev.revision, "event": event}
        record.update(fields)
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def _state_for_log(self, state: WebSocketState, bug: str) -> Any:
        """Return what the given code path puts into the log for ``state``."""
        return state if self.rev.has(bug) else safe_websocket_state_for_logging(state)

    # ----------------------------------------------------------------- features
    @property
    def features(self) -> list[str]:
        """Capabilities advertised on /health."""
        feats = ["websocket_agents", "streaming", "threads", "http_api"]
        if not self.rev.has("context_isolation_not_deployed"):
            feats.append("context_isolation")
        return feats

    def health(self) -> JsonDict:
        """Body of GET /health."""
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

    # --------------------------------------------------------------------- auth
    def _secret_for(self, token: str) -> str:
        """Pick the verification secret; the bug resolves a legacy one for e2e tokens."""
        if self.rev.has("jwt_secret_mismatch_e2e_tokens"):
            try:
                kind = tokens.unverified_claims(token).get("kind")
            except tokens.TokenError:
                kind = None
            if kind == "e2e":
                return os.environ.get("STAGING_E2E_LEGACY_SECRET") or LEGACY_E2E_SECRET
        return self.settings.secret

    def authenticate(self, token: str, transport: str) -> AuthInfo:
        """Validate ``token`` or raise :class:`tokens.TokenError`."""
        claims = tokens.decode(token, self._secret_for(token))
        return AuthInfo(
            user_id=str(claims["sub"]),
            kind=str(claims.get("kind", "user")),
            transport=transport,
            token_chars=len(token),
        )

    @staticmethod
    def _extract_token(request: Request) -> tuple[str | None, str]:
        auth_header = request.headers.get("Authorization", "")
        if auth_header.lower().startswith("bearer "):
            return auth_header[7:].strip(), "header"
        query = parse_qs(urlsplit(request.path).query)
        if query.get("token"):
            return query["token"][0], "query"
        for value in request.headers.get_all("Sec-WebSocket-Protocol"):
            for proto in value.split(","):
                proto = proto.strip()
                if proto.startswith("jwt."):
                    return proto[4:], "subprotocol"
        return None, "none"

    def select_subprotocol(
        self, connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """Echo the ``jwt.<token>`` subprotocol back, as browsers require."""
        for proto in subprotocols:
            if proto.startswith("jwt."):
                return proto
        return None

    # --------------------------------------------------------------------- http
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
        await asyncio.sleep(self.settings.auth_delay_s)  # token introspection round trip
        token, transport = self._extract_token(request)
        if not token:
            self.log("ws_auth_rejected", reason="missing token")
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Missing authentication token\n")
        try:
            auth = self.authenticate(token, transport)
        except tokens.TokenError as exc:
            self.log("ws_auth_rejected", reason=str(exc), transport=transport)
            debug = f"Token validation failed | Debug: {len(token)} chars, {token.count('.')} dots\n"
            return connection.respond(http.HTTPStatus.FORBIDDEN, debug)
        self._pending_auth[connection] = auth
        return None

    async def _serve_http(self, path: str) -> Response:
        await asyncio.sleep(self.settings.api_delay_s)  # database round trip
        if path == "/health":
            return json_response(200, self.health())
        prefix = None
        if path.startswith("/api/v1/") or path == "/api/v1":
            if self.rev.has("api_v1_routes_missing"):
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

    # ---------------------------------------------------------------- websocket
    async def handler(self, ws: ServerConnection) -> None:
        """Per-connection loop. Exceptions escaping here become a 1011 close."""
        auth = self._pending_auth.pop(ws, None)
        if auth is None:  # cannot happen through process_request; be defensive
            await ws.close(1008, "unauthenticated")
            return
        self._connections += 1
        ctx = ConnectionContext(connection_id=f"conn-{self._connections}-{uuid.uuid4().hex[:6]}", auth=auth)
        self.log(
            "ws_connected",
            connection_id=ctx.connection_id,
            user_id=auth.user_id,
            transport=auth.transport,
            websocket_state=safe_websocket_state_for_logging(ctx.state),
        )
        try:
            if auth.transport == "subprotocol":
                try:
                    # Browser-path diagnostics; the buggy revision logs the Enum.
                    self.log(
                        "ws_auth_subprotocol",
                        connection_id=ctx.connection_id,
                        user_id=auth.user_id,
                        token_chars=auth.token_chars,
                        websocket_state=self._state_for_log(ctx.state, "ws_state_enum_in_auth_logging"),
                    )
                except TypeError as exc:
                    raise RuntimeError(f"WebSocket authentication error: {exc}") from exc
            ctx.state = WebSocketState.CONNECTED
            await self._send(
                ws,
                {
                    "type": "connection_established",
                    "connection_id": ctx.connection_id,
                    "user_id": auth.user_id,
                    "token_kind": auth.kind,
                    "transport": auth.transport,
                    "revision": self.rev.revision,
                    "server_time": time.time(),
                },
            )
            async for raw in ws:
                if ctx.active_runs:
                    # Message-level race: a frame arrives while a run is streaming.
                    self.log(
                        "message_while_run_active",
                        connection_id=ctx.connection_id,
                        active_runs=sorted(ctx.active_runs),
                        websocket_state=self._state_for_log(ctx.state, "ws_state_enum_in_message_pipeline_logging"),
                    )
                await self._handle_frame(ws, ctx, raw)
        finally:
            for task in list(ctx.active_runs.values()):
                task.cancel()
            ctx.state = WebSocketState.DISCONNECTED
            self.log(
                "ws_disconnected",
                connection_id=ctx.connection_id,
                websocket_state=safe_websocket_state_for_logging(ctx.state),
            )

    @staticmethod
    async def _send(ws: ServerConnection, payload: JsonDict) -> None:
        await ws.send(json.dumps(payload))

    async def _error(self, ws: ServerConnection, code: str, text: str, request_id: Any = None) -> None:
        await self._send(ws, {"type": "error", "code": code, "error": text, "request_id": request_id})

    async def _handle_frame(self, ws: ServerConnection, ctx: ConnectionContext, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            await self._error(ws, "invalid_message", "binary frames are not supported")
            return
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            await self._error(ws, "invalid_json", f"invalid JSON: {exc.__class__.__name__}")
            return
        if not isinstance(msg, dict):
            await self._error(ws, "invalid_message", "message must be a JSON object")
            return
        mtype = msg.get("type")
        if not isinstance(mtype, str) or not mtype:
            await self._error(ws, "invalid_message", "missing 'type'", msg.get("id"))
            return
        route = self.routes.get(mtype)
        if route is None:
            await self._error(ws, "unknown_message_type", f"Unknown message type: {mtype!r}", msg.get("id"))
            return
        await route(ws, ctx, msg)

    # ---------------------------------------------------------- message routes
    async def _on_ping(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        await self._send(
            ws, {"type": "pong", "request_id": msg.get("id"), "payload": msg.get("payload"), "server_time": time.time()}
        )

    async def _on_list_agents(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        reply: JsonDict = {
            "type": "agents",
            "request_id": msg.get("id"),
            "agents": [a.as_dict() for a in agents.AGENTS.values()],
        }
        if msg.get("include_status"):
            status = dict.fromkeys(agents.AGENTS, "ready")
            if self.rev.has("agent_status_snapshot_race") and self.rng.random() < self.settings.flake_rate:
                # Snapshot copied while the cache refresh is half-way through.
                status[self.rng.choice(sorted(status))] = "refreshing"
            reply["status"] = status
            reply["snapshot_size"] = sum(1 for s in status.values() if s == "ready")
        await self._send(ws, reply)

    async def _on_connection_state(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        self.log(
            "connection_state_query",
            connection_id=ctx.connection_id,
            websocket_state=self._state_for_log(ctx.state, "ws_state_enum_in_auth_logging"),
        )
        await self._send(
            ws,
            {
                "type": "connection_state",
                "request_id": msg.get("id"),
                "connection_id": ctx.connection_id,
                "state": safe_websocket_state_for_logging(ctx.state),
                "user_id": ctx.auth.user_id,
                "active_runs": len(ctx.active_runs),
            },
        )

    async def _on_create_thread(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        title = msg.get("title", "untitled")
        if not isinstance(title, str):
            await self._error(ws, "invalid_message", "'title' must be a string", msg.get("id"))
            return
        thread = self.store.create_thread(ctx.auth.user_id, title)
        await self._send(ws, {"type": "thread_created", "request_id": msg.get("id"), **thread.summary()})

    async def _on_list_threads(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        threads = [t.summary() for t in self.store.threads(ctx.auth.user_id)]
        await self._send(ws, {"type": "threads", "request_id": msg.get("id"), "threads": threads})

    async def _on_get_thread(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        thread = self.store.get_thread(ctx.auth.user_id, str(msg.get("thread_id")))
        if thread is None:
            await self._error(ws, "thread_not_found", f"no thread {msg.get('thread_id')!r}", msg.get("id"))
            return
        await self._send(
            ws, {"type": "thread", "request_id": msg.get("id"), **thread.summary(), "messages": thread.messages}
        )

    async def _on_user_context(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        await self._send(
            ws, {"type": "user_context", "request_id": msg.get("id"), **self.store.context(ctx.auth.user_id)}
        )

    async def _on_start_agent(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        request_id = msg.get("id")
        name = msg.get("agent")
        if not isinstance(name, str) or not name:
            await self._error(ws, "invalid_message", "missing 'agent'", request_id)
            return
        spec = agents.AGENTS.get(name)
        if spec is None:
            await self._error(ws, "unknown_agent", f"Unknown agent: {name!r}", request_id)
            return
        message = msg.get("message")
        if not isinstance(message, str):
            await self._error(ws, "invalid_message", "'message' must be a string", request_id)
            return
        thread: Thread | None = None
        if msg.get("thread_id") is not None:
            thread = self.store.get_thread(ctx.auth.user_id, str(msg["thread_id"]))
            if thread is None:
                await self._error(ws, "thread_not_found", f"no thread {msg['thread_id']!r}", request_id)
                return
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        task = asyncio.create_task(
            self._run_agent(ws, ctx, spec, message, run_id, request_id, bool(msg.get("stream")), thread)
        )
        ctx.active_runs[run_id] = task

    async def _run_agent(
        self,
        ws: ServerConnection,
        ctx: ConnectionContext,
        spec: agents.AgentSpec,
        message: str,
        run_id: str,
        request_id: Any,
        stream: bool,
        thread: Thread | None,
    ) -> None:
        """Emit the five critical events (plus stream chunks) for one run."""
        started = time.perf_counter()
        step = self.settings.step_s
        base: JsonDict = {
            "run_id": run_id,
            "agent": spec.name,
            "user_id": ctx.auth.user_id,
            "request_id": request_id,
            "thread_id": thread.thread_id if thread else None,
        }
        try:
            await self._send(ws, {"type": "agent_started", **base, "timestamp": time.time(), "stream": stream})
            await asyncio.sleep(step)
            await self._send(
                ws,
                {"type": "agent_thinking", **base, "timestamp": time.time(), "thought": agents.thinking(spec, message)},
            )
            await asyncio.sleep(step)
            call_id = f"call-{uuid.uuid4().hex[:8]}"
            await self._send(
                ws,
                {
                    "type": "tool_executing",
                    **base,
                    "timestamp": time.time(),
                    "tool": spec.tool,
                    "call_id": call_id,
                    "args": {"message_chars": len(message)},
                },
            )
            output = agents.run_tool(spec, message)
            await asyncio.sleep(step)
            await self._send(
                ws,
                {
                    "type": "tool_completed",
                    **base,
                    "timestamp": time.time(),
                    "tool": spec.tool,
                    "call_id": call_id,
                    "output": output,
                },
            )
            summary = agents.summarize(spec, message, output)
            if stream:
                chunks = agents.chunk_text(summary)
                for index, chunk in enumerate(chunks):
                    await self._send(
                        ws,
                        {
                            "type": "partial_result",
                            **base,
                            "index": index,
                            "chunk": chunk,
                            "total_chunks": len(chunks),
                        },
                    )
                    await asyncio.sleep(step / 2)
                if self.rev.has("stream_finalizer_never_completes"):
                    # The finalizer waits for a "drained" signal nobody sends.
                    self.log("stream_finalizer_pending", run_id=run_id, connection_id=ctx.connection_id)
                    return
            await asyncio.sleep(step)
            if thread is not None:
                thread.messages.append({"role": "user", "content": message, "run_id": run_id})
                thread.messages.append({"role": "assistant", "content": summary, "agent": spec.name, "run_id": run_id})
            self.store.record_run(ctx.auth.user_id, spec.name)
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            ctx.active_runs.pop(run_id, None)  # no longer active once the final event is on the wire
            await self._send(
                ws,
                {
                    "type": "agent_completed",
                    **base,
                    "timestamp": time.time(),
                    "duration_ms": duration_ms,
                    "result": {
                        "agent": spec.name,
                        "summary": summary,
                        "tool": spec.tool,
                        "tool_output": output,
                        "message_chars": len(message),
                        "message_sha256": output["message_sha256"],
                    },
                },
            )
            self.log("agent_run_completed", run_id=run_id, agent=spec.name, duration_ms=duration_ms)
        except ConnectionClosed:
            pass  # client went away mid-run; nothing to deliver to
        finally:
            ctx.active_runs.pop(run_id, None)


async def run_service(rev: Revision, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then close connections (1001) and return."""
    service = StagingService(rev, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with serve(
        service.handler,
        settings.host,
        settings.port,
        process_request=service.process_request,
        select_subprotocol=service.select_subprotocol,
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


def configure_logging() -> None:
    """Route websockets' own errors (e.g. 'connection handler failed') to stdout."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
