"""Quarantine: a test of an environment set aside, with a reason and an end date.

A quarantined test still runs and its results are stored and shown, marked; while the quarantine is
active, the results of that test are left out of the run's pass rate, MRR at risk, criteria and cycles
to green. Whether a result was quarantined is decided once, when its run completes
(``TestResult.quarantined``), so a quarantine started later never changes an old run's figures.

A quarantine is *active* while it has not been ended by hand and today is before ``until``: it ends by
itself on that date, with no job to run (the date is compared wherever the list is read).
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from .loop import Environment
from .results import TestCase
from .triage import FailureSignature


class QuarantineQuerySet(models.QuerySet):
    def active(self, today: datetime.date | None = None) -> QuarantineQuerySet:
        """Not ended by hand and not past its date (it ends on ``until``)."""
        return self.filter(ended_at__isnull=True, until__gt=today or timezone.localdate())


class Quarantine(models.Model):
    """One test set aside in one environment, from ``created_at`` until ``until`` (or until ended early)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="quarantines")
    case = models.ForeignKey(TestCase, on_delete=models.CASCADE, related_name="quarantines", db_constraint=False)
    reason = models.CharField(max_length=500)
    until = models.DateField(help_text="The quarantine ends by itself on this date.")
    # Set when the quarantine came from a signature's page (every test of that signature at once).
    signature = models.ForeignKey(
        FailureSignature, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Ended early by hand.")
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = QuarantineQuerySet.as_manager()

    class Meta:
        ordering = ["until", "id"]
        constraints = [
            # At most one open quarantine per test: a new one for the same test updates it.
            models.UniqueConstraint(
                fields=["case"], condition=models.Q(ended_at__isnull=True), name="quarantine_one_open_per_case"
            ),
        ]
        indexes = [
            # The active list of an environment (API, pages, run completion).
            models.Index(
                fields=["environment", "until"], condition=models.Q(ended_at__isnull=True), name="quarantine_env_open"
            ),
        ]

    def __str__(self) -> str:
        return f"quarantine of {self.case_id} until {self.until}"

    def is_active(self, today: datetime.date | None = None) -> bool:
        return self.ended_at is None and self.until > (today or timezone.localdate())
