"""Streaming readers for every source format, as one datatrove step that yields the documents of its shard.

Sharding is by record: record n of a source belongs to rank n % world_size, and the rank test happens before
the record is decoded, so N workers split the parsing work while each reads in constant memory. Bytes come
through rawio (BOM, CRLF, UTF-16, a few invalid bytes, .gz/.zst/.bz2/.xz, capped line length). A record that
cannot be a document (mostly not UTF-8, malformed JSON, not an object, missing text field, a truncated
stream, an unreadable, empty, binary or oversized file) is quarantined: counted under step `read` with its
`file:line` and written to the quarantine log with the detail, never silently lost. A document that was
mended (invalid bytes replaced, a duplicate id renamed) is kept and counted under `repaired`.
Every document carries `metadata["order"] = [source index, record index]`, which restores one global order
after the shards are merged, whatever the number of workers.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, TextIO

import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.config import SourceConfig
from gecko.data.stats import DataStats
from gecko.data.steps.langid import initial_lang, label_languages
from gecko.errors import DataError, pip_hint
from gecko.io import rawio, sources
from gecko.io.atomic import write_text
from gecko.io.sources import SourceFile

csv.field_size_limit(sys.maxsize)  # long reviews and articles exceed the 128 KB default
MAX_JSON_FILE_BYTES = 1 << 31
"""A .json file is one array parsed whole; larger ones must be JSON lines."""
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

CODE_LANGS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".php": "php",
    ".sh": "shell",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".sql": "sql",
    ".cs": "csharp",
    ".lua": "lua",
    ".r": "r",
    ".jl": "julia",
    ".hs": "haskell",
    ".md": "markdown",
}
VENDORED_DIRS = {
    "node_modules",
    "vendor",
    "third_party",
    "thirdparty",
    "site-packages",
    "dist-packages",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".tox",
    ".venv",
    "venv",
    "bower_components",
}
_GENERATED_NAME = re.compile(r"(_pb2(_grpc)?\.pyi?|\.pb\.go|\.generated\.\w+|\.g\.dart|-lock\.json|\.lock)$")
_MINIFIED_NAME = re.compile(r"\.min\.(js|css)$")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
"""A `code` source may be one archive of a tree (the bundled sample is `data/sample/code/python.tar.gz`)."""


def _raiser(reason: str, detail: str = "") -> Callable[[], Any]:
    def fail() -> Any:
        raise Quarantine(reason, detail)

    return fail


def _guarded(file: SourceFile, records: Iterator[Record]) -> Iterator[Record]:
    """A file's records; a file that cannot be opened, ends early or holds nothing becomes one quarantined
    record naming it, so the records read before a break are kept and the break is counted."""
    empty = True
    try:
        for record in records:
            empty = False
            yield record
    except DataError as e:  # cannot open: permissions, a vanished file, an I/O error
        yield str(file), _raiser("unreadable_file", str(e))
        return
    except rawio.StreamBroken as e:
        kept = "the records before it were kept" if not empty else "nothing before it was readable"
        yield (
            f"{file}:{e.line}",
            _raiser("truncated_file", f"truncated at byte {e.at_byte} ({e.detail}); {kept}"),
        )
        return
    if empty:
        yield f"{file}:1", _raiser("empty_file", "no records")


def _per_file(
    files: Sequence[SourceFile], read_file: Callable[[SourceFile], Iterator[Record]]
) -> Iterator[Record]:
    for file in files:
        yield from _guarded(file, read_file(file))


def _text_of(raw: bytes) -> tuple[str, int]:
    try:
        return rawio.decode_utf8(raw)
    except rawio.NotUtf8 as e:
        raise Quarantine("invalid_utf8", str(e)) from None


def _with_repairs(meta: dict[str, Any], replaced: int) -> dict[str, Any]:
    if replaced:
        meta["repaired"] = {"invalid_utf8": replaced}
    return meta


def _document(record: Any, src: SourceConfig, where: str, max_bytes: int) -> tuple[str, str, dict[str, Any]]:
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
    text, replaced = _text_of(raw)
    try:
        record = json.loads(text, strict=False)  # raw control characters: normalize drops them
    except json.JSONDecodeError as e:
        raise Quarantine("malformed_json", f"{e.msg} at column {e.colno}") from None
    doc_id, text, meta = _document(record, src, where, max_bytes)
    return doc_id, text, _with_repairs(meta, replaced)


def _jsonl(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    def read_file(file: SourceFile) -> Iterator[Record]:
        for line in rawio.lines(file, max_bytes):
            where = f"{file}:{line.number}"
            if line.raw is None:
                yield where, _raiser("too_large", f"a line of {line.size:,} bytes at byte {line.offset}")
            elif line.raw.strip():
                yield where, partial(_decode_json, line.raw, src, where, max_bytes)

    return _per_file(sources.files(path, (".jsonl", ".ndjson")), read_file)


def _parquet(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
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
        yield str(file), _raiser("unreadable_file", f"{type(e).__name__}: {e}")
        return
    if src.text_field not in pf.schema_arrow.names:
        yield (
            f"{file}:row 1",
            _raiser(
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
                yield where, partial(_document, record, src, where, max_bytes)
    except (OSError, pa.ArrowException) as e:  # a corrupt row group: the rows before it were kept
        yield f"{file}:row {row + 1}", _raiser("truncated_file", f"{type(e).__name__}: {e}")


def _json(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    """A JSON array of objects per file (KoSBi, SQuARe), or one object; the whole file is parsed."""

    def read_file(file: SourceFile) -> Iterator[Record]:
        data, broken = rawio.read_all(file, MAX_JSON_FILE_BYTES)
        if data is None:
            yield (
                f"{file}:1",
                _raiser("too_large", f"a .json file over {MAX_JSON_FILE_BYTES:,} bytes: use JSON lines"),
            )
            return
        if not data.strip():
            return
        try:
            text, _ = _text_of(data)
        except Quarantine as q:
            yield f"{file}:1", _raiser(q.reason, q.detail)
            return
        for i, (item, line) in enumerate(_json_items(text)):
            where = f"{file}:item {i}" if line is None else f"{file}:{line}"
            if isinstance(item, Quarantine) and broken is not None:  # the cut, not a fault of its own
                broken.line = line or 1
                raise broken
            if isinstance(item, Quarantine):
                yield where, _raiser(item.reason, item.detail)
            else:
                yield where, partial(_document, item, src, where, max_bytes)
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


def _table(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
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
                text, replaced = _text_of(line.raw)
            except Quarantine as q:
                faults[line.number], text, replaced = q, _FAULT, 0
            if replaced:
                faults[line.number] = Quarantine("repaired", str(replaced))
            yield text + "\n"

    rows = csv.DictReader(text_lines(), fieldnames=src.columns or None, delimiter=delimiter, quoting=quoting)
    try:
        header = rows.fieldnames
    except csv.Error as e:
        yield f"{file}:1", _raiser("malformed_row", str(e))
        return
    if header is None:
        return
    if src.text_field not in header:
        yield (
            f"{file}:1",
            _raiser(
                f"missing_field_{src.text_field}", f"no column {src.text_field!r} in header {header[:8]}"
            ),
        )
        return
    while True:
        start = rows.line_num + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            yield f"{file}:{rows.line_num}", _raiser("malformed_row", str(e))
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
        return where, _raiser(fatal[0].reason, fatal[0].detail)
    if None in row:  # more fields than columns: the delimiter occurs inside the text
        return where, _raiser(
            "extra_columns", f"{len(row) - 1 + len(row[None])} fields for {len(row) - 1} columns"
        )
    replaced = sum(int(q.detail) for q in found)

    def decode() -> tuple[str, str, dict[str, Any]]:
        doc_id, text, meta = _document(row, src, where, max_bytes)
        return doc_id, text, _with_repairs(meta, replaced)

    return where, decode


def _text(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
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
        return where, _raiser("too_large", f"a block of {size:,} bytes")

    def decode() -> tuple[str, str, dict[str, Any]]:
        text, replaced = _text_of(b"\n".join(block))
        return f"{file.name}:{start}", text, _with_repairs({"where": where}, replaced)

    return where, decode


def _skip_reason(rel: Path) -> str | None:
    if VENDORED_DIRS.intersection(rel.parts[:-1]):
        return "vendored"
    if _MINIFIED_NAME.search(rel.name):
        return "minified"
    if _GENERATED_NAME.search(rel.name):
        return "generated"
    return None


def _code(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    """A source tree, or a tar archive of one: one document per file, its relative path and language kept
    as metadata."""
    local = sources.local_path(path)
    if local is not None and local.is_file() and local.name.endswith(TAR_SUFFIXES):
        yield from _guarded(local, _tar_code(src, local, max_bytes))
        return
    for file in sources.files(path, src.extensions):
        rel = Path(sources.relative(file, path))
        yield str(file), partial(_decode_code, file, rel, max_bytes)


def _tar_code(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    """The files of a tar archive in archive order, ids being member paths (as for the unpacked tree).
    A compressed archive cannot be entered in the middle, so every rank reads the members' bytes; only the
    decoding is split. A damaged archive raises DataError after the members read before it."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                rel = Path(member.name)
                if not member.isfile() or rawio.base_suffix(rel) not in src.extensions:
                    continue
                where = f"{path}:{member.name}"
                reason = _skip_reason(rel)
                if reason:
                    yield where, _raiser(reason, rel.as_posix())
                elif member.size > max_bytes:
                    yield where, _raiser("too_large", f"{member.size:,} bytes")
                else:
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]  # a regular file has a body
                    yield where, partial(_code_document, data, rel)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"{path}: damaged tar archive ({e})") from None


def _decode_code(file: SourceFile, rel: Path, max_bytes: int) -> tuple[str, str, dict[str, Any]]:
    reason = _skip_reason(rel)
    if reason:
        raise Quarantine(reason, rel.as_posix())
    try:
        if file.stat().st_size > max_bytes:
            raise Quarantine("too_large", f"{file.stat().st_size:,} bytes")
        data, broken = rawio.read_all(file, max_bytes)
    except DataError as e:
        raise Quarantine("unreadable_file", str(e)) from None
    if data is None:
        raise Quarantine("too_large", f"over {max_bytes:,} bytes")
    if broken is not None:
        raise Quarantine("truncated_file", f"truncated at byte {broken.at_byte} ({broken.detail})")
    return _code_document(data, rel)


def _code_document(data: bytes, rel: Path) -> tuple[str, str, dict[str, Any]]:
    """(id, text, metadata) of one source file's bytes, or the Quarantine saying why it is not code."""
    if not data.strip():
        raise Quarantine("empty_file", "no code")
    if b"\0" in data[:8192]:
        raise Quarantine("binary_file", "NUL bytes in the first 8 KB")
    text, replaced = _text_of(data)
    lines = text.count("\n") + 1
    if len(text) / lines > 1000:
        raise Quarantine("minified", f"{len(text) / lines:.0f} characters per line")
    meta = {"path": rel.as_posix(), "code_lang": CODE_LANGS.get(rel.suffix.lower(), rel.suffix.lstrip("."))}
    return rel.as_posix(), text, _with_repairs(meta, replaced)


def _hf(src: SourceConfig, max_bytes: int) -> Iterator[Record]:
    """The rows of a Hugging Face dataset split, read like table rows (`text_field`, `id_field`)."""
    for where, row in sources.hf_rows(src.path, src.subset, [src.text_field, src.id_field]):
        yield where, partial(_document, row, src, where, max_bytes)


FORMATS: dict[str, Callable[[SourceConfig, str, int], Iterator[Record]]] = {
    "jsonl": _jsonl,
    "json": _json,
    "parquet": _parquet,
    "text": _text,
    "tsv": _table,
    "csv": _table,
    "code": _code,
}
"""Readers by format; each gets the source's `path` (a file, folder, glob or URL: gecko.io.sources)."""


def iter_records(src: SourceConfig, max_bytes: int) -> Iterator[Record]:
    """Every record of a source, undecoded, in a fixed order (at most `max_docs`)."""
    if sources.is_hf(src.path):
        records = _hf(src, max_bytes)
    elif not sources.exists(src.path):
        raise DataError(f"data.sources[{src.name}]: {src.path} does not exist")
    else:
        records = FORMATS[src.format](src, src.path, max_bytes)
    for n, record in enumerate(records):
        if src.max_docs is not None and n >= src.max_docs:
            return
        yield record


class SeenIds:
    """Which ids a reader has already given out, as a Bloom filter: memory stays 16 MB however many documents
    a rank reads, and a false positive only renames a unique id, which harms nothing."""

    BITS = 1 << 27

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    def add(self, key: str) -> bool:
        """Record `key`; True when it was (almost surely) seen before."""
        h = xxhash.xxh3_128_intdigest(key.encode("utf-8", "surrogatepass"))
        seen = True
        for k in range(3):
            bit = (h >> (40 * k)) & (self.BITS - 1)
            byte, mask = bit >> 3, 1 << (bit & 7)
            seen = seen and bool(self.bits[byte] & mask)
            self.bits[byte] |= mask
        return seen


class QuarantineLog:
    """A JSONL file with one line per record that did not become a document (reason, where, detail, source),
    so the report's counts can be audited line by line. Streamed to `NAME.tmp`, renamed when complete."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.file: TextIO | None = None
        self.count = 0

    def add(self, where: str, q: Quarantine, source: str) -> None:
        self.count += 1
        if self.path is None:
            return
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.with_name(self.path.name + ".tmp").open("w", encoding="utf-8")
        row = {"reason": q.reason, "where": where, "detail": q.detail, "source": source}
        self.file.write(json.dumps(row, ensure_ascii=False) + "\n")

    def save(self) -> None:
        if self.file is not None and self.path is not None:
            self.file.close()
            os.replace(self.file.name, self.path)


class SourceReader(PipelineStep):
    """Reads every configured source; the rank's share of records, decoded, as datatrove Documents."""

    name = "📖 gecko read"
    type = "📖 - READER"

    def __init__(
        self,
        sources: tuple[SourceConfig, ...],
        max_doc_bytes: int,
        ledger_dir: str | None,
        quarantine_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.sources = sources
        self.max_doc_bytes = max_doc_bytes
        self.ledger_dir = ledger_dir
        self.quarantine_dir = quarantine_dir

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        stats = DataStats()
        log = QuarantineLog(
            Path(self.quarantine_dir) / f"read-{rank:05d}.jsonl" if self.quarantine_dir else None
        )
        # progress: the executor's `clean` line (engine/executor.py)
        for s_idx, src in enumerate(self.sources):
            seen = SeenIds()
            for n, (where, decode) in enumerate(iter_records(src, self.max_doc_bytes)):
                if n % world_size == rank:
                    yield from self._decode(src, (s_idx, n), where, decode, stats, log, seen)
        log.save()
        if self.ledger_dir:
            stats.save_ledger(Path(self.ledger_dir), "read", rank)

    def _decode(
        self,
        src: SourceConfig,
        order: tuple[int, int],
        where: str,
        decode: Callable,
        stats: DataStats,
        log: QuarantineLog,
        seen: SeenIds,
    ) -> Iterator[Document]:
        stats.read[src.name] += 1
        try:
            doc_id, text, meta = decode()
        except Quarantine as q:
            stats.drop("read", q.reason, src.lang, where)
            log.add(where, q, src.name)
            self.stat_update(f"quarantined_{q.reason}")
            return
        self.stat_update("documents")
        meta.pop("record", None)
        if seen.add(doc_id):  # a second document under one id: kept, under an id naming where it was read
            stats.repair("read", "duplicate_id", where)
            doc_id = f"{doc_id}@{Path(where).name}"
        for what, n in meta.get("repaired", {}).items():
            stats.repair("read", what, where, n)
        meta.update(lang=src.lang, source=src.name, order=list(order))
        yield Document(text=text, id=f"{src.name}/{doc_id}", metadata=meta)


class CorpusReader(PipelineStep):
    """JSONL documents of a folder for the corpus phases (dedup, decontam): GECKO/datatrove records
    `{text, id, metadata}` or any `{text, id, lang, …}` (fields go to metadata, as datatrove's reader does),
    file `rank::world_size` of the list on each rank, through the same rawio path as the sources. A record
    that is not a document is quarantined; the counting pass (`counts_dir`) records it as step `read`."""

    name = "📖 gecko corpus"
    type = "📖 - READER"

    def __init__(
        self,
        files: list[Path],
        lang: str = "field",
        counts_dir: str | None = None,
        max_doc_bytes: int = 10_000_000,
    ) -> None:
        super().__init__()
        initial_lang(None, lang)  # an unknown mode fails here, before any worker starts
        self.files = [str(f) for f in files]
        self.lang = lang
        self.counts_dir = counts_dir
        self.max_doc_bytes = max_doc_bytes

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter[str] = Counter()
        log = QuarantineLog(
            Path(self.counts_dir).parent / "quarantine" / f"read-{rank:05d}.jsonl"
            if self.counts_dir
            else None
        )
        docs = self._documents(self.files[rank::world_size], counts, log)
        yield from label_languages(docs)
        log.save()
        if self.counts_dir:
            write_text(Path(self.counts_dir) / f"read-{rank:05d}.json", json.dumps(counts))

    def _documents(self, files: list[str], counts: Counter[str], log: QuarantineLog) -> Iterator[Document]:
        for file in files:
            src = SourceConfig(Path(file).name, file, "ko", format="jsonl")
            for where, decode in iter_records(src, self.max_doc_bytes):
                try:
                    doc_id, text, meta = decode()
                except Quarantine as q:
                    counts[f"read|{q.reason}|unknown"] += 1
                    log.add(where, q, src.name)
                    continue
                yield Document(text=text, id=doc_id, metadata=self._metadata(meta["record"]))

    def _metadata(self, record: dict[str, Any]) -> dict[str, Any]:
        meta = record.get("metadata")
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta.update((k, v) for k, v in record.items() if k not in ("text", "id", "metadata", "media"))
        meta["lang"] = initial_lang(meta.get("lang"), self.lang)
        return meta


def check_source(src: SourceConfig) -> None:
    """Fail before any worker starts when a source cannot match its config: a missing path, or a text
    column absent from the first file's header (a typo in the config would otherwise quarantine every
    file of the source, one by one, after hours of reading). Later files are checked as they are read."""
    if sources.is_hf(src.path):
        names = sources.hf_dataset(src.path, src.subset).column_names
        if src.text_field not in names:
            raise DataError(
                f"{src.path}: no column {src.text_field!r} in {names[:8]} "
                f"(data.sources[{src.name}].text_field)"
            )
        return
    if not sources.exists(src.path):
        raise DataError(f"data.sources[{src.name}]: {src.path} does not exist")
    if src.format not in ("csv", "tsv", "parquet") or (src.format != "parquet" and src.columns):
        return
    files = sources.files(src.path, (f".{src.format}",))
    if not files:
        return
    names = _header(src, files[0])
    if names is not None and src.text_field not in names:
        raise DataError(
            f"{files[0]}:1: no column {src.text_field!r} in header {names[:8]} "
            f"(data.sources[{src.name}].text_field)"
        )


def _header(src: SourceConfig, file: SourceFile) -> list[str] | None:
    """Column names of a table or parquet file; None when it cannot be read (the reader quarantines it)."""
    if src.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with rawio.open_raw(file) as raw:
                return pq.read_schema(raw).names
        except (DataError, OSError, pa.ArrowException):
            return None
    try:
        first = next((line.raw for line in rawio.lines(file, 1 << 20) if line.raw is not None), None)
        text = rawio.decode_utf8(first)[0] if first is not None else ""
    except (DataError, rawio.StreamBroken, rawio.NotUtf8):
        return None
    delimiter = src.delimiter or ("\t" if src.format == "tsv" else ",")
    return next(csv.reader([text], delimiter=delimiter), None) if text else None
