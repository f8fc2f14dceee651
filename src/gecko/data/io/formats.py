"""Record readers of the data sources by format: JSON lines, JSON arrays, Parquet, CSV/TSV, plain text and
Hugging Face dataset rows (code trees: gecko.data.io.code). Each yields `Record`s, (where, decode): the
reading happens on every rank, the decoding (UTF-8, JSON, the text field) only on the rank that keeps the
record, and a record that cannot be a document raises `Quarantine` with its reason and what was found.
Bytes come through gecko.io.rawio (BOM, CRLF, UTF-16, a few invalid bytes, .gz/.zst/.bz2/.xz, capped line
length); a file that cannot be opened, ends early or holds nothing becomes one quarantined record.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from gecko.config import SourceConfig
from gecko.errors import DataError, pip_hint
from gecko.io import jsonl, rawio, sources
from gecko.io.sources import SourceFile

csv.field_size_limit(sys.maxsize)  # long reviews and articles exceed the 128 KB default
MAX_JSON_FILE_BYTES = 1 << 31
"""A .json file is one array parsed whole; larger ones must be JSON lines."""
_JSON = json.JSONDecoder(strict=False)
_FAULT = "\x00gecko-fault\x00"
"""Stands in, inside a csv/tsv stream, for a line rawio could not give as text (too long, not UTF-8)."""


class Quarantine(Exception):
    """A record that cannot become a document; `reason` names why in the stats, `detail` says what was found."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


Record = tuple[str, Callable[[], tuple[str, str, dict[str, Any]]]]
"""(where, decode): decode() returns (id, text, metadata) or raises Quarantine. It runs only on its rank.
metadata["record"] is the whole input record where the format has one (JSON object, table row)."""

_SPACE = re.compile(r"\s*")


def raiser(reason: str, detail: str = "") -> Callable[[], Any]:
    def fail() -> Any:
        raise Quarantine(reason, detail)

    return fail


def guarded(file: SourceFile, records: Iterator[Record]) -> Iterator[Record]:
    """A file's records; a file that cannot be opened, ends early or holds nothing becomes one quarantined
    record naming it, so the records read before a break are kept and the break is counted."""
    empty = True
    try:
        for record in records:
            empty = False
            yield record
    except DataError as e:  # cannot open: permissions, a vanished file, an I/O error
        yield str(file), raiser("unreadable_file", str(e))
        return
    except rawio.StreamBroken as e:
        kept = "the records before it were kept" if not empty else "nothing before it was readable"
        yield (
            f"{file}:{e.line}",
            raiser("truncated_file", f"truncated at byte {e.at_byte} ({e.detail}); {kept}"),
        )
        return
    if empty:
        yield f"{file}:1", raiser("empty_file", "no records")


def _per_file(
    files: Sequence[SourceFile], read_file: Callable[[SourceFile], Iterator[Record]]
) -> Iterator[Record]:
    for file in files:
        yield from guarded(file, read_file(file))


def text_of(raw: bytes) -> tuple[str, int]:
    try:
        return rawio.decode_utf8(raw)
    except rawio.NotUtf8 as e:
        raise Quarantine("invalid_utf8", str(e)) from None


def with_repairs(meta: dict[str, Any], replaced: int) -> dict[str, Any]:
    if replaced:
        meta["repaired"] = {"invalid_utf8": replaced}
    return meta


def document(record: Any, src: SourceConfig, where: str, max_bytes: int) -> tuple[str, str, dict[str, Any]]:
    """(id, text, metadata) of one JSON object or table row, or the reason it is not a document."""
    if not isinstance(record, dict):
        raise Quarantine("not_an_object", f"found {type(record).__name__}")
    text = record.get(src.text_field)
    if not isinstance(text, str):
        found = "no such field" if text is None else f"a {type(text).__name__}"
        raise Quarantine(
            f"missing_field_{src.text_field}", f"{src.text_field!r}: {found}; fields {list(record)[:8]}"
        )
    if len(text) > max_bytes // 4 and len(text.encode("utf-8", "surrogateescape")) > max_bytes:
        raise Quarantine("too_large", f"{len(text):,} characters")
    doc_id = record.get(src.id_field)
    return (
        str(doc_id if doc_id is not None else where.rsplit("/", 1)[-1]),
        text,
        {"where": where, "record": record},
    )


def _decode_json(
    raw: bytes, src: SourceConfig, where: str, max_bytes: int
) -> tuple[str, str, dict[str, Any]]:
    try:
        record, replaced = jsonl.loads(raw), 0  # orjson accepted it: valid UTF-8, nothing to repair
    except ValueError:  # refused by orjson or not surely read as json reads it: json's reading and messages
        record, replaced = _json_record(raw)
    doc_id, text, meta = document(record, src, where, max_bytes)
    return doc_id, text, with_repairs(meta, replaced)


def _json_record(raw: bytes) -> tuple[Any, int]:
    """(json's reading of `raw` after invalid bytes are replaced, how many were)."""
    text, replaced = text_of(raw)
    try:
        # raw control characters: normalize drops them. json.loads(text, strict=False) builds a decoder per
        # call (a third of the parse); it also refuses a leading BOM, which the shared decoder leaves to it.
        record = json.loads(text, strict=False) if text.startswith("\ufeff") else _JSON.decode(text)
    except json.JSONDecodeError as e:
        raise Quarantine("malformed_json", f"{e.msg} at column {e.colno}") from None
    return record, replaced


@dataclass(slots=True)
class JsonLine:
    """The decode() of one JSON line, with the line's bytes (`raw`): a reader that has seen the line before
    (gecko.data.steps.dedup's later passes) can recognize it and use it as it is, without decoding. Not
    frozen: one is made for every line of every phase's read, and a frozen dataclass takes twice as long."""

    raw: bytes
    src: SourceConfig
    where: str
    max_bytes: int

    def __call__(self) -> tuple[str, str, dict[str, Any]]:
        return _decode_json(self.raw, self.src, self.where, self.max_bytes)


def from_jsonl(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    def read_file(file: SourceFile) -> Iterator[Record]:
        name = str(file)  # once, not per line
        for line in rawio.lines(file, max_bytes):
            where = f"{name}:{line.number}"
            if line.raw is None:
                yield where, raiser("too_large", f"a line of {line.size:,} bytes at byte {line.offset}")
            elif line.raw.strip():
                yield where, JsonLine(line.raw, src, where, max_bytes)

    return _per_file(sources.files(path, (".jsonl", ".ndjson")), read_file)


def from_parquet(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    try:
        import pyarrow.parquet  # noqa: F401  (checked here, used per file)
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow ({pip_hint('data')})") from None

    def read_file(file: SourceFile) -> Iterator[Record]:
        with rawio.open_raw(file) as raw:  # a local or remote file object: pyarrow reads either
            yield from _parquet_file(src, file, raw, max_bytes)

    return _per_file(sources.files(path, (".parquet",)), read_file)


def _parquet_file(src: SourceConfig, file: SourceFile, raw: Any, max_bytes: int) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(raw)
    except (OSError, pa.ArrowException) as e:  # permissions, a truncated footer, not parquet at all
        yield str(file), raiser("unreadable_file", f"{type(e).__name__}: {e}")
        return
    if src.text_field not in pf.schema_arrow.names:
        yield (
            f"{file}:row 1",
            raiser(
                f"missing_field_{src.text_field}", f"no column {src.text_field!r} in {pf.schema_arrow.names}"
            ),
        )
        return
    columns = [c for c in (src.text_field, src.id_field) if c in pf.schema_arrow.names]
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                row += 1
                where = f"{file}:row {row}"
                yield where, partial(document, record, src, where, max_bytes)
    except (OSError, pa.ArrowException) as e:  # a corrupt row group: the rows before it were kept
        yield f"{file}:row {row + 1}", raiser("truncated_file", f"{type(e).__name__}: {e}")


def from_json(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    """A JSON array of objects per file (KoSBi, SQuARe), or one object; the whole file is parsed."""

    def read_file(file: SourceFile) -> Iterator[Record]:
        data, broken = rawio.read_all(file, MAX_JSON_FILE_BYTES)
        if data is None:
            yield (
                f"{file}:1",
                raiser("too_large", f"a .json file over {MAX_JSON_FILE_BYTES:,} bytes: use JSON lines"),
            )
            return
        if not data.strip():
            return
        try:
            text, _ = text_of(data)
        except Quarantine as q:
            yield f"{file}:1", raiser(q.reason, q.detail)
            return
        for i, (item, line) in enumerate(_json_items(text)):
            where = f"{file}:item {i}" if line is None else f"{file}:{line}"
            if isinstance(item, Quarantine) and broken is not None:  # the cut, not a fault of its own
                broken.line = line or 1
                raise broken
            if isinstance(item, Quarantine):
                yield where, raiser(item.reason, item.detail)
            else:
                yield where, partial(document, item, src, where, max_bytes)
        if broken is not None:
            raise broken

    return _per_file(sources.files(path, (".json",)), read_file)


def _skip_space(text: str, pos: int) -> int:
    """The index of the first non-whitespace character of `text` at or after `pos` (or its length)."""
    match = _SPACE.match(text, pos)
    assert match is not None  # \s* matches the empty string anywhere
    return match.end()


def _json_items(text: str) -> Iterator[tuple[Any, int | None]]:
    """(item, None) for each element of a JSON array (or the one object) in `text`, parsed element by element
    so that a cut or broken file keeps the items before the fault, which comes last as (Quarantine, line)."""
    decoder = json.JSONDecoder(strict=False)
    pos = _skip_space(text, 0)
    try:
        if not text.startswith("[", pos):
            item, end = decoder.raw_decode(text, pos)
            if _skip_space(text, end) != len(text):
                raise json.JSONDecodeError("extra data after the value", text, _skip_space(text, end))
            if not isinstance(item, dict):
                raise Quarantine(
                    "not_an_object", f"expected an array of objects, found {type(item).__name__}"
                )
            yield item, None
            return
        pos = _skip_space(text, pos + 1)
        if text.startswith("]", pos):
            return
        while True:
            item, pos = decoder.raw_decode(text, pos)
            yield item, None
            pos = _skip_space(text, pos)
            if text.startswith("]", pos):
                return
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("expected ',' or ']'", text, pos)
            pos = _skip_space(text, pos + 1)
    except json.JSONDecodeError as e:
        yield (
            Quarantine("malformed_json", f"{e.msg} at column {e.colno}; the items before it were kept"),
            e.lineno,
        )
    except Quarantine as q:
        yield q, 1


def from_table(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    """Delimited rows: tsv without quoting (reviews contain stray quotes), csv with RFC 4180 quoting."""
    delimiter = src.delimiter or ("\t" if src.format == "tsv" else ",")
    if len(delimiter) != 1:
        raise DataError(f"data.sources[{src.name}]: delimiter must be one character, found {delimiter!r}")
    quoting: Literal[0, 3] = csv.QUOTE_NONE if src.format == "tsv" else csv.QUOTE_MINIMAL
    return _per_file(
        sources.files(path, (f".{src.format}",)),
        lambda file: _table_file(src, file, delimiter, quoting, max_bytes),
    )


def _table_file(
    src: SourceConfig, file: SourceFile, delimiter: str, quoting: Literal[0, 3], max_bytes: int
) -> Iterator[Record]:
    faults: dict[int, Quarantine] = {}

    def text_lines() -> Iterator[str]:
        for line in rawio.lines(file, max_bytes):
            if line.raw is None:
                faults[line.number] = Quarantine(
                    "too_large", f"a line of {line.size:,} bytes at byte {line.offset}"
                )
                yield _FAULT + "\n"
                continue
            try:
                text, replaced = text_of(line.raw)
            except Quarantine as q:
                faults[line.number], text, replaced = q, _FAULT, 0
            if replaced:
                faults[line.number] = Quarantine("repaired", str(replaced))
            yield text + "\n"

    rows = csv.DictReader(text_lines(), fieldnames=src.columns or None, delimiter=delimiter, quoting=quoting)
    try:
        header = rows.fieldnames
    except csv.Error as e:
        yield f"{file}:1", raiser("malformed_row", str(e))
        return
    if header is None:
        return
    if src.text_field not in header:
        yield (
            f"{file}:1",
            raiser(f"missing_field_{src.text_field}", f"no column {src.text_field!r} in header {header[:8]}"),
        )
        return
    while True:
        start = rows.line_num + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            yield f"{file}:{rows.line_num}", raiser("malformed_row", str(e))
            continue
        yield _table_record(row, src, file, range(start, rows.line_num + 1), faults, max_bytes)


def _table_record(
    row: dict[str | None, Any],
    src: SourceConfig,
    file: SourceFile,
    line_range: range,
    faults: dict[int, Quarantine],
    max_bytes: int,
) -> Record:
    where = f"{file}:{line_range[0] if line_range else line_range.start}"
    found = [faults.pop(n) for n in line_range if n in faults]
    fatal = [q for q in found if q.reason != "repaired"]
    if fatal:
        return where, raiser(fatal[0].reason, fatal[0].detail)
    if None in row:  # more fields than columns: the delimiter occurs inside the text
        return where, raiser(
            "extra_columns", f"{len(row) - 1 + len(row[None])} fields for {len(row) - 1} columns"
        )
    replaced = sum(int(q.detail) for q in found)

    def decode() -> tuple[str, str, dict[str, Any]]:
        doc_id, text, meta = document(row, src, where, max_bytes)
        return doc_id, text, with_repairs(meta, replaced)

    return where, decode


def from_text(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    """Plain text: documents are separated by one or more blank lines."""

    def read_file(file: SourceFile) -> Iterator[Record]:
        block: list[bytes] = []
        start, size, too_long = 1, 0, False
        for line in rawio.lines(file, max_bytes):
            if line.raw is None or line.raw.strip():
                if not block and not too_long:
                    start = line.number
                size += line.size + 1
                too_long = too_long or line.raw is None or size > max_bytes
                if not too_long:
                    assert line.raw is not None  # a missing line (too large) set too_long
                    block.append(line.raw)
            elif block or too_long:
                yield _text_record(file, start, block, size, too_long)
                block, size, too_long = [], 0, False
        if block or too_long:
            yield _text_record(file, start, block, size, too_long)

    return _per_file(sources.files(path, (".txt",)), read_file)


def _text_record(file: SourceFile, start: int, block: list[bytes], size: int, too_long: bool) -> Record:
    where = f"{file}:{start}"
    if too_long:
        return where, raiser("too_large", f"a block of {size:,} bytes")

    def decode() -> tuple[str, str, dict[str, Any]]:
        text, replaced = text_of(b"\n".join(block))
        return f"{file.name}:{start}", text, with_repairs({"where": where}, replaced)

    return where, decode


def from_hf(src: SourceConfig, max_bytes: int) -> Iterator[Record]:
    """The rows of a Hugging Face dataset split, read like table rows (`text_field`, `id_field`)."""
    for where, row in sources.hf_rows(src.path, src.subset, [src.text_field, src.id_field]):
        yield where, partial(document, row, src, where, max_bytes)
