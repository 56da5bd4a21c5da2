"""The end of every run, in one place: ``complete_run`` and its steps, in order.

Every way a run can end goes through here: the worker finishing or timing out, a cancel of a queued
run, a deployment that failed before its cycle's run started, the reaper declaring a run lost or
writing a summary a dead worker left unwritten, a failed enqueue, and an upload. Nothing else writes
a summary, and no model signal does work behind it, so what a run's end changes is read top to
bottom in ``complete_run``.

The steps:

1. **summary** (``summary.write_summary``): the counts from the stored rows (an upload's from its writer's
   tally of those rows, ``ingestion/tally.py``), pass rate, by priority,
   MRR at risk, the final status, the RunSignature rows and each signature's lifetime counters, all
   in one transaction.
2. **counting** (``counting.decide``): a finished run that never reached its target (nearly all of
   its tests failed with one infrastructure signature) is excluded; the run *counts* when it finished
   complete and is not excluded; the session's headline becomes its latest counted run. The steps
   below act on counted runs only.
3. **merges** (``signatures.absorb_merged``): results the run wrote to a signature merged while it
   was running move to the merge target.
4. **regressions** (``lifecycle.record_regressions``): a verified signature the run shows again is
   regressed, and its history says so.
5. **fix verdicts** (``lifecycle.judge_fixes``): deployed fixes this run is the first to judge become
   verified or did not fix; then (``fix_confirmations.record_run``) a fix confirmation by reruns whose
   last run this is gets its verdict, from all its runs together.
6. **flakiness** (``flaky.record_run``): the tests' recent outcomes and flaky marks (an upload's new failing
   tests got their first letter with the test case: ``ingestion/tally.py``).
7. **criteria** (``criteria.evaluate_run``): the session's automatic success criteria.
8. **comparison** (``comparisons.record_run``): a full run's comparison with the run its page compares it
   with by default, stored once so that the page reads it instead of recounting both runs.
9. **notifications** (``webhooks.run_finished``): ``signature.new`` for the signatures a counted run saw
   first, then ``run.finished``; deliveries are queued on commit and sent by workers, never blocking here.

The status is final before step 1 starts. A step that fails after the summary leaves the run ended
with its summary written (the worker wrote the status first); the failure is raised to the caller.
Steps 1 and 2 commit together, so that nobody reads a written summary whose counting is still undecided.
"""

from __future__ import annotations

from django.db import transaction

from ..ingest.records import RunInfo
from ..models import TestRun
from . import comparisons, counting, criteria, fix_confirmations, flaky, lifecycle, signatures, webhooks
from .summary import StoredResults, write_summary


def complete_run(
    run: TestRun, *, status: str, writer: StoredResults | None = None, info: RunInfo | None = None
) -> TestRun:
    """End ``run`` in ``status``: write its summary, then follow up, in the order the module lists."""
    with transaction.atomic():  # a reader never sees a written summary whose counting is not decided yet
        run = write_summary(run, writer, info, status=status)
        counting.decide(run)
    signatures.absorb_merged(run.pk)
    lifecycle.record_regressions(run)
    lifecycle.judge_fixes(run)
    fix_confirmations.record_run(run)
    tally = getattr(writer, "tally", None)  # an upload's writer: its new failing tests' history is written
    flaky.record_run(run, tally.first_failures if tally is not None else None)
    criteria.evaluate_run(run)
    comparisons.record_run(run)
    webhooks.run_finished(run)
    return run
