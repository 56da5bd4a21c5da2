"""An upload's run ends from its writer's tally (``ingestion/tally.py``): the same figures as from the rows.

The same files go, in the same order, into two environments: once by ``ingest_file`` (a sole writer: the
summary, the signature counts and the new failing tests' first history letter come from the tally), once
through the same steps with a writer that keeps no tally (the run's end counts the stored rows, as for a
live run). Every figure the run's end writes must be equal, and each tally figure equal to the database's
own count of the rows.
"""

from __future__ import annotations

import io

import pytest
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from sessions.ingest import parse
from sessions.models import Environment, FailureSignature, LoopSession, TestCase, TestResult, TestRun, WorkStatus
from sessions.services import aggregates
from sessions.services.ingestion import copy_storage, tally
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.upload import ingest_file
from sessions.services.ingestion.writer import ResultWriter
from sessions.services.run_completion import complete_run
from sessions.services.summary import count_outcomes

from . import samples

pytestmark = pytest.mark.django_db

FIRST = samples.junit(
    [
        ("tests.m1.TestA", "test_ok", "passed"),
        ("tests.m1.TestA", "test_bad", "failed"),
        ("tests.m1.TestA", "test_bad2", "failed"),
        ("tests.m2", "test_err", "error"),
        ("tests.m2", "test_setup", "setup_error"),
        ("tests.m3", "test_timeout", "timeout"),
        ("tests.m3", "test_skip", "skipped"),
        ("tests.m3", "test_xf", "xfailed"),
        # The same test twice: created from its first result, its worst outcome stands for the run.
        ("tests.m4", "test_twice_pass_then_fail", "passed"),
        ("tests.m4", "test_twice_pass_then_fail", "failed"),
        ("tests.m4", "test_twice_error_then_fail", "error"),
        ("tests.m4", "test_twice_error_then_fail", "failed"),
        ("tests.m4", "test_twice_fail_then_pass", "failed"),
        ("tests.m4", "test_twice_fail_then_pass", "passed"),
    ]
)
# Known tests (modules read from the database), some failing again, some fixed, and new ones.
SECOND = samples.junit(
    [
        ("tests.m1.TestA", "test_ok", "failed"),
        ("tests.m1.TestA", "test_bad", "passed"),
        ("tests.m1.TestA", "test_bad2", "failed"),
        ("tests.m2", "test_err", "error"),
        ("tests.m3", "test_timeout", "ws1011"),
        ("tests.m5", "test_new_fail", "timeout"),
        ("tests.m5", "test_new_pass", "passed"),
    ]
)
# Interrupted (exit status 2): the run does not count, so no test's history may show it.
INTERRUPTED = samples.reportlog(
    samples.failing("tests/m6.py::test_interrupted", "AssertionError: no")
    + samples.failing("tests/m1.py::TestA::test_bad", "AssertionError: no")
    + samples.passing("tests/m6.py::test_fine"),
    exitstatus=2,
)
FILES = [("first.xml", FIRST), ("second.xml", SECOND), ("interrupted.jsonl", INTERRUPTED)]


def upload_without_tally(data: bytes, name: str, session: LoopSession) -> TestRun:
    """``ingest_file``'s steps with a writer that keeps no tally: the run's end counts the stored rows."""
    with transaction.atomic():
        now = timezone.now()
        run = TestRun.objects.create(
            session=session,
            cycle=resolve_cycle(session, None),
            environment=session.environment,
            label=name,
            status=WorkStatus.RUNNING,
            started_at=now,
        )
        parsed = parse(io.BytesIO(data), name)
        writer = ResultWriter(run)
        assert writer.tally is None
        writer.add(parsed.results)
        run.format = parsed.info.format
        complete_run(run, writer=writer, info=parsed.info, status=WorkStatus.FINISHED)
    return run


def figures(run: TestRun) -> tuple:
    """What a run's end wrote, by names (ids differ between the two environments)."""
    run.refresh_from_db()
    run_signatures = sorted(
        (rs.signature.fingerprint, rs.results, rs.tests, rs.modules)
        for rs in run.signature_counts.select_related("signature")
    )
    return (
        run.total, run.passed, run.failed, run.errors, run.skipped, run.xfailed, run.xpassed, run.pass_rate,
        run.suspect, run.tests_duration_s, run.by_priority, run.mrr_at_risk, run.counted, run.incomplete,
        run_signatures,
    )  # fmt: skip


def environment_state(env: Environment) -> tuple:
    cases = sorted(TestCase.objects.filter(environment=env).values_list("nodeid", "recent", "flip_rate", "module"))
    signatures = sorted(
        FailureSignature.objects.filter(environment=env).values_list(
            "fingerprint", "result_count", "test_count", "module_count", "first_seen_run__label", "last_seen_run__label"
        )
    )
    return cases, signatures


def counted_from_rows(run: TestRun) -> dict:
    """The tally's figures counted again by the database."""
    rows = TestResult.objects.filter(run=run)
    sums = rows.aggregate(suspect=Count("id", filter=Q(suspect=True)), duration=Sum("duration"))
    by_signature = sorted(
        rows.filter(signature__isnull=False)
        .values_list("signature_id")
        .annotate(
            results=Count("id"), tests=Count("case_id", distinct=True), modules=Count("case__module", distinct=True)
        )
        .order_by()
    )
    return {"counts": count_outcomes(run), "sums": sums, "by_signature": by_signature}


@pytest.mark.parametrize("limit", [tally.LIMIT, 3])
def test_an_upload_ends_from_its_tally_with_the_figures_of_the_rows(limit: int, monkeypatch) -> None:
    """With a limit of 3 failing tests, the tally drops its pairs and writes only three first letters."""
    monkeypatch.setattr(copy_storage, "TALLY_LIMIT", limit)
    plain = LoopSession.objects.create(
        environment=Environment.objects.create(name="plain"), slug="plain", title="plain"
    )
    Environment.objects.create(name="tallied")
    tallied_runs, plain_runs = [], []
    for name, data in FILES:
        tallied_runs.append(ingest_file(io.BytesIO(data), name, session_slug="tallied", environment_name="tallied").run)
        plain_runs.append(upload_without_tally(data, name, plain))

    for tallied, untallied in zip(tallied_runs, plain_runs, strict=True):
        assert figures(tallied) == figures(untallied)
        stored = counted_from_rows(tallied)
        assert stored["counts"]["tests"] == tallied.total
        assert [stored["counts"][k] for k in ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")] == [
            tallied.passed, tallied.failed, tallied.errors, tallied.skipped, tallied.xfailed, tallied.xpassed,
        ]  # fmt: skip
        assert stored["sums"]["suspect"] == tallied.suspect
        assert stored["sums"]["duration"] == pytest.approx(tallied.tests_duration_s)
        assert stored["by_signature"] == sorted(
            tallied.signature_counts.values_list("signature_id", "results", "tests", "modules")
        )
    assert environment_state(Environment.objects.get(name="tallied")) == environment_state(plain.environment)

    first, second, interrupted = tallied_runs
    assert (first.counted, second.counted, interrupted.counted) == (True, True, False)
    recent = dict(TestCase.objects.filter(environment__name="tallied").values_list("nodeid", "recent"))
    assert recent["tests/m1.py::TestA::test_bad"] == "FP"
    assert recent["tests/m4.py::test_twice_pass_then_fail"] == "F"
    assert recent["tests/m4.py::test_twice_error_then_fail"] == "F"  # written "E" with the case, then corrected
    assert recent["tests/m4.py::test_twice_fail_then_pass"] == "F"
    assert recent["tests/m6.py::test_interrupted"] == ""  # its run does not count: the first letter is cleared
    assert recent["tests/m1.py::TestA::test_ok"] == "PF"  # seeded from its earlier result at its first failure

    # The pre-aggregates the tally filled are those a recount from every stored row gives.
    def pairs() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT signature_id, case_id FROM {aggregates.SIGNATURE_CASE} ORDER BY 1, 2")
            cases = cursor.fetchall()
            cursor.execute(f"SELECT signature_id, module FROM {aggregates.SIGNATURE_MODULE} ORDER BY 1, 2")
            return cases, cursor.fetchall()

    before = pairs(), environment_state(Environment.objects.get(name="tallied"))
    aggregates.rebuild_signature_counts()
    assert (pairs(), environment_state(Environment.objects.get(name="tallied"))) == before


def test_only_a_sole_writer_on_postgresql_keeps_a_tally() -> None:
    session = LoopSession.objects.create(environment=Environment.objects.create(name="e"), slug="s", title="s")
    run = TestRun.objects.create(session=session, cycle=resolve_cycle(session, None), environment=session.environment)
    assert ResultWriter(run).tally is None  # a live run's writer: other runs may end while it writes
    sole = ResultWriter(run, sole=True)
    assert (sole.tally is not None) == (connection.vendor == "postgresql")  # the ORM engine keeps none


def test_a_rolled_back_call_drops_the_tally() -> None:
    """Part of a failed batch may be in the tally: the run's end then counts the rows."""
    session = LoopSession.objects.create(environment=Environment.objects.create(name="e"), slug="s", title="s")
    run = TestRun.objects.create(session=session, cycle=resolve_cycle(session, None), environment=session.environment)
    writer = ResultWriter(run, sole=True)

    def failing_results():
        yield from parse(io.BytesIO(FIRST), "first.xml").results
        raise RuntimeError("the file broke off")

    with pytest.raises(RuntimeError):
        writer.add(failing_results())
    assert writer.tally is None
