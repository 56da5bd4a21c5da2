"""The deployment page: the deployment, the runs against it and the fixes it shipped."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from ..models import Deployment, Fix, TestRun
from .columns import RUN_SUMMARY_FIELDS


def deployment_for_page(pk: int) -> Deployment:
    return get_object_or_404(
        Deployment.objects.select_related("environment", "cycle", "cycle__session", "triggered_by"), pk=pk
    )


def deployment_runs(deployment: Deployment, limit: int = 20) -> list[TestRun]:
    return list(
        deployment.runs.select_related("cycle").only(*RUN_SUMMARY_FIELDS, "cycle__number").order_by("-id")[:limit]
    )


def deployment_fixes(deployment: Deployment) -> list[Fix]:
    return list(deployment.fixes.select_related("analysis__signature").order_by("created_at"))


def deployment_page(deployment: Deployment) -> dict:
    return {"deployment": deployment, "runs": deployment_runs(deployment), "fixes": deployment_fixes(deployment)}
