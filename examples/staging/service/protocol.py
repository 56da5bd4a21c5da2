"""The WebSocket message protocol: the per-connection loop and the message router.

After the handshake (auth.py) the server greets with ``connection_established``;
every frame must then be a JSON object with a ``type``, dispatched through
:attr:`MessageProtocol.routes`: ``ping``, ``list_agents``,
``get_connection_state``, ``create_thread``, ``list_threads``, ``get_thread``,
``get_user_context`` here, ``start_agent`` / ``execute_agent`` in
agent_runs.py. Malformed or unknown frames get an ``error`` event. An
exception escaping :meth:`MessageProtocol.handler` is what websockets turns
into a 1011 close.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection

from . import agents
from .agent_runs import AgentRunner
from .auth import Authenticator
from .bugs import RevisionBugs
from .connection import (
    ConnectionContext,
    JsonDict,
    WebSocketState,
    safe_websocket_state_for_logging,
    send_error,
    send_json,
)
from .revisions import Revision
from .service_log import ServiceLog
from .user_context import UserContextStore

MessageHandler = Callable[[ServerConnection, ConnectionContext, JsonDict], Awaitable[None]]


class MessageProtocol:
    """Runs each WebSocket connection and answers its messages."""

    def __init__(
        self,
        rev: Revision,
        bugs: RevisionBugs,
        auth: Authenticator,
        store: UserContextStore,
        runner: AgentRunner,
        log: ServiceLog,
    ) -> None:
        self.rev = rev
        self.bugs = bugs
        self.auth = auth
        self.store = store
        self.log = log
        self._connections = 0
        self.routes: dict[str, MessageHandler] = {
            "ping": self._on_ping,
            "list_agents": self._on_list_agents,
            "start_agent": runner.start,
            "execute_agent": runner.start,
            "get_connection_state": self._on_connection_state,
            "create_thread": self._on_create_thread,
            "list_threads": self._on_list_threads,
            "get_thread": self._on_get_thread,
            "get_user_context": self._on_user_context,
        }
        for message_type in bugs.unrouted_message_types():
            del self.routes[message_type]

    async def handler(self, ws: ServerConnection) -> None:
        """Per-connection loop. Exceptions escaping here become a 1011 close."""
        auth = self.auth.claim(ws)
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
                        websocket_state=self.bugs.log_state_in_auth_path(ctx.state),
                    )
                except TypeError as exc:
                    raise RuntimeError(f"WebSocket authentication error: {exc}") from exc
            ctx.state = WebSocketState.CONNECTED
            await send_json(
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
                        websocket_state=self.bugs.log_state_in_message_pipeline(ctx.state),
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

    async def _handle_frame(self, ws: ServerConnection, ctx: ConnectionContext, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            await send_error(ws, "invalid_message", "binary frames are not supported")
            return
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            await send_error(ws, "invalid_json", f"invalid JSON: {exc.__class__.__name__}")
            return
        if not isinstance(msg, dict):
            await send_error(ws, "invalid_message", "message must be a JSON object")
            return
        mtype = msg.get("type")
        if not isinstance(mtype, str) or not mtype:
            await send_error(ws, "invalid_message", "missing 'type'", msg.get("id"))
            return
        route = self.routes.get(mtype)
        if route is None:
            await send_error(ws, "unknown_message_type", f"Unknown message type: {mtype!r}", msg.get("id"))
            return
        await route(ws, ctx, msg)

    # ---------------------------------------------------------- message routes
    async def _on_ping(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        await send_json(
            ws, {"type": "pong", "request_id": msg.get("id"), "payload": msg.get("payload"), "server_time": time.time()}
        )

    async def _on_list_agents(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        reply: JsonDict = {
            "type": "agents",
            "request_id": msg.get("id"),
            "agents": [a.as_dict() for a in agents.AGENTS.values()],
        }
        if msg.get("include_status"):
            status = self.bugs.agent_status_snapshot()
            reply["status"] = status
            reply["snapshot_size"] = sum(1 for s in status.values() if s == "ready")
        await send_json(ws, reply)

    async def _on_connection_state(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        self.log(
            "connection_state_query",
            connection_id=ctx.connection_id,
            websocket_state=self.bugs.log_state_in_auth_path(ctx.state),
        )
        await send_json(
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
            await send_error(ws, "invalid_message", "'title' must be a string", msg.get("id"))
            return
        thread = self.store.create_thread(ctx.auth.user_id, title)
        await send_json(ws, {"type": "thread_created", "request_id": msg.get("id"), **thread.summary()})

    async def _on_list_threads(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        threads = [t.summary() for t in self.store.threads(ctx.auth.user_id)]
        await send_json(ws, {"type": "threads", "request_id": msg.get("id"), "threads": threads})

    async def _on_get_thread(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        thread = self.store.get_thread(ctx.auth.user_id, str(msg.get("thread_id")))
        if thread is None:
            await send_error(ws, "thread_not_found", f"no thread {msg.get('thread_id')!r}", msg.get("id"))
            return
        await send_json(
            ws, {"type": "thread", "request_id": msg.get("id"), **thread.summary(), "messages": thread.messages}
        )

    async def _on_user_context(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        await send_json(
            ws, {"type": "user_context", "request_id": msg.get("id"), **self.store.context(ctx.auth.user_id)}
        )
