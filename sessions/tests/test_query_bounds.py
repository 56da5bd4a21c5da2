"""Every page costs the same number of SQL queries for a run of 10 results and one of 10,000.

The data goes in through real ingestion (JUnit bytes → ``ingest_file``) and the triage services, so the
pages show everything they can: analyses with steps, fixes and history, criteria of every kind, merged
signatures, flaky tests, deployments. Counted per request: the auth session and user (2) and the user's
groups for the role (1), then the page's own reads.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions.tests.test_pages import triage_world

# One bound per page, the same for both sizes.
# After the 3 of every request:
#   sessions list 1 · session 10: session, cycles, runs, deployments, criteria, board (2), flaky, classes per
#     cycle, the activity (the latest SessionEvents: who excluded or included which run)
#   export 12 · run 4: run, results page, signatures, suspects · results partial 2 (+ the groups for "Rerun")
#   signature 12: signature, runs (and occurrences per cycle from the same rows), merged-in, analyses (+ steps,
#     fixes), edits, samples (and the traceback from them when one holds it whole), tests hit, events (an
#     engineer gets the merge candidates in the merged-in query) · test 2: case, history · deployment 3
#   compare 11: the two runs, the six lists' counts (one aggregation), then for each list that is not
#     empty its page of test ids and their results (two) · one list 4: the runs, the counts, the page
BOUNDS = {
    "sessions_list": 5,  # + "my signatures" (selectors/discussion.py)
    "session_detail": 15,  # + the cached trend read (sessions.cache); 13 before the activity list; + new since
    "session_export": 15,
    "run_detail": 8,  # + which of its signatures an earlier cycle had (selectors/novelty.py)
    "run_results_partial": 5,
    "signature_detail": 15,  # + the active quarantines among the tests it hit; + its comments (engineers: + assignable users)
    # an Edit or Cancel of one part of an analysis: the signature and the analysis the URL names, the
    # analysis again (+ steps, fixes), its edits
    "signature_whys_partial": 9,
    "test_detail": 6,  # + its active quarantine (and, when quarantined, its passing streak)
    "deployment_detail": 6,
    "compare": 14,
    "compare_list_partial": 7,
}
SIZES = [10, 10_000]


@pytest.fixture(scope="module", params=SIZES, ids=[f"{n}-results" for n in SIZES])
def world(request, django_db_setup, django_db_blocker):
    """Built once per size: ingesting 2 × 10,000 results takes a few seconds."""
    from django.db import connection, transaction

    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            data = triage_world(request.param)
            yield data
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            connection.close()


def urls(world: dict) -> dict[str, tuple[str, dict, dict]]:
    """name → (url, query, headers)."""
    run, base = world["second"], world["first"]
    hx = {"HX-Request": "true"}
    return {
        "sessions_list": (reverse("sessions_list"), {}, {}),
        "session_detail": (reverse("session_detail", args=[world["session"].slug]), {}, {}),
        "session_export": (reverse("session_export", args=[world["session"].slug]), {}, {}),
        "run_detail": (reverse("run_detail", args=[run.pk]), {}, {}),
        "run_results_partial": (
            reverse("run_detail", args=[run.pk]),
            {"outcome": "failed", "q": "p1", "priority": "P1"},
            hx,
        ),
        "signature_detail": (reverse("signature_detail", args=[world["signature"].pk]), {}, {}),
        "signature_whys_partial": (
            reverse("signature_detail", args=[world["signature"].pk]),
            {"partial": "whys", "analysis": world["analysis"].pk},
            hx,
        ),
        "test_detail": (reverse("test_detail", args=[world["case"].pk]), {}, {}),
        "deployment_detail": (reverse("deployment_detail", args=[world["deployment"].pk]), {}, {}),
        "compare": (reverse("run_compare_with", args=[run.pk, base.pk]), {}, {}),
        "compare_list_partial": (
            reverse("run_compare_with", args=[run.pk, base.pk]),
            {"list": "new_tests", "after": "1"},
            hx,
        ),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("page", list(BOUNDS))
def test_every_page_makes_a_bounded_number_of_queries(world, page, client, viewer, django_assert_max_num_queries):
    client.force_login(viewer)
    url, query, headers = urls(world)[page]
    with django_assert_max_num_queries(BOUNDS[page]):
        response = client.get(url, query, headers=headers)
    assert response.status_code == 200, page


@pytest.mark.django_db
def test_the_default_comparison_finds_the_previous_full_run(world, client, viewer, django_assert_max_num_queries):
    client.force_login(viewer)
    with django_assert_max_num_queries(BOUNDS["compare"] + 1):
        response = client.get(reverse("run_compare", args=[world["second"].pk]))
    assert response.status_code == 200
    assert response.context["base"].pk == world["first"].pk


@pytest.mark.django_db
def test_the_engineers_view_of_a_signature_is_bounded_too(world, client, engineer, django_assert_max_num_queries):
    """Engineers also get the merge candidates, the people they may assign it to and every edit form."""
    from django.db import connection

    client.force_login(engineer)
    # + the assignable people; the merge candidates ride on the merged-in query where a UNION may hold a
    # LIMIT in each part (PostgreSQL), and are one more query elsewhere (SQLite).
    extra = 1 if connection.features.supports_slicing_ordering_in_compound else 2
    with django_assert_max_num_queries(BOUNDS["signature_detail"] + extra):
        response = client.get(reverse("signature_detail", args=[world["signature"].pk]))
    assert response.status_code == 200
    assert b"Start a five-whys analysis" in response.content
