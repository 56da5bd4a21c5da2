"""Live results from any CI: open a run, post report-log lines while the suite runs, finish it.

``POST /api/v1/sessions/<slug>/runs/live`` opens a run (status running, source ``ci``);
``POST /api/v1/runs/<id>/results`` stores a batch of pytest report-log lines; ``POST
/api/v1/runs/<id>/finish`` ends the run through the same completion as a worker's run. All three
take an upload-scope token of an engineer, operator or admin, as an upload does. The work is in
``services.ingestion.ci_stream``; this module reads and checks the requests. The pytest plugin in
clients/pytest-loopdash speaks this protocol; docs/CI.md shows it from CI.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import api, roles
from .ingest.records import IngestError
from .selectors.api_json import run_as_json
from .services.ingestion.ci_stream import REVISION_MAX, SHARD_MAX, StreamRefused, add_batch, finish_run, open_run
from .services.ingestion.upload import UploadRefused, resolve_session
from .validation import INT_MAX, BadInput, whole_number

BATCH_HEADER = "X-Loopdash-Batch"  # 1, 2, 3...: a retried batch is recognised and not stored twice
_CAN_FEED = "only engineers, operators and admins may send results; this token's user is a viewer"


def _object_body(request: HttpRequest) -> dict:
    """The JSON object of a request (an empty body is ``{}``); BadInput names what is wrong."""
    payload = api.json_body(request)
    if not isinstance(payload, dict):
        raise BadInput("request body", f"request body must be a JSON object, got {type(payload).__name__}")
    return payload


def _optional_text(payload: dict, field: str, max_length: int) -> str:
    value = payload.get(field)
    if value is None or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and field == "shard":
        value = str(value)
    if not isinstance(value, str):
        raise BadInput(field, f"{field} must be a string, got {type(value).__name__}")
    value = value.strip()
    if len(value) > max_length:
        raise BadInput(field, f"{field} must be at most {max_length} characters, got {len(value)}")
    if not value.isprintable():
        raise BadInput(field, f"{field} must be printable text, got {value[:40]!r}")
    return value


@api.token_required(scope="upload")
@require_POST
def open_live_run(request: HttpRequest, slug: str) -> JsonResponse:
    """Open a run fed from CI: ``{"cycle", "revision", "shard", "environment"}``, all optional."""
    if not roles.can_annotate(request.user):
        return api.error(_CAN_FEED, 403)
    try:
        payload = _object_body(request)
        cycle = payload.get("cycle")
        cycle = None if cycle is None else whole_number(cycle, "cycle")
        revision = _optional_text(payload, "revision", REVISION_MAX)
        shard = _optional_text(payload, "shard", SHARD_MAX)
        environment = _optional_text(payload, "environment", 64) or None
    except BadInput as exc:
        return api.error(str(exc), 400)
    try:
        session, _created = resolve_session(slug, environment)
    except UploadRefused as exc:
        return api.error(str(exc), exc.status)
    run = open_run(session, cycle_number=cycle, revision=revision, shard=shard, user=request.user)
    return JsonResponse(
        {
            "id": run.pk,
            "url": request.build_absolute_uri(run.get_absolute_url()),
            "session": session.slug,
            "cycle": run.cycle.number,
            "environment": session.environment.name,
        },
        status=201,
    )


@api.token_required(scope="upload")
@require_POST
def post_results(request: HttpRequest, pk: int) -> JsonResponse:
    """Store a batch of report-log lines (the body, any number of lines); 400 names a bad line."""
    if not roles.can_annotate(request.user):
        return api.error(_CAN_FEED, 403)
    try:
        header = request.headers.get(BATCH_HEADER)
        number = None if header is None else whole_number(header, BATCH_HEADER, maximum=INT_MAX)
        body = request.body
    except BadInput as exc:
        return api.error(str(exc), 400)
    except RequestDataTooBig:
        return api.error("batch too large: send report-log lines in batches of at most 5 MB", 413)
    try:
        outcome = add_batch(pk, body, batch_number=number)
    except IngestError as exc:
        return api.error(f"{exc}; nothing of this batch was stored", 400)
    except StreamRefused as exc:
        return api.error(str(exc), exc.status)
    return JsonResponse({"stored": outcome.stored, "in_flight": outcome.in_flight, "duplicate": outcome.duplicate})


@api.token_required(scope="upload")
@require_POST
def finish(request: HttpRequest, pk: int) -> JsonResponse:
    """End the run with ``{"exitstatus": N}``: pytest's exit status; answers the run JSON."""
    if not roles.can_annotate(request.user):
        return api.error(_CAN_FEED, 403)
    try:
        payload = _object_body(request)
        if "exitstatus" not in payload:
            raise BadInput("exitstatus", 'exitstatus is required: {"exitstatus": N}, pytest\'s exit status')
        exitstatus = whole_number(payload["exitstatus"], "exitstatus", minimum=-INT_MAX, maximum=INT_MAX)
    except BadInput as exc:
        return api.error(str(exc), 400)
    try:
        run = finish_run(pk, exitstatus)
    except StreamRefused as exc:
        return api.error(str(exc), exc.status)
    except IngestError as exc:  # cannot happen for lines already accepted; said clearly if it does
        return api.error(str(exc), 400)
    return JsonResponse(run_as_json(run))


@login_not_required
@csrf_exempt
def run_results(request: HttpRequest, pk: int) -> JsonResponse:
    """``/runs/<id>/results``: GET pages through stored results (read scope), POST adds a batch (upload)."""
    if request.method == "POST":
        return post_results(request, pk)
    return api.run_results(request, pk)


run_results.checks_own_input = True  # both views check their input after the token
