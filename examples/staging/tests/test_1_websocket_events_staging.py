"""The five critical WebSocket events, for every agent and message kind.

Chat value depends on users *seeing* the agent work, so the order and the
payload of agent_started -> agent_thinking -> tool_executing ->
tool_completed -> agent_completed are checked, not just their presence.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from staging_client import AGENT_TOOLS, AGENTS, CRITICAL_EVENTS, PROMPTS, USERS, RecordProperty, StagingConnection

pytestmark = [pytest.mark.p2, pytest.mark.area_events]

Connect = Callable[..., StagingConnection]


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
@pytest.mark.parametrize("agent", AGENTS)
def test_five_critical_events_in_order(
    connect: Connect, agent: str, prompt: str, record_property: RecordProperty
) -> None:
    """All five events arrive exactly once, in the contract order."""
    conn = connect()
    run = conn.run_agent(agent, PROMPTS[prompt])
    record_property("agent_run_ms", round(run.elapsed_ms, 3))
    assert run.critical == list(CRITICAL_EVENTS)


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
@pytest.mark.parametrize("agent", AGENTS)
def test_event_payloads_reference_run(connect: Connect, agent: str, prompt: str) -> None:
    """Every event names the same run, agent, user and request id."""
    conn = connect("staging-e2e-user-002")
    run = conn.run_agent(agent, PROMPTS[prompt], request_id=f"evt-{agent}-{prompt}")
    run_ids = {e["run_id"] for e in run.events}
    assert len(run_ids) == 1 and next(iter(run_ids)).startswith("run-")
    assert {e["agent"] for e in run.events} == {agent}
    assert {e["user_id"] for e in run.events} == {"staging-e2e-user-002"}
    assert {e["request_id"] for e in run.events} == {f"evt-{agent}-{prompt}"}


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
@pytest.mark.parametrize("agent", AGENTS)
def test_agent_thinking_announces_tool(connect: Connect, agent: str, prompt: str) -> None:
    """agent_thinking tells the user which tool comes next and how much it read."""
    conn = connect("staging-e2e-user-003")
    run = conn.run_agent(agent, PROMPTS[prompt])
    thought = run.first("agent_thinking")["thought"]
    assert AGENT_TOOLS[agent] in thought
    assert f"{len(PROMPTS[prompt])}-char" in thought


@pytest.mark.parametrize("user", USERS[:4])
@pytest.mark.parametrize("agent", AGENTS)
def test_tool_events_pair_up(connect: Connect, agent: str, user: str) -> None:
    """tool_executing and tool_completed share a call id and the agent's tool."""
    conn = connect(user)
    run = conn.run_agent(agent, f"tool pairing check for {user}")
    executing, completed = run.first("tool_executing"), run.first("tool_completed")
    assert executing["call_id"] == completed["call_id"]
    assert executing["tool"] == completed["tool"] == AGENT_TOOLS[agent]
    assert executing["args"]["message_chars"] == len(f"tool pairing check for {user}")


@pytest.mark.parametrize("agent", AGENTS)
def test_event_timestamps_monotonic(connect: Connect, agent: str) -> None:
    """Server timestamps never go backwards within a run (canonical start_agent type)."""
    conn = connect()
    run = conn.run_agent(agent, "timestamp ordering", msg_type="start_agent")
    stamps = [e["timestamp"] for e in run.events if "timestamp" in e]
    assert len(stamps) == len(CRITICAL_EVENTS)
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("user", USERS)
def test_connection_established_event(connect: Connect, user: str, record_property: RecordProperty) -> None:
    """The greeting identifies the user and the connection."""
    conn = connect(user)
    record_property("ws_latency_ms", round(conn.connect_ms, 3))
    assert conn.welcome["user_id"] == user
    assert conn.welcome["connection_id"].startswith("conn-")
    assert conn.welcome["transport"] == "header"
