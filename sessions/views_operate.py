"""Operate the loop from the pages: deploy, run tests (the suite or a subset), run a cycle, rerun, cancel,
exclude or include a run; live progress and logs.

POST views are for operators and admins only (``roles.operator_required``: 403 for everyone else;
LoginRequiredMiddleware sends anonymous users to the login page first). They call ``work.queueing`` /
``work.cancel`` (or ``services.counting`` for exclude and include) through ``_operate`` and answer with
a redirect to the new deployment or run: ``HX-Redirect`` for an HTMX form, a 303 otherwise. A refusal
(a deploy already running, nothing failed to rerun, an exclusion without a reason) is shown in place
for HTMX, or as a small page with its status (400 for ``Invalid``).

The progress and log partials poll ``every 2s`` while the work is live and answer 286 (stop
polling) once it has ended, with ``HX-Refresh`` so the page shows the final summary.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from . import forms
from .models import LIVE_STATUSES, TestRun
from .roles import operator_required
from .selectors.operate import (
    deployment_to_operate,
    run_to_cancel,
    run_to_operate,
    session_to_operate,
    signature_to_operate,
)
from .services import counting
from .services.triage import Invalid
from .views_logs import deployment_log_file
from .work import cancel, queueing, reaper
from .work.errors import Refused


def _operate(
    request: HttpRequest, action: Callable[[], str], *, back: str, refused: str = "Not queued"
) -> HttpResponse:
    """Do an operate action and send the browser to the page it returns; show a refusal in place.

    A refusal (``Refused``, with its status; ``Invalid``, 400), for HTMX, is the message swapped into
    the form's message slot (200, so htmx swaps it); for a plain form post, a small page titled
    ``refused`` with the refusal's status and a link ``back``.
    """
    try:
        url = action()
    except (Refused, Invalid) as exc:
        status = getattr(exc, "status", 400)
        if getattr(request, "htmx", False):
            return render(request, "sessions/operate/message.html", {"message": str(exc), "status": status})
        context = {"message": str(exc), "back": back, "title": refused}
        return render(request, "sessions/operate/refused.html", context, status=status)
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return redirect(url, permanent=False)


# -- session: deploy, run tests, run a cycle --------------------------------------------------------------------


def _shards(request: HttpRequest) -> str | None:
    """The Run buttons' shard choice (the select beside them); empty: the environment's default.

    Checked by ``queueing.shard_count`` (a whole number from 1 to 32, else a 400 naming the field).
    """
    return request.POST.get("shards") or None


@require_POST
@operator_required
def session_deploy(request: HttpRequest, slug: str) -> HttpResponse:
    session = session_to_operate(slug)

    def deploy() -> str:
        deployment = queueing.request_deploy(
            session, revision=forms.revision(request.POST), user=request.user, rollback=forms.rollback(request.POST)
        )
        return deployment.get_absolute_url()

    return _operate(request, deploy, back=session.get_absolute_url())


@require_POST
@operator_required
def session_run_tests(request: HttpRequest, slug: str) -> HttpResponse:
    session = session_to_operate(slug)

    def run_tests() -> str:
        return queueing.request_tests(
            session, user=request.user, source=TestRun.Source.UI, shards=_shards(request)
        ).get_absolute_url()

    return _operate(request, run_tests, back=session.get_absolute_url())


@require_POST
@operator_required
def session_run_subset(request: HttpRequest, slug: str) -> HttpResponse:
    """Run part of the suite: a ``marker`` and/or ``keyword`` expression, or ``subset`` = p1 (the P1 tests),
    signature (``signature``: the tests it hit in its latest run) or tests (``tests``: ids ticked on a list)."""
    session = session_to_operate(slug)
    form = forms.SubsetForm.from_post(request.POST)

    def run_subset() -> str:
        if form.empty:
            raise Refused("marker or keyword: give an expression (such as p1), or choose the P1 tests", 400)
        run = queueing.request_tests(
            session,
            user=request.user,
            source=TestRun.Source.UI,
            marker=form.marker,
            keyword=form.keyword,
            subset=form.subset,
            signature=form.signature,
            case_ids=form.case_ids,
            shards=_shards(request),
        )
        return run.get_absolute_url()

    return _operate(request, run_subset, back=session.get_absolute_url())


@require_POST
@operator_required
def signature_run_tests(request: HttpRequest, pk: int) -> HttpResponse:
    """Run the tests a signature hit in its latest run, in the session of that run; with ``subset=tests``,
    only the ``tests`` ticked on the page's list of the tests it hit."""
    signature = signature_to_operate(pk)
    form = forms.SubsetForm.from_post(request.POST)

    def run_them() -> str:
        last = signature.last_seen_run
        if last is None:
            raise Refused(f"signature #{signature.pk} was not seen in any run: no test to run", 400)
        chosen = form.subset == queueing.SUBSET_TESTS
        run = queueing.request_tests(
            last.session,
            user=request.user,
            source=TestRun.Source.UI,
            subset=queueing.SUBSET_TESTS if chosen else queueing.SUBSET_SIGNATURE,
            signature=None if chosen else signature.pk,
            case_ids=form.case_ids if chosen else None,
        )
        return run.get_absolute_url()

    return _operate(request, run_them, back=signature.get_absolute_url())


@require_POST
@operator_required
def session_run_cycle(request: HttpRequest, slug: str) -> HttpResponse:
    session = session_to_operate(slug)

    def run_cycle() -> str:
        _deployment, run = queueing.request_cycle(
            session,
            revision=forms.revision(request.POST),
            user=request.user,
            source=TestRun.Source.UI,
            rollback=forms.rollback(request.POST),
            shards=_shards(request),
        )
        return run.get_absolute_url()

    return _operate(request, run_cycle, back=session.get_absolute_url())


# -- a run: rerun, cancel, progress -----------------------------------------------------------------------------


@require_POST
@operator_required
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    """Rerun all tests of a run, its failed and errored ones, or chosen tests (``tests``: TestCase ids)."""
    run = run_to_operate(pk)
    form = forms.RerunForm.from_post(request.POST)

    def rerun() -> str:
        new = queueing.request_tests(
            run.session,
            user=request.user,
            source=TestRun.Source.UI,
            rerun_of=run,
            scope=form.scope,
            case_ids=form.case_ids,
            shards=_shards(request),
        )
        return new.get_absolute_url()

    return _operate(request, rerun, back=run.get_absolute_url())


@require_POST
@operator_required
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = run_to_cancel(pk)

    def cancel_it() -> str:
        cancel.cancel_run(run, reason=f"cancelled by {request.user.get_username()}")
        return run.get_absolute_url()

    return _operate(request, cancel_it, back=run.get_absolute_url())


@require_POST
@operator_required
def run_exclude(request: HttpRequest, pk: int) -> HttpResponse:
    """Set an ended run aside with a reason (``reason``, required): it stops counting everywhere at once."""
    run = run_to_operate(pk)

    def exclude() -> str:
        counting.exclude_run(run, request.POST.get("reason", ""), request.user)
        return run.get_absolute_url()

    return _operate(request, exclude, back=run.get_absolute_url(), refused="Not excluded")


@require_POST
@operator_required
def run_include(request: HttpRequest, pk: int) -> HttpResponse:
    """Take an excluded run back in (``reason`` optional); it counts again if it finished complete."""
    run = run_to_operate(pk)

    def include() -> str:
        counting.include_run(run, request.user, request.POST.get("reason", ""))
        return run.get_absolute_url()

    return _operate(request, include, back=run.get_absolute_url(), refused="Not included")


def _ended(run: TestRun) -> bool:
    return run.status not in LIVE_STATUSES and run.summary_written


@require_GET
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The live progress partial; 286 once the run has ended (and HX-Refresh to show its summary)."""
    run = run_to_operate(pk)
    reaper.notice_stale(run)
    response = render(request, "sessions/operate/progress.html", {"run": run})
    if _ended(run):
        response.status_code = HttpResponseStopPolling.status_code
        if getattr(request, "htmx", False):
            response["HX-Refresh"] = "true"
    return response


# -- a deployment: cancel, live log -------------------------------------------------------------------------------


@require_POST
@operator_required
def deployment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_to_operate(pk)

    def cancel_it() -> str:
        cancel.cancel_deployment(deployment, reason=f"cancelled by {request.user.get_username()}")
        return deployment.get_absolute_url()

    return _operate(request, cancel_it, back=deployment.get_absolute_url())


@require_GET
def deployment_log(request: HttpRequest, pk: int) -> HttpResponse:
    """HTMX: the live log partial (286 once the deployment ended). Otherwise: the whole log as text."""
    deployment = deployment_to_operate(pk)
    reaper.notice_stale(deployment)
    if not getattr(request, "htmx", False):
        return deployment_log_file(deployment)
    response = render(request, "sessions/operate/deployment_log.html", {"deployment": deployment})
    patch_vary_headers(response, ("HX-Request",))
    if deployment.status not in LIVE_STATUSES:
        response.status_code = HttpResponseStopPolling.status_code
        response["HX-Refresh"] = "true"
    return response
