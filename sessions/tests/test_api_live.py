"""Live results from CI over HTTP: open, batches of report-log lines, finish (sessions/api_live.py).

Requests go through Django's test client with real tokens; what the batches store is read back from
the database and the run JSON. The pytest plugin that speaks this protocol is tested against a live
server in test_pytest_loopdash.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions import roles
from sessions.models import LiveStream, LoopSession, TestResult, TestRun, WorkStatus
from sessions.services.ingestion import ci_stream
from sessions.services.tokens import issue_token
from sessions.work.reaper import reap_lost

from . import samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(engineer) -> str:
    return issue_token(engineer, name="ci", scopes=["upload", "read"])


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def lines(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


START = {"pytest_version": "9.2.0", "$report_type": "SessionStart"}


def open_run(client, token: str, slug: str = "ci-suite", **payload) -> dict:
    answer = client.post(
        f"/api/v1/sessions/{slug}/runs/live", json.dumps(payload), content_type="application/json", **auth(token)
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def post(client, token: str, run_id: int, body: bytes, batch: int | None = None):
    headers = auth(token)
    if batch is not None:
        headers["HTTP_X_LOOPDASH_BATCH"] = str(batch)
    return client.post(f"/api/v1/runs/{run_id}/results", body, content_type="text/plain", **headers)


def finish(client, token: str, run_id: int, exitstatus: object = 1):
    return client.post(
        f"/api/v1/runs/{run_id}/finish", json.dumps({"exitstatus": exitstatus}), content_type="application/json",
        **auth(token),
    )  # fmt: skip


def stored(run_id: int) -> dict[str, str]:
    return dict(TestResult.objects.filter(run_id=run_id).values_list("case__nodeid", "outcome"))


def test_open_answers_the_run_its_page_and_environment(client, token) -> None:
    opened = open_run(client, token, cycle=2, revision="r7", shard="1/2")
    run = TestRun.objects.get(pk=opened["id"])
    assert run.status == WorkStatus.RUNNING and run.source == TestRun.Source.CI
    assert run.cycle.number == 2 and opened["cycle"] == 2
    assert run.properties == {"revision": "r7", "shard": "1/2"}
    assert opened["url"].endswith(f"/runs/{run.pk}/")
    assert opened["environment"] == LoopSession.objects.get(slug="ci-suite").environment.name
    detail = client.get(f"/api/v1/runs/{run.pk}", **auth(token)).json()
    assert detail["status"] == "running" and detail["revision"] == "r7"  # from CI, not from a deployment


def test_a_test_split_over_three_batches_is_one_result(client, token) -> None:
    run_id = open_run(client, token)["id"]
    setup, call, teardown = samples.failing("tests/test_a.py::test_split", "AssertionError: boom")
    first = post(client, token, run_id, lines([START, *samples.passing("tests/test_a.py::test_ok"), setup]))
    assert first.status_code == 200 and first.json() == {"stored": 1, "in_flight": 1, "duplicate": False}
    assert stored(run_id) == {"tests/test_a.py::test_ok": "passed"}
    assert TestRun.objects.get(pk=run_id).current_test == "tests/test_a.py::test_split"
    assert post(client, token, run_id, lines([call])).json()["stored"] == 0
    assert post(client, token, run_id, lines([teardown])).json() == {"stored": 1, "in_flight": 0, "duplicate": False}
    assert stored(run_id) == {"tests/test_a.py::test_ok": "passed", "tests/test_a.py::test_split": "failed"}
    live = TestRun.objects.get(pk=run_id)
    assert (live.status, live.total, live.passed, live.failed) == ("running", 2, 1, 1)
    message = TestResult.objects.get(run_id=run_id, outcome="failed").message
    assert message == "AssertionError: boom"


def test_interleaved_workers_and_finish_counts_like_a_worker_run(client, token) -> None:
    """xdist's controller writes the records of several workers interleaved; finish writes the summary."""
    run_id = open_run(client, token)["id"]
    a = samples.passing("tests/test_x.py::test_a")
    b = samples.failing("tests/test_x.py::test_b", "ConnectionError: refused")
    c = samples.passing("tests/test_x.py::test_c")
    interleaved = [START, a[0], b[0], a[1], c[0], b[1], a[2], c[1], b[2]]
    assert post(client, token, run_id, lines(interleaved[:5]), batch=1).json()["in_flight"] == 3
    assert post(client, token, run_id, lines(interleaved[5:]), batch=2).json()["in_flight"] == 1
    last = [c[2], {"exitstatus": 1, "$report_type": "SessionFinish"}]
    assert post(client, token, run_id, lines(last), batch=3).json()["stored"] == 1
    answer = finish(client, token, run_id, 1)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "finished" and body["incomplete"] is False and body["counted"] is True
    assert body["totals"]["tests"] == 3 and body["totals"]["passed"] == 2 and body["totals"]["failed"] == 1
    assert len(body["signatures"]) == 1
    run = TestRun.objects.get(pk=run_id)
    assert run.summary_written and run.exitstatus == 1 and run.duration_s is not None
    assert LiveStream.objects.get(run_id=run_id).pending == ""
    assert finish(client, token, run_id, 1).status_code == 200  # a client's retry: answered again
    assert post(client, token, run_id, lines(c)).status_code == 409  # ended: no more results


def test_a_retried_batch_is_not_stored_twice_and_a_gap_is_refused(client, token) -> None:
    run_id = open_run(client, token)["id"]
    batch = lines([START, *samples.passing("tests/test_r.py::test_once")])
    assert post(client, token, run_id, batch, batch=1).json()["stored"] == 1
    again = post(client, token, run_id, batch, batch=1).json()
    assert again == {"stored": 0, "in_flight": 0, "duplicate": True}
    assert TestResult.objects.filter(run_id=run_id).count() == 1
    gap = post(client, token, run_id, lines(samples.passing("tests/test_r.py::test_two")), batch=3)
    assert gap.status_code == 409 and "batch 2" in gap.json()["error"]


def test_a_bad_line_is_a_400_naming_it_and_nothing_of_the_batch_is_stored(client, token) -> None:
    run_id = open_run(client, token)["id"]
    setup = samples.passing("tests/test_b.py::test_later")[0]
    assert post(client, token, run_id, lines([START, setup])).status_code == 200
    good = lines(samples.passing("tests/test_b.py::test_fine"))
    answer = post(client, token, run_id, good + b'{"nodeid": "x", "when": \n' + lines([{"a": 1}]))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("batch 2:4: line is not JSON")
    assert "nothing of this batch was stored" in answer.json()["error"]
    assert stored(run_id) == {}
    assert LiveStream.objects.get(run_id=run_id).pending.count("\n") == 1  # only the setup still in flight
    not_a_record = post(client, token, run_id, lines([{"a": 1}]))
    assert not_a_record.status_code == 400 and "batch 2:1" in not_a_record.json()["error"]
    assert post(client, token, run_id, b"\xff\xfe\n").status_code == 400


def test_finish_turns_tests_in_flight_into_cut_off_errors(client, token) -> None:
    run_id = open_run(client, token)["id"]
    started = samples.passing("tests/test_c.py::test_hangs")[:1]  # its setup, never its call
    post(client, token, run_id, lines([START, *samples.passing("tests/test_c.py::test_ok"), *started]))
    body = finish(client, token, run_id, 2).json()  # pytest's "interrupted"
    assert body["status"] == "error" and body["incomplete"] is True and body["counted"] is False
    assert stored(run_id) == {"tests/test_c.py::test_ok": "passed", "tests/test_c.py::test_hangs": "error"}


def test_bad_requests_are_4xx(client, token, viewer) -> None:
    run_id = open_run(client, token)["id"]
    assert finish(client, token, run_id, "one").status_code == 400
    assert finish(client, token, run_id, True).status_code == 400
    no_status = client.post(f"/api/v1/runs/{run_id}/finish", "{}", content_type="application/json", **auth(token))
    assert no_status.status_code == 400 and "exitstatus" in no_status.json()["error"]
    bad_open = client.post(
        "/api/v1/sessions/ci-suite/runs/live", '{"revision": 7}', content_type="application/json", **auth(token)
    )
    assert bad_open.status_code == 400 and "revision" in bad_open.json()["error"]
    assert post(client, token, 10**9, b"").status_code == 404
    upload_run = TestRun.objects.create(
        session=LoopSession.objects.get(slug="ci-suite"), cycle_id=TestRun.objects.get(pk=run_id).cycle_id,
        environment_id=TestRun.objects.get(pk=run_id).environment_id, status=WorkStatus.RUNNING,
    )  # fmt: skip
    assert post(client, token, upload_run.pk, b"").status_code == 409
    read_only = issue_token(viewer, name="read", scopes=["read"])
    assert post(client, read_only, run_id, b"").status_code == 403
    viewer_upload = issue_token(viewer, name="viewer", scopes=["upload"])
    assert post(client, viewer_upload, run_id, b"").status_code == 403
    assert client.get(f"/api/v1/runs/{run_id}/results", **auth(read_only)).status_code == 200


def test_a_silent_run_is_lost_and_a_heartbeat_keeps_it(client, token, settings) -> None:
    """Each batch, an empty one too, is the heartbeat; silence past the bound ends the run as lost."""
    quiet = open_run(client, token)["id"]
    beating = open_run(client, token)["id"]
    post(client, token, quiet, lines([START, *samples.passing("tests/test_q.py::test_done")]))
    long_ago = timezone.now() - timedelta(seconds=settings.LOOPDASH_LOST_AFTER_S + 5)
    TestRun.objects.filter(pk__in=[quiet, beating]).update(heartbeat_at=long_ago)
    assert post(client, token, beating, b"").status_code == 200  # the plugin's heartbeat
    reap_lost()
    lost = TestRun.objects.get(pk=quiet)
    assert lost.status == WorkStatus.LOST and lost.summary_written and lost.total == 1 and not lost.counted
    assert TestRun.objects.get(pk=beating).status == WorkStatus.RUNNING
    late = post(client, token, quiet, lines(samples.passing("tests/test_q.py::test_late")))
    assert late.status_code == 409 and "lost" in late.json()["error"]


def test_engineer_token_needs_the_upload_scope(client, engineer) -> None:
    read_only = issue_token(engineer, name="r", scopes=["read"])
    answer = client.post("/api/v1/sessions/x/runs/live", "{}", content_type="application/json", **auth(read_only))
    assert answer.status_code == 403
    assert roles.can_annotate(engineer)


def test_tests_in_flight_are_bounded(client, token, monkeypatch) -> None:
    """Each batch parses the tests in flight again: a client that never sends teardowns is refused."""
    monkeypatch.setattr(ci_stream, "MAX_IN_FLIGHT", 2)
    run_id = open_run(client, token)["id"]
    setups = [samples.passing(f"tests/test_f.py::test_{n}")[0] for n in range(3)]
    assert post(client, token, run_id, lines([START, *setups[:2]])).status_code == 200
    refused = post(client, token, run_id, lines(setups[2:]))
    assert refused.status_code == 400 and "3 tests begun and not finished (at most 2)" in refused.json()["error"]
    assert LiveStream.objects.get(run_id=run_id).pending.count("\n") == 2


def test_the_openapi_description_has_both_methods_of_results(client) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths["/runs/{id}/results"]) == {"get", "post"}  # the two parts' methods are merged
    assert set(paths["/sessions/{slug}/runs/live"]) == set(paths["/runs/{id}/finish"]) == {"post"}


def test_the_live_run_page_figures_follow_the_batches(client, token) -> None:
    """Any web process may take the next batch: the failures by signature go on from the saved state."""
    run_id = open_run(client, token)["id"]
    first = [START, *samples.failing("tests/test_w.py::test_a", "ConnectionError: refused")]
    assert post(client, token, run_id, lines(first)).status_code == 200
    figures = TestRun.objects.get(pk=run_id).live_figures
    assert figures["signature_count"] == 1 and figures["signatures"][0]["results"] == 1
    assert figures["signatures"][0]["test"] == "tests/test_w.py::test_a"

    second = [
        *samples.failing("tests/test_w.py::test_b", "ConnectionError: refused"),
        *samples.failing("tests/test_w.py::test_c", "TimeoutError: after 120 s"),
        *samples.passing("tests/test_w.py::test_d"),
    ]
    assert post(client, token, run_id, lines(second)).status_code == 200
    figures = TestRun.objects.get(pk=run_id).live_figures
    assert figures["signature_count"] == 2
    by_test = {entry["test"]: entry["results"] for entry in figures["signatures"]}
    assert by_test == {"tests/test_w.py::test_b": 2, "tests/test_w.py::test_c": 1}  # newest failure of each
    assert figures["signatures"][0]["test"] == "tests/test_w.py::test_c"  # newest first
    assert figures["state"]["seen_total"] == 4
