"""The simulated agents: deterministic "reasoning" and tool outputs.

Outputs are pure functions of (agent, message) so the e2e suite can verify
that the service really processed *its* message (message hash, length, word
count) instead of just checking that some event arrived.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentSpec:
    """Static description of one agent, as served by list_agents and /api/agents."""

    name: str
    description: str
    tool: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready public view."""
        return {"name": self.name, "description": self.description, "tools": [self.tool]}


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("triage_agent", "Classifies a request and routes it", "classify_request"),
        AgentSpec("data_helper", "Fetches usage metrics for a question", "query_metrics"),
        AgentSpec("optimization_agent", "Recommends cost optimizations", "cost_model"),
        AgentSpec("reporting_agent", "Writes summaries and reports", "render_report"),
        AgentSpec("supervisor_agent", "Delegates work to a sub-agent", "delegate"),
        AgentSpec("research_agent", "Looks up reference material", "search_corpus"),
    )
}

CATEGORIES: dict[str, tuple[str, ...]] = {
    "billing": ("cost", "spend", "invoice", "price", "budget", "$"),
    "performance": ("latency", "slow", "gpu", "throughput", "timeout"),
    "data": ("metric", "table", "query", "rows", "dataset"),
}


def message_digest(message: str) -> str:
    """Short SHA-256 of the user message; the suite recomputes it client-side."""
    return hashlib.sha256(message.encode("utf-8")).hexdigest()[:16]


def classify(message: str) -> str:
    """Keyword triage; 'general' when nothing matches."""
    lowered = message.lower()
    for category, words in CATEGORIES.items():
        if any(word in lowered for word in words):
            return category
    return "general"


def delegate_target(message: str) -> str:
    """``delegate:<agent> ...`` picks the sub-agent, else triage decides."""
    head = message.strip().split(maxsplit=1)[0] if message.strip() else ""
    if head.startswith("delegate:"):
        target = head.removeprefix("delegate:")
        if target in AGENTS and target != "supervisor_agent":
            return target
    return "triage_agent"


def thinking(spec: AgentSpec, message: str) -> str:
    """The agent_thinking text: names the tool it is about to use."""
    return f"{spec.name} is analysing a {len(message)}-char request; will call {spec.tool}"


def run_tool(spec: AgentSpec, message: str) -> dict[str, Any]:
    """Deterministic tool output for ``message``."""
    digest = message_digest(message)
    seed = int(digest[:8], 16)
    words = len(message.split())
    output: dict[str, Any] = {"message_sha256": digest, "words": words}
    if spec.tool == "classify_request":
        output.update(category=classify(message), confidence=round(0.55 + (seed % 40) / 100, 2))
    elif spec.tool == "query_metrics":
        output.update(metric="gpu_hours", rows=max(1, words), total=seed % 10_000)
    elif spec.tool == "cost_model":
        output.update(monthly_savings_usd=100 + seed % 9_900, recommendation="rightsize idle GPU pools")
    elif spec.tool == "render_report":
        output.update(sections=1 + message.count("\n"), chars=len(message))
    elif spec.tool == "delegate":
        target = AGENTS[delegate_target(message)]
        output.update(delegated_to=target.name, sub_result=run_tool(target, message))
    elif spec.tool == "search_corpus":
        output.update(hits=seed % 7 + 1, top_document=f"doc-{digest[:6]}")
    return output


def summarize(spec: AgentSpec, message: str, tool_output: dict[str, Any]) -> str:
    """Final answer text; mentions the tool so tests can check provenance."""
    preview = " ".join(message.split())[:40]
    return (
        f"{spec.name} answered {preview!r} using {spec.tool} "
        f"({len(message)} chars, {tool_output['words']} words, sha {tool_output['message_sha256']})"
    )


def chunk_text(text: str, parts: int = 4) -> list[str]:
    """Split the summary into streaming chunks that concatenate back to it."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
