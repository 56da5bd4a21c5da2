"""``GET`` and ``PUT /api/v1/environments/<name>``: environments as code over HTTP.

``PUT`` takes the document ``manage.py environment apply`` takes (the whole environment: a key left
out takes its default) and answers the environment as ``GET`` shows it, with the keys that changed.
Only admins write environments: their commands are what the workers run. The rules are
``services.environments``'s, shared with the command and the in-app form.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import roles
from .api import error, json_body, token_required
from .models import Environment
from .services import environments
from .validation import BadInput


@login_not_required
@csrf_exempt
@require_http_methods(["GET", "PUT"])
def environment(request: HttpRequest, name: str) -> JsonResponse:
    """Read (read scope, any role) or replace (trigger scope, admins) one environment."""
    if request.method == "PUT":
        return _put(request, name)
    return _get(request, name)


environment.checks_own_input = True  # both check their input after the token


@token_required(scope="read")
def _get(request: HttpRequest, name: str) -> JsonResponse:
    env = Environment.objects.filter(name=name).first()
    if env is None:
        return error(f"no environment {name!r}", 404)
    return JsonResponse(environments.export(env))


@token_required(scope="trigger")
def _put(request: HttpRequest, name: str) -> JsonResponse:
    if not roles.can_administer(request.user):
        role = roles.role_of(request.user)
        return error(f"only admins may change environments (their commands run on the workers); you are {role}", 403)
    try:
        document = json_body(request)
    except BadInput as exc:
        return error(str(exc), 400)
    try:
        applied = environments.apply(document, name=name)
    except environments.SpecInvalid as exc:
        problems = [{"key": p.key, "message": p.message} for p in exc.problems]
        return JsonResponse({"error": str(exc), "problems": problems}, status=400)
    body = environments.export(applied.environment)
    body["created"] = applied.created
    body["changed"] = [key for key, _old, _new in applied.changes]
    return JsonResponse(body, status=201 if applied.created else 200)
