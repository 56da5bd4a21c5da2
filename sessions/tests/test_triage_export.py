"""The Markdown report: the seed logs' shape, with the five whys and whether each fix was verified."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions import demo
from sessions.services.export import _cell, _fence

pytestmark = pytest.mark.django_db


def test_the_demo_report_reads_like_a_seed_log(client, viewer) -> None:  # noqa: ANN001
    demo.load(lambda line: None)
    client.force_login(viewer)
    response = client.get(reverse("session_export", args=["demo"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="demo-report.md"'
    text = response.content.decode()
    for heading in ("# Golden path", "## Mission", "## Summary", "## Success criteria", "## Results per cycle",
                    "## Key metrics per cycle", "## Metrics against targets", "## Failures and their five whys"):  # fmt: skip
        assert heading in text, heading
    assert "Green at cycle" in text
    assert "- [x] 100% P1 pass rate" in text
    assert "| Cycle | Deploy | Run |" in text
    assert "### WebSocket 1011 internal error" in text
    assert "#### Five whys — Refuted" in text and "*Refuted: this root cause was disproved by a later run.*" in text
    assert "**Did not fix**" in text and "**Verified**, deployed by deployment" in text
    assert "**The error behind the error**:" in text
    assert "**Why 1**: Why are WebSocket connections closed with 1011?" in text
    assert "## Flaky tests" in text and "status_snapshot_consistent" in text


def test_table_cells_and_fences_keep_the_reports_structure() -> None:
    assert _cell("a | b\nc") == "a \\| b c"
    assert _cell(None) == "—"
    fenced = _fence("x ``` y")
    assert fenced.startswith("````\n") and fenced.endswith("\n````")
