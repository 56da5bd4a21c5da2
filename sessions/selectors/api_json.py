"""The JSON the API and the CLI answer with: a run (``GET /api/v1/runs/<id>``, an upload's reply, an
exclusion's), a session (``GET /api/v1/sessions/<slug>``) and a page of a run's results
(``GET /api/v1/runs/<id>/results``).

Programs read these keys (docs/CONTRACTS.md, "HTTP API"; ``/api/v1/openapi.json``): rename none.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q

from ..models import LoopSession, Outcome, RunSignature, TestResult, TestRun
from .cycles import CycleRow, session_cycles
from .sessions import flaky_tests
from .shards import shards_as_json

RESULTS_LIMIT = 100  # results per page when ``limit`` is not given
RESULTS_MAX = 1000
FAILING = (Outcome.FAILED, Outcome.ERROR)


def run_url(run: TestRun) -> str:
    """The run's page as an absolute URL (``LOOPDASH_BASE_URL``), for CI logs and the CLI."""
    return settings.LOOPDASH_BASE_URL.rstrip("/") + run.get_absolute_url()


def flaky_in_run(run: TestRun) -> int:
    """Tests that both failed (or errored) and passed within this run: one GROUP BY.

    Either a retry written as another result of the same test (a repeated test case), or a passed
    result that carries failed attempts (Surefire's ``<flakyFailure>``, pytest-rerunfailures).
    """
    return (
        TestResult.objects.filter(run=run, outcome__in=[*FAILING, Outcome.PASSED])
        .values("case_id")
        .annotate(
            failing=Count("id", filter=Q(outcome__in=FAILING)),
            passing=Count("id", filter=Q(outcome=Outcome.PASSED)),
            rerun=Count("id", filter=Q(outcome=Outcome.PASSED, attempts__isnull=False)),
        )
        .filter(Q(failing__gt=0, passing__gt=0) | Q(rerun__gt=0))
        .count()
    )


def run_as_json(run: TestRun) -> dict:
    """The run as the API returns it: status, totals, pass rate, MRR at risk, its failure signatures, and
    whether it counts (``counted``; ``excluded_reason`` says why not when it was excluded).

    ``quarantined``: results of tests quarantined when the run completed (in the totals, not in
    ``pass_rate``). ``shards``: [] for an unsharded run, else its parts (``selectors.shards``).
    """
    signatures = RunSignature.objects.filter(run=run).select_related("signature").order_by("-results", "signature_id")
    return {
        "id": run.pk,
        "session": run.session.slug,
        "cycle": run.cycle.number,
        "status": run.status,
        "incomplete": run.incomplete,
        "counted": run.counted,
        "excluded_reason": run.excluded_reason if run.excluded else None,
        "revision": run.revision
        or (run.deployment.revision if run.deployment_id else (run.properties or {}).get("revision")),
        # The commit whose suite ran (an environment with a repository), else the deployment's, else null.
        "commit": run.commit or (run.deployment.commit_sha if run.deployment_id else "") or None,
        "totals": {
            "tests": run.total,
            "passed": run.passed,
            "failed": run.failed,
            "errors": run.errors,
            "skipped": run.skipped,
            "xfailed": run.xfailed,
            "xpassed": run.xpassed,
        },
        "pass_rate": run.pass_rate,
        "duration_s": run.duration_s,
        "mrr_at_risk": float(run.mrr_at_risk),
        "flaky": flaky_in_run(run),
        "quarantined": run.quarantined,
        "shards": shards_as_json(run),
        "signatures": [{"id": rs.signature_id, "title": rs.signature.title, "count": rs.results} for rs in signatures],
        "url": run_url(run),
    }


def _cycle_revision(row: CycleRow) -> str | None:
    """The revision a cycle tested: its representative run's deployment, else the cycle's last good deploy."""
    run = row.representative
    by_id = {d.pk: d for d in row.deployments}
    if run is not None and run.deployment_id in by_id:
        return by_id[run.deployment_id].revision
    succeeded = [d for d in row.deployments if d.status == "succeeded"]
    return succeeded[-1].revision if succeeded else None


def latest_counted(cycles: list[CycleRow]) -> int | None:
    """The id of the session's latest counted run (as ``counting.refresh_headline`` orders them), or None."""
    counted = [run for row in cycles for run in row.runs if run.counted]
    if not counted:
        return None
    return max(counted, key=lambda run: (run.finished_at is not None, run.finished_at, run.pk)).pk


def session_as_json(session: LoopSession) -> dict:
    """The session as the API returns it: the latest counted run, each cycle's representative counted run
    (its figures, null when the cycle has none) and how many flaky tests the session page lists.

    The same selectors as the session page (``cycles.session_cycles``, ``sessions.flaky_tests``), so the
    API and the page never disagree.
    """
    cycles = session_cycles(session)
    _flaky, flaky_count = flaky_tests(session)
    return {
        "slug": session.slug,
        "title": session.title,
        "latest_counted_run": latest_counted(cycles),
        "cycles": [
            {
                "number": row.cycle.number,
                "revision": _cycle_revision(row),
                "run": row.representative.pk if row.representative is not None else None,
                "counted": row.representative is not None,
                "pass_rate": row.representative.pass_rate if row.representative is not None else None,
                "mrr_at_risk": float(row.representative.mrr_at_risk) if row.representative is not None else None,
            }
            for row in cycles
        ],
        "flaky_tests": flaky_count,
        "url": settings.LOOPDASH_BASE_URL.rstrip("/") + session.get_absolute_url(),
    }


@dataclass(frozen=True, slots=True)
class ResultsQuery:
    """``GET /api/v1/runs/<id>/results``: an outcome (or all), the cursor (a result id) and the page size."""

    outcome: str | None = None
    after: int | None = None
    limit: int = RESULTS_LIMIT


def results_as_json(run: TestRun, query: ResultsQuery) -> dict:
    """A page of the run's results in id order, by keyset (``id > after``), never OFFSET: one query.

    ``next`` is the cursor of the following page (the last id of this one, as a string), or null.
    """
    qs = TestResult.objects.filter(run=run)
    if query.outcome:
        qs = qs.filter(outcome=query.outcome)
    if query.after is not None:
        qs = qs.filter(id__gt=query.after)
    rows = list(
        qs.order_by("id").values("id", "case__nodeid", "outcome", "duration", "signature_id", "message")[
            : query.limit + 1
        ]
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "results": [
            {
                "test": r["case__nodeid"],
                "outcome": r["outcome"],
                "duration_s": r["duration"],
                "signature": r["signature_id"],
                "message": r["message"],
            }
            for r in rows
        ],
        "next": str(rows[-1]["id"]) if more and rows else None,
    }
