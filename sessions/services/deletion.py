"""Deleting runs and sessions without leaving the figures that summarise them wrong.

A signature's counters (results, tests, modules, first and last seen) and the pre-aggregates behind
them are written when runs end, never recounted by pages. Deleting runs removes results under them,
so whoever deletes runs (the admin, a script) goes through here: the affected signatures are
recounted from what remains, and each touched session points to its newest remaining run.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from ..models import LoopSession, RunSignature, TestRun
from .signatures import recount_signature


def delete_runs(runs: QuerySet[TestRun]) -> int:
    """Delete ``runs`` (with their results); recount what they touched. Returns how many runs went."""
    with transaction.atomic():
        run_ids = list(runs.values_list("pk", flat=True))
        signature_ids = set(RunSignature.objects.filter(run_id__in=run_ids).values_list("signature_id", flat=True))
        session_ids = set(TestRun.objects.filter(pk__in=run_ids).values_list("session_id", flat=True))
        TestRun.objects.filter(pk__in=run_ids).delete()
        for signature_id in sorted(signature_ids):
            recount_signature(signature_id)
        for session in LoopSession.objects.filter(pk__in=session_ids, latest_run__isnull=True):
            newest = session.runs.filter(counted=True).order_by("-finished_at", "-id").first()
            LoopSession.objects.filter(pk=session.pk).update(latest_run=newest)
    return len(run_ids)


def delete_sessions(sessions: QuerySet[LoopSession]) -> int:
    """Delete ``sessions`` with their runs, recounting the signatures their runs touched."""
    with transaction.atomic():
        session_ids = list(sessions.values_list("pk", flat=True))
        delete_runs(TestRun.objects.filter(session_id__in=session_ids))
        LoopSession.objects.filter(pk__in=session_ids).delete()
    return len(session_ids)
