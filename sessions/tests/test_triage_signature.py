"""The signature page: title and status in place, merges that lose nothing, categories, what the page shows."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from sessions.models import FailureSignature, RunSignature, SignatureCategory, SignatureEvent, TestResult
from sessions.services import triage
from sessions.services.run_completion import complete_run
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
WS = "ConnectionClosedError: received 1011 (internal error)"
TIMEOUT = "TimeoutError: Timeout after 120s waiting for agent_completed"


@pytest.fixture
def two_cycles():
    first = ingest(
        [Case("test_ws_a", "failed", 1.0, WS), Case("test_ws_b", "failed", 1.0, WS),
         Case("test_stream", "failed", 2.0, TIMEOUT), Case("test_ok")],
        cycle=1, label="one",
    )  # fmt: skip
    second = ingest(
        [Case("test_ws_a", "failed", 1.0, WS), Case("test_stream", "failed", 2.0, TIMEOUT), Case("test_ok")],
        cycle=2, label="two",
    )  # fmt: skip
    ws = FailureSignature.objects.get(error_type="ConnectionClosedError")
    timeout = FailureSignature.objects.get(error_type="TimeoutError")
    return first, second, ws, timeout


@pytest.fixture
def erin(client, engineer):
    client.force_login(engineer)
    return client


def test_the_title_is_edited_in_place(erin, two_cycles) -> None:
    _first, _second, ws, _t = two_cycles
    url = reverse("signature_title", args=[ws.pk])
    response = erin.post(url, {"title": "WebSocket 1011 on connect", "version": ws.version}, headers=HX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div class="page-head sig-head" id="signature-header">')
    ws.refresh_from_db()
    assert ws.title == "WebSocket 1011 on connect" and ws.version == 2
    event = SignatureEvent.objects.get(signature=ws, action="title")
    assert event.user.username == "erin" and "WebSocket 1011 on connect" in event.detail
    assert erin.post(url, {"title": "  ", "version": ws.version}, headers=HX).status_code == 422


def test_a_stale_title_is_refused_and_the_newer_one_shown(erin, two_cycles) -> None:
    _first, _second, ws, _t = two_cycles
    triage.set_title(ws, "Renamed by someone else", ws.version, None)
    response = erin.post(reverse("signature_title", args=[ws.pk]), {"title": "Mine", "version": 1}, headers=HX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Renamed by someone else" in html and "Mine" in html and "Not saved" in html
    ws.refresh_from_db()
    assert ws.title == "Renamed by someone else"


def test_an_engineer_sets_the_status(erin, two_cycles) -> None:
    _first, _second, ws, _t = two_cycles
    response = erin.post(
        reverse("signature_status", args=[ws.pk]), {"status": "investigating", "version": ws.version}, headers=HX
    )
    assert response.status_code == 200
    ws.refresh_from_db()
    assert ws.status == "investigating"
    assert (
        erin.post(
            reverse("signature_status", args=[ws.pk]), {"status": "done", "version": ws.version}, headers=HX
        ).status_code
        == 422
    )


def test_a_merge_moves_results_and_counts_and_loses_nothing(erin, two_cycles) -> None:
    first, second, ws, timeout = two_cycles
    analysis = triage.create_analysis(timeout, None, "Streaming never completes")
    total = TestResult.objects.filter(signature__isnull=False).count()
    response = erin.post(reverse("signature_merge", args=[timeout.pk]), {"target": ws.pk})
    assert response.status_code == 302 and response["Location"] == f"/signatures/{ws.pk}/"

    timeout.refresh_from_db()
    ws.refresh_from_db()
    assert timeout.merged_into == ws
    assert TestResult.objects.filter(signature=timeout).count() == 0
    assert TestResult.objects.filter(signature=ws).count() == total  # every result kept, now on the target
    assert ws.result_count == 5 and ws.test_count == 3 and timeout.result_count == 0
    assert ws.first_seen_run == first and ws.last_seen_run == second
    counts = {rs.run_id: (rs.results, rs.tests) for rs in RunSignature.objects.filter(signature=ws)}
    assert counts == {first.pk: (3, 3), second.pk: (2, 2)}
    assert not RunSignature.objects.filter(signature=timeout).exists()
    analysis.refresh_from_db()
    assert analysis.signature == timeout  # kept where it was written, shown on the target
    html = erin.get(reverse("signature_detail", args=[ws.pk])).content.decode()
    assert "Streaming never completes" in html and f"from #{timeout.pk}" in html
    assert SignatureEvent.objects.filter(signature=ws, action="merged").exists()


def test_future_failures_of_a_merged_fingerprint_land_on_the_target(two_cycles) -> None:
    _first, _second, ws, timeout = two_cycles
    triage.merge(timeout, ws, None)
    third = ingest([Case("test_stream", "failed", 2.0, TIMEOUT)], cycle=3, label="three")
    assert set(TestResult.objects.filter(run=third).values_list("signature_id", flat=True)) == {ws.pk}
    assert RunSignature.objects.get(run=third).signature == ws


def test_a_merge_into_a_merged_signature_follows_it_and_chains_stay_flat(two_cycles) -> None:
    first, _second, ws, timeout = two_cycles
    third = ingest([Case("test_key", "failed", 1.0, "KeyError: 'agent'")], cycle=3, label="three")
    key = FailureSignature.objects.get(run_counts__run=third)
    triage.merge(timeout, key, None)
    triage.merge(key, ws, None)
    timeout.refresh_from_db()
    assert timeout.merged_into == ws  # re-pointed to the final target
    other = FailureSignature.objects.create(environment=ws.environment, fingerprint="x" * 40, normalized="x", title="x")
    assert triage.merge(other, timeout, None) == FailureSignature.objects.get(pk=ws.pk)


@pytest.mark.parametrize("case", ["itself", "loop", "already", "elsewhere"])
def test_merges_that_make_no_sense_are_refused(two_cycles, case: str) -> None:
    from sessions.models import Environment

    _first, _second, ws, timeout = two_cycles
    if case == "itself":
        source, target = ws, ws
    elif case == "loop":
        triage.merge(timeout, ws, None)
        source, target = ws, FailureSignature.objects.get(pk=timeout.pk)
    elif case == "already":
        triage.merge(timeout, ws, None)
        source, target = FailureSignature.objects.get(pk=timeout.pk), ws
    else:
        prod = Environment.objects.create(name="prod")
        source = ws
        target = FailureSignature.objects.create(environment=prod, fingerprint="y" * 40, normalized="y", title="y")
    with pytest.raises(triage.Invalid):
        triage.merge(source, target, None)


def test_a_run_that_wrote_to_a_signature_merged_meanwhile_is_fixed_up_when_it_ends(two_cycles) -> None:
    _first, second, ws, timeout = two_cycles
    triage.merge(timeout, ws, None)
    # As if a live run had resolved the fingerprint before the merge and kept writing to it:
    TestResult.objects.filter(run=second, case__nodeid__endswith="test_stream").update(signature=timeout)
    RunSignature.objects.create(run=second, signature=timeout, results=1, tests=1, modules=1)
    complete_run(second, status=second.status)
    assert not TestResult.objects.filter(signature=timeout).exists()
    assert RunSignature.objects.get(run=second, signature=ws).results == 2


def test_categories_label_new_signatures_and_relabel_all_when_saved_in_the_admin(
    client, admin_user, two_cycles
) -> None:
    _first, _second, ws, timeout = two_cycles
    assert ws.category is None
    client.force_login(admin_user)
    admin = "/admin/loop_sessions/signaturecategory/"

    def save(url: str, name: str, pattern: str, position: int) -> None:
        data = {"name": name, "pattern": pattern, "position": position, "colour": "#6b7280"}
        response = client.post(url, data)
        assert response.status_code == 302, response.content.decode()[:2000]

    save(f"{admin}add/", "infrastructure", r"(?i)1011|timeout", 1)
    infra = SignatureCategory.objects.get(name="infrastructure")
    ws.refresh_from_db()
    timeout.refresh_from_db()
    assert ws.category == infra and timeout.category == infra
    save(f"{admin}add/", "network", r"ConnectionClosed", 0)
    network = SignatureCategory.objects.get(name="network")
    ws.refresh_from_db()
    assert ws.category == network  # the first by position wins
    save(f"{admin}{network.pk}/change/", "network", r"nothing-matches-this", 0)
    ws.refresh_from_db()
    assert ws.category == infra
    assert client.post(f"{admin}{infra.pk}/delete/", {"post": "yes"}).status_code == 302
    ws.refresh_from_db()
    assert ws.category is None
    fresh = ingest([Case("test_new", "failed", 1.0, "ConnectionClosedError: nothing-matches-this now")], cycle=3)
    assert FailureSignature.objects.get(run_counts__run=fresh).category == network  # assigned at creation


def test_a_category_pattern_must_compile() -> None:
    category = SignatureCategory(name="broken", pattern="(unclosed")
    with pytest.raises(ValidationError):
        category.full_clean()


def test_the_page_shows_occurrences_tests_modules_and_one_full_traceback(client, viewer, two_cycles) -> None:
    first, second, ws, _t = two_cycles
    client.force_login(viewer)
    response = client.get(reverse("signature_detail", args=[ws.pk]))
    html = response.content.decode()
    figure = response.context["occurrence_figure"]
    assert figure["data"][0]["x"] == [1, 2] and figure["data"][0]["y"] == [2, 1]
    assert '<script id="occurrence-figure" type="application/json">' in html
    assert [t.nodeid.rsplit("::", 1)[1] for t in response.context["tests"]] == ["test_ws_a", "test_ws_b"]
    assert response.context["modules"] == [("tests/e2e/test_chat.py", 3)]
    assert 'id="full-traceback"' in html
    assert f'href="/runs/{first.pk}/"' in html and f'href="/runs/{second.pk}/"' in html


def test_occurrences_from_the_run_rows_equal_the_grouped_sums(two_cycles) -> None:
    """The page sums occurrences from the run rows it reads anyway: the same as grouping in the database."""
    from django.db.models import Count, Sum

    from sessions.selectors.signatures import occurrences_of_runs, signature_runs

    _first, _second, ws, _t = two_cycles
    ingest([Case("test_ws_a", "failed", 1.0, WS)], cycle=2, label="rerun")  # two runs in cycle 2
    grouped = (
        RunSignature.objects.filter(signature=ws)
        .values_list("run__session__slug", "run__cycle__number")
        .annotate(results=Sum("results"), runs=Count("id"))
        .order_by("run__session__slug", "run__cycle__number")
    )
    found = occurrences_of_runs(signature_runs(ws, limit=2000))
    assert [(o.session, o.cycle, o.results, o.runs) for o in found] == list(grouped)
    assert [(o.cycle, o.runs) for o in found] == [(1, 1), (2, 2)]
    assert len(occurrences_of_runs(signature_runs(ws, limit=2000), limit=1)) == 1  # the newest cycle only


def test_the_traceback_comes_from_the_samples_unless_it_is_longer_than_their_preview(two_cycles) -> None:
    from sessions.selectors.columns import DETAILS_PREVIEW_CHARS
    from sessions.selectors.signatures import signature_samples, signature_traceback, traceback_of

    _first, _second, ws, _t = two_cycles
    expected = signature_traceback(ws)
    shown = traceback_of(ws, signature_samples(ws))
    assert expected is not None and (shown.pk, shown.details) == (expected.pk, expected.details)
    long = "Traceback (most recent call last):\n" + "x" * (DETAILS_PREVIEW_CHARS + 10)
    TestResult.objects.filter(pk=expected.pk).update(details=long)
    shown = traceback_of(ws, signature_samples(ws))
    assert (shown.pk, shown.details) == (expected.pk, long)  # read whole, not cut at the preview
    TestResult.objects.filter(signature=ws).update(details="")
    assert traceback_of(ws, signature_samples(ws)) is None


def test_the_session_board_follows_a_merge_although_its_sums_are_cached(two_cycles) -> None:
    """The board's per-signature sums are cached under the session's runs version, which a merge leaves alone."""
    from sessions.cache import session_runs_version
    from sessions.selectors.sessions import signature_board

    first, _second, ws, timeout = two_cycles
    session = first.session
    version = session_runs_version(session)

    def cards() -> dict[int, int]:
        board, _total = signature_board(session, version)
        return {card.signature_id: card.results for _s, _l, column, _n in board for card in column}

    assert cards() == {ws.pk: 3, timeout.pk: 2}
    triage.merge(timeout, ws, None)
    assert session_runs_version(session) == version  # the runs did not change: the cached sums are stale
    assert cards() == {ws.pk: 5}
    _board, total = signature_board(session, version)
    assert total == 1
