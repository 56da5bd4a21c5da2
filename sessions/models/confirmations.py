"""Confirming a deployed fix by reruns: N runs of its signature's tests, judged together.

The first run after a deployment judges a fix by itself (``services/lifecycle.py``); a flaky failure
can pass once by luck. A confirmation is asked for on the signature page: N runs of the tests the
signature hit when last seen, on what is deployed now. The fix is verified only if every one of them
ran to its end and every test passed; the runs stay linked as the evidence (``FixConfirmationRun``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .loop import Deployment, TestRun
from .triage import Fix

CONFIRMATION_RUNS_MAX = 10
CONFIRMATION_RUNS_DEFAULT = 3


class FixConfirmation(models.Model):
    """One request to confirm a fix by ``runs_requested`` reruns of its signature's tests, and its verdict."""

    class Status(models.TextChoices):
        RUNNING = "running"
        VERIFIED = "verified"
        DID_NOT_FIX = "did_not_fix", "Did not fix"
        # A run could not tell (lost, cancelled, error, excluded, a test that did not run or pass for
        # another reason): the fix keeps its status.
        INCOMPLETE = "incomplete"

    fix = models.ForeignKey(Fix, on_delete=models.CASCADE, related_name="confirmations")
    # What the runs ran against: the environment's latest succeeded deployment when they were queued.
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    runs_requested = models.PositiveSmallIntegerField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    requested_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.RUNNING)
    # Why: "3 of 3 runs passed all 4 tests", "run 41 still shows it", "run 42 lost".
    verdict = models.CharField(max_length=500, blank=True)
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"confirmation {self.pk} of fix {self.fix_id}"


class FixConfirmationRun(models.Model):
    """One of a confirmation's runs (``number`` of ``runs_requested``); a run confirms at most one fix."""

    confirmation = models.ForeignKey(FixConfirmation, on_delete=models.CASCADE, related_name="runs")
    run = models.OneToOneField(TestRun, on_delete=models.CASCADE, related_name="fix_confirmation")
    number = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["confirmation", "number"]

    def __str__(self) -> str:
        return f"run {self.run_id} ({self.number}) of confirmation {self.confirmation_id}"
