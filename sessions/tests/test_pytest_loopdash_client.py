"""The plugin's sender (clients/pytest-loopdash, ``client.Streamer``) against a small HTTP server of our own.

The server stands for loopdash misbehaving in ways a live Django server will not on demand: failing a
batch once with a 503, never answering. What it records is what the streamer sent.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "clients" / "pytest-loopdash" / "src" / "pytest_loopdash" / "client.py"
_spec = importlib.util.spec_from_file_location("pytest_loopdash_client", SOURCE)
client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(client)


class FakeLoopdash(BaseHTTPRequestHandler):
    """Records each POST (batch number header, body); answers as ``server.script`` says."""

    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        with server.lock:
            server.requests.append((self.headers.get("X-Loopdash-Batch"), body))
            action = server.script.pop(0) if server.script else 200
        if action == "hang":
            server.release.wait(30)
            return
        self.send_response(action)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"stored": 0} if action == 200 else {"error": "try later"}).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLoopdash)
    server.requests, server.script, server.lock, server.release = [], [], threading.Lock(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def streamer(server, **kw) -> client.Streamer:
    api = client.Client(f"http://127.0.0.1:{server.server_address[1]}", "token", timeout=kw.pop("timeout", 2.0))
    return client.Streamer(api, 7, flush_s=0.05, **kw)


def test_lines_go_out_in_numbered_batches_and_a_503_is_retried_with_the_same_number(fake) -> None:
    fake.script = [503]
    sender = streamer(fake, batch_bytes=20)
    sender.start()
    for n in range(5):
        sender.put(f"line {n:02d} of the log\n".encode())  # 20 bytes each: one line per batch
    assert sender.close(wait_s=10) and sender.problem is None
    numbers = [number for number, _ in fake.requests]
    assert numbers == ["1", "1", "2", "3", "4", "5"]  # the first try failed (503): sent again as batch 1
    sent = b"".join(body for _, body in fake.requests[1:])
    assert sent == b"".join(f"line {n:02d} of the log\n".encode() for n in range(5))


def test_a_refusal_stops_the_streamer_for_good(fake) -> None:
    fake.script = [409]
    sender = streamer(fake)
    sender.start()
    sender.put(b"first\n")
    assert not sender.close(wait_s=5)
    assert "HTTP 409: try later" in sender.problem
    sender.put(b"ignored\n")  # a no-op once it gave up
    assert len(fake.requests) == 1


def test_the_buffer_is_bounded(fake) -> None:
    fake.script = ["hang"]  # loopdash takes the first batch and never answers
    sender = streamer(fake, batch_bytes=10, max_buffer_bytes=100, timeout=30.0)
    sender.start()
    sender.put(b"0123456789\n")
    deadline = time.monotonic() + 10
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(20):  # 220 bytes while the first batch hangs
        sender.put(b"0123456789\n")
    assert sender.problem is not None and "waited to be sent" in sender.problem
    fake.release.set()


def test_an_unreachable_loopdash_fails_at_once(unused_port) -> None:
    api = client.Client(f"http://127.0.0.1:{unused_port}", "token", timeout=30.0)
    with pytest.raises(client.LoopdashError) as caught:
        api.post_json("/sessions/x/runs/live", {})
    assert caught.value.transient and "Connection refused" in str(caught.value)  # refused, not timed out


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
