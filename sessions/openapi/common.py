"""Pieces every part of the OpenAPI description shares: the error body, path parameters, response helpers."""

from __future__ import annotations

from ..validation import BIGINT_MAX

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

# Path parameters as the URL patterns accept them: anything else is a JSON 404 from the catch-all route.
SLUG_SCHEMA = {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "minLength": 1, "maxLength": 100}


def slug_param(description: str) -> dict:
    return {
        "name": "slug",
        "in": "path",
        "required": True,
        "description": description,
        "schema": SLUG_SCHEMA,
        "example": "golden-path",
    }


ID = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
RUN_ID = {"name": "id", "in": "path", "required": True, "schema": ID}


def json_response(schema: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def errors(*codes: int) -> dict:
    return {
        str(code): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }
