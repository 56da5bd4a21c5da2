"""``/environments/{name}``: an environment as code (GET reads it, PUT replaces it; admins write)."""

from __future__ import annotations

from django.db import models

from ..models import Environment
from ..validation import INT_MAX
from .common import SLUG_SCHEMA, errors, json_response

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The environment's name (PUT creates it when it does not exist).",
    "schema": {**SLUG_SCHEMA, "maxLength": 64},
    "example": "staging",
}
_ARGUMENTS = {"type": "array", "items": {"type": "string"}, "description": "An argument list, never a shell string."}
_SPECIAL = {
    "name": {**SLUG_SCHEMA, "maxLength": 64},
    "env_vars": {"type": "object", "additionalProperties": {"type": "string"}},
    "revisions": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["revision"],
            "properties": {"revision": {"type": "string"}, "commit": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": False,
        },
    },
    "metric_targets": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"target": {"type": "number"}, "lower_is_better": {"type": "boolean"}},
        },
    },
}


def _schema_of(column: models.Field) -> dict:
    """A setting's JSON type, from its column (settings added later are described without an edit here)."""
    if column.name in _SPECIAL:
        schema = dict(_SPECIAL[column.name])
    elif column.name.endswith(("_command", "_args")) or column.name == "health_check":
        schema = dict(_ARGUMENTS)
    elif isinstance(column, models.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(column, models.IntegerField):
        schema = {"type": "integer", "minimum": 0, "maximum": INT_MAX}
    elif isinstance(column, models.CharField | models.TextField):
        schema = {"type": "string", **({"maxLength": column.max_length} if column.max_length else {})}
    else:
        schema = {}
    if column.null and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if column.help_text:
        schema["description"] = str(column.help_text)
    return schema


_SETTINGS = {
    f.name: _schema_of(f)
    for f in Environment._meta.concrete_fields
    if f.editable and not f.primary_key and not f.is_relation and not f.auto_created
}

SCHEMAS = {
    "EnvironmentSettings": {
        "type": "object",
        "description": "The whole environment: a key left out takes its default. Keys are the settings' names.",
        "properties": _SETTINGS,
    },
    "Environment": {
        "type": "object",
        "required": list(_SETTINGS),
        "properties": {
            **_SETTINGS,
            "created": {"type": "boolean", "description": "PUT only: the environment did not exist before."},
            "changed": {"type": "array", "items": {"type": "string"}, "description": "PUT only: keys that changed."},
        },
    },
    "EnvironmentError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "The first problem: 'key: what is wrong'."},
            "problems": {
                "type": "array",
                "items": {"type": "object", "properties": {"key": {"type": "string"}, "message": {"type": "string"}}},
            },
        },
    },
}

PATHS = {
    "/environments/{name}": {
        "get": {
            "summary": "An environment, in the form PUT and `manage.py environment apply` accept (read scope).",
            "parameters": [_NAME],
            "responses": {"200": json_response("Environment", "the environment"), **errors(401, 403, 404)},
        },
        "put": {
            "summary": "Create or replace an environment (admins; trigger scope). Nothing changes when it is refused.",
            "parameters": [_NAME],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnvironmentSettings"}}},
            },
            "responses": {
                "200": json_response("Environment", "updated (changed lists what changed; empty: nothing did)"),
                "201": json_response("Environment", "created"),
                "400": json_response("EnvironmentError", "a key and its problem"),
                **errors(401, 403),
            },
        },
    }
}
