"""The signature page: where a failure signature appeared, the tests it hit, a traceback, its events.

Its analyses (five whys) are read by ``selectors.analyses``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Substr
from django.shortcuts import get_object_or_404

from ..charts import Occurrence, occurrences_figure
from ..ingest.similarity import SITE_MARK, similar
from ..models import Analysis, FailureSignature, RunSignature, SignatureEvent, TestResult
from .analyses import analysis_history, signature_analyses
from .columns import DETAILS_PREVIEW_CHARS
from .confirmations import confirmation_section
from .quarantine import signature_quarantine

RUNS_SHOWN = 50
MERGED_SHOWN = 50
OCCURRENCE_RUNS = 2_000  # the run rows read for the page's runs list and its occurrences per cycle
_SIGNATURE_LIST_FIELDS = ("id", "title", "fingerprint", "error_type", "result_count", "normalized", "merged_into_id")


def signature_for_page(pk: int) -> FailureSignature:
    return get_object_or_404(
        FailureSignature.objects.select_related(
            "environment", "category", "merged_into", "first_seen_run__cycle", "last_seen_run__cycle", "assignee"
        ),
        pk=pk,
    )


def merge_target(pk: int | None) -> FailureSignature | None:
    """The signature a merge names, or None when it names none that exists."""
    return FailureSignature.objects.filter(pk=pk).first() if pk else None


@dataclass(slots=True)
class RunOfSignature:
    """A run the signature appeared in, as its runs table shows it (plain values: the page reads up to
    ``OCCURRENCE_RUNS`` of these for its occurrences, and 8,000 model instances cost more than the query)."""

    pk: int
    created_at: datetime
    pass_rate: float | None
    incomplete: bool
    session_slug: str
    session_title: str
    cycle: int | None


@dataclass(slots=True)
class SignatureRun:
    run: RunOfSignature
    results: int
    tests: int
    modules: int


def signature_runs(signature: FailureSignature, limit: int = RUNS_SHOWN) -> list[SignatureRun]:
    """The runs a signature appeared in, newest first (index runsig_signature_run): ``limit`` + 1 rows."""
    rows = (
        RunSignature.objects.filter(signature=signature)
        .order_by("-run_id")
        .values_list(
            "results", "tests", "modules", "run_id", "run__created_at", "run__pass_rate", "run__incomplete",
            "run__session__slug", "run__session__title", "run__cycle__number",
        )[: limit + 1]
    )  # fmt: skip
    return [
        SignatureRun(RunOfSignature(run_id, created, rate, incomplete, slug, title, cycle), results, tests, modules)
        for results, tests, modules, run_id, created, rate, incomplete, slug, title, cycle in rows
    ]


def signature_samples(signature: FailureSignature, limit: int = 10) -> list[TestResult]:
    """A few recent results of the signature (index result_signature_recent, read backwards)."""
    return list(
        TestResult.objects.filter(signature=signature)
        .select_related("case")
        .defer("details", "properties", "case__markers")
        .annotate(details_preview=Substr("details", 1, DETAILS_PREVIEW_CHARS + 1))
        .order_by("-run_id", "-id")[:limit]
    )


def merged_into_signature(signature: FailureSignature, limit: int = MERGED_SHOWN) -> list[FailureSignature]:
    return list(
        FailureSignature.objects.filter(merged_into=signature).only(*_SIGNATURE_LIST_FIELDS).order_by("id")[:limit]
    )


def occurrences_of_runs(rows: list[SignatureRun], limit: int = 120) -> list[Occurrence]:
    """Failing results per (session, cycle) of the signature's newest runs, summed from the RunSignature rows
    the page has already read (its newest ``OCCURRENCE_RUNS``): no result is counted, no query made."""
    sums: dict[tuple[str, int | None], list[int]] = {}  # (session, cycle) -> [results, runs]
    for row in rows:  # newest run first: the first ``limit`` groups are the newest
        key = (row.run.session_slug, row.run.cycle)
        if key not in sums and len(sums) == limit:
            continue
        found = sums.setdefault(key, [0, 0])
        found[0] += row.results
        found[1] += 1
    out = [Occurrence(session=s, cycle=c, results=r, runs=n) for (s, c), (r, n) in sums.items()]
    return sorted(out, key=lambda o: (o.session, o.cycle if o.cycle is not None else -1))


@dataclass(slots=True)
class HitTest:
    case_id: int
    nodeid: str
    module: str
    results: int


def signature_tests(
    signature: FailureSignature, *, sample: int = 2000, limit: int = 25
) -> tuple[list[HitTest], list[tuple[str, int]]]:
    """The tests and modules the signature hit among its latest ``sample`` results (one bounded query)."""
    rows = (
        TestResult.objects.filter(signature=signature)
        .order_by("-run_id", "-id")
        .values_list("case_id", "case__nodeid", "case__module")[:sample]
    )
    tests: dict[int, HitTest] = {}
    modules: dict[str, int] = {}
    for case_id, nodeid, module in rows:
        hit = tests.get(case_id)
        if hit is None:
            hit = tests[case_id] = HitTest(case_id, nodeid, module, 0)
        hit.results += 1
        modules[module or "—"] = modules.get(module or "—", 0) + 1
    ranked = sorted(tests.values(), key=lambda h: (-h.results, h.nodeid))[:limit]
    return ranked, sorted(modules.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def signature_traceback(signature: FailureSignature) -> TestResult | None:
    """One full traceback: the latest result of the signature that has one."""
    return (
        TestResult.objects.filter(signature=signature)
        .exclude(details="")
        .select_related("case")
        .only("id", "run_id", "details", "message", "phase", "case__id", "case__nodeid")
        .order_by("-run_id", "-id")
        .first()
    )


def traceback_of(signature: FailureSignature, samples: list[TestResult]) -> TestResult | None:
    """``signature_traceback``, without a query when the latest sample that has one holds it whole."""
    for sample in samples:  # the same order as signature_traceback's
        preview = getattr(sample, "details_preview", "")
        if preview:
            if len(preview) <= DETAILS_PREVIEW_CHARS:
                sample.details = preview  # the whole of it: shorter than the preview's bound
                return sample
            break
    return signature_traceback(signature)


def distinct_messages(samples: list[TestResult], limit: int = 5) -> list[str]:
    """The samples' different failure messages, in order, without repeats."""
    seen: list[str] = []
    for res in samples:
        if res.message and res.message not in seen:
            seen.append(res.message)
    return seen[:limit]


def signature_events(signature: FailureSignature, limit: int = 20) -> list[SignatureEvent]:
    return list(
        SignatureEvent.objects.filter(signature=signature).select_related("user").order_by("-at", "-id")[:limit]
    )


def _candidates_query(signature: FailureSignature, limit: int):
    return (
        FailureSignature.objects.filter(environment_id=signature.environment_id, merged_into__isnull=True)
        .exclude(pk=signature.pk)
        .only(*_SIGNATURE_LIST_FIELDS)
        .order_by(F("last_seen_at").desc(nulls_last=True), "-id")[:limit]
    )


def _ranked(signature: FailureSignature, found: list[FailureSignature]) -> list[FailureSignature]:
    for candidate in found:
        candidate.similar = similar(signature.normalized, candidate.normalized)
    return sorted(found, key=lambda c: not c.similar)


def merge_candidates(signature: FailureSignature, limit: int = 40) -> list[FailureSignature]:
    """Signatures this one could be merged into: same environment, not merged; those whose key is
    similar (``ingest/similarity.py``: same type and site, one word apart) first, marked ``similar``,
    then the most recently seen."""
    return _ranked(signature, list(_candidates_query(signature, limit)))


def merged_and_candidates(
    signature: FailureSignature, limit: int = 40
) -> tuple[list[FailureSignature], list[FailureSignature]]:
    """``merged_into_signature`` and ``merge_candidates`` in one query (a UNION ALL of the two), where the
    database allows a LIMIT in each part of a UNION (PostgreSQL; SQLite does not: two queries there)."""
    if not connection.features.supports_slicing_ordering_in_compound:
        return merged_into_signature(signature), merge_candidates(signature, limit)
    merged = (
        FailureSignature.objects.filter(merged_into=signature)
        .only(*_SIGNATURE_LIST_FIELDS)
        .order_by("id")[:MERGED_SHOWN]
    )
    rows = list(merged.union(_candidates_query(signature, limit), all=True))
    return (
        sorted((r for r in rows if r.merged_into_id == signature.pk), key=lambda r: r.pk),
        _ranked(signature, [r for r in rows if r.merged_into_id != signature.pk]),
    )


def header_section(signature: FailureSignature, *, can_annotate: bool, editing: dict) -> dict:
    """The context of the signature's header (title and status; the partial their edits answer with),
    with the activity list that every edit updates beside it."""
    return {
        "signature": signature,
        "statuses": FailureSignature.Status.choices,
        "events": signature_events(signature),
        "can_annotate": can_annotate,
        "editing": editing,
    }


def signature_fragments(pk: int, *, can_annotate: bool) -> dict:
    """What every triage edit answers with besides its own part (three queries): the signature as it is
    now (its status badge and status menu), its activity and how many analyses its page shows.

    Why: a confirmed analysis moves the signature to root-caused, a fix to fix deployed; the page must
    say so everywhere at once, not after a reload.
    """
    signature = signature_for_page(pk)
    count = Analysis.objects.filter(Q(signature_id=pk) | Q(signature__merged_into_id=pk)).count()
    return {
        "signature": signature,
        "statuses": FailureSignature.Status.choices,
        "events": signature_events(signature),
        "analysis_count": count,
        "can_annotate": can_annotate,
    }


def signature_page(signature: FailureSignature, *, can_annotate: bool, editing: dict) -> dict:
    """The context of the signature page. Merge candidates are read only for those who may merge."""
    # The newest run rows serve both the runs list and the occurrences per cycle (bounded: one query).
    run_rows = signature_runs(signature, limit=OCCURRENCE_RUNS)
    runs = run_rows[: RUNS_SHOWN + 1]
    may_merge = can_annotate and not signature.merged_into_id
    if may_merge:
        merged, candidates = merged_and_candidates(signature)
    else:
        merged, candidates = merged_into_signature(signature), []
    analyses = signature_analyses(signature, [m.pk for m in merged])
    samples = signature_samples(signature)
    tests, modules = signature_tests(signature)
    occurrences = occurrences_of_runs(run_rows)
    return {
        "signature": signature,
        "runs": runs[:RUNS_SHOWN],
        "more_runs": len(runs) > RUNS_SHOWN,
        "samples": samples,
        "messages": distinct_messages(samples),
        "traceback": traceback_of(signature, samples),
        "tests": tests,
        "modules": modules,
        "occurrences": occurrences,
        "occurrence_figure": occurrences_figure(occurrences) if occurrences else None,
        "analyses": analyses,
        "history": analysis_history(analyses),
        "events": signature_events(signature),
        "merged": merged,
        "candidates": candidates,
        "statuses": FailureSignature.Status.choices,
        "analysis_statuses": Analysis.Status.choices,
        "can_annotate": can_annotate,
        "details_limit": DETAILS_PREVIEW_CHARS,
        "editing": editing,
        # The key's text, split for the page: the masked message, then the site (docs/TRIAGE.md).
        "key_message": signature.normalized.partition(SITE_MARK)[0],
        "key_site": signature.normalized.partition(SITE_MARK)[2],
        **signature_quarantine(signature, [t.case_id for t in tests]),
        **confirmation_section(analyses),
    }
