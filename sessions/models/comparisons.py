"""Stored comparisons of two finished runs: each list's tests and every list's count, computed once.

A finished run's results do not change (retention blanks their text, never their outcome or duration),
so the differences between two finished runs are a fact that can be written once. The run-completion
pipeline stores a counted run's comparison with its default base (the previous full run of its session);
a comparison with any other finished run is stored the first time a page asks for it. Pages then read the
counts from one row and page through one list by an index range, whatever the runs' sizes.
"""

from __future__ import annotations

from django.db import models

from .loop import TestRun


class RunComparison(models.Model):
    """``run`` compared with ``base``: the number of tests in each list (``selectors.compare.COMPARE_LISTS``)."""

    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="+")
    base = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="+")
    counts = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "base"], name="comparison_unique_pair")]

    def __str__(self) -> str:
        return f"run {self.run_id} against run {self.base_id}"


class ComparisonEntry(models.Model):
    """One test in one list of a stored comparison (``delta``: seconds slower, for the "slower" list)."""

    # No FK index of its own: the (comparison, kind, case) index leads with it.
    comparison = models.ForeignKey(RunComparison, on_delete=models.CASCADE, related_name="entries", db_index=False)
    kind = models.CharField(max_length=20)
    # A test id, not a foreign key: entries are written by one INSERT ... SELECT from the results, which
    # name their cases without a database constraint either (see TestResult).
    case_id = models.BigIntegerField()
    delta = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            # A list's page: keyset on the test id.
            models.Index(fields=["comparison", "kind", "case_id"], name="cmpentry_list"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.case_id}"
