"""Pages: one view, one template; HTMX requests get a named partial of the same template.

LoginRequiredMiddleware guards every view here. Views stay thin: ``forms`` parses the request,
``selectors`` build each page's context (one module per page), services write, templates render.
Every page costs a fixed number of queries whatever the size of the run or session (see the tests'
query bounds).

Writes (POST only) are for engineers, operators and admins (``roles.annotator_required``); anyone
else gets 403. An HTMX post answers with the partial it changed; a plain form post is redirected (303)
back to the page. A stale edit answers 409 with the partial showing the newer text and the refused
edit; a request that makes no sense answers 422 with the form and its error (htmx is configured in
base.html to swap both).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from . import forms, roles
from .models import Analysis, FailureSignature, LoopSession, TestRun
from .roles import annotator_required
from .selectors.analyses import analysis_or_404, analysis_section
from .selectors.cases import case_for_page, case_page
from .selectors.compare import COMPARE_LISTS, compare_base, compare_list_section, compare_page
from .selectors.deployments import deployment_for_page, deployment_page
from .selectors.runs import results_section, run_for_page, run_page
from .selectors.sessions import (
    criteria_section,
    criterion_for_edit,
    session_for_page,
    session_page,
    sessions_list_page,
)
from .selectors.signatures import header_section, merge_target, signature_for_page, signature_page
from .services import criteria as criteria_service
from .services import export, triage
from .services.triage import Conflict, Invalid
from .work import reaper


def _wants_partial(request: HttpRequest) -> bool:
    """An HTMX swap, not a history restore: htmx re-fetches a whole page when its history cache misses."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    # The same URL answers a page or a partial: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


# -- sessions ------------------------------------------------------------------------------------------------


@require_GET
def sessions_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sessions/sessions_list.html", sessions_list_page())


SESSION_PARTIALS = {"criteria", "board", "flaky"}


def _session_context(request: HttpRequest, session: LoopSession) -> dict:
    query = forms.SessionQuery.from_query(request.GET)
    return session_page(
        session,
        cycles_before=query.cycles_before,
        editing_criterion=query.edit,
        can_annotate=roles.can_annotate(request.user),
    )


@require_GET
def session_detail(request: HttpRequest, slug: str) -> HttpResponse:
    session = session_for_page(slug)
    partial = forms.SessionQuery.from_query(request.GET).partial
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
    session = session_for_page(slug)
    text = export.session_report(session)
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{session.slug}-report.md"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# -- success criteria ----------------------------------------------------------------------------------------


def _criteria_context(request: HttpRequest, session: LoopSession, **extra: object) -> dict:
    editing = extra.pop("editing_criterion", forms.SessionQuery.from_query(request.GET).edit)
    context = criteria_section(session, can_annotate=roles.can_annotate(request.user), editing_criterion=editing)
    return context | extra


def _criteria_response(
    request: HttpRequest, session: LoopSession, *, status: int = 200, **extra: object
) -> HttpResponse:
    if _wants_partial(request):
        context = _criteria_context(request, session, **extra)
        return render(request, "sessions/session_detail.html#criteria", context, status=status)
    if status >= 400:
        context = _session_context(request, session)
        context.update(extra)
        return render(request, "sessions/session_detail.html", context, status=status)
    return redirect(session.get_absolute_url() + "#criteria", permanent=False)


@require_POST
@annotator_required
def criterion_add(request: HttpRequest, slug: str) -> HttpResponse:
    session = session_for_page(slug)
    try:
        criteria_service.add_criterion(session, forms.criterion_data(request.POST), request.user)
    except Invalid as exc:
        return _criteria_response(request, session, status=422, criterion_error=str(exc), criterion_form=request.POST)
    return _criteria_response(request, session)


@require_POST
@annotator_required
def criterion_edit(request: HttpRequest, pk: int) -> HttpResponse:
    criterion = criterion_for_edit(pk)
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
    criterion = criterion_for_edit(pk)
    try:
        criteria_service.tick(criterion, forms.checked(request.POST.get("done")), request.user)
    except Invalid as exc:
        return _criteria_response(request, criterion.session, status=422, criterion_error=str(exc))
    return _criteria_response(request, criterion.session)


@require_POST
@annotator_required
def criterion_delete(request: HttpRequest, pk: int) -> HttpResponse:
    criterion = criterion_for_edit(pk)
    session = criterion.session
    criteria_service.delete_criterion(criterion)
    return _criteria_response(request, session, editing_criterion=None)


# -- runs ----------------------------------------------------------------------------------------------------


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = run_for_page(pk)
    if run.source != TestRun.Source.UPLOAD and reaper.notice_stale(run):
        run = run_for_page(pk)  # its worker was gone: the page shows it lost, with its summary
    query = forms.RunQuery.from_query(request.GET)
    if _wants_partial(request):
        context = results_section(run, query.filters, after=query.after, before=query.before)
        return _vary_on_htmx(render(request, "sessions/run_detail.html#results", context))
    context = run_page(run, query.filters, after=query.after, before=query.before)
    return _vary_on_htmx(render(request, "sessions/run_detail.html", context))


@require_GET
def run_compare(request: HttpRequest, pk: int, other: int | None = None) -> HttpResponse:
    """Compare a run with another (``/runs/<a>/compare/<b>/`` or ``?with=<b>``); by default with the
    previous complete full run of its session. Each list is one page plus its count."""
    run = run_for_page(pk)
    query = forms.CompareQuery.from_query(request.GET, other=other)
    base, mismatch = compare_base(run, query.other)
    if base is None:
        context = compare_page(run, None, mismatch=mismatch, wanted=query.list, after=query.after)
        return render(request, "sessions/compare.html", context)
    if _wants_partial(request) and query.list in COMPARE_LISTS:
        context = compare_list_section(run, base, query.list, after=query.after)
        return _vary_on_htmx(render(request, "sessions/compare.html#list", context))
    context = compare_page(run, base, mismatch=False, wanted=query.list, after=query.after)
    return _vary_on_htmx(render(request, "sessions/compare.html", context))


# -- signatures ----------------------------------------------------------------------------------------------


def _editing(request: HttpRequest) -> dict:
    return forms.edit_target(request.GET.get("edit", ""))


def _signature_context(request: HttpRequest, signature: FailureSignature, **extra: object) -> dict:
    context = signature_page(signature, can_annotate=roles.can_annotate(request.user), editing=_editing(request))
    context.update(extra)
    return context


@require_GET
def signature_detail(request: HttpRequest, pk: int) -> HttpResponse:
    signature = signature_for_page(pk)
    query = forms.SignatureQuery.from_query(request.GET)
    if _wants_partial(request) and query.partial == "header":
        context = _header_context(request, signature)
        return _vary_on_htmx(render(request, "sessions/signature_detail.html#header", context))
    if _wants_partial(request) and query.partial == "analysis":
        analysis = analysis_or_404(query.analysis or 0)
        return _vary_on_htmx(_analysis_response(request, analysis))
    return _vary_on_htmx(render(request, "sessions/signature_detail.html", _signature_context(request, signature)))


def _header_context(request: HttpRequest, signature: FailureSignature, **extra: object) -> dict:
    context = header_section(signature, can_annotate=roles.can_annotate(request.user), editing=_editing(request))
    return context | extra


def _header_response(
    request: HttpRequest, signature: FailureSignature, *, status: int = 200, **extra: object
) -> HttpResponse:
    if _wants_partial(request):
        return render(
            request,
            "sessions/signature_detail.html#header",
            _header_context(request, signature, **extra),
            status=status,
        )
    if status >= 400:
        return render(
            request, "sessions/signature_detail.html", _signature_context(request, signature, **extra), status=status
        )
    return redirect(signature.get_absolute_url(), permanent=False)


@require_POST
@annotator_required
def signature_title(request: HttpRequest, pk: int) -> HttpResponse:
    signature = signature_for_page(pk)
    try:
        triage.set_title(signature, request.POST.get("title"), request.POST.get("version"), request.user)
    except Conflict as exc:
        signature = signature_for_page(pk)
        return _header_response(request, signature, status=409, conflict=exc.attempted)
    except Invalid as exc:
        return _header_response(request, signature, status=422, error=str(exc), editing={"title": True})
    return _header_response(request, signature_for_page(pk))


@require_POST
@annotator_required
def signature_status(request: HttpRequest, pk: int) -> HttpResponse:
    signature = signature_for_page(pk)
    try:
        triage.set_status(signature, request.POST.get("status"), request.POST.get("version"), request.user)
    except Conflict as exc:
        return _header_response(request, signature_for_page(pk), status=409, conflict=exc.attempted)
    except Invalid as exc:
        return _header_response(request, signature, status=422, error=str(exc))
    return _header_response(request, signature_for_page(pk))


@require_POST
@annotator_required
def signature_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge this signature into another; the response sends the browser to the target."""
    source = signature_for_page(pk)
    target = merge_target(forms.merge_target_id(request.POST))
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


def _analysis_context(request: HttpRequest, analysis: Analysis, **extra: object) -> dict:
    editing = extra.pop("editing", _editing(request))
    return analysis_section(analysis.pk, can_annotate=roles.can_annotate(request.user), editing=editing) | extra


def _analysis_response(request: HttpRequest, analysis: Analysis, *, status: int = 200, **extra: object) -> HttpResponse:
    if _wants_partial(request):
        context = _analysis_context(request, analysis, **extra)
        return render(request, "sessions/signature_detail.html#analysis", context, status=status)
    if status >= 400:
        context = _signature_context(request, signature_for_page(analysis.signature_id), **extra)
        context["conflict_analysis"] = analysis.pk
        return render(request, "sessions/signature_detail.html", context, status=status)
    return redirect(f"{analysis.signature.get_absolute_url()}#analysis-{analysis.pk}", permanent=False)


def _analysis_write(
    request: HttpRequest, analysis: Analysis, write: Callable[[], object], *, editing: dict | None = None
) -> HttpResponse:
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
    signature = signature_for_page(pk)
    try:
        analysis = triage.create_analysis(signature, request.user, request.POST.get("problem"))
    except Invalid as exc:
        context = _signature_context(request, signature, new_analysis_error=str(exc))
        return render(request, "sessions/signature_detail.html", context, status=422)
    if _wants_partial(request):
        context = _signature_context(request, signature_for_page(pk), editing={"analysis": analysis.pk})
        return render(request, "sessions/signature_detail.html#analyses", context)
    return redirect(f"{signature.get_absolute_url()}#analysis-{analysis.pk}", permanent=False)


@require_POST
@annotator_required
def analysis_edit(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    return _analysis_write(
        request, analysis, lambda: triage.update_analysis(analysis, data, request.user), editing={"analysis": pk}
    )


@require_POST
@annotator_required
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    return _analysis_write(request, analysis, lambda: triage.add_step(analysis, data, request.user))


@require_POST
@annotator_required
def step_edit(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
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
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    direction = data.get("direction", "")
    response = _analysis_write(
        request, analysis, lambda: triage.move_step(analysis, step, direction, data, request.user)
    )
    if response.status_code == 200 and _wants_partial(request):
        # Keep the keyboard where it was: the moved step's same button gets the focus after the swap.
        context = _analysis_context(request, analysis, editing={}, moved=(step, direction))
        response = render(request, "sessions/signature_detail.html#analysis", context)
    return response


@require_POST
@annotator_required
def step_delete(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    return _analysis_write(request, analysis, lambda: triage.delete_step(analysis, step, data, request.user))


@require_POST
@annotator_required
def fix_add(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    return _analysis_write(
        request, analysis, lambda: triage.add_fix(analysis, data, request.user), editing={"fix": True}
    )


# -- tests and deployments -----------------------------------------------------------------------------------


@require_GET
def test_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "sessions/test_detail.html", case_page(case_for_page(pk)))


@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_for_page(pk)
    if reaper.notice_stale(deployment):
        deployment = deployment_for_page(pk)
    return render(request, "sessions/deployment_detail.html", deployment_page(deployment))
