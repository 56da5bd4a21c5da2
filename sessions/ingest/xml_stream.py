"""The streaming XML loop shared by the TRX, NUnit 3 and xUnit.net v2 parsers, with JUnit's guards.

The same refusals as JUnit (``xml_guard``): the prolog is scanned before lxml sees it (any DTD or
entity declaration, a wrong root), lxml runs with entity resolution, DTD loading and network access
off, parse errors get the same wording and a file cut off names what was left open and where. The
same bounded memory: a caller handles each wanted element at its end and then ``release``s it, which
frees it and every earlier sibling, so the tree never holds more than the elements still open.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lxml import etree

from .records import IngestError
from .source import Source
from .xml_guard import LineCount, TooDeep, pull_parser, read_prolog, refuse_doctype, syntax_error, xml_feeds


def element_ends(
    src: Source, roots: tuple[bytes, ...], expected: str, tags: tuple[str, ...]
) -> Iterator[tuple[str, Any]]:
    """(local name, element) at the end of each element named in ``tags`` (``"{*}name"``), in file order."""
    source = src.source
    prolog = read_prolog(src, roots, expected)
    parser = pull_parser(tags, src.encoding)
    lines = LineCount()
    etree.clear_error_log()
    first = True
    for data in xml_feeds(src, prolog):
        try:
            try:
                if data:
                    lines.feed(data)
                    parser.feed(data)
                else:
                    parser.close()
                events = list(parser.read_events())
            except etree.XMLSyntaxError as exc:
                raise syntax_error(source, exc, lines.ended() if not data else lines) from None
        except TooDeep:
            raise IngestError(source, "elements nested deeper than 2048 levels") from None
        if first and events:
            first = False
            refuse_doctype(source, events[0][1])
        for _event, el in events:
            tag = el.tag
            yield (tag.rpartition("}")[2] if tag[0] == "{" else tag), el


def release(el: Any) -> None:
    """Free a handled element and everything before it in its parent."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def child(el: Any, name: str) -> Any:
    """The first child element named ``name`` (any namespace), or None."""
    for part in el:
        tag = part.tag
        if isinstance(tag, str) and (tag == name or tag.endswith("}" + name)):
            return part
    return None


def text_of(el: Any, *path: str) -> str:
    """The text under a path of child names (``text_of(result, "Output", "StdOut")``), "" when absent."""
    for name in path:
        if el is None:
            return ""
        el = child(el, name)
    return "".join(el.itertext()) if el is not None else ""
