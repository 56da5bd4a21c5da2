"""``ResultWriter``: the one way results are stored, for a live run and for an uploaded file alike.

An upload calls ``add`` once, inside its own transaction (a refused file stores nothing); the worker
calls it about every second while the report-log grows, each call in a transaction of its own.
On PostgreSQL the rows go in with ``COPY`` (``copy_storage``); elsewhere with ``bulk_create``
(``orm_storage``). Both engines share the writer's caches (``state``), so a batch asks the database
only about the cases and signatures it has not met yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction

from ...ingest.records import ParsedResult
from ...models import TestRun
from .copy_storage import CopyStorage
from .orm_storage import OrmStorage
from .state import Undo, WriterState
from .tally import RunTally


class ResultWriter:
    """Write results of one run in batches; keeps the caches that make batches cheap.

    What the run's summary needs of it afterwards (``summary.StoredResults``): ``count``, the results
    it stored; ``prioritized``, whether one of them belongs to a case with a priority; ``metrics()``;
    ``tally``, the run's figures when this writer stored all of its results (else None).

    ``sole``: this writer stores every result of the run, in the transaction that completes it (an
    upload). Then, on PostgreSQL, it keeps a ``RunTally`` and the run's end reads it instead of
    counting the rows again (``tally.py``).
    """

    def __init__(self, run: TestRun, *, sole: bool = False) -> None:
        self.run = run
        postgresql = connection.vendor == "postgresql"
        self.state = WriterState(run, RunTally() if sole and postgresql else None)
        self.storage = CopyStorage(self.state) if postgresql else OrmStorage(self.state)
        self.metric_values: dict[str, list[float]] = {}
        self.count = 0

    @property
    def tally(self) -> RunTally | None:
        """The figures of every result of the run, or None (not a sole writer, or a call was rolled back)."""
        return self.state.tally

    @property
    def prioritized(self) -> bool:
        """False while no stored result belongs to a case with a priority: the summary skips that count."""
        return self.state.prioritized

    def add(self, results: Iterable[ParsedResult]) -> int:
        """Store results in one transaction (a savepoint inside an upload's); return how many.

        On any error nothing of this call is stored, and the caches forget what it added, so that
        the same results can be added again (a live run retries after a unique-check race).
        """
        undo = Undo()
        metrics: dict[str, list[float]] = {}
        state = self.state
        prioritized = state.prioritized
        try:
            with transaction.atomic():
                stored = self.storage.add(results, undo, metrics)
        except BaseException as exc:
            state.forget(undo)
            state.prioritized = prioritized
            if isinstance(exc, IntegrityError):
                state.all_cases_known = False  # another run created a case: ask the database again
            raise
        for name, values in metrics.items():
            self.metric_values.setdefault(name, []).extend(values)
        self.count += stored
        return stored

    def metrics(self) -> dict[str, float]:
        """The median of each numeric property the tests reported (record_property / <properties>)."""
        out: dict[str, float] = {}
        for name, values in self.metric_values.items():
            ordered = sorted(values)
            mid = len(ordered) // 2
            out[name] = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return out
