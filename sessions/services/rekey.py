"""Re-keying stored signatures when the key rule changes (migration 0011: the failure's site joined it).

Every stored failing result gets its new key (``ingest.fingerprint.signature_key``) from its own
error type, message and traceback. Its *origin* is the signature whose stored fingerprint equals the
result's key under the old rule (``fingerprint``: type and message only), so results a person moved
by merging are still traced to the signature they came from. Then, per environment:

- **Same cause, same signature.** An origin whose results all get one key keeps its id, title,
  status, analyses, fixes, history, assignee and comments; only ``fingerprint`` and ``normalized``
  change. Failures without a readable traceback keep the old key, and their signature is untouched.
- **One old signature, several keys (a split).** The origin keeps the key with most of its results
  (with everything people wrote); each other key becomes a new signature (status *new*, the title
  of its first failure, the origin's category), its results move there, and both histories say
  so. When the origin was merged by hand, the new part is merged into the same target: a person
  said those failures were one problem, and re-keying does not overrule that.
- **Several old signatures, one key (a combination).** The signature that holds triage (analyses, a
  status other than *new*) wins, then the one with more results, then the older; the others are
  merged into it as a merge by hand would (they keep their analyses and titles, point to it, and
  their old fingerprint, which no new failure has), and their results move.
- **Merges survive.** A signature merged by hand stays merged; its new key still leads ingestion to
  its target, and results stay on the target.

Lifetime counters, ``RunSignature`` rows and the pre-aggregates of every touched signature are
recounted. The function takes an app registry, so the migration runs it on the historical models.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from django.db import connection
from django.db.models import Count, Max, Min

from ..ingest.fingerprint import fingerprint, key_with_site, site_of
from .aggregates import rebuild_signature_counts

CHUNK = 2000


@dataclass
class _Part:
    """The results of one origin signature that get one new key."""

    count: int = 0
    moves: list[tuple[int, int]] = field(default_factory=list)  # (result id, current signature id)


@dataclass
class RekeyReport:
    rekeyed: int = 0  # signatures whose key changed in place
    split: int = 0  # new signatures made from parts of old ones
    combined: int = 0  # old signatures merged into another that got the same key
    moved: int = 0  # results that changed signature


def rekey_signatures(apps: object) -> RekeyReport:
    """Re-key every stored signature by the current rule; see the module docstring."""
    sig_model = apps.get_model("loop_sessions", "FailureSignature")
    result_model = apps.get_model("loop_sessions", "TestResult")
    event_model = apps.get_model("loop_sessions", "SignatureEvent")
    analysis_model = apps.get_model("loop_sessions", "Analysis")

    sigs = {row["id"]: row for row in sig_model.objects.values()}
    by_fp = {(s["environment_id"], s["fingerprint"]): pk for pk, s in sigs.items()}
    parts: dict[tuple[int, str], dict[int, _Part]] = defaultdict(lambda: defaultdict(_Part))
    described: dict[tuple[int, str], tuple[str, str, str]] = {}
    memo: dict[tuple[str, str, tuple[str, ...]], tuple[str, str]] = {}
    types_on = _types_on(sigs)
    rows = result_model.objects.filter(signature__isnull=False).values_list("id", "signature_id", "message", "details")
    for rid, current, message, details in rows.order_by("id").iterator(chunk_size=CHUNK):
        text = message or details[:500]
        env = sigs[current]["environment_id"]
        origin, error_type = _origin(by_fp, sigs, current, types_on[current], text)
        site = site_of(error_type, details)
        keys = memo.get((error_type, text, site))
        if keys is None:
            if len(memo) > 50_000:
                memo.clear()
            keys = memo[(error_type, text, site)] = key_with_site(error_type, text, site)
        part = parts[(env, keys[0])][origin]
        part.count += 1
        part.moves.append((rid, current))
        described.setdefault((env, keys[0]), (keys[1], error_type, text))

    triaged = set(analysis_model.objects.values_list("signature_id", flat=True))
    triaged |= {pk for pk, s in sigs.items() if s["status"] != "new"}
    holder, held = _assign(parts, triaged)
    report = RekeyReport()
    _write_keys(sig_model, sigs, held, described, report)
    for ek in parts:
        if ek not in holder:
            holder[ek] = _split_off(sig_model, event_model, sigs, ek, parts[ek], described[ek], report)
    _combine(sig_model, event_model, sigs, parts, held, holder, report)
    touched = _move_results(result_model, sigs, parts, holder, report)
    _recount(apps, touched)
    return report


def _types_on(sigs: dict) -> dict[int, list[str]]:
    """The error types a signature's results may carry: its own, then those of signatures merged into it.

    Results do not store their exception type (the parsers derive it for the key only); a result on
    a signature has that signature's type, or, once moved by a merge, the type of the one merged in.
    """
    found: dict[int, list[str]] = {pk: [s["error_type"]] for pk, s in sigs.items()}
    for pk, s in sorted(sigs.items()):
        if s["merged_into_id"]:
            types = found[_root(sigs, pk)]
            if s["error_type"] not in types:
                types.append(s["error_type"])
    return found


def _origin(by_fp: dict, sigs: dict, current: int, types: list[str], text: str) -> tuple[int, str]:
    """The signature a result came from (its old key), and its exception type; else where it is now.

    Only the result's own signature and those merged into it qualify: a stored key that no longer
    reproduces (rows keyed under an older mask rule) must not pull results out of their signature.
    """
    env = sigs[current]["environment_id"]
    for error_type in types:
        origin = by_fp.get((env, _old_key(error_type, text)))
        if origin is not None and (origin == current or _root(sigs, origin) == current):
            return origin, error_type
    return current, types[0]


@lru_cache(maxsize=8192)
def _old_key(error_type: str, text: str) -> str:
    """The key under the old rule; cached, since a cause's message repeats across its results."""
    return fingerprint(error_type, text)[0]


def _assign(parts: dict, triaged: set[int]) -> tuple[dict[tuple[int, str], int], dict[int, tuple[int, str]]]:
    """Which origin holds which key: triaged origins first, then larger parts, then older signatures."""
    ranked = sorted(
        (
            (origin in triaged, part.count, -origin, ek, origin)
            for ek, by in parts.items()
            for origin, part in by.items()
        ),
        reverse=True,
    )
    holder: dict[tuple[int, str], int] = {}
    held: dict[int, tuple[int, str]] = {}
    for _triaged, _count, _neg, ek, origin in ranked:
        if ek not in holder and origin not in held:
            holder[ek] = origin
            held[origin] = ek
    return holder, held


def _write_keys(sig_model: type, sigs: dict, held: dict, described: dict, report: RekeyReport) -> None:
    """New keys in place; through a temporary value first, since two signatures may swap keys."""
    changing = {pk: ek for pk, ek in held.items() if sigs[pk]["fingerprint"] != ek[1]}
    for pk in changing:
        sig_model.objects.filter(pk=pk).update(fingerprint=f"~rekey{pk}")
    for pk, ek in changing.items():
        sig_model.objects.filter(pk=pk).update(fingerprint=ek[1], normalized=described[ek][0])
        sigs[pk]["fingerprint"] = ek[1]
    report.rekeyed = len(changing)


def _root(sigs: dict, pk: int) -> int:
    seen = set()
    while sigs[pk]["merged_into_id"] and pk not in seen:
        seen.add(pk)
        pk = sigs[pk]["merged_into_id"]
    return pk


def _split_off(
    sig_model: type, event_model: type, sigs: dict, ek: tuple[int, str], by: dict, about: tuple, report: RekeyReport
) -> int:
    """A new signature for a key no old signature holds, taken from its largest origin."""
    origin = max(by, key=lambda pk: (by[pk].count, -pk))
    normalized, error_type, sample = about
    first = next((line.strip() for line in sample.splitlines() if line.strip()), "") or normalized
    title = first if not error_type or first.startswith(error_type) else f"{error_type}: {first}"
    merged_into = _root(sigs, origin) if sigs[origin]["merged_into_id"] else None
    new = sig_model.objects.create(
        environment_id=ek[0],
        fingerprint=ek[1],
        error_type=error_type[:300],
        normalized=normalized,
        title=title[:300],
        sample_message=sample[:2000],
        category_id=sigs[origin]["category_id"],
        internal=sigs[origin]["internal"],
        merged_into_id=merged_into,
    )
    sigs[new.pk] = {**sigs[origin], "id": new.pk, "fingerprint": ek[1], "merged_into_id": merged_into}
    n = sum(p.count for p in by.values())
    event_model.objects.create(
        signature_id=new.pk, action="split", detail=f"re-keyed by failure site: split from #{origin}; {n} results"
    )
    event_model.objects.create(
        signature_id=origin, action="split", detail=f"re-keyed by failure site: {n} results split off to #{new.pk}"
    )
    report.split += 1
    return new.pk


def _combine(
    sig_model: type, event_model: type, sigs: dict, parts: dict, held: dict, holder: dict, report: RekeyReport
) -> None:
    """Origins left without a key share their cause with another signature: merge them into it."""
    largest: dict[int, tuple[int, tuple[int, str]]] = {}
    for ek, by in parts.items():
        for origin, part in by.items():
            if origin not in held and (origin not in largest or part.count > largest[origin][0]):
                largest[origin] = (part.count, ek)
    for origin, (_count, ek) in sorted(largest.items()):
        if sigs[origin]["merged_into_id"]:
            continue  # merged by hand already: stays where a person put it
        target = _root(sigs, holder[ek])
        if target == origin:
            continue
        sig_model.objects.filter(pk=origin).update(merged_into_id=target)
        sig_model.objects.filter(merged_into_id=origin).update(merged_into_id=target)
        for s in sigs.values():
            if s["merged_into_id"] == origin:
                s["merged_into_id"] = target
        sigs[origin]["merged_into_id"] = target
        detail = "re-keyed by failure site: same cause"
        event_model.objects.create(signature_id=origin, action="merged", detail=f"{detail}: merged into #{target}")
        event_model.objects.create(signature_id=target, action="merged", detail=f"{detail}: #{origin} merged in")
        report.combined += 1


def _move_results(result_model: type, sigs: dict, parts: dict, holder: dict, report: RekeyReport) -> set[int]:
    """Every result onto the signature that receives its key's results; returns the signatures touched."""
    moves: dict[int, list[int]] = defaultdict(list)
    touched: set[int] = set()
    for ek, by in parts.items():
        target = _root(sigs, holder[ek])
        for part in by.values():
            for rid, current in part.moves:
                if current != target:
                    moves[target].append(rid)
                    touched.update((current, target))
    for target, ids in moves.items():
        for start in range(0, len(ids), CHUNK):
            result_model.objects.filter(pk__in=ids[start : start + CHUNK]).update(signature_id=target)
        report.moved += len(ids)
    return touched


def _recount(apps: object, touched: set[int]) -> None:
    """RunSignature rows, first/last seen and lifetime counters of the signatures whose results moved."""
    if not touched:
        return
    sig_model = apps.get_model("loop_sessions", "FailureSignature")
    result_model = apps.get_model("loop_sessions", "TestResult")
    run_sig_model = apps.get_model("loop_sessions", "RunSignature")
    run_model = apps.get_model("loop_sessions", "TestRun")
    ids = sorted(touched)
    run_sig_model.objects.filter(signature_id__in=ids).delete()
    per_run = (
        result_model.objects.filter(signature_id__in=ids)
        .values("signature_id", "run_id")
        .annotate(
            results=Count("id"), tests=Count("case_id", distinct=True), modules=Count("case__module", distinct=True)
        )
        .order_by()
    )
    run_sig_model.objects.bulk_create([run_sig_model(**row) for row in per_run], batch_size=CHUNK)
    spans = (
        run_sig_model.objects.filter(signature_id__in=ids)
        .values("signature_id")
        .annotate(first=Min("run_id"), last=Max("run_id"))
    )
    spans = {row["signature_id"]: row for row in spans}
    run_ids = {v for row in spans.values() for v in (row["first"], row["last"])}
    finished = dict(run_model.objects.filter(pk__in=run_ids).values_list("pk", "finished_at"))
    for pk in ids:
        row = spans.get(pk)
        if row:  # a signature left without results keeps its dates, as after a merge by hand
            sig_model.objects.filter(pk=pk).update(
                first_seen_run_id=row["first"],
                first_seen_at=finished.get(row["first"]),
                last_seen_run_id=row["last"],
                last_seen_at=finished.get(row["last"]),
            )
    rebuild_signature_counts(ids, connection=connection)
