"""What a writer that stores *every* result of its run learns on the way, so the run's end need not read them back.

An upload creates its run, stores all of its results with one ``ResultWriter`` and completes it, in one
transaction: nothing else can add a result to that run. Its writer therefore knows, from the rows it
formatted, what ``summary.write_summary`` would otherwise count again from 100,000 stored rows — the counts by
outcome, the suspect results, the tests' total duration, each signature's results and tests — and which
of the test cases it created failed (``flaky.record_run``: their history starts with that letter, written
with the case itself instead of updated afterwards).

A live run's writer stores its results over many transactions while other runs may complete, so it keeps
no tally (``ResultWriter(run, sole=False)``, the default): the run's end counts from the rows as before.
``sessions/tests/test_ingest_tally.py`` checks every figure against the database's own count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ...ingest.records import Outcome

FIRST_LETTER = {Outcome.FAILED: "F", Outcome.ERROR: "E"}  # flaky.CODES of the failing outcomes
# Failing tests a tally follows one by one (pairs, first letters): beyond, memory would grow with the file's
# failures (60 MB for 100,000), so the pairs are dropped and read from the rows, and no more letters are written.
LIMIT = 20_000


class RunTally:
    """The figures of the results one writer stored, kept batch by batch by the COPY engine."""

    __slots__ = (
        "duration",
        "first_failures",
        "new_modules",
        "outcomes",
        "signature_cases",
        "signature_results",
        "suspect",
        "timed",
    )

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.suspect = 0
        # The known durations' sum, added one by one in file order as a sequential SQL SUM adds the rows (a
        # parallel one may differ in the last bits), and their number.
        self.duration = 0.0
        self.timed = 0
        self.signature_results: Counter[int] = Counter()  # signature id → results
        # (signature id, case id); None once over LIMIT: the run's end then counts the signatures from the rows.
        self.signature_cases: set[tuple[int, int]] | None = set()
        # Cases this writer created from a failed or errored result → the letter written in their history.
        self.first_failures: dict[int, str] = {}  # at most LIMIT: the others' history is written by flaky.py
        self.new_modules: dict[int, str] = {}  # those cases' module, as stored (signature_module pairs)

    def add_outcomes(self, outcomes: Iterable[str], suspect: int, duration: float, timed: int) -> None:
        """A batch's outcomes and suspect results; ``duration``: the running sum so far, over ``timed`` more."""
        self.outcomes.update(outcomes)
        self.suspect += suspect
        self.duration = duration
        self.timed += timed

    def tests_duration(self) -> float | None:
        """SQL's ``SUM(duration)`` of the run: None when no result has a known duration."""
        return self.duration if self.timed else None
