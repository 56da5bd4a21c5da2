"""The demo: real pytest results of the example target, loaded through the ingest path, idempotently."""

from __future__ import annotations

import json

import pytest

from sessions.demo import loader
from sessions.models import Analysis, Fix, LoopSession, TestRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded():
    return loader.load(lambda line: None)


def test_the_demo_replays_every_cycle_of_the_manifest(loaded):
    manifest = json.loads((loader.RESULTS_DIR / "manifest.json").read_text())
    assert loaded.slug == "demo"
    assert loaded.cycles.count() == len(manifest["cycles"]) >= 6
    for cycle in manifest["cycles"]:
        full = TestRun.objects.get(session=loaded, cycle__number=cycle["cycle"], label__endswith="e2e.jsonl.gz")
        assert full.total == cycle["counts"]["full"]["total"] >= 1000
        assert full.passed == cycle["counts"]["full"]["passed"]
        assert full.deployment.revision == cycle["revision"]


def test_the_demo_goes_from_red_to_green_with_mrr_at_risk_falling(loaded):
    runs = list(TestRun.objects.filter(session=loaded, label__endswith="e2e.jsonl.gz").order_by("cycle__number"))
    assert runs[0].pass_rate < 50 < runs[-1].pass_rate == 100
    assert runs[0].mrr_at_risk > 0 and runs[-1].mrr_at_risk == 0
    p1 = TestRun.objects.filter(session=loaded, label__endswith="p1.xml.gz").order_by("cycle__number")
    assert p1.first().by_priority["P1"]["tests"] == 25


def test_the_fix_for_the_wrong_race_condition_did_not_fix(loaded):
    wrong = Fix.objects.get(analysis__status=Analysis.Status.REFUTED)
    assert wrong.status == Fix.Status.DID_NOT_FIX
    right = Fix.objects.get(sha=wrong.analysis.signature.analyses.get(status="confirmed").fixes.get().sha)
    assert right.status == Fix.Status.VERIFIED


def test_loading_twice_changes_nothing(loaded):
    runs = TestRun.objects.count()
    loader.load(lambda line: None)
    assert TestRun.objects.count() == runs
    assert LoopSession.objects.filter(slug="demo").count() == 1


def test_the_deployed_revision_is_that_of_the_latest_succeeded_deployment(operator):
    """What scripts/run.sh starts the example target at, so that the demo's "deployed" is true."""
    from django.utils import timezone

    from sessions.models import Deployment, WorkStatus

    assert loader.deployed_revision() is None  # no demo yet: run.sh starts nothing
    session = loader.load(lambda line: None)
    assert loader.deployed_revision() == ("r7", session.environment.revisions[-1]["commit"])
    later = timezone.now()
    for revision, status in (("r3", WorkStatus.SUCCEEDED), ("r5", WorkStatus.FAILED)):
        Deployment.objects.create(
            environment=session.environment, revision=revision, status=status, finished_at=later, triggered_by=operator
        )
    assert loader.deployed_revision() == ("r3", "")  # an operator's later deploy; a failed one names nothing
