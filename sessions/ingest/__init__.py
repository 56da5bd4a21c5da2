"""Ingestion's pure parsing layer: bytes in, plain records out (no ORM, no Django).

``parse`` detects gzip and the format from the content, never from the file name, and streams:
``ParsedFile.results`` yields results while the file is read, so memory does not grow with the file.
Every refusal is an ``IngestError`` naming the source, the problem and the line where known; it may be
raised in the middle of iterating ``results`` (the caller stores a file in one transaction, so a
refusal half-way stores nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .gotest import looks_like_go, parse_gotest
from .junit import parse_junit
from .nunit3 import parse_nunit3
from .records import IngestError, Outcome, ParsedResult, RunInfo
from .reportlog import parse_reportlog
from .source import Source
from .trx import parse_trx
from .xml_guard import root_name
from .xunit2 import parse_xunit2

__all__ = ["DEFAULT_MAX_BYTES", "IngestError", "Outcome", "ParsedFile", "ParsedResult", "RunInfo", "parse"]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
_JSON_STARTS = frozenset(b'{["-0123456789')
# XML formats by their root element; any other root goes to JUnit, which refuses it by name.
_XML_FORMATS = {
    b"TestRun": ("trx", parse_trx),
    b"test-run": ("nunit3", parse_nunit3),
    b"assemblies": ("xunit2", parse_xunit2),
}


@dataclass(slots=True)
class ParsedFile:
    """``info.format`` is known at once; the rest of ``info`` is complete once ``results`` is exhausted."""

    results: Iterator[ParsedResult]
    info: RunInfo


def parse(fileobj: BinaryIO, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedFile:
    """Open ``fileobj`` (JUnit XML, pytest report-log, TRX, NUnit 3, xUnit.net v2 or ``go test -json``,
    any of them possibly gzipped) for streaming.

    ``source`` is the name used in error messages (the file name or upload name). ``max_bytes``
    bounds the *decompressed* size. Empty files, unknown formats and a wrong gzip are refused here;
    everything else is refused while ``results`` is iterated.
    """
    src = Source(fileobj, source, max_bytes)
    head = src.head.lstrip(b" \t\r\n")
    if not head:
        raise IngestError(source, "file is empty" if src.consumed == 0 else "file contains only whitespace")
    if head[0] == 0x3C:  # "<"
        name, parser = _XML_FORMATS.get(root_name(head) or b"", ("junit", parse_junit))
        info = RunInfo(format=name)
        return ParsedFile(results=parser(src, info), info=info)
    if looks_like_go(head.split(b"\n", 8)[:8]):
        info = RunInfo(format="gotest")
        return ParsedFile(results=parse_gotest(src, info), info=info)
    if head[0] in _JSON_STARTS:
        info = RunInfo(format="reportlog")
        return ParsedFile(results=parse_reportlog(src, info), info=info)
    raise IngestError(
        source,
        f"neither JUnit XML nor JSON lines nor TRX, NUnit 3 or xUnit.net XML (starts with {_shown(head)})",
        line=1,
    )


def _shown(head: bytes) -> str:
    sample = head[:16]
    if all(32 <= b < 127 for b in sample):
        return repr(sample.decode("ascii"))
    return "bytes " + sample.hex(" ")
