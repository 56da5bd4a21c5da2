"""The five-whys editor's answers: each edit swaps only its part, the signature's badge, status menu and
activity come along out of band, the other forms learn the new version, and an analysis can be deleted
with its last version kept in the activity."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from sessions.models import Analysis, AnalysisEdit, FailureSignature, SignatureEvent, WhyStep
from sessions.services import triage
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
WS = "ConnectionClosedError: received 1011 (internal error)"
TIMEOUT = "TimeoutError: stream never completed"


@pytest.fixture
def signature() -> FailureSignature:
    ingest([Case("test_ws", "failed", 1.0, WS), Case("test_stream", "failed", 1.0, TIMEOUT)], cycle=1)
    return FailureSignature.objects.get(error_type="ConnectionClosedError")


@pytest.fixture
def erin(client, engineer):
    client.force_login(engineer)
    return client


def fresh(analysis: Analysis) -> Analysis:
    analysis.refresh_from_db()
    return analysis


def written(signature: FailureSignature) -> Analysis:
    analysis = triage.create_analysis(signature, None, "1011 on connect")
    for question in ("Why 1011?", "Why does the handler raise?", "Why is an enum logged?"):
        triage.add_step(
            fresh(analysis), {"version": fresh(analysis).version, "question": question, "answer": "x"}, None
        )
    return fresh(analysis)


def oob_ids(html: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"[^>]*hx-swap-oob="true"', html))


def trigger(response, name: str) -> dict:
    return json.loads(response["HX-Trigger"])[name]


def test_adding_a_why_answers_with_the_list_only_and_says_which_version_it_wrote(erin, signature) -> None:
    analysis = written(signature)
    before = analysis.version
    response = erin.post(
        reverse("step_add", args=[analysis.pk]), {"version": before, "question": "Why now?", "answer": ""}, headers=HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div class="whys-block" id="whys-{analysis.pk}"')
    # The fields form (where a root cause may be typed) is not in the answer: it cannot be replaced.
    assert f'id="analysis-fields-{analysis.pk}"' not in html and 'name="root_cause"' not in html
    assert oob_ids(html) >= {f"analysis-head-{analysis.pk}", f"history-{analysis.pk}", "signature-status", "activity"}
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    # The keyboard goes to the next new why's question, labelled Why 5.
    assert re.search(r'<input name="question"[^>]*aria-label="Why 5: the question"[^>]*autofocus', html)
    assert trigger(response, "loopdash:analysis-saved") == {
        "analysis": analysis.pk,
        "from": before,
        "to": before + 1,
        "status": "hypothesis",
    }
    assert fresh(analysis).version == before + 1


def test_a_refused_why_keeps_what_was_typed_and_moves_no_version(erin, signature) -> None:
    analysis = written(signature)
    stale = analysis.version
    triage.update_analysis(fresh(analysis), {"version": stale, "root_cause": "Someone else's root cause"}, None)
    response = erin.post(
        reverse("step_add", args=[analysis.pk]),
        {"version": stale, "question": "My unsaved why", "answer": "My answer"},
        headers=HX,
    )
    assert response.status_code == 409 and "HX-Trigger" not in response
    html = response.content.decode()
    assert "Not saved: someone else changed this analysis first." in html
    assert "Someone else&#x27;s root cause" in html  # the newer text
    assert html.count("My unsaved why") == 2  # in the notice, and still in the add row to try again
    assert not WhyStep.objects.filter(question="My unsaved why").exists()
    empty = erin.post(reverse("step_add", args=[analysis.pk]), {"version": fresh(analysis).version}, headers=HX)
    assert empty.status_code == 422 and "a why needs its question" in empty.content.decode()


def test_deleting_a_why_sends_the_keyboard_to_the_one_that_took_its_place(erin, signature) -> None:
    analysis = written(signature)
    first, second, third = analysis.steps.order_by("position")
    response = erin.post(
        reverse("step_delete", args=[analysis.pk, second.pk]), {"version": analysis.version}, headers=HX
    )
    assert response.status_code == 200
    assert re.search(rf'id="edit-step-{third.pk}"[^>]*aria-label="Edit why 2" autofocus', response.content.decode())
    response = erin.post(
        reverse("step_delete", args=[analysis.pk, third.pk]), {"version": fresh(analysis).version}, headers=HX
    )
    assert re.search(r'aria-label="Why 2: the question"[^>]*autofocus', response.content.decode())  # the last one
    assert list(analysis.steps.values_list("pk", flat=True)) == [first.pk]


def test_confirming_an_analysis_updates_the_badge_the_status_menu_and_the_activity_in_one_answer(
    erin, signature
) -> None:
    analysis = written(signature)
    assert fresh(signature).status == FailureSignature.Status.INVESTIGATING
    response = erin.post(
        reverse("analysis_edit", args=[analysis.pk]), {"version": analysis.version, "status": "confirmed"}, headers=HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<header class="analysis-head" id="analysis-head-{analysis.pk}"')
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "an element is sent twice: the out-of-band copy would replace the target"
    assert re.search(
        r'<span class="badge root_caused" id="signature-status" hx-swap-oob="true">Root-caused</span>', html
    )
    assert re.search(r'<form class="status-form"[^>]*hx-swap-oob="true"', html)
    assert '<option value="root_caused" selected>' in html
    assert "investigating → root_caused (analysis confirmed)" in html  # the activity
    assert trigger(response, "loopdash:analysis-saved")["status"] == "confirmed"
    assert fresh(signature).status == FailureSignature.Status.ROOT_CAUSED


def test_the_status_menu_answers_with_itself_and_lets_the_title_form_follow(erin, signature) -> None:
    version = signature.version
    response = erin.post(
        reverse("signature_status", args=[signature.pk]), {"status": "investigating", "version": version}, headers=HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<form class="status-form"')
    assert 'id="status-save" autofocus' in html  # the keyboard stays on Save
    assert {"signature-status", "activity"} <= oob_ids(html) and "status-form" not in oob_ids(html)
    assert 'id="signature-title"' not in html  # a title being typed is not replaced
    assert trigger(response, "loopdash:signature-saved") == {
        "signature": signature.pk,
        "from": version,
        "to": version + 1,
    }
    stale = erin.post(
        reverse("signature_status", args=[signature.pk]), {"status": "new", "version": version}, headers=HX
    )
    assert stale.status_code == 409 and "HX-Trigger" not in stale
    assert "Not saved: someone changed this signature first." in stale.content.decode()
    assert fresh(signature).status == "investigating"


def test_an_engineer_deletes_an_analysis_and_the_activity_keeps_its_last_version(erin, signature) -> None:
    analysis = written(signature)
    triage.update_analysis(fresh(analysis), {"version": fresh(analysis).version, "root_cause": "An enum"}, None)
    triage.add_fix(fresh(analysis), {"version": fresh(analysis).version, "sha": "abcdef1234"}, None)
    pk = analysis.pk
    stale = erin.post(reverse("analysis_delete", args=[pk]), {"version": 1}, headers=HX)
    assert stale.status_code == 409 and Analysis.objects.filter(pk=pk).exists()
    assert stale["HX-Retarget"] == f"#analysis-head-{pk}"  # the refusal shows in its head; nothing else moves
    assert erin.post(reverse("analysis_delete", args=[pk]), {}, headers=HX).status_code == 422  # no version

    response = erin.post(reverse("analysis_delete", args=[pk]), {"version": fresh(analysis).version}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Analysis {pk} deleted." in html
    assert re.search(r'<p class="muted" id="no-analysis" hx-swap-oob="true">No analysis yet.</p>', html)
    assert "0 analyses" in html
    assert not Analysis.objects.filter(pk=pk).exists() and not AnalysisEdit.objects.filter(analysis_id=pk).exists()
    event = SignatureEvent.objects.get(signature=signature, action="analysis")
    assert event.user.username == "erin"
    assert event.detail.startswith(f"analysis {pk} deleted by erin (hypothesis, v")
    for text in (
        "problem: 1011 on connect",
        "why 1: Why 1011?",
        "why 3: Why is an enum logged?",
        "root cause: An enum",
    ):
        assert text in event.detail
    assert "fix abcdef1234 (pending)" in event.detail
    assert event.detail in html  # the activity, out of band


def test_deleting_an_analysis_of_a_merged_signature_is_told_on_both(erin, signature) -> None:
    timeout = FailureSignature.objects.get(error_type="TimeoutError")
    analysis = triage.create_analysis(timeout, None, "Streaming never completes")
    triage.merge(timeout, signature, None)
    response = erin.post(reverse("analysis_delete", args=[analysis.pk]), {"version": fresh(analysis).version})
    assert response.status_code == 302 and response["Location"] == f"/signatures/{timeout.pk}/#analyses"
    assert SignatureEvent.objects.filter(action="analysis", signature__in=[timeout, signature]).count() == 2


def test_a_long_analysis_fits_the_event_and_the_page_says_what_a_delete_takes(erin, signature) -> None:
    analysis = triage.create_analysis(signature, None, "p" * 5000)
    for n in range(12):
        triage.add_step(fresh(analysis), {"version": fresh(analysis).version, "question": f"Q{n} " + "q" * 300}, None)
    page = erin.get(reverse("signature_detail", args=[signature.pk])).content.decode()
    assert "Delete this analysis with its 12 whys?" in page
    erin.post(reverse("analysis_delete", args=[analysis.pk]), {"version": fresh(analysis).version}, headers=HX)
    detail = SignatureEvent.objects.get(action="analysis").detail
    assert len(detail) == 500 and detail.endswith("…") and "why 1: Q0" in detail


def test_a_viewer_may_not_delete_an_analysis(client, viewer, signature) -> None:
    analysis = written(signature)
    client.force_login(viewer)
    response = client.post(reverse("analysis_delete", args=[analysis.pk]), {"version": analysis.version}, headers=HX)
    assert response.status_code == 403
    assert Analysis.objects.filter(pk=analysis.pk).exists()
    assert "Delete analysis" not in client.get(reverse("signature_detail", args=[signature.pk])).content.decode()
