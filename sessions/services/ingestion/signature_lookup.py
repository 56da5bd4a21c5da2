"""The failure signature of each failed or errored result of a batch: found, or created.

Both storage engines call ``resolve_signatures`` before they write a batch's results. The key is the
exception type, the masked message and the failure's site in the project (``ingest.fingerprint.
signature_key``); the site is read from each traceback, and a key already met by the writer costs
nothing more; the others are looked up in one query and the missing ones
created in one ``bulk_create``, labelled with the first category whose pattern matches. A signature
merged into another one resolves to the signature that receives its results (``root_of``).
"""

from __future__ import annotations

from ...ingest.fingerprint import key_with_site, site_of
from ...ingest.records import INTERRUPTED_MESSAGE, ParsedResult
from ...models import FailureSignature
from ..signatures import category_for, root_of
from .state import FAILING, MEMO_LIMIT, Undo, WriterState
from .text import clean_text


def resolve_signatures(state: WriterState, batch: list[ParsedResult], undo: Undo) -> dict[int, int]:
    """Map id(result) → signature id for every failed or errored result of the batch.

    Cleans each such result's ``error_type`` and ``message`` in place (``clean_text``): the engines
    then store them as they are.
    """
    wanted: dict[int, str] = {}
    new: dict[str, tuple[str, str, ParsedResult]] = {}
    memo = state.fingerprints
    known = state.signature_ids
    for result in batch:
        if result.outcome not in FAILING:
            continue
        result.error_type = error_type = clean_text(result.error_type)
        result.message = message = clean_text(result.message)
        text = message or clean_text(result.details[:500])
        site = site_of(error_type, result.details)
        key = (error_type, text, site)
        found = memo.get(key)
        if found is None:
            if len(memo) > MEMO_LIMIT:
                memo.clear()
            found = memo[key] = key_with_site(error_type, text, site)
        fp = found[0]
        wanted[id(result)] = fp
        if fp not in known and fp not in new:
            new[fp] = (found[1], error_type, result)
    if new:
        _load_or_create(state, new, undo)
    return {key: known[fp] for key, fp in wanted.items()}


def _load_or_create(state: WriterState, new: dict[str, tuple[str, str, ParsedResult]], undo: Undo) -> None:
    env_id = state.environment.pk
    known = state.signature_ids
    existing = FailureSignature.objects.filter(environment_id=env_id, fingerprint__in=list(new)).values_list(
        "fingerprint", "id", "merged_into_id"
    )
    for fp, pk, merged_into in existing:
        known[fp] = root_of(merged_into) if merged_into else pk
        undo.signatures.append(fp)
    to_create = []
    for fp, (normalized, error_type, result) in new.items():
        if fp in known:
            continue
        sample = clean_text(result.message or result.details[:500])
        title = clean_text(_title_of(error_type, sample, normalized))
        to_create.append(
            FailureSignature(
                environment_id=env_id,
                fingerprint=fp,
                error_type=clean_text(error_type)[:300],
                normalized=clean_text(normalized),
                title=title[:300],
                sample_message=sample[:2000],
                category_id=category_for(state.categories, normalized, sample),
                internal=INTERRUPTED_MESSAGE in normalized,
            )
        )
    if to_create:
        FailureSignature.objects.bulk_create(to_create, ignore_conflicts=True)
        created = FailureSignature.objects.filter(
            environment_id=env_id, fingerprint__in=[s.fingerprint for s in to_create]
        ).values_list("fingerprint", "id")
        for fp, pk in created:
            known[fp] = pk
            undo.signatures.append(fp)


def _title_of(error_type: str, sample: str, normalized: str) -> str:
    """A new signature's first title: the sample's first line, led by the error type."""
    first = next((line.strip() for line in sample.splitlines() if line.strip()), "")
    if not first:
        return normalized or error_type or "Unknown failure"
    if error_type and not first.startswith(error_type):
        return f"{error_type}: {first}"
    return first
