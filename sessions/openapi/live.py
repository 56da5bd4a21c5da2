"""Live results from CI: open a run, POST report-log lines to it in batches, finish it (``api_live``)."""

from __future__ import annotations

from ..validation import INT_MAX
from .common import RUN_ID, errors, json_response, slug_param

SCHEMAS: dict = {
    "LiveRunRequest": {
        "type": "object",
        "properties": {
            "cycle": {"type": "integer", "minimum": 1, "maximum": INT_MAX, "example": 3},
            "revision": {
                "type": "string",
                "maxLength": 100,
                "example": "r7",
                "description": "What the suite ran against.",
            },
            "shard": {
                "type": ["string", "integer"],
                "maxLength": 40,
                "example": "1/4",
                "description": "A label for one CI job of several; each job opens its own run.",
            },
            "environment": {
                "type": "string",
                "pattern": "^[-a-zA-Z0-9_]+$",
                "maxLength": 64,
                "description": "As for an upload: an existing environment, for a new session.",
            },
        },
    },
    "LiveRun": {
        "type": "object",
        "required": ["id", "url", "session", "cycle", "environment"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string", "description": "The run's page."},
            "session": {"type": "string"},
            "cycle": {"type": "integer"},
            "environment": {"type": "string", "description": "Whose quarantine list applies to this suite."},
        },
    },
    "LiveBatch": {
        "type": "object",
        "required": ["stored", "in_flight", "duplicate"],
        "properties": {
            "stored": {"type": "integer", "description": "Tests this batch finished (their results are stored)."},
            "in_flight": {
                "type": "integer",
                "description": "Tests begun but not finished yet, kept for the next batch.",
            },
            "duplicate": {"type": "boolean", "description": "This batch number was stored before: nothing stored."},
        },
    },
    "LiveFinish": {
        "type": "object",
        "required": ["exitstatus"],
        "properties": {"exitstatus": {"type": "integer", "minimum": -INT_MAX, "maximum": INT_MAX, "example": 1}},
    },
}

PATHS: dict = {
    "/sessions/{slug}/runs/live": {
        "post": {
            "summary": "Open a run fed live from CI (status running, source ci); its results come in batches",
            "parameters": [slug_param("The session; a new slug creates the session, as an upload does.")],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LiveRunRequest"}}},
            },
            "responses": {
                "201": json_response("LiveRun", "the run, open"),
                **errors(400, 401, 403, 404, 405, 409),
            },
        }
    },
    "/runs/{id}/results": {
        "post": {
            "summary": "Add pytest report-log lines to a live run (any number, in order; an empty body is a heartbeat)",
            "description": (
                "A test's setup, call and teardown may come in different batches. A bad line is a 400 naming the "
                "line in this batch, and nothing of the batch is stored. Send `X-Loopdash-Batch: N` (1, 2, ...) to "
                "make retries safe. A run that gets no batch for LOOPDASH_LOST_AFTER_S seconds is ended as lost."
            ),
            "parameters": [
                RUN_ID,
                {
                    "name": "X-Loopdash-Batch",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": INT_MAX},
                },
            ],
            "requestBody": {
                "required": False,
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "responses": {
                "200": json_response("LiveBatch", "stored"),
                **errors(400, 401, 403, 404, 405, 409, 413),
            },
        }
    },
    "/runs/{id}/finish": {
        "post": {
            "summary": "End a live run with pytest's exit status; it is summarised and counted as a worker's run",
            "parameters": [RUN_ID],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LiveFinish"}}},
            },
            "responses": {
                "200": json_response("Run", "the ended run"),
                **errors(400, 401, 403, 404, 405, 409),
            },
        }
    },
}
