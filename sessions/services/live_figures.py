"""What a live run's page shows beyond its counts, kept by the process that stores the run's results.

Two kinds of process store results: a worker running the suite (one ``LiveFigures`` for the whole run,
in memory) and a web process taking a CI client's batch (any process may get the next batch, so the
figures go on from the state the last batch saved in the row: ``as_json(with_state=True)`` and
``LiveFigures.resume``).

The run page polls one partial every 2 s; it must not count or group results on each poll (a
100,000-result run would make every poll scan them). So the worker, which knows when it stored new
results, reads only the rows stored since its last look (``id > last``, on the ``result_run_outcome``
index), adds them to counters it keeps in memory, and writes the lot into ``TestRun.live_figures`` in
the same UPDATE as the live counts: the cards, the progress bar, the failures by signature and the
counts by priority all come from one row and always agree.

``live_figures``::

    {"rate": 11.5,                  # tests per second over the last RATE_WINDOW_S (null while unknown)
     "rate_span_s": 28.0,           # the span the rate was measured over
     "by_priority": {"P1": {"tests", "passed", "failed", "errors", "skipped", "xfailed", "xpassed", "pass_rate"}},
     "signatures": [{"id", "results", "newest", "test", "message"}],   # newest failure first
     "signature_count": 7}          # signatures hit so far (the list keeps SIGNATURES_KEPT)
"""

from __future__ import annotations

import time
from collections import deque

from django.db.models import Count, Max

from ..models import Outcome, TestResult
from .summary import COUNT_FIELD, pass_rate

RATE_WINDOW_S = 30.0  # the rate is measured over about this long: recent, not since the start
RATE_MIN_SPAN_S = 3.0  # below this span (or before the first result) there is no rate yet
SIGNATURES_KEPT = 50
MESSAGE_CHARS = 300  # the row is rewritten every second: its JSON stays small (50 × under 1 kB)
NODEID_CHARS = 500
FAILING = (Outcome.FAILED, Outcome.ERROR)
ALL_OUTCOMES = tuple(Outcome)


class LiveFigures:
    """The live figures of one run: call ``observe`` once per tick, write ``as_json()`` with the counts."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.last_id = 0
        self.seen_total = 0
        self.samples: deque[tuple[float, int]] = deque()  # (monotonic time, total), from the first result on
        self.by_priority: dict[str, dict[str, int]] = {}
        self.signatures: dict[int, dict] = {}

    def observe(self, total: int, now: float | None = None) -> None:
        """Note the run's total at this tick; read the results stored since the last look, if any."""
        now = time.monotonic() if now is None else now
        if total > self.seen_total:
            self.read_new_results()
            self.seen_total = total
        if total <= 0:
            return  # collection and set-up time is not part of the rate
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()

    def rate(self) -> tuple[float | None, float]:
        """(tests per second over the recent window, the window's span); None while too early to say."""
        if len(self.samples) < 2:
            return None, 0.0
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        span = t1 - t0
        if span < RATE_MIN_SPAN_S:
            return None, span
        return (n1 - n0) / span, span

    def read_new_results(self) -> None:
        """Two queries over the rows stored since the last look: counts by priority and signature, then the
        newest failure of each signature that got one."""
        rows = (
            TestResult.objects.filter(run_id=self.run_id, outcome__in=ALL_OUTCOMES, id__gt=self.last_id)
            .values_list("case__priority", "outcome", "signature_id")
            .annotate(n=Count("id"), newest=Max("id"))
            .order_by()
        )
        newest_failures: dict[int, int] = {}
        for priority, outcome, signature_id, n, newest in rows:
            self.last_id = max(self.last_id, newest)
            if priority:
                bucket = self.by_priority.setdefault(priority, dict.fromkeys(COUNT_FIELD.values(), 0))
                bucket[COUNT_FIELD.get(outcome, "passed")] += n
            if outcome in FAILING and signature_id is not None:
                entry = self.signatures.setdefault(signature_id, {"id": signature_id, "results": 0, "newest": 0})
                entry["results"] += n
                newest_failures[signature_id] = max(newest, newest_failures.get(signature_id, 0))
        if not newest_failures:
            return
        chosen = sorted(newest_failures.values(), reverse=True)[:SIGNATURES_KEPT]
        for pk, signature_id, nodeid, message in TestResult.objects.filter(pk__in=chosen).values_list(
            "pk", "signature_id", "case__nodeid", "message"
        ):
            entry = self.signatures[signature_id]
            first_line = (message or "").split("\n", 1)[0]
            entry.update(newest=pk, test=nodeid[:NODEID_CHARS], message=first_line[:MESSAGE_CHARS])

    @classmethod
    def resume(cls, run_id: int, saved: object) -> LiveFigures:
        """Figures that go on from a state ``as_json(with_state=True)`` wrote (none or unreadable: from scratch)."""
        figures = cls(run_id)
        state = saved.get("state") if isinstance(saved, dict) else None
        if not isinstance(state, dict):
            return figures
        try:
            figures.last_id = int(state["last_id"])
            figures.seen_total = int(state["seen_total"])
            figures.samples = deque((float(t), int(n)) for t, n in state["samples"])
            figures.by_priority = {
                str(k): {str(f): int(n) for f, n in v.items()} for k, v in state["by_priority"].items()
            }
            figures.signatures = {int(e["id"]): dict(e) for e in state["signatures"]}
        except (KeyError, TypeError, ValueError, AttributeError):
            return cls(run_id)  # a row written by another version: start again from the next results
        return figures

    def as_json(self, *, with_state: bool = False) -> dict:
        rate, span = self.rate()
        by_priority = {}
        for name, bucket in sorted(self.by_priority.items()):
            counts = {key: bucket[key] for key in COUNT_FIELD.values()}
            by_priority[name] = counts | {
                "tests": sum(counts.values()),
                "pass_rate": pass_rate(counts["passed"], counts["failed"], counts["errors"]),
            }
        newest_first = sorted(
            (entry for entry in self.signatures.values() if entry.get("test")), key=lambda e: -e["newest"]
        )
        return {
            "rate": None if rate is None else round(rate, 3),
            "rate_span_s": round(span, 1),
            "by_priority": by_priority,
            "signatures": newest_first[:SIGNATURES_KEPT],
            "signature_count": len(self.signatures),
        } | ({"state": self._state()} if with_state else {})

    def _state(self) -> dict:
        return {
            "last_id": self.last_id,
            "seen_total": self.seen_total,
            "samples": [list(sample) for sample in self.samples],
            "by_priority": self.by_priority,
            "signatures": list(self.signatures.values()),
        }
