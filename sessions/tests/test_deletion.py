"""Deleting runs and sessions in the admin keeps every signature's counters as a full recount says."""

from __future__ import annotations

import pytest

from sessions.models import FailureSignature, LoopSession, TestRun
from sessions.services.aggregates import rebuild_signature_counts
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db

BOOM = "AssertionError: boom"


def counters() -> dict[int, tuple]:
    return {
        s.pk: (s.result_count, s.test_count, s.module_count, s.first_seen_run_id, s.last_seen_run_id)
        for s in FailureSignature.objects.order_by("pk")
    }


def recounted() -> dict[int, tuple[int, int, int]]:
    rebuild_signature_counts()
    return {pk: values[:3] for pk, values in counters().items()}


@pytest.fixture
def three_runs() -> list[TestRun]:
    first = ingest([Case("test_a", "failed", message=BOOM), Case("test_b", "failed", message=BOOM)], cycle=1)
    second = ingest([Case("test_a", "failed", message=BOOM), Case("test_b", "passed")], cycle=2)
    other = ingest([Case("test_a", "failed", message=BOOM)], session="another", cycle=1)
    return [first, second, other]


def test_deleting_a_run_in_the_admin_recounts_its_signatures(client, admin_user, three_runs) -> None:
    first, second, _other = three_runs
    signature = FailureSignature.objects.get()
    assert (signature.result_count, signature.test_count) == (4, 2)
    client.force_login(admin_user)
    response = client.post(f"/admin/loop_sessions/testrun/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    after = counters()[signature.pk]
    assert after[:3] == (2, 1, 1)
    assert after[3] == second.pk  # first seen moves to the oldest remaining run
    assert {pk: v[:3] for pk, v in counters().items()} == recounted()


def test_deleting_runs_and_sessions_in_bulk_keeps_the_counters_and_the_headline(client, admin_user, three_runs) -> None:
    first, second, other = three_runs
    client.force_login(admin_user)
    response = client.post(
        "/admin/loop_sessions/testrun/",
        {"action": "delete_selected", "_selected_action": [second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert LoopSession.objects.get(slug="golden-path").latest_run_id == first.pk
    assert {pk: v[:3] for pk, v in counters().items()} == recounted()

    session = LoopSession.objects.get(slug="another")
    response = client.post(f"/admin/loop_sessions/loopsession/{session.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not TestRun.objects.filter(pk=other.pk).exists()
    signature = FailureSignature.objects.get()
    assert (signature.result_count, signature.test_count) == (2, 2)
    assert {pk: v[:3] for pk, v in counters().items()} == recounted()
