"""The signature page's fix-confirmation panel: the confirmations of its fixes, each with its runs as evidence.

One query, and none at all while no fix of the signature was ever confirmed (the fixes' prefetch says
so: ``has_confirmations``): the page's query count stays bounded whatever the size of the runs (test_query_bounds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import (
    CONFIRMATION_RUNS_DEFAULT,
    CONFIRMATION_RUNS_MAX,
    Analysis,
    Fix,
    FixConfirmation,
    FixConfirmationRun,
    TestRun,
)

CONFIRMATIONS_SHOWN = 5
RUNS_SHOWN = CONFIRMATIONS_SHOWN * 10  # at most 10 runs each (CONFIRMATION_RUNS_MAX)


@dataclass(slots=True)
class ConfirmationPanel:
    """One confirmation as the panel shows it: the fix it confirms, its verdict, its runs in order."""

    confirmation: FixConfirmation
    fix: Fix
    runs: list[TestRun] = field(default_factory=list)


def confirmation_section(analyses: list[Analysis]) -> dict:
    """``confirmable``: the deployed fixes (waiting for a verdict); ``confirmations``: the latest ones, newest first.

    Reads the fixes the page already prefetched with its analyses.
    """
    fixes = {fix.pk: fix for analysis in analyses for fix in analysis.fixes.all()}
    confirmable = [fix for fix in fixes.values() if fix.status == Fix.Status.DEPLOYED]
    choices = {"confirm_choices": range(1, CONFIRMATION_RUNS_MAX + 1), "confirm_default": CONFIRMATION_RUNS_DEFAULT}
    if not any(getattr(fix, "has_confirmations", True) for fix in fixes.values()):
        return {"confirmable": confirmable, "confirmations": [], **choices}
    rows = (
        FixConfirmationRun.objects.filter(confirmation__fix_id__in=list(fixes))
        .select_related("confirmation", "confirmation__requested_by", "run")
        .only(
            "number",
            "confirmation__id",
            "confirmation__fix_id",
            "confirmation__runs_requested",
            "confirmation__status",
            "confirmation__verdict",
            "confirmation__requested_at",
            "confirmation__judged_at",
            "confirmation__requested_by__username",
            "run__id",
            "run__label",
            "run__status",
            "run__passed",
            "run__failed",
            "run__errors",
            "run__skipped",
            "run__total",
            "run__incomplete",
            "run__excluded",
            "run__summary_written",
        )
        .order_by("-confirmation_id", "number")[:RUNS_SHOWN]
    )
    panels: dict[int, ConfirmationPanel] = {}
    for row in rows:
        panel = panels.get(row.confirmation.pk)
        if panel is None:
            if len(panels) == CONFIRMATIONS_SHOWN:
                break
            panel = panels[row.confirmation.pk] = ConfirmationPanel(row.confirmation, fixes[row.confirmation.fix_id])
        panel.runs.append(row.run)
    return {"confirmable": confirmable, "confirmations": list(panels.values()), **choices}
