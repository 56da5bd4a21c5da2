"""What one ``ResultWriter`` knows between batches, shared by both storage engines.

A writer stores a run's results in many calls (a live run calls ``add`` about every second). The ids
of the cases and signatures it has met, each marker set's priority and area, the compiled category
patterns and the fingerprints already computed are kept here, so that a batch asks the database only
about what is new. ``Undo`` lists what one ``add`` added, so that a call rolled back leaves the
caches as they were before it.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from ...ingest.records import Outcome
from ...models import ImpactRule, TestRun
from ..impact import ImpactClassifier
from ..signatures import compiled_categories
from .tally import RunTally

BATCH_SIZE = 10_000  # results per batch, on both engines
MEMO_LIMIT = 4096  # entries of a memo (fingerprints, marker sets) before it starts again
FAILING = (Outcome.FAILED, Outcome.ERROR)  # the outcomes that get a failure signature
TIMED = (Outcome.PASSED, Outcome.FAILED)  # the outcomes whose too-short duration makes a result suspect


class Undo:
    """Cache entries added by one ``add`` call, forgotten if its transaction is rolled back."""

    __slots__ = ("cases", "signatures")

    def __init__(self) -> None:
        self.cases: list[str] = []
        self.signatures: list[str] = []


class WriterState:
    """The caches of one writer: read by the engines and the signature look-up, kept across calls."""

    def __init__(self, run: TestRun, tally: RunTally | None = None) -> None:
        self.run = run
        self.tally = tally  # kept by a writer that stores every result of its run (tally.py)
        self.environment = run.environment
        self.classifier = ImpactClassifier(self.environment)
        self.case_ids: dict[str, int] = {}  # nodeid_hash → case id
        self.signature_ids: dict[str, int] = {}  # fingerprint → id of the signature that receives results
        self.categories = compiled_categories()
        self.suspect_limit: float | None = settings.SUSPECT_DURATION_S if self.environment.end_to_end else None
        self.batch_size = BATCH_SIZE
        # True once a result stored by this writer belongs to a case with a priority. While it is False
        # (and the writer stored all of the run's results), the summary skips counting by priority.
        self.prioritized = False
        self.prioritized_ids: set[int] = set()
        self.all_cases_known = False  # case_ids holds every case of the environment
        # Without glob rules a case's priority and area depend on its markers only.
        globs = ImpactRule.objects.filter(
            Q(environment=self.environment) | Q(environment__isnull=True), match=ImpactRule.Match.GLOB
        )
        self.by_markers: dict[tuple[str, ...], tuple[str, int | None]] | None = None if globs.exists() else {}
        self.fingerprints: dict[tuple[str, str, tuple[str, ...]], tuple[str, str]] = {}  # (type, text, site) → key

    def classify(self, nodeid: str, markers: tuple[str, ...]) -> tuple[str, int | None]:
        """A new case's priority and business area id, remembered by marker set when no glob rule exists."""
        memo = self.by_markers
        if memo is not None:
            found = memo.get(markers)
            if found is None:
                if len(memo) > MEMO_LIMIT:
                    memo.clear()
                cls = self.classifier.classify(nodeid, markers)
                found = memo[markers] = (cls.priority, cls.area_id)
            return found
        cls = self.classifier.classify(nodeid, markers)
        return cls.priority, cls.area_id

    def remember_cases(self, rows: list[tuple[str, int, str]]) -> None:
        """Cases read from the database, as (nodeid_hash, id, priority) rows."""
        known = self.case_ids
        for key, pk, priority in rows:
            known[key] = pk
            if priority:
                self.prioritized_ids.add(pk)

    def forget(self, undo: Undo) -> None:
        """Drop what a rolled-back ``add`` put in the caches: those rows do not exist."""
        self.tally = None  # part of a batch may be counted in it: the run's end counts from the rows
        for key in undo.cases:
            self.case_ids.pop(key, None)
        for key in undo.signatures:
            self.signature_ids.pop(key, None)


def collect_metrics(props: dict[str, str], metrics: dict[str, list[float]]) -> None:
    """Add a result's numeric properties (``record_property``, ``<properties>``) to ``metrics``."""
    for name, value in props.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number == number and abs(number) != float("inf"):
            metrics.setdefault(name, []).append(number)
