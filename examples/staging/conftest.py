"""Root conftest of the example staging suite.

Living in examples/staging (the rootdir, thanks to pytest.ini) keeps the
suite independent from loopdash's own test configuration. Fixtures here are
the only "framework": a session-wide /health probe, a connection factory that
always closes what it opened, and helpers for unique users.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from staging_client import STAGING_URL, TIMEOUT, StagingConnection, http_get


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show the target and what is deployed there at the top of every run."""
    try:
        health = http_get("/health", timeout=2.0).json()
        deployed = f"revision={health.get('revision')} commit={health.get('commit')}"
    except Exception as exc:
        deployed = f"unreachable ({exc.__class__.__name__}: {exc})"
    return [f"staging target: {STAGING_URL} (event timeout {TIMEOUT}s)", f"staging deployed: {deployed}"]


@pytest.fixture(scope="session")
def staging_health() -> dict[str, Any]:
    """/health of the target, fetched once per session (and per xdist worker)."""
    try:
        result = http_get("/health", timeout=max(TIMEOUT, 2.0))
    except OSError as exc:
        pytest.fail(f"staging target {STAGING_URL} unreachable: {exc}", pytrace=False)
    assert result.status == 200, f"/health returned HTTP {result.status}"
    return result.json()


@pytest.fixture(scope="session")
def staging_features(staging_health: dict[str, Any]) -> frozenset[str]:
    """Capabilities the deployed revision advertises."""
    return frozenset(staging_health.get("features", []))


@pytest.fixture
def connect() -> Iterator[Callable[..., StagingConnection]]:
    """Factory for authenticated connections, all closed at teardown."""
    opened: list[StagingConnection] = []

    def _open(user_id: str = "staging-e2e-user-001", **kwargs: Any) -> StagingConnection:
        __tracebackhide__ = True
        conn = StagingConnection.open(user_id, **kwargs)
        opened.append(conn)
        return conn

    yield _open
    for conn in opened:
        conn.close()


@pytest.fixture
def unique_user() -> Callable[[str], str]:
    """Fresh user ids, so tests that inspect per-user state never see a neighbour's."""

    def _make(prefix: str = "staging-e2e-isolated") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return _make
