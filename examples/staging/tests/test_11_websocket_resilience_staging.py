"""Connection resilience: reconnects, aborted runs, control frames, bursts.

A chat client reconnects constantly (tabs, mobile networks); the server must
shrug off clients that vanish mid-run and keep serving everybody else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from staging_client import AGENTS, CRITICAL_EVENTS, USERS, RecordProperty, StagingConnection
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.p2, pytest.mark.area_events]

Connect = Callable[..., StagingConnection]


@pytest.mark.parametrize("user", USERS)
def test_reconnect_after_close(user: str) -> None:
    """Closing and reconnecting gives a new connection for the same user."""
    with StagingConnection.open(user) as first:
        first_id = first.welcome["connection_id"]
    with StagingConnection.open(user) as second:
        assert second.welcome["connection_id"] != first_id
        assert second.ping("again")[0]["payload"] == "again"


@pytest.mark.parametrize("agent", AGENTS)
def test_client_close_mid_run_does_not_break_server(agent: str) -> None:
    """A client that disappears during a run does not disturb the next one."""
    with StagingConnection.open("staging-e2e-user-009") as quitter:
        quitter.send({"type": "start_agent", "agent": agent, "message": "leaving early", "id": "gone"})
        quitter.collect(lambda e: e["type"] == "agent_started", what="agent_started")
    with StagingConnection.open("staging-e2e-user-009") as conn:
        run = conn.run_agent(agent, "after the quitter", msg_type="start_agent")
        assert run.critical == list(CRITICAL_EVENTS)


@pytest.mark.parametrize("count", [1, 3, 5, 10, 20])
def test_protocol_ping_frames(connect: Connect, count: int, record_property: RecordProperty) -> None:
    """WebSocket control-frame pings are answered (keepalive works)."""
    conn = connect()
    started = time.perf_counter()
    for _ in range(count):
        assert conn.ws.ping().wait(timeout=1.0)
    record_property("ws_latency_ms", round((time.perf_counter() - started) * 1000 / count, 3))


@pytest.mark.parametrize("cycles", [5, 10, 20])
def test_rapid_connect_disconnect(cycles: int) -> None:
    """Many short-lived connections in a row all succeed."""
    ids = set()
    for i in range(cycles):
        with StagingConnection.open(f"staging-e2e-churn-{i % 3}") as conn:
            ids.add(conn.welcome["connection_id"])
    assert len(ids) == cycles


@pytest.mark.parametrize("transport", ["header", "query", "subprotocol"])
def test_normal_close_code(transport: str) -> None:
    """A client-initiated close ends with code 1000 on both sides."""
    conn = StagingConnection.open("staging-e2e-user-008", transport=transport)
    conn.close()
    assert conn.ws.close_code == 1000


@pytest.mark.parametrize("burst", [10, 50, 100])
def test_burst_of_pings(connect: Connect, burst: int) -> None:
    """A burst of pings sent without waiting is answered completely and in order."""
    conn = connect()
    for i in range(burst):
        conn.send({"type": "ping", "id": f"burst-{i}", "payload": i})
    pongs = [conn.recv() for _ in range(burst)]
    assert [p["payload"] for p in pongs] == list(range(burst))


@pytest.mark.parametrize("errors", [1, 5, 10, 25])
def test_connection_survives_error_sequence(connect: Connect, errors: int) -> None:
    """A run of bad frames never kills the connection."""
    conn = connect()
    for i in range(errors):
        assert conn.request_error("{bad" + str(i))["code"] == "invalid_json"
    assert conn.ping("ok")[0]["payload"] == "ok"


def test_server_closed_connection_is_reported(connect: Connect) -> None:
    """Using a connection after closing it raises ConnectionClosed (no hang)."""
    conn = connect()
    conn.close()
    with pytest.raises(ConnectionClosed):
        conn.send({"type": "ping"})
