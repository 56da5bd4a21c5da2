"""The result files of each cycle of a generated history: JUnit XML and pytest report-logs.

``HistoryBuilder`` draws each test's outcome in a cycle (which failure classes are active, which
flaky tests fail) and writes the files a real pytest run would have written; ``plan_cycle`` makes a
cycle's full run and the rerun of its failures. ``Prefetch`` makes the next cycles' files on a
thread while the current one is ingested.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from .history_suite import FAILURE_CLASSES, FLAKY, FailureClass, HistorySpec, TestSpec, build_suite, window_cycles

TRACEBACK = """self = <{classname} object at 0x7f{hex}>

    def {name}(self):
        client = connect(STAGING_URL, timeout=120)
>       client.run_agent("triage", wait_for="agent_completed")

{file}:{line}:
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

E       {error_type}: {text}

{file}:{line}: {short_type}"""


@dataclass(slots=True)
class Outcome:
    """One test's drawn result in one run (not a stored row)."""

    test: TestSpec
    outcome: str  # passed, failed, error, skipped, xfailed
    duration: float
    cls: FailureClass | None = None
    text: str = ""


class HistoryBuilder:
    """The suite of a spec, and what happens to it cycle by cycle, written out as result files."""

    def __init__(self, spec: HistorySpec) -> None:
        self.spec = spec
        self.suite = build_suite(spec.tests, spec.seed, spec.flaky_rate)
        self.windows = {cls.key: window_cycles(cls, spec.cycles) for cls in FAILURE_CLASSES}
        blip_rng = random.Random(f"blips-{spec.seed}")
        self.blip_cycles = {c for c in range(2, spec.cycles + 1) if blip_rng.random() < FAILURE_CLASSES[-1].sporadic}
        self.hits = {
            cls.key: {t.index for t in self.suite if t.area in cls.areas and self._hit(cls, t)}
            for cls in FAILURE_CLASSES
        }

    @staticmethod
    def _hit(cls: FailureClass, test: TestSpec) -> bool:
        # A different slice of the bucket for each class, so that classes overlap only partly.
        offset = (int(hashlib.md5(cls.key.encode()).hexdigest()[:6], 16) % 1000) / 1000
        return ((test.bucket + offset) % 1.0) < cls.share

    def active(self, cls: FailureClass, cycle: int) -> bool:
        """Whether a failure class hits the suite in this cycle."""
        if cls.sporadic:
            return cycle in self.blip_cycles
        return any(first <= cycle <= last for first, last in self.windows[cls.key])

    # -- outcomes ---------------------------------------------------------------------------------------

    def outcomes(self, cycle: int, rng: random.Random, tests: list[TestSpec]) -> list[Outcome]:
        """Each test's outcome and duration in one run of this cycle."""
        active = [cls for cls in FAILURE_CLASSES if self.active(cls, cycle)]
        out = []
        for test in tests:
            if test.always_skipped:
                out.append(Outcome(test, "skipped", 0.0))
                continue
            if test.xfail:
                out.append(Outcome(test, "xfailed", round(test.base_duration, 3)))
                continue
            duration = round(test.base_duration * rng.uniform(0.8, 1.25), 3) if test.base_duration else 0.0
            result = Outcome(test, "passed", duration)
            for cls in active:
                if test.index in self.hits[cls.key] and rng.random() < cls.probability:
                    result.outcome = "error" if cls.kind == "error" else "failed"
                    result.cls = cls
                    result.text = cls.text(rng)
                    if cls.duration is not None:
                        result.duration = cls.duration
                    elif cls.kind == "error":
                        result.duration = round(rng.uniform(0.01, 0.2), 3)
                    break
            if result.cls is None and test.flaky and rng.random() < FLAKY.probability:
                result.outcome = "failed"
                result.cls = FLAKY
                result.text = FLAKY.text(rng)
            out.append(result)
        return out

    # -- files ------------------------------------------------------------------------------------------

    def _traceback(self, o: Outcome, rng: random.Random) -> str:
        cls = o.cls
        assert cls is not None
        return TRACEBACK.format(
            classname=o.test.classname,
            hex=f"{rng.getrandbits(40):010x}",
            name=o.test.name.split("[")[0],
            file=o.test.file,
            line=10 + o.test.index % 400,
            error_type=cls.error_type,
            text=o.text,
            short_type=cls.error_type.rsplit(".", 1)[-1],
        )

    def junit(self, cycle: int, run_no: int, results: list[Outcome], rng: random.Random) -> bytes:
        """The run as pytest's JUnit XML."""
        parts = []
        add = parts.append
        failures = sum(o.outcome == "failed" for o in results)
        errors = sum(o.outcome == "error" for o in results)
        skipped = sum(o.outcome in ("skipped", "xfailed") for o in results)
        total_time = sum(o.duration for o in results)
        add('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">')
        add(
            f'<testsuite name="pytest" errors="{errors}" failures="{failures}" skipped="{skipped}" '
            f'tests="{len(results)}" time="{total_time:.3f}" timestamp="{self._stamp(cycle, run_no)}" '
            f'hostname="ci-runner-{cycle % 7}">'
        )
        for o in results:
            t = o.test
            attrs = f'classname="{t.classname}" name={quoteattr(t.name)} time="{o.duration:.3f}"'
            if o.outcome == "passed":
                add(f"<testcase {attrs} />")
            elif o.outcome == "skipped":
                add(
                    f'<testcase {attrs}><skipped type="pytest.skip" message="needs a GPU runner">'
                    f"{t.file}:{10 + t.index % 400}: needs a GPU runner</skipped></testcase>"
                )
            elif o.outcome == "xfailed":
                add(f'<testcase {attrs}><skipped type="pytest.xfail" message="known bug LD-{t.index}" /></testcase>')
            elif o.outcome == "failed":
                cls = o.cls
                message = quoteattr(f"{cls.error_type}: {o.text}")
                add(
                    f"<testcase {attrs}><failure message={message}>{escape(self._traceback(o, rng))}</failure></testcase>"
                )
            else:
                cls = o.cls
                message = quoteattr(f'failed on setup with "{cls.error_type}: {o.text}"')
                add(f"<testcase {attrs}><error message={message}>{escape(self._traceback(o, rng))}</error></testcase>")
        add("</testsuite></testsuites>\n")
        return "".join(parts).encode("utf-8")

    def reportlog(self, cycle: int, run_no: int, results: list[Outcome], rng: random.Random) -> bytes:
        """The run as a pytest-reportlog file (JSON lines), whose keywords carry the markers."""
        dumps = json.dumps
        lines = [dumps({"pytest_version": "9.2.0", "$report_type": "SessionStart"})]
        add = lines.append
        for o in results:
            t = o.test
            keywords = {
                t.name: 1,
                **dict.fromkeys(t.markers, 1),
                t.classname.rsplit(".", 1)[1]: 1,
                t.file.rsplit("/", 1)[1]: 1,
                "e2e": 1,
                "tests": 1,
                "staging-suite": 1,
                "": 1,
            }
            line_no = 10 + t.index % 400
            base = {
                "nodeid": t.nodeid,
                "location": [t.file, line_no, t.name],
                "keywords": keywords,
                "sections": [],
                "user_properties": [],
                "$report_type": "TestReport",
            }
            setup = {**base, "when": "setup", "outcome": "passed", "longrepr": None, "duration": 0.0}
            teardown = {**base, "when": "teardown", "outcome": "passed", "longrepr": None, "duration": 0.0}
            if o.outcome == "skipped":
                setup.update(outcome="skipped", longrepr=[t.file, line_no, "Skipped: needs a GPU runner"])
                add(dumps(setup))
            elif o.outcome == "error":
                setup.update(outcome="failed", duration=o.duration, longrepr=self._longrepr(o, rng))
                add(dumps(setup))
            else:
                add(dumps(setup))
                call = {**base, "when": "call", "outcome": "passed", "longrepr": None, "duration": o.duration}
                if o.outcome == "failed":
                    call.update(outcome="failed", longrepr=self._longrepr(o, rng))
                elif o.outcome == "xfailed":
                    call.update(
                        outcome="skipped", wasxfail=f"known bug LD-{t.index}", longrepr=[t.file, line_no, "XFAIL"]
                    )
                add(dumps(call))
            add(dumps(teardown))
        exitstatus = 1 if any(o.outcome in ("failed", "error") for o in results) else 0
        add(dumps({"exitstatus": exitstatus, "$report_type": "SessionFinish"}))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _longrepr(self, o: Outcome, rng: random.Random) -> dict:
        cls = o.cls
        assert cls is not None
        return {
            "reprcrash": {
                "path": o.test.file,
                "lineno": 10 + o.test.index % 400,
                "message": f"{cls.error_type}: {o.text}",
            },
            "reprtraceback": {
                "reprentries": [{"type": "ReprEntryNative", "data": {"lines": self._traceback(o, rng).splitlines()}}],
                "extraline": None,
                "style": "long",
            },
            "sections": [],
            "chain": [],
        }

    @staticmethod
    def _stamp(cycle: int, run_no: int) -> str:
        return f"2026-01-01T00:00:00+00:00#{cycle}.{run_no}"


@dataclass(slots=True)
class CyclePlan:
    """The files of one cycle: the full run, and the rerun of its failures when there is one."""

    cycle: int
    full_name: str
    full: bytes
    full_count: int
    rerun_name: str = ""
    rerun: bytes | None = None
    rerun_count: int = 0


def plan_cycle(builder: HistoryBuilder, cycle: int) -> CyclePlan:
    """Everything random about a cycle, from its own seed: cycles can be made in any order."""
    spec = builder.spec
    rng = random.Random(f"{spec.seed}-{spec.slug}-{cycle}")
    outcomes = builder.outcomes(cycle, rng, builder.suite)
    report_log = cycle == 1 or cycle % 10 == 0
    data = builder.reportlog(cycle, 1, outcomes, rng) if report_log else builder.junit(cycle, 1, outcomes, rng)
    plan = CyclePlan(cycle, f"cycle-{cycle:04d}-full.{'jsonl' if report_log else 'xml'}", data, len(outcomes))
    failing = [o.test for o in outcomes if o.outcome in ("failed", "error")]
    if failing and rng.random() < spec.rerun_rate:
        again = builder.outcomes(cycle, rng, failing)
        plan.rerun_name = f"cycle-{cycle:04d}-rerun-failed.jsonl"
        plan.rerun = builder.reportlog(cycle, 2, again, rng)
        plan.rerun_count = len(again)
    return plan


class Prefetch:
    """Make the next cycles' files on a thread while the current one is ingested.

    The ingest spends much of its time waiting on PostgreSQL (psycopg releases the GIL there), so the
    files of the next cycle are ready when it returns: about a fifth off the wall time.
    """

    def __init__(self, builder: HistoryBuilder, depth: int = 2) -> None:
        self._queue: queue.Queue[CyclePlan | BaseException | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(builder,), name="history-files", daemon=True)
        self._thread.start()

    def _run(self, builder: HistoryBuilder) -> None:
        try:
            for cycle in range(1, builder.spec.cycles + 1):
                plan = plan_cycle(builder, cycle)
                while not self._stop.is_set():
                    try:
                        self._queue.put(plan, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(None)
        except BaseException as exc:  # handed to the consumer
            self._queue.put(exc)

    def __iter__(self) -> Iterator[CyclePlan]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop making files (the consumer stopped early, or is done) and wait for the thread."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()
