"""Authentication of WebSocket upgrades, decided during the HTTP handshake.

A token arrives as ``Authorization: Bearer <t>`` (header), ``?token=<t>``
(query) or the ``jwt.<t>`` subprotocol (what browsers use, they cannot set
headers). A valid token is remembered for the connection until its handler
claims it; an invalid one is refused with HTTP 401/403 before the upgrade.
"""

from __future__ import annotations

import asyncio
import http
import weakref
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from . import tokens
from .bugs import RevisionBugs
from .connection import AuthInfo
from .service_log import ServiceLog
from .settings import Settings


class Authenticator:
    """Checks tokens at the handshake and hands the result to the connection handler."""

    def __init__(self, bugs: RevisionBugs, settings: Settings, log: ServiceLog) -> None:
        self.bugs = bugs
        self.settings = settings
        self.log = log
        self._pending_auth: weakref.WeakKeyDictionary[ServerConnection, AuthInfo] = weakref.WeakKeyDictionary()

    def _secret_for(self, token: str) -> str:
        """Pick the verification secret; the bug resolves a legacy one for e2e tokens."""
        wrong = self.bugs.wrong_secret_for(token)
        return wrong if wrong is not None else self.settings.secret

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

    async def check_upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the upgrade (401/403 response) or remember who it belongs to (None)."""
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

    def claim(self, connection: ServerConnection) -> AuthInfo | None:
        """The AuthInfo :meth:`check_upgrade` stored for ``connection`` (once)."""
        return self._pending_auth.pop(connection, None)
