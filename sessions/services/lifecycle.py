"""The fix lifecycle, and everything else that follows from a deployment succeeding or a run ending.

A fix (a commit attached to an analysis) is

- **deployed** when a succeeded deployment of the signature's environment carries its commit
  (``on_deployment_succeeded``; or at once when the fix is recorded after that deployment);
- **did not fix** when the first finished run after that deployment still shows a result of the
  signature; **verified** when the first finished run after it that executed every test the signature
  hit the last time it was seen shows none.

Verification is keyed on the deployed commit, not on time order alone (Sentry's release-order logic
misfires when old builds keep running; a deployed SHA does not). "After the deployment" means the run
was started after the deployment finished, or the run belongs to that deployment (a run queued with its
cycle's deploy is created before the deploy ends). A run that did not execute the tests the signature
last hit cannot show it is gone (a P1-only run after a fix for failures in P3 tests) and waits for one that
did. Interrupted runs and reruns of hand-picked tests are not used.

Signature statuses follow: fix deployed → ``fix_deployed``; verified → ``verified``; did not fix →
``investigating``. A verified signature that shows up again is ``regressed`` (written with the run's
summary in ``summary._write_signature_counts``; recorded in its history here).

``judge_fixes`` and ``record_regressions`` are steps of the run-completion pipeline
(``run_completion.complete_run``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db import transaction
from django.db.models import F, Q

from ..models import (
    Deployment,
    FailureSignature,
    Fix,
    Outcome,
    RunSignature,
    TestResult,
    TestRun,
    WorkStatus,
)
from . import signatures, webhooks


def commit_matches(fix_sha: str, deployed_sha: str) -> bool:
    """Short and long forms of one commit match (at least 7 hex digits)."""
    a, b = fix_sha.strip().lower(), deployed_sha.strip().lower()
    if len(a) < 7 or len(b) < 7:
        return a == b and a != ""
    return a.startswith(b) or b.startswith(a)


def _set_status(signature_id: int, status: str, detail: str, *, unless: tuple[str, ...] = ()) -> None:
    current = FailureSignature.objects.filter(pk=signature_id).values_list("status", flat=True).first()
    if current is None or current == status or current in unless:
        return
    FailureSignature.objects.filter(pk=signature_id).update(status=status, version=F("version") + 1)
    signatures.record_event(signature_id, "status", f"{current} → {status} ({detail})")


def _mark_deployed(fix: Fix, deployment: Deployment) -> bool:
    if not Fix.objects.filter(pk=fix.pk, status=Fix.Status.PENDING).update(
        status=Fix.Status.DEPLOYED, deployment=deployment
    ):
        return False  # someone else marked it
    fix.status, fix.deployment = Fix.Status.DEPLOYED, deployment
    root = signatures.root_of(fix.analysis.signature_id)
    _set_status(
        root,
        FailureSignature.Status.FIX_DEPLOYED,
        f"fix {fix.sha[:12]} deployed by deployment {deployment.pk} ({deployment.revision})",
        unless=(FailureSignature.Status.VERIFIED,),
    )
    return True


def on_deployment_succeeded(deployment: Deployment, contained: Collection[str] = ()) -> list[Fix]:
    """Mark pending fixes whose commit this deployment carries as deployed.

    ``contained``: fix commits the worker found among the deployed commit's ancestors (an environment
    with a repository); without a repository only the deployed commit itself carries a fix.
    """
    if not deployment.commit_sha:
        return []
    marked = []
    candidates = Fix.objects.filter(
        status=Fix.Status.PENDING, analysis__signature__environment_id=deployment.environment_id
    ).select_related("analysis")
    with transaction.atomic():
        for fix in candidates:
            carried = fix.sha in contained or commit_matches(fix.sha, deployment.commit_sha)
            if carried and _mark_deployed(fix, deployment):
                marked.append(fix)
    return marked


def _deployed_at(deployment: Deployment) -> datetime:
    return deployment.finished_at or deployment.started_at or deployment.created_at


def _judging_runs(environment_id: int) -> Q:
    """Runs that may judge a fix: finished, complete, not a rerun of hand-picked tests."""
    return Q(environment_id=environment_id, counted=True) & ~Q(scope=TestRun.Scope.SELECTED)


def _after(run: TestRun, deployment: Deployment) -> bool:
    if run.deployment_id == deployment.pk:
        return True
    started = run.started_at or run.created_at
    return started >= _deployed_at(deployment)


def _covers(run: TestRun, signature_ids: set[int], root: int) -> bool:
    """Did the run execute every test the signature hit the last time it was seen? (Two indexed lookups.)

    Only such a run can say the signature is gone: a P1-only run after a fix for failures in P3 tests
    would otherwise verify it without running one of them.
    """
    last = FailureSignature.objects.filter(pk=root).values_list("last_seen_run_id", flat=True).first()
    if last is None:
        return False
    if last == run.pk:
        return True
    executed = (Outcome.PASSED, Outcome.FAILED, Outcome.ERROR)
    hit = TestResult.objects.filter(run_id=last, signature_id__in=signature_ids).values_list("case_id", flat=True)
    if not hit.exists():
        return False
    ran_here = TestResult.objects.filter(run=run, outcome__in=executed).values_list("case_id", flat=True)
    # EXCEPT is hashed or sorted by the database: no nested loop over a 100,000-result run.
    missing = hit.order_by().difference(ran_here.order_by())
    return not list(missing[:1])


def _judge(fix: Fix, run: TestRun) -> bool:
    """Give the fix its verdict from this run; False when the run cannot tell (see ``_covers``)."""
    own = fix.analysis.signature_id
    root = signatures.root_of(own)
    ids = {own, root}
    still_there = RunSignature.objects.filter(run=run, signature_id__in=ids).exists()
    if not still_there and not _covers(run, ids, root):
        return False
    return record_verdict(fix, run, root, verified=not still_there)


def record_verdict(fix: Fix, run: TestRun, root: int, *, verified: bool, evidence: str = "") -> bool:
    """Give a deployed fix its verdict, once: the fix, the signature's status and history, the webhook.

    Shared by the first run that can judge (``_judge``) and a confirmation by reruns
    (``services/fix_confirmations.py``), whose ``evidence`` names all its runs. False when the fix was
    judged meanwhile (the compare-and-set on its status found it no longer deployed).
    """
    verdict = Fix.Status.VERIFIED if verified else Fix.Status.DID_NOT_FIX
    if not Fix.objects.filter(pk=fix.pk, status=Fix.Status.DEPLOYED).update(status=verdict, verified_by=run):
        return False  # judged meanwhile by another run
    fix.status, fix.verified_by = verdict, run
    by = evidence or f"run {run.pk}"
    if not verified:
        detail = f"fix {fix.sha[:12]} did not fix: {by} still shows it"
        signatures.record_event(root, "fix", detail[:500])
        _set_status(root, FailureSignature.Status.INVESTIGATING, f"run {run.pk}: fix {fix.sha[:12]} did not fix")
    else:
        signatures.record_event(root, "fix", f"fix {fix.sha[:12]} verified by {by}"[:500])
        _set_status(root, FailureSignature.Status.VERIFIED, f"run {run.pk}: fix {fix.sha[:12]} verified")
    webhooks.fix_judged(fix, run, root, verified=verified)
    return True


def on_fix_added(fix: Fix) -> None:
    """A fix recorded after its commit went out: mark it deployed, and judge it by a run already finished."""
    environment_id = fix.analysis.signature.environment_id
    sha = fix.sha.strip().lower()
    prefixes = [sha[:n] for n in range(7, len(sha) + 1)]
    deployment = (
        Deployment.objects.filter(environment_id=environment_id, status=WorkStatus.SUCCEEDED)
        .filter(Q(commit_sha__in=prefixes) | Q(commit_sha__startswith=sha))
        .order_by("finished_at", "id")
        .first()
    )
    if deployment is None or not _mark_deployed(fix, deployment):
        return
    _judge_from(fix, deployment)


def _judge_from(fix: Fix, deployment: Deployment) -> None:
    """Judge a deployed fix by the first counted run after its deployment that can tell."""
    since = _deployed_at(deployment)
    runs = (
        TestRun.objects.filter(_judging_runs(deployment.environment_id))
        .filter(Q(deployment=deployment) | Q(started_at__gte=since) | Q(started_at__isnull=True, created_at__gte=since))
        .order_by("finished_at", "id")
    )
    for run in runs[:200]:
        if _judge(fix, run):
            return


def judge_fixes(run: TestRun) -> list[Fix]:
    """Judge the deployed fixes of the run's environment that this run is the first to be able to judge."""
    if not run.counted or run.scope == TestRun.Scope.SELECTED:
        return []
    judged = []
    fixes = Fix.objects.filter(
        status=Fix.Status.DEPLOYED, deployment__environment_id=run.environment_id
    ).select_related("deployment", "analysis")
    with transaction.atomic():
        for fix in fixes:
            if _after(run, fix.deployment) and _judge(fix, run):
                judged.append(fix)
    return judged


def record_regressions(run: TestRun) -> None:
    """A verified signature that a counted run shows again is *regressed*; its history says so.

    Only counted runs: a run against an unreachable target or one cut off by a cancel says nothing
    about whether a fix held.
    """
    if not run.counted:
        return
    regressed = list(
        RunSignature.objects.filter(run=run, signature__status=FailureSignature.Status.VERIFIED).values_list(
            "signature_id", flat=True
        )
    )
    for signature_id in regressed:
        _set_status(signature_id, FailureSignature.Status.REGRESSED, f"back in run {run.pk}")
        webhooks.signature_regressed(signature_id, run)


def reconsider_after_counting_changed(run: TestRun) -> None:
    """A run was excluded or included after it ended: fix verdicts follow.

    Verdicts this run gave are taken back (the fix is *deployed* again, the signature *fix deployed*);
    if the run counts now, it judges what it can; each fix taken back is judged again by the later
    counted runs, as when it was first deployed.
    """
    taken_back = []
    for fix in Fix.objects.filter(verified_by=run).select_related("analysis", "deployment"):
        Fix.objects.filter(pk=fix.pk).update(status=Fix.Status.DEPLOYED, verified_by=None)
        fix.status, fix.verified_by = Fix.Status.DEPLOYED, None
        root = signatures.root_of(fix.analysis.signature_id)
        signatures.record_event(root, "fix", f"verdict of run {run.pk} on fix {fix.sha[:12]} taken back")
        _set_status(root, FailureSignature.Status.FIX_DEPLOYED, f"run {run.pk} no longer counts")
        taken_back.append(fix)
    if run.counted:
        judge_fixes(run)
    for fix in taken_back:
        if fix.status == Fix.Status.DEPLOYED and fix.deployment is not None:
            _judge_from(fix, fix.deployment)
