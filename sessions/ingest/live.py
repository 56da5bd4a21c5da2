"""Read a pytest report-log while pytest is still writing it: finished results as they appear.

The combining rules live in ``reportlog.parse_reportlog`` and only there. That parser *pulls* bytes
from a source until the end of the file, and a growing file has no end yet. ``LiveReportLog`` turns
the pull into a push: the parser runs in a helper thread whose source blocks until more lines are fed.
``feed`` hands over complete lines and returns once the parser has consumed them and asks for more, so
it returns exactly the results those lines completed; from the caller's side the reader is
synchronous. No ORM here, like the rest of ``ingest``.

Only complete lines are fed (``FileTail``). A line that pytest was writing when it was killed is
dropped at the end rather than refused: the results before it stay valid.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from pathlib import Path

from .records import IngestError, ParsedResult, RunInfo
from .reportlog import parse_reportlog

READ_LIMIT = 16 * 1024 * 1024  # bytes read from the file per call; the rest waits for the next tick


class _FedSource:
    """The duck-typed ``Source`` that parse_reportlog reads: ``read`` blocks until bytes are fed.

    ``idle`` is true while the parser waits for input with nothing queued: every result of the bytes
    fed so far has then been yielded (the parser reads a new chunk only after finishing the last one).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._chunks: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._idle = False
        self._closed = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._idle = False
            self._cond.notify_all()

    def close(self) -> None:
        self.feed(b"")  # the parser's end of file

    def read(self, size: int = 0) -> bytes:
        with self._cond:
            while not self._chunks:
                self._idle = True
                self._cond.notify_all()
                self._cond.wait()
            self._idle = False
            return self._chunks.popleft()

    def stopped(self) -> None:
        """The parser ended (end of file or an error): nobody will read again."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_consumed(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or (self._idle and not self._chunks), timeout)


class LiveReportLog:
    """Feed complete lines of a report-log as they are written; take the finished results back.

    A test is finished once its teardown record arrived. ``finish`` ends the stream: tests still in
    flight are reported as the parser reports a cut-off file (an error, "the run ended before this
    test finished"), and ``info`` then holds the exit status and whether the run was complete.
    ``error`` holds the IngestError of a malformed line; no result is produced after it.
    """

    def __init__(self, source: str = "report-log", *, timeout: float = 30.0) -> None:
        self.info = RunInfo(format="reportlog")
        self.error: IngestError | None = None
        self.lines = 0
        self.last_nodeid = ""
        self.timeout = timeout
        self._src = _FedSource(source)
        self._out: deque[ParsedResult] = deque()
        self._ended = False
        self._thread = threading.Thread(target=self._parse, name=f"live {source}", daemon=True)
        self._thread.start()

    def _parse(self) -> None:
        try:
            for result in parse_reportlog(self._src, self.info):  # type: ignore[arg-type]
                self._out.append(result)
        except IngestError as exc:
            self.error = exc
        except Exception as exc:
            self.error = IngestError(self._src.source, f"report-log reader failed: {exc!r}")
        finally:
            self._src.stopped()

    def feed(self, lines: bytes) -> list[ParsedResult]:
        """Parse complete lines (each ending with a newline); return the results they finished."""
        if lines and not self._ended:
            self.lines += lines.count(b"\n")
            self._note_current(lines)
            self._src.feed(lines)
            self._src.wait_consumed(self.timeout)
        return self._take()

    def finish(self) -> list[ParsedResult]:
        """End of the stream: return the last results (tests cut off included)."""
        if not self._ended:
            self._ended = True
            self._src.close()
            self._thread.join(self.timeout)
        return self._take()

    @property
    def saw_session_finish(self) -> bool:
        """Did pytest write its SessionFinish record (known after ``finish``)?"""
        return self._ended and self.info.exitstatus is not None

    def _take(self) -> list[ParsedResult]:
        out = []
        while self._out:
            out.append(self._out.popleft())
        return out

    def _note_current(self, lines: bytes) -> None:
        """Remember the node id of the last test report: what the run is busy with, for the progress line."""
        end = len(lines)
        while end > 0:
            start = lines.rfind(b"\n", 0, end - 1) + 1
            line = lines[start:end]
            if b'"TestReport"' in line:
                try:
                    nodeid = json.loads(line).get("nodeid")
                except (ValueError, AttributeError):
                    nodeid = None
                if isinstance(nodeid, str):
                    self.last_nodeid = nodeid
                return
            end = start


class FileTail:
    """Read a growing file from where the last read stopped, handing out complete lines only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def read_lines(self, limit: int = READ_LIMIT) -> bytes:
        """New complete lines (possibly ``b""``); a cut last line waits for the next call."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(limit)
        except FileNotFoundError:
            return b""
        if not data:
            return b""
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[:cut]

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def leftover(self) -> bytes:
        """A last line without its newline (pytest was killed while writing it)."""
        return self._partial
