"""Tests and their results: test cases (a test's identity in an environment), results, business impact."""

from __future__ import annotations

import hashlib

from django.db import models
from django.urls import reverse

from .loop import Environment, TestRun
from .triage import FailureSignature


def identity_hash(text: str) -> str:
    """Hash a test identity: node ids can be longer than a B-tree index entry allows."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


class Outcome(models.TextChoices):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"


class BusinessArea(models.Model):
    """A part of the product with the monthly revenue that depends on it."""

    name = models.CharField(max_length=100, unique=True)
    mrr = models.DecimalField(max_digits=14, decimal_places=2, default=0, help_text="Monthly recurring revenue.")

    def __str__(self) -> str:
        return self.name


class ImpactRule(models.Model):
    """Maps tests to a priority and/or business area, by node-id glob, marker or priority."""

    class Match(models.TextChoices):
        GLOB = "glob", "Node-id glob"
        MARKER = "marker", "Marker"
        PRIORITY = "priority", "Priority"

    environment = models.ForeignKey(
        Environment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="impact_rules",
        help_text="Empty: applies to every environment.",
    )
    position = models.PositiveIntegerField(
        default=0, help_text="Rules apply in order; the first match of each kind wins."
    )
    match = models.CharField(max_length=20, choices=Match)
    pattern = models.CharField(max_length=500)
    priority = models.CharField(max_length=10, blank=True, help_text="Priority given to matching tests, e.g. P1.")
    area = models.ForeignKey(BusinessArea, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.match} {self.pattern}"


class TestCase(models.Model):
    """A test's identity in an environment."""

    __test__ = False

    # No separate index on environment: the unique (environment, nodeid_hash) leads with it. No database
    # FK constraints here either (as on TestResult): checking two per new case cost 0.4 s of a
    # 100,000-case upload; ingestion resolves both ids itself and deletes cascade through the ORM.
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="cases", db_index=False, db_constraint=False
    )
    nodeid = models.TextField()
    nodeid_hash = models.CharField(max_length=40)
    name = models.TextField()
    file = models.TextField(blank=True)
    module = models.TextField(blank=True)
    priority = models.CharField(max_length=10, blank=True)
    area = models.ForeignKey(
        BusinessArea,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cases",
        db_constraint=False,
        db_index=False,  # case_area below: partial, as most tests have no area
    )
    markers = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Flakiness, kept up to date by run_completion.complete_run (flaky.record_run) so that no page scans results for it.
    # ``recent``: one letter per finished run that executed the test (P passed, F failed, E error), oldest
    # first, at most 30; kept only for tests that have failed at least once (the others never flipped).
    # Ingestion COPYs new cases without these columns: the database supplies their defaults.
    recent = models.CharField(max_length=30, blank=True, db_default="")
    flip_rate = models.FloatField(null=True, blank=True, help_text="Pass/fail changes over the recent runs, 0-1.")
    flaky_key = models.CharField(
        max_length=100, blank=True, db_default="", help_text="Revision on which it passed and failed."
    )
    flaky_run = models.ForeignKey(
        "TestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,  # case_flaky_run below: partial, as most tests were never caught flaky
    )
    flaky_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Ingestion looks cases up by (environment, hash of node id).
            models.UniqueConstraint(fields=["environment", "nodeid_hash"], name="case_unique_identity"),
        ]
        indexes = [
            # Session page: the environment's flaky tests, most recently caught first.
            models.Index(
                fields=["environment", "-flaky_at"], name="case_env_flaky", condition=models.Q(flaky_at__isnull=False)
            ),
            # flaky.record_run: the tests of an environment whose history is being kept.
            models.Index(fields=["environment"], name="case_env_tracked", condition=~models.Q(recent="")),
            # The foreign keys' own indexes (SET NULL when an area or a run goes, a run's flaky tests), partial:
            # a full one would index the NULL of every new case, a tenth of a second per 100,000 (migration 0018).
            models.Index(fields=["area"], name="case_area", condition=models.Q(area__isnull=False)),
            models.Index(fields=["flaky_run"], name="case_flaky_run", condition=models.Q(flaky_run__isnull=False)),
        ]

    def __str__(self) -> str:
        return self.nodeid[:200]

    def get_absolute_url(self) -> str:
        return reverse("test_detail", args=[self.pk])


class TestResult(models.Model):
    """One test in one run. Written in bulk (COPY on PostgreSQL), never one by one."""

    __test__ = False

    # FK indexes are off: the composite indexes below lead with these columns,
    # and every extra index slows the COPY of a 100,000-result file. Database FK
    # constraints are off too: Django makes them deferred on PostgreSQL, and
    # checking 300,000 deferred triggers at commit doubled the time of a large
    # ingest. Ingestion is the only writer and resolves every id itself; deletes
    # cascade through the ORM.
    run = models.ForeignKey(
        TestRun, on_delete=models.CASCADE, related_name="results", db_index=False, db_constraint=False
    )
    case = models.ForeignKey(
        TestCase, on_delete=models.CASCADE, related_name="results", db_index=False, db_constraint=False
    )
    outcome = models.CharField(max_length=10, choices=Outcome)
    duration = models.FloatField(null=True, blank=True)
    suspect = models.BooleanField(default=False)
    phase = models.CharField(max_length=10, blank=True)
    message = models.TextField(blank=True)
    details = models.TextField(blank=True)
    signature = models.ForeignKey(
        FailureSignature,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="results",
        db_index=False,
        db_constraint=False,
    )
    properties = models.JSONField(null=True, blank=True)
    # The test was quarantined when the run completed (services/quarantine.py): shown, but left out of
    # the run's pass rate and MRR at risk. Ingestion COPYs results without it: the database supplies False.
    quarantined = models.BooleanField(default=False, db_default=False)
    # Failed tries of a test rerun within the run (Surefire's flakyFailure/rerunFailure, pytest-rerunfailures),
    # oldest first: [{"outcome", "message", "type", "details"}]. Beside a passed outcome: flaky in this run.
    attempts = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            # Run page: a run's results filtered by outcome, in id order (keyset pagination). Partial: the
            # passed results (most of them) are found by result_run_id (run_id, id) of migration 0003, whose
            # rows are then mostly passed; ingestion skips 87 % of this index's entries (migration 0018).
            models.Index(
                fields=["run", "outcome", "id"], name="result_run_outcome", condition=~models.Q(outcome="passed")
            ),
            # Test page: a test's history across runs.
            models.Index(fields=["case", "run"], name="result_case_run"),
            # A signature's results: result_signature_recent (signature_id, run_id, id) WHERE signature_id IS
            # NOT NULL, of migration 0003 (plain SQL); the full (signature, run) index it covers was dropped in 0018.
        ]

    def __str__(self) -> str:
        return f"{self.outcome} in run {self.run_id}"
