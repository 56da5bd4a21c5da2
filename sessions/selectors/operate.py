"""The rows the operate views act on (deploy, run, rerun, cancel) and show live (progress, logs)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from ..models import Deployment, FailureSignature, LoopSession, TestRun, WorkStatus


def session_to_operate(slug: str) -> LoopSession:
    """A session with its environment: the commands and revisions a deploy or a run reads."""
    return get_object_or_404(LoopSession.objects.select_related("environment"), slug=slug)


def run_to_operate(pk: int) -> TestRun:
    """A run with its session and environment: what a rerun starts from and the progress partial shows."""
    return get_object_or_404(TestRun.objects.select_related("session__environment"), pk=pk)


def run_to_cancel(pk: int) -> TestRun:
    return get_object_or_404(TestRun, pk=pk)


def deployment_to_operate(pk: int) -> Deployment:
    return get_object_or_404(Deployment, pk=pk)


def deployment_waited_for(run: TestRun) -> Deployment | None:
    """The deployment a queued run of a cycle waits for (its status and revision), for the progress partial."""
    if not run.deployment_id:
        return None
    return Deployment.objects.filter(pk=run.deployment_id).only("id", "status", "revision").first()


def revision_deployed_now(environment_id: int) -> str:
    """The revision of the environment's latest succeeded deployment ("" before the first): what runs now."""
    return (
        Deployment.objects.filter(environment_id=environment_id, status=WorkStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .values_list("revision", flat=True)
        .first()
        or ""
    )


def signature_to_operate(pk: int) -> FailureSignature:
    """A signature with its environment and the run it was last seen in (whose session a run of its tests joins)."""
    return get_object_or_404(
        FailureSignature.objects.select_related("environment", "last_seen_run__session__environment"), pk=pk
    )
