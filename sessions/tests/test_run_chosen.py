"""Run what you mean: tests chosen on a list, the P1 tests and a signature's tests, from every place.

Server side (no worker): the request side's checks for tests chosen by hand, the API's ``"p1"``,
``"signature"`` and ``"tests"`` without a rerun, the CLI's ``--p1``, ``--signature`` and ``--tests``,
and the multi-select controls on the run page, the session page's flaky list and the signature page's
list of tests (operators only). The browser test in ``test_browser_live_run.py`` ticks tests on a real
run page and sees a real worker run only those.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions.models import Environment, FailureSignature, LoopSession, TestCase, TestResult, TestRun
from sessions.tests.test_operate_views import HX, api, finished_run
from sessions.tests.test_run_subsets import add_cases, execution_of, session  # noqa: F401 - the fixture
from sessions.work import queueing
from sessions.work.errors import Refused


def case_ids(run: TestRun, *names: str) -> list[int]:
    ids = dict(TestResult.objects.filter(run=run).values_list("case__name", "case_id"))
    return [ids[name] for name in names]


# -- the request side ------------------------------------------------------------------------------------------------


def test_chosen_tests_run_as_a_selection_of_stored_ids(session) -> None:  # noqa: F811
    cases = add_cases(session.environment, {"test_login": "P1", "test_chat": "", "test_theme": ""})
    chosen = [cases["test_chat"].pk, str(cases["test_login"].pk), cases["test_chat"].pk]
    run = queueing.request_tests(session, subset="tests", case_ids=chosen)
    assert run.scope == TestRun.Scope.SELECTED and run.rerun_of is None
    assert run.selection == [cases["test_chat"].pk, cases["test_login"].pk]  # in order, once each
    assert run.label == "2 chosen tests on r7" and run.properties == {"subset": "tests"}
    execution = execution_of(run)
    args = execution.command({})
    assert "tests/test_e2e.py::test_chat" not in " ".join(args)  # node ids go through a file, never argv
    assert json.loads((execution.folder / "selection.json").read_text()) == [
        "tests/test_e2e.py::test_chat",
        "tests/test_e2e.py::test_login",
    ]


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ([], "tests: choose at least one test"),
        (["1; rm -rf /"], "tests: test ids must be whole numbers"),
        (["-1"], "tests: test ids must be whole numbers"),
        ([True], "tests: test ids must be whole numbers"),
        ([987654321], "tests: test ids not in environment staging: 987654321"),
    ],
)
def test_chosen_tests_are_refused_naming_the_field(session, chosen, message) -> None:  # noqa: F811
    with pytest.raises(Refused, match=message) as refused:
        queueing.request_tests(session, subset="tests", case_ids=chosen)
    assert refused.value.status == 400 and not TestRun.objects.exists()


def test_tests_of_another_environment_cannot_be_chosen(session) -> None:  # noqa: F811
    other = Environment.objects.create(name="other", test_command=["true"])
    stranger = add_cases(other, {"test_elsewhere": ""})["test_elsewhere"]
    with pytest.raises(Refused, match=f"not in environment staging: {stranger.pk}"):
        queueing.request_tests(session, subset="tests", case_ids=[stranger.pk])


# -- the API and the CLI ---------------------------------------------------------------------------------------------


def test_the_api_runs_the_p1_tests_a_signatures_tests_and_chosen_tests(client, operator, session) -> None:  # noqa: F811
    latest = finished_run(session, {"test_chat": "failed", "test_login": "passed"})
    TestCase.objects.filter(name="test_login").update(priority="P1")
    signature = FailureSignature.objects.get()

    response = api(client, operator, session.slug, {"action": "tests", "p1": True})
    assert response.status_code == 202
    p1 = TestRun.objects.get(pk=response.json()["run"])
    assert p1.label == "P1 on r7" and p1.selection == case_ids(latest, "test_login") and p1.source == "api"

    response = api(client, operator, session.slug, {"action": "tests", "signature": signature.pk})
    assert response.status_code == 202
    by_signature = TestRun.objects.get(pk=response.json()["run"])
    assert by_signature.selection == case_ids(latest, "test_chat")
    assert by_signature.label == f"tests of signature #{signature.pk} on r7"

    chosen = case_ids(latest, "test_login", "test_chat")
    response = api(client, operator, session.slug, {"action": "tests", "tests": chosen})
    assert response.status_code == 202
    run = TestRun.objects.get(pk=response.json()["run"])
    assert run.selection == chosen and run.label == "2 chosen tests on r7" and run.rerun_of is None

    # "p1": false asks for nothing more than the whole suite
    response = api(client, operator, session.slug, {"action": "tests", "p1": False})
    assert TestRun.objects.get(pk=response.json()["run"]).label == "full suite on r7"


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"action": "tests", "p1": "yes"}, 400, "p1 must be true or false"),
        ({"action": "tests", "p1": True, "signature": 1}, 400, "choose one subset: p1, signature"),
        ({"action": "tests", "p1": True, "marker": "p1"}, 400, "choose one subset"),
        ({"action": "tests", "signature": 1, "scope": "failed"}, 400, "choose one subset"),
        ({"action": "tests", "signature": [1]}, 400, "signature must be a signature id"),
        ({"action": "tests", "signature": 987654}, 404, "no signature 987654"),
        ({"action": "tests", "tests": []}, 400, "tests: choose at least one test"),
        ({"action": "tests", "tests": ["x"]}, 400, "tests: test ids must be whole numbers"),
        ({"action": "tests", "tests": 5}, 400, "tests must be a list"),
        ({"action": "deploy", "p1": True}, 400, "apply to action 'tests'"),
        ({"action": "cycle", "signature": 3}, 400, "apply to action 'tests'"),
    ],
)
def test_the_api_refuses_a_bad_subset_by_ids(client, operator, session, payload, status, message) -> None:  # noqa: F811
    response = api(client, operator, session.slug, payload)
    assert response.status_code == status and message in response.json()["error"]
    assert not TestRun.objects.exists()


def test_viewers_cannot_trigger_a_subset_over_the_api(client, viewer, session) -> None:  # noqa: F811
    assert api(client, viewer, session.slug, {"action": "tests", "p1": True}).status_code == 403


def test_the_openapi_description_lists_the_subsets_by_ids(client, viewer) -> None:
    client.force_login(viewer)
    variants = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["Trigger"]["oneOf"]
    required = [tuple(v.get("required", [])) for v in variants]
    assert ("action", "p1") in required and ("action", "signature") in required and ("action", "tests") in required


def test_the_cli_runs_the_p1_tests_a_signatures_tests_and_chosen_tests(session) -> None:  # noqa: F811
    latest = finished_run(session, {"test_chat": "failed", "test_login": "passed"})
    TestCase.objects.filter(name="test_login").update(priority="P1")
    signature = FailureSignature.objects.get()
    out = StringIO()
    call_command("trigger", "tests", "--session", session.slug, "--p1", stdout=out)
    p1 = TestRun.objects.latest("pk")
    assert out.getvalue() == f"run {p1.pk}\n" and p1.label == "P1 on r7" and p1.source == "cli"
    call_command("trigger", "tests", "--session", session.slug, "--signature", str(signature.pk), stdout=StringIO())
    assert TestRun.objects.latest("pk").selection == case_ids(latest, "test_chat")
    chosen = case_ids(latest, "test_login")
    call_command("trigger", "tests", "--session", session.slug, "--tests", str(chosen[0]), stdout=StringIO())
    assert TestRun.objects.latest("pk").label == "1 chosen test on r7"
    with pytest.raises(CommandError, match="choose one subset"):
        call_command("trigger", "tests", "--session", session.slug, "--p1", "--signature", "1", stdout=StringIO())


# -- the pages -------------------------------------------------------------------------------------------------------


def test_the_run_page_offers_checkboxes_p1_and_signature_buttons_to_operators_only(
    client,
    operator,
    viewer,
    session,  # noqa: F811
) -> None:
    run = finished_run(session, {"test_chat": "failed", "test_login": "passed", "test_theme": "passed"})
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'class="chosen-box"' not in page and 'id="run-chosen"' not in page and "data-signature-run" not in page
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert page.count('class="chosen-box"') == 3 and 'id="run-chosen"' in page and 'form="run-chosen"' in page
    assert 'id="operate-run-p1"' in page and "data-signature-run" in page
    assert 'aria-label="Choose tests/test_e2e.py::test_chat"' in page  # a name for screen readers and the keyboard

    chosen = case_ids(run, "test_chat", "test_theme")
    response = client.post(f"/runs/{run.pk}/rerun/", {"scope": "selected", "tests": chosen}, headers=HX)
    rerun = TestRun.objects.latest("pk")
    assert response["HX-Redirect"] == rerun.get_absolute_url()
    assert (
        rerun.selection == chosen and rerun.rerun_of == run and rerun.label == f"rerun of {run.pk} selected (2 tests)"
    )

    signature = FailureSignature.objects.get()
    client.post(f"/sessions/{session.slug}/run-subset/", {"subset": "signature", "signature": signature.pk})
    assert TestRun.objects.latest("pk").label == f"tests of signature #{signature.pk} on r7"


def test_nothing_chosen_is_refused_in_place(client, operator, session) -> None:  # noqa: F811
    run = finished_run(session, {"test_chat": "failed"})
    client.force_login(operator)
    response = client.post(f"/runs/{run.pk}/rerun/", {"scope": "selected"}, headers=HX)
    assert response.status_code == 200 and "needs at least one test id" in response.content.decode()
    response = client.post(f"/sessions/{session.slug}/run-subset/", {"subset": "tests"}, headers=HX)
    assert "tests: choose at least one test" in response.content.decode()


def test_the_session_page_runs_a_signatures_tests_and_chosen_flaky_tests(client, operator, viewer, session) -> None:  # noqa: F811
    run = finished_run(session, {"test_chat": "failed", "test_login": "passed"})
    signature = FailureSignature.objects.get()
    chat = TestCase.objects.get(name="test_chat")
    TestCase.objects.filter(pk=chat.pk).update(flaky_at=run.finished_at, flaky_run=run, flip_rate=0.5, recent="PF")
    client.force_login(viewer)
    page = client.get(f"/sessions/{session.slug}/").content.decode()
    assert 'id="flaky-chosen"' not in page and 'id="operate-signature"' not in page
    client.force_login(operator)
    page = client.get(f"/sessions/{session.slug}/").content.decode()
    assert 'id="flaky-chosen"' in page and f'value="{chat.pk}" form="flaky-chosen"' in page
    assert f'<option value="{signature.pk}">' in page and 'id="operate-run-signature"' in page

    # The subset form posts every field; the button pressed says which subset, the others are ignored.
    post = {"marker": "", "signature": signature.pk, "subset": "signature"}
    client.post(f"/sessions/{session.slug}/run-subset/", post)
    assert TestRun.objects.latest("pk").label == f"tests of signature #{signature.pk} on r7"
    client.post(f"/sessions/{session.slug}/run-subset/", {"subset": "tests", "tests": [chat.pk]})
    chosen = TestRun.objects.latest("pk")
    assert chosen.selection == [chat.pk] and chosen.label == "1 chosen test on r7"


def test_the_signature_page_runs_tests_ticked_on_its_list(client, operator, session) -> None:  # noqa: F811
    run = finished_run(session, {"test_chat": "failed", "test_stream": "failed"})
    FailureSignature.objects.update()  # one signature: the same message and type
    signature = FailureSignature.objects.get()
    client.force_login(operator)
    page = client.get(f"/signatures/{signature.pk}/").content.decode()
    assert 'id="signature-chosen"' in page and page.count('form="signature-chosen"') == 2
    stream = case_ids(run, "test_stream")
    response = client.post(f"/signatures/{signature.pk}/run-tests/", {"subset": "tests", "tests": stream})
    chosen = TestRun.objects.latest("pk")
    assert response.status_code == 302 and chosen.selection == stream and chosen.session == session
    client.post(f"/signatures/{signature.pk}/run-tests/")  # the button without a list: all its tests
    assert len(TestRun.objects.latest("pk").selection) == 2


def test_another_sessions_signature_is_not_found_from_this_session(client, operator, session) -> None:  # noqa: F811
    other_env = Environment.objects.create(name="other", test_command=["true"])
    other = LoopSession.objects.create(environment=other_env, title="Other", slug="other")
    finished_run(other, {"test_chat": "failed"})
    client.force_login(operator)
    response = client.post(
        f"/sessions/{session.slug}/run-subset/", {"subset": "signature", "signature": FailureSignature.objects.get().pk}
    )
    assert response.status_code == 404 and not TestRun.objects.filter(session=session).exists()
