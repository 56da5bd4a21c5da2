"""Operating from the pages, the API and the CLI: who may, what gets queued, and the live partials.

No worker here: the rows a request queues are checked, and the task it would send is seen through
``django_capture_on_commit_callbacks`` (STYLE.md: see what a view enqueues).
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sessions.ingest.records import Outcome, ParsedResult
from sessions.models import Deployment, Environment, LoopSession, TestCase, TestRun, WorkStatus
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.writer import ResultWriter
from sessions.services.run_completion import complete_run
from sessions.services.tokens import issue_token
from sessions.work import queueing

HX = {"HX-Request": "true"}


@pytest.fixture
def session(db) -> LoopSession:
    env = Environment.objects.create(
        name="staging",
        working_dir="examples/staging",
        deploy_command=["{python}", "deploy.py", "--revision", "{revision}"],
        test_command=["{python}", "-m", "pytest", "tests"],
        revisions=[
            {"revision": "r1", "commit": "2cb57056afa89779fd29e0e3f3682a1694f21d8d", "message": "first"},
            {"revision": "r2", "commit": "44aee3cf06e34e746f52cb1ccf5caf5a778752a5", "message": "second"},
        ],
        default_revision="r1",
    )
    return LoopSession.objects.create(environment=env, title="Golden path", slug="golden")


def finished_run(session: LoopSession, outcomes: dict[str, str]) -> TestRun:
    """A finished run with the given results, stored by the same writer the workers use."""
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
    )  # fmt: skip
    writer = ResultWriter(run)
    writer.add(
        ParsedResult(
            nodeid=f"tests/test_e2e.py::{name}", name=name, outcome=Outcome(outcome), duration=1.5,
            message="boom" if outcome in ("failed", "error") else "", error_type="AssertionError",
        )
        for name, outcome in outcomes.items()
    )  # fmt: skip
    return complete_run(run, writer=writer, status=WorkStatus.FINISHED)


@pytest.fixture
def run(session: LoopSession) -> TestRun:
    return finished_run(
        session, {"test_login": "passed", "test_chat": "failed", "test_stream": "error", "test_later": "skipped"}
    )


def action_urls(session: LoopSession, run: TestRun, deployment: Deployment) -> list[str]:
    return [
        f"/sessions/{session.slug}/deploy/",
        f"/sessions/{session.slug}/run-tests/",
        f"/sessions/{session.slug}/run-cycle/",
        f"/runs/{run.pk}/rerun/",
        f"/runs/{run.pk}/cancel/",
        f"/deployments/{deployment.pk}/cancel/",
    ]


@pytest.fixture
def deployment(session: LoopSession) -> Deployment:
    return Deployment.objects.create(environment=session.environment, revision="r1", status=WorkStatus.QUEUED)


# -- who may ---------------------------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_log_in(client, session, run, deployment) -> None:
    for url in [*action_urls(session, run, deployment), f"/runs/{run.pk}/progress/", f"/runs/{run.pk}/log/"]:
        response = client.post(url) if not url.endswith(("progress/", "log/")) else client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert Deployment.objects.count() == 1 and TestRun.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "engineer"])
def test_viewers_and_engineers_get_403_on_every_action(client, request, role, session, run, deployment) -> None:
    client.force_login(request.getfixturevalue(role))
    for url in action_urls(session, run, deployment):
        assert client.post(url, {"revision": "r2", "scope": "failed"}).status_code == 403, url
    assert Deployment.objects.count() == 1 and TestRun.objects.count() == 1
    assert Deployment.objects.get().status == WorkStatus.QUEUED


@pytest.mark.parametrize("role", ["viewer", "engineer"])
def test_only_operators_see_the_buttons(client, request, role, operator, session, run) -> None:
    client.force_login(request.getfixturevalue(role))
    page = client.get(f"/sessions/{session.slug}/").content.decode()
    assert "Run cycle" not in page and "operate-controls" not in page
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Rerun failed" not in page and "Rerun this test" not in page

    client.force_login(operator)
    page = client.get(f"/sessions/{session.slug}/").content.decode()
    assert 'id="operate-run-cycle"' in page and 'id="operate-deploy"' in page and 'id="operate-run-tests"' in page
    assert '<option value="r2" selected>' in page and '<option value="r1">' in page  # the newest first
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Rerun failed (2)" in page and "Rerun all" in page
    assert page.count("Rerun this test") == 2  # the failed and the errored result


# -- operators queue work -------------------------------------------------------------------------------------------


def test_deploy_queues_a_deployment_in_a_new_cycle(
    client, operator, session, django_capture_on_commit_callbacks
) -> None:
    client.force_login(operator)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r2"})
    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response["Location"] == deployment.get_absolute_url()
    assert deployment.status == WorkStatus.QUEUED and deployment.revision == "r2"
    assert deployment.commit_sha == "44aee3cf06e34e746f52cb1ccf5caf5a778752a5"
    assert deployment.triggered_by == operator and deployment.cycle.number == 1
    assert len(callbacks) == 1  # tasks.deploy.delay_on_commit


def test_a_second_deploy_is_refused_while_one_is_live(client, operator, session, deployment) -> None:
    client.force_login(operator)
    response = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r2"})
    assert response.status_code == 409
    assert f"deployment {deployment.pk} of r1 is already queued" in response.content.decode()
    # With htmx the refusal is swapped into the controls (200, so that htmx swaps it).
    response = client.post(f"/sessions/{session.slug}/run-cycle/", {"revision": "r2"}, headers=HX)
    assert response.status_code == 200 and 'data-status="409"' in response.content.decode()
    assert Deployment.objects.count() == 1 and not TestRun.objects.exists()


def test_an_unknown_revision_is_refused(client, operator, session) -> None:
    client.force_login(operator)
    response = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r9"})
    assert response.status_code == 400 and "unknown revision &#x27;r9&#x27;" in response.content.decode()


def test_run_cycle_queues_a_deploy_and_a_run_that_waits_for_it(
    client, operator, session, django_capture_on_commit_callbacks
) -> None:
    client.force_login(operator)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"/sessions/{session.slug}/run-cycle/", {"revision": "r2"}, headers=HX)
    run = TestRun.objects.get()
    assert response.status_code == 200 and response["HX-Redirect"] == run.get_absolute_url()
    assert run.deployment.revision == "r2" and run.cycle == run.deployment.cycle
    assert run.status == WorkStatus.QUEUED and run.source == TestRun.Source.UI and run.label == "full suite on r2"
    assert len(callbacks) == 1  # one chain: deploy, then run_tests

    progress = client.get(f"/runs/{run.pk}/progress/", headers=HX)
    assert progress.status_code == 200
    assert f"deployment {run.deployment_id}" in progress.content.decode()


def test_run_tests_joins_the_latest_cycle(client, operator, session, run) -> None:
    client.force_login(operator)
    response = client.post(f"/sessions/{session.slug}/run-tests/")
    new = TestRun.objects.latest("pk")
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.cycle == run.cycle and new.scope == TestRun.Scope.ALL and new.status == WorkStatus.QUEUED


def test_rerun_failed_selects_the_failed_and_errored_tests(client, operator, run) -> None:
    client.force_login(operator)
    client.post(f"/runs/{run.pk}/rerun/", {"scope": "failed"})
    rerun = TestRun.objects.latest("pk")
    assert rerun.rerun_of == run and rerun.scope == TestRun.Scope.FAILED
    names = set(TestCase.objects.filter(pk__in=rerun.selection).values_list("name", flat=True))
    assert names == {"test_chat", "test_stream"}


def test_rerun_this_test_takes_a_stored_case_id(client, operator, session, run) -> None:
    client.force_login(operator)
    chat = TestCase.objects.get(name="test_chat")
    client.post(f"/runs/{run.pk}/rerun/", {"scope": "selected", "tests": [chat.pk]})
    rerun = TestRun.objects.latest("pk")
    assert rerun.scope == TestRun.Scope.SELECTED and rerun.selection == [chat.pk]

    other = finished_run(session, {"test_elsewhere": "failed"})
    stranger = TestCase.objects.get(name="test_elsewhere")
    response = client.post(f"/runs/{run.pk}/rerun/", {"scope": "selected", "tests": [stranger.pk]})
    assert response.status_code == 400 and f"not in run {run.pk}" in response.content.decode()
    response = client.post(f"/runs/{other.pk}/rerun/", {"scope": "selected", "tests": ["1; rm -rf /"]})
    assert response.status_code == 400


def test_rerun_failed_of_a_green_run_is_refused(client, operator, session) -> None:
    client.force_login(operator)
    green = finished_run(session, {"test_ok": "passed"})
    response = client.post(f"/runs/{green.pk}/rerun/", {"scope": "failed"})
    assert response.status_code == 400 and "no failed or errored test" in response.content.decode()


def test_cancelling_a_queued_run_ends_it_at_once(client, operator, session) -> None:
    client.force_login(operator)
    queued = queueing.request_tests(session)
    response = client.post(f"/runs/{queued.pk}/cancel/")
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.status == WorkStatus.CANCELLED and queued.summary_written and queued.incomplete
    assert "cancelled by otto" in queued.log_tail
    assert client.post(f"/runs/{queued.pk}/cancel/").status_code == 409


def test_cancelling_a_running_run_asks_its_worker(client, operator, session) -> None:
    client.force_login(operator)
    running = queueing.request_tests(session)
    TestRun.objects.filter(pk=running.pk).update(status=WorkStatus.RUNNING, heartbeat_at=timezone.now())
    client.post(f"/runs/{running.pk}/cancel/")
    running.refresh_from_db()
    # The worker's next heartbeat (a compare-and-set on status=running) finds no row and kills the group.
    assert running.status == WorkStatus.CANCELLED and not running.summary_written


def test_cancelling_a_queued_deployment_cancels_the_run_waiting_for_it(client, operator, session) -> None:
    client.force_login(operator)
    deployment, run = queueing.request_cycle(session)
    client.post(f"/deployments/{deployment.pk}/cancel/")
    deployment.refresh_from_db()
    run.refresh_from_db()
    assert deployment.status == WorkStatus.CANCELLED and deployment.finished_at
    assert (
        run.status == WorkStatus.CANCELLED and f"deployment {deployment.pk} of r2 ended cancelled" in run.log_tail
    )  # the newest


# -- live partials and logs -----------------------------------------------------------------------------------------


def test_the_progress_partial_polls_while_the_run_is_live(client, viewer, session) -> None:
    client.force_login(viewer)
    live = queueing.request_tests(session)
    TestRun.objects.filter(pk=live.pk).update(
        status=WorkStatus.RUNNING, started_at=timezone.now() - timezone.timedelta(seconds=30),
        total=40, passed=37, failed=2, errors=1, tests_duration_s=20.0,
        current_test="tests/test_e2e.py::test_chat", properties={"eta": {"expected_tests": 100, "expected_s": 50.0}},
        live_figures={"rate": 2.0},  # tests a second lately, measured by the worker (services/live_figures.py)
    )  # fmt: skip
    response = client.get(f"/runs/{live.pk}/progress/", headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in html and f'hx-get="/runs/{live.pk}/progress/"' in html
    assert 'id="progress-total">40<' in html and "of ~100 tests" in html and "40%" in html
    assert "tests/test_e2e.py::test_chat" in html and "about 30 s left" in html  # 60 tests left at 2 a second


def test_it_stops_polling_when_the_run_finished(client, viewer, run) -> None:
    client.force_login(viewer)
    response = client.get(f"/runs/{run.pk}/progress/", headers=HX)
    assert response.status_code == 286 and response["HX-Refresh"] == "true"
    assert "hx-trigger" not in response.content.decode()
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "every 2s" not in page  # an ended run's page does not poll at all


def test_a_cancelled_run_polls_until_its_summary_is_written(client, viewer, session) -> None:
    client.force_login(viewer)
    stopping = queueing.request_tests(session)
    TestRun.objects.filter(pk=stopping.pk).update(status=WorkStatus.CANCELLED)
    assert client.get(f"/runs/{stopping.pk}/progress/", headers=HX).status_code == 200


def test_the_whole_run_log_is_downloadable(client, viewer, session, run) -> None:
    client.force_login(viewer)
    assert client.get(f"/runs/{run.pk}/log/").status_code == 404  # no log yet
    folder = Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "output.log").write_text("collected 4 items\n" * 1000)
    TestRun.objects.filter(pk=run.pk).update(log_path=str(folder / "output.log"))
    response = client.get(f"/runs/{run.pk}/log/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert b"".join(response.streaming_content).count(b"collected 4 items") == 1000
    TestRun.objects.filter(pk=run.pk).update(log_path="/etc/passwd")
    assert client.get(f"/runs/{run.pk}/log/").status_code == 404  # only files under MEDIA_ROOT


def test_the_deployment_log_partial_polls_then_stops(client, viewer, deployment) -> None:
    client.force_login(viewer)
    Deployment.objects.filter(pk=deployment.pk).update(status=WorkStatus.RUNNING, log_tail="[deploy] starting")
    response = client.get(f"/deployments/{deployment.pk}/log/", headers=HX)
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in response.content.decode()
    assert "[deploy] starting" in response.content.decode()
    assert 'id="operate-deployment-cancel"' not in response.content.decode()  # a viewer cannot cancel

    folder = Path(settings.MEDIA_ROOT) / "deployments" / str(deployment.pk)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "output.log").write_text("[deploy] healthy\ndeployed revision=r1\n")
    Deployment.objects.filter(pk=deployment.pk).update(status=WorkStatus.SUCCEEDED, log_path=str(folder / "output.log"))
    response = client.get(f"/deployments/{deployment.pk}/log/", headers=HX)
    assert response.status_code == 286 and response["HX-Refresh"] == "true"
    whole = client.get(f"/deployments/{deployment.pk}/log/")
    assert b"deployed revision=r1" in b"".join(whole.streaming_content)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="deployment-live"' in page and "every 2s" not in page


# -- the API and the CLI -------------------------------------------------------------------------------------------------


def api(client, user, slug: str, payload: object):
    return client.post(
        f"/api/v1/sessions/{slug}/trigger",
        data=json.dumps(payload),
        content_type="application/json",
        headers={"Authorization": f"Bearer {issue_token(user)}"},
    )


def test_the_api_triggers_a_cycle(client, operator, session) -> None:
    response = api(client, operator, session.slug, {"action": "cycle", "revision": "r2"})
    assert response.status_code == 202
    body = response.json()
    run = TestRun.objects.get(pk=body["run"])
    assert body == {"deployment": run.deployment_id, "run": run.pk}
    assert run.source == TestRun.Source.API and run.triggered_by == operator


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"action": "launch"}, 400, "action must be one of"),
        ({"action": "tests", "scope": "failed"}, 400, "needs rerun"),
        ({"action": "tests", "rerun": 999999}, 404, "no run 999999"),
        ({"action": "tests", "rerun": "x"}, 400, "run id"),
        ({"action": "deploy", "revision": "r9"}, 400, "unknown revision"),
        ({"action": "deploy", "scope": "failed"}, 400, "apply to action 'tests'"),
        ({"action": "tests", "shell": "rm -rf /"}, 400, "unknown field"),
        ({"action": "tests", "rerun": "RUN", "scope": "selected", "tests": "1,2"}, 400, "list of test case ids"),
    ],
)
def test_the_api_refuses_bad_requests_with_a_reason(client, operator, session, run, payload, status, message) -> None:
    payload = {k: (run.pk if v == "RUN" else v) for k, v in payload.items()}
    response = api(client, operator, session.slug, payload)
    assert response.status_code == status and message in response.json()["error"], response.json()


def test_the_api_answers_404_for_an_unknown_session_and_403_for_a_viewer(client, operator, viewer, session) -> None:
    assert api(client, operator, "nope", {"action": "tests"}).status_code == 404
    assert api(client, viewer, session.slug, {"action": "tests"}).status_code == 403


def test_the_api_answers_409_while_a_deploy_is_live(client, operator, session, deployment) -> None:
    response = api(client, operator, session.slug, {"action": "deploy"})
    assert response.status_code == 409 and "one deploy at a time" in response.json()["error"]


def test_the_api_does_not_rerun_a_run_of_another_session(client, operator, session, run) -> None:
    other = LoopSession.objects.create(environment=session.environment, title="Other", slug="other")
    response = api(client, operator, other.slug, {"action": "tests", "rerun": run.pk, "scope": "failed"})
    assert response.status_code == 404


def test_the_cli_prints_what_it_queued(session, run) -> None:
    out = StringIO()
    call_command("trigger", "cycle", "--session", session.slug, "--revision", "r2", stdout=out)
    deployment = Deployment.objects.get()
    new = TestRun.objects.latest("pk")
    assert out.getvalue().splitlines() == [f"deployment {deployment.pk}", f"run {new.pk}"]
    assert new.source == TestRun.Source.CLI
    with pytest.raises(CommandError, match="already queued"):
        call_command("trigger", "deploy", "--session", session.slug, stdout=StringIO())
    out = StringIO()
    call_command("trigger", "tests", "--session", session.slug, "--rerun", str(run.pk), "--scope", "failed", stdout=out)
    assert out.getvalue() == f"run {TestRun.objects.latest('pk').pk}\n"
    with pytest.raises(CommandError, match="no session 'missing'"):
        call_command("trigger", "tests", "--session", "missing", stdout=StringIO())


# -- revisions: the newest by default, a rollback only when asked for --------------------------------------------


def test_a_deploy_without_a_revision_takes_the_newest_and_a_rollback_must_be_asked_for(
    client, operator, session
) -> None:
    deployment = queueing.request_deploy(session)
    assert deployment.revision == "r2"  # the last listed, not the environment's first
    Deployment.objects.filter(pk=deployment.pk).update(status=WorkStatus.SUCCEEDED, finished_at=timezone.now())
    client.force_login(operator)
    response = client.post(
        f"/api/v1/sessions/{session.slug}/trigger",
        {"action": "deploy", "revision": "r1"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {issue_token(operator)}"},
    )
    assert response.status_code == 409 and "rollback" in response.json()["error"]
    with pytest.raises(CommandError, match="rollback"):
        call_command("trigger", "deploy", "--session", session.slug, "--revision", "r1", stdout=StringIO())
    out = StringIO()
    call_command("trigger", "deploy", "--session", session.slug, "--revision", "r1", "--rollback", stdout=out)
    assert Deployment.objects.get(pk=int(out.getvalue().split()[1])).revision == "r1"


def test_the_deploy_form_shows_what_is_deployed_and_a_rollback_needs_the_box_ticked(client, operator, session) -> None:
    Deployment.objects.create(
        environment=session.environment, revision="r2", status=WorkStatus.SUCCEEDED, finished_at=timezone.now()
    )
    client.force_login(operator)
    html = client.get(session.get_absolute_url()).content.decode()
    assert '<option value="r2" selected>r2 · second · deployed now</option>' in html
    assert 'name="rollback"' in html
    refused = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r1"})
    assert refused.status_code == 409 and "rollback" in refused.content.decode()
    done = client.post(f"/sessions/{session.slug}/deploy/", {"revision": "r1", "rollback": "1"})
    assert done.status_code == 302 and Deployment.objects.filter(revision="r1", status=WorkStatus.QUEUED).exists()
