"""The five-whys editor: HTMX partials, every edit kept with who and when, stale edits refused with 409."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions.models import Analysis, AnalysisEdit, FailureSignature, WhyStep
from sessions.services import triage
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def signature() -> FailureSignature:
    ingest([Case("test_ws", "failed", 1.0, "ConnectionClosedError: received 1011 (internal error)")], cycle=1)
    return FailureSignature.objects.get()


@pytest.fixture
def erin(client, engineer):
    client.force_login(engineer)
    return client


def post(client, name: str, *args, data: dict, htmx: bool = True):
    return client.post(reverse(name, args=args), data, headers=HX if htmx else {})


def fresh(analysis: Analysis) -> Analysis:
    analysis.refresh_from_db()
    return analysis


def questions(analysis: Analysis) -> list[str]:
    return list(WhyStep.objects.filter(analysis=analysis).order_by("position", "id").values_list("question", flat=True))


def test_an_engineer_writes_a_whole_analysis_without_a_page_load(erin, signature) -> None:
    response = post(erin, "analysis_create", signature.pk, data={"problem": "1011 on connect"})
    assert response.status_code == 200
    html = response.content.decode()
    analysis = signature.analyses.get()
    # The new analysis is appended (the others, and what is typed in them, stay), opened for editing.
    assert html.lstrip().startswith(f'<article class="analysis hypothesis" id="analysis-{analysis.pk}"')
    assert "<html" not in html and 'name="root_cause"' in html
    assert analysis.author.username == "erin" and analysis.problem == "1011 on connect"
    for question in ("Why 1011?", "Why does the handler raise?", "Why is an enum logged?"):
        response = post(
            erin,
            "step_add",
            analysis.pk,
            data={"version": fresh(analysis).version, "question": question, "answer": "…"},
        )
        assert response.status_code == 200
        # Only the why list is swapped; the head and the history come along out of band.
        html = response.content.decode()
        assert html.lstrip().startswith(f'<div class="whys-block" id="whys-{analysis.pk}"')
        assert f'id="analysis-head-{analysis.pk}" hx-target="this" hx-swap="outerHTML" hx-swap-oob="true"' in html
        assert f'id="analysis-fields-{analysis.pk}"' not in html
    assert questions(analysis) == ["Why 1011?", "Why does the handler raise?", "Why is an enum logged?"]

    step = WhyStep.objects.get(question="Why 1011?")
    post(erin, "step_move", analysis.pk, step.pk, data={"version": fresh(analysis).version, "direction": "down"})
    assert questions(analysis)[:2] == ["Why does the handler raise?", "Why 1011?"]
    response = post(
        erin, "step_move", analysis.pk, step.pk, data={"version": fresh(analysis).version, "direction": "down"}
    )
    assert questions(analysis) == ["Why does the handler raise?", "Why is an enum logged?", "Why 1011?"]
    assert b"autofocus" in response.content  # the keyboard stays on the moved step's button
    post(erin, "step_move", analysis.pk, step.pk, data={"version": fresh(analysis).version, "direction": "down"})
    assert questions(analysis)[-1] == "Why 1011?"  # already last: nothing moves

    post(
        erin,
        "step_edit",
        analysis.pk,
        step.pk,
        data={"version": fresh(analysis).version, "question": "Why 1011, really?", "answer": "A crash"},
    )
    assert WhyStep.objects.get(pk=step.pk).question == "Why 1011, really?"
    post(erin, "step_delete", analysis.pk, step.pk, data={"version": fresh(analysis).version})
    assert questions(analysis) == ["Why does the handler raise?", "Why is an enum logged?"]
    assert list(WhyStep.objects.filter(analysis=analysis).order_by("position").values_list("position", flat=True)) == [
        0,
        1,
    ]

    post(erin, "analysis_edit", analysis.pk, data={
        "version": fresh(analysis).version, "root_cause": "Enum in a log line", "error_behind_error": "Six helpers",
        "status": "confirmed",
    })  # fmt: skip
    analysis = fresh(analysis)
    assert (analysis.root_cause, analysis.error_behind_error, analysis.status) == (
        "Enum in a log line",
        "Six helpers",
        "confirmed",
    )
    signature.refresh_from_db()
    assert signature.status == FailureSignature.Status.ROOT_CAUSED  # the lifecycle's hand-off from people


def test_every_edit_is_kept_with_who_when_and_a_snapshot(erin, signature) -> None:
    post(erin, "analysis_create", signature.pk, data={"problem": "P"})
    analysis = signature.analyses.get()
    post(erin, "step_add", analysis.pk, data={"version": fresh(analysis).version, "question": "Q1", "answer": "A1"})
    post(erin, "analysis_edit", analysis.pk, data={"version": fresh(analysis).version, "root_cause": "R"})
    edits = list(AnalysisEdit.objects.filter(analysis=analysis).order_by("at", "id"))
    assert [e.action for e in edits] == ["created", "added why 1", "edited root cause"]
    assert {e.user.username for e in edits} == {"erin"}
    assert edits[-1].snapshot["root_cause"] == "R"
    assert edits[-1].snapshot["steps"] == [{"id": analysis.steps.get().pk, "question": "Q1", "answer": "A1"}]
    assert edits[1].snapshot["root_cause"] == ""  # each snapshot is the analysis as it was then
    page = erin.get(reverse("signature_detail", args=[signature.pk])).content.decode()
    assert "History (3 edits)" in page and "added why 1" in page


def test_a_stale_edit_is_refused_with_409_and_the_newer_text(erin, signature) -> None:
    analysis = triage.create_analysis(signature, None, "The problem")
    seen = fresh(analysis).version  # both engineers opened the page at this version
    triage.update_analysis(fresh(analysis), {"version": seen, "root_cause": "Someone else's root cause"}, None)

    response = post(erin, "analysis_edit", analysis.pk, data={"version": seen, "root_cause": "My root cause"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "Not saved: someone else changed this analysis first." in html
    assert "Someone else&#x27;s root cause" in html  # the newer text
    assert "My root cause" in html  # the refused edit, kept for the user to copy
    assert f'value="{fresh(analysis).version}"' in html  # the forms now carry the current version
    assert fresh(analysis).root_cause == "Someone else's root cause"  # nothing overwritten


@pytest.mark.parametrize(
    "name, extra",
    [
        ("step_add", {"question": "Why?", "answer": "x"}),
        ("fix_add", {"sha": "abcdef1234", "message": "fix"}),
    ],
)
def test_stale_step_and_fix_edits_are_refused_too(erin, signature, name: str, extra: dict) -> None:
    analysis = triage.create_analysis(signature, None, "P")
    stale = fresh(analysis).version
    triage.update_analysis(fresh(analysis), {"version": stale, "problem": "P2"}, None)
    response = post(erin, name, analysis.pk, data={"version": stale, **extra})
    assert response.status_code == 409
    assert not analysis.steps.exists() and not analysis.fixes.exists()


def test_moving_or_deleting_a_step_someone_deleted_is_a_conflict_not_an_error(erin, signature) -> None:
    analysis = triage.create_analysis(signature, None, "P")
    step = triage.add_step(fresh(analysis), {"version": fresh(analysis).version, "question": "Q"}, None)
    stale = fresh(analysis).version
    triage.delete_step(fresh(analysis), step.pk, {"version": stale}, None)
    for name, data in (("step_move", {"direction": "up"}), ("step_delete", {}), ("step_edit", {"question": "Q2"})):
        response = post(erin, name, analysis.pk, step.pk, data={"version": stale, **data})
        assert response.status_code == 409, name
        response = post(erin, name, analysis.pk, step.pk, data={"version": fresh(analysis).version, **data})
        assert response.status_code == 409, name  # current version, but the step is gone


def test_a_plain_form_post_redirects_back_and_a_stale_one_shows_the_page_with_409(erin, signature) -> None:
    analysis = triage.create_analysis(signature, None, "P")
    response = post(
        erin, "step_add", analysis.pk, data={"version": fresh(analysis).version, "question": "Q"}, htmx=False
    )
    assert response.status_code == 302
    assert response["Location"] == f"/signatures/{signature.pk}/#analysis-{analysis.pk}"
    response = post(erin, "step_add", analysis.pk, data={"version": 1, "question": "Q"}, htmx=False)
    assert response.status_code == 409
    assert "<html" in response.content.decode() and "Not saved" in response.content.decode()


def test_nonsense_is_422_with_the_form(erin, signature) -> None:
    analysis = triage.create_analysis(signature, None, "P")
    v = fresh(analysis).version
    assert post(erin, "step_add", analysis.pk, data={"version": v, "question": "  "}).status_code == 422
    assert post(erin, "analysis_edit", analysis.pk, data={"version": v, "status": "maybe"}).status_code == 422
    assert post(erin, "fix_add", analysis.pk, data={"version": v, "sha": "not-a-sha"}).status_code == 422
    assert (
        post(
            erin, "fix_add", analysis.pk, data={"version": v, "sha": "abcdef12", "url": "javascript:alert(1)"}
        ).status_code
        == 422
    )
    assert post(erin, "step_move", analysis.pk, 999, data={"version": v, "direction": "sideways"}).status_code == 422
    assert post(erin, "analysis_edit", analysis.pk, data={"root_cause": "no version"}).status_code == 422
    assert fresh(analysis).version == v


def test_several_analyses_a_refuted_one_stays_visible_greyed(erin, signature) -> None:
    first = triage.create_analysis(signature, None, "Redis race")
    triage.update_analysis(fresh(first), {"version": fresh(first).version, "status": "refuted"}, None)
    triage.create_analysis(signature, None, "Enum in the pipeline logging")
    html = erin.get(reverse("signature_detail", args=[signature.pk])).content.decode()
    assert f'<article class="analysis refuted" id="analysis-{first.pk}"' in html
    assert "Redis race" in html and "Enum in the pipeline logging" in html


def test_the_edit_forms_open_in_place(erin, signature) -> None:
    analysis = triage.create_analysis(signature, None, "P")
    step = triage.add_step(fresh(analysis), {"version": fresh(analysis).version, "question": "Q"}, None)
    url = reverse("signature_detail", args=[signature.pk])
    html = erin.get(
        url, {"partial": "analysis", "analysis": analysis.pk, "edit": analysis.pk}, headers=HX
    ).content.decode()
    assert 'name="root_cause"' in html and "<html" not in html
    html = erin.get(
        url, {"partial": "analysis", "analysis": analysis.pk, "edit": f"0-{step.pk}"}, headers=HX
    ).content.decode()
    assert f'action="/analyses/{analysis.pk}/steps/{step.pk}/"' in html and 'name="root_cause"' not in html
    # Each part opens alone, so an open form elsewhere in the analysis keeps what is typed in it.
    html = erin.get(
        url, {"partial": "fields", "analysis": analysis.pk, "edit": analysis.pk}, headers=HX
    ).content.decode()
    assert html.lstrip().startswith(f'<div class="analysis-fields" id="analysis-fields-{analysis.pk}"')
    assert 'name="root_cause"' in html and "whys-block" not in html
    html = erin.get(
        url, {"partial": "whys", "analysis": analysis.pk, "edit": f"0-{step.pk}"}, headers=HX
    ).content.decode()
    assert html.lstrip().startswith(f'<div class="whys-block" id="whys-{analysis.pk}"')
    assert f'action="/analyses/{analysis.pk}/steps/{step.pk}/"' in html and 'name="root_cause"' not in html
    html = erin.get(url, {"partial": "header", "edit": "title"}, headers=HX).content.decode()
    assert 'id="title-input"' in html and html.lstrip().startswith(
        '<div class="page-head sig-head" id="signature-header">'
    )


def test_a_viewer_sees_the_analysis_without_a_single_control(client, viewer, signature) -> None:
    analysis = triage.create_analysis(signature, None, "P")
    triage.add_step(fresh(analysis), {"version": fresh(analysis).version, "question": "Q"}, None)
    client.force_login(viewer)
    html = client.get(reverse("signature_detail", args=[signature.pk])).content.decode()
    assert "Why 1" in html
    for control in ("<form", "<textarea", "<select", "Edit title", "Add why", "Merge into it", "Attach a fix"):
        assert control not in html.split('<main class="page" id="main">', 1)[1], control
