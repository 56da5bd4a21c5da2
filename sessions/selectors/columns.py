"""The columns the pages read of the large rows, shared by several pages."""

from __future__ import annotations

# The columns the session page, the trend chart and the run lists read; the rest of a run (logs,
# command, properties) can be large and is not shown there.
RUN_SUMMARY_FIELDS = (
    "id", "session_id", "cycle_id", "deployment_id", "label", "status", "source", "scope", "incomplete",
    "exitstatus", "created_at", "started_at", "finished_at", "rerun_of_id", "summary_written",
    "total", "passed", "failed", "errors", "skipped", "xfailed", "xpassed", "suspect",
    "pass_rate", "duration_s", "mrr_at_risk", "by_priority", "metrics", "counted", "excluded", "excluded_reason",
    "quarantined", "quarantined_passed", "quarantined_executed",
)  # fmt: skip

# Text a row of a results table shows of a traceback; the full text can be 64 KB per result.
DETAILS_PREVIEW_CHARS = 6_000
