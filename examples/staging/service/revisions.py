"""Revision catalogue: which fake commit is deployed and which bugs it has.

The catalogue lives in ``examples/staging/revisions.json`` so that the deploy
script, the results generator and loopdash itself read one source of truth.
The service only needs to know the *set of bug names* of its revision; each
bug is a flag checked at the exact code path that misbehaves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REVISIONS_FILE = Path(__file__).resolve().parent.parent / "revisions.json"

#: Every bug flag the service understands, with the symptom a tester sees.
#: Kept here (not only in the README) so an unknown flag in revisions.json is
#: caught at start-up instead of silently doing nothing.
KNOWN_BUGS: dict[str, str] = {
    "ws_state_enum_in_auth_logging": (
        "structured log of the subprotocol (browser) auth path json.dumps a "
        "WebSocketState enum -> TypeError -> connection closed with 1011"
    ),
    "ws_state_enum_in_message_pipeline_logging": (
        "a message that arrives while an agent run is active on the same "
        "connection is logged with the raw WebSocketState enum -> 1011"
    ),
    "execute_agent_not_routed": (
        "'execute_agent' is missing from the message router (only the "
        "canonical 'start_agent' works) -> error event unknown_message_type"
    ),
    "stream_finalizer_never_completes": (
        "streaming runs send partial_result chunks but never agent_completed -> clients time out"
    ),
    "jwt_secret_mismatch_e2e_tokens": (
        "tokens of kind 'e2e' are verified with a legacy secret -> HTTP 403 'Token validation failed'"
    ),
    "api_v1_routes_missing": "/api/v1/* HTTP routes are not mounted -> 404",
    "context_isolation_not_deployed": (
        "/health does not advertise 'context_isolation'; isolation tests that "
        "early-return then 'pass' in 0.00s without doing anything"
    ),
    "thread_history_shared_between_users": (
        "threads and user contexts live in one shared store -> users see each other's threads and run counters"
    ),
    "agent_status_snapshot_race": (
        "list_agents(include_status) sometimes returns a half-refreshed "
        "snapshot (random, seeded per service start) -> flaky test"
    ),
}


@dataclass(frozen=True)
class Revision:
    """One deployable revision of the example service."""

    revision: str
    commit: str
    message: str
    bugs: frozenset[str]

    def has(self, bug: str) -> bool:
        """Return True when ``bug`` is active in this revision."""
        if bug not in KNOWN_BUGS:
            raise KeyError(f"unknown bug flag {bug!r}")
        return bug in self.bugs


def load_revisions(path: Path = REVISIONS_FILE) -> list[Revision]:
    """Parse and validate the ordered revision list."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of revisions")
    revisions: list[Revision] = []
    for entry in raw:
        bugs = frozenset(entry.get("bugs", []))
        unknown = sorted(bugs - KNOWN_BUGS.keys())
        if unknown:
            raise ValueError(f"{path}: revision {entry.get('revision')}: unknown bugs {unknown}")
        revisions.append(
            Revision(
                revision=str(entry["revision"]),
                commit=str(entry["commit"]),
                message=str(entry["message"]),
                bugs=bugs,
            )
        )
    return revisions


def get_revision(name: str, path: Path = REVISIONS_FILE) -> Revision:
    """Return the revision called ``name`` or raise KeyError listing the known ones."""
    revisions = load_revisions(path)
    for rev in revisions:
        if rev.revision == name:
            return rev
    known = ", ".join(r.revision for r in revisions)
    raise KeyError(f"unknown revision {name!r} (known: {known})")
