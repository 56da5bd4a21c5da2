"""Benchmark: how well signature keys separate causes, and how fast they are computed.

Run: `.venv/bin/python bench/signatures.py [--failures 100000] [--seed 1]`. No database: the keys are
pure functions of the failure text (sessions/ingest/). Not a test: it prints figures for
docs/PERFORMANCE.md (section Signatures) and writes bench/out/signatures.json.

The synthetic set has 25 known causes, each failing under many tests with volatile details (numbers,
quoted values, addresses, parametrised ids, checkout folders, line numbers) and in the traceback
shapes runners give (pytest long, short and native styles, library frames from site-packages and
the standard library):

- 8 assertion sites: the same text, ``assert '<a>' == '<b>'`` or ``assert 12 == 13``, in 8 tests;
- 6 helpers failing under many tests (login, an expected message, an API call whose route varies,
  a row that never appears, a staging fixture, a schema check);
- 4 timeouts with varying numbers (three helpers, one from asyncio in the standard library);
- 4 WebSocket closes (1011 in two handlers, 1006, 1008) raised inside the websockets package;
- 3 library errors (requests, KeyError, ValueError) raised in the project's client code.

Grouping quality is the Adjusted Rand Index against the known causes (1.0: the same partition; 0:
no better than chance), for: the old key (type + masked first message line), the whole traceback
masked and hashed, the new key (type + masked message + project frames), and the new key with
similar keys merged (``sessions/ingest/similarity.py``), which loopdash offers but does not apply.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from math import comb
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sessions.ingest.fingerprint import _MASKS, fingerprint, key_with_site, signature_key, site_of  # noqa: E402
from sessions.ingest.similarity import group_similar  # noqa: E402

OUT = ROOT / "bench" / "out"
SITE_PACKAGES = ".venv/lib/python3.12/site-packages"
STDLIB = "/usr/lib/python3.12"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
ROUTES = ["health", "agents", "tools", "sessions", "reports"]


def _r(rnd: random.Random) -> int:
    return rnd.randrange(1, 99_999)


def _causes() -> list[tuple[str, object]]:
    """(name, make(rnd) → (error type, message, frames outermost first, test-frame name))."""
    causes: list[tuple[str, object]] = []

    def assert_site(module: str, test: str, numeric: bool) -> object:
        def make(rnd: random.Random) -> tuple:
            if numeric:
                msg = f"assert {rnd.randrange(100)} == {rnd.randrange(100)}"
            else:
                msg = f"assert '{rnd.choice(WORDS)}_{_r(rnd)}' == '{rnd.choice(WORDS)}'"
            return "AssertionError", msg, [(f"tests/e2e/{module}", test)]

        return make

    for i, (module, test) in enumerate(
        [
            ("test_chat.py", "test_send_unknown"),
            ("test_routing.py", "test_route_reply"),
            ("test_agents.py", "test_agent_status"),
            ("test_tools.py", "test_tool_list"),
            ("test_auth.py", "test_token_refresh"),
            ("test_stream.py", "test_stream_order"),
            ("test_billing.py", "test_invoice_total"),
            ("test_search.py", "test_rank"),
        ]
    ):
        causes.append((f"assert:{test}", assert_site(module, test, numeric=i >= 6)))

    def helper(path: str, func: str, error_type: str, message: object, below: tuple = ()) -> object:
        def make(rnd: random.Random) -> tuple:
            test = f"tests/e2e/test_area_{rnd.randrange(40)}.py"
            frames = [(test, f"test_flow_{rnd.randrange(500)}"), (path, func), *below]
            return error_type, message(rnd), frames

        return make

    causes += [
        ("helper:login", helper("tests/support/auth.py", "login", "AssertionError",
                                lambda r: f"login of 'user{_r(r)}' failed")),
        ("helper:expect_message", helper("tests/support/ws.py", "expect_message", "AssertionError",
                                         lambda r: f"assert '{r.choice(WORDS)}' == 'agent_completed'")),
        ("helper:get_json", helper("tests/support/api.py", "get_json", "AssertionError",
                                   lambda r: f"GET /api/v1/{r.choice(ROUTES)} -> HTTP 500")),
        ("helper:wait_for_row", helper("tests/support/db.py", "wait_for_row", "TimeoutError",
                                       lambda r: f"row {_r(r)} not visible after {r.randrange(5, 60)}s")),
        ("helper:check_schema", helper("tests/support/schema.py", "check_schema", "AssertionError",
                                       lambda r: f"field '{r.choice(WORDS)}' missing in reply {_r(r)}")),
        ("timeout:wait_event", helper("tests/support/ws.py", "wait_event", "TimeoutError",
                                      lambda r: f"Timeout after {r.randrange(30, 300)}s waiting for agent_completed")),
        ("timeout:read_stream", helper("tests/support/stream.py", "read_stream", "TimeoutError",
                                       lambda r: f"Timeout after {r.randrange(30, 300)}s waiting for stream_end")),
        ("timeout:fetch", helper("src/app/client.py", "fetch", "TimeoutError", lambda r: "",
                                 below=((f"{STDLIB}/asyncio/tasks.py", "wait_for"),
                                        (f"{STDLIB}/asyncio/timeouts.py", "__aexit__")))),
        ("timeout:deploy_ready", helper("tests/support/deploy.py", "wait_ready", "TimeoutError",
                                        lambda r: f"Timeout after {r.randrange(30, 300)}s waiting for revision r{_r(r)}")),
    ]  # fmt: skip

    def fixture(rnd: random.Random) -> tuple:
        msg = f"staging at 127.0.0.1:{rnd.randrange(8000, 9000)} not ready after {rnd.randrange(5, 90)}s"
        return "RuntimeError", msg, [("tests/conftest.py", "staging")]

    causes.append(("fixture:staging", fixture))

    def ws_close(func: str, code: int, words: str) -> object:
        ws_lib = f"{SITE_PACKAGES}/websockets/legacy/protocol.py"
        return helper("src/app/ws_client.py", func, "websockets.exceptions.ConnectionClosedError",
                      lambda r: f"received {code} ({words}); then sent {code} ({words})",
                      below=((ws_lib, "ensure_open"),))  # fmt: skip

    causes += [
        ("ws:1011:execute_agent", ws_close("execute_agent", 1011, "internal error")),
        ("ws:1011:call_tool", ws_close("call_tool", 1011, "internal error")),
        ("ws:1006:recv_loop", ws_close("recv_loop", 1006, "abnormal closure")),
        ("ws:1008:authenticate", ws_close("authenticate", 1008, "policy violation")),
        ("lib:requests", helper("src/app/http.py", "get", "requests.exceptions.ConnectionError",
                                lambda r: f"HTTPConnectionPool(host='10.0.{r.randrange(9)}.{r.randrange(250)}', "
                                          f"port={r.randrange(8000, 9000)}): Max retries exceeded",
                                below=((f"{SITE_PACKAGES}/requests/api.py", "get"),
                                       (f"{SITE_PACKAGES}/requests/adapters.py", "send")))),
        ("lib:keyerror", helper("src/app/parse.py", "parse_reply", "KeyError", lambda r: f"'{r.choice(WORDS)}'")),
        ("lib:valueerror", helper("src/app/parse.py", "to_int", "ValueError",
                                  lambda r: f"invalid literal for int() with base 10: '{r.choice(WORDS)}'")),
    ]  # fmt: skip
    return causes


def render(rnd: random.Random, error_type: str, message: str, frames: list[tuple[str, str]]) -> str:
    """The traceback text a runner stores, in one of pytest's styles (chosen at random)."""
    short_type = error_type.rsplit(".", 1)[-1]
    exc = f"{error_type}: {message}" if message else error_type
    style = rnd.choice(("long", "short", "native"))
    if style == "native":
        root = f"/srv/ci/checkouts/run-{rnd.randrange(1000)}/"
        lines = ["Traceback (most recent call last):"]
        for path, func in frames:
            full = path if path.startswith("/") or path.startswith(".venv") else root + path
            lines += [f'  File "{full}", line {rnd.randrange(1, 400)}, in {func}', "    do_something()"]
        return "\n".join([*lines, exc])
    sep = "\n" + "_ " * 40 + "\n\n"
    entries = []
    for i, (path, func) in enumerate(frames):
        last = i == len(frames) - 1
        line = rnd.randrange(1, 400)
        if style == "short" or (0 < i < len(frames) - 1):
            body = f"{path}:{line}: in {func}\n    value = step({rnd.randrange(100)})"
            if last:
                body += f"\nE   {exc}"
            entries.append(body)
        else:
            src = f"    def {func}(self, arg_{rnd.randrange(9)}):\n        prepared = arg\n>       result = call(prepared)"
            tail = f"\nE       {exc}\n\n{path}:{line}: {short_type}" if last else f"\n\n{path}:{line}: "
            entries.append(src + tail)
    text = sep.join(entries)
    if rnd.random() < 0.3:
        text += f"\n\n--- Captured stdout call ---\nsrc/app/log.py:{rnd.randrange(99)}: in noise\nrequest {_r(rnd)} ok"
    return text


def dataset(n: int, seed: int) -> list[tuple[int, str, str, str]]:
    """n failures: (cause index, error type, message, traceback text)."""
    rnd = random.Random(seed)
    causes = _causes()
    weights = [rnd.randrange(1, 20) for _ in causes]
    rows = []
    for _ in range(n):
        index = rnd.choices(range(len(causes)), weights)[0]
        error_type, message, frames = causes[index][1](rnd)
        rows.append((index, error_type, message, render(rnd, error_type, message, frames)))
    return rows


def adjusted_rand_index(truth: list[object], found: list[object]) -> float:
    """ARI of two labelings of the same items (Hubert and Arabie, 1985)."""
    n = len(truth)
    pairs = sum(comb(c, 2) for c in Counter(zip(truth, found, strict=True)).values())
    a = sum(comb(c, 2) for c in Counter(truth).values())
    b = sum(comb(c, 2) for c in Counter(found).values())
    expected = a * b / comb(n, 2)
    top = (a + b) / 2
    return 1.0 if top == expected else (pairs - expected) / (top - expected)


def whole_traceback_key(details: str) -> str:
    text = details
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return hashlib.sha1(text.encode()).hexdigest()


def timed(fn: object, rows: list) -> tuple[list[str], float, float]:
    """(keys, wall seconds, CPU seconds of this process): on a shared machine the CPU time is the steadier."""
    start, cpu = time.perf_counter(), time.process_time()
    keys = [fn(row) for row in rows]
    return keys, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--failures", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = dataset(args.failures, args.seed)
    truth = [r[0] for r in rows]

    old, old_s, old_cpu = timed(lambda r: fingerprint(r[1], r[2])[0], rows)
    new_full, new_s, new_cpu = timed(lambda r: signature_key(r[1], r[2], r[3]), rows)
    new = [k[0] for k in new_full]
    memo: dict = {}

    def ingest_path(r: tuple) -> str:  # what resolve_signatures does: the site per failure, keys memoised
        site = site_of(r[1], r[3])
        key = (r[1], r[2], site)
        found = memo.get(key)
        if found is None:
            if len(memo) > 4096:  # MEMO_LIMIT of services/ingestion/state.py
                memo.clear()
            found = memo[key] = key_with_site(r[1], r[2], site)
        return found[0]

    _, memo_s, memo_cpu = timed(ingest_path, rows)
    sample = rows[: min(len(rows), 20_000)]
    whole = [whole_traceback_key(r[3]) for r in sample]
    leader = group_similar(sorted({k[1] for k in new_full}))
    merged = [leader[k[1]] for k in new_full]
    figures = {
        "failures": len(rows),
        "causes": len(set(truth)),
        "keys": {
            "old": len(set(old)),
            "whole_traceback": len(set(whole)),
            "new": len(set(new)),
            "merged": len(set(merged)),
        },
        "ari": {
            "old": round(adjusted_rand_index(truth, old), 4),
            "whole_traceback (first 20k)": round(adjusted_rand_index(truth[: len(sample)], whole), 4),
            "new": round(adjusted_rand_index(truth, new), 4),
            "new + similar merged": round(adjusted_rand_index(truth, merged), 4),
        },
        "per_second (wall)": {
            "old key": round(len(rows) / old_s),
            "new key, every failure": round(len(rows) / new_s),
            "new key, ingestion's memo": round(len(rows) / memo_s),
        },
        "per_cpu_second": {
            "old key": round(len(rows) / old_cpu),
            "new key, every failure": round(len(rows) / new_cpu),
            "new key, ingestion's memo": round(len(rows) / memo_cpu),
        },
        "seconds_new_key": {"wall": round(new_s, 2), "cpu": round(new_cpu, 2)},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "signatures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
