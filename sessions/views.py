"""Pages: one view, one template; HTMX requests get a named partial of the same template.

LoginRequiredMiddleware guards every view here. Views stay thin: selectors read,
``charts`` builds figures, templates render. Every page costs a fixed number of
queries whatever the size of the run or session (see the tests' query bounds).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from . import selectors
from .charts import trend_figure
from .models import Outcome, TestRun


def _wants_partial(request: HttpRequest) -> bool:
    """An HTMX swap, not a history restore: htmx re-fetches a whole page when its history cache misses."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    # The same URL answers a page or a partial: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_GET
def sessions_list(request: HttpRequest) -> HttpResponse:
    sessions = list(selectors.sessions_for_list()[:200])
    return render(request, "sessions/sessions_list.html", {"sessions": sessions})


@require_GET
def session_detail(request: HttpRequest, slug: str) -> HttpResponse:
    session = selectors.session_for_page(slug)
    cycles = selectors.session_cycles(session)
    priority = selectors.chart_priority(session, cycles)
    figure = trend_figure(
        selectors.trend_points(cycles, priority),
        priority=priority,
        goal_pass_rate=session.goal_pass_rate,
    )
    context = {
        "session": session,
        "cycles": list(reversed(cycles)),  # newest cycle first in the table
        "run_count": sum(len(row.runs) for row in cycles),
        "figure": figure,
        "has_chart": bool(cycles),
        "chart_priority": priority,
        "criteria": list(session.criteria.all()),
    }
    return render(request, "sessions/session_detail.html", context)


def _outcome_options(run: TestRun) -> list[tuple[str, str, int]]:
    """(value, label, count) for the outcome filter; the counts come from the run's summary."""
    counts = {
        Outcome.PASSED: run.passed,
        Outcome.FAILED: run.failed,
        Outcome.ERROR: run.errors,
        Outcome.SKIPPED: run.skipped,
        Outcome.XFAILED: run.xfailed,
        Outcome.XPASSED: run.xpassed,
    }
    return [(str(value), value.label, counts[value]) for value in Outcome]


def _results_context(request: HttpRequest, run: TestRun) -> dict:
    filters = selectors.ResultFilters.from_query(request.GET)
    page = selectors.result_page(run, filters, after=request.GET.get("after"), before=request.GET.get("before"))
    options = _outcome_options(run)
    matching = None
    if filters.outcome and not (filters.q or filters.priority or filters.suspect):
        matching = next(count for value, _label, count in options if value == filters.outcome)
    elif not filters.active:
        matching = run.total
    return {
        "run": run,
        "filters": filters,
        "page": page,
        "outcome_options": options,
        "priorities": sorted((run.by_priority or {}).keys()),
        "matching": matching,  # None when a text, priority or suspect filter makes it unknown without counting
        "details_limit": selectors.DETAILS_PREVIEW_CHARS,
    }


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_for_page(pk)
    context = _results_context(request, run)
    if _wants_partial(request):
        return _vary_on_htmx(render(request, "sessions/run_detail.html#results", context))
    signatures = selectors.run_signatures(run)
    context.update(
        {
            "signatures": signatures[:50],
            "more_signatures": len(signatures) > 50,
            "suspects": selectors.suspect_results(run),
            "by_priority": sorted((run.by_priority or {}).items()),
        }
    )
    return _vary_on_htmx(render(request, "sessions/run_detail.html", context))


@require_GET
def signature_detail(request: HttpRequest, pk: int) -> HttpResponse:
    signature = selectors.signature_for_page(pk)
    runs = selectors.signature_runs(signature)
    context = {
        "signature": signature,
        "runs": runs[:50],
        "more_runs": len(runs) > 50,
        "samples": selectors.signature_samples(signature),
        "analyses": selectors.signature_analyses(signature),
        "details_limit": selectors.DETAILS_PREVIEW_CHARS,
    }
    return render(request, "sessions/signature_detail.html", context)


@require_GET
def test_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = selectors.test_case_for_page(pk)
    history = selectors.test_case_history(case)
    context = {"case": case, "history": history, "history_limit": 50}
    return render(request, "sessions/test_detail.html", context)


@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_for_page(pk)
    context = {
        "deployment": deployment,
        "runs": selectors.deployment_runs(deployment),
        "fixes": selectors.deployment_fixes(deployment),
    }
    return render(request, "sessions/deployment_detail.html", context)
