"""The live run page's one poll: ``/runs/<id>/live/`` serves the panel of ``sessions/run_live.html``.

While the run is queued or running the panel polls itself every 2 s; each answer reads the run's row
(live counts and ``live_figures``, written together by its worker) and the titles of the signatures it
shows, never the results. Once the run has ended (final status and summary written) the answer is 286,
which stops htmx polling, with ``HX-Refresh`` so that the page reloads into its final form.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from .models import LIVE_STATUSES, TestRun
from .selectors.operate import run_to_operate
from .work import reaper


def run_has_ended(run: TestRun) -> bool:
    """Ended and summarised: a cancelled run stays live for a moment, until its summary is written."""
    return run.status not in LIVE_STATUSES and run.summary_written


@require_GET
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live panel; 286 and HX-Refresh once the run has ended."""
    run = run_to_operate(pk)
    reaper.notice_stale(run)
    # standalone: the answer also swaps the status badge in the page head (out of band)
    response = render(request, "sessions/run_live.html", {"run": run, "standalone": True})
    patch_vary_headers(response, ("HX-Request",))
    if run_has_ended(run):
        response.status_code = HttpResponseStopPolling.status_code
        if getattr(request, "htmx", False):
            response["HX-Refresh"] = "true"
    return response
