"""The HTTP API for CI: bearer-token auth, JSON in and out, errors as {"error": "..."}."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import roles
from .ingest.records import IngestError
from .models import LIVE_STATUSES, LoopSession, Outcome, TestRun
from .openapi import SPEC
from .selectors.api_json import RESULTS_LIMIT, RESULTS_MAX, ResultsQuery, results_as_json, run_as_json, session_as_json
from .services import counting
from .services.ingestion.upload import UploadRefused, ingest_file
from .services.tokens import TokenRefused, authenticate_token
from .services.triage import Invalid
from .services.triggers import TriggerError, trigger_from_request
from .validation import BIGINT_MAX, BadInput, nul_in_form, nul_in_json, whole_number


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def token_required(view: Callable | None = None, *, scope: str = "read") -> Callable:
    """Authenticate with `Authorization: Bearer <token>`; no session cookie, so no CSRF either.

    The token must be unexpired (else 401) and its scope must include `scope` — read,
    upload or trigger — (else 403): `@token_required(scope="upload")`. The view still
    checks the user's role: a scope narrows what a token's user may do, never widens it.
    """
    if view is None:
        return lambda wrapped: token_required(wrapped, scope=scope)

    @login_not_required
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error("missing bearer token: send 'Authorization: Bearer <token>' (manage.py issue_token)", 401)
        try:
            request.user = authenticate_token(token.strip(), scope)
        except TokenRefused as exc:
            return error(str(exc), exc.status)
        return view(request, *args, **kwargs)

    wrapper.token_scope = scope
    wrapper.checks_own_input = True  # RejectNulMiddleware: the view checks its body, after the token
    return wrapper


@token_required(scope="upload")
@require_POST
def upload_run(request: HttpRequest, slug: str) -> JsonResponse:
    if not roles.can_annotate(request.user):
        # Results change what every page shows: uploading is an engineer's (or a CI user's) act.
        return error("only engineers, operators and admins may upload results; this token's user is a viewer", 403)
    problem = form_problem(request)
    if problem:
        return error(problem, 400)
    upload = request.FILES.get("file")
    if upload is None:
        return error("multipart field 'file' is missing", 400)
    cycle = request.POST.get("cycle") or None
    if cycle is not None:
        try:
            cycle = whole_number(cycle, "cycle")  # a cycle number is a PostgreSQL integer
        except BadInput as exc:
            return error(str(exc), 400)
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
    except UploadRefused as exc:  # a bad or unknown environment (admins create them) or session slug
        return error(str(exc), exc.status)
    body = run_as_json(outcome.run)
    body["created"] = outcome.created
    return JsonResponse(body, status=201 if outcome.created else 200)


@token_required(scope="read")
@require_GET
def run_detail(request: HttpRequest, pk: int) -> JsonResponse:
    run = _run_or_none(pk)
    if run is None:
        return error(f"no run {pk}", 404)
    return JsonResponse(run_as_json(run))


def _run_or_none(pk: int) -> TestRun | None:
    return TestRun.objects.select_related("session", "cycle", "deployment").filter(pk=pk).first()


def results_query(query: QueryDict) -> ResultsQuery:
    """``outcome``, ``after`` and ``limit`` of the results endpoint; BadInput names the bad one."""
    outcome = query.get("outcome") or None
    if outcome is not None and outcome not in Outcome.values:
        raise BadInput("outcome", f"outcome must be one of {', '.join(Outcome.values)}, got {outcome!r}")
    after = query.get("after")
    after = None if after in (None, "") else whole_number(after, "after", minimum=0, maximum=BIGINT_MAX)
    limit = query.get("limit")
    limit = RESULTS_LIMIT if limit in (None, "") else whole_number(limit, "limit", minimum=1, maximum=RESULTS_MAX)
    return ResultsQuery(outcome=outcome, after=after, limit=limit)


@token_required(scope="read")
@require_GET
def run_results(request: HttpRequest, pk: int) -> JsonResponse:
    """A page of a run's results, by keyset on the result id (``next`` is the following page's cursor)."""
    try:
        query = results_query(request.GET)
    except BadInput as exc:
        return error(str(exc), 400)
    run = TestRun.objects.filter(pk=pk).only("id").first()
    if run is None:
        return error(f"no run {pk}", 404)
    return JsonResponse(results_as_json(run, query))


@token_required(scope="read")
@require_GET
def session_detail(request: HttpRequest, slug: str) -> JsonResponse:
    session = LoopSession.objects.select_related("environment").filter(slug=slug).first()
    if session is None:
        return error(f"no session {slug!r}", 404)
    return JsonResponse(session_as_json(session))


def _reason_payload(request: HttpRequest) -> tuple[object, JsonResponse | None]:
    """The ``reason`` of an exclude or include body (JSON, or a form with the same field), or an error."""
    if request.content_type == "application/json" or not request.body:
        try:
            payload = json_body(request)
        except BadInput as exc:
            return None, error(str(exc), 400)
    else:
        problem = form_problem(request)
        if problem:
            return None, error(problem, 400)
        payload = request.POST.dict()
    if not isinstance(payload, dict):
        return None, error(f"request body must be a JSON object, got {type(payload).__name__}", 400)
    reason = payload.get("reason")
    if reason is not None and not isinstance(reason, str):
        return None, error(f"reason must be a string, got {type(reason).__name__}", 400)
    return reason, None


def _change_counting(
    request: HttpRequest, pk: int, change: Callable[[TestRun, object], object], *, including: bool = False
) -> JsonResponse:
    """Exclude or include a run: operators and admins (else 403); 404 for an unknown run; 409 while it
    runs (or, to include it, when it is not excluded); 400 for a missing or bad reason."""
    if not roles.can_operate(request.user):
        return error("only operators and admins may exclude or include runs", 403)
    reason, refused = _reason_payload(request)
    if refused is not None:
        return refused
    run = _run_or_none(pk)
    if run is None:
        return error(f"no run {pk}", 404)
    if run.status in LIVE_STATUSES or not run.summary_written:
        return error(f"run {pk} has not ended yet ({run.status}): exclude or include it once it has", 409)
    if including and not run.excluded:
        return error(f"run {pk} is not excluded: nothing to include", 409)
    try:
        change(run, reason)
    except Invalid as exc:  # names the field: "reason: ..."
        return error(str(exc), 400)
    return JsonResponse(run_as_json(run))


@token_required(scope="trigger")
@require_POST
def exclude_run(request: HttpRequest, pk: int) -> JsonResponse:
    """Set a run aside with ``{"reason": "..."}``: it stops counting in every figure at once."""
    return _change_counting(request, pk, lambda run, reason: counting.exclude_run(run, reason, request.user))


@token_required(scope="trigger")
@require_POST
def include_run(request: HttpRequest, pk: int) -> JsonResponse:
    """Take an excluded run back in (``reason`` optional); it counts again if it finished complete."""
    return _change_counting(
        request, pk, lambda run, reason: counting.include_run(run, request.user, reason or ""), including=True
    )


@token_required(scope="trigger")
@require_POST
def trigger(request: HttpRequest, slug: str) -> JsonResponse:
    """Queue a deploy, a test run or a cycle, as `manage.py trigger` does."""
    if not roles.can_operate(request.user):
        return error("only operators and admins may trigger deploys and runs", 403)
    if request.content_type == "application/json":
        try:
            payload = json_body(request)
        except BadInput as exc:
            return error(str(exc), 400)
    else:
        problem = form_problem(request)
        if problem:
            return error(problem, 400)
        payload = request.POST.dict()
    if not isinstance(payload, dict):
        return error(f"request body must be a JSON object, got {type(payload).__name__}", 400)
    try:
        created = trigger_from_request(slug, payload, request.user)
    except TriggerError as exc:
        return error(str(exc), exc.status)
    return JsonResponse(created, status=202)


def form_problem(request: HttpRequest) -> str | None:
    """Why the form body cannot be used (not parseable, too large, a NUL in a field), or None.

    Django answers these with its HTML 400 page when a view reads ``request.POST``; the API answers JSON.
    """
    try:
        return nul_in_form(request)
    except MultiPartParserError as exc:
        return f"request body is not valid multipart/form-data: {exc}"
    except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
        return f"request body refused: {exc}"


def json_body(request: HttpRequest) -> object:
    """The request's JSON document: UTF-8 (RFC 8259), parseable, and no NUL in any key or string."""
    raw = request.body or b"{}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            "request body", f"request body is not UTF-8 (byte {exc.start}): send JSON encoded as UTF-8"
        ) from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise BadInput("request body", "request body is not JSON we accept: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and numbers with more digits than Python converts
        raise BadInput("request body", f"request body is not JSON: {exc}") from None
    problem = nul_in_json(payload)
    if problem:
        raise BadInput("request body", problem)
    return payload


@login_not_required
@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    """Every answer of the API is JSON, a path it does not know too (not Django's HTML 404 page)."""
    return error(f"no API endpoint at {request.path!r}; see /api/v1/openapi.json", 404)


not_found.checks_own_input = True  # it reads no body: nothing for RejectNulMiddleware to parse


@login_not_required
@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(SPEC)
