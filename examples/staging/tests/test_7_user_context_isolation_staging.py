"""Per-user execution context isolation (UserExecutionContext).

Deliberately kept anti-pattern: these tests *return early* when the deployed
revision does not advertise ``context_isolation``. On r1-r4 they therefore
"pass" in ~0.00s without touching the network -- the seeds' "0.00s tests
that never really ran". loopdash should flag them as suspect; from r5 on
they run for real (and r5's shared store makes them fail).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from staging_client import StagingConnection

pytestmark = [pytest.mark.p3, pytest.mark.area_isolation]

Connect = Callable[..., StagingConnection]
AGENT_SAMPLE = ["triage_agent", "data_helper", "reporting_agent", "research_agent"]


@pytest.mark.parametrize("agent", AGENT_SAMPLE)
def test_threads_not_visible_to_other_user(
    connect: Connect, unique_user: Callable[[str], str], staging_features: frozenset[str], agent: str
) -> None:
    """User B can neither list nor open user A's thread."""
    if "context_isolation" not in staging_features:
        return  # feature not deployed yet (silent pass -- suspect on purpose)
    alice, bob = connect(unique_user("alice")), connect(unique_user("bob"))
    thread = alice.request({"type": "create_thread", "title": "alice private"}, "thread_created")
    alice.run_agent(agent, "confidential numbers", thread_id=thread["thread_id"])
    listed = bob.request({"type": "list_threads"}, "threads")["threads"]
    assert thread["thread_id"] not in {t["thread_id"] for t in listed}, "another user's thread is listed"
    error = bob.request_error({"type": "get_thread", "thread_id": thread["thread_id"], "id": "peek"})
    assert error["code"] == "thread_not_found"


@pytest.mark.parametrize("agent", AGENT_SAMPLE)
def test_fresh_user_context_is_empty(
    connect: Connect, unique_user: Callable[[str], str], staging_features: frozenset[str], agent: str
) -> None:
    """A brand-new user's context has no runs, even after others used the agent."""
    if "context_isolation" not in staging_features:
        return  # feature not deployed yet (silent pass -- suspect on purpose)
    connect(unique_user("neighbour")).run_agent(agent, "neighbour activity")
    fresh = connect(unique_user("fresh"))
    context = fresh.request({"type": "get_user_context"}, "user_context")
    assert context["runs"] == 0, f"a fresh user's context already counts {context['runs']} runs"
    assert context["threads"] == 0
    assert context["last_agent"] is None


@pytest.mark.parametrize("agent", AGENT_SAMPLE)
def test_context_counts_only_own_runs(
    connect: Connect, unique_user: Callable[[str], str], staging_features: frozenset[str], agent: str
) -> None:
    """Run counters are per user: two own runs -> 2, whatever others do."""
    if "context_isolation" not in staging_features:
        return  # feature not deployed yet (silent pass -- suspect on purpose)
    connect(unique_user("other")).run_agent("optimization_agent", "someone else")
    me = connect(unique_user("me"))
    me.run_agent(agent, "first")
    me.run_agent(agent, "second")
    context = me.request({"type": "get_user_context"}, "user_context")
    assert context["runs"] == 2, f"context counts {context['runs']} runs, expected the user's own 2"
    assert context["last_agent"] == agent
