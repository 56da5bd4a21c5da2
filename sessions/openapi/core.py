"""The first rounds' endpoints: upload, runs, results, exclude/include, sessions, trigger."""

from __future__ import annotations

from ..validation import BIGINT_MAX, INT_MAX  # cycle numbers are integers, ids bigints
from .common import ERROR, ID, OUTCOMES, RUN_ID, errors, json_response, slug_param

_TOTALS = {
    "type": "object",
    "properties": {
        k: {"type": "integer"} for k in ("tests", "passed", "failed", "errors", "skipped", "xfailed", "xpassed")
    },
}
_RUN = {
    "type": "object",
    "required": [
        "id",
        "session",
        "cycle",
        "status",
        "incomplete",
        "totals",
        "pass_rate",
        "duration_s",
        "mrr_at_risk",
        "signatures",
        "counted",
        "excluded_reason",
        "revision",
        "commit",
        "flaky",
        "quarantined",
        "shards",
    ],
    "properties": {
        "id": {"type": "integer"},
        "session": {"type": "string"},
        "cycle": {"type": "integer"},
        "status": {
            "type": "string",
            "enum": ["queued", "running", "finished", "error", "timed_out", "cancelled", "lost"],
        },
        "incomplete": {"type": "boolean"},
        "totals": _TOTALS,
        "pass_rate": {"type": ["number", "null"]},
        "duration_s": {"type": ["number", "null"]},
        "mrr_at_risk": {"type": "number"},
        "counted": {
            "type": "boolean",
            "description": "Whether the run counts in the session's figures: finished, complete and not excluded.",
        },
        "excluded_reason": {
            "type": ["string", "null"],
            "description": "Why the run was excluded; null when it was not.",
        },
        "revision": {"type": ["string", "null"], "description": "The revision of the deployment it tested, or null."},
        "commit": {
            "type": ["string", "null"],
            "description": "The commit whose suite ran (an environment with a repository) or that its deployment "
            "recorded; null when unknown.",
        },
        "flaky": {"type": "integer", "description": "Tests that both failed (or errored) and passed within this run."},
        "quarantined": {
            "type": "integer",
            "description": "Results of tests quarantined when the run completed: in the totals, left out of pass_rate.",
        },
        "shards": {
            "type": "array",
            "description": "[] for an unsharded run, else one object per shard (the part of the run one worker ran).",
            "items": {
                "type": "object",
                "required": ["index", "status", "tests", "duration_s", "worker"],
                "properties": {
                    "index": {"type": "integer", "minimum": 1, "maximum": 32},
                    "status": {"type": "string"},
                    "tests": {"type": "integer", "description": "How many tests the shard was given."},
                    "duration_s": {"type": ["number", "null"], "description": "Its wall time; null until it ended."},
                    "worker": {"type": ["string", "null"], "description": "The Celery worker's node name."},
                    "planned_s": {"type": ["number", "null"], "description": "Expected test time, from history."},
                    "attempt": {"type": "integer", "description": "2 once retried after its worker died."},
                    "totals": {"type": "object"},
                },
            },
        },
        "signatures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "count": {"type": "integer"}},
            },
        },
        "url": {"type": "string"},
        "created": {"type": "boolean"},
    },
}


_SESSION = {
    "type": "object",
    "required": ["slug", "title", "latest_counted_run", "cycles", "flaky_tests"],
    "properties": {
        "slug": {"type": "string"},
        "title": {"type": "string"},
        "latest_counted_run": {"type": ["integer", "null"], "description": "The id of the latest run that counts."},
        "cycles": {
            "type": "array",
            "description": "Oldest first; each cycle's figures are those of its representative counted run.",
            "items": {
                "type": "object",
                "required": ["number", "revision", "run", "counted", "pass_rate", "mrr_at_risk"],
                "properties": {
                    "number": {"type": "integer"},
                    "revision": {"type": ["string", "null"]},
                    "run": {"type": ["integer", "null"], "description": "The representative counted run, or null."},
                    "counted": {"type": "boolean", "description": "Whether the cycle has a counted full run."},
                    "pass_rate": {"type": ["number", "null"]},
                    "mrr_at_risk": {"type": ["number", "null"]},
                },
            },
        },
        "flaky_tests": {"type": "integer", "description": "How many tests the session page lists as flaky."},
        "url": {"type": "string"},
    },
}
_RESULTS = {
    "type": "object",
    "required": ["results", "next"],
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["test", "outcome", "duration_s", "signature", "message"],
                "properties": {
                    "test": {"type": "string", "description": "The test's node id."},
                    "outcome": {"type": "string", "enum": list(OUTCOMES)},
                    "duration_s": {"type": ["number", "null"]},
                    "signature": {"type": ["integer", "null"], "description": "The failure signature's id."},
                    "message": {"type": "string"},
                },
            },
        },
        "next": {"type": ["string", "null"], "description": "The cursor of the next page (pass it as after)."},
    },
}
_REASON = {
    "type": "object",
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500, "example": "staging was down"}},
}


def _counting(summary: str, reason: str) -> dict:
    """``POST /runs/{id}/exclude`` and ``/include``: operators and admins, a token with the trigger scope."""
    return {
        "post": {
            "summary": summary,
            "parameters": [RUN_ID],
            "requestBody": {
                "required": False,
                "description": reason,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reason"}}},
            },
            "responses": {
                "200": json_response("Run", "the run, as it counts now"),
                **errors(400, 401, 403, 404, 405, 409),
            },
        }
    }


# ``shards`` goes with every shape that runs tests (1 to 32; a deploy refuses it with a 400).
SHARDS_FIELD: dict = {
    "type": "integer",
    "minimum": 1,
    "maximum": 32,
    "example": 4,
    "description": "split the run over this many workers (shards; default: the environment's default_shards); "
    "never more than it has tests. One run, one summary; each shard is listed in the run's shards",
}

# What may be combined, as the API checks it: one of these shapes and nothing else.
_TRIGGER = {
    "oneOf": [
        {
            "title": "deploy, or a cycle (deploy then run the suite)",
            "type": "object",
            "required": ["action"],
            "additionalProperties": False,
            "properties": {
                "action": {"type": "string", "enum": ["deploy", "cycle"]},
                "shards": {**SHARDS_FIELD, "description": "cycle: " + SHARDS_FIELD["description"]},
                "revision": {
                    "type": "string",
                    "maxLength": 100,
                    "example": "r2",
                    "description": "a revision the environment knows (default: its default revision); with a "
                    "repository, any branch, tag or commit (default: the head of its default branch); an unknown "
                    "ref is a 400 naming it",
                },
            },
        },
        {
            "title": "run the whole suite",
            "type": "object",
            "required": ["action"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "revision": {
                    "type": "string",
                    "maxLength": 100,
                    "example": "main",
                    "description": "with a repository: run the suite of this branch, tag or commit without "
                    "deploying (default: the commit deployed now); 400 naming it when unknown or when the "
                    "environment has no repository",
                },
            },
        },
        {
            "title": "run a subset: the tests a marker and/or keyword expression selects",
            "type": "object",
            "required": ["action"],
            "anyOf": [{"required": ["marker"]}, {"required": ["keyword"]}],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "marker": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "example": "p1",
                    "description": "a marker expression, passed to the test command as one argument through the "
                    "environment's marker_args (pytest: -m EXPR); not empty, not starting with - or @, no "
                    "control characters or line separators (else 400 naming the field)",
                },
                "keyword": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "example": "login",
                    "description": "a keyword expression, passed as one argument through the environment's "
                    "keyword_args (pytest: -k EXPR); the same rules as marker",
                },
            },
        },
        {
            "title": "run the environment's P1 tests",
            "type": "object",
            "required": ["action", "p1"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "p1": {
                    "const": True,
                    "description": "the test cases of the environment whose priority is P1 (from the impact rules); "
                    "400 when there is none",
                },
            },
        },
        {
            "title": "run the tests a signature hit in its latest run",
            "type": "object",
            "required": ["action", "signature"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "signature": {
                    **ID,
                    "description": "a signature of the session's environment (404 otherwise); its tests are those "
                    "whose results carry it, or a signature merged into it, in the latest run it was seen in",
                },
            },
        },
        {
            "title": "run tests chosen by hand (TestCase ids of the environment)",
            "type": "object",
            "required": ["action", "tests"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "tests": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50_000,
                    "items": {**ID, "description": "a TestCase id of the session's environment (400 otherwise)"},
                },
            },
        },
        {
            "title": "rerun all or the failed tests of a run",
            "type": "object",
            "required": ["action", "rerun"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "rerun": {**ID, "description": "the id of a run of this session"},
                "scope": {"type": "string", "enum": ["all", "failed"], "default": "all"},
            },
        },
        {
            "title": "rerun chosen tests of a run",
            "type": "object",
            "required": ["action", "rerun", "scope", "tests"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "shards": SHARDS_FIELD,
                "rerun": {**ID, "description": "the id of a run of this session"},
                "scope": {"const": "selected"},
                "tests": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50_000,
                    "items": {**ID, "description": "a TestCase id with a result in that run"},
                },
            },
        },
    ]
}


SCHEMAS: dict = {
    "Error": ERROR,
    "Run": _RUN,
    "Session": _SESSION,
    "Results": _RESULTS,
    "Reason": _REASON,
    "Trigger": _TRIGGER,
}

PATHS: dict = {
    "/sessions/{slug}/runs": {
        "post": {
            "summary": "Ingest a results file (JUnit XML, pytest report-log, TRX, NUnit 3, xUnit.net v2, go test -json; "
            "optionally gzipped) as one run",
            "parameters": [slug_param("The session; a new slug creates the session (at most 100 characters).")],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "cycle": {"type": "integer", "minimum": 1, "maximum": INT_MAX, "example": 3},
                                "environment": {
                                    "type": "string",
                                    "pattern": "^[-a-zA-Z0-9_]+$",
                                    "maxLength": 64,
                                    "example": "staging",
                                    "description": "An existing environment, for a new session (admins create environments; an unknown one is refused). Without it a new session gets its own environment, without commands. For an existing session it must be the session's own (else 409).",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": {
                    "description": "stored",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}},
                },
                "200": {
                    "description": "the same file was stored before",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}},
                },
                **errors(400, 401, 403, 404, 405, 409),
            },
        }
    },
    "/runs/{id}": {
        "get": {
            "summary": "A run's status and summary",
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
                }
            ],
            "responses": {
                "200": {
                    "description": "the run",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}},
                },
                **errors(401, 403, 404, 405),
            },
        }
    },
    "/runs/{id}/results": {
        "get": {
            "summary": "A page of a run's results in id order (keyset paging: pass next as after)",
            "parameters": [
                RUN_ID,
                {
                    "name": "outcome",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(OUTCOMES)},
                },
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "description": "The cursor a previous page answered as next.",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
            "responses": {"200": json_response("Results", "a page of results"), **errors(400, 401, 403, 404, 405)},
        }
    },
    "/runs/{id}/exclude": _counting(
        "Exclude an ended run from every figure, with a reason (operators and admins)",
        'Required: {"reason": "..."} (at most 500 characters; shown on the run and in the session\'s activity).',
    ),
    "/runs/{id}/include": _counting(
        "Take an excluded run back in; it counts again if it finished complete (operators and admins)",
        'Optional: {"reason": "..."}. 409 when the run is not excluded or has not ended.',
    ),
    "/sessions/{slug}": {
        "get": {
            "summary": "A session: its latest counted run, each cycle's representative counted run, flaky tests",
            "parameters": [slug_param("An existing session.")],
            "responses": {"200": json_response("Session", "the session"), **errors(401, 403, 404, 405)},
        }
    },
    "/sessions/{slug}/trigger": {
        "post": {
            "summary": "Queue a deploy, a test run or a cycle on the workers (operators only)",
            "parameters": [slug_param("An existing session.")],
            "requestBody": {
                "required": True,
                "description": "UTF-8 JSON (a form-encoded body with the same fields is accepted too).",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/Trigger"},
                    }
                },
            },
            "responses": {
                "202": {
                    "description": "queued",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"run": {"type": "integer"}, "deployment": {"type": "integer"}},
                            }
                        }
                    },
                },
                **errors(400, 401, 403, 404, 405, 409),
                "503": {
                    "description": "the task queue (broker) could not be reached: nothing was queued",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        }
    },
}
