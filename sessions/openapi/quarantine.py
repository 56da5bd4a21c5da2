"""``/environments/{name}/quarantine``: the active quarantine list (CI reads it), add one, end one."""

from __future__ import annotations

from .common import SLUG_SCHEMA, errors, json_response

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "An existing environment's name.",
    "schema": SLUG_SCHEMA,
    "example": "staging",
}

_ENTRY_PROPERTIES = {
    "test": {"type": "string", "description": "The test's node id."},
    "reason": {"type": "string"},
    "until": {"type": "string", "format": "date", "description": "The quarantine ends by itself on this date."},
    "by": {"type": ["string", "null"], "description": "Who quarantined it (null: a user since deleted)."},
}

SCHEMAS = {
    "QuarantineEntry": {
        "type": "object",
        "required": ["test", "reason", "until", "by"],
        "properties": {
            **_ENTRY_PROPERTIES,
            "passes_in_a_row": {
                "type": "integer",
                "description": "Its latest results in counted runs that passed in a row (up to LOOPDASH_QUARANTINE_RELEASE_AFTER).",
            },
            "suggest_release": {
                "type": "boolean",
                "description": "It passed LOOPDASH_QUARANTINE_RELEASE_AFTER counted runs in a row: consider ending it.",
            },
            "ended": {"type": "boolean", "description": "DELETE only: the quarantine was ended now."},
        },
    },
    "QuarantineList": {
        "type": "array",
        "description": "The active quarantines, the soonest to end first.",
        "items": {"$ref": "#/components/schemas/QuarantineEntry"},
    },
    "QuarantineRequest": {
        "type": "object",
        "required": ["test", "reason", "until"],
        "properties": {
            "test": {"type": "string", "maxLength": 2000, "description": "A node id the environment knows."},
            "reason": {"type": "string", "maxLength": 500, "description": "Why (shown wherever the test is marked)."},
            "until": {"type": "string", "format": "date", "description": "YYYY-MM-DD, after today."},
        },
    },
}

PATHS = {
    "/environments/{name}/quarantine": {
        "get": {
            "summary": "The environment's active quarantines (any token with the read scope; CI reads this)",
            "parameters": [_NAME],
            "responses": {
                "200": json_response("QuarantineList", "active quarantines, the soonest to end first"),
                **errors(401, 403, 404),
            },
        },
        "post": {
            "summary": "Quarantine a test until a date (engineers, operators, admins; a token with the upload scope)",
            "parameters": [_NAME],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QuarantineRequest"}}},
            },
            "responses": {
                "201": json_response("QuarantineEntry", "quarantined"),
                "200": json_response("QuarantineEntry", "its active quarantine was updated"),
                **errors(400, 401, 403, 404),
            },
        },
        "delete": {
            "summary": "End a test's quarantine now (engineers, operators, admins; a token with the upload scope)",
            "parameters": [
                _NAME,
                {
                    "name": "test",
                    "in": "query",
                    "required": True,
                    "description": "The node id of a quarantined test.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": json_response("QuarantineEntry", "the quarantine, ended"),
                **errors(400, 401, 403, 404),
            },
        },
    }
}
