"""Quarantine from the pages: a test from its page, every test of a signature from the signature page,
ending one early, and an environment's list of active quarantines with release suggestions.

Writes are POSTs to their own URLs for engineers and up (``annotator_required``); refused input (a missing
reason, a date not after today) answers 422 with the environment's list page saying what was wrong.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import roles
from .models import Environment, FailureSignature, TestCase
from .roles import annotator_required
from .selectors.quarantine import active_rows, release_after
from .services import quarantine
from .services.triage import Invalid


def _list_page(request: HttpRequest, environment: Environment, *, error: str = "", back: str = "", status: int = 200):
    context = {
        "environment": environment,
        "rows": active_rows(environment.pk),
        "release_after": release_after(),
        "can_annotate": roles.can_annotate(request.user),
        "error": error,
        "back": back,
    }
    return render(request, "sessions/quarantine.html", context, status=status)


@require_GET
def environment_quarantine(request: HttpRequest, name: str) -> HttpResponse:
    """The environment's active quarantines, the soonest to end first, with release suggestions."""
    return _list_page(request, get_object_or_404(Environment, name=name))


@require_POST
@annotator_required
def test_quarantine(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_object_or_404(TestCase.objects.select_related("environment"), pk=pk)
    back = reverse("test_detail", args=[case.pk])
    try:
        quarantine.quarantine_case(case, request.POST.get("reason"), request.POST.get("until"), request.user)
    except Invalid as exc:
        return _list_page(request, case.environment, error=str(exc), back=back, status=422)
    return redirect(back + "#quarantine")


@require_POST
@annotator_required
def test_quarantine_end(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_object_or_404(TestCase.objects.select_related("environment"), pk=pk)
    try:
        quarantine.end_case_quarantine(case, request.user)
    except Invalid as exc:
        return _list_page(request, case.environment, error=str(exc), status=422)
    if request.POST.get("next") == "list":
        return redirect(reverse("environment_quarantine", args=[case.environment.name]))
    return redirect(reverse("test_detail", args=[case.pk]) + "#quarantine")


@require_POST
@annotator_required
def signature_quarantine(request: HttpRequest, pk: int) -> HttpResponse:
    signature = get_object_or_404(FailureSignature.objects.select_related("environment"), pk=pk)
    back = reverse("signature_detail", args=[signature.pk])
    try:
        quarantine.quarantine_signature(signature, request.POST.get("reason"), request.POST.get("until"), request.user)
    except Invalid as exc:
        return _list_page(request, signature.environment, error=str(exc), back=back, status=422)
    return redirect(back + "#quarantine")
