"""The imagined test suite of a generated history, and the problems that come and go in it.

Pure data, drawn from ``random.Random`` seeded by the history's seed: the same spec gives the same
suite. ``history_files`` turns it into each cycle's result files; ``history`` stores them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

AREAS = {"chat": 120_000, "streaming": 80_000, "auth": 50_000, "events": 42_000, "api": 30_000, "billing": 65_000}
AREA_NAMES = tuple(AREAS)
TESTS_PER_FILE = 40
CLASSES = ("Flow", "Edge", "Agent", "Session", "Recovery")
VERBS = ("send", "receive", "reconnect", "stream", "login", "refresh", "publish", "retry", "cancel", "resume")


@dataclass(frozen=True, slots=True)
class TestSpec:
    """One test of the suite: its identity, markers, usual duration and how it behaves."""

    __test__ = False  # not a pytest test class

    index: int
    nodeid: str
    classname: str
    name: str
    file: str
    area: str
    markers: tuple[str, ...]
    base_duration: float  # 0.0 for a mocked (suspect) test
    always_skipped: bool
    xfail: bool
    flaky: bool
    bucket: float  # in [0, 1): which tests a failure class hits


@dataclass(frozen=True, slots=True)
class FailureClass:
    """A problem that hits part of the suite during some cycles (windows as fractions of the history)."""

    key: str
    title: str
    error_type: str
    message: str  # may hold {n} and {hex}: volatile parts that the fingerprint masks
    needle: str  # a fixed part of the message, to find the class's signature
    areas: tuple[str, ...]
    share: float  # of the tests of those areas
    windows: tuple[tuple[float, float], ...]
    kind: str = "failure"  # or "error" (setup)
    probability: float = 0.9  # that a hit test fails in an active cycle
    duration: float | None = None  # e.g. a timeout: the test took the timeout
    sporadic: float = 0.0  # instead of windows: the chance that a cycle is hit

    def text(self, rng: random.Random) -> str:
        return self.message.format(n=rng.randint(1, 99_999), hex=f"{rng.getrandbits(48):012x}")


FAILURE_CLASSES: tuple[FailureClass, ...] = (
    FailureClass(
        "ws1011",
        "WebSocket 1011 internal error",
        "websockets.exceptions.ConnectionClosedError",
        "received 1011 (internal error) Internal error; then sent 1011 (internal error)",
        "internal error",
        ("chat", "streaming"),
        0.30,
        ((0.0, 0.40), (0.84, 0.90)),
    ),
    FailureClass(
        "timeout",
        "Timeout after 120s waiting for agent_completed",
        "TimeoutError",
        "Timeout after {n}s waiting for agent_completed (request 0x{hex})",
        "waiting for agent_completed",
        ("streaming", "events"),
        0.20,
        ((0.20, 0.52),),
        duration=120.0,
    ),
    FailureClass(
        "token",
        "Token validation failed (JWT secret mismatch)",
        "AssertionError",
        "Token validation failed: signature mismatch for user 'user-{n}'",
        "Token validation failed",
        ("auth", "api"),
        0.35,
        ((0.30, 0.46),),
    ),
    FailureClass(
        "redis",
        "Redis connection refused in setup",
        "redis.exceptions.ConnectionError",
        "Error 111 connecting to redis-{n}.staging.internal:6379. Connection refused.",
        "connecting to redis",
        ("chat", "events", "billing"),
        0.15,
        ((0.56, 0.70),),
        kind="error",
    ),
    FailureClass(
        "events",
        "Missing agent events",
        "AssertionError",
        "expected 5 agent events, got {n}",
        "agent events",
        ("events", "streaming"),
        0.12,
        ((0.08, 0.26),),
    ),
    FailureClass(
        "keyerror",
        "KeyError on agent_id in billing webhooks",
        "KeyError",
        "'agent_id'",
        "agent_id",
        ("billing", "api"),
        0.10,
        ((0.66, 0.96),),
    ),
    FailureClass(
        "blip",
        "Connection refused (infrastructure blip)",
        "ConnectionRefusedError",
        "[Errno 111] Connection refused",
        "Errno",
        AREA_NAMES,
        0.05,
        (),
        kind="error",
        probability=1.0,
        sporadic=0.04,
    ),
)
FLAKY = FailureClass(
    "flaky",
    "Flaky: agent_thinking event races the assertion",
    "AssertionError",
    "assert 'agent_thinking' in received events (waited {n} ms)",
    "agent_thinking",
    AREA_NAMES,
    1.0,
    (),
    probability=0.3,
)


@dataclass
class HistorySpec:
    """What to generate: the size of the history, its randomness, and where it goes."""

    slug: str = "history"
    cycles: int = 500
    tests: int = 2000
    flaky_rate: float = 0.02
    seed: int = 1
    environment: str = "staging"
    rerun_rate: float = 0.35  # of the cycles with failures: their failures are rerun on the same deployment
    title: str = ""


def window_cycles(cls: FailureClass, cycles: int) -> list[tuple[int, int]]:
    """Each window as a range of cycle numbers [first, last], at least one cycle long."""
    out = []
    for start, end in cls.windows:
        first = int(start * cycles) + 1
        last = max(first, int(end * cycles))
        out.append((first, min(last, cycles)))
    return out


def commit_of(slug: str, cycle: int) -> str:
    """The commit deployed in a cycle: made up, the same for the same session and cycle."""
    return hashlib.sha1(f"{slug}:{cycle}".encode()).hexdigest()


def build_suite(count: int, seed: int, flaky_rate: float) -> list[TestSpec]:
    """``count`` tests spread over the business areas, with markers, durations and flaky ones."""
    rng = random.Random(f"suite-{seed}")
    suite = []
    for i in range(count):
        area = AREA_NAMES[i % len(AREA_NAMES)]
        file_no = i // (TESTS_PER_FILE * len(AREA_NAMES))
        module = f"test_{area}_{file_no:03d}"
        cls = f"Test{area.title()}{CLASSES[(i // len(AREA_NAMES)) % len(CLASSES)]}"
        name = f"test_{VERBS[i % len(VERBS)]}_{i:06d}"
        if i % 17 == 0:
            name += f"[user-{i % 5}]"
        file = f"tests/e2e/{module}.py"
        markers = ["e2e_marker"] if i % 50 == 0 else []
        if (area in ("chat", "streaming") and i % 5 < 2) or i % 23 == 0:
            markers.append("p1")
        elif i % 3 == 0:
            markers.append("p2")
        markers.append(f"area_{area}")
        mocked = i % 100 == 7  # about 1 %: mocked, always 0.00 s
        suite.append(
            TestSpec(
                index=i,
                nodeid=f"{file}::{cls}::{name}",
                classname=f"tests.e2e.{module}.{cls}",
                name=name,
                file=file,
                area=area,
                markers=tuple(markers),
                base_duration=0.0 if mocked else round(min(60.0, rng.lognormvariate(0.0, 0.9)), 3),
                always_skipped=rng.random() < 0.02,
                xfail=rng.random() < 0.005,
                flaky=rng.random() < flaky_rate,
                bucket=rng.random(),
            )
        )
    return suite
