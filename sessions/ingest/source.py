"""Open an uploaded results file as a bounded, decompressed, UTF-8-or-declared byte stream.

Traps this layer exists for:

- A ``.gz`` name proves nothing and a missing one hides nothing: gzip is recognised by its magic
  bytes, whatever the file is called.
- The size limit applies to the *decompressed* bytes, counted while reading, so that a gzip bomb
  (kilobytes that inflate to gigabytes) is refused after inflating just past the limit, never in full.
- Windows tools write UTF-16 with a byte order mark. Such a stream is re-encoded to UTF-8 here, so
  that the parsers (and the DTD check, which looks at bytes) see one encoding; the parser is then
  told to ignore the file's own ``encoding="UTF-16"`` declaration.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from typing import BinaryIO, Protocol

from .records import IngestError

CHUNK = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"

# (byte order mark, codec); UTF-32 marks first because UTF-32-LE's starts like UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def describe_limit(max_bytes: int) -> str:
    """``200 MB`` for the usual limits, exact bytes for tiny test limits (``0.000954 MB`` helps nobody)."""
    mib = max_bytes / (1024 * 1024)
    return f"{mib:g} MB" if mib >= 1 else f"{max_bytes} bytes"


class Source:
    """A read-only byte stream over an upload: gunzipped, size-limited, BOM-free, UTF-8 when re-encoded.

    ``head`` holds the first bytes (for format detection) and is given back by the first ``read``.
    ``encoding`` is ``"utf-8"`` when the stream was re-encoded or had a UTF-8 byte order mark (the XML
    parser must then override the declared encoding), else ``None`` (the file's declaration decides).
    """

    def __init__(self, fileobj: BinaryIO | Readable, source: str, max_bytes: int) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.consumed = 0  # decompressed bytes read so far, before any re-encoding
        self.encoding: str | None = None
        self._pending = b""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._eof = False

        self._decoder_name = ""
        self._fileobj = fileobj
        self._start = _position(fileobj)
        first = fileobj.read(4096)  # enough for the magic; a gzip bomb is then read in small steps
        self._raw: Readable = _Prepended(first, fileobj)
        self.gzipped = first[:2] == _GZIP_MAGIC
        if self.gzipped:
            self._raw = gzip.GzipFile(fileobj=self._raw, mode="rb")
        head = b""
        while len(head) < 4 and not self._eof:
            head += self._read_raw(CHUNK)
        self._pending = self._strip_bom(head)

    # -- public -------------------------------------------------------------------------------------

    @property
    def head(self) -> bytes:
        """At least the first few bytes after any BOM (more when available), without consuming them."""
        while len(self._pending) < 64 and not self._eof:
            more = self._next_chunk()
            if not more:
                break
            self._pending += more
        return self._pending

    def read(self, size: int = CHUNK) -> bytes:
        """Up to about ``size`` bytes; ``b""`` at the end. Raises IngestError past the size limit."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self._next_chunk(size)

    @property
    def rewindable(self) -> bool:
        """Whether ``reopen`` can read the upload again from its start (a file or an upload: yes)."""
        return self._start is not None

    def reopen(self) -> Source | None:
        """A new Source over the same upload from its start, or None when the stream cannot be rewound.

        For the rare second pass of a JUnit file nested deeper than libxml2 allows.
        """
        if self._start is None:
            return None
        try:
            self._fileobj.seek(self._start)
        except (OSError, ValueError):
            return None
        return Source(self._fileobj, self.source, self.max_bytes)

    # -- internals ----------------------------------------------------------------------------------

    def _next_chunk(self, size: int = CHUNK) -> bytes:
        while True:
            raw = self._read_raw(size)
            if self._decoder is None:
                return raw
            try:
                text = self._decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise IngestError(self.source, f"invalid {self._decoder_name} text ({exc.reason})") from None
            if text or not raw:
                return text.encode("utf-8")

    def _read_raw(self, size: int) -> bytes:
        if self._eof or size <= 0:
            return b""
        try:
            data = self._raw.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            if not self.gzipped:
                raise  # an I/O failure of the upload itself, not a property of the file
            # gzip.BadGzipFile is an OSError; a cut-off member is an EOFError.
            raise IngestError(self.source, f"corrupt gzip data ({exc})") from None
        if not data:
            self._eof = True
            return b""
        self.consumed += len(data)
        if self.consumed > self.max_bytes:
            raise IngestError(self.source, f"file is larger than the limit of {describe_limit(self.max_bytes)}")
        return data

    def _strip_bom(self, head: bytes) -> bytes:
        codec = None
        for bom, bom_codec in _BOMS:
            if head.startswith(bom):
                head, codec = head[len(bom) :], bom_codec
                break
        else:
            codec = _sniff_utf16(head)
        if codec is None:
            return head
        self.encoding = "utf-8"
        if codec == "utf-8":
            return head
        self._decoder_name = codec.upper()
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        try:
            return self._decoder.decode(head, final=self._eof).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(self.source, f"invalid {self._decoder_name} text ({exc.reason})") from None


def _position(fileobj: BinaryIO | Readable) -> int | None:
    """Where a seekable stream stands now; None for a stream that cannot go back."""
    try:
        return fileobj.tell() if fileobj.seekable() else None  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return None


def _sniff_utf16(head: bytes) -> str | None:
    """UTF-16 without a byte order mark, recognised by ``<`` or ``{`` next to a zero byte."""
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] in b"<{" and head[2]:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] in b"<{" and head[3]:
        return "utf-16-be"
    return None


class _Prepended:
    """Gives back bytes already read before continuing with the file (GzipFile needs the magic)."""

    def __init__(self, first: bytes, rest: Readable) -> None:
        self._first = first
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._first:
            if size is None or size < 0:
                data, self._first = self._first + self._rest.read(), b""
                return data
            data, self._first = self._first[:size], self._first[size:]
            return data
        return self._rest.read(size)
