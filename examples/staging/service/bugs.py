"""The simulated bugs: how the deployed revision changes what the service does.

Every bug flag of ``revisions.json`` (described in ``revisions.KNOWN_BUGS``)
is answered here, one method or property per flag, so this file is the map
of "what is broken in rN and how". The rest of the service asks these
questions at the precise code path a real developer would have got wrong,
so failures are produced by the real mechanism (e.g. ``json.dumps`` of an
Enum raising inside the connection handler, which websockets turns into a
1011 close), not by faking results.

| flag | asked by |
| --- | --- |
| ``ws_state_enum_in_auth_logging`` | :meth:`RevisionBugs.log_state_in_auth_path` (protocol.py) |
| ``ws_state_enum_in_message_pipeline_logging`` | :meth:`RevisionBugs.log_state_in_message_pipeline` (protocol.py) |
| ``execute_agent_not_routed`` | :meth:`RevisionBugs.unrouted_message_types` (protocol.py) |
| ``context_isolation_not_deployed`` | same, and :attr:`RevisionBugs.context_isolation_deployed` (http_api.py) |
| ``stream_finalizer_never_completes`` | :attr:`RevisionBugs.stream_finalizer_hangs` (agent_runs.py) |
| ``jwt_secret_mismatch_e2e_tokens`` | :meth:`RevisionBugs.wrong_secret_for` (auth.py) |
| ``api_v1_routes_missing`` | :attr:`RevisionBugs.api_v1_missing` (http_api.py) |
| ``thread_history_shared_between_users`` | :attr:`RevisionBugs.user_contexts_shared` (server.py) |
| ``agent_status_snapshot_race`` | :meth:`RevisionBugs.agent_status_snapshot` (protocol.py) |
"""

from __future__ import annotations

import os
import random
from typing import Any

from . import agents, tokens
from .connection import WebSocketState, safe_websocket_state_for_logging
from .revisions import Revision
from .settings import Settings

#: The secret the buggy revisions wrongly resolve for 'e2e' tokens.
LEGACY_E2E_SECRET = "staging-e2e-legacy-secret"


class RevisionBugs:
    """The active bugs of one revision, as answers to "how do I behave here?"."""

    def __init__(self, rev: Revision, settings: Settings) -> None:
        self.rev = rev
        self.settings = settings
        #: Seeded per service start (STAGING_FLAKE_SEED) so a flaky run can be replayed.
        self.rng = random.Random(settings.flake_seed)

    # ------------------------------------------------- 1011: Enum in the log
    def _state_for_log(self, state: WebSocketState, bug: str) -> Any:
        """Return what the given code path puts into the log for ``state``."""
        return state if self.rev.has(bug) else safe_websocket_state_for_logging(state)

    def log_state_in_auth_path(self, state: WebSocketState) -> Any:
        """State value logged by the subprotocol auth path and get_connection_state.

        The raw Enum (bug) makes the log's ``json.dumps`` raise TypeError -> 1011.
        """
        return self._state_for_log(state, "ws_state_enum_in_auth_logging")

    def log_state_in_message_pipeline(self, state: WebSocketState) -> Any:
        """State value logged when a frame arrives while a run is active (same crash)."""
        return self._state_for_log(state, "ws_state_enum_in_message_pipeline_logging")

    # ------------------------------------------------------ message routing
    def unrouted_message_types(self) -> list[str]:
        """Message types missing from the router, answered with ``unknown_message_type``."""
        missing = []
        if self.rev.has("execute_agent_not_routed"):
            # The seeds' bug: only the canonical START_AGENT type was mapped.
            missing.append("execute_agent")
        if self.rev.has("context_isolation_not_deployed"):
            missing.append("get_user_context")
        return missing

    @property
    def context_isolation_deployed(self) -> bool:
        """False while /health must not advertise ``context_isolation`` (0.00s suspect passes)."""
        return not self.rev.has("context_isolation_not_deployed")

    @property
    def user_contexts_shared(self) -> bool:
        """True when every user's threads and counters land in one scope (the leak)."""
        return self.rev.has("thread_history_shared_between_users")

    # ------------------------------------------------------------ streaming
    @property
    def stream_finalizer_hangs(self) -> bool:
        """True when streamed runs never send ``agent_completed`` (client timeouts)."""
        return self.rev.has("stream_finalizer_never_completes")

    # ----------------------------------------------------------------- auth
    def wrong_secret_for(self, token: str) -> str | None:
        """The legacy secret the bug resolves for ``kind: e2e`` tokens, else None (use the real one)."""
        if self.rev.has("jwt_secret_mismatch_e2e_tokens"):
            try:
                kind = tokens.unverified_claims(token).get("kind")
            except tokens.TokenError:
                kind = None
            if kind == "e2e":
                return os.environ.get("STAGING_E2E_LEGACY_SECRET") or LEGACY_E2E_SECRET
        return None

    # ----------------------------------------------------------------- http
    @property
    def api_v1_missing(self) -> bool:
        """True when ``/api/v1/*`` is not mounted (404)."""
        return self.rev.has("api_v1_routes_missing")

    # ------------------------------------------------------- flaky snapshot
    def agent_status_snapshot(self) -> dict[str, str]:
        """Status of every agent for ``list_agents(include_status)``.

        Normally all ``ready``; with the race bug, a ``flake_rate`` share of the
        snapshots is copied while the cache refresh is half-way through.
        """
        status = dict.fromkeys(agents.AGENTS, "ready")
        if self.rev.has("agent_status_snapshot_race") and self.rng.random() < self.settings.flake_rate:
            # Snapshot copied while the cache refresh is half-way through.
            status[self.rng.choice(sorted(status))] = "refreshing"
        return status
