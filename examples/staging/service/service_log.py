"""What the service writes to its log (``.state/service-PORT.log``, via stdout).

Two streams end up there: the service's own structured JSON event lines
(:class:`ServiceLog`) and websockets' library errors such as "connection
handler failed" (:func:`configure_logging`), which carry the 1011 tracebacks.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class ServiceLog:
    """Structured (Cloud-Run style) JSON log lines on stdout, tagged with the revision."""

    def __init__(self, revision: str) -> None:
        self.revision = revision

    def __call__(self, event: str, **fields: Any) -> None:
        """Write one JSON line for ``event``.

        ``json.dumps`` is called on whatever the caller passes -- which is
        exactly why logging an Enum crashes the caller in buggy revisions.
        """
        record = {"ts": round(time.time(), 6), "severity": "INFO", "revision": self.revision, "event": event}
        record.update(fields)
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def configure_logging() -> None:
    """Route websockets' own errors (e.g. 'connection handler failed') to stdout."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
