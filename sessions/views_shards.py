"""The shard table of a sharded run's page, served alone while the run is live (it polls every 2 s).

The run page includes ``sessions/run_shards.html`` for a sharded run; while the run is live the table
asks ``/runs/<id>/shards/`` for itself every 2 s (two queries: the run, its shard rows) and the answer
turns 286 once the run has ended, which stops htmx polling (the page's own poll reloads the page).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from .models import LIVE_STATUSES, TestRun


@require_GET
def run_shards(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's shard rows: index, status, worker, tests, planned and actual time, counts, last lines."""
    run = get_object_or_404(TestRun.objects.only("id", "status", "shards_requested"), pk=pk)
    response = render(request, "sessions/run_shards.html", {"run": run})
    if run.status not in LIVE_STATUSES:
        response.status_code = HttpResponseStopPolling.status_code
    return response
