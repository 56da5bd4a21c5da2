"""``manage.py run exclude ID --reason TEXT`` / ``manage.py run include ID [--reason TEXT]``.

Called in-process (``call_command``) for what it prints and changes, and once as from a shell
(``ManagementUtility``) for the exit status and the error on stderr.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sessions.models import LoopSession, SessionEvent, TestRun, WorkStatus
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.tests.test_run_exclusion_views import good_run, staging_session, stored_run, unreachable_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(db) -> LoopSession:
    return staging_session()


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("run", *args, stdout=out)
    return out.getvalue()


def test_exclude_then_include_print_what_changed(session, operator) -> None:
    first = good_run(session)
    second = good_run(session)
    assert run_command("exclude", str(second.pk), "--reason", "wrong branch", "--user", "otto") == (
        f"run {second.pk} excluded (it no longer counts): wrong branch\n"
    )
    second.refresh_from_db()
    session.refresh_from_db()
    assert second.excluded and second.excluded_by == operator and session.latest_run_id == first.pk
    assert run_command("include", str(second.pk)) == f"run {second.pk} included: it counts again\n"
    session.refresh_from_db()
    assert session.latest_run_id == second.pk
    assert list(SessionEvent.objects.order_by("id").values_list("action", flat=True)) == ["excluded", "included"]


def test_including_an_incomplete_run_says_it_still_does_not_count(session) -> None:
    cancelled = stored_run(session, {"test_a": "passed"}, status=WorkStatus.CANCELLED)
    run_command("exclude", str(cancelled.pk), "--reason", "noise")
    assert run_command("include", str(cancelled.pk), "--reason", "undo") == (
        f"run {cancelled.pk} included, but it still does not count: it is incomplete (cancelled)\n"
    )


def test_excluding_a_run_that_did_not_count_says_so(session) -> None:
    bad = unreachable_run(session)
    assert run_command("exclude", str(bad.pk), "--reason", "nothing listened").startswith(
        f"run {bad.pk} excluded (it did not count before either): nothing listened"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["exclude", "987654", "--reason", "x"], "no run 987654"),
        (["exclude", "twelve", "--reason", "x"], "ID must be a run's id (a whole number), got 'twelve'"),
        (["exclude", "{run}"], "reason: say why the run is excluded"),
        (["exclude", "{run}", "--reason", "  "], "reason: say why the run is excluded"),
        (["exclude", "{run}", "--reason", "x", "--user", "nobody"], "--user: no user 'nobody'"),
        (["include", "{run}"], "is not excluded"),
        (["exclude", "{live}", "--reason", "x"], "has not ended yet (running): exclude it once it has"),
    ],
)
def test_errors_are_clear_and_change_nothing(session, args, message) -> None:
    run = good_run(session)
    live = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
    )  # fmt: skip
    args = [a.format(run=run.pk, live=live.pk) for a in args]
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_command(*args)
    assert not TestRun.objects.filter(excluded=True).exists() and not SessionEvent.objects.exists()


def test_an_unknown_run_exits_non_zero_with_the_error_on_stderr(db, capsys) -> None:
    """As from a shell (``manage.py run ...``, through ``ManagementUtility``): status 1, the error on stderr."""
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "run", "exclude", "987654", "--reason", "x"]).execute()
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == "CommandError: no run 987654"
