"""Shards: one test run split over several workers, each part a row of its own.

A sharded run stays one ``TestRun`` (one page, one summary, one set of signatures); its results go
into that run. A ``RunShard`` is the part one worker runs: the node ids it was given (data, never
command-line text), its worker, status, counts, heartbeat and log tail, and the time it was planned
to take. An unsharded run has no shard rows.
"""

from __future__ import annotations

from django.db import models

from .loop import TestRun, WorkStatus

SHARDS_MAX = 32


class RunShard(models.Model):
    """The part of a run that one worker runs; retried once on another worker when its worker dies."""

    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveSmallIntegerField(help_text="1 to the run's number of shards.")
    status = models.CharField(max_length=20, choices=WorkStatus, default=WorkStatus.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="2 once retried after a lost worker.")
    nodeids = models.JSONField(default=list, blank=True, help_text="The test node ids this shard runs.")
    tests = models.PositiveIntegerField(default=0, help_text="How many node ids it was given.")
    planned_s = models.FloatField(null=True, blank=True, help_text="Expected test time, from recorded durations.")
    worker = models.CharField(max_length=255, blank=True, help_text="The Celery worker that runs it (node name).")
    lost_worker = models.CharField(max_length=255, blank=True, help_text="The worker it was lost on, avoided on retry.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    log_tail = models.TextField(blank=True)
    current_test = models.CharField(max_length=1000, blank=True)
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    xfailed = models.PositiveIntegerField(default=0)
    xpassed = models.PositiveIntegerField(default=0)
    tests_duration_s = models.FloatField(default=0.0)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="shard_unique_index")]
        indexes = [
            # The reaper: running shards whose heartbeat stopped.
            models.Index(fields=["status", "heartbeat_at"], name="shard_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"shard {self.index} of run {self.run_id}"

    @property
    def is_live(self) -> bool:
        return self.status in (WorkStatus.QUEUED, WorkStatus.RUNNING)
