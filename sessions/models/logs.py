"""Whole logs kept in the database, so that the web can serve them without the worker's disk.

A worker writes a run's, a shard's or a deployment's output to ``output.log`` under its own
``MEDIA_ROOT``; in production (docker-compose, workers on other machines) the web has no access to
that disk. When the work ends, the worker stores the log here, gzip-compressed and bounded by
``LOOPDASH_STORED_LOG_MAX_BYTES`` (a longer log keeps its head and tail with a line saying how much
was cut). Work that ended without its worker (declared lost by the reaper) has no stored log: its
row's ``log_tail`` is what remains.

One row per owner: a run's own log (an unsharded run, or a sharded run's planning worker) has
``run`` set and no ``shard``; a shard's log has both ``shard`` and its ``run`` (so pruning a run
drops its shards' logs with it) and one row per attempt; a deployment's log has ``deployment``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .loop import Deployment, TestRun
from .shards import RunShard


class StoredLog(models.Model):
    """The gzip-compressed whole log of ended work (a run, a shard attempt, a deployment)."""

    run = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.CASCADE, related_name="stored_logs")
    shard = models.ForeignKey(RunShard, null=True, blank=True, on_delete=models.CASCADE, related_name="stored_logs")
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="stored_logs"
    )
    attempt = models.PositiveSmallIntegerField(default=1, help_text="The shard's attempt (1 for runs, deployments).")
    worker = models.CharField(max_length=255, blank=True, help_text="The worker (node or host) that wrote the log.")
    data = models.BinaryField(help_text="The log as gzip (at most LOOPDASH_STORED_LOG_MAX_BYTES before compression).")
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes of the log file on the worker.")
    cut_bytes = models.PositiveBigIntegerField(default=0, help_text="Bytes left out of the middle (0: kept whole).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(run__isnull=False) & Q(deployment__isnull=True))
                | (Q(deployment__isnull=False) & Q(run__isnull=True) & Q(shard__isnull=True)),
                name="storedlog_one_owner",
            ),
            models.UniqueConstraint(
                fields=["run"], condition=Q(shard__isnull=True, run__isnull=False), name="storedlog_one_per_run"
            ),
            models.UniqueConstraint(
                fields=["shard", "attempt"], condition=Q(shard__isnull=False), name="storedlog_one_per_shard_attempt"
            ),
            models.UniqueConstraint(
                fields=["deployment"], condition=Q(deployment__isnull=False), name="storedlog_one_per_deployment"
            ),
        ]

    def __str__(self) -> str:
        if self.deployment_id:
            return f"log of deployment {self.deployment_id}"
        if self.shard_id:
            return f"log of shard {self.shard_id} (attempt {self.attempt}) of run {self.run_id}"
        return f"log of run {self.run_id}"

    @property
    def was_cut(self) -> bool:
        return self.cut_bytes > 0
