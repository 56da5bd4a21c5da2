"""Confirm a deployed fix by N reruns of its signature's tests (docs/TRIAGE.md, "Confirm a fix by reruns").

Without a worker: what a confirmation queues and refuses, and how it is judged, with the queued runs
ended the way a worker ends them (results stored by the same writer, then ``complete_run``), or by a
real cancel, or by a broker that really refuses. On a real worker at the end: a tiny suite whose
failing test is fixed (verified by two reruns) or is not (did not fix).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from sessions.ingest.records import Outcome, ParsedResult
from sessions.models import (
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    FixConfirmation,
    LoopSession,
    SignatureEvent,
    TestCase,
    TestRun,
    WebhookDelivery,
    WorkStatus,
)
from sessions.services import deletion, fix_confirmations, quarantine, triage
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.writer import ResultWriter
from sessions.services.run_completion import complete_run
from sessions.services.summary import write_summary
from sessions.tests.test_lost_work import broker_down  # noqa: F401 - the fixture
from sessions.tests.test_tasks_integration import ended_run, make_session, on_worker, wait_for, write_suite
from sessions.tests.worker import celery_worker  # noqa: F401 - the fixture
from sessions.work import cancel, queueing
from sessions.work.errors import Refused
from sessions.work.fix_confirmation import request_confirmation

SHA = "abc1234def5678"
HX = {"HX-Request": "true"}
Status = FixConfirmation.Status


def run_with(session: LoopSession, outcomes: dict[str, str], *, run: TestRun | None = None) -> TestRun:
    """End ``run`` (a new one if None) as a worker would: its results stored by the writer, then complete_run."""
    if run is None:
        run = TestRun.objects.create(
            session=session, cycle=resolve_cycle(session, None), environment=session.environment,
            status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
        )  # fmt: skip
    else:
        TestRun.objects.filter(pk=run.pk).update(status=WorkStatus.RUNNING, started_at=timezone.now())
        run.refresh_from_db()
    writer = ResultWriter(run)
    writer.add(
        ParsedResult(
            nodeid=f"tests/test_e2e.py::{name}", name=name, outcome=Outcome(outcome), duration=0.5,
            message="chat is down" if outcome in ("failed", "error") else "", error_type="AssertionError",
        )
        for name, outcome in outcomes.items()
    )  # fmt: skip
    return complete_run(run, writer=writer, status=WorkStatus.FINISHED)


@pytest.fixture
def world(db, engineer) -> dict:
    """A failing test_chat (its signature), then a deployment carrying the fix: the fix is deployed, unjudged."""
    env = Environment.objects.create(
        name="staging", working_dir="examples/staging", test_command=["{python}", "-m", "pytest", "tests"]
    )
    session = LoopSession.objects.create(environment=env, title="Golden path", slug="golden")
    failing = run_with(session, {"test_chat": "failed", "test_login": "passed"})
    signature = FailureSignature.objects.get()
    deployment = Deployment.objects.create(
        environment=env, cycle=resolve_cycle(session, None), revision="r7", commit_sha=SHA,
        status=WorkStatus.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip
    analysis = triage.create_analysis(signature, engineer, "chat drops")
    analysis.refresh_from_db()
    fix = triage.add_fix(analysis, {"version": analysis.version, "sha": SHA, "message": "fix: reconnect"}, engineer)
    fix.refresh_from_db()
    assert fix.status == Fix.Status.DEPLOYED and fix.deployment == deployment
    return {"session": session, "signature": signature, "fix": fix, "failing": failing, "deployment": deployment}


def confirm(world: dict, runs: object = 2, user: object = None) -> tuple[FixConfirmation, list[TestRun]]:
    confirmation = request_confirmation(world["signature"], world["fix"].pk, runs, user=user)
    queued = list(
        TestRun.objects.filter(fix_confirmation__confirmation=confirmation).order_by("fix_confirmation__number")
    )
    return confirmation, queued


def reloaded(world: dict) -> tuple[FixConfirmation, Fix, FailureSignature]:
    return (
        FixConfirmation.objects.get(),
        Fix.objects.get(pk=world["fix"].pk),
        FailureSignature.objects.get(pk=world["signature"].pk),
    )


# -- what a confirmation queues and refuses ------------------------------------------------------------------------------


def test_a_confirmation_queues_n_labelled_runs_of_the_signatures_tests_on_the_current_deployment(
    world, operator
) -> None:
    confirmation, runs = confirm(world, 3, operator)
    chat = TestCase.objects.get(name="test_chat").pk
    assert [r.label for r in runs] == [f"confirm fix abc1234: {n} of 3 on r7" for n in (1, 2, 3)]
    for run in runs:
        assert run.status == WorkStatus.QUEUED and run.scope == TestRun.Scope.SELECTED
        assert run.selection == [chat]  # the same set as "Run this signature's tests"
        assert run.deployment == world["deployment"] and run.session == world["session"]
        assert run.properties == {"subset": "signature", "signature": world["signature"].pk}
    assert confirmation.status == Status.RUNNING and confirmation.runs_requested == 3
    assert confirmation.requested_by == operator and confirmation.deployment == world["deployment"]


@pytest.mark.parametrize("runs", ["0", "11", "x", "2.5", "-1", True])
def test_the_number_of_reruns_is_one_to_ten(world, runs) -> None:
    with pytest.raises(Refused, match="runs must be a whole number from 1 to 10") as refused:
        confirm(world, runs)
    assert refused.value.status == 400 and not FixConfirmation.objects.exists()


def test_the_default_is_three_reruns(world) -> None:
    confirmation, runs = confirm(world, "")
    assert confirmation.runs_requested == 3 and len(runs) == 3


def test_only_a_deployed_fix_is_confirmed_and_one_confirmation_at_a_time(world) -> None:
    confirm(world, 1)
    with pytest.raises(Refused, match="is being confirmed already") as refused:
        confirm(world, 1)
    assert refused.value.status == 409
    Fix.objects.filter(pk=world["fix"].pk).update(status=Fix.Status.VERIFIED)
    FixConfirmation.objects.update(status=Status.VERIFIED)
    with pytest.raises(Refused, match="fix abc1234def56 is verified: only a deployed fix") as refused:
        confirm(world, 1)
    assert refused.value.status == 409 and FixConfirmation.objects.count() == 1


def test_a_fix_of_another_signature_is_not_found(world) -> None:
    other = FailureSignature.objects.create(environment=world["session"].environment, fingerprint="x" * 40)
    with pytest.raises(Refused, match="no fix") as refused:
        request_confirmation(other, world["fix"].pk, 1)
    assert refused.value.status == 404


# -- the verdict --------------------------------------------------------------------------------------------------------


def test_all_reruns_passing_verify_the_fix_with_the_runs_as_evidence(world) -> None:
    confirmation, runs = confirm(world, 2)
    run_with(world["session"], {"test_chat": "passed"}, run=runs[0])
    confirmation, fix, signature = reloaded(world)
    assert confirmation.status == Status.RUNNING and fix.status == Fix.Status.DEPLOYED  # waits for the last run
    run_with(world["session"], {"test_chat": "passed"}, run=runs[1])
    confirmation, fix, signature = reloaded(world)
    assert confirmation.status == Status.VERIFIED and confirmation.judged_at
    assert confirmation.verdict == "2 of 2 runs passed all 1 test"
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by_id == runs[1].pk
    assert signature.status == FailureSignature.Status.VERIFIED
    event = SignatureEvent.objects.filter(action="fix", detail__contains="verified by").get()
    assert (
        event.detail
        == f"fix abc1234def56 verified by confirmation {confirmation.pk} (2 reruns: runs {runs[0].pk}, {runs[1].pk})"
    )
    assert fix_confirmations.record_run(runs[1]) is None  # judged once: a second look changes nothing
    assert SignatureEvent.objects.filter(action="fix", detail__contains="verified by").count() == 1


def test_a_rerun_that_still_shows_the_signature_means_did_not_fix(world) -> None:
    confirmation, runs = confirm(world, 3)
    run_with(world["session"], {"test_chat": "passed"}, run=runs[0])
    run_with(world["session"], {"test_chat": "failed"}, run=runs[1])
    run_with(world["session"], {"test_chat": "passed"}, run=runs[2])
    confirmation, fix, signature = reloaded(world)
    assert confirmation.status == Status.DID_NOT_FIX and confirmation.verdict == f"run {runs[1].pk} still shows it"
    assert fix.status == Fix.Status.DID_NOT_FIX and fix.verified_by_id == runs[1].pk
    assert signature.status == FailureSignature.Status.INVESTIGATING
    assert SignatureEvent.objects.filter(detail__contains=f"did not fix: confirmation {confirmation.pk}").exists()


def test_a_cancelled_rerun_leaves_it_incomplete_and_the_fix_deployed(world) -> None:
    confirmation, runs = confirm(world, 2)
    run_with(world["session"], {"test_chat": "passed"}, run=runs[0])
    cancel.cancel_run(runs[1])  # queued: ended at once through complete_run
    confirmation, fix, signature = reloaded(world)
    assert confirmation.status == Status.INCOMPLETE and confirmation.verdict == f"run {runs[1].pk} ended cancelled"
    assert fix.status == Fix.Status.DEPLOYED and signature.status == FailureSignature.Status.FIX_DEPLOYED
    assert SignatureEvent.objects.filter(detail__contains="incomplete: run").exists()
    # A new confirmation may be asked for.
    assert confirm(world, 1)[0].status == Status.RUNNING


def test_a_confirmation_whose_live_run_was_deleted_does_not_block_the_fix(world) -> None:
    confirmation, runs = confirm(world, 2)
    run_with(world["session"], {"test_chat": "passed"}, run=runs[0])
    deletion.delete_runs(TestRun.objects.filter(pk=runs[1].pk))
    again, _runs = confirm(world, 1)
    confirmation.refresh_from_db()
    assert confirmation.status == Status.INCOMPLETE and confirmation.verdict == "1 of its 2 runs deleted"
    assert again.status == Status.RUNNING and Fix.objects.get(pk=world["fix"].pk).status == Fix.Status.DEPLOYED


def test_a_skipped_test_cannot_vouch_for_the_fix(world) -> None:
    confirmation, runs = confirm(world, 1)
    run_with(world["session"], {"test_chat": "skipped"}, run=runs[0])
    confirmation, fix, _signature = reloaded(world)
    assert confirmation.status == Status.INCOMPLETE and "not passed" in confirmation.verdict
    assert fix.status == Fix.Status.DEPLOYED


def test_a_quarantined_test_failing_for_another_reason_is_left_out(world, engineer) -> None:
    confirmation, runs = confirm(world, 1)
    chat = TestCase.objects.get(name="test_chat")
    quarantine.quarantine_case(chat, "flaky", (timezone.localdate() + timedelta(days=3)).isoformat(), engineer)
    run = runs[0]
    TestRun.objects.filter(pk=run.pk).update(status=WorkStatus.RUNNING, started_at=timezone.now())
    run.refresh_from_db()
    writer = ResultWriter(run)
    writer.add([
        ParsedResult(nodeid="tests/test_e2e.py::test_chat", name="test_chat", outcome=Outcome.ERROR, duration=0.1,
                     message="fixture exploded", error_type="RuntimeError"),
    ])  # fmt: skip
    complete_run(run, writer=writer, status=WorkStatus.FINISHED)
    confirmation, fix, _signature = reloaded(world)
    assert confirmation.status == Status.VERIFIED and fix.status == Fix.Status.VERIFIED


@pytest.mark.django_db(transaction=True)  # the tasks are sent on a real commit
@pytest.mark.usefixtures("broker_down")
def test_a_broker_that_refuses_ends_every_run_and_the_confirmation_incomplete(world, operator, client) -> None:
    client.force_login(operator)
    response = client.post(f"/signatures/{world['signature'].pk}/confirm-fix/", {"fix": world["fix"].pk, "runs": "3"})
    assert response.status_code == 503 and "could not be reached" in response.content.decode()
    runs = TestRun.objects.filter(fix_confirmation__isnull=False)
    assert runs.count() == 3 and set(runs.values_list("status", flat=True)) == {WorkStatus.ERROR}
    confirmation, fix, _signature = reloaded(world)
    assert confirmation.status == Status.INCOMPLETE and "ended error" in confirmation.verdict
    assert fix.status == Fix.Status.DEPLOYED


@pytest.mark.django_db(transaction=True)
def test_two_runs_ending_together_judge_once(world) -> None:
    confirmation, runs = confirm(world, 2)
    for run in runs:  # both summaries written, as two workers would, before either reaches the judging step
        TestRun.objects.filter(pk=run.pk).update(status=WorkStatus.RUNNING, started_at=timezone.now())
        run.refresh_from_db()
        writer = ResultWriter(run)
        writer.add([ParsedResult(nodeid="tests/test_e2e.py::test_chat", name="test_chat", outcome=Outcome.PASSED)])
        write_summary(run, writer, None, status=WorkStatus.FINISHED)
        TestRun.objects.filter(pk=run.pk).update(counted=True)
    barrier = threading.Barrier(2)
    judged: list[object] = []

    def step(run: TestRun) -> None:
        from django.db import connection

        try:
            barrier.wait()
            judged.append(fix_confirmations.record_run(run))
        finally:
            connection.close()

    threads = [threading.Thread(target=step, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([j for j in judged if j is not None]) == 1
    assert FixConfirmation.objects.get().status == Status.VERIFIED
    assert SignatureEvent.objects.filter(action="fix", detail__contains="verified by confirmation").count() == 1


def test_a_judged_fix_sends_the_fix_webhook(world) -> None:
    from sessions.models import Webhook

    Webhook.objects.create(url="https://hooks.example.com/x", secret="s3cret", events=["fix.verified"], active=True)
    _confirmation, runs = confirm(world, 1)
    run_with(world["session"], {"test_chat": "passed"}, run=runs[0])
    assert WebhookDelivery.objects.filter(event="fix.verified").count() == 1


# -- the page ---------------------------------------------------------------------------------------------------------


def test_engineers_and_viewers_get_403_and_an_operator_queues(world, client, viewer, engineer, operator) -> None:
    url = f"/signatures/{world['signature'].pk}/confirm-fix/"
    for user in (viewer, engineer):
        client.force_login(user)
        assert client.post(url, {"fix": world["fix"].pk, "runs": "2"}).status_code == 403
        page = client.get(world["signature"].get_absolute_url()).content.decode()
        assert 'class="fix-confirm-form"' not in page
        assert "Operators can confirm fix <code>abc1234</code> by rerunning its tests." in page  # not an empty card
    assert not FixConfirmation.objects.exists()
    client.force_login(operator)
    page = client.get(world["signature"].get_absolute_url()).content.decode()
    assert f'id="fix-confirm-{world["fix"].pk}"' in page and "Confirm fix <code>abc1234</code> by reruns" in page
    response = client.post(url, {"fix": world["fix"].pk, "runs": "2"})
    assert (
        response.status_code == 302
        and response["Location"] == f"{world['signature'].get_absolute_url()}#fix-confirmations"
    )
    confirmation = FixConfirmation.objects.get()
    assert confirmation.runs.count() == 2
    refused = client.post(url, {"fix": world["fix"].pk, "runs": "2"}, headers=HX)
    assert refused.status_code == 200 and "is being confirmed already" in refused.content.decode()


def test_the_panel_shows_the_runs_and_the_verdict(world, client, viewer) -> None:
    confirmation, runs = confirm(world, 2)
    run_with(world["session"], {"test_chat": "passed"}, run=runs[0])
    run_with(world["session"], {"test_chat": "failed"}, run=runs[1])
    client.force_login(viewer)
    page = client.get(world["signature"].get_absolute_url()).content.decode()
    assert f'id="confirmation-{confirmation.pk}"' in page and "Did not fix" in page
    for run in runs:
        assert f'href="/runs/{run.pk}/"' in page
    assert f"run {runs[1].pk} still shows it" in page


def test_the_panel_costs_one_query_whatever_the_number_of_confirmations(
    world, client, viewer, django_assert_num_queries
) -> None:
    client.force_login(viewer)
    url = world["signature"].get_absolute_url()
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as none_yet:
        client.get(url)
    _c, runs = confirm(world, 3)
    for run in runs:
        run_with(world["session"], {"test_chat": "passed"}, run=run)
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    Fix.objects.filter(pk=world["fix"].pk).update(status=Fix.Status.DEPLOYED)
    for _ in range(3):
        FixConfirmation.objects.filter(status=Status.RUNNING).update(status=Status.INCOMPLETE)
        for run in confirm(world, 2)[1]:
            run_with(world["session"], {"test_chat": "passed"}, run=run)
        Fix.objects.filter(pk=world["fix"].pk).update(status=Fix.Status.DEPLOYED)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(one) == len(many)
    assert len(one) - len(none_yet) <= 1


# -- on a real worker -------------------------------------------------------------------------------------------------

FIXABLE_SUITE = """
from pathlib import Path

def test_login():
    pass

def test_chat():
    assert (Path(__file__).parent.parent / "fixed").exists(), "chat is down"
"""


def deployed_fix(session: LoopSession) -> tuple[FailureSignature, Fix]:
    """Run the suite (test_chat fails), then a deployment carrying a fix for its signature."""
    first = ended_run(queueing.request_tests(session).pk)
    assert first.status == WorkStatus.FINISHED and first.failed == 1, first.log_tail
    signature = FailureSignature.objects.get(environment=session.environment)
    Deployment.objects.create(
        environment=session.environment, cycle=resolve_cycle(session, None), revision="r2", commit_sha=SHA,
        status=WorkStatus.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip
    analysis = triage.create_analysis(signature, None, "chat drops")
    analysis.refresh_from_db()
    fix = triage.add_fix(analysis, {"version": analysis.version, "sha": SHA}, None)
    fix.refresh_from_db()
    assert fix.status == Fix.Status.DEPLOYED
    return signature, fix


def confirmation_ended(pk: int) -> FixConfirmation:
    def check() -> FixConfirmation | None:
        confirmation = FixConfirmation.objects.get(pk=pk)
        return confirmation if confirmation.status != Status.RUNNING else None

    return wait_for(check, 120, f"confirmation {pk} to be judged")  # type: ignore[return-value]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@on_worker
def test_on_a_worker_two_passing_reruns_verify_the_fix(tmp_path: Path) -> None:
    session = make_session("confirm-ok", write_suite(tmp_path, test_app=FIXABLE_SUITE))
    signature, fix = deployed_fix(session)
    (tmp_path / "fixed").write_text("yes")
    confirmation = request_confirmation(signature, fix.pk, 2)
    confirmation = confirmation_ended(confirmation.pk)
    runs = [ended_run(r.pk) for r in TestRun.objects.filter(fix_confirmation__confirmation=confirmation)]
    assert confirmation.status == Status.VERIFIED, confirmation.verdict
    assert all(r.status == WorkStatus.FINISHED and r.passed == 1 and r.total == 1 for r in runs)
    fix.refresh_from_db()
    assert fix.status == Fix.Status.VERIFIED and fix.verified_by_id in {r.pk for r in runs}
    assert FailureSignature.objects.get(pk=signature.pk).status == FailureSignature.Status.VERIFIED


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@on_worker
def test_on_a_worker_a_test_that_still_fails_means_did_not_fix(tmp_path: Path) -> None:
    session = make_session("confirm-no", write_suite(tmp_path, test_app=FIXABLE_SUITE))
    signature, fix = deployed_fix(session)
    confirmation = confirmation_ended(request_confirmation(signature, fix.pk, 2).pk)
    assert confirmation.status == Status.DID_NOT_FIX, confirmation.verdict
    fix.refresh_from_db()
    assert fix.status == Fix.Status.DID_NOT_FIX
    assert FailureSignature.objects.get(pk=signature.pk).status == FailureSignature.Status.INVESTIGATING
