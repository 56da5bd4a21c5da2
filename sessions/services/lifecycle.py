"""The fix lifecycle: deployed when a deployment carries the commit, verified or not by the next run.

Verification is keyed on the deployed commit, not on time order alone: a fix
is judged by the first finished run of the environment after the deployment
that carried it (Sentry's release-order logic misfires when old builds keep
running; a deployed SHA does not).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from ..models import Deployment, FailureSignature, Fix, RunSignature, TestRun, WorkStatus


def commit_matches(fix_sha: str, deployed_sha: str) -> bool:
    """Short and long forms of one commit match (at least 7 hex digits)."""
    a, b = fix_sha.strip().lower(), deployed_sha.strip().lower()
    if len(a) < 7 or len(b) < 7:
        return a == b and a != ""
    return a.startswith(b) or b.startswith(a)


def on_deployment_succeeded(deployment: Deployment) -> list[Fix]:
    """Mark pending fixes whose commit this deployment carries as deployed."""
    if not deployment.commit_sha:
        return []
    marked = []
    candidates = Fix.objects.filter(
        status=Fix.Status.PENDING, analysis__signature__environment_id=deployment.environment_id
    ).select_related("analysis__signature")
    with transaction.atomic():
        for fix in candidates:
            if commit_matches(fix.sha, deployment.commit_sha):
                fix.status = Fix.Status.DEPLOYED
                fix.deployment = deployment
                fix.save(update_fields=["status", "deployment"])
                sig = fix.analysis.signature
                if sig.status not in (FailureSignature.Status.VERIFIED,):
                    FailureSignature.objects.filter(pk=sig.pk).update(status=FailureSignature.Status.FIX_DEPLOYED)
                marked.append(fix)
    return marked


def on_run_finished(run: TestRun) -> list[Fix]:
    """Judge deployed fixes by this run when it is the first finished full run after their deployment."""
    if run.status != WorkStatus.FINISHED or run.incomplete or run.scope == TestRun.Scope.SELECTED:
        return []
    judged = []
    fixes = Fix.objects.filter(
        status=Fix.Status.DEPLOYED, deployment__environment_id=run.environment_id
    ).select_related("deployment", "analysis__signature")
    seen_here = set(RunSignature.objects.filter(run=run).values_list("signature_id", flat=True))
    with transaction.atomic():
        for fix in fixes:
            deployed_at = fix.deployment.finished_at or fix.deployment.created_at
            if run.created_at < deployed_at:
                continue
            earlier = (
                TestRun.objects.filter(
                    environment_id=run.environment_id,
                    status=WorkStatus.FINISHED,
                    incomplete=False,
                    created_at__gte=deployed_at,
                    created_at__lt=run.created_at,
                )
                .filter(~Q(scope=TestRun.Scope.SELECTED))
                .exists()
            )
            if earlier:
                continue
            sig = fix.analysis.signature
            still_there = sig.pk in seen_here or sig.merged.filter(pk__in=seen_here).exists()
            fix.status = Fix.Status.DID_NOT_FIX if still_there else Fix.Status.VERIFIED
            fix.verified_by = run
            fix.save(update_fields=["status", "verified_by"])
            new_status = FailureSignature.Status.INVESTIGATING if still_there else FailureSignature.Status.VERIFIED
            FailureSignature.objects.filter(pk=sig.pk).update(status=new_status)
            judged.append(fix)
    return judged
