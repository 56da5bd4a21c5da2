"""Plain records that parsers produce and storage consumes.

Parsing never touches the ORM: a parser turns bytes into these records, and
``sessions.services.ingestion`` stores them. Keeping the boundary plain lets the
parsers be tested without a database and benchmarked against a bare COPY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"


# Bounds on stored text: a 5 MB failure message is kept, truncated, never refused.
MAX_MESSAGE_CHARS = 4_000
MAX_DETAILS_CHARS = 64_000
# What loopdash itself writes for a test that a cancel, a timeout or a lost worker cut off: not a
# product failure (its signature is marked ``internal``, off the board and out of MRR at risk).
INTERRUPTED_MESSAGE = "the run ended before this test finished"
# A test that took longer than a day did not: some runners (container-structure-test) write nanoseconds
# as seconds, which would show one test as 31 years. Such a duration is stored as unknown.
MAX_TEST_SECONDS = 24 * 3600.0
# The same guard for a whole run's own ``time``: a results file that ran for more than a week is a
# unit mistake, not a run (a run of 62 years, summed from nanoseconds, must never be shown).
MAX_RUN_SECONDS = 7 * 24 * 3600.0
MAX_SUITE_OUTPUT_CHARS = 32_000  # suite-level <system-out>/<system-err> kept for the run page


@dataclass(slots=True)
class ParsedResult:
    """One test in one run, already combined from its phases and children."""

    nodeid: str  # pytest node id, or "classname::name" for other runners
    name: str  # the test's own name (last part of the node id)
    file: str = ""  # source file when known ("" otherwise)
    outcome: Outcome = Outcome.PASSED
    duration: float | None = None  # seconds; None when unknown or nonsense
    message: str = ""  # first line(s) of the failure/skip reason, bounded
    details: str = ""  # traceback / longrepr / captured output, bounded
    error_type: str = ""  # exception type name for the fingerprint ("" if unknown)
    phase: str = ""  # "setup", "call", "teardown" or "collect" for failures
    markers: tuple[str, ...] = ()  # pytest keywords/markers, when the format carries them
    # JUnit <properties> / user_properties; a name written more than once keeps every value, as a list
    properties: dict[str, str | list[str]] = field(default_factory=dict)
    # Failed tries of a test that was rerun within the run (Surefire's flakyFailure/rerunFailure,
    # pytest-rerunfailures' "rerun" reports), oldest first: [{"outcome", "message", "type", "details"}].
    # Beside a passed outcome they make the test *flaky in this run*; beside a failure they are its reruns.
    attempts: list[dict[str, str]] | None = None

    @property
    def flaky(self) -> bool:
        """Failed at least once and then passed, within this run."""
        return bool(self.attempts) and self.outcome in (Outcome.PASSED, Outcome.XPASSED)


@dataclass(slots=True)
class RunInfo:
    """Facts about the whole file, known once the stream is exhausted."""

    format: str = ""  # "junit", "reportlog", "trx", "nunit3", "xunit2" or "gotest"
    exitstatus: int | None = None  # pytest SessionFinish exitstatus, when present
    incomplete: bool = False  # internal error / interruption / no end record
    started_at: float | None = None  # epoch seconds when the format carries it
    duration: float | None = None  # wall time of the run when the format carries it
    properties: dict[str, str | list[str]] = field(default_factory=dict)  # suite-level properties
    # Suite-level <system-out>/<system-err> (Bazel's only explanation of a failure) and other whole-file
    # logs (xUnit.net's assembly errors), bounded by MAX_SUITE_OUTPUT_CHARS.
    suite_output: str = ""


class IngestError(ValueError):
    """A file that is refused. The message names the file, the line where known, and the problem."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {problem}")
