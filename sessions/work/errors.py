"""What the request side answers when work cannot be queued."""

from __future__ import annotations


class Refused(Exception):
    """A request that cannot be queued; ``status`` is the HTTP code that says why (400, 404, 409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
