"""The OpenAPI 3 description of /api/v1, so that clients and fuzzers can use the API."""

from __future__ import annotations

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_TOTALS = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in ("tests", "passed", "failed", "errors", "skipped", "xfailed", "xpassed")},
}
_RUN = {
    "type": "object",
    "required": ["id", "session", "cycle", "status", "incomplete", "totals", "pass_rate", "duration_s", "mrr_at_risk", "signatures"],
    "properties": {
        "id": {"type": "integer"},
        "session": {"type": "string"},
        "cycle": {"type": "integer"},
        "status": {"type": "string", "enum": ["queued", "running", "finished", "error", "timed_out", "cancelled", "lost"]},
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


def _errors(*codes: int) -> dict:
    return {
        str(code): {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code in codes
    }


SPEC: dict = {
    "openapi": "3.1.0",
    "info": {"title": "loopdash API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": _ERROR, "Run": _RUN},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/sessions/{slug}/runs": {
            "post": {
                "summary": "Ingest a JUnit XML or pytest report-log file (optionally gzipped) as one run",
                "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "cycle": {"type": "integer", "minimum": 1},
                                    "environment": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {"description": "stored", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}},
                    "200": {"description": "the same file was stored before", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}},
                    **_errors(400, 401, 403, 404, 405),
                },
            }
        },
        "/runs/{id}": {
            "get": {
                "summary": "A run's status and summary",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "the run", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}},
                    **_errors(401, 404, 405),
                },
            }
        },
        "/sessions/{slug}/trigger": {
            "post": {
                "summary": "Queue a deploy, a test run or a cycle on the workers (operators only)",
                "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["action"],
                                "properties": {
                                    "action": {"type": "string", "enum": ["deploy", "tests", "cycle"]},
                                    "revision": {"type": "string"},
                                    "rerun": {"type": "integer"},
                                    "scope": {"type": "string", "enum": ["all", "failed", "selected"]},
                                    "tests": {"type": "array", "items": {"type": "integer"}},
                                },
                            }
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
                },
            }
        },
    },
}
