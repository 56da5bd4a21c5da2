"""Critical HTTP paths: health, agent/tool APIs under /api and /api/v1.

The frontend and this suite call the versioned ``/api/v1`` routes; the
backend originally mounted only ``/api`` (the seeds' "API routing mismatch").
"""

from __future__ import annotations

import re

import pytest
from staging_client import AGENT_TOOLS, AGENTS, RecordProperty, http_get

pytestmark = [pytest.mark.p2, pytest.mark.area_api]

API_PATHS = ["/api/health", "/api/agents", "/api/tools"] + [f"/api/agents/{a}" for a in AGENTS]
API_V1_PATHS = ["/api/v1/health", "/api/v1/agents", "/api/v1/tools"] + [f"/api/v1/agents/{a}" for a in AGENTS]
TIMED_PATHS = ["/health", "/api/health", "/api/agents", "/api/tools"]


@pytest.mark.parametrize("path", ["/health", "/api/health"])
def test_health_endpoint(path: str, record_property: RecordProperty) -> None:
    """Health answers 200 JSON with status ok."""
    result = http_get(path)
    record_property("api_response_ms", round(result.elapsed_ms, 3))
    assert result.status == 200
    assert result.headers["content-type"] == "application/json"
    assert result.json()["status"] == "ok"


def test_health_reports_revision_and_commit() -> None:
    """Deploy verification relies on /health naming revision and full commit sha."""
    health = http_get("/health").json()
    assert re.fullmatch(r"r\d+", health["revision"])
    assert re.fullmatch(r"[0-9a-f]{40}", health["commit"])
    assert health["uptime_s"] >= 0


@pytest.mark.parametrize("path", API_PATHS)
def test_api_endpoints(path: str, record_property: RecordProperty) -> None:
    """Every /api route answers 200 with JSON."""
    result = http_get(path)
    record_property("api_response_ms", round(result.elapsed_ms, 3))
    assert result.status == 200, f"GET {path} -> HTTP {result.status}"
    assert isinstance(result.json(), dict)


@pytest.mark.parametrize("path", API_V1_PATHS)
def test_api_v1_endpoints(path: str, record_property: RecordProperty) -> None:
    """Every versioned /api/v1 route the frontend uses answers 200."""
    result = http_get(path)
    record_property("api_response_ms", round(result.elapsed_ms, 3))
    assert result.status == 200, f"GET {path} -> HTTP {result.status}"


def test_critical_api_endpoints() -> None:
    """The frontend's boot sequence: health, agents, tools -- all on /api/v1."""
    failures = {}
    for path in ("/api/v1/health", "/api/v1/agents", "/api/v1/tools"):
        status = http_get(path).status
        if status != 200:
            failures[path] = status
    assert not failures, f"critical endpoints failing: {failures}"


@pytest.mark.parametrize("attempt", range(1, 6))
@pytest.mark.parametrize("path", TIMED_PATHS)
def test_api_response_time_budget(path: str, attempt: int, record_property: RecordProperty) -> None:
    """Each call stays well under the 500 ms budget (api_response_ms metric)."""
    result = http_get(path)
    record_property("api_response_ms", round(result.elapsed_ms, 3))
    assert result.status == 200
    assert result.elapsed_ms < 500


def test_agents_api_matches_contract() -> None:
    """/api/agents lists exactly the agents and tools the frontend knows."""
    listed = {a["name"]: a["tools"] for a in http_get("/api/agents").json()["agents"]}
    assert listed == {name: [tool] for name, tool in AGENT_TOOLS.items()}


@pytest.mark.parametrize(
    "path", ["/", "/api", "/api/agents/unknown_agent", "/api/v2/agents", "/admin", "/health/extra"]
)
def test_unknown_routes_404(path: str) -> None:
    """Unknown routes are a clean JSON 404, never a 500."""
    result = http_get(path)
    assert result.status == 404
    assert result.json()["error"]


def test_ws_path_requires_upgrade() -> None:
    """A plain GET on /ws is 426 Upgrade Required."""
    assert http_get("/ws").status == 426
