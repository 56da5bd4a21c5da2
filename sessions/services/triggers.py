"""One entry point for "queue this work" from the HTTP API and the CLI: validate a payload, call ``runs``.

Payload (JSON object)::

    {"action": "deploy" | "tests" | "cycle",
     "revision": "r3",                      # deploy, cycle (default: the environment's default)
     "rerun": 12, "scope": "all" | "failed" | "selected", "tests": [case ids],   # tests: a rerun
     "marker": "p1", "keyword": "login"}   # tests: a subset by expression (not with rerun, scope, tests)

Answers ``{"deployment": id}``, ``{"run": id}`` or both for a cycle. ``TriggerError.status`` is the
HTTP status that explains a refusal: 400 bad input, 404 no such session or run, 409 a deploy is
already queued or running on the environment.
"""

from __future__ import annotations

from ..models import LoopSession, TestRun
from ..validation import BIGINT_MAX, BadInput, whole_number
from ..work.errors import Refused
from ..work.queueing import request_cycle, request_deploy, request_tests

# One exception for the service and its callers: TriggerError(message, status).
TriggerError = Refused

ACTIONS = ("deploy", "tests", "cycle")
_KEYS = {"action", "revision", "rerun", "scope", "tests", "rollback", "marker", "keyword"}
_TESTS_ONLY = ("rerun", "scope", "tests", "marker", "keyword")


def _text(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise TriggerError(f"{key} must be a string, got {value!r}", 400)
    return str(value)


def _rerun(session: LoopSession, payload: dict) -> TestRun | None:
    value = payload.get("rerun")
    if value is None or value == "":
        return None
    try:
        pk = whole_number(value, "rerun", maximum=BIGINT_MAX)
    except BadInput:
        raise TriggerError(f"rerun must be a run id (a whole number), got {value!r}", 400) from None
    run = TestRun.objects.filter(pk=pk, session=session).first()
    if run is None:
        raise TriggerError(f"no run {value} in session {session.slug}", 404)
    return run


def trigger_from_request(slug: str, payload: dict, user: object, *, source: str = TestRun.Source.API) -> dict[str, int]:
    """Queue a deploy, a test run or a cycle for session ``slug``; return the ids of the queued rows."""
    if not isinstance(payload, dict):
        raise TriggerError("the request must be a JSON object", 400)
    unknown = sorted(set(payload) - _KEYS)
    if unknown:
        raise TriggerError(f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})", 400)
    action = payload.get("action")
    if action not in ACTIONS:
        raise TriggerError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}", 400)
    session = LoopSession.objects.select_related("environment").filter(slug=slug).first()
    if session is None:
        raise TriggerError(f"no session {slug!r}", 404)
    revision = _text(payload, "revision")
    if action != "tests" and any(payload.get(k) not in (None, "", []) for k in _TESTS_ONLY):
        raise TriggerError(f"rerun, scope, tests, marker and keyword apply to action 'tests', not {action!r}", 400)
    rollback = payload.get("rollback", False)
    if not isinstance(rollback, bool):
        raise TriggerError(f"rollback must be true or false, got {rollback!r}", 400)
    if rollback and action == "tests":
        raise TriggerError("rollback applies to deploy and cycle", 400)
    if action == "deploy":
        return {"deployment": request_deploy(session, revision=revision, user=user, rollback=rollback).pk}
    if action == "cycle":
        deployment, run = request_cycle(session, revision=revision, user=user, source=source, rollback=rollback)
        return {"deployment": deployment.pk, "run": run.pk}
    if revision is not None:
        raise TriggerError("revision applies to deploy and cycle; tests run against what is deployed", 400)
    marker, keyword = payload.get("marker"), payload.get("keyword")
    if marker is not None or keyword is not None:
        given = [key for key in ("rerun", "scope", "tests") if payload.get(key) not in (None, "", [])]
        if given:
            raise TriggerError(
                f"marker and keyword run a subset of the suite; they do not go with {', '.join(given)}", 400
            )
        run = request_tests(session, user=user, source=source, marker=marker, keyword=keyword)
        return {"run": run.pk}
    rerun_of = _rerun(session, payload)
    scope = _text(payload, "scope") or TestRun.Scope.ALL
    if scope != TestRun.Scope.ALL and rerun_of is None:
        raise TriggerError(f"scope {scope!r} needs rerun (the id of the run whose tests to rerun)", 400)
    tests = payload.get("tests")
    if tests is not None and not isinstance(tests, list):
        raise TriggerError("tests must be a list of test case ids", 400)
    if tests and scope != TestRun.Scope.SELECTED:
        raise TriggerError("tests apply to scope 'selected'", 400)
    run = request_tests(session, user=user, source=source, rerun_of=rerun_of, scope=scope, case_ids=tests)
    return {"run": run.pk}
