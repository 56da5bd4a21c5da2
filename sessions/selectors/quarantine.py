"""The active quarantines of an environment as pages and the API show them, with release suggestions.

A quarantined test whose latest ``LOOPDASH_QUARANTINE_RELEASE_AFTER`` (default 5) results in counted runs
all passed is suggested for release: the quarantine may end early. Two queries whatever the number of
quarantines (the list, then one ranked read of the latest results of those tests).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from ..models import FailureSignature, Outcome, Quarantine, TestCase, TestResult


def release_after() -> int:
    """How many counted runs in a row a quarantined test must pass to be suggested for release."""
    return max(1, int(getattr(settings, "LOOPDASH_QUARANTINE_RELEASE_AFTER", 5)))


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """One active quarantine as pages and the API show it."""

    quarantine: Quarantine
    passes_in_a_row: int
    suggest_release: bool

    @property
    def as_json(self) -> dict:
        q = self.quarantine
        return {
            "test": q.case.nodeid,
            "reason": q.reason,
            "until": q.until.isoformat(),
            "by": q.created_by.get_username() if q.created_by else None,
        }


def _passes_in_a_row(case_ids: list[int], newest: int) -> dict[int, int]:
    """For each test, how many of its latest ``newest`` results in counted runs passed, newest first, unbroken."""
    if not case_ids:
        return {}
    ranked = (
        TestResult.objects.filter(case_id__in=case_ids, run__counted=True)
        .annotate(rank=Window(RowNumber(), partition_by=[F("case_id")], order_by=F("run_id").desc()))
        .filter(rank__lte=newest)
        .values_list("case_id", "rank", "outcome")
    )
    streak: dict[int, int] = dict.fromkeys(case_ids, 0)
    broken: set[int] = set()
    for case_id, _rank, outcome in sorted(ranked, key=lambda row: (row[0], row[1])):
        if case_id in broken:
            continue
        if outcome == Outcome.PASSED:
            streak[case_id] += 1
        else:
            broken.add(case_id)
    return streak


def active_rows(environment_id: int, *, case_ids: list[int] | None = None) -> list[QuarantineRow]:
    """The environment's active quarantines (all, or those of ``case_ids``), each with its release hint.

    Two queries whatever the number of quarantines.
    """
    found = Quarantine.objects.active().filter(environment_id=environment_id).select_related("case", "created_by")
    if case_ids is not None:
        found = found.filter(case_id__in=case_ids)
    quarantines = list(found.order_by("until", "id"))
    needed = release_after()
    streaks = _passes_in_a_row([q.case_id for q in quarantines], needed)
    return [QuarantineRow(q, streaks.get(q.case_id, 0), streaks.get(q.case_id, 0) >= needed) for q in quarantines]


def _tomorrow() -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=1)


def case_quarantine(case: TestCase) -> dict:
    """The test page's part: its active quarantine (or None), the release threshold, the earliest end date."""
    rows = active_rows(case.environment_id, case_ids=[case.pk])
    return {"quarantine": rows[0] if rows else None, "release_after": release_after(), "tomorrow": _tomorrow()}


def signature_quarantine(signature: FailureSignature, case_ids: list[int]) -> dict:
    """The signature page's part: the active quarantines among the tests it hit (those the page lists)."""
    rows = active_rows(signature.environment_id, case_ids=case_ids) if case_ids else []
    return {"quarantine": rows, "tomorrow": _tomorrow()}
