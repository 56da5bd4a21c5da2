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

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from . import forms, roles
from .models import Analysis, FailureSignature, LoopSession, TestRun
from .roles import annotator_required
from .selectors.analyses import analysis_or_404, analysis_section, page_signature_id
from .selectors.cases import case_for_page, case_page
from .selectors.compare import COMPARE_LISTS, compare_base, compare_list_section, compare_page
from .selectors.deployments import deployment_for_page, deployment_page
from .selectors.discussion import discussion_section, my_signatures
from .selectors.runs import results_section, run_for_page, run_page
from .selectors.sessions import (
    criteria_section,
    criterion_for_edit,
    session_for_page,
    session_page,
    sessions_list_page,
)
from .selectors.signatures import (
    header_section,
    merge_target,
    signature_for_page,
    signature_fragments,
    signature_page,
)
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
    context = sessions_list_page() | {"my_signatures": my_signatures(request.user)}
    return render(request, "sessions/sessions_list.html", context)


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
    can_annotate = roles.can_annotate(request.user)
    context = signature_page(signature, can_annotate=can_annotate, editing=_editing(request))
    context |= discussion_section(signature, can_annotate=can_annotate, user=request.user)
    context.update(extra)
    return context


@require_GET
def signature_detail(request: HttpRequest, pk: int) -> HttpResponse:
    signature = signature_for_page(pk)
    query = forms.SignatureQuery.from_query(request.GET)
    if _wants_partial(request) and query.partial == "header":
        context = _header_context(request, signature)
        return _vary_on_htmx(render(request, "sessions/signature_detail.html#header", context))
    if _wants_partial(request) and query.partial in ANALYSIS_PARTS:
        analysis = analysis_or_404(query.analysis or 0)
        context = analysis_section(analysis.pk, can_annotate=roles.can_annotate(request.user), editing=query.editing)
        context |= {"signature": signature, "focus": query.focus}  # nothing changed: no out-of-band fragments
        part = ANALYSIS_PARTS[query.partial]
        return _vary_on_htmx(render(request, f"sessions/signature_detail.html#{part}", context))
    return _vary_on_htmx(render(request, "sessions/signature_detail.html", _signature_context(request, signature)))


def _header_context(request: HttpRequest, signature: FailureSignature, **extra: object) -> dict:
    context = header_section(signature, can_annotate=roles.can_annotate(request.user), editing=_editing(request))
    return context | extra


def _signature_saved(response: HttpResponse, signature_id: int, before: object) -> HttpResponse:
    """Tell static/js/triage.js the signature moved from the posted version to the next: the title form
    still at the posted version saw everything there was, so it may follow (a compare-and-set wrote it)."""
    start = forms.optional_int(before)
    if start is not None:
        event = {"signature": signature_id, "from": start, "to": start + 1}
        response["HX-Trigger"] = json.dumps({"loopdash:signature-saved": event})
    return response


def _header_response(
    request: HttpRequest, signature: FailureSignature, *, status: int = 200, **extra: object
) -> HttpResponse:
    if _wants_partial(request):
        context = _header_context(request, signature, **extra)
        body = render_to_string("sessions/signature_detail.html#header", context, request)
        body += render_to_string("sessions/signature_detail.html#activity", context | {"oob": True}, request)
        return HttpResponse(body, status=status)
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


def _status_response(request: HttpRequest, pk: int, *, status: int = 200, **extra: object) -> HttpResponse:
    """The status menu (the target) with the badge and the activity out of band; the title stays as typed."""
    if not _wants_partial(request):
        return _header_response(request, signature_for_page(pk), status=status, **extra)
    context = signature_fragments(pk, can_annotate=roles.can_annotate(request.user)) | extra
    body = render_to_string("sessions/signature_detail.html#status_form", context, request)
    oob = context | {"status_form_is_main": True, "analysis_count": None}
    body += render_to_string("sessions/signature_detail.html#signature_oob", oob, request)
    return HttpResponse(body, status=status)


@require_POST
@annotator_required
def signature_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the status. The menu posts only when its Save button is pressed, never on an arrow key."""
    signature = signature_for_page(pk)
    version = request.POST.get("version")
    try:
        triage.set_status(signature, request.POST.get("status"), version, request.user)
    except Conflict as exc:
        return _status_response(
            request, pk, status=409, conflict=exc.attempted, status_conflict=exc.attempted["status"]
        )
    except Invalid as exc:
        return _status_response(request, pk, status=422, error=str(exc), status_error=str(exc))
    return _signature_saved(_status_response(request, pk, focus="status"), pk, version)


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
#
# An analysis is five parts on the page (head, fields, whys, fixes, history), each its own htmx target: an
# edit answers with the part it changed, plus the head, the history and the signature's badge, status menu
# and activity out of band. Nothing else of the page is replaced, so text typed elsewhere stays; the
# HX-Trigger "loopdash:analysis-saved" lets static/js/triage.js move the other forms to the new version.

# ?partial= → the template's partial: an Edit or a Cancel asks for one part only.
ANALYSIS_PARTS = {"analysis": "analysis", "fields": "analysis_fields", "whys": "whys"}


def _analysis_context(request: HttpRequest, analysis: Analysis, **extra: object) -> dict:
    editing = extra.pop("editing", _editing(request))
    context = analysis_section(analysis.pk, can_annotate=roles.can_annotate(request.user), editing=editing)
    fragments = signature_fragments(page_signature_id(context["a"]), can_annotate=context["can_annotate"])
    return context | fragments | extra


def _analysis_response(
    request: HttpRequest,
    analysis: Analysis,
    part: str,
    *,
    status: int = 200,
    started_at: object = None,
    **extra: object,
) -> HttpResponse:
    """Answer an edit of one analysis: ``part`` and the out-of-band fragments (an HTMX request), the page
    again (a plain form post: 303-style redirect, or the page with the notice for a 4xx)."""
    if not _wants_partial(request):
        if status >= 400:
            context = _signature_context(request, signature_for_page(page_signature_id(analysis)), **extra)
            return render(request, "sessions/signature_detail.html", context, status=status)
        return redirect(f"{analysis.signature.get_absolute_url()}#analysis-{analysis.pk}", permanent=False)
    context = _analysis_context(request, analysis, **extra)
    if isinstance(context.get("focus"), tuple):  # ("deleted", index): the why that took its place
        steps = list(context["a"].steps.all())
        index = context["focus"][1]
        context["focus"] = steps[index].pk if isinstance(index, int) and index < len(steps) else "add"
    body = render_to_string(f"sessions/signature_detail.html#{part}", context, request)
    oob = context | {"oob": True, "part": part}  # the part itself is not sent twice
    body += render_to_string("sessions/signature_detail.html#analysis_oob", oob, request)
    response = HttpResponse(body, status=status)
    start = forms.optional_int(started_at)
    if status == 200 and start is not None:
        event = {"analysis": analysis.pk, "from": start, "to": start + 1, "status": context["a"].status}
        response["HX-Trigger"] = json.dumps({"loopdash:analysis-saved": event})
    return response


def _analysis_write(
    request: HttpRequest,
    analysis: Analysis,
    part: str,
    write: Callable[[], object],
    *,
    draft: dict | None = None,
    **success: object,
) -> HttpResponse:
    """Run a write; answer ``part`` fresh, or 409 with the newer text and the refused edit, or 422 with the
    error and what was typed (``draft``: the context name and values that refill the form)."""
    draft = draft or {}
    try:
        result = write()
    except Conflict as exc:
        notice = {"analysis": analysis.pk, "region": part.removeprefix("analysis_"), "conflict": exc.attempted}
        return _analysis_response(request, exc.current, part, status=409, notice=notice, editing={}, **draft)
    except Invalid as exc:
        notice = {"analysis": analysis.pk, "region": part.removeprefix("analysis_"), "error": str(exc)}
        editing = success.pop("editing_on_error", {})
        return _analysis_response(request, analysis, part, status=422, notice=notice, editing=editing, **draft)
    success.pop("editing_on_error", None)
    focus = success.pop("focus", None)
    if callable(focus):
        focus = focus(result)
    version = request.POST.get("version")
    return _analysis_response(request, analysis, part, started_at=version, editing={}, focus=focus, **success)


@require_POST
@annotator_required
def analysis_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Start an analysis: the new one is appended in edit mode, the others (and what is typed in them) stay."""
    signature = signature_for_page(pk)
    problem = request.POST.get("problem", "")
    try:
        analysis = triage.create_analysis(signature, request.user, problem)
    except Invalid as exc:
        if not _wants_partial(request):
            context = _signature_context(request, signature, new_analysis_error=str(exc))
            return render(request, "sessions/signature_detail.html", context, status=422)
        context = {"signature": signature, "new_analysis_error": str(exc), "new_problem_draft": problem}
        response = render(request, "sessions/signature_detail.html#new_analysis", context, status=422)
        response["HX-Retarget"], response["HX-Reswap"] = "#new-analysis", "outerHTML"
        return response
    if not _wants_partial(request):
        return redirect(f"{signature.get_absolute_url()}#analysis-{analysis.pk}", permanent=False)
    context = _analysis_context(request, analysis, editing={"analysis": analysis.pk})
    body = render_to_string("sessions/signature_detail.html#analysis", context, request)
    body += render_to_string("sessions/signature_detail.html#new_analysis", context | {"oob": True}, request)
    body += render_to_string("sessions/signature_detail.html#signature_oob", context, request)
    return HttpResponse(body)


@require_POST
@annotator_required
def analysis_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The fields form (problem, root cause, error behind the error) or the status menu of the head."""
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    if set(data) & {"problem", "root_cause", "error_behind_error"}:
        fields = {name: data.get(name, "") for name in ("problem", "root_cause", "error_behind_error")}
        return _analysis_write(
            request,
            analysis,
            "analysis_fields",
            lambda: triage.update_analysis(analysis, data, request.user),
            draft={"fields_draft": fields},
            editing_on_error={"analysis": pk},
            focus=pk,
        )
    return _analysis_write(
        request, analysis, "analysis_head", lambda: triage.update_analysis(analysis, data, request.user), focus="status"
    )


@require_POST
@annotator_required
def analysis_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete an analysis (engineers and up, after a confirmation); the signature's activity keeps its last
    version. Stale (409) or with fixes attached (422): the analysis stays, with the reason."""
    analysis = analysis_or_404(pk)
    page_signature = page_signature_id(analysis)
    try:
        triage.delete_analysis(analysis, request.POST.dict(), request.user)
    except Conflict as exc:
        notice = {"analysis": pk, "region": "head", "conflict": exc.attempted}
        response = _analysis_response(request, exc.current, "analysis_head", status=409, notice=notice)
        return _refused_in_head(request, response, pk)
    except Invalid as exc:
        notice = {"analysis": pk, "region": "head", "error": str(exc)}
        response = _analysis_response(request, analysis, "analysis_head", status=422, notice=notice)
        return _refused_in_head(request, response, pk)
    if not _wants_partial(request):
        return redirect(f"{analysis.signature.get_absolute_url()}#analyses", permanent=False)
    context = signature_fragments(page_signature, can_annotate=True) | {"deleted": pk}
    body = render_to_string("sessions/signature_detail.html#analysis_deleted", context, request)
    body += render_to_string("sessions/signature_detail.html#signature_oob", context, request)
    return HttpResponse(body)


def _refused_in_head(request: HttpRequest, response: HttpResponse, pk: int) -> HttpResponse:
    """The delete form targets the whole analysis; a refusal shows in its head instead, the rest stays."""
    if _wants_partial(request):
        response["HX-Retarget"], response["HX-Reswap"] = f"#analysis-head-{pk}", "outerHTML"
    return response


@require_POST
@annotator_required
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a why: the why list alone is swapped; the keyboard goes to the next new why's question."""
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    draft = {"question": data.get("question", ""), "answer": data.get("answer", "")}
    return _analysis_write(
        request,
        analysis,
        "whys",
        lambda: triage.add_step(analysis, data, request.user),
        draft={"add_draft": draft},
        focus="add",
    )


@require_POST
@annotator_required
def step_edit(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    draft = {"question": data.get("question", ""), "answer": data.get("answer", "")}
    return _analysis_write(
        request,
        analysis,
        "whys",
        lambda: triage.update_step(analysis, step, data, request.user),
        draft={"step_draft": draft},
        editing_on_error={"analysis": None, "step": step},
        focus=step,
    )


@require_POST
@annotator_required
def step_move(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    """Move a why up or down; the keyboard stays on the moved why's same button."""
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    direction = data.get("direction", "")
    return _analysis_write(
        request,
        analysis,
        "whys",
        lambda: triage.move_step(analysis, step, direction, data, request.user),
        moved=(step, direction),
    )


@require_POST
@annotator_required
def step_delete(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    """Delete a why; the keyboard goes to the why that took its place (or to the next new why)."""
    analysis = analysis_or_404(pk)
    data = request.POST.dict()

    return _analysis_write(
        request,
        analysis,
        "whys",
        lambda: triage.delete_step(analysis, step, data, request.user),
        focus=lambda index: ("deleted", index),
    )


@require_POST
@annotator_required
def fix_add(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = analysis_or_404(pk)
    data = request.POST.dict()
    draft = {name: data.get(name, "") for name in ("sha", "message", "url")}
    return _analysis_write(
        request,
        analysis,
        "fixes",
        lambda: triage.add_fix(analysis, data, request.user),
        draft={"fix_draft": draft},
        editing_on_error={"fix": True},
        focus="fix",
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
