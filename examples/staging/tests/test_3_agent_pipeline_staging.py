"""Agent pipeline: every agent, for every user, returns a real result.

Results are checked against values the suite computes itself (message
length and SHA-256), so a run that "completes" without processing the
user's message fails.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from staging_client import (
    AGENT_TOOLS,
    AGENTS,
    CRITICAL_EVENTS,
    PROMPTS,
    USERS,
    RecordProperty,
    StagingConnection,
    sha16,
)

pytestmark = [pytest.mark.p2, pytest.mark.area_chat]

Connect = Callable[..., StagingConnection]

MESSAGE_SIZES = {"10": 10, "1k": 1_000, "10k": 10_000, "100k": 100_000}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("agent", AGENTS)
def test_execute_agent_returns_result(connect: Connect, agent: str, user: str, record_property: RecordProperty) -> None:
    """execute_agent completes with a result addressed to the right user."""
    conn = connect(user)
    message = f"{user} asks {agent} for a status update"
    run = conn.run_agent(agent, message)
    record_property("agent_run_ms", round(run.elapsed_ms, 3))
    completed = run.first("agent_completed")
    assert completed["user_id"] == user
    assert run.result["agent"] == agent
    assert run.result["message_sha256"] == sha16(message)
    assert completed["duration_ms"] > 0


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
@pytest.mark.parametrize("agent", AGENTS)
def test_result_reflects_message(connect: Connect, agent: str, prompt: str) -> None:
    """The answer is about *this* message: length, hash and tool provenance."""
    conn = connect("staging-e2e-user-008")
    message = PROMPTS[prompt]
    result = conn.run_agent(agent, message).result
    assert result["message_chars"] == len(message)
    assert result["tool_output"]["message_sha256"] == sha16(message)
    assert result["tool"] == AGENT_TOOLS[agent]
    assert AGENT_TOOLS[agent] in result["summary"]
    assert result["tool_output"]["words"] == len(message.split())


@pytest.mark.parametrize("size", list(MESSAGE_SIZES))
@pytest.mark.parametrize("agent", AGENTS)
def test_message_sizes(connect: Connect, agent: str, size: str) -> None:
    """Large prompts (up to 100k chars) are processed, not truncated."""
    conn = connect("staging-e2e-user-009")
    message = ("data " * (MESSAGE_SIZES[size] // 5 + 1))[: MESSAGE_SIZES[size]]
    result = conn.run_agent(agent, message).result
    assert result["message_chars"] == MESSAGE_SIZES[size]
    assert result["message_sha256"] == sha16(message)


@pytest.mark.parametrize("name", ["gpt_agent", "TRIAGE_AGENT", "triage", "supervisor", "data-helper", "nonexistent"])
def test_unknown_agent_rejected(connect: Connect, name: str) -> None:
    """Unknown agents are refused with unknown_agent, nothing is started."""
    conn = connect()
    error = conn.request_error({"type": "execute_agent", "agent": name, "message": "hello", "id": "unk"})
    assert error["code"] == "unknown_agent"
    assert name in error["error"]


@pytest.mark.parametrize("agent", AGENTS)
def test_start_agent_canonical_type(connect: Connect, agent: str) -> None:
    """The canonical start_agent type drives the same pipeline."""
    conn = connect()
    run = conn.run_agent(agent, "canonical message type", msg_type="start_agent")
    assert run.critical == list(CRITICAL_EVENTS)
    assert run.result["agent"] == agent


@pytest.mark.parametrize("agent", AGENTS)
def test_tool_output_matches_agent_contract(connect: Connect, agent: str) -> None:
    """Each tool returns the fields its agent's contract promises."""
    conn = connect()
    output = conn.run_agent(agent, "What is our GPU cost trend this month?").result["tool_output"]
    expected_fields = {
        "classify_request": {"category", "confidence"},
        "query_metrics": {"metric", "rows", "total"},
        "cost_model": {"monthly_savings_usd", "recommendation"},
        "render_report": {"sections", "chars"},
        "delegate": {"delegated_to", "sub_result"},
        "search_corpus": {"hits", "top_document"},
    }[AGENT_TOOLS[agent]]
    assert expected_fields <= set(output)
