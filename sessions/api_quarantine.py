"""The quarantine list of an environment over the API: CI reads it, engineers change it.

``GET /api/v1/environments/<name>/quarantine`` (any token: the read scope) lists the active
quarantines as a JSON list ``[{"test", "reason", "until", "by"}]``, each entry also saying how many
counted runs it passed in a row and whether it is suggested for release. ``POST`` with ``{"test", "reason", "until"}`` quarantines a test and ``DELETE
?test=<nodeid>`` ends one early: a token with the upload scope whose user is an engineer, operator or
admin. Bad input is a 400 naming the field.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import roles
from .api import error, json_body, token_required
from .models import Environment
from .selectors.quarantine import QuarantineRow, active_rows
from .services import quarantine
from .services.triage import Invalid
from .validation import BadInput, nul_in_query

WRITE_SCOPE = "upload"


def _row(row: QuarantineRow) -> dict:
    return {**row.as_json, "passes_in_a_row": row.passes_in_a_row, "suggest_release": row.suggest_release}


def _list(environment: Environment) -> JsonResponse:
    """The contract's shape: a JSON list of entries (``safe=False``: a top-level array)."""
    return JsonResponse([_row(r) for r in active_rows(environment.pk)], safe=False)


def _write_allowed(request: HttpRequest) -> JsonResponse | None:
    """An engineer's role (the token's scope was checked by ``token_required``: it narrows, never widens)."""
    if not roles.can_annotate(request.user):
        return error("only engineers, operators and admins may quarantine tests; this token's user is a viewer", 403)
    return None


def _environment(name: str) -> Environment | None:
    return Environment.objects.filter(name=name).first()


@token_required(scope="read")
def _get(request: HttpRequest, name: str) -> JsonResponse:
    environment = _environment(name)
    if environment is None:
        return error(f"no environment {name!r}", 404)
    return _list(environment)


@token_required(scope=WRITE_SCOPE)
def _post(request: HttpRequest, name: str) -> JsonResponse:
    refused = _write_allowed(request)
    if refused is not None:
        return refused
    try:
        payload = json_body(request)
    except BadInput as exc:
        return error(str(exc), 400)
    if not isinstance(payload, dict):
        return error(f"request body must be a JSON object, got {type(payload).__name__}", 400)
    environment = _environment(name)
    if environment is None:
        return error(f"no environment {name!r}", 404)
    try:
        found, created = quarantine.quarantine_test(
            environment, payload.get("test"), payload.get("reason"), payload.get("until"), request.user
        )
    except Invalid as exc:  # "test: ...", "reason: ...", "until: ..."
        return error(str(exc), 400)
    rows = active_rows(environment.pk, case_ids=[found.case_id])
    body = _row(rows[0]) if rows else QuarantineRow(found, 0, False).as_json
    return JsonResponse(body, status=201 if created else 200)


@token_required(scope=WRITE_SCOPE)
def _delete(request: HttpRequest, name: str) -> JsonResponse:
    refused = _write_allowed(request)
    if refused is not None:
        return refused
    problem = nul_in_query(request.GET, "query parameter")
    if problem:
        return error(problem, 400)
    environment = _environment(name)
    if environment is None:
        return error(f"no environment {name!r}", 404)
    try:
        ended = quarantine.end_quarantine(environment, request.GET.get("test"), request.user)
    except Invalid as exc:
        return error(str(exc), 400)
    return JsonResponse({**QuarantineRow(ended, 0, False).as_json, "ended": True})


HANDLERS = {"GET": _get, "HEAD": _get, "POST": _post, "DELETE": _delete}


@login_not_required
@csrf_exempt
def environment_quarantine(request: HttpRequest, name: str) -> JsonResponse:
    """GET the active list (read scope); POST a quarantine, DELETE one with ``?test=`` (upload scope, engineers)."""
    handler = HANDLERS.get(request.method or "")
    if handler is None:
        response = error(f"method {request.method} not allowed here: GET, POST or DELETE", 405)
        response["Allow"] = "GET, POST, DELETE"
        return response
    return handler(request, name)


environment_quarantine.checks_own_input = True  # each handler checks its body and query after the token
