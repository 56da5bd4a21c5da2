"""Owners and discussion on the signature page: assign (or "assign to me") and comment.

Both are POSTs to their own URLs for engineers and up (``roles.annotator_required``), answered with
the discussion card for HTMX (and the activity out of band, which both write to), or a redirect
back to the signature page without JavaScript. Reads live in ``selectors/discussion.py``, writes
in ``services/discussion.py``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from . import forms, roles
from .roles import annotator_required
from .selectors.discussion import discussion_section
from .selectors.signatures import signature_events, signature_for_page
from .services import discussion
from .services.triage import Invalid

TEMPLATE = "sessions/_signature_discussion.html"


def _response(request: HttpRequest, pk: int, *, status: int = 200, **extra: object) -> HttpResponse:
    signature = signature_for_page(pk)
    if request.headers.get("HX-Request") != "true":
        if status >= 400:
            return HttpResponse(str(extra.get("discussion_error", "")), status=status, content_type="text/plain")
        return redirect(f"{signature.get_absolute_url()}#discussion")
    context = discussion_section(signature, can_annotate=roles.can_annotate(request.user), user=request.user)
    context |= extra
    body = render_to_string(f"{TEMPLATE}#discussion", context, request)
    activity = {"signature": signature, "events": signature_events(signature), "oob": True}
    body += render_to_string("sessions/signature_detail.html#activity", activity, request)
    return HttpResponse(body, status=status)


@require_POST
@annotator_required
def signature_assign(request: HttpRequest, pk: int) -> HttpResponse:
    """``assignee`` = a user id, ``me`` for oneself, or empty for nobody."""
    signature = signature_for_page(pk)
    raw = request.POST.get("assignee", "").strip()
    try:
        if raw == "me":
            assignee_id: int | None = request.user.pk
        elif raw == "":
            assignee_id = None
        else:
            assignee_id = forms.optional_int(raw)
            if assignee_id is None or not 0 < assignee_id < 2**31:
                raise Invalid("assignee must be a user id, 'me' or empty")
        discussion.assign(signature, assignee_id, request.user)
    except Invalid as exc:
        return _response(request, pk, status=422, discussion_error=str(exc))
    return _response(request, pk)


@require_POST
@annotator_required
def signature_comment(request: HttpRequest, pk: int) -> HttpResponse:
    signature = signature_for_page(pk)
    try:
        discussion.add_comment(signature, request.POST.get("body"), request.user)
    except Invalid as exc:
        return _response(request, pk, status=422, discussion_error=str(exc), draft=request.POST.get("body", ""))
    return _response(request, pk)
