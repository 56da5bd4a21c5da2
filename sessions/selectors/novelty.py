"""New since: which signatures a cycle brought, so that pages lead with them.

A signature is *new* in a cycle of a session when no counted run of an earlier cycle of that
session showed it (a run that does not count says nothing about the product, docs/COUNTING.md).
*Regressed* is the signature's status: verified once, seen again. The run and session pages show
new and regressed signatures first, with badges, then the known ones. One query per page: the
signatures among those shown that an earlier cycle of the session already had.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..models import Cycle, FailureSignature, RunSignature

REGRESSED = FailureSignature.Status.REGRESSED


def seen_before(session_id: int, cycle_number: int | None, signature_ids: Iterable[int]) -> set[int]:
    """The signatures among ``signature_ids`` that a counted run of an earlier cycle of the session had."""
    ids = list(signature_ids)
    if not ids or cycle_number is None:
        return set()
    return set(
        RunSignature.objects.filter(
            signature_id__in=ids, run__session_id=session_id, run__counted=True, run__cycle__number__lt=cycle_number
        )
        .values_list("signature_id", flat=True)
        .distinct()
    )


def cycle_number_of(cycle_id: int) -> object:
    """A subquery for a run's cycle number, so ``seen_before`` on the run page stays one query."""
    return Cycle.objects.filter(pk=cycle_id).values("number")[:1]


def lead_run_signatures(rows: list[RunSignature], session_id: int, cycle_id: int) -> list[RunSignature]:
    """The run page's signatures with ``is_new``/``is_regressed`` set, new and regressed first (stable)."""
    known = seen_before(session_id, cycle_number_of(cycle_id), [r.signature_id for r in rows])
    for row in rows:
        row.is_new = row.signature_id not in known
        row.is_regressed = row.signature.status == REGRESSED
    return sorted(rows, key=lambda r: not (r.is_new or r.is_regressed))
