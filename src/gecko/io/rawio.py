"""Byte-level reading every reader shares, so a fault in a file is met the same way in every format and mode.

Files users bring are not clean: a UTF-8 BOM from Windows tools, CRLF line ends, a few invalid bytes where a
text was cut mid-character, NUL bytes, a .gz/.zst/.bz2/.xz copy that stopped early, one 100 MB line, a
UTF-16 export. Here that becomes data, not an exception:
- `chunks(path)` yields the decompressed bytes and, if the stream breaks, raises `StreamBroken` only after
  every readable byte was yielded, with the compressed byte the break was found at;
- `lines(path, max_line_bytes)` splits them into `Line`s without the BOM or `\\r\\n`, never holding more than
  `max_line_bytes` of one line: a longer line comes back with `raw=None` and its length, to be quarantined;
- `decode_utf8(raw)` replaces a few invalid bytes (counted) and refuses text that is mostly not UTF-8 (a
  CP949/EUC-KR file), which the caller quarantines with the hint it carries.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import PurePath
from typing import Any, BinaryIO, Protocol

from gecko.errors import DataError

CHUNK = 1 << 20
COMPRESSED = (".gz", ".zst", ".bz2", ".xz")
"""Suffixes read through a decompressor; any reader's file may carry one (`a.jsonl.gz`, `b.tsv.xz`)."""
UTF8_BOM = codecs.BOM_UTF8
MAX_INVALID_SHARE = 0.01
"""Above this share of invalid bytes (and more than MAX_INVALID_FLOOR) a text is not UTF-8 at all."""
MAX_INVALID_FLOOR = 3


class StreamBroken(Exception):
    """A compressed stream ended early or is corrupt; everything before `at_byte` was already yielded."""

    def __init__(self, at_byte: int, detail: str) -> None:
        super().__init__(f"truncated or corrupt compressed stream at byte {at_byte} ({detail})")
        self.at_byte = at_byte
        self.detail = detail
        self.line = 1
        """The line the break fell in (set by `lines`)."""


class NotUtf8(ValueError):
    """Text that is mostly not UTF-8; the message names the likely encoding and the fix."""

    def __init__(self, invalid: int, size: int) -> None:
        super().__init__(
            f"not UTF-8 ({invalid} of {size} bytes invalid; CP949/EUC-KR? convert with "
            f"`iconv -f cp949 -t utf-8`)"
        )


class Readable(Protocol):
    """A local `Path` or a remote file (gecko.io.sources.RemoteFile): what rawio needs of a file."""

    @property
    def suffix(self) -> str: ...

    def open(self, mode: str) -> Any: ...


@dataclass
class Line:
    number: int
    """1-based line number in the decompressed text."""
    offset: int
    """Byte offset of the line's start in the decompressed text."""
    raw: bytes | None
    """The line without BOM and line end; None when it was longer than the cap (only `size` is known)."""
    size: int


def base_suffix(path: PurePath) -> str:
    """`.jsonl` for `a.jsonl.gz`: the format a file holds, whatever compression wraps it."""
    suffixes = path.suffixes
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1].lower() if suffixes else ""


def open_raw(path: Readable) -> BinaryIO:
    """The file opened for reading; a permission or I/O error is one line naming the file."""
    try:
        return path.open("rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None


SIZE_SAMPLE = 1 << 20
"""Compressed bytes decompressed per kind of compression to estimate its ratio (`expanded_total`)."""


def expanded_total(files: list[tuple[Readable, int]]) -> int:
    """About how many bytes `files` ((file, size) pairs) hold once decompressed, for a progress line's total:
    its lines count the text read, which zstd shards hold ~3.5x smaller. A plain file counts its size; a
    compressed one its size times the ratio of the first SIZE_SAMPLE bytes of the first readable file
    compressed the same way (one sample per suffix, so a remote source of many files costs one read). A file
    that cannot be read or decompressed counts its size here; its reader reports it."""
    ratios: dict[str, float] = {}
    total = 0.0
    for path, size in files:
        suffix = path.suffix.lower()
        if suffix in COMPRESSED and size and suffix not in ratios:
            ratio = _ratio(path, suffix)
            if ratio is not None:
                ratios[suffix] = ratio
            total += size * (ratio or 1.0)
        else:
            total += size * ratios.get(suffix, 1.0)
    return round(total)


def _ratio(path: Readable, suffix: str) -> float | None:
    """Decompressed / compressed bytes over the start of `path`; None when that start cannot be read."""
    import zstandard

    decompressor: Any = {
        ".gz": lambda: zlib.decompressobj(wbits=47),  # a gzip or zlib header
        ".zst": lambda: zstandard.ZstdDecompressor().decompressobj(),
        ".bz2": bz2.BZ2Decompressor,
        ".xz": lzma.LZMADecompressor,
    }[suffix]()
    try:
        with path.open("rb") as raw:
            head = raw.read(SIZE_SAMPLE)
        return len(decompressor.decompress(head)) / len(head) if head else None
    except (EOFError, OSError, zlib.error, lzma.LZMAError, zstandard.ZstdError):
        return None


def chunks(path: Readable) -> Iterator[bytes]:
    """Decompressed bytes of `path` (by suffix), UTF-16 transcoded to UTF-8; raises StreamBroken at the end
    if the compressed stream broke, after yielding all that could be read."""
    stream = _decompressed(path)
    first = next(stream, b"")
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        yield from _utf16_to_utf8(first, stream)
    elif first:
        yield first
        yield from stream


def _utf16_to_utf8(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
    yield decoder.decode(first).encode("utf-8")
    for chunk in rest:
        yield decoder.decode(chunk).encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


_OPENERS: dict[str, Callable[..., BufferedIOBase]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
"""Stream decompressors by suffix (.zst is separate: zstandard is optional)."""


def _decompressed(path: Readable) -> Iterator[bytes]:
    suffix = path.suffix.lower()
    if suffix == ".zst":
        yield from _zstd(path)
        return
    opener = _OPENERS.get(suffix)
    with open_raw(path) as raw:
        if opener is None:
            while chunk := raw.read(CHUNK):
                yield chunk
            return
        with opener(raw, mode="rb") as f:
            try:
                while chunk := f.read1(CHUNK):  # read1: a break loses no byte decoded before it
                    yield chunk
            except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:  # gzip.BadGzipFile is an OSError
                raise StreamBroken(raw.tell(), str(e) or type(e).__name__) from None


def _zstd(path: Readable) -> Iterator[bytes]:
    import zstandard

    decoder, in_frame = zstandard.ZstdDecompressor().decompressobj(), False
    with open_raw(path) as raw:
        while data := raw.read(CHUNK):
            while data:  # a file may hold several frames back to back (zstd -c a b > ab.zst)
                try:
                    out = decoder.decompress(data)
                except zstandard.ZstdError as e:
                    raise StreamBroken(raw.tell(), str(e)) from None
                in_frame, data = True, b""
                if out:
                    yield out
                if decoder.eof:
                    data, in_frame = decoder.unused_data, False
                    decoder = zstandard.ZstdDecompressor().decompressobj()
        if in_frame:
            raise StreamBroken(raw.tell(), "the stream ends inside a zstd frame")


def lines(path: Readable, max_line_bytes: int) -> Iterator[Line]:
    """Lines of `path` without a leading BOM and without `\\n`/`\\r\\n`; blank lines included (numbering).
    Memory stays within one chunk plus `max_line_bytes`, however long a line is."""
    number, offset, buf, skipping = 0, 0, b"", 0
    first = True
    stream = chunks(path)
    while True:
        try:
            chunk = next(stream, None)
        except StreamBroken as e:
            e.line = number + 1
            raise
        if chunk is None:
            break
        if first:
            chunk, first = chunk.removeprefix(UTF8_BOM), False
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            number += 1
            size = skipping + end - start
            if skipping:
                raw, skipping = None, 0
            else:  # _strip_cr inlined: this loop runs for every line of every phase's read
                raw = buf[start : end - 1 if end > start and buf[end - 1] == 13 else end]
                if len(raw) > max_line_bytes:
                    raw = None
            yield Line(number, offset, raw, size)
            offset += size + 1
            start = end + 1
        buf = buf[start:]
        if len(buf) > max_line_bytes:  # too long already: keep counting, stop keeping
            skipping += len(buf)
            buf = b""
    if buf or skipping:
        number += 1
        raw = None if skipping or len(buf) > max_line_bytes else _strip_cr(buf)
        yield Line(number, offset, raw, skipping + len(buf))


def _strip_cr(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\r") else raw


def read_all(path: Readable, max_bytes: int) -> tuple[bytes | None, StreamBroken | None]:
    """(the whole decompressed file without a BOM, or None when larger than `max_bytes`; the break if the
    stream broke, in which case the bytes are what came before it)."""
    parts, size = [], 0
    try:
        for chunk in chunks(path):
            size += len(chunk)
            if size > max_bytes:
                return None, None
            parts.append(chunk)
    except StreamBroken as e:
        return b"".join(parts).removeprefix(UTF8_BOM), e
    return b"".join(parts).removeprefix(UTF8_BOM), None


def decode_utf8(raw: bytes) -> tuple[str, int]:
    """(text, number of invalid sequences replaced by U+FFFD); raises NotUtf8 when the text is mostly not
    UTF-8, because replacing half of a CP949 document's bytes would keep garbage, not text."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    text = raw.decode("utf-8", "replace")
    invalid = text.count("\ufffd") - raw.count("\ufffd".encode())
    if invalid > max(MAX_INVALID_FLOOR, MAX_INVALID_SHARE * len(raw)):
        raise NotUtf8(invalid, len(raw))
    return text, invalid
