"""How a run's tests are split into shards: pure, no ORM, so the rule is tested on its own.

Tests with a recorded duration are placed longest first onto the least-loaded shard (the classic
longest-processing-time rule: within 4/3 of the best split, and much closer on a suite of many short
tests). Tests with no history are spread evenly by count, each onto the shard that has the fewest
of them, so that a suite seen for the first time still splits into equal parts. A file named in the
environment's ``shard_together`` (a glob) is one unit: all its tests go to the same shard (module
fixtures that cost a minute, tests that rely on each other's order).

Every test lands in exactly one shard; shards that would be empty are not made. Each shard keeps
its tests in the order they were given (pytest's collection order), so a shard runs like the
unsharded suite with the other tests deselected.
"""

from __future__ import annotations

import fnmatch
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class PlannedShard:
    """One shard's tests and its expected test time (known durations plus an estimate for the rest)."""

    index: int
    nodeids: list[str] = field(default_factory=list)
    known_s: float = 0.0
    unknown: int = 0
    planned_s: float = 0.0


@dataclass(slots=True)
class _Unit:
    first: int  # position of its first test in the input: ties and the final order follow it
    nodeids: list[str]
    known_s: float
    unknown: int


def file_of(nodeid: str) -> str:
    return nodeid.partition("::")[0]


def _units(nodeids: Sequence[str], durations: Mapping[str, float], together: Sequence[str]) -> list[_Unit]:
    """Each test its own unit, except that the tests of a file matching ``together`` form one."""
    grouped: dict[str, _Unit] = {}
    units: list[_Unit] = []
    seen: set[str] = set()
    for position, nodeid in enumerate(nodeids):
        if nodeid in seen:
            continue  # every test exactly once, even if the input repeats one
        seen.add(nodeid)
        duration = durations.get(nodeid)
        known = duration if duration is not None and duration >= 0 else None
        path = file_of(nodeid)
        if together and any(fnmatch.fnmatchcase(path, pattern) for pattern in together):
            unit = grouped.get(path)
            if unit is None:
                unit = grouped[path] = _Unit(position, [], 0.0, 0)
                units.append(unit)
            unit.nodeids.append(nodeid)
        else:
            unit = _Unit(position, [nodeid], 0.0, 0)
            units.append(unit)
        if known is None:
            unit.unknown += 1
        else:
            unit.known_s += known
    return units


def split(
    nodeids: Sequence[str],
    durations: Mapping[str, float],
    shards: int,
    *,
    together: Sequence[str] = (),
) -> list[PlannedShard]:
    """Split ``nodeids`` into at most ``shards`` non-empty shards (see the module's rule)."""
    units = _units(nodeids, durations, together)
    count = max(1, min(int(shards), len(units)))
    planned = [PlannedShard(index=i + 1) for i in range(count)]
    placed: list[list[_Unit]] = [[] for _ in range(count)]
    timed = sorted((u for u in units if not u.unknown), key=lambda u: (-u.known_s, u.first))
    untimed = [u for u in units if u.unknown]
    for unit in timed:  # longest first, onto the least-loaded shard (then the one with fewer tests)
        target = min(range(count), key=lambda i: (planned[i].known_s, len(planned[i].nodeids), i))
        _place(planned[target], placed[target], unit)
    for unit in untimed:  # no history: even counts of unknown tests, then the lighter shard
        target = min(range(count), key=lambda i: (planned[i].unknown, planned[i].known_s, i))
        _place(planned[target], placed[target], unit)
    known = [d for n, d in durations.items() if d is not None and d >= 0]
    estimate = statistics.median(known) if known else 0.0
    for shard, its_units in zip(planned, placed, strict=True):
        its_units.sort(key=lambda u: u.first)
        shard.nodeids = [nodeid for unit in its_units for nodeid in unit.nodeids]
        shard.planned_s = round(shard.known_s + shard.unknown * estimate, 3)
    return [shard for shard in planned if shard.nodeids]


def _place(shard: PlannedShard, units: list[_Unit], unit: _Unit) -> None:
    units.append(unit)
    shard.nodeids.extend(unit.nodeids)  # counted for ties; rebuilt in input order at the end
    shard.known_s += unit.known_s
    shard.unknown += unit.unknown
