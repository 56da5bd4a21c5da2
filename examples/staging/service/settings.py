"""Runtime knobs of the service, read from ``STAGING_*`` environment variables."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

DEFAULT_SECRET = "loopdash-staging-shared-secret"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Runtime knobs.

    The latencies are small sleeps standing in for network and backend round
    trips: they make every real test take >= ~12 ms, above loopdash's 0.01 s
    suspect line, so the only tests flagged as suspect are the ones that really
    did nothing.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    secret: str = DEFAULT_SECRET
    step_s: float = 0.0005
    auth_delay_s: float = 0.012
    api_delay_s: float = 0.012
    flake_rate: float = 0.35
    flake_seed: int = 0

    @classmethod
    def from_env(cls, host: str, port: int) -> Settings:
        """Read STAGING_* variables (documented in the README)."""
        seed_raw = os.environ.get("STAGING_FLAKE_SEED", "")
        return cls(
            host=host,
            port=port,
            secret=os.environ.get("STAGING_JWT_SECRET") or DEFAULT_SECRET,
            step_s=_env_float("STAGING_AGENT_STEP_MS", 0.5) / 1000,
            auth_delay_s=_env_float("STAGING_AUTH_DELAY_MS", 12.0) / 1000,
            api_delay_s=_env_float("STAGING_API_DELAY_MS", 12.0) / 1000,
            flake_rate=_env_float("STAGING_FLAKE_RATE", 0.35),
            flake_seed=int(seed_raw) if seed_raw else time.time_ns() % 2**32,
        )
