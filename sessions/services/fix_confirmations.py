"""Judge a fix confirmation once all its reruns have ended (a step of ``run_completion.complete_run``).

A confirmation (``models/confirmations.py``) is N runs of the tests a signature hit when last seen, on
what is deployed now, queued together by ``work/fix_confirmation.py``. Those runs are reruns of chosen
tests (scope ``selected``), which ``lifecycle.judge_fixes`` never uses: one lucky pass of a flaky test
must not verify a fix. Here they speak together, once the last of them has ended:

- **did not fix** when any of them shows the signature (or one merged into it) again, quarantined test or
  not: the failure is real evidence whatever the figures leave out;
- **incomplete** when any of them could not tell: it did not count (lost, cancelled, error, timed out,
  cut short, excluded), or one of the chosen tests did not run or did not pass for another reason (a
  skip, another failure); a quarantined test is left out of this check, as it is of the figures. The fix
  keeps its status;
- **verified** otherwise: every run ran every chosen test and every one passed.

A verified or did-not-fix confirmation gives the fix its verdict through ``lifecycle.record_verdict``
(the same path as a judging run: the signature's status and history, the ``fix.*`` webhook), by the
run that ended last, with the history naming all the runs. When the fix was judged meanwhile (a full
run got there first) the confirmation keeps its own verdict and says the fix's was left as it was.

Two runs of one confirmation can end at the same moment on two workers: the confirmation's row is
locked while it is judged, and only a confirmation still ``running`` is judged, so it is judged once,
by whichever step sees every run ended with its summary written.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from ..models import (
    FailureSignature,
    Fix,
    FixConfirmation,
    FixConfirmationRun,
    Outcome,
    RunSignature,
    TestResult,
    TestRun,
)
from . import lifecycle, signatures

Status = FixConfirmation.Status


def record_run(run: TestRun) -> FixConfirmation | None:
    """The pipeline's step: if ``run`` is one of a confirmation's runs and the last to end, judge it.

    Returns the confirmation when this call judged it, else None (not a confirmation's run, runs still
    live, or judged already).
    """
    confirmation_id = FixConfirmationRun.objects.filter(run_id=run.pk).values_list("confirmation_id", flat=True).first()
    if confirmation_id is None:
        return None
    return settle(confirmation_id)


def settle(confirmation_id: int) -> FixConfirmation | None:
    """Judge the confirmation if it is still running and every one of its runs has ended (else None).

    Also asked by a new request for the same fix: a confirmation whose last live run was deleted has
    no run left to end, and is judged (incomplete) then instead of blocking the fix for ever.
    """
    with transaction.atomic():
        confirmation = (
            FixConfirmation.objects.select_for_update(of=("self",))
            .select_related("fix__analysis")
            .filter(pk=confirmation_id, status=Status.RUNNING)
            .first()
        )
        if confirmation is None:
            return None  # judged already
        runs = list(
            TestRun.objects.filter(fix_confirmation__confirmation=confirmation)
            .only("id", "status", "summary_written", "counted", "excluded", "incomplete", "selection", "finished_at")
            .order_by("fix_confirmation__number")
        )
        if any(r.status not in TestRun.FINAL_STATUSES or not r.summary_written for r in runs):
            return None  # the last run to end judges
        _judge(confirmation, runs)
    return confirmation


def _family(signature_id: int) -> tuple[int, set[int]]:
    """The signature's root (where its results go) and every signature whose results count as it."""
    root = signatures.root_of(signature_id)
    merged = FailureSignature.objects.filter(merged_into=root).values_list("pk", flat=True)
    return root, {signature_id, root, *merged}


def _why_not_counted(run: TestRun) -> str:
    if run.excluded:
        return f"run {run.pk} was excluded"
    if run.status != "finished":
        return f"run {run.pk} ended {run.status}"
    return f"run {run.pk} did not run to its end"


def _tests_not_passed(runs: list[TestRun]) -> str:
    """Why a run that counted cannot vouch for the fix: a chosen test that did not run or did not pass.

    One query for all the runs; results of quarantined tests are left out, as from the figures.
    """
    rows = (
        TestResult.objects.filter(run_id__in=[r.pk for r in runs])
        .values("run_id")
        .annotate(
            passed=Count("case_id", distinct=True, filter=Q(outcome=Outcome.PASSED) | Q(quarantined=True)),
            other=Count("id", filter=~Q(outcome=Outcome.PASSED) & Q(quarantined=False)),
        )
    )
    found = {row["run_id"]: row for row in rows}
    for run in runs:
        row = found.get(run.pk, {"passed": 0, "other": 0})
        chosen = len(set(run.selection or []))
        if row["other"]:
            return f"run {run.pk}: {row['other']} result{'s' if row['other'] != 1 else ''} not passed (another failure or a skip)"
        if row["passed"] < chosen:
            return f"run {run.pk}: {chosen - row['passed']} of {chosen} chosen tests did not run"
    return ""


def _judge(confirmation: FixConfirmation, runs: list[TestRun]) -> None:
    fix: Fix = confirmation.fix
    root, family = _family(fix.analysis.signature_id)
    named = ", ".join(str(r.pk) for r in runs)
    evidence = f"confirmation {confirmation.pk} ({len(runs)} rerun{'s' if len(runs) != 1 else ''}: runs {named})"
    showing = set(RunSignature.objects.filter(run__in=runs, signature_id__in=family).values_list("run_id", flat=True))
    not_counted = [r for r in runs if not r.counted]
    if showing:
        first = next(r for r in runs if r.pk in showing)
        status, verdict, deciding = Status.DID_NOT_FIX, f"run {first.pk} still shows it", first
    elif len(runs) < confirmation.runs_requested:
        gone = confirmation.runs_requested - len(runs)
        status, verdict, deciding = Status.INCOMPLETE, f"{gone} of its {confirmation.runs_requested} runs deleted", None
    elif not_counted:
        status, verdict, deciding = Status.INCOMPLETE, _why_not_counted(not_counted[0]), None
    else:
        problem = _tests_not_passed(runs)
        if problem:
            status, verdict, deciding = Status.INCOMPLETE, problem, None
        else:
            last = max(runs, key=lambda r: (r.finished_at or timezone.now(), r.pk))
            tests = len(set(runs[0].selection or []))
            verdict = f"{len(runs)} of {len(runs)} runs passed all {tests} test{'s' if tests != 1 else ''}"
            status, deciding = Status.VERIFIED, last
    if deciding is not None and not lifecycle.record_verdict(
        fix, deciding, root, verified=status == Status.VERIFIED, evidence=evidence
    ):
        fix.refresh_from_db(fields=["status"])
        verdict += f"; the fix was already {fix.get_status_display().lower()}, left as it was"
        signatures.record_event(root, "fix", f"{evidence} of fix {fix.sha[:12]}: {status.label.lower()}, {verdict}")
    elif deciding is None:
        signatures.record_event(
            root, "fix", f"{evidence} of fix {fix.sha[:12]} incomplete: {verdict}; the fix stays {fix.status}"
        )
    confirmation.status, confirmation.verdict, confirmation.judged_at = status, verdict[:500], timezone.now()
    confirmation.save(update_fields=["status", "verdict", "judged_at"])
