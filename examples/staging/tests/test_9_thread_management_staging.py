"""Chat threads: create, list, open, and history of agent runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from staging_client import AGENTS, USERS, StagingConnection

pytestmark = [pytest.mark.p3, pytest.mark.area_chat]

Connect = Callable[..., StagingConnection]
TITLES = ["Quarterly GPU review", "Incident 1011 follow-up", "Résumé ✓ 数据", "", "x" * 200]


@pytest.mark.parametrize("title", TITLES, ids=["plain", "incident", "unicode", "empty", "long"])
@pytest.mark.parametrize("user", USERS)
def test_create_thread(connect: Connect, user: str, title: str) -> None:
    """A new thread belongs to its creator and starts empty."""
    conn = connect(user)
    created = conn.request({"type": "create_thread", "title": title}, "thread_created")
    assert created["owner"] == user
    assert created["title"] == title
    assert created["message_count"] == 0
    fetched = conn.request({"type": "get_thread", "thread_id": created["thread_id"]}, "thread")
    assert fetched["messages"] == []


@pytest.mark.parametrize("user", USERS)
def test_list_threads_contains_created(connect: Connect, user: str) -> None:
    """A created thread shows up in the owner's list."""
    conn = connect(user)
    title = f"listing-{uuid.uuid4().hex[:8]}"
    created = conn.request({"type": "create_thread", "title": title}, "thread_created")
    listed = conn.request({"type": "list_threads"}, "threads")["threads"]
    assert created["thread_id"] in {t["thread_id"] for t in listed}


@pytest.mark.parametrize("user", USERS)
def test_list_threads_only_own(connect: Connect, user: str) -> None:
    """The list never contains somebody else's thread."""
    conn = connect(user)
    conn.request({"type": "create_thread", "title": "mine"}, "thread_created")
    listed = conn.request({"type": "list_threads"}, "threads")["threads"]
    foreign = [t for t in listed if t["owner"] != user]
    assert not foreign, f"{len(foreign)} foreign threads visible, e.g. owner {foreign[0]['owner']!r}"


@pytest.mark.parametrize("agent", AGENTS)
def test_thread_history_records_run(connect: Connect, agent: str) -> None:
    """A run inside a thread appends the question and the answer."""
    conn = connect("staging-e2e-user-003")
    thread = conn.request({"type": "create_thread", "title": f"history {agent}"}, "thread_created")
    run = conn.run_agent(agent, "remember this question", msg_type="start_agent", thread_id=thread["thread_id"])
    history = conn.request({"type": "get_thread", "thread_id": thread["thread_id"]}, "thread")["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "remember this question"
    assert history[1]["content"] == run.result["summary"]


@pytest.mark.parametrize("thread_id", ["thread-000000000000", "", "../etc/passwd", "THREAD-1", "null"])
def test_get_unknown_thread_errors(connect: Connect, thread_id: str) -> None:
    """Unknown thread ids give thread_not_found."""
    conn = connect()
    error = conn.request_error({"type": "get_thread", "thread_id": thread_id, "id": "nf"})
    assert error["code"] == "thread_not_found"
