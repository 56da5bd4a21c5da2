"""How a run's tests are split into shards (``work.shard_split``): pure, no database."""

from __future__ import annotations

import random

import pytest

from sessions.work.shard_split import split


def ids(n: int, module: str = "tests/test_a.py") -> list[str]:
    return [f"{module}::test_{i}" for i in range(n)]


def test_every_test_lands_in_exactly_one_shard_in_collection_order() -> None:
    nodeids = ids(50) + ids(30, "tests/test_b.py")
    rng = random.Random(4)
    durations = {n: rng.uniform(0.01, 3.0) for n in nodeids[::2]}
    shards = split(nodeids, durations, 4)
    assert [s.index for s in shards] == [1, 2, 3, 4]
    placed = [n for s in shards for n in s.nodeids]
    assert sorted(placed) == sorted(nodeids) and len(placed) == len(set(placed))
    for shard in shards:  # each shard keeps pytest's order: a shard runs like the suite with others deselected
        assert shard.nodeids == [n for n in nodeids if n in set(shard.nodeids)]


def test_known_durations_go_longest_first_onto_the_least_loaded_shard() -> None:
    durations = {"t::a": 8.0, "t::b": 7.0, "t::c": 6.0, "t::d": 5.0, "t::e": 4.0, "t::f": 3.0, "t::g": 2.0}
    shards = split(list(durations), durations, 3)
    # By hand: 8→#1, 7→#2, 6→#3, 5→#3 (least loaded: 6), 4→#2 (7), 3→#1 (8), then all at 11: 2→#1.
    loads = sorted(s.planned_s for s in shards)
    assert loads == [11.0, 11.0, 13.0]
    assert sum(loads) == sum(durations.values())
    heavy = next(s for s in shards if "t::a" in s.nodeids)
    assert set(heavy.nodeids) == {"t::a", "t::f", "t::g"}


def test_a_balanced_split_of_many_timed_tests_is_close_to_even() -> None:
    rng = random.Random(7)
    nodeids = ids(1000)
    durations = {n: rng.expovariate(1 / 0.5) for n in nodeids}
    shards = split(nodeids, durations, 4)
    loads = [s.planned_s for s in shards]
    assert max(loads) - min(loads) <= max(durations.values())  # LPT's bound: within one test of each other
    assert max(loads) / (sum(loads) / 4) < 1.02


def test_tests_without_history_are_spread_evenly_by_count() -> None:
    nodeids = ids(10) + ids(9, "tests/test_new.py")
    durations = {n: 1.0 for n in nodeids[:10]}
    shards = split(nodeids, durations, 3)
    unknown = [sum(1 for n in s.nodeids if n not in durations) for s in shards]
    assert sorted(unknown) == [3, 3, 3]
    # The unknown ones are estimated at the median known duration in the plan.
    assert sum(s.planned_s for s in shards) == pytest.approx(19.0)


def test_a_suite_with_no_history_at_all_splits_by_count() -> None:
    shards = split(ids(10), {}, 4)
    assert sorted(len(s.nodeids) for s in shards) == [2, 2, 3, 3]
    assert all(s.planned_s == 0.0 for s in shards)


def test_files_named_together_stay_in_one_shard() -> None:
    together = ids(6, "tests/flows/test_checkout.py")
    nodeids = ids(12) + together + ids(5, "tests/flows/test_refund.py")
    durations = {n: 1.0 for n in nodeids}
    shards = split(nodeids, durations, 4, together=["tests/flows/*"])
    holding = [s for s in shards if set(together) & set(s.nodeids)]
    assert len(holding) == 1 and set(together) <= set(holding[0].nodeids)
    refund = [s for s in shards if any("test_refund" in n for n in s.nodeids)]
    assert len(refund) == 1
    assert sorted(n for s in shards for n in s.nodeids) == sorted(nodeids)


def test_never_more_shards_than_tests_and_never_an_empty_one() -> None:
    assert [s.nodeids for s in split(["t::only"], {}, 4)] == [["t::only"]]  # a one-test rerun is one shard
    assert len(split(ids(3), {"tests/test_a.py::test_0": 5.0}, 32)) == 3
    assert split([], {}, 4) == []


def test_a_repeated_id_is_placed_once() -> None:
    shards = split(["t::a", "t::b", "t::a"], {}, 2)
    assert sorted(n for s in shards for n in s.nodeids) == ["t::a", "t::b"]
