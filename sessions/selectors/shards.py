"""A sharded run's parts, as the run page's shard table and the run JSON show them (one query)."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import RunShard, TestRun


@dataclass(frozen=True, slots=True)
class ShardRow:
    index: int
    status: str
    attempt: int
    worker: str
    tests: int
    planned_s: float | None
    duration_s: float | None
    total: int
    passed: int
    failed: int
    errors: int
    skipped: int
    current_test: str
    log_tail: str

    @property
    def is_live(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def last_lines(self) -> str:
        return "\n".join(self.log_tail.splitlines()[-6:])


_FIELDS = (
    "index", "status", "attempt", "worker", "tests", "planned_s", "duration_s", "total", "passed", "failed",
    "errors", "skipped", "current_test", "log_tail",
)  # fmt: skip


def shard_rows(run: TestRun) -> list[ShardRow]:
    """The run's shards in index order; [] for an unsharded run."""
    return [ShardRow(**values) for values in RunShard.objects.filter(run=run).order_by("index").values(*_FIELDS)]


def shards_as_json(run: TestRun) -> list[dict]:
    """``"shards"`` of the run JSON: ``[]`` unsharded, else index, status, tests, duration_s, worker (and more)."""
    return [
        {
            "index": row.index,
            "status": row.status,
            "tests": row.tests,
            "duration_s": row.duration_s,
            "worker": row.worker or None,
            "planned_s": row.planned_s,
            "attempt": row.attempt,
            "totals": {
                "tests": row.total,
                "passed": row.passed,
                "failed": row.failed,
                "errors": row.errors,
                "skipped": row.skipped,
            },
        }
        for row in shard_rows(run)
    ]
