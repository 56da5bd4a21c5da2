"""Pages: one view, one template; HTMX requests get a named partial of the same template.

LoginRequiredMiddleware guards every view here. Views stay thin: selectors read, services write,
``charts`` builds figures, templates render. Every page costs a fixed number of queries whatever the
size of the run or session (see the tests' query bounds).

Writes (POST only) are for engineers, operators and admins (``roles.can_annotate``); anyone else gets
403. An HTMX post answers with the partial it changed; a plain form post is redirected (303) back to
the page. A stale edit answers 409 with the partial showing the newer text and the refused edit; a
request that makes no sense answers 422 with the form and its error (htmx is configured in base.html
to swap both).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from . import cache as page_cache
from . import roles, selectors
from .charts import duration_figure, metric_figure, occurrences_figure, trend_figure
from .models import Analysis, FailureSignature, LoopSession, Outcome, SuccessCriterion, TestRun
from .services import criteria as criteria_service
from .services import export, triage
from .services.triage import Conflict, Invalid


def _wants_partial(request: HttpRequest) -> bool:
    """An HTMX swap, not a history restore: htmx re-fetches a whole page when its history cache misses."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    # The same URL answers a page or a partial: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


def annotator_required(view: Callable) -> Callable:
    """Engineers, operators and admins annotate; viewers (and anyone else) get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:  # noqa: ANN002, ANN003
        if not roles.can_annotate(request.user):
            return HttpResponseForbidden("Only engineers, operators and admins may change triage data.")
        return view(request, *args, **kwargs)

    return wrapper


# -- sessions ------------------------------------------------------------------------------------------------


@require_GET
def sessions_list(request: HttpRequest) -> HttpResponse:
    sessions = list(selectors.sessions_for_list()[:200])
    return render(request, "sessions/sessions_list.html", {"sessions": sessions})


SESSION_PARTIALS = {"criteria", "board", "flaky"}


SESSION_CYCLE_ROWS = 30  # cycles in the "Cycles and runs" table; older ones one link away
CYCLE_TABLE_COLUMNS = 12  # cycles in the "Key metrics per cycle" table


def _session_overview(session: LoopSession, cycles: list[selectors.CycleRow]) -> dict:
    """What the session page builds from all of its cycles (the charts, cycles to green, counts).

    Cached by ``sessions.cache.session_trend`` until the session's runs change: with 500 cycles it
    reads every run and builds 500-point figures (about 50 ms at 1,000,000 results).
    """
    priority = selectors.chart_priority(session, cycles)
    targets = session.environment.metric_targets or {}
    latest = next((row.representative for row in reversed(cycles) if row.representative is not None), None)
    return {
        "figure": trend_figure(
            selectors.trend_points(cycles, priority), priority=priority, goal_pass_rate=session.goal_pass_rate
        ),
        "has_chart": bool(cycles),
        "chart_priority": priority,
        "metric_charts": [
            {"id": f"metric-{i}", "name": name, "figure": metric_figure(name, points, target=target, lower_is_better=lower)}
            for i, (name, points, target, lower) in enumerate(selectors.metric_series(cycles, targets))
        ],
        "green": selectors.cycles_to_green(session, cycles),
        "run_count": sum(len(row.runs) for row in cycles),
        "latest_id": latest.pk if latest is not None else None,
    }


def _session_context(request: HttpRequest, session: LoopSession) -> dict:
    targets = session.environment.metric_targets or {}
    every: list[selectors.CycleRow] = []

    def build() -> dict:
        every.extend(selectors.session_cycles(session))
        return _session_overview(session, every)

    overview = page_cache.session_trend(session, build, json.dumps(targets, sort_keys=True, default=str))
    before = _int(request.GET.get("cycles_before"))
    if every and before is None:  # built in this request: the latest cycles are at hand
        cycles, older = every[-SESSION_CYCLE_ROWS:], len(every) > SESSION_CYCLE_ROWS
    else:
        cycles, older = selectors.recent_cycles(session, last=SESSION_CYCLE_ROWS, before=before)
    reps = {row.representative.pk: row.representative for row in cycles if row.representative is not None}
    latest = reps.get(overview["latest_id"])
    if latest is None and overview["latest_id"] is not None:
        latest = TestRun.objects.filter(pk=overview["latest_id"]).only("id", "metrics").first()
    board, board_total = selectors.signature_board(session)
    flaky, flaky_count = selectors.flaky_tests(session)
    return {
        "session": session,
        **{key: value for key, value in overview.items() if key != "latest_id"},
        "cycles": list(reversed(cycles)),  # newest cycle first in the table
        "older_cycles": cycles[0].cycle.number if older and cycles else None,
        "cycles_before": before,
        "criteria": selectors.session_criteria(session),
        "criterion_kinds": SuccessCriterion.Kind.choices,
        "cycle_table": selectors.cycle_table(cycles[-CYCLE_TABLE_COLUMNS:], overview["chart_priority"]),
        "board": board,
        "board_total": board_total,
        "flaky": flaky,
        "flaky_count": flaky_count,
        "metrics": selectors.metric_rows(latest, targets),
        "metrics_run": latest,
        "can_annotate": roles.can_annotate(request.user),
        "editing_criterion": _int(request.GET.get("edit")),
    }


@require_GET
def session_detail(request: HttpRequest, slug: str) -> HttpResponse:
    session = selectors.session_for_page(slug)
    partial = request.GET.get("partial", "")
    if _wants_partial(request) and partial == "criteria":
        context = _criteria_context(request, session)
        return _vary_on_htmx(render(request, "sessions/session_detail.html#criteria", context))
    context = _session_context(request, session)
    if _wants_partial(request) and partial in SESSION_PARTIALS:
        return _vary_on_htmx(render(request, f"sessions/session_detail.html#{partial}", context))
    return _vary_on_htmx(render(request, "sessions/session_detail.html", context))


@require_GET
def session_export(request: HttpRequest, slug: str) -> HttpResponse:
    """The session as a Markdown report, downloaded as a file and never rendered as HTML."""
    session = selectors.session_for_page(slug)
    text = export.session_report(session)
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{session.slug}-report.md"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


# -- success criteria ----------------------------------------------------------------------------------------


def _criteria_context(request: HttpRequest, session: LoopSession, **extra: object) -> dict:
    return {
        "session": session,
        "criteria": selectors.session_criteria(session),
        "criterion_kinds": SuccessCriterion.Kind.choices,
        "can_annotate": roles.can_annotate(request.user),
        "editing_criterion": extra.pop("editing_criterion", _int(request.GET.get("edit"))),
        **extra,
    }


def _criteria_response(request: HttpRequest, session: LoopSession, *, status: int = 200, **extra: object) -> HttpResponse:
    if _wants_partial(request):
        context = _criteria_context(request, session, **extra)
        return render(request, "sessions/session_detail.html#criteria", context, status=status)
    if status >= 400:
        context = _session_context(request, session)
        context.update(extra)
        return render(request, "sessions/session_detail.html", context, status=status)
    return redirect(session.get_absolute_url() + "#criteria", permanent=False)


def _criterion(pk: int) -> SuccessCriterion:
    return get_object_or_404(SuccessCriterion.objects.select_related("session__environment"), pk=pk)


@require_POST
@annotator_required
def criterion_add(request: HttpRequest, slug: str) -> HttpResponse:
    session = selectors.session_for_page(slug)
    try:
        criteria_service.add_criterion(session, request.POST.dict() | {"tests": request.POST.get("tests", "")}, request.user)
    except Invalid as exc:
        return _criteria_response(request, session, status=422, criterion_error=str(exc), criterion_form=request.POST)
    return _criteria_response(request, session)


@require_POST
@annotator_required
def criterion_edit(request: HttpRequest, pk: int) -> HttpResponse:
    criterion = _criterion(pk)
    try:
        criteria_service.update_criterion(criterion, request.POST.dict(), request.user)
    except Invalid as exc:
        return _criteria_response(
            request, criterion.session, status=422, criterion_error=str(exc), editing_criterion=criterion.pk
        )
    return _criteria_response(request, criterion.session, editing_criterion=None)


@require_POST
@annotator_required
def criterion_tick(request: HttpRequest, pk: int) -> HttpResponse:
    criterion = _criterion(pk)
    try:
        criteria_service.tick(criterion, request.POST.get("done") in ("1", "on", "true"), request.user)
    except Invalid as exc:
        return _criteria_response(request, criterion.session, status=422, criterion_error=str(exc))
    return _criteria_response(request, criterion.session)


@require_POST
@annotator_required
def criterion_delete(request: HttpRequest, pk: int) -> HttpResponse:
    criterion = _criterion(pk)
    session = criterion.session
    criteria_service.delete_criterion(criterion)
    return _criteria_response(request, session, editing_criterion=None)


# -- runs ----------------------------------------------------------------------------------------------------


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
            "metrics": selectors.metric_rows(run, run.environment.metric_targets or {}),
        }
    )
    return _vary_on_htmx(render(request, "sessions/run_detail.html", context))


@require_GET
def run_compare(request: HttpRequest, pk: int, other: int | None = None) -> HttpResponse:
    """Compare a run with another (``/runs/<a>/compare/<b>/`` or ``?with=<b>``); by default with the
    previous complete full run of its session. Each list is one page plus its count."""
    run = selectors.run_for_page(pk)
    other = other if other is not None else _int(request.GET.get("with"))
    if other is not None:
        base = get_object_or_404(TestRun.objects.select_related("session", "cycle"), pk=other)
    else:
        base = selectors.previous_full_run(run)
    context: dict = {"run": run, "base": base, "lists": []}
    if base is not None and base.environment_id != run.environment_id:
        context["mismatch"] = True
        base = None
        context["base"] = None
    if base is None:
        return render(request, "sessions/compare.html", context)
    wanted = request.GET.get("list", "")
    counts = selectors.compare_counts(run, base)
    if _wants_partial(request) and wanted in selectors.COMPARE_LISTS:
        item = selectors.compare_list(wanted, run, base, counts=counts, after=request.GET.get("after"))
        return _vary_on_htmx(render(request, "sessions/compare.html#list", {"run": run, "base": base, "item": item}))
    after = request.GET.get("after")
    context["lists"] = [
        selectors.compare_list(name, run, base, counts=counts, after=after if name == wanted else None)
        for name in selectors.COMPARE_LISTS
    ]
    return _vary_on_htmx(render(request, "sessions/compare.html", context))


# -- signatures ----------------------------------------------------------------------------------------------


def _signature(pk: int) -> FailureSignature:
    return selectors.signature_for_page(pk)


def _signature_context(request: HttpRequest, signature: FailureSignature, **extra: object) -> dict:
    runs = selectors.signature_runs(signature)
    merged = selectors.merged_into_signature(signature)
    analyses = selectors.signature_analyses(signature, [m.pk for m in merged])
    samples = selectors.signature_samples(signature)
    tests, modules = selectors.signature_tests(signature)
    occurrences = selectors.signature_occurrences(signature)
    can_annotate = roles.can_annotate(request.user)
    context = {
        "signature": signature,
        "runs": runs[:50],
        "more_runs": len(runs) > 50,
        "samples": samples,
        "messages": selectors.distinct_messages(samples),
        "traceback": selectors.signature_traceback(signature),
        "tests": tests,
        "modules": modules,
        "occurrences": occurrences,
        "occurrence_figure": occurrences_figure(occurrences) if occurrences else None,
        "analyses": analyses,
        "history": selectors.analysis_history(analyses),
        "events": selectors.signature_events(signature),
        "merged": merged,
        "candidates": selectors.merge_candidates(signature) if can_annotate and not signature.merged_into_id else [],
        "statuses": FailureSignature.Status.choices,
        "analysis_statuses": Analysis.Status.choices,
        "can_annotate": can_annotate,
        "details_limit": selectors.DETAILS_PREVIEW_CHARS,
        "editing": _editing(request),
    }
    context.update(extra)
    return context


def _editing(request: HttpRequest) -> dict:
    """What the page opens in edit mode: ``?edit=title``, ``?edit=<analysis>`` or ``?edit=<analysis>-<step>``."""
    value = request.GET.get("edit", "")
    if value == "title":
        return {"title": True}
    analysis, _, step = value.partition("-")
    return {"analysis": _int(analysis), "step": _int(step)}


@require_GET
def signature_detail(request: HttpRequest, pk: int) -> HttpResponse:
    signature = _signature(pk)
    partial = request.GET.get("partial", "")
    if _wants_partial(request) and partial == "header":
        context = _header_context(request, signature)
        return _vary_on_htmx(render(request, "sessions/signature_detail.html#header", context))
    if _wants_partial(request) and partial == "analysis":
        analysis = get_object_or_404(Analysis, pk=_int(request.GET.get("analysis")) or 0)
        return _vary_on_htmx(_analysis_response(request, analysis))
    return _vary_on_htmx(render(request, "sessions/signature_detail.html", _signature_context(request, signature)))


def _header_context(request: HttpRequest, signature: FailureSignature, **extra: object) -> dict:
    return {
        "signature": signature,
        "statuses": FailureSignature.Status.choices,
        "can_annotate": roles.can_annotate(request.user),
        "editing": _editing(request),
        **extra,
    }


def _header_response(request: HttpRequest, signature: FailureSignature, *, status: int = 200, **extra: object) -> HttpResponse:
    if _wants_partial(request):
        return render(request, "sessions/signature_detail.html#header", _header_context(request, signature, **extra), status=status)
    if status >= 400:
        return render(request, "sessions/signature_detail.html", _signature_context(request, signature, **extra), status=status)
    return redirect(signature.get_absolute_url(), permanent=False)


@require_POST
@annotator_required
def signature_title(request: HttpRequest, pk: int) -> HttpResponse:
    signature = _signature(pk)
    try:
        triage.set_title(signature, request.POST.get("title"), request.POST.get("version"), request.user)
    except Conflict as exc:
        signature = _signature(pk)
        return _header_response(request, signature, status=409, conflict=exc.attempted)
    except Invalid as exc:
        return _header_response(request, signature, status=422, error=str(exc), editing={"title": True})
    return _header_response(request, _signature(pk))


@require_POST
@annotator_required
def signature_status(request: HttpRequest, pk: int) -> HttpResponse:
    signature = _signature(pk)
    try:
        triage.set_status(signature, request.POST.get("status"), request.POST.get("version"), request.user)
    except Conflict as exc:
        return _header_response(request, _signature(pk), status=409, conflict=exc.attempted)
    except Invalid as exc:
        return _header_response(request, signature, status=422, error=str(exc))
    return _header_response(request, _signature(pk))


@require_POST
@annotator_required
def signature_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge this signature into another; the response sends the browser to the target."""
    source = _signature(pk)
    target_id = _int(request.POST.get("target_id")) or _int(request.POST.get("target"))
    target = FailureSignature.objects.filter(pk=target_id).first() if target_id else None
    try:
        if target is None:
            raise Invalid("choose the signature to merge into")
        target = triage.merge(source, target, request.user)
    except Invalid as exc:
        context = _signature_context(request, source, merge_error=str(exc))
        if _wants_partial(request):
            return render(request, "sessions/signature_detail.html#merge", context, status=422)
        return render(request, "sessions/signature_detail.html", context, status=422)
    if _wants_partial(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target.get_absolute_url()
        return response
    return redirect(target.get_absolute_url(), permanent=False)


# -- five whys -----------------------------------------------------------------------------------------------


def _analysis(pk: int) -> Analysis:
    return get_object_or_404(Analysis.objects.select_related("signature"), pk=pk)


def _analysis_context(request: HttpRequest, analysis: Analysis, **extra: object) -> dict:
    current = selectors.analysis_for_partial(analysis.pk)
    return {
        "a": current,
        "signature": current.signature,
        "history": selectors.analysis_history([current]),
        "analysis_statuses": Analysis.Status.choices,
        "can_annotate": roles.can_annotate(request.user),
        "editing": extra.pop("editing", _editing(request)),
        **extra,
    }


def _analysis_response(request: HttpRequest, analysis: Analysis, *, status: int = 200, **extra: object) -> HttpResponse:
    if _wants_partial(request):
        context = _analysis_context(request, analysis, **extra)
        return render(request, "sessions/signature_detail.html#analysis", context, status=status)
    if status >= 400:
        context = _signature_context(request, _signature(analysis.signature_id), **extra)
        context["conflict_analysis"] = analysis.pk
        return render(request, "sessions/signature_detail.html", context, status=status)
    return redirect(f"{analysis.signature.get_absolute_url()}#analysis-{analysis.pk}", permanent=False)


def _analysis_write(request: HttpRequest, analysis: Analysis, write: Callable[[], object], *, editing: dict | None = None) -> HttpResponse:
    """Run a write; answer the fresh analysis, or 409 with the newer text, or 422 with the error."""
    try:
        write()
    except Conflict as exc:
        return _analysis_response(request, exc.current, status=409, conflict=exc.attempted, editing={})
    except Invalid as exc:
        return _analysis_response(request, analysis, status=422, error=str(exc), editing=editing or {})
    return _analysis_response(request, analysis, editing={})


@require_POST
@annotator_required
def analysis_create(request: HttpRequest, pk: int) -> HttpResponse:
    signature = _signature(pk)
    try:
        analysis = triage.create_analysis(signature, request.user, request.POST.get("problem"))
    except Invalid as exc:
        context = _signature_context(request, signature, new_analysis_error=str(exc))
        return render(request, "sessions/signature_detail.html", context, status=422)
    if _wants_partial(request):
        context = _signature_context(request, _signature(pk), editing={"analysis": analysis.pk})
        return render(request, "sessions/signature_detail.html#analyses", context)
    return redirect(f"{signature.get_absolute_url()}#analysis-{analysis.pk}", permanent=False)


@require_POST
@annotator_required
def analysis_edit(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = _analysis(pk)
    data = request.POST.dict()
    return _analysis_write(
        request, analysis, lambda: triage.update_analysis(analysis, data, request.user), editing={"analysis": pk}
    )


@require_POST
@annotator_required
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = _analysis(pk)
    data = request.POST.dict()
    return _analysis_write(request, analysis, lambda: triage.add_step(analysis, data, request.user))


@require_POST
@annotator_required
def step_edit(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    analysis = _analysis(pk)
    data = request.POST.dict()
    return _analysis_write(
        request,
        analysis,
        lambda: triage.update_step(analysis, step, data, request.user),
        editing={"analysis": None, "step": step},
    )


@require_POST
@annotator_required
def step_move(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    analysis = _analysis(pk)
    data = request.POST.dict()
    direction = data.get("direction", "")
    response = _analysis_write(request, analysis, lambda: triage.move_step(analysis, step, direction, data, request.user))
    if response.status_code == 200 and _wants_partial(request):
        # Keep the keyboard where it was: the moved step's same button gets the focus after the swap.
        context = _analysis_context(request, analysis, editing={}, moved=(step, direction))
        response = render(request, "sessions/signature_detail.html#analysis", context)
    return response


@require_POST
@annotator_required
def step_delete(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    analysis = _analysis(pk)
    data = request.POST.dict()
    return _analysis_write(request, analysis, lambda: triage.delete_step(analysis, step, data, request.user))


@require_POST
@annotator_required
def fix_add(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = _analysis(pk)
    data = request.POST.dict()
    return _analysis_write(request, analysis, lambda: triage.add_fix(analysis, data, request.user), editing={"fix": True})


# -- tests and deployments -----------------------------------------------------------------------------------


@require_GET
def test_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = selectors.test_case_for_page(pk)
    history = selectors.test_case_history(case)
    facts = selectors.test_facts(history)
    suspect_limit = 0.01 if case.environment.end_to_end else None
    context = {
        "case": case,
        "history": history,
        "history_limit": 50,
        "facts": facts,
        "duration_figure": duration_figure(facts.durations, suspect_limit=suspect_limit) if history else None,
    }
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
