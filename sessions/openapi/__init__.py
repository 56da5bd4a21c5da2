"""The OpenAPI 3 description of /api/v1, so that clients and fuzzers can use the API.

Each part of the API describes its own paths and schemas in a module of this package (``PATHS``, ``SCHEMAS``);
this module puts them together, so that a new endpoint adds a module and one line in ``PARTS``.
"""

from __future__ import annotations

from . import core, environments, live, quarantine

PARTS = (core, quarantine, live, environments)


def _paths() -> dict:
    """Every part's paths; two parts may describe different methods of one path (GET and POST results)."""
    paths: dict = {}
    for part in PARTS:
        for url, item in part.PATHS.items():
            paths.setdefault(url, {}).update(item)
    return paths


SPEC: dict = {
    "openapi": "3.1.0",
    "info": {"title": "loopdash API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `manage.py issue_token` or the admin. 401 when missing, unknown, revoked or expired; 403 when its scope (read: GET /runs, /sessions/{slug} and /runs/{id}/results; upload: POST runs, runs/live, results and finish; trigger: POST trigger, exclude and include) or its user's role does not allow the call.",
            }
        },
        "schemas": {name: schema for part in PARTS for name, schema in part.SCHEMAS.items()},
    },
    "security": [{"bearer": []}],
    "paths": _paths(),
}
