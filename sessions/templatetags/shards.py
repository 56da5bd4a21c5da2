"""Template helpers of sharded runs: the shard choices beside the Run buttons, a run's shard rows."""

from __future__ import annotations

from django import template

from ..models import SHARDS_MAX, TestRun
from ..selectors.shards import ShardRow, shard_rows

register = template.Library()

SHARD_CHOICES = tuple(n for n in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32) if n <= SHARDS_MAX)


@register.simple_tag
def shard_choices() -> tuple[int, ...]:
    """What the select beside a Run button offers (any 1 to 32 is accepted by the API and the CLI)."""
    return SHARD_CHOICES


@register.simple_tag
def run_shards(run: TestRun) -> list[ShardRow]:
    """The run's shards (one query; [] for an unsharded run, whose page then shows no shard table)."""
    if run.shards_requested <= 1:
        return []
    return shard_rows(run)
