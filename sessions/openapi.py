"""The OpenAPI 3 description of /api/v1, so that clients and fuzzers can use the API."""

from __future__ import annotations

from .validation import BIGINT_MAX, INT_MAX  # cycle numbers are integers, ids bigints

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
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


# Path parameters as the URL patterns accept them: anything else is a JSON 404 from the catch-all route.
_SLUG_SCHEMA = {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "minLength": 1, "maxLength": 100}


def _slug(description: str) -> dict:
    return {
        "name": "slug",
        "in": "path",
        "required": True,
        "description": description,
        "schema": _SLUG_SCHEMA,
        "example": "golden-path",
    }


_ID = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
# What may be combined, as the API checks it: one of these four shapes and nothing else.
_TRIGGER = {
    "oneOf": [
        {
            "title": "deploy, or a cycle (deploy then run the suite)",
            "type": "object",
            "required": ["action"],
            "additionalProperties": False,
            "properties": {
                "action": {"type": "string", "enum": ["deploy", "cycle"]},
                "revision": {
                    "type": "string",
                    "maxLength": 100,
                    "example": "r2",
                    "description": "a revision the environment knows (default: its default revision)",
                },
            },
        },
        {
            "title": "run the whole suite",
            "type": "object",
            "required": ["action"],
            "additionalProperties": False,
            "properties": {"action": {"const": "tests"}},
        },
        {
            "title": "rerun all or the failed tests of a run",
            "type": "object",
            "required": ["action", "rerun"],
            "additionalProperties": False,
            "properties": {
                "action": {"const": "tests"},
                "rerun": {**_ID, "description": "the id of a run of this session"},
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
                "rerun": {**_ID, "description": "the id of a run of this session"},
                "scope": {"const": "selected"},
                "tests": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50_000,
                    "items": {**_ID, "description": "a TestCase id with a result in that run"},
                },
            },
        },
    ]
}


def _errors(*codes: int) -> dict:
    return {
        str(code): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


SPEC: dict = {
    "openapi": "3.1.0",
    "info": {"title": "loopdash API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `manage.py issue_token` or the admin. 401 when missing, unknown, revoked or expired; 403 when its scope (read: GET /runs; upload: POST runs; trigger: POST trigger) or its user's role does not allow the call.",
            }
        },
        "schemas": {"Error": _ERROR, "Run": _RUN, "Trigger": _TRIGGER},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/sessions/{slug}/runs": {
            "post": {
                "summary": "Ingest a JUnit XML or pytest report-log file (optionally gzipped) as one run",
                "parameters": [_slug("The session; a new slug creates the session (at most 100 characters).")],
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
                    **_errors(400, 401, 403, 404, 405, 409),
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
                    **_errors(401, 403, 404, 405),
                },
            }
        },
        "/sessions/{slug}/trigger": {
            "post": {
                "summary": "Queue a deploy, a test run or a cycle on the workers (operators only)",
                "parameters": [_slug("An existing session.")],
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
                    **_errors(400, 401, 403, 404, 405, 409),
                    "503": {
                        "description": "the task queue (broker) could not be reached: nothing was queued",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
    },
}
