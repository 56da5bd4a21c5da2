"""Per-user data the service keeps in memory: chat threads and run counters.

This is the "UserExecutionContext" that the isolation tests probe; the
``thread_history_shared_between_users`` bug lives here (see ``shared``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from .connection import JsonDict


@dataclass
class Thread:
    """A chat thread with its message history."""

    thread_id: str
    owner: str
    title: str
    created_at: float
    messages: list[JsonDict] = field(default_factory=list)

    def summary(self) -> JsonDict:
        """Listing view (no messages)."""
        return {
            "thread_id": self.thread_id,
            "owner": self.owner,
            "title": self.title,
            "created_at": self.created_at,
            "message_count": len(self.messages),
        }


class UserContextStore:
    """Threads and run counters, scoped per user -- unless ``shared`` (the leak bug).

    The leak is modelled the way it usually happens: the store is keyed by a
    scope, and the buggy version computes the same scope for everybody.
    """

    def __init__(self, *, shared: bool) -> None:
        self.shared = shared
        self._threads: dict[str, dict[str, Thread]] = {}
        self._runs: dict[str, int] = {}
        self._last_agent: dict[str, str] = {}

    def _scope(self, user_id: str) -> str:
        return "global" if self.shared else f"user:{user_id}"

    def create_thread(self, user_id: str, title: str) -> Thread:
        """Create and return a new thread owned by ``user_id``."""
        thread = Thread(f"thread-{uuid.uuid4().hex[:12]}", user_id, title, time.time())
        self._threads.setdefault(self._scope(user_id), {})[thread.thread_id] = thread
        return thread

    def threads(self, user_id: str) -> list[Thread]:
        """Threads visible to ``user_id``."""
        return list(self._threads.get(self._scope(user_id), {}).values())

    def get_thread(self, user_id: str, thread_id: str) -> Thread | None:
        """A thread visible to ``user_id`` or None."""
        return self._threads.get(self._scope(user_id), {}).get(thread_id)

    def record_run(self, user_id: str, agent: str) -> None:
        """Count a completed run for the user's context."""
        scope = self._scope(user_id)
        self._runs[scope] = self._runs.get(scope, 0) + 1
        self._last_agent[scope] = agent

    def context(self, user_id: str) -> JsonDict:
        """The UserExecutionContext view returned by get_user_context."""
        scope = self._scope(user_id)
        return {
            "user_id": user_id,
            "context_scope": scope,
            "runs": self._runs.get(scope, 0),
            "threads": len(self._threads.get(scope, {})),
            "last_agent": self._last_agent.get(scope),
        }
