"""Operate the loop from the pages: deploy, run tests, run a cycle, rerun, cancel; live progress and logs.

POST views are for operators and admins only (403 for everyone else; LoginRequiredMiddleware sends
anonymous users to the login page first). They call ``services.runs`` and answer with a redirect to
the new deployment or run: ``HX-Redirect`` for an HTMX form, a 303 otherwise. A refusal (a deploy
already running, nothing failed to rerun) is shown in place for HTMX, or as a small page.

The progress and log partials poll ``every 2s`` while the work is live and answer 286 (stop
polling) once it has ended, with ``HX-Refresh`` so the page shows the final summary.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from . import roles
from .models import Deployment, LoopSession, TestRun, WorkStatus
from .services import runs

LIVE = (WorkStatus.QUEUED, WorkStatus.RUNNING)


def operator_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:  # noqa: ANN002, ANN003
        if not roles.can_operate(request.user):
            return HttpResponseForbidden("Only operators and admins may deploy, run, rerun or cancel.")
        return view(request, *args, **kwargs)

    return wrapper


def _done(request: HttpRequest, url: str) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return redirect(url, permanent=False)


def _refused(request: HttpRequest, exc: runs.Refused, back: str) -> HttpResponse:
    """HTMX: the message swapped into the form's message slot (200, so htmx swaps it); else a page."""
    if getattr(request, "htmx", False):
        return render(request, "sessions/operate/message.html", {"message": str(exc), "status": exc.status})
    context = {"message": str(exc), "back": back}
    return render(request, "sessions/operate/refused.html", context, status=exc.status)


def _session(slug: str) -> LoopSession:
    return get_object_or_404(LoopSession.objects.select_related("environment"), slug=slug)


# -- session: deploy, run tests, run a cycle --------------------------------------------------------------------


@require_POST
@operator_required
def session_deploy(request: HttpRequest, slug: str) -> HttpResponse:
    session = _session(slug)
    try:
        deployment = runs.request_deploy(session, revision=request.POST.get("revision") or None, user=request.user)
    except runs.Refused as exc:
        return _refused(request, exc, session.get_absolute_url())
    return _done(request, deployment.get_absolute_url())


@require_POST
@operator_required
def session_run_tests(request: HttpRequest, slug: str) -> HttpResponse:
    session = _session(slug)
    try:
        run = runs.request_tests(session, user=request.user, source=TestRun.Source.UI)
    except runs.Refused as exc:
        return _refused(request, exc, session.get_absolute_url())
    return _done(request, run.get_absolute_url())


@require_POST
@operator_required
def session_run_cycle(request: HttpRequest, slug: str) -> HttpResponse:
    session = _session(slug)
    try:
        _deployment, run = runs.request_cycle(
            session, revision=request.POST.get("revision") or None, user=request.user, source=TestRun.Source.UI
        )
    except runs.Refused as exc:
        return _refused(request, exc, session.get_absolute_url())
    return _done(request, run.get_absolute_url())


# -- a run: rerun, cancel, progress, log -----------------------------------------------------------------------


@require_POST
@operator_required
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    """Rerun all tests of a run, its failed and errored ones, or chosen tests (``tests``: TestCase ids)."""
    run = get_object_or_404(TestRun.objects.select_related("session__environment"), pk=pk)
    scope = request.POST.get("scope") or TestRun.Scope.ALL
    try:
        new = runs.request_tests(
            run.session,
            user=request.user,
            source=TestRun.Source.UI,
            rerun_of=run,
            scope=scope,
            case_ids=request.POST.getlist("tests"),
        )
    except runs.Refused as exc:
        return _refused(request, exc, run.get_absolute_url())
    return _done(request, new.get_absolute_url())


@require_POST
@operator_required
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TestRun, pk=pk)
    try:
        runs.cancel_run(run, reason=f"cancelled by {request.user.get_username()}")
    except runs.Refused as exc:
        return _refused(request, exc, run.get_absolute_url())
    return _done(request, run.get_absolute_url())


def _ended(run: TestRun) -> bool:
    return run.status not in LIVE and run.summary_written


@require_GET
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The live progress partial; 286 once the run has ended (and HX-Refresh to show its summary)."""
    run = get_object_or_404(TestRun.objects.select_related("session__environment"), pk=pk)
    response = render(request, "sessions/operate/progress.html", {"run": run})
    if _ended(run):
        response.status_code = HttpResponseStopPolling.status_code
        if getattr(request, "htmx", False):
            response["HX-Refresh"] = "true"
    return response


def _log_file(path: str, name: str) -> FileResponse:
    """The whole log as plain text; only files under MEDIA_ROOT are served."""
    if not path:
        raise Http404("no log yet")
    file = Path(path).resolve()
    if not file.is_relative_to(Path(settings.MEDIA_ROOT).resolve()) or not file.is_file():
        raise Http404("no log")
    response = FileResponse(open(file, "rb"), content_type="text/plain; charset=utf-8")  # noqa: SIM115
    response["Content-Disposition"] = f'inline; filename="{name}"'
    return response


@require_GET
def run_log(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TestRun.objects.only("id", "log_path"), pk=pk)
    return _log_file(run.log_path, f"run-{run.pk}.log")


# -- a deployment: cancel, live log -------------------------------------------------------------------------------


@require_POST
@operator_required
def deployment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = get_object_or_404(Deployment, pk=pk)
    try:
        runs.cancel_deployment(deployment, reason=f"cancelled by {request.user.get_username()}")
    except runs.Refused as exc:
        return _refused(request, exc, deployment.get_absolute_url())
    return _done(request, deployment.get_absolute_url())


@require_GET
def deployment_log(request: HttpRequest, pk: int) -> HttpResponse:
    """HTMX: the live log partial (286 once the deployment ended). Otherwise: the whole log as text."""
    deployment = get_object_or_404(Deployment, pk=pk)
    if not getattr(request, "htmx", False):
        return _log_file(deployment.log_path, f"deployment-{deployment.pk}.log")
    response = render(request, "sessions/operate/deployment_log.html", {"deployment": deployment})
    patch_vary_headers(response, ("HX-Request",))
    if deployment.status not in LIVE:
        response.status_code = HttpResponseStopPolling.status_code
        response["HX-Refresh"] = "true"
    return response
