"""Schemathesis fuzzes the whole API, as described by /api/v1/openapi.json, against a live server: no 5xx.

A real fuzzer (the ``st`` CLI, in a subprocess) sends generated and mutated requests (wrong types,
boundary numbers, NUL and other odd characters, broken bodies) over HTTP to pytest-django's live server,
authenticated with a real API token of an operator, who may upload and trigger. It fails on any 5xx
(schemathesis's ``not_a_server_error`` check) and prints each failure with a curl line that reproduces it.

So that the fuzzer gets past "no such session" to the code behind it, part of the generated path
parameters and fields are drawn from the data made here (a session, a finished run with its test case
ids, a valid results file, a known revision). That session's environment has commands, so a trigger
can queue real work: this test sends those tasks to a queue of its own that no worker consumes, and
deletes it at the end, so nothing it queued is ever run (the commands would only print a line anyway).

Bounded: ``LOOPDASH_FUZZ_EXAMPLES`` test cases per operation and phase (default 80: about a minute on
two cores); ``LOOPDASH_FUZZ_SEED`` replays a run (the seed is printed on failure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from sessions import roles
from sessions.models import Deployment, Environment, LoopSession, TestResult, TestRun, WorkStatus
from sessions.services.ingestion.ci_stream import open_run
from sessions.services.tokens import issue_token

from . import samples
from .test_operate_views import finished_run
from .worker import routed_to

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's threads see committed rows

EXAMPLES = int(os.environ.get("LOOPDASH_FUZZ_EXAMPLES", "80"))
SEED = int(os.environ.get("LOOPDASH_FUZZ_SEED", "8042"))
RESULT_FILES = 50
# Ids as people and programs get them wrong: digits int() refuses ("²") or reads (Arabic-Indic "١", "1_000"),
# numbers past PostgreSQL's integer and bigint, text that is not a number at all.
TRICKY_IDS = ["²", "١", "1_000", "1e3", -1, 2**31, "9223372036854775808", "\u0000"]
HARMLESS = ["{python}", "-c", "print('fuzzing: nothing to do')"]


def toml_value(value: object) -> str:
    """A TOML value for a string, number or list of them (JSON's syntax is TOML's for these)."""
    return json.dumps(value, ensure_ascii=True)


def fuzz_config(
    *, session: str, environment: str, run_ids: list[int], case_ids: list[int], results: list[str], revision: str
) -> str:
    """schemathesis.toml: where generated values are drawn from the test's data some of the time."""
    dictionaries = {
        "session": [session],
        "environment": [environment],
        "run": run_ids,
        "case": [*case_ids, *TRICKY_IDS],
        "results": results,
        "revision": [revision],
    }
    bindings = {
        "path.slug": ("session", 0.7),
        "path.name": ("environment", 0.7),
        "body.environment": ("environment", 0.5),
        "path.id": ("run", 0.5),
        "body.rerun": ("run", 0.6),
        "body.tests[*]": ("case", 0.6),
        "body.revision": ("revision", 0.5),
        "body.file": ("results", 0.5),
    }
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {toml_value(values)}", ""]
    lines.append("[parameters]")
    for key, (dictionary, probability) in bindings.items():
        lines.append(f'{toml_value(key)} = {{ dictionary = "{dictionary}", probability = {probability} }}')
    return "\n".join(lines) + "\n"


def purge_queue(queue: str) -> int:
    """Delete the test's own queue with every task still in it; returns how many there were."""
    from loopdash.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        try:
            _name, count, _consumers = channel.queue_declare(queue=queue, passive=True)
        except Exception:
            return 0
        channel.queue_purge(queue)
        channel.queue_delete(queue)
        return count


@pytest.fixture
def fuzz_world(make_user) -> dict:
    user = make_user("fuzzer", roles.OPERATOR)  # operators may upload and trigger
    # Named as in the API description's examples, which the fuzzer starts from.
    env = Environment.objects.create(
        name="staging",
        deploy_command=HARMLESS,
        test_command=HARMLESS,
        revisions=[
            {"revision": "r1", "commit": "0123456789abcdef0123456789abcdef01234567"},
            {"revision": "r2", "commit": "89abcdef0123456789abcdef0123456789abcdef"},
        ],
        default_revision="r1",
    )
    session = LoopSession.objects.create(environment=env, title="Golden path", slug="golden-path")
    run = finished_run(session, {"test_login": "passed", "test_chat": "failed", "test_stream": "error"})
    return {
        "token": issue_token(user, name="schemathesis"),
        "session": session,
        "run": run,
        # A run fed from CI, open: report-log batches and finish reach the code behind them.
        "ci_run": open_run(session, cycle_number=None, revision="r1", shard="", user=user),
        "case_ids": sorted(TestResult.objects.filter(run=run).values_list("case_id", flat=True)),
    }


def test_schemathesis_finds_no_server_error(live_server, tmp_path, fuzz_world) -> None:
    config = tmp_path / "schemathesis.toml"
    # Distinct files: the same file uploaded twice is answered from the first upload, before any field is read.
    results = [
        samples.junit(
            [("tests.test_e2e", "test_login", "passed"), ("tests.test_e2e", "test_chat", "ws1011")], suite=f"s{n}"
        )
        for n in range(RESULT_FILES)
    ]
    config.write_text(
        fuzz_config(
            session=fuzz_world["session"].slug,
            environment=fuzz_world["session"].environment.name,
            run_ids=[fuzz_world["run"].pk, fuzz_world["ci_run"].pk],
            case_ids=fuzz_world["case_ids"],
            results=[r.decode() for r in results],
            revision="r1",
        )
    )
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{live_server.url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {fuzz_world['token']}",
        "--checks", "not_a_server_error",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--workers", "2",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--output-sanitize", "true",
    ]  # fmt: skip
    queue = f"loopdash-fuzz-{uuid.uuid4().hex[:10]}"
    with routed_to(queue):
        try:
            finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        finally:
            purge_queue(queue)
    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"schemathesis failed (seed {SEED}):\n{report[-20000:]}"
    assert "Test cases:" in report and " passed" in report, report[-5000:]
    # It reached the code behind the routes: runs were uploaded, and work was queued on its own queue only.
    assert TestRun.objects.filter(source=TestRun.Source.API).exists()
    # Runs fed from CI (POST .../runs/live) stay running until finished or reaped: not a worker's.
    assert not TestRun.objects.filter(status=WorkStatus.RUNNING).exclude(source=TestRun.Source.CI).exists()
    assert TestRun.objects.filter(source=TestRun.Source.CI).exists()  # it reached the live endpoints too
    assert not Deployment.objects.filter(status=WorkStatus.RUNNING).exists()
