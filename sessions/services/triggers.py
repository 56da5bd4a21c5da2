"""One entry point for "queue this work" from the HTTP API and the CLI: validate a payload, call ``runs``.

Payload (JSON object)::

    {"action": "deploy" | "tests" | "cycle",
     "revision": "r3",                      # deploy, cycle (default: the environment's default); tests:
                                           # run the suite of that git ref without deploying (a repository)
     "rerun": 12, "scope": "all" | "failed" | "selected", "tests": [case ids],   # tests: a rerun
     "marker": "p1", "keyword": "login",   # tests: a subset by expression (not with rerun, scope, tests)
     "p1": true,                           # tests: the environment's P1 tests
     "signature": 12,                      # tests: the tests signature 12 hit in its latest run
     "tests": [case ids],                  # tests, without rerun: tests chosen on a test list
     "shards": 4}                           # tests, cycle: split the run over 4 workers (1 to 32)

Answers ``{"deployment": id}``, ``{"run": id}`` or both for a cycle. ``TriggerError.status`` is the
HTTP status that explains a refusal: 400 bad input, 404 no such session or run, 409 a deploy is
already queued or running on the environment.
"""

from __future__ import annotations

from ..models import LoopSession, TestRun
from ..validation import BIGINT_MAX, BadInput, whole_number
from ..work.errors import Refused
from ..work.queueing import SUBSET_P1, SUBSET_SIGNATURE, SUBSET_TESTS, request_cycle, request_deploy, request_tests

# One exception for the service and its callers: TriggerError(message, status).
TriggerError = Refused

ACTIONS = ("deploy", "tests", "cycle")
_KEYS = {"action", "revision", "rerun", "scope", "tests", "rollback", "marker", "keyword", "shards", "p1", "signature"}
_TESTS_ONLY = ("rerun", "scope", "tests", "marker", "keyword", "p1", "signature")


def _given(value: object) -> bool:
    """A field counts as given unless it is absent, null, empty or false."""
    return value is not None and value is not False and value != "" and value != []


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


def _subset_by_ids(payload: dict) -> dict | None:
    """``request_tests`` arguments for the P1 tests, a signature's tests or tests chosen without a rerun.

    None when the payload asks for none of them (the whole suite, or a rerun). Each goes alone.
    """
    p1 = payload.get("p1", False)
    if p1 is not None and not isinstance(p1, bool):
        raise TriggerError(f"p1 must be true or false, got {p1!r}", 400)
    signature = payload.get("signature")
    chosen = payload.get("tests") if not _given(payload.get("rerun")) else None
    if chosen == []:
        raise TriggerError("tests: choose at least one test (an empty list would run nothing)", 400)
    asked = [name for name, value in (("p1", p1), ("signature", signature), ("tests", chosen)) if _given(value)]
    if not asked:
        return None
    others = [key for key in ("rerun", "scope") if _given(payload.get(key)) and payload.get(key) != "selected"]
    if len(asked) > 1 or others:
        raise TriggerError(f"choose one subset: {', '.join(asked + others)} do not go together", 400)
    if p1:
        return {"subset": SUBSET_P1}
    if signature is not None:
        if isinstance(signature, bool) or not isinstance(signature, int | str):
            raise TriggerError(f"signature must be a signature id (a whole number), got {signature!r}", 400)
        return {"subset": SUBSET_SIGNATURE, "signature": signature}
    if not isinstance(chosen, list):
        raise TriggerError("tests must be a list of test case ids", 400)
    return {"subset": SUBSET_TESTS, "case_ids": chosen}


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
    if action != "tests" and any(_given(payload.get(k)) for k in _TESTS_ONLY):
        raise TriggerError(
            f"rerun, scope, tests, marker, keyword, p1 and signature apply to action 'tests', not {action!r}", 400
        )
    rollback = payload.get("rollback", False)
    if not isinstance(rollback, bool):
        raise TriggerError(f"rollback must be true or false, got {rollback!r}", 400)
    if rollback and action == "tests":
        raise TriggerError("rollback applies to deploy and cycle", 400)
    shards = payload.get("shards")
    if action == "deploy" and shards is not None:
        raise TriggerError("shards applies to tests and cycle", 400)
    if action == "deploy":
        return {"deployment": request_deploy(session, revision=revision, user=user, rollback=rollback).pk}
    if action == "cycle":
        deployment, run = request_cycle(
            session, revision=revision, user=user, source=source, rollback=rollback, shards=shards
        )
        return {"deployment": deployment.pk, "run": run.pk}
    marker, keyword = payload.get("marker"), payload.get("keyword")
    if marker is not None or keyword is not None:
        given = [key for key in ("rerun", "scope", "tests") if payload.get(key) not in (None, "", [])]
        if given:
            raise TriggerError(
                f"marker and keyword run a subset of the suite; they do not go with {', '.join(given)}", 400
            )
        if _given(payload.get("p1")) or _given(payload.get("signature")):
            raise TriggerError("choose one subset: marker/keyword, p1 or signature", 400)
        run = request_tests(
            session, user=user, source=source, marker=marker, keyword=keyword, shards=shards, revision=revision
        )
        return {"run": run.pk}
    by_ids = _subset_by_ids(payload)
    if by_ids is not None:
        run = request_tests(session, user=user, source=source, shards=shards, revision=revision, **by_ids)
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
    run = request_tests(
        session,
        user=user,
        source=source,
        rerun_of=rerun_of,
        scope=scope,
        case_ids=tests,
        shards=shards,
        revision=revision,
    )
    return {"run": run.pk}
