"""The storage engine of other databases (SQLite, the embedded default): ``bulk_create`` through the ORM.

It stores exactly what the COPY engine stores (the ingest tests run on both), more slowly: cases are
looked up and created batch by batch, and results go in 500 rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from ...ingest.records import ParsedResult
from ...models import TestCase, TestResult, identity_hash
from .signature_lookup import resolve_signatures
from .state import TIMED, Undo, WriterState, collect_metrics
from .text import clean_json, clean_text, module_of


class OrmStorage:
    """Stores batches with ``bulk_create``, inside the caller's transaction."""

    def __init__(self, state: WriterState) -> None:
        self.state = state

    def add(self, results: Iterable[ParsedResult], undo: Undo, metrics: dict[str, list[float]]) -> int:
        """Store ``results`` inside the caller's transaction; return how many."""
        stored = 0
        batch_size = self.state.batch_size
        batch: list[ParsedResult] = []
        for result in results:
            batch.append(result)
            if len(batch) >= batch_size:
                stored += self._write_batch(batch, undo, metrics)
                batch = []
        if batch:
            stored += self._write_batch(batch, undo, metrics)
        return stored

    def _write_batch(self, batch: list[ParsedResult], undo: Undo, metrics: dict[str, list[float]]) -> int:
        case_ids = self._resolve_cases(batch, undo)
        signature_ids = resolve_signatures(self.state, batch, undo)
        run_id = self.state.run.pk
        limit = self.state.suspect_limit
        rows = []
        for result, case_id in zip(batch, case_ids, strict=True):
            duration = result.duration
            suspect = bool(limit is not None and duration is not None and duration < limit and result.outcome in TIMED)
            props = result.properties or None
            if props:
                collect_metrics(props, metrics)
                props = clean_json(props)
            rows.append(
                TestResult(
                    run_id=run_id,
                    case_id=case_id,
                    outcome=str(result.outcome),
                    duration=duration,
                    suspect=suspect,
                    phase=result.phase,
                    message=clean_text(result.message),
                    details=clean_text(result.details),
                    signature_id=signature_ids.get(id(result)),
                    properties=props,
                    attempts=clean_json(result.attempts) if result.attempts else None,
                )
            )
        TestResult.objects.bulk_create(rows, batch_size=500)
        return len(rows)

    def _resolve_cases(self, batch: list[ParsedResult], undo: Undo) -> list[int]:
        """The case id of every result: from the cache, the database, or a case created now."""
        state = self.state
        hashes: list[str] = []
        missing: dict[str, ParsedResult] = {}
        known = state.case_ids
        for result in batch:
            nodeid = clean_text(result.nodeid)
            result.nodeid = nodeid
            key = identity_hash(nodeid)
            hashes.append(key)
            if key not in known and key not in missing:
                missing[key] = result
        if missing:
            env_id = state.environment.pk
            found = dict(
                TestCase.objects.filter(environment_id=env_id, nodeid_hash__in=list(missing)).values_list(
                    "nodeid_hash", "id"
                )
            )
            now = timezone.now()
            new = []
            for key, result in missing.items():
                if key in found:
                    continue
                priority, area_id = state.classify(result.nodeid, result.markers)
                new.append(
                    TestCase(
                        environment_id=env_id,
                        nodeid=result.nodeid,
                        nodeid_hash=key,
                        name=clean_text(result.name) or result.nodeid,
                        file=clean_text(result.file),
                        module=clean_text(module_of(result.nodeid, result.file)),
                        priority=priority,
                        area_id=area_id,
                        markers=clean_json(list(result.markers)),
                        created_at=now,
                    )
                )
            TestCase.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
            if new:
                found.update(
                    TestCase.objects.filter(
                        environment_id=env_id, nodeid_hash__in=[c.nodeid_hash for c in new]
                    ).values_list("nodeid_hash", "id")
                )
            known.update(found)
            undo.cases.extend(found)
        state.prioritized = True  # not tracked on this path: the summary counts by priority
        return [known[h] for h in hashes]
