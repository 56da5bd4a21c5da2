"""The helper thread of the COPY engine: the database stores one batch while the next is parsed.

The parser and PostgreSQL are two processes that can work at the same time. The thread spends its
time waiting on the socket (psycopg releases the GIL there), so the server stores one batch while
this process parses and formats the next.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

_SLICE = 128 * 1024  # bytes per write: psycopg splits larger buffers anyway


class CopyThread:
    """Runs the COPY statements of one ``add`` on a helper thread, in order, while the caller parses on.

    psycopg's connection lock serialises the caller's own queries (case look-ups, new signatures)
    with a running COPY. At most ``depth`` jobs wait, which bounds the memory held by formatted
    batches.
    """

    def __init__(self, conn: Any, depth: int = 2) -> None:
        self._conn = conn
        self._jobs: queue.Queue[tuple[str, str, Any, Future | None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def copy(self, statement: str, data: bytes) -> None:
        """Queue ``COPY ... FROM STDIN`` with ``data`` (COPY text, encoded)."""
        self._put(("copy", statement, data, None))

    def execute(self, statement: str) -> None:
        """Queue a statement without parameters or rows (``SET CONSTRAINTS``)."""
        self._put(("execute", statement, None, None))

    def query(self, statement: str, params: tuple) -> Future:
        """Run a query after the jobs already queued; the future gets its rows."""
        future: Future = Future()
        self._put(("query", statement, params, future))
        return future

    def finish(self) -> None:
        """Wait for every queued job; raise the first error of the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def stop(self) -> BaseException | None:
        """Drop the jobs not started, wait for the running one (the transaction is being abandoned).

        Returns the thread's error, if it had one: the cause, when the caller's own next statement
        then failed only because the transaction was already aborted.
        """
        self._stopping = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        return error

    def _put(self, job: tuple[str, str, Any, Future | None]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="loopdash-copy", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        cursor = self._conn.cursor()
        while (job := self._jobs.get()) is not None:
            kind, statement, payload, future = job
            if self._stopping or self._error is not None:
                if future is not None:
                    future.cancel()
                continue
            try:
                if kind == "copy":
                    view = memoryview(payload)
                    with cursor.copy(statement) as copy:
                        for i in range(0, len(view), _SLICE):
                            copy.write(view[i : i + _SLICE])
                elif kind == "query":
                    cursor.execute(statement, payload)
                    future.set_result(cursor.fetchall())
                else:
                    cursor.execute(statement)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
                if future is not None:
                    future.set_exception(exc)
        cursor.close()
