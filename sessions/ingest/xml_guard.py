"""Hostile and broken XML, refused before and while a parser reads it, with one wording for both parsers.

The DTD is the only place where entities can be declared, and it can only stand before the root
element: scanning the prolog refuses every entity trick (billion laughs, quadratic blow-up, external
entities) before it costs anything, and checks the root element's name. Parse errors of lxml and of
expat are turned into the same specific problems (invalid UTF-8, a character not allowed in XML,
truncated XML, entity references refused...), with the line where known.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from xml.parsers import expat

from lxml import etree

from .records import IngestError
from .source import CHUNK, Source

PROLOG_LIMIT = 1024 * 1024
# libxml2's push parser costs more per byte when fed large buffers: a 100,000-case JUnit file parsed
# 0.3 s (a fifth) faster in CPU fed by 16 KiB than by 256 KiB (docs/PERFORMANCE.md, Ingestion, Round 4).
XML_FEED = 16 * 1024


class TooDeep(Exception):
    """libxml2's nesting limit (2048 levels) was hit: the caller falls back to expat."""


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


_REFERENCE = re.compile(rb"&([^\s&;#][^\s&;]*);")


_PREDEFINED = frozenset((b"amp", b"lt", b"gt", b"quot", b"apos"))


def expat_error(source: str, exc: expat.ExpatError, data: bytes) -> IngestError:
    """The same wording as ``syntax_error`` where the two parsers agree on the cause."""
    message = expat.errors.messages[exc.code]
    codes = expat.errors.codes
    if exc.code == codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]:
        name = next((m.group(1) for m in _REFERENCE.finditer(data) if m.group(1) not in _PREDEFINED), b"?")
        problem = f"entity references are refused (Entity '{name.decode('utf-8', 'replace')}' not defined)"
    elif "entity" in message:
        problem = f"entity references are refused ({message})"
    elif exc.code == codes[expat.errors.XML_ERROR_NO_ELEMENTS]:
        problem = f"truncated XML ({message})"
    elif exc.code == codes[expat.errors.XML_ERROR_BAD_CHAR_REF]:
        problem = f"character not allowed in XML ({message})"
    elif exc.code == codes[expat.errors.XML_ERROR_INVALID_TOKEN] and not _is_utf8(data):
        problem = f"invalid UTF-8 ({message})"
    elif exc.code == codes[expat.errors.XML_ERROR_INVALID_TOKEN] and _CONTROL.search(data):
        problem = f"character not allowed in XML ({message})"
    elif exc.code == codes[expat.errors.XML_ERROR_JUNK_AFTER_DOC_ELEMENT]:
        problem = "malformed XML (Extra content at the end of the document)"
    else:
        problem = f"malformed XML ({message})"
    return IngestError(source, problem, line=exc.lineno or None)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3  # a character cut at the end of the chunk is fine
    return True


def read_prolog(src: Source, roots: tuple[bytes, ...], expected: str) -> bytes:
    """Read up to the root start tag; refuse any ``<!DOCTYPE``/``<!ENTITY`` and a wrong root.

    The DTD is the only place where entities can be declared, and it can only stand before the root
    element, so scanning the prolog is enough to refuse every entity trick before it costs anything.
    """
    buf = src.read(CHUNK)
    while True:
        found = _scan_prolog(buf, src.source, roots, expected)
        if found is not None:
            return buf
        if len(buf) > PROLOG_LIMIT:
            raise IngestError(src.source, "no root element in the first 1 MB", line=buf.count(b"\n") + 1)
        more = src.read(CHUNK)
        if not more:
            return buf  # lxml reports the truncated prolog with its line number
        buf += more


def _scan_prolog(buf: bytes, source: str, roots: tuple[bytes, ...], expected: str) -> bool | None:
    """True once the root start tag is seen and accepted; None when more bytes are needed."""
    i, n = 0, len(buf)
    while True:
        while i < n and buf[i] in b" \t\r\n":
            i += 1
        if i >= n:
            return None
        if buf[i] != 0x3C:  # text before the root: not well-formed; lxml says where
            return True
        if buf.startswith(b"<?", i):
            end = buf.find(b"?>", i + 2)
            if end < 0:
                return None
            i = end + 2
        elif buf.startswith(b"<!--", i):
            end = buf.find(b"-->", i + 4)
            if end < 0:
                return None
            i = end + 3
        elif buf.startswith(b"<!", i):
            if n - i < 9 and not buf.startswith(b"<!DOCTYPE"[: n - i], i):
                return None
            word = (buf[i + 2 : i + 9].decode("ascii", "replace").split() or ["?"])[0]
            raise IngestError(
                source,
                f"<!{word} found: DTDs and entity declarations are refused "
                "(they can expand without bound or read other files)",
                line=buf.count(b"\n", 0, i) + 1,
            )
        else:
            match = re.match(rb"<([^\s/>]+)", buf[i:])
            if match is None or i + match.end() >= n:
                return None if n - i < 4096 else True
            name = match.group(1)
            if name.rpartition(b":")[2] not in roots:
                shown = name[:60].decode("utf-8", "replace")
                raise IngestError(
                    source,
                    f"root element is <{shown}>, expected {expected}",
                    line=buf.count(b"\n", 0, i) + 1,
                )
            return True


def root_name(head: bytes) -> bytes | None:
    """The root element's local name when the first bytes show it, else None (the parser then decides).

    Only chooses the format: ``read_prolog`` still scans the prolog for DTDs and checks the root.
    """
    i, n = 0, len(head)
    while i < n:
        while i < n and head[i] in b" \t\r\n":
            i += 1
        if head.startswith(b"<?", i) or head.startswith(b"<!--", i):
            closing = b"?>" if head.startswith(b"<?", i) else b"-->"
            end = head.find(closing, i + 2)
            if end < 0:
                return None
            i = end + len(closing)
            continue
        match = re.match(rb"<([^\s/>!?]+)", head[i : i + 300])
        return match.group(1).rpartition(b":")[2] if match else None
    return None


def pull_parser(tags: object, encoding: str | None) -> etree.XMLPullParser:
    """The one way result files are parsed: no entity expansion, no network, no DTD, comments and
    processing instructions dropped; events only at the end of the elements named in ``tags``."""
    return etree.XMLPullParser(
        events=("end",),
        tag=tags,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
        encoding=encoding,
    )


def refuse_doctype(source: str, el: etree._Element) -> None:
    """Second line of defence: a DTD that slipped past the prolog scan (an exotic encoding)."""
    docinfo = el.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise IngestError(source, "DTDs and entity declarations are refused")


def xml_feeds(src: Source, first: bytes) -> Iterator[bytes]:
    """What to feed the pull parser: ``first`` (the prolog read), then the rest of ``src``, in slices of
    ``XML_FEED``; ends with ``b""``, the signal to close the parser."""
    for start in range(0, len(first), XML_FEED):
        yield first[start : start + XML_FEED]
    while data := src.read(XML_FEED):
        yield data
    yield b""


class LineCount:
    """Lines fed to the parser so far and the last 512 KiB or more: where a cut-off file ends, and inside what.

    libxml2 says "Unregistered error message" or "CData section not finished" when a file stops in
    the middle; with this, the refusal says what was left open and on which line.
    """

    def __init__(self) -> None:
        self.before = 0  # newlines before ``chunks``
        self.chunks: deque[bytes] = deque()
        self.size = 0  # bytes in ``chunks``
        self.at_end = False

    def feed(self, data: bytes) -> None:
        chunks = self.chunks
        chunks.append(data)
        self.size += len(data)
        while self.size - len(chunks[0]) >= 2 * CHUNK:
            dropped = chunks.popleft()
            self.size -= len(dropped)
            self.before += dropped.count(b"\n")

    def ended(self) -> LineCount:
        self.at_end = True
        return self

    def cut_off(self) -> tuple[str, int] | None:
        """(what was left open, the line it opened on) at the end of the file, or None when nothing was."""
        tail = b"".join(self.chunks)
        for opening, closing, what in _OPEN_AT_END:
            start = tail.rfind(opening)
            if start >= 0 and tail.find(closing, start + len(opening)) < 0:
                return what, self.before + tail.count(b"\n", 0, start) + 1
        start = tail.rfind(b"<")
        if start >= 0 and tail.find(b">", start) < 0:
            return "a tag", self.before + tail.count(b"\n", 0, start) + 1
        return None

    @property
    def last_line(self) -> int:
        return self.before + sum(chunk.count(b"\n") for chunk in self.chunks) + 1


_OPEN_AT_END = (
    (b"<![CDATA[", b"]]>", "a CDATA section"),
    (b"<!--", b"-->", "a comment"),
    (b"<?", b"?>", "a processing instruction"),
)


def syntax_error(source: str, exc: etree.XMLSyntaxError, lines: LineCount | None = None) -> IngestError:
    """The first fatal error is the cause; lxml's exception may name a later one ("no element found").

    The log is lxml's per-thread log, cleared when parsing starts, so its first fatal entry is ours.
    Raises ``TooDeep`` for libxml2's nesting limit, which the expat fallback gets around. With
    ``lines`` at the end of the file, a file cut off inside a CDATA section, a comment or a tag is
    named as such, with the line where the unfinished part starts.
    """
    msg, line = exc.msg or str(exc), exc.lineno
    fatal = exc.error_log.filter_from_fatals()
    if fatal:
        msg, line = fatal[0].message, fatal[0].line
    msg = re.sub(r",? line \d+, column \d+$", "", msg.strip())
    lowered = msg.lower()
    if "excessive depth" in lowered:
        raise TooDeep
    if lines is not None and lines.at_end:
        open_part = lines.cut_off()
        if open_part is not None:
            what, opened = open_part
            # A tag cut in two reads as malformed to libxml2 and expat alike; the wording stays theirs.
            kind = "malformed XML" if what == "a tag" else "truncated XML"
            return IngestError(
                source, f"{kind}: the file ends inside {what} opened on line {opened}", line=lines.last_line
            )
        if "unregistered error" in lowered or "premature end" in lowered or "not finished" in lowered:
            return IngestError(
                source, f"truncated XML: the file ends before its elements are closed ({msg})", line=lines.last_line
            )
    if "unregistered error" in lowered:
        msg = "libxml2 gave no reason"
    if "not proper utf-8" in lowered or "invalid bytes in character encoding" in lowered:
        problem = f"invalid UTF-8 ({msg.splitlines()[-1] if msg else ''})"
    elif "invalid char" in lowered or "out of allowed range" in lowered or "invalid xmlchar" in lowered:
        problem = f"character not allowed in XML ({msg})"
    elif "entity" in lowered:
        problem = f"entity references are refused ({msg})"
    elif "excessive depth" in lowered:
        raise TooDeep
    elif "premature end" in lowered or "endtag: '</' not found" in lowered:
        problem = f"truncated XML ({msg})"
    elif "document is empty" in lowered or "start tag expected" in lowered:
        problem = f"not XML ({msg})"
    else:
        problem = f"malformed XML ({msg})"
    return IngestError(source, problem, line=line or None)
