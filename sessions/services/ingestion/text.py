"""Text made storable, the same way by both storage engines.

PostgreSQL refuses NUL and lone surrogates in text and in jsonb; a parser hands on what the file
held, so every value is cleaned on its way into the database (NUL and lone surrogates become U+FFFD).
"""

from __future__ import annotations

from typing import Any


def clean_text(text: str) -> str:
    """Make text storable everywhere: PostgreSQL refuses NUL and lone surrogates."""
    if not text:
        return text
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def clean_json(value: Any) -> Any:
    """Strings of a JSON value (property names and values, markers) made storable by ``clean_text``.

    json.dumps writes NUL as ``\\u0000`` and a lone surrogate as its escape: jsonb refuses both.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def module_of(nodeid: str, file: str) -> str:
    """The module a test lives in: its file, else the node id up to the first '::'."""
    if file:
        return file
    return nodeid.split("::", 1)[0] if "::" in nodeid else ""
