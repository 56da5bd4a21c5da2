"""Signature bookkeeping that triage, the fix lifecycle and the run-completion pipeline share.

Following merges to the signature that receives results (``root_of``), a signature's history
(``record_event``), moving a run's results off a signature merged while it ran (``absorb_merged``),
recounting, and labelling signatures with categories. Nothing here decides anything a user asked
for; ``triage`` (edits) and ``lifecycle`` (fix verdicts) do, on top of it.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.db.models import Count, Max, Min

from ..models import FailureSignature, RunSignature, SignatureCategory, SignatureEvent, TestResult, TestRun
from .aggregates import rebuild_signature_counts


def acting_user(user: object) -> object | None:
    """The user to record as the author, or None for anonymous callers (scripts, the worker)."""
    return user if getattr(user, "is_authenticated", False) else None


def record_event(signature_id: int, action: str, detail: str = "", user: object = None) -> SignatureEvent:
    return SignatureEvent.objects.create(
        signature_id=signature_id, user=acting_user(user), action=action, detail=detail[:500]
    )


def root_of(signature_id: int) -> int:
    """Follow ``merged_into`` to the signature that receives the results (cycles are refused on merge)."""
    seen: set[int] = set()
    current = signature_id
    while current not in seen:
        seen.add(current)
        nxt = FailureSignature.objects.filter(pk=current).values_list("merged_into_id", flat=True).first()
        if not nxt:
            return current
        current = nxt
    return current


def recount_run_signatures(signature_id: int, run_ids: list[int]) -> None:
    """Rewrite the RunSignature rows of one signature in the given runs from its results (set-based)."""
    if not run_ids:
        return
    rows = (
        TestResult.objects.filter(signature_id=signature_id, run_id__in=run_ids)
        .values("run_id")
        .annotate(
            results=Count("id"), tests=Count("case_id", distinct=True), modules=Count("case__module", distinct=True)
        )
        .order_by()
    )
    RunSignature.objects.filter(signature_id=signature_id, run_id__in=run_ids).delete()
    RunSignature.objects.bulk_create(
        [
            RunSignature(
                run_id=r["run_id"],
                signature_id=signature_id,
                results=r["results"],
                tests=r["tests"],
                modules=r["modules"],
            )
            for r in rows
        ]
    )


def recount_signature(signature_id: int) -> None:
    """A signature's lifetime counters and first/last runs, from its results and RunSignature rows."""
    totals = TestResult.objects.filter(signature_id=signature_id).aggregate(
        results=Count("id"), tests=Count("case_id", distinct=True), modules=Count("case__module", distinct=True)
    )
    span = RunSignature.objects.filter(signature_id=signature_id).aggregate(first=Min("run_id"), last=Max("run_id"))
    fields: dict[str, object] = {
        "result_count": totals["results"] or 0,
        "test_count": totals["tests"] or 0,
        "module_count": totals["modules"] or 0,
    }
    if span["first"] is not None:
        runs = dict(TestRun.objects.filter(pk__in=[span["first"], span["last"]]).values_list("pk", "finished_at"))
        fields.update(
            first_seen_run_id=span["first"],
            first_seen_at=runs.get(span["first"]),
            last_seen_run_id=span["last"],
            last_seen_at=runs.get(span["last"]),
        )
    FailureSignature.objects.filter(pk=signature_id).update(**fields)
    # Merged results moved: the pre-aggregates (migration 0003) must follow them.
    rebuild_signature_counts([signature_id])


def absorb_merged(run_id: int) -> list[int]:
    """Move results a run wrote to a signature merged while it was running onto the merge target.

    A live run resolves fingerprints once; a merge in the middle leaves its later results on the
    merged signature. Called when the run ends: afterwards nothing points to a merged signature.
    """
    stray = list(
        RunSignature.objects.filter(run_id=run_id, signature__merged_into__isnull=False).values_list(
            "signature_id", flat=True
        )
    )
    roots = []
    for signature_id in stray:
        root = root_of(signature_id)
        with transaction.atomic():
            TestResult.objects.filter(run_id=run_id, signature_id=signature_id).update(signature_id=root)
            RunSignature.objects.filter(run_id=run_id, signature_id=signature_id).delete()
            recount_run_signatures(root, [run_id])
            recount_signature(root)
            FailureSignature.objects.filter(pk=signature_id).update(result_count=0, test_count=0, module_count=0)
        roots.append(root)
    return roots


def category_for(patterns: list[tuple[int, re.Pattern]], normalized: str, sample: str) -> int | None:
    """The first category (in position order) whose pattern matches, as ingestion assigns it."""
    return next((pk for pk, rx in patterns if rx.search(normalized) or rx.search(sample)), None)


def compiled_categories() -> list[tuple[int, re.Pattern]]:
    """Every category's pattern compiled once, in position order: what ``category_for`` takes.

    Ingestion compiles them once per writer and relabelling once per call. A pattern that does not
    compile is left out: the model validator refuses these, and an old row must not stop the others.
    """
    patterns = []
    for category in SignatureCategory.objects.order_by("position", "id"):
        try:
            patterns.append((category.pk, re.compile(category.pattern)))
        except re.error:
            continue
    return patterns


def apply_categories() -> int:
    """Label every signature again from the categories' patterns; returns how many changed."""
    patterns = compiled_categories()
    changed = []
    rows = FailureSignature.objects.only("id", "normalized", "sample_message", "category_id").order_by("pk")
    for signature in rows.iterator(chunk_size=2000):
        new = category_for(patterns, signature.normalized, signature.sample_message)
        if new != signature.category_id:
            signature.category_id = new
            changed.append(signature)
    FailureSignature.objects.bulk_update(changed, ["category"], batch_size=1000)
    return len(changed)
