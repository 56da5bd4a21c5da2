"""Client side of the e2e suite: tokens, WebSocket sessions, HTTP calls.

This is the suite's own "E2E auth helper" -- deliberately independent of the
service package (a real e2e suite only shares the *secret* with the system
under test, never its code), so a bug in the service cannot hide itself by
also being in the client.

Configuration (environment):

* ``STAGING_URL``      target, default ``ws://127.0.0.1:$STAGING_PORT`` (8765);
* ``STAGING_TIMEOUT``  seconds to wait for any expected event (default 1.0).
  Kept short on purpose: a streaming request that never completes should
  cost one second, not two minutes, or the suite stops being fast;
* ``STAGING_JWT_SECRET`` shared HMAC secret (default matches the service).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

__all__ = [
    "AGENTS",
    "AGENT_TOOLS",
    "CRITICAL_EVENTS",
    "STAGING_URL",
    "TIMEOUT",
    "AgentRun",
    "HandshakeRejected",
    "HttpResult",
    "RecordProperty",
    "ServerErrorEvent",
    "StagingConnection",
    "http_get",
    "mint_token",
    "sha16",
]

STAGING_URL = os.environ.get("STAGING_URL") or f"ws://127.0.0.1:{os.environ.get('STAGING_PORT') or 8765}"
TIMEOUT = float(os.environ.get("STAGING_TIMEOUT") or 1.0)
SECRET = os.environ.get("STAGING_JWT_SECRET") or "loopdash-staging-shared-secret"

JsonDict = dict[str, Any]
#: Type of pytest's ``record_property`` fixture (metrics such as ws_latency_ms).
RecordProperty = Callable[[str, object], None]
_ids = itertools.count(1)

#: The API contract as the suite knows it (what the frontend expects).
CRITICAL_EVENTS: tuple[str, ...] = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)
AGENT_TOOLS: dict[str, str] = {
    "triage_agent": "classify_request",
    "data_helper": "query_metrics",
    "optimization_agent": "cost_model",
    "reporting_agent": "render_report",
    "supervisor_agent": "delegate",
    "research_agent": "search_corpus",
}
AGENTS: tuple[str, ...] = tuple(AGENT_TOOLS)


def _split_target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, ws_path) of STAGING_URL; path defaults to /ws."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    port = parts.port or (443 if secure else 80)
    path = parts.path.rstrip("/") or ""
    ws_path = path if path.endswith("/ws") else f"{path}/ws"
    return ("wss" if secure else "ws"), parts.hostname or "127.0.0.1", port, ws_path


def ws_endpoint() -> str:
    """Full WebSocket URL (``.../ws``)."""
    scheme, host, port, path = _split_target(STAGING_URL)
    return f"{scheme}://{host}:{port}{path}"


def http_base() -> tuple[str, int]:
    """Host and port for plain HTTP calls to the same target."""
    _, host, port, _ = _split_target(STAGING_URL)
    return host, port


def sha16(message: str) -> str:
    """The digest the service reports for a message (first 16 hex of SHA-256)."""
    return hashlib.sha256(message.encode("utf-8")).hexdigest()[:16]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    user_id: str,
    *,
    kind: str = "user",
    secret: str | None = None,
    ttl: float = 3600.0,
    header: JsonDict | None = None,
    **claims: Any,
) -> str:
    """HS256 token for ``user_id``; keyword claims override the defaults."""
    now = time.time()
    payload: JsonDict = {
        "sub": user_id,
        "kind": kind,
        "iss": "loopdash-e2e-auth",
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": uuid.uuid4().hex,
    }
    payload.update(claims)
    head = _b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}"
    sig = hmac.new((secret or SECRET).encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(sig)}"


class HandshakeRejected(Exception):
    """The server refused the upgrade; carries status and body for the report."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"server rejected WebSocket connection: HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


class ServerErrorEvent(Exception):
    """An ``error`` event arrived where a normal reply was expected."""

    def __init__(self, event: JsonDict) -> None:
        super().__init__(f"server error event {event.get('code')}: {event.get('error')}")
        self.event = event
        self.code = event.get("code")


@dataclass
class AgentRun:
    """Everything received for one agent request."""

    events: list[JsonDict] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def types(self) -> list[str]:
        """Event types in arrival order."""
        return [e["type"] for e in self.events]

    def first(self, event_type: str) -> JsonDict:
        """First event of ``event_type`` (AssertionError if absent)."""
        for event in self.events:
            if event["type"] == event_type:
                return event
        raise AssertionError(f"no {event_type!r} event; got {self.types}")

    def all(self, event_type: str) -> list[JsonDict]:
        """All events of ``event_type``."""
        return [e for e in self.events if e["type"] == event_type]

    @property
    def result(self) -> JsonDict:
        """The ``result`` of ``agent_completed``."""
        return self.first("agent_completed")["result"]

    @property
    def critical(self) -> list[str]:
        """Only the five critical event types, in order."""
        return [t for t in self.types if t in CRITICAL_EVENTS]


def _describe(events: Iterable[JsonDict]) -> str:
    names = [e.get("type", "?") for e in events]
    return ", ".join(names) if names else "nothing"


class StagingConnection:
    """A synchronous WebSocket session to the staging target."""

    def __init__(self, ws: ClientConnection, welcome: JsonDict, connect_ms: float) -> None:
        self.ws = ws
        self.welcome = welcome
        self.connect_ms = connect_ms

    @classmethod
    def open(
        cls,
        user_id: str = "staging-e2e-user-001",
        *,
        kind: str = "user",
        transport: str = "header",
        token: str | None = None,
        timeout: float | None = None,
    ) -> StagingConnection:
        """Connect, authenticate via ``transport`` and read ``connection_established``."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        timeout = TIMEOUT if timeout is None else timeout
        token = mint_token(user_id, kind=kind) if token is None else token
        uri = ws_endpoint()
        headers: dict[str, str] = {}
        subprotocols: list[Any] | None = None
        if transport == "header":
            headers["Authorization"] = f"Bearer {token}"
        elif transport == "query":
            uri = f"{uri}?token={token}"
        elif transport == "subprotocol":
            subprotocols = [f"jwt.{token}"]
        elif transport != "none":
            raise ValueError(f"unknown transport {transport!r}")
        started = time.perf_counter()
        try:
            ws = connect(
                uri,
                additional_headers=headers or None,
                subprotocols=subprotocols,
                proxy=None,
                compression=None,
                open_timeout=max(timeout, 2.0),
                ping_interval=None,
                close_timeout=1.0,
                legacy=True,  # we own the lifetime (closed by close()/the fixture)
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace") if exc.response.body else ""
            raise HandshakeRejected(exc.response.status_code, body) from None
        try:
            welcome = json.loads(ws.recv(timeout=timeout))
        except ConnectionClosed as exc:
            ws.close()
            raise exc.with_traceback(None) from None
        except TimeoutError:
            ws.close()
            raise TimeoutError(f"Timeout after {timeout}s waiting for connection_established") from None
        except BaseException:
            ws.close()
            raise
        if welcome.get("type") != "connection_established":
            ws.close()
            raise AssertionError(f"expected connection_established first, got {welcome!r}")
        return cls(ws, welcome, (time.perf_counter() - started) * 1000)

    # -- context manager -------------------------------------------------
    def __enter__(self) -> StagingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close politely; a connection the server already killed is fine."""
        self.ws.close()

    # -- primitives --------------------------------------------------------
    def send(self, payload: JsonDict | str | bytes) -> None:
        """Send a dict as JSON, or a raw str/bytes frame as is."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        self.ws.send(json.dumps(payload) if isinstance(payload, dict) else payload)

    def recv(self, timeout: float | None = None) -> JsonDict:
        """Next JSON event; TimeoutError after ``timeout`` (default STAGING_TIMEOUT)."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        wait = TIMEOUT if timeout is None else timeout
        try:
            raw = self.ws.recv(timeout=wait)
        except ConnectionClosed as exc:
            raise exc.with_traceback(None) from None
        except TimeoutError:
            raise TimeoutError(f"Timeout after {wait}s waiting for the next event") from None
        return json.loads(raw)

    def collect(
        self,
        done: Callable[[JsonDict], bool],
        *,
        what: str,
        timeout: float | None = None,
        accept_errors: bool = False,
        request_id: Any = None,
    ) -> list[JsonDict]:
        """Receive until ``done(event)``; raise on timeout or (unless accepted) error events.

        ``request_id`` filters out events that belong to other requests on
        the same connection.
        """
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        wait = TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + wait
        events: list[JsonDict] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Timeout after {wait}s waiting for {what} (received: {_describe(events)})")
            try:
                event = json.loads(self.ws.recv(timeout=remaining))
            except ConnectionClosed as exc:
                raise exc.with_traceback(None) from None  # keep "received 1011 ..." without library frames
            except TimeoutError:
                raise TimeoutError(
                    f"Timeout after {wait}s waiting for {what} (received: {_describe(events)})"
                ) from None
            if request_id is not None and event.get("request_id") not in (request_id, None):
                continue
            events.append(event)
            if event.get("type") == "error" and not accept_errors:
                raise ServerErrorEvent(event)
            if done(event):
                return events

    def request(self, payload: JsonDict, expect: str, *, timeout: float | None = None) -> JsonDict:
        """Send ``payload`` with a fresh id and return the reply of type ``expect``."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        request_id = payload.setdefault("id", f"req-{next(_ids)}")
        self.send(payload)
        events = self.collect(
            lambda e: e.get("type") == expect and e.get("request_id") == request_id,
            what=expect,
            timeout=timeout,
            request_id=request_id,
        )
        return events[-1]

    def request_error(self, payload: JsonDict | str | bytes, *, timeout: float | None = None) -> JsonDict:
        """Send something invalid and return the ``error`` event it must produce."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        self.send(payload)
        events = self.collect(
            lambda e: e.get("type") == "error", what="error event", timeout=timeout, accept_errors=True
        )
        return events[-1]

    def run_agent(
        self,
        agent: str,
        message: str,
        *,
        msg_type: str = "execute_agent",
        stream: bool = False,
        thread_id: str | None = None,
        until: str = "agent_completed",
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> AgentRun:
        """Ask ``agent`` to handle ``message`` and gather events up to ``until``."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        request_id = request_id or f"req-{next(_ids)}"
        payload: JsonDict = {"type": msg_type, "agent": agent, "message": message, "id": request_id}
        if stream:
            payload["stream"] = True
        if thread_id is not None:
            payload["thread_id"] = thread_id
        started = time.perf_counter()
        self.send(payload)
        events = self.collect(lambda e: e.get("type") == until, what=until, timeout=timeout, request_id=request_id)
        return AgentRun(events=events, elapsed_ms=(time.perf_counter() - started) * 1000)

    def ping(self, payload: Any = None) -> tuple[JsonDict, float]:
        """Round trip a ping; returns (pong, latency in ms)."""
        __tracebackhide__ = True  # failures point at the test line, not at this helper
        started = time.perf_counter()
        pong = self.request({"type": "ping", "payload": payload}, "pong")
        return pong, (time.perf_counter() - started) * 1000


@dataclass
class HttpResult:
    """An HTTP response from the staging target."""

    status: int
    body: bytes
    headers: dict[str, str]
    elapsed_ms: float

    def json(self) -> Any:
        """Body decoded as JSON."""
        return json.loads(self.body)


def http_get(path: str, *, timeout: float | None = None, headers: dict[str, str] | None = None) -> HttpResult:
    """Plain GET against the target (no proxies, no retries: an e2e test sees what a user sees)."""
    __tracebackhide__ = True  # failures point at the test line, not at this helper
    host, port = http_base()
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT if timeout is None else timeout)
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return HttpResult(
            status=response.status,
            body=body,
            headers={k.lower(): v for k, v in response.getheaders()},
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
    finally:
        conn.close()


#: Message kinds the suite sends; ids become part of the test node ids.
PROMPTS: dict[str, str] = {
    "question": "What drove last week's GPU spend in the training cluster?",
    "cost_analysis": "Estimate the monthly cost if we move batch inference to spot instances.",
    "summary": "Summarize the incident timeline for the 1011 WebSocket errors.",
    "unicode": "Résumé des coûts ✓ 数据分析 🚀 — naïve café",
    "multiline": "line one\nline two: latency p95\nline three: throughput",
    "long": "Explain the throughput regression in detail. " * 60,
    "json_like": '{"query": "rows", "limit": 10}',
    "short": "hi",
}

#: The pool of staging e2e users (the seeds' staging-e2e-user-NNN).
USERS: tuple[str, ...] = tuple(f"staging-e2e-user-{i:03d}" for i in range(1, 11))
