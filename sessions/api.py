"""The HTTP API for CI: bearer-token auth, JSON in and out, errors as {"error": "..."}."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import roles
from .ingest.records import IngestError
from .models import TestRun
from .openapi import SPEC
from .selectors import run_as_json
from .services.ingestion import ingest_file
from .services.tokens import user_for_token


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def token_required(view: Callable) -> Callable:
    """Authenticate with `Authorization: Bearer <token>`; no session cookie, so no CSRF either."""

    @login_not_required
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> JsonResponse:  # noqa: ANN002, ANN003
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error("missing bearer token: send 'Authorization: Bearer <token>' (manage.py issue_token)", 401)
        user = user_for_token(token.strip())
        if user is None:
            return error("invalid or revoked token", 401)
        request.user = user
        return view(request, *args, **kwargs)

    return wrapper


@token_required
@require_POST
def upload_run(request: HttpRequest, slug: str) -> JsonResponse:
    upload = request.FILES.get("file")
    if upload is None:
        return error("multipart field 'file' is missing", 400)
    cycle = request.POST.get("cycle") or None
    if cycle is not None:
        try:
            cycle = int(cycle)
            if cycle < 1:
                raise ValueError
        except ValueError:
            return error(f"cycle must be a positive whole number, got {request.POST.get('cycle')!r}", 400)
    if not roles.can_annotate(request.user):
        # Results change what every page shows: uploading is an engineer's (or a CI user's) act.
        return error("only engineers, operators and admins may upload results; this token's user is a viewer", 403)
    try:
        outcome = ingest_file(
            upload,
            upload.name or "upload",
            session_slug=slug,
            cycle_number=cycle,
            environment_name=request.POST.get("environment") or None,
            user=request.user,
            origin=TestRun.Source.API,
        )
    except IngestError as exc:
        return error(str(exc), 400)
    body = run_as_json(outcome.run)
    body["created"] = outcome.created
    return JsonResponse(body, status=201 if outcome.created else 200)


@token_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> JsonResponse:
    run = TestRun.objects.select_related("session", "cycle").filter(pk=pk).first()
    if run is None:
        return error(f"no run {pk}", 404)
    return JsonResponse(run_as_json(run))


@token_required
@require_POST
def trigger(request: HttpRequest, slug: str) -> JsonResponse:
    """Queue a deploy, a test run or a cycle, as `manage.py trigger` does."""
    from .services.triggers import TriggerError, trigger_from_request

    if not roles.can_operate(request.user):
        return error("only operators and admins may trigger deploys and runs", 403)
    try:
        payload = json.loads(request.body or b"{}") if request.content_type == "application/json" else request.POST.dict()
    except json.JSONDecodeError as exc:
        return error(f"request body is not JSON: {exc}", 400)
    if not isinstance(payload, dict):
        return error("request body must be a JSON object", 400)
    try:
        created = trigger_from_request(slug, payload, request.user)
    except TriggerError as exc:
        return error(str(exc), exc.status)
    return JsonResponse(created, status=202)


@login_not_required
@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(SPEC)
