"""Five whys: a signature's analyses with their steps, fixes and edit history (the signature page's lower half)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Prefetch
from django.shortcuts import get_object_or_404

from ..models import Analysis, AnalysisEdit, FailureSignature, Fix, FixConfirmation

HISTORY_LIMIT = 40


def _fixes() -> Prefetch:
    """The fixes, each knowing whether it was ever confirmed by reruns (so the panel reads them only then)."""
    confirmed = FixConfirmation.objects.filter(fix_id=OuterRef("pk"))
    fixes = (
        Fix.objects.select_related("deployment", "verified_by")
        .annotate(has_confirmations=Exists(confirmed))
        .order_by("created_at", "id")
    )
    return Prefetch("fixes", queryset=fixes)


def signature_analyses(signature: FailureSignature, merged_ids: list[int] | None = None) -> list[Analysis]:
    """The signature's analyses and those of signatures merged into it, oldest first (three queries)."""
    ids = [signature.pk, *(merged_ids or [])]
    return list(
        Analysis.objects.filter(signature_id__in=ids)
        .select_related("author")
        .prefetch_related("steps", _fixes())
        .order_by("created_at", "id")
    )


def analysis_or_404(pk: int) -> Analysis:
    """An analysis with its signature: what a write to it needs (the version check, the page to go back to)."""
    return get_object_or_404(Analysis.objects.select_related("signature"), pk=pk)


def analysis_for_partial(pk: int) -> Analysis:
    """One analysis with its steps and fixes, for the partial an edit answers with (three queries)."""
    return get_object_or_404(
        Analysis.objects.select_related("author", "signature").prefetch_related("steps", _fixes()),
        pk=pk,
    )


def analysis_history(analyses: list[Analysis], limit: int = HISTORY_LIMIT) -> dict[int, list[AnalysisEdit]]:
    """The latest edits of these analyses, grouped by analysis (one query for all)."""
    edits = (
        AnalysisEdit.objects.filter(analysis_id__in=[a.pk for a in analyses])
        .select_related("user")
        .order_by("-at", "-id")[:limit]
    )
    grouped: dict[int, list[AnalysisEdit]] = {}
    for edit in edits:
        grouped.setdefault(edit.analysis_id, []).append(edit)
    return grouped


def page_signature_id(analysis: Analysis) -> int:
    """The signature whose page shows this analysis: the one it was merged into, else its own."""
    return analysis.signature.merged_into_id or analysis.signature_id


def analysis_section(pk: int, *, can_annotate: bool, editing: dict) -> dict:
    """The context of one analysis's partials (what an edit of it answers with), read fresh.

    ``signature`` is the analysis's own signature; the views put the page's signature in its place
    when they add the signature's fragments (badge, status menu, activity) to the answer.
    """
    current = analysis_for_partial(pk)
    return {
        "a": current,
        "signature": current.signature,
        "history": analysis_history([current]),
        "analysis_statuses": Analysis.Status.choices,
        "can_annotate": can_annotate,
        "editing": editing,
    }
