"""Success criteria: manual items ticked by engineers, automatic ones ticked by each complete full run."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions.models import LoopSession, SuccessCriterion, TestRun
from sessions.services import criteria
from sessions.tests.test_pages import Case, ingest, junit_xml, make_impact

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def p1(name: str, outcome: str = "passed", time: float = 1.0) -> Case:
    return Case(f"test_p1_{name}", outcome, time, "AssertionError: no" if outcome != "passed" else "")


@pytest.fixture
def session() -> LoopSession:
    make_impact()
    ingest([p1("a"), p1("b", "failed"), Case("test_other")], session="crit", cycle=1, label="c1")
    session = LoopSession.objects.get(slug="crit")
    env = session.environment
    env.metric_targets = {
        "ws_latency_ms": {"target": 50, "lower_is_better": True},
        "rps": {"target": 100, "lower_is_better": False},
    }
    env.save()
    return session


def add(session: LoopSession, text: str, kind: str, **params) -> SuccessCriterion:
    return criteria.add_criterion(session, {"text": text, "kind": kind, **params}, None)


def test_automatic_criteria_tick_themselves_from_each_complete_full_run(session) -> None:
    rate = add(session, "P1 at 100%", "pass_rate", priority="P1", threshold="100")
    suspects = add(session, "No suspects", "no_suspects")
    named = add(
        session,
        "Golden tests",
        "tests_pass",
        tests="tests/e2e/test_chat.py::test_p1_a\ntests/e2e/test_chat.py::test_p1_b",
    )
    manual = add(session, "Agent events delivered", "manual")
    for c in (rate, named):
        assert not c.done and c.evaluated_run is not None  # evaluated at once from the latest run
    assert "P1 pass rate 50.0% (needs ≥ 100%)" == rate.detail
    assert named.detail == "1 of 2 passed; 1 not passing"

    run = ingest([p1("a"), p1("b"), Case("test_other", "passed", 0.001)], session="crit", cycle=2, label="c2")
    for c in (rate, suspects, named, manual):
        c.refresh_from_db()
    assert rate.done and rate.evaluated_run == run
    assert named.done and named.detail == "all 2 passed"
    assert not suspects.done and suspects.detail == "1 suspect test under 0.01 s"
    assert not manual.done and manual.evaluated_run is None  # manual items are never ticked by runs


def test_a_rerun_of_failed_tests_does_not_tick_the_checklist(session) -> None:
    rate = add(session, "P1 at 100%", "pass_rate", priority="P1", threshold="100")
    rerun = ingest([p1("b")], session="crit", cycle=1, label="rerun")
    # An upload is a full run; the worker's reruns are created with their scope. Make this one a rerun:
    TestRun.objects.filter(pk=rerun.pk).update(scope=TestRun.Scope.FAILED)
    rerun.refresh_from_db()
    criteria.reevaluate(rate)
    rate.refresh_from_db()
    assert not rate.done and rate.evaluated_run != rerun
    assert criteria.evaluate_run(rerun) == 0
    rate.refresh_from_db()
    assert not rate.done


def test_metric_criteria_read_the_runs_median_against_the_environments_target(session) -> None:
    latency = add(session, "Latency", "metric", metric="ws_latency_ms")
    rps = add(session, "Throughput", "metric", metric="rps")
    unknown = add(session, "No target", "metric", metric="nope")
    run = ingest([Case("test_x")], session="crit", cycle=2, label="m")
    TestRun.objects.filter(pk=run.pk).update(metrics={"ws_latency_ms": 42.0, "rps": 80.0})
    run.refresh_from_db()
    criteria.evaluate_run(run)
    for c in (latency, rps, unknown):
        c.refresh_from_db()
    assert latency.done and latency.detail == "ws_latency_ms 42 (≤ 50 wanted)"
    assert not rps.done and rps.detail == "rps 80 (≥ 100 wanted)"
    assert not unknown.done and "no target" in unknown.detail


def test_metrics_come_from_junit_properties_through_ingestion(session) -> None:
    add(session, "Latency", "metric", metric="ws_latency_ms")
    xml = junit_xml([Case("test_ping")], suite="props").replace(
        b'time="1.25"/>',
        b'time="1.25"><properties><property name="ws_latency_ms" value="41.5"/></properties></testcase>',
    )
    import io

    from sessions.services.ingestion.upload import ingest_file

    run = ingest_file(io.BytesIO(xml), "props.xml", session_slug="crit", cycle_number=3).run
    assert run.metrics == {"ws_latency_ms": 41.5}
    assert SuccessCriterion.objects.get(text="Latency").done


def test_named_tests_are_checked_in_one_query_however_many(session) -> None:
    names = "\n".join(f"tests/e2e/test_chat.py::test_{i}" for i in range(150))
    add(session, "Many tests", "tests_pass", tests=names)
    add(session, "More tests", "tests_pass", tests=names)
    run = ingest([Case(f"test_{i}") for i in range(150)], session="crit", cycle=2, label="many")
    with CaptureQueriesContext(connection) as ctx:
        criteria.evaluate_run(run)
    selects = [q for q in ctx.captured_queries if "testresult" in q["sql"].lower()]
    assert len(selects) == 1
    assert all(c.done for c in SuccessCriterion.objects.filter(session=session))


def test_engineers_edit_the_checklist_in_place(client, engineer, session) -> None:
    client.force_login(engineer)
    response = client.post(
        reverse("criterion_add", args=["crit"]), {"text": "Real staging connectivity", "kind": "manual"}, headers=HX
    )
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section class="card" id="criteria"')
    item = SuccessCriterion.objects.get(text="Real staging connectivity")
    client.post(reverse("criterion_tick", args=[item.pk]), {"done": "1"}, headers=HX)
    item.refresh_from_db()
    assert item.done and item.updated_by == engineer
    client.post(
        reverse("criterion_edit", args=[item.pk]),
        {"text": "P1 green", "kind": "pass_rate", "priority": "P1", "threshold": "100"},
        headers=HX,
    )
    item.refresh_from_db()
    assert item.kind == "pass_rate" and item.params == {"priority": "P1", "threshold": 100.0} and not item.done
    assert client.post(reverse("criterion_tick", args=[item.pk]), {"done": "1"}, headers=HX).status_code == 422
    bad = client.post(
        reverse("criterion_add", args=["crit"]), {"text": "x", "kind": "pass_rate", "threshold": "120"}, headers=HX
    )
    assert bad.status_code == 422 and "between 0 and 100" in bad.content.decode()
    client.post(reverse("criterion_delete", args=[item.pk]), headers=HX)
    assert not SuccessCriterion.objects.filter(pk=item.pk).exists()


def test_a_viewer_sees_the_checklist_without_controls(client, viewer, session) -> None:
    add(session, "Manual one", "manual")
    client.force_login(viewer)
    html = client.get(reverse("session_detail", args=["crit"])).content.decode()
    card = html.split('id="criteria"', 1)[1].split("</section>", 1)[0]
    assert "Manual one" in card
    assert "<form" not in card and "Add a criterion" not in card
