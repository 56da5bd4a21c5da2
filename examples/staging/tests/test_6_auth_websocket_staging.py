"""WebSocket authentication: token kinds x transports x users, and rejections.

Browsers can only authenticate through the ``jwt.<token>`` subprotocol, so
that transport is as important as the Authorization header. 'e2e' tokens are
what this very suite uses in CI; they must be accepted like user tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from staging_client import USERS, HandshakeRejected, RecordProperty, StagingConnection, mint_token

pytestmark = [pytest.mark.p2, pytest.mark.area_auth]

Connect = Callable[..., StagingConnection]
TRANSPORTS = ["header", "query", "subprotocol"]
KINDS = ["user", "e2e", "service"]


def _bad_tokens() -> dict[str, str]:
    user = "staging-e2e-user-001"
    good = mint_token(user)
    head, body, _sig = good.split(".")
    return {
        "expired": mint_token(user, ttl=-600),
        "wrong-secret": mint_token(user, secret="not-the-staging-secret"),
        "tampered-payload": f"{head}.{mint_token('someone-else').split('.')[1]}.{_sig}",
        "two-segments": f"{head}.{body}",
        "alg-none": mint_token(user, header={"alg": "none", "typ": "JWT"}),
        "not-yet-valid": mint_token(user, nbf=int(time.time()) + 3600),
        "empty-subject": mint_token(""),
        "garbage": "this-is-not-a-token",
    }


BAD_TOKEN_CASES = list(_bad_tokens())


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_token_accepted(kind: str, transport: str, user: str, record_property: RecordProperty) -> None:
    """Valid tokens of every kind work over every transport."""
    with StagingConnection.open(user, kind=kind, transport=transport) as conn:
        record_property("ws_latency_ms", round(conn.connect_ms, 3))
        assert conn.welcome["user_id"] == user
        assert conn.welcome["token_kind"] == kind
        assert conn.welcome["transport"] == transport
        pong, _ = conn.ping(kind)
        assert pong["payload"] == kind


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_invalid_token_rejected(case: str, transport: str) -> None:
    """Invalid tokens are refused at the handshake with 403, over every transport."""
    token = _bad_tokens()[case]
    with pytest.raises(HandshakeRejected) as excinfo:
        StagingConnection.open(token=token, transport=transport)
    assert excinfo.value.status == 403


@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_rejection_is_diagnostic(case: str) -> None:
    """The 403 body says why, with the token shape (chars, dots) for debugging."""
    token = _bad_tokens()[case]
    with pytest.raises(HandshakeRejected) as excinfo:
        StagingConnection.open(token=token)
    body = excinfo.value.body
    assert body.startswith("Token validation failed")
    assert f"{len(token)} chars, {token.count('.')} dots" in body


def test_missing_token_is_401() -> None:
    """No token at all is a 401, not a 403."""
    with pytest.raises(HandshakeRejected) as excinfo:
        StagingConnection.open(transport="none")
    assert excinfo.value.status == 401


@pytest.mark.parametrize("user", USERS)
def test_identity_matches_token_subject(connect: Connect, user: str) -> None:
    """Agent events carry the token's subject, never a default user."""
    conn = connect(user)
    run = conn.run_agent("triage_agent", "who am I?", msg_type="start_agent")
    assert {e["user_id"] for e in run.events} == {user}
