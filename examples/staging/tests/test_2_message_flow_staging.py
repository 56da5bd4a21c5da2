"""Message processing: round trips, validation errors, routing and pipelining.

The pipelining tests send a second frame while an agent run is still in
flight -- the "first message exchange" race from the seeds that kept
producing 1011 after the startup race was fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from staging_client import AGENTS, CRITICAL_EVENTS, PROMPTS, USERS, RecordProperty, StagingConnection

pytestmark = [pytest.mark.p2, pytest.mark.area_chat]

Connect = Callable[..., StagingConnection]

PAYLOAD_SIZES = {"tiny": 1, "small": 64, "medium": 4096, "large": 65536}

ECHO_PAYLOADS: dict[str, Any] = {
    "string": "hello staging",
    "integer": 42,
    "float": 3.25,
    "list": [1, "two", 3.0, None],
    "nested": {"a": {"b": {"c": [1, 2, {"d": "deep"}]}}},
    "unicode": "ünïcödé ✓ 数据 🚀",
    "empty_string": "",
    "null": None,
    "boolean": True,
    "long_list": list(range(500)),
}


@pytest.mark.parametrize("size", list(PAYLOAD_SIZES))
@pytest.mark.parametrize("user", USERS)
def test_ping_roundtrip(connect: Connect, user: str, size: str, record_property: RecordProperty) -> None:
    """A ping of each size comes back intact; latency is recorded as a metric."""
    conn = connect(user)
    payload = "x" * PAYLOAD_SIZES[size]
    pong, latency_ms = conn.ping(payload)
    record_property("ws_latency_ms", round(latency_ms, 3))
    assert pong["payload"] == payload
    assert latency_ms < 1000


@pytest.mark.parametrize("kind", list(ECHO_PAYLOADS))
def test_ping_payload_echo(connect: Connect, kind: str) -> None:
    """JSON values of every type survive the round trip unchanged."""
    conn = connect()
    pong, _ = conn.ping(ECHO_PAYLOADS[kind])
    assert pong["payload"] == ECHO_PAYLOADS[kind]
    assert isinstance(pong["server_time"], float)


@pytest.mark.parametrize(
    "message_type",
    ["frobnicate", "EXECUTE_AGENT", "execute-agent", "agent", "run", "ping ", "admin_shutdown", "__proto__"],
)
def test_unknown_message_type_returns_error(connect: Connect, message_type: str) -> None:
    """Unroutable types get an explicit error instead of silence."""
    conn = connect()
    error = conn.request_error({"type": message_type, "id": "unknown-1"})
    assert error["code"] == "unknown_message_type"
    assert repr(message_type) in error["error"]
    assert error["request_id"] == "unknown-1"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1, 2, 3]", "invalid_message"),
        ('"just a string"', "invalid_message"),
        ("42", "invalid_message"),
        ('{"no_type": true}', "invalid_message"),
        ('{"type": 7}', "invalid_message"),
        (b"\x00\x01binary", "invalid_message"),
    ],
    ids=["broken", "empty", "array", "string", "number", "no-type", "type-not-str", "binary"],
)
def test_malformed_frames_return_error(connect: Connect, frame: str | bytes, code: str) -> None:
    """Malformed frames produce a typed error and the connection stays usable."""
    conn = connect()
    error = conn.request_error(frame)
    assert error["code"] == code
    pong, _ = conn.ping("still alive")
    assert pong["payload"] == "still alive"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"message": "no agent"}, "invalid_message"),
        ({"agent": 12, "message": "agent is a number"}, "invalid_message"),
        ({"agent": "", "message": "empty agent"}, "invalid_message"),
        ({"agent": "triage_agent"}, "invalid_message"),
        ({"agent": "triage_agent", "message": ["not", "a", "string"]}, "invalid_message"),
        ({"agent": "triage_agent", "message": "x", "thread_id": "thread-does-not-exist"}, "thread_not_found"),
    ],
    ids=["missing-agent", "agent-int", "agent-empty", "missing-message", "message-list", "bad-thread"],
)
def test_invalid_agent_request_fields(connect: Connect, payload: dict[str, Any], code: str) -> None:
    """execute_agent validates its fields before starting anything."""
    conn = connect()
    error = conn.request_error({"type": "execute_agent", "id": "bad-req", **payload})
    assert error["code"] == code
    assert error["request_id"] == "bad-req"


@pytest.mark.parametrize("followup", ["ping", "list_agents", "second_run"])
@pytest.mark.parametrize("agent", AGENTS)
def test_pipelined_messages_same_connection(connect: Connect, agent: str, followup: str) -> None:
    """A frame sent while a run is in flight is served, and the run still completes."""
    conn = connect("staging-e2e-user-004")
    conn.send({"type": "execute_agent", "agent": agent, "message": "first", "id": "run-a"})
    if followup == "ping":
        conn.send({"type": "ping", "id": "ping-b", "payload": "during run"})
        wanted = {("agent_completed", "run-a"), ("pong", "ping-b")}
    elif followup == "list_agents":
        conn.send({"type": "list_agents", "id": "list-b"})
        wanted = {("agent_completed", "run-a"), ("agents", "list-b")}
    else:
        conn.send({"type": "execute_agent", "agent": agent, "message": "second", "id": "run-b"})
        wanted = {("agent_completed", "run-a"), ("agent_completed", "run-b")}
    seen: set[tuple[str, str]] = set()

    def all_replies_in(event: dict[str, Any]) -> bool:
        seen.add((str(event["type"]), str(event.get("request_id"))))
        return wanted <= seen

    conn.collect(all_replies_in, what=" and ".join(sorted(t for t, _ in wanted)))
    assert wanted <= seen


@pytest.mark.parametrize("agent", AGENTS)
def test_sequential_runs_on_one_connection(connect: Connect, agent: str) -> None:
    """Three runs back to back on one socket get three distinct run ids."""
    conn = connect("staging-e2e-user-005")
    runs = [conn.run_agent(agent, f"sequential {i}") for i in range(3)]
    assert len({r.first("agent_started")["run_id"] for r in runs}) == 3
    assert all(r.critical == list(CRITICAL_EVENTS) for r in runs)


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
def test_request_id_echo(connect: Connect, prompt: str) -> None:
    """The client's request id comes back on every event of its run."""
    conn = connect("staging-e2e-user-006")
    run = conn.run_agent("triage_agent", PROMPTS[prompt], request_id=f"echo-{prompt}")
    assert {e["request_id"] for e in run.events} == {f"echo-{prompt}"}


@pytest.mark.parametrize("transport", ["header", "query"])
def test_connection_state_query(connect: Connect, transport: str) -> None:
    """get_connection_state reports CONNECTED with the state's *name*."""
    conn = connect("staging-e2e-user-007", transport=transport)
    state = conn.request({"type": "get_connection_state"}, "connection_state")
    assert state["state"] == "CONNECTED"
    assert state["user_id"] == "staging-e2e-user-007"
    assert state["active_runs"] == 0


def test_list_agents_over_websocket(connect: Connect) -> None:
    """The registry over WebSocket lists every agent with its tool."""
    conn = connect()
    reply = conn.request({"type": "list_agents"}, "agents")
    assert sorted(a["name"] for a in reply["agents"]) == sorted(AGENTS)
    assert all(len(a["tools"]) == 1 for a in reply["agents"])
