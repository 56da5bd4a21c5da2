"""The live run page's one poll: the cards, the progress, the newest failures by signature, the counts by priority.

Everything comes from the run's own row (the live counts and ``live_figures``, written together by its
worker once a second: ``services/live_figures.py``), plus one query by primary key for the titles of the
signatures shown (a title may be renamed while the run runs). No result is counted or grouped here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import FailureSignature, TestRun

SIGNATURES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class LiveSignature:
    """A signature the live run has hit: its newest failure and how many results so far."""

    id: int
    title: str
    status: str
    status_label: str
    new: bool  # first seen in this run
    results: int
    test: str
    message: str


def live_signatures(run: TestRun, limit: int = SIGNATURES_SHOWN) -> list[LiveSignature]:
    """The signatures the run has hit so far, the one with the newest failure first (one query)."""
    entries = [e for e in (run.live_figures or {}).get("signatures", []) if isinstance(e, dict) and e.get("id")]
    entries = entries[:limit]
    if not entries:
        return []
    rows = {
        s.pk: s
        for s in FailureSignature.objects.filter(pk__in=[e["id"] for e in entries]).only(
            "id", "title", "status", "first_seen_run_id"
        )
    }
    shown = []
    for entry in entries:
        signature = rows.get(entry["id"])
        if signature is None:  # deleted meanwhile
            continue
        shown.append(
            LiveSignature(
                id=signature.pk,
                title=signature.title,
                status=signature.status,
                status_label=signature.get_status_display(),
                new=signature.first_seen_run_id in (None, run.pk),
                results=int(entry.get("results") or 0),
                test=str(entry.get("test") or ""),
                message=str(entry.get("message") or ""),
            )
        )
    return shown


@dataclass(frozen=True, slots=True)
class LivePanel:
    """What ``sessions/run_live.html`` shows besides the run's own columns."""

    signatures: list[LiveSignature]
    signature_count: int
    priorities: list[tuple[str, dict]]


def live_panel(run: TestRun) -> LivePanel:
    """The live panel's figures: from the run's row, plus one query for the signatures shown."""
    figures = run.live_figures or {}
    return LivePanel(
        signatures=live_signatures(run),
        signature_count=int(figures.get("signature_count") or 0),
        priorities=sorted((figures.get("by_priority") or {}).items()),
    )
