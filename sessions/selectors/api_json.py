"""The JSON the API and the CLI answer with for a run (``GET /api/v1/runs/<id>``, an upload's reply)."""

from __future__ import annotations

from django.conf import settings

from ..models import RunSignature, TestRun


def run_url(run: TestRun) -> str:
    """The run's page as an absolute URL (``LOOPDASH_BASE_URL``), for CI logs and the CLI."""
    return settings.LOOPDASH_BASE_URL.rstrip("/") + run.get_absolute_url()


def run_as_json(run: TestRun) -> dict:
    """The run as the API returns it: status, totals, pass rate, MRR at risk and its failure signatures.

    Programs read these keys (docs/CONTRACTS.md, "The run JSON"; ``/api/v1/openapi.json``): rename none.
    """
    signatures = RunSignature.objects.filter(run=run).select_related("signature").order_by("-results", "signature_id")
    return {
        "id": run.pk,
        "session": run.session.slug,
        "cycle": run.cycle.number,
        "status": run.status,
        "incomplete": run.incomplete,
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
        "signatures": [{"id": rs.signature_id, "title": rs.signature.title, "count": rs.results} for rs in signatures],
        "url": run_url(run),
    }
