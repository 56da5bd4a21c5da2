"""Sharded runs, server side (no worker): the request, the API / CLI / buttons, the split's inputs, the end
of the last shard, the run JSON and the run page's shard table. The workers' side: test_shards_workers.py."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from sessions.models import RunShard, TestRun, WorkStatus
from sessions.selectors.api_json import run_as_json
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.tests.test_operate_views import api, finished_run
from sessions.tests.test_run_subsets import session  # noqa: F401 - the fixture
from sessions.work import cancel, queueing, shard_end, shard_execution, shard_planning
from sessions.work.errors import Refused


def running_run(loop_session, shards: int = 2) -> TestRun:
    run = TestRun.objects.create(
        session=loop_session, cycle=resolve_cycle(loop_session, None), environment=loop_session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(), shards_requested=shards,
    )  # fmt: skip
    for index in range(1, shards + 1):
        RunShard.objects.create(
            run=run, index=index, status=WorkStatus.RUNNING, nodeids=[f"tests/test_e2e.py::t{index}"], tests=1,
            planned_s=1.5, worker=f"w{index}@host", started_at=timezone.now(), heartbeat_at=timezone.now(),
        )  # fmt: skip
    return run


# -- the request ----------------------------------------------------------------------------------------------------


def test_the_number_of_shards_comes_from_the_request_or_the_environment(session) -> None:  # noqa: F811
    assert queueing.request_tests(session, shards=4).shards_requested == 4
    assert queueing.request_tests(session, shards="32").shards_requested == 32
    assert queueing.request_tests(session).shards_requested == 1
    session.environment.default_shards = 3
    session.environment.save()
    assert queueing.request_tests(session).shards_requested == 3


def test_never_more_shards_than_known_tests_a_one_test_rerun_is_one_shard(session) -> None:  # noqa: F811
    first = finished_run(session, {"test_a": "failed", "test_b": "passed", "test_c": "error"})
    rerun = queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.FAILED, shards=8)
    assert rerun.shards_requested == 2
    case = first.results.get(case__nodeid__endswith="test_a").case_id
    one = queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.SELECTED, case_ids=[case], shards=8)
    assert one.shards_requested == 1


@pytest.mark.parametrize("value", [0, 33, -1, "x", "-2", "٣", True, 2.5, "1e1", "\x00", "4\n4"])
def test_a_bad_number_of_shards_is_refused_naming_the_field(session, value) -> None:  # noqa: F811
    with pytest.raises(Refused) as refused:
        queueing.request_tests(session, shards=value)
    assert refused.value.status == 400 and str(refused.value).startswith("shards must be")
    assert not TestRun.objects.exists()


def test_the_api_and_the_cli_take_shards(client, operator, session) -> None:  # noqa: F811
    response = api(client, operator, session.slug, {"action": "tests", "shards": 4})
    assert response.status_code == 202
    assert TestRun.objects.get(pk=response.json()["run"]).shards_requested == 4
    for payload, message in [
        ({"action": "tests", "shards": 0}, "shards must be from 1 to 32"),
        ({"action": "tests", "shards": "many"}, "shards must be a whole number"),
        ({"action": "deploy", "shards": 2}, "shards applies to tests and cycle"),
    ]:
        response = api(client, operator, session.slug, payload)
        assert response.status_code == 400 and message in response.json()["error"], response.content
    out = StringIO()
    call_command("trigger", "tests", "--session", session.slug, "--shards", "3", stdout=out)
    run_id = int(out.getvalue().split()[1])
    assert TestRun.objects.get(pk=run_id).shards_requested == 3


def test_the_run_buttons_carry_the_shard_choice(client, operator, session) -> None:  # noqa: F811
    client.force_login(operator)
    page = client.get(session.get_absolute_url()).content.decode()
    assert 'id="operate-run-shards"' in page and 'id="operate-cycle-shards"' in page
    response = client.post(f"/sessions/{session.slug}/run-tests/", {"shards": "6"})
    assert response.status_code in (302, 303)
    assert TestRun.objects.get().shards_requested == 6
    refused = client.post(f"/sessions/{session.slug}/run-tests/", {"shards": "99"})
    assert refused.status_code == 400 and TestRun.objects.count() == 1


# -- the split's inputs and the end of the last shard -----------------------------------------------------------------


def test_recorded_durations_are_the_newest_finished_runs(session) -> None:  # noqa: F811
    finished_run(session, {"test_a": "passed", "test_b": "failed"})
    run = running_run(session)
    durations = shard_planning.recorded_durations(
        run, ["tests/test_e2e.py::test_a", "tests/test_e2e.py::test_b", "tests/test_e2e.py::new"]
    )
    assert durations == {"tests/test_e2e.py::test_a": 1.5, "tests/test_e2e.py::test_b": 1.5}


def test_only_the_last_shard_to_end_writes_the_summary_once(session) -> None:  # noqa: F811
    run = running_run(session, shards=3)
    first, second, third = RunShard.objects.filter(run=run).order_by("index")
    assert shard_end.finish_shard(first, WorkStatus.FINISHED, exit_code=0) is False
    assert shard_end.finish_shard(second, WorkStatus.FINISHED, exit_code=1) is False
    run.refresh_from_db()
    assert run.status == WorkStatus.RUNNING and not run.summary_written
    assert shard_end.finish_shard(third, WorkStatus.FINISHED, exit_code=0) is True
    run.refresh_from_db()
    assert run.status == WorkStatus.FINISHED and run.summary_written and run.exitstatus == 1
    assert shard_end.finish_shard(third, WorkStatus.FINISHED) is False  # nothing twice
    assert shard_end.complete_if_done(run.pk) is False


def test_the_worst_shard_decides_the_runs_status(session) -> None:  # noqa: F811
    run = running_run(session, shards=2)
    first, second = RunShard.objects.filter(run=run).order_by("index")
    shard_end.finish_shard(first, WorkStatus.ERROR, exit_code=2)
    shard_end.finish_shard(second, WorkStatus.FINISHED, exit_code=0)
    run.refresh_from_db()
    assert run.status == WorkStatus.ERROR and run.incomplete and run.summary_written


def test_a_cancel_ends_queued_shards_and_the_run_when_none_is_running(session) -> None:  # noqa: F811
    run = running_run(session, shards=2)
    RunShard.objects.filter(run=run).update(status=WorkStatus.QUEUED)
    cancel.cancel_run(run)
    run.refresh_from_db()
    assert run.status == WorkStatus.CANCELLED and run.summary_written and run.incomplete
    assert set(RunShard.objects.filter(run=run).values_list("status", flat=True)) == {WorkStatus.CANCELLED}


# -- what the API and the page show -----------------------------------------------------------------------------------


def test_the_run_json_lists_the_shards(session) -> None:  # noqa: F811
    plain = finished_run(session, {"test_a": "passed"})
    assert run_as_json(plain)["shards"] == []
    run = running_run(session, shards=2)
    for shard in RunShard.objects.filter(run=run):
        shard_end.finish_shard(shard, WorkStatus.FINISHED, duration_s=2.0, total=1, passed=1)
    shards = json.loads(json.dumps(run_as_json(TestRun.objects.get(pk=run.pk))))["shards"]
    assert [(s["index"], s["status"], s["tests"], s["duration_s"], s["worker"]) for s in shards] == [
        (1, "finished", 1, 2.0, "w1@host"),
        (2, "finished", 1, 2.0, "w2@host"),
    ]


def test_the_run_page_shows_the_shards_and_their_partial_polls_while_live(client, viewer, session) -> None:  # noqa: F811
    run = running_run(session, shards=2)
    client.force_login(viewer)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'id="run-shards"' in page and page.count('class="shard-row"') == 2 and "w2@host" in page
    live = client.get(f"/runs/{run.pk}/shards/")
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in live.content.decode()
    for shard in RunShard.objects.filter(run=run):
        shard_end.finish_shard(shard, WorkStatus.FINISHED)
    ended = client.get(f"/runs/{run.pk}/shards/")
    assert ended.status_code == 286 and "hx-trigger" not in ended.content.decode()
    plain = finished_run(session, {"test_a": "passed"})
    assert 'id="run-shards"' not in client.get(plain.get_absolute_url()).content.decode()
    client.logout()
    assert client.get(f"/runs/{run.pk}/shards/").status_code == 302  # login first


def test_shards_add_their_counts_to_the_run_and_stop_once_it_ended(session) -> None:  # noqa: F811
    run = running_run(session, shards=2)
    executions = [shard_execution.ShardExecution(s) for s in RunShard.objects.select_related("run__environment")]
    try:
        first, second = executions
        first.counts.update(passed=3, failed=1)
        second.counts.update(passed=2, errors=2)
        second.tests_duration = 4.5
        assert first.push_counts() and second.push_counts()
        first.counts.update(passed=1)
        assert first.push_counts()
        run.refresh_from_db()
        assert (run.total, run.passed, run.failed, run.errors) == (9, 6, 1, 2)
        assert run.pass_rate == pytest.approx(100 * 6 / 9) and run.tests_duration_s == pytest.approx(4.5)
        assert first.push_counts()  # nothing new: adds nothing, still beats
        run.refresh_from_db()
        assert run.total == 9
        TestRun.objects.filter(pk=run.pk).update(status=WorkStatus.CANCELLED)
        assert first.push_counts() is False  # the compare-and-set tells a shard the run stopped
    finally:
        for execution in executions:
            execution.live.finish()
