"""The key-metrics table writes a pass rate with its count ("passed/executed"); quarantined results are out of both.

Runs go in through real ingestion; the quarantine through the service, as from the test page.
"""

from __future__ import annotations

import pytest

from sessions.models import LoopSession
from sessions.selectors.cycles import Cell, cycle_table, session_cycles
from sessions.services import quarantine
from sessions.tests.test_quarantine import SESSION, flaky_case, run_suite, tomorrow

pytestmark = pytest.mark.django_db


def test_the_pass_rates_count_leaves_quarantined_results_out_like_the_rate(engineer) -> None:
    before = run_suite(1)
    quarantine.quarantine_test(before.environment, flaky_case().nodeid, "flaky", tomorrow().isoformat(), engineer)
    during = run_suite(2)
    assert (during.quarantined, during.quarantined_passed, during.quarantined_executed) == (1, 0, 1)
    table = cycle_table(session_cycles(LoopSession.objects.get(slug=SESSION)))
    rates = next(row for row in table.rows if row.label == "Pass rate")
    assert rates.cells == [Cell(90.0, 9, 10), Cell(100.0, 9, 9)]  # not 9 of 10 beside 100 %
