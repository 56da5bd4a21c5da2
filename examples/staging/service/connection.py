"""One WebSocket connection: who is on it, its lifecycle state, and how frames go out.

Every frame the service sends is a JSON object; errors are
``{"type": "error", "code", "error", "request_id"}`` events (:func:`send_error`).
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection

JsonDict = dict[str, Any]


class WebSocketState(enum.Enum):
    """Connection lifecycle, modelled on Starlette's (a plain, non-JSON Enum)."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2


def safe_websocket_state_for_logging(state: WebSocketState) -> str:
    """The fix from the seeds: log ``state.name``, never the Enum itself."""
    return state.name


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


async def send_json(ws: ServerConnection, payload: JsonDict) -> None:
    """Send one JSON text frame."""
    await ws.send(json.dumps(payload))


async def send_error(ws: ServerConnection, code: str, text: str, request_id: Any = None) -> None:
    """Send an ``error`` event; the connection stays open."""
    await send_json(ws, {"type": "error", "code": code, "error": text, "request_id": request_id})
