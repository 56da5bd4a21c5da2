"""What a run fed from CI over HTTP keeps between two batches of report-log lines.

A worker's run reads its report-log in one process for its whole life, so the parser's memory of the
tests still in flight lives in that process. A run fed over HTTP gets each batch in whichever web
process answers, so that memory must be stored: ``pending`` holds the lines of the tests that have
not finished yet (a setup whose call and teardown come in a later batch), and is fed again in front
of the next batch. It stays small: only tests in flight, never the finished ones.
"""

from __future__ import annotations

from django.db import models

from .loop import TestRun


class LiveStream(models.Model):
    """The open end of a run fed by ``POST /api/v1/runs/<id>/results`` (one row per such run)."""

    run = models.OneToOneField(TestRun, on_delete=models.CASCADE, primary_key=True, related_name="live_stream")
    session_start = models.TextField(
        blank=True, help_text="The SessionStart line: it tells the parser pytest's version."
    )
    pending = models.TextField(
        blank=True, help_text="Lines of the tests still in flight, fed again before the next batch."
    )
    batches = models.PositiveIntegerField(
        default=0, help_text="Batches stored; a client's batch number makes retries safe."
    )
    lines = models.PositiveBigIntegerField(default=0)
    metric_values = models.JSONField(
        default=dict, blank=True, help_text="Numeric properties seen so far, for the summary."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"live stream of run {self.run_id}"
