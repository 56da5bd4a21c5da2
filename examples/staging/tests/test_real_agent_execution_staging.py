"""Realistic agent sessions: business questions from real users.

The scenarios are the kind of questions the product answers every day; the
assertions check that the full pipeline produced an answer for that exact
question, for each agent and for many users.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from staging_client import AGENTS, CRITICAL_EVENTS, USERS, RecordProperty, StagingConnection, sha16

pytestmark = [pytest.mark.p2, pytest.mark.area_chat]

Connect = Callable[..., StagingConnection]

SCENARIOS = {
    "gpu-spend": "Why did our GPU spend go up 30% last week?",
    "spot-migration": "Can we move nightly batch inference to spot instances safely?",
    "latency-regression": "p95 latency of the chat API doubled after Tuesday's deploy. Why?",
    "idle-capacity": "Which GPU pools were idle more than 50% of the time in October?",
    "budget-forecast": "Forecast Q4 model-serving cost with 20% traffic growth.",
    "token-usage": "Break down token usage by customer tier for September.",
    "cache-strategy": "Would a semantic cache reduce our LLM costs?",
    "region-choice": "Should the new inference cluster go to us-east or europe-west?",
    "incident-summary": "Summarize the 1011 WebSocket incident for the status page.",
    "sla-report": "Write the monthly SLA report for enterprise customers.",
    "model-choice": "Compare cost per 1k tokens across our three deployed models.",
    "data-freshness": "How fresh is the usage table the dashboards read from?",
    "rightsizing": "Recommend rightsizing for the embedding service.",
    "alerting": "Which alerts fired most often last month and were they actionable?",
    "multilingual": "Résumez les coûts d'inférence du mois dernier, s'il vous plaît.",
    "long-context": "Context: " + "usage row; " * 150 + "Question: what stands out?",
}
USER_AGENTS = list(AGENTS)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("agent", AGENTS)
def test_real_agent_scenario(connect: Connect, agent: str, scenario: str, record_property: RecordProperty) -> None:
    """Each agent answers each business scenario end to end."""
    conn = connect("staging-e2e-user-002")
    message = SCENARIOS[scenario]
    run = conn.run_agent(agent, message)
    record_property("agent_run_ms", round(run.elapsed_ms, 3))
    assert run.critical == list(CRITICAL_EVENTS)
    assert run.result["message_sha256"] == sha16(message)
    assert run.result["summary"].startswith(f"{agent} answered")


@pytest.mark.parametrize("agent", USER_AGENTS)
@pytest.mark.parametrize("user", USERS)
def test_real_agent_for_user(connect: Connect, user: str, agent: str) -> None:
    """Every staging user can run the everyday agents."""
    conn = connect(user)
    run = conn.run_agent(agent, f"Daily cost check for {user}")
    assert run.first("agent_completed")["user_id"] == user
    assert run.result["message_chars"] == len(f"Daily cost check for {user}")
