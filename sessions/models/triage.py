"""Triage: failure signatures and their categories, history and per-run counts; five-whys analyses; fixes."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from .loop import Deployment, Environment, TestRun


def validate_regex(value: str) -> None:
    """Refuse a pattern that does not compile: ingestion compiles every category's pattern."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}") from exc


class SignatureCategory(models.Model):
    """An admin-defined label (infrastructure, product, test code...) matched by a regular expression."""

    name = models.CharField(max_length=100, unique=True)
    pattern = models.CharField(
        max_length=500,
        validators=[validate_regex],
        help_text="Regular expression matched against the signature's text. Saving re-labels every signature.",
    )
    position = models.PositiveIntegerField(default=0)
    colour = models.CharField(max_length=20, default="#6b7280")

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "signature categories"

    def __str__(self) -> str:
        return self.name


class FailureSignature(models.Model):
    """A normalised fingerprint of a failure, the same across runs, cycles, sessions and tests."""

    class Status(models.TextChoices):
        NEW = "new"
        INVESTIGATING = "investigating"
        ROOT_CAUSED = "root_caused", "Root-caused"
        FIX_DEPLOYED = "fix_deployed", "Fix deployed"
        VERIFIED = "verified"
        REGRESSED = "regressed"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="signatures")
    fingerprint = models.CharField(max_length=40)
    error_type = models.CharField(max_length=300, blank=True)
    normalized = models.TextField()
    title = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status, default=Status.NEW)
    category = models.ForeignKey(SignatureCategory, null=True, blank=True, on_delete=models.SET_NULL)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged")
    first_seen_run = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_seen_run = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    result_count = models.PositiveIntegerField(default=0)
    test_count = models.PositiveIntegerField(default=0)
    module_count = models.PositiveIntegerField(default=0)
    sample_message = models.TextField(blank=True)
    # Made by loopdash itself, not by the product: a test cut off by a cancel, a timeout or a lost
    # worker. Kept off the board and out of MRR at risk.
    internal = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    # Who owns the signature now (engineers and up); "my signatures" on the sessions page reads it.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_signatures"
    )

    class Meta:
        constraints = [
            # Ingestion finds a failure's signature by (environment, fingerprint).
            models.UniqueConstraint(fields=["environment", "fingerprint"], name="signature_unique_fingerprint"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("signature_detail", args=[self.pk])


class SignatureEvent(models.Model):
    """What happened to a signature and who did it: title and status edits, merges, fix verdicts."""

    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=40)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.signature_id}"


class RunSignature(models.Model):
    """A signature's footprint in one run, written with the run's summary (run page, per-cycle charts)."""

    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="signature_counts")
    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="run_counts")
    results = models.PositiveIntegerField(default=0)
    tests = models.PositiveIntegerField(default=0)
    modules = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "signature"], name="runsignature_unique")]
        indexes = [
            # Signature page: occurrences per cycle, first and last runs.
            models.Index(fields=["signature", "run"], name="runsig_signature_run"),
        ]

    def __str__(self) -> str:
        return f"{self.signature_id} in run {self.run_id}: {self.results}"


class Analysis(models.Model):
    """A five-whys analysis of a signature."""

    class Status(models.TextChoices):
        HYPOTHESIS = "hypothesis"
        CONFIRMED = "confirmed"
        REFUTED = "refuted"

    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="analyses")
    problem = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    error_behind_error = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.HYPOTHESIS)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every edit; stale edits are refused.")

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return f"analysis {self.pk} of {self.signature_id}"


class WhyStep(models.Model):
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    question = models.TextField()
    answer = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.question[:100]


class AnalysisEdit(models.Model):
    """Who changed an analysis, when, and what it looked like afterwards."""

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="edits")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=100)
    snapshot = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.user_id} at {self.at:%Y-%m-%d %H:%M}"


class Fix(models.Model):
    """A commit that claims to fix an analysis; verified by the first run after it is deployed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DEPLOYED = "deployed"
        VERIFIED = "verified"
        DID_NOT_FIX = "did_not_fix", "Did not fix"

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="fixes")
    sha = models.CharField(max_length=64, db_index=True)
    message = models.TextField(blank=True)
    url = models.URLField(blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.PENDING)
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="fixes")
    verified_by = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "fixes"

    def __str__(self) -> str:
        return self.sha[:12]
