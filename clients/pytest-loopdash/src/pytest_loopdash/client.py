"""Talking to loopdash without slowing the suite: short requests, and a sender thread with a bounded buffer.

Standard library only (``urllib``), so that the plugin installs wherever pytest does.

``Client`` makes one request and raises ``LoopdashError`` for anything that is not a 2xx JSON
answer: refused connections, timeouts, HTTP errors (with loopdash's own one-line message).

``Streamer`` owns the report-log lines between pytest and loopdash. The test process only appends
a line to a buffer (``put``, O(1), never blocks on the network); a daemon thread sends what has
gathered once a second, or sooner when a batch's worth is waiting, and an empty batch (a heartbeat)
when the suite has been quiet for a while, so that loopdash knows the job is alive. Each batch
carries a number, so a batch retried after a timeout is not stored twice. When loopdash is down
or refuses a batch, the streamer gives up for good: ``problem`` says why, the buffer is dropped and
later lines are ignored; the suite carries on, untouched. The buffer is bounded: past
``max_buffer_bytes`` (loopdash much slower than the suite) it gives up too.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque

USER_AGENT = "pytest-loopdash"


class LoopdashError(Exception):
    """A request that did not work. ``transient``: worth retrying (network, 5xx, 429); else final."""

    def __init__(self, message: str, *, transient: bool) -> None:
        self.transient = transient
        super().__init__(message)


class Client:
    """JSON requests to one loopdash, with a bearer token and a short timeout."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> object:
        """The answer's JSON document; ``LoopdashError`` for anything else."""
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        url = f"{self.base_url}/api/v1{path}"
        request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            transient = exc.code >= 500 or exc.code == 429
            raise LoopdashError(f"{method} {path}: HTTP {exc.code}: {message}", transient=transient) from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:  # refused, DNS, timeout
            reason = getattr(exc, "reason", exc)
            raise LoopdashError(f"cannot reach {self.base_url} ({reason})", transient=True) from None
        try:
            return json.loads(body)
        except ValueError:
            raise LoopdashError(f"{method} {path}: the answer is not JSON", transient=True) from None

    def post_json(self, path: str, payload: dict) -> object:
        return self.request("POST", path, data=json.dumps(payload).encode())


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(4096)
        message = json.loads(body).get("error")
        if isinstance(message, str):
            return message[:300]
    except Exception:  # any answer that is not loopdash's JSON error
        pass
    return str(exc.reason)


class Streamer:
    """Send report-log lines of one run in batches from a background thread; see the module docstring."""

    def __init__(
        self,
        client: Client,
        run_id: int,
        *,
        flush_s: float = 1.0,
        heartbeat_s: float = 10.0,
        batch_bytes: int = 1024 * 1024,
        max_buffer_bytes: int = 32 * 1024 * 1024,
        give_up_s: float = 30.0,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.flush_s = flush_s
        self.heartbeat_s = heartbeat_s
        self.batch_bytes = batch_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.give_up_s = give_up_s
        self.problem: str | None = None
        self.sent_batches = 0
        self.sent_lines = 0
        self._lines: deque[bytes] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None  # when closing: the time after which nothing is retried
        self._thread = threading.Thread(target=self._run, name="loopdash-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, line: bytes) -> None:
        """Queue one line (ending with a newline) for sending; never blocks on the network."""
        if self.problem is not None:
            return
        with self._cond:
            if self._buffered + len(line) > self.max_buffer_bytes:
                self._fail(f"more than {self.max_buffer_bytes // (1024 * 1024)} MB of results waited to be sent")
                return
            self._lines.append(line)
            self._buffered += len(line)
            if self._buffered >= self.batch_bytes:
                self._cond.notify()

    def close(self, wait_s: float) -> bool:
        """Send what is buffered (for at most ``wait_s``) and stop; True when everything was sent."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + wait_s
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(wait_s + self.client.timeout + 1.0)
        if self._thread.is_alive() and self.problem is None:
            self.problem = f"sending the last results took longer than {wait_s:g} s"
        return self.problem is None and not self._lines

    # -- the sender thread --------------------------------------------------------------------------------

    def _fail(self, problem: str) -> None:
        """Give up for good (the caller holds the lock or is the only writer of ``problem``)."""
        if self.problem is None:
            self.problem = problem
        self._lines.clear()
        self._buffered = 0

    def _take_batch(self) -> bytes:
        with self._cond:
            parts: list[bytes] = []
            size = 0
            while self._lines and (not parts or size + len(self._lines[0]) <= self.batch_bytes):
                line = self._lines.popleft()
                parts.append(line)
                size += len(line)
            self._buffered -= size
            return b"".join(parts)

    def _run(self) -> None:
        last_sent = time.monotonic()
        while True:
            with self._cond:
                if not self._closing and self._buffered < self.batch_bytes:
                    self._cond.wait(self.flush_s)
                closing = self._closing
                empty = not self._lines
            if self.problem is not None:
                return
            if empty:
                if closing:
                    return
                if time.monotonic() - last_sent >= self.heartbeat_s:
                    self._send(b"", number=None)
                    last_sent = time.monotonic()
                continue
            batch = self._take_batch()
            self.sent_batches += 1
            if not self._send(batch, number=self.sent_batches):
                return
            self.sent_lines += batch.count(b"\n")
            last_sent = time.monotonic()

    def _send(self, batch: bytes, *, number: int | None) -> bool:
        """POST one batch, retrying a transient failure with backoff for up to ``give_up_s``."""
        headers = {"X-Loopdash-Batch": str(number)} if number is not None else {}
        first_try = time.monotonic()
        pause = 0.5
        while True:
            try:
                self.client.request(
                    "POST", f"/runs/{self.run_id}/results", data=batch, content_type="text/plain", headers=headers
                )
                return True
            except LoopdashError as exc:
                now = time.monotonic()
                deadline = first_try + self.give_up_s
                if self._deadline is not None:
                    deadline = min(deadline, self._deadline)
                if not exc.transient or now + pause > deadline:
                    with self._cond:
                        self._fail(str(exc))
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
