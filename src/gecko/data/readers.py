"""Streaming readers for every source format, as one datatrove step that yields the documents of its shard.

Sharding is by record: record n of a source belongs to rank n % world_size, and the rank test happens before
the record is decoded, so N workers split the parsing work while each reads in constant memory. A record
that cannot be read (invalid UTF-8, malformed JSON, missing text field, a truncated .gz/.zst, a binary or
oversized file) is quarantined: counted under step `read` with its `file:line`, never silently lost.
Every document carries `metadata["order"] = [source index, record index]`, which restores one global order
after the shards are merged, whatever the number of workers.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datatrove.data import Document as DtDocument
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from rich.progress import Progress

from gecko.config import SourceConfig
from gecko.data.stats import DataStats
from gecko.errors import DataError

csv.field_size_limit(sys.maxsize)  # long reviews and articles exceed the 128 KB default


class Quarantine(Exception):
    """A record that cannot become a document; `reason` names why in the stats."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Record = tuple[str, Callable[[], tuple[str, str, dict[str, Any]]]]
"""(where, decode): decode() returns (id, text, metadata) or raises Quarantine. It runs only on its rank."""

CODE_LANGS = {".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".ts": "typescript",
              ".tsx": "typescript", ".java": "java", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
              ".hpp": "cpp", ".go": "go", ".rs": "rust", ".rb": "ruby", ".php": "php", ".sh": "shell",
              ".kt": "kotlin", ".swift": "swift", ".scala": "scala", ".sql": "sql", ".cs": "csharp",
              ".lua": "lua", ".r": "r", ".jl": "julia", ".hs": "haskell", ".md": "markdown"}
VENDORED_DIRS = {"node_modules", "vendor", "third_party", "thirdparty", "site-packages", "dist-packages",
                 ".git", ".hg", ".svn", "__pycache__", ".tox", ".venv", "venv", "bower_components"}
_GENERATED_NAME = re.compile(r"(_pb2(_grpc)?\.pyi?|\.pb\.go|\.generated\.\w+|\.g\.dart|-lock\.json|\.lock)$")
_MINIFIED_NAME = re.compile(r"\.min\.(js|css)$")


def raw_lines(file: Path) -> Iterator[bytes]:
    """Lines of a .jsonl, .jsonl.gz or .jsonl.zst file; a truncated stream raises EOFError at the break."""
    if file.name.endswith(".zst"):
        yield from _zstd_lines(file)
        return
    with gzip.open(file, "rb") if file.name.endswith(".gz") else file.open("rb") as f:
        yield from f


def _zstd_lines(file: Path) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise DataError(f"{file}: reading .zst needs zstandard (pip install 'gecko[data]')") from None
    decoder = zstandard.ZstdDecompressor().decompressobj()
    rest = b""
    with file.open("rb") as f:
        while chunk := f.read(1 << 20):
            try:
                rest += decoder.decompress(chunk)
            except zstandard.ZstdError as e:
                raise EOFError(f"corrupt zstd stream: {e}") from None
            *lines, rest = rest.split(b"\n")
            for line in lines:
                yield line + b"\n"
    if rest:
        yield rest
    if not decoder.eof:  # the stream ended inside a frame
        raise EOFError("truncated zstd stream")


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else None


def _decode_json(raw: bytes, src: SourceConfig, where: str, max_bytes: int) -> tuple[str, str, dict[str, Any]]:
    if len(raw) > max_bytes:
        raise Quarantine("too_large")
    try:
        record = json.loads(raw.decode("utf-8"), strict=False)  # raw control characters: normalize drops them
    except UnicodeDecodeError:
        raise Quarantine("invalid_utf8") from None
    except json.JSONDecodeError:
        raise Quarantine("malformed_json") from None
    text = _field(record, src.text_field)
    if not isinstance(text, str):
        raise Quarantine(f"missing_field_{src.text_field}")
    doc_id = _field(record, src.id_field)
    return str(doc_id if doc_id is not None else where.rsplit("/", 1)[-1]), text, {"where": where}


def _jsonl(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    for file in _files(path, (".jsonl", ".jsonl.gz", ".jsonl.zst")):
        lineno, empty = 0, True
        try:
            for lineno, raw in enumerate(raw_lines(file), 1):
                if raw.strip():
                    empty = False
                    where = f"{file}:{lineno}"
                    yield where, lambda raw=raw, where=where: _decode_json(raw, src, where, max_bytes)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # truncated or corrupt compressed stream
            yield f"{file}:{lineno + 1}", _raiser("truncated_file", e)
            continue
        if empty:
            yield f"{file}:1", _raiser("empty_file")


def _raiser(reason: str, cause: Exception | None = None) -> Callable[[], Any]:
    def fail() -> Any:
        raise Quarantine(reason) from cause

    return fail


def _parquet(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install 'gecko[data]')") from None
    for file in _files(path, (".parquet",)):
        pf = pq.ParquetFile(file)
        if src.text_field not in pf.schema_arrow.names:
            raise DataError(f"{file}: no column {src.text_field!r} in {pf.schema_arrow.names}")
        columns = [c for c in (src.text_field, src.id_field) if c in pf.schema_arrow.names]
        row = 0
        for batch in pf.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                row += 1
                where = f"{file}:row {row}"
                yield where, lambda record=record, where=where: _decode_row(record, src, where, max_bytes)


def _decode_row(record: dict[str, Any], src: SourceConfig, where: str, max_bytes: int) -> tuple[str, str, dict]:
    text = record.get(src.text_field)
    if not isinstance(text, str):
        raise Quarantine(f"missing_field_{src.text_field}")
    if len(text) > max_bytes // 4 and len(text.encode("utf-8", "surrogateescape")) > max_bytes:
        raise Quarantine("too_large")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogateescape kept bytes that were not UTF-8
        raise Quarantine("invalid_utf8") from None
    doc_id = record.get(src.id_field)
    return str(doc_id if doc_id is not None else where.rsplit("/", 1)[-1]), text, {"where": where}


def _json(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    """A JSON array of objects per file (KoSBi, SQuARe); the whole file is parsed, so it must fit memory."""
    for file in _files(path, (".json",)):
        try:
            records = json.loads(file.read_bytes().decode("utf-8"), strict=False)
        except UnicodeDecodeError:
            yield f"{file}:1", _raiser("invalid_utf8")
            continue
        except json.JSONDecodeError as e:
            yield f"{file}:{e.lineno}", _raiser("malformed_json", e)
            continue
        if not isinstance(records, list):
            raise DataError(f"{file}:1: expected a JSON array of objects, found {type(records).__name__}")
        for i, record in enumerate(records):
            where = f"{file}:item {i}"
            yield where, lambda record=record, where=where: _decode_item(record, src, where, max_bytes)


def _decode_item(record: Any, src: SourceConfig, where: str, max_bytes: int) -> tuple[str, str, dict]:
    if not isinstance(record, dict):
        raise Quarantine("not_an_object")
    return _decode_row(record, src, where, max_bytes)


def _table(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    """Delimited rows: tsv without quoting (reviews contain stray quotes), csv with RFC 4180 quoting."""
    delimiter = src.delimiter or ("\t" if src.format == "tsv" else ",")
    if len(delimiter) != 1:
        raise DataError(f"data.sources[{src.name}]: delimiter must be one character, found {delimiter!r}")
    for file in _files(path, (f".{src.format}",)):
        with file.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
            rows = csv.DictReader(f, fieldnames=src.columns or None, delimiter=delimiter,
                                  quoting=csv.QUOTE_NONE if src.format == "tsv" else csv.QUOTE_MINIMAL)
            if rows.fieldnames is None:
                yield f"{file}:1", _raiser("empty_file")
                continue
            if src.text_field not in rows.fieldnames:
                raise DataError(f"{file}:1: no column {src.text_field!r} in header {rows.fieldnames}")
            for row in rows:
                where = f"{file}:{rows.line_num}"
                if None in row:  # more fields than columns: the delimiter occurs inside the text
                    yield where, _raiser("extra_columns")
                else:
                    yield where, lambda row=row, where=where: _decode_row(row, src, where, max_bytes)


def _text(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    """Plain text: documents are separated by one or more blank lines."""
    for file in _files(path, (".txt",)):
        block: list[bytes] = []
        start = 1
        with file.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    if not block:
                        start = lineno
                    block.append(line)
                elif block:
                    yield _text_record(file, start, b"".join(block), max_bytes)
                    block = []
        if block:
            yield _text_record(file, start, b"".join(block), max_bytes)
        elif start == 1 and file.stat().st_size == 0:
            yield f"{file}:1", _raiser("empty_file")


def _text_record(file: Path, start: int, raw: bytes, max_bytes: int) -> Record:
    where = f"{file}:{start}"

    def decode() -> tuple[str, str, dict[str, Any]]:
        if len(raw) > max_bytes:
            raise Quarantine("too_large")
        try:
            return f"{file.name}:{start}", raw.decode("utf-8").rstrip("\n"), {"where": where}
        except UnicodeDecodeError:
            raise Quarantine("invalid_utf8") from None

    return where, decode


def _skip_reason(rel: Path) -> str | None:
    if VENDORED_DIRS.intersection(rel.parts[:-1]):
        return "vendored"
    if _MINIFIED_NAME.search(rel.name):
        return "minified"
    if _GENERATED_NAME.search(rel.name):
        return "generated"
    return None


def _code(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    """A source tree: one document per file, its relative path and language kept as metadata."""
    for file in _files(path, src.extensions):
        rel = file.relative_to(path) if path.is_dir() else Path(file.name)
        yield str(file), lambda file=file, rel=rel: _decode_code(file, rel, max_bytes)


def _decode_code(file: Path, rel: Path, max_bytes: int) -> tuple[str, str, dict[str, Any]]:
    reason = _skip_reason(rel)
    if reason:
        raise Quarantine(reason)
    if file.stat().st_size > max_bytes:
        raise Quarantine("too_large")
    data = file.read_bytes()
    if b"\0" in data[:8192]:
        raise Quarantine("binary_file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Quarantine("invalid_utf8") from None
    lines = text.count("\n") + 1
    if len(text) / lines > 1000:
        raise Quarantine("minified")
    meta = {"path": rel.as_posix(), "code_lang": CODE_LANGS.get(file.suffix.lower(), file.suffix.lstrip("."))}
    return rel.as_posix(), text, meta


FORMATS: dict[str, Callable[[SourceConfig, Path, int], Iterator[Record]]] = {
    "jsonl": _jsonl, "json": _json, "parquet": _parquet, "text": _text, "tsv": _table, "csv": _table, "code": _code}


def iter_records(src: SourceConfig, max_bytes: int) -> Iterator[Record]:
    """Every record of a source, undecoded, in a fixed order (at most `max_docs`)."""
    path = Path(src.path)
    if not path.exists():
        raise DataError(f"data.sources[{src.name}]: {path} does not exist")
    for n, record in enumerate(FORMATS[src.format](src, path, max_bytes)):
        if src.max_docs is not None and n >= src.max_docs:
            return
        yield record


class SourceReader(PipelineStep):
    """Reads every configured source; the rank's share of records, decoded, as datatrove Documents."""

    name = "📖 gecko read"
    type = "📖 - READER"

    def __init__(self, sources: tuple[SourceConfig, ...], max_doc_bytes: int, ledger_dir: str | None) -> None:
        super().__init__()
        self.sources = sources
        self.max_doc_bytes = max_doc_bytes
        self.ledger_dir = ledger_dir

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        stats = DataStats()
        with Progress(transient=True, disable=rank != 0) as progress:
            for s_idx, src in enumerate(self.sources):
                task = progress.add_task(f"clean: {src.name} (rank 0 of {world_size})", total=None)
                for n, (where, decode) in enumerate(iter_records(src, self.max_doc_bytes)):
                    if n % world_size == rank:
                        progress.advance(task)
                        yield from self._decode(src, s_idx, n, where, decode, stats)
        if self.ledger_dir:
            stats.save_ledger(Path(self.ledger_dir), "read", rank)

    def _decode(self, src: SourceConfig, s_idx: int, n: int, where: str, decode: Callable, stats: DataStats
                ) -> Iterator[DtDocument]:
        stats.read[src.name] += 1
        try:
            doc_id, text, meta = decode()
        except Quarantine as q:
            stats.drop("read", q.reason, src.lang, where)
            self.stat_update(f"quarantined_{q.reason}")
            return
        self.stat_update("documents")
        meta.update(lang=src.lang, source=src.name, order=[s_idx, n])
        yield DtDocument(text=text, id=f"{src.name}/{doc_id}", metadata=meta)
