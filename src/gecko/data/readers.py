"""Streaming readers, one per source format, all yielding `Document`s in a fixed order.

A record that cannot be read (bad UTF-8, malformed JSON, missing text field, binary file) is quarantined:
counted in the stats under step `read` with its `file:line`, never silently lost.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from gecko.config import SourceConfig
from gecko.data.document import Document
from gecko.data.stats import DataStats
from gecko.errors import DataError

csv.field_size_limit(sys.maxsize)  # long reviews and articles exceed the 128 KB default


def read_source(src: SourceConfig, stats: DataStats) -> Iterator[Document]:
    path = Path(src.path)
    if not path.exists():
        raise DataError(f"data.sources[{src.name}]: {path} does not exist")
    reader = {"jsonl": _read_jsonl, "text": _read_text, "tsv": _read_table, "csv": _read_table,
              "code": _read_code}[src.format]
    for n, doc in enumerate(reader(src, path, stats)):
        if src.max_docs is not None and n >= src.max_docs:
            return
        stats.read[src.name] += 1
        yield doc


def _quarantine(stats: DataStats, src: SourceConfig, reason: str, where: str) -> None:
    stats.read[src.name] += 1  # read, then dropped: the accounting stays whole
    stats.drop("read", reason, src.lang, where)


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def _read_jsonl(src: SourceConfig, path: Path, stats: DataStats) -> Iterator[Document]:
    for file in _files(path, (".jsonl",)):
        with file.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                where = f"{file}:{lineno}"
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    _quarantine(stats, src, "invalid_utf8", where)
                    continue
                except json.JSONDecodeError:
                    _quarantine(stats, src, "malformed_json", where)
                    continue
                text = record.get(src.text_field) if isinstance(record, dict) else None
                if not isinstance(text, str):
                    _quarantine(stats, src, f"missing_field_{src.text_field}", where)
                    continue
                doc_id = str(record.get("id", f"{file.name}:{lineno}"))
                yield Document(f"{src.name}/{doc_id}", text, src.lang, src.name, {"where": where})


def _read_text(src: SourceConfig, path: Path, stats: DataStats) -> Iterator[Document]:
    """Plain text: documents are separated by one or more blank lines."""
    for file in _files(path, (".txt",)):
        try:
            content = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            _quarantine(stats, src, "invalid_utf8", f"{file}:byte {e.start}")
            continue
        lineno, block, start = 0, [], 1
        for lineno, line in enumerate(content.splitlines(), 1):
            if line.strip():
                if not block:
                    start = lineno
                block.append(line)
            elif block:
                yield Document(f"{src.name}/{file.name}:{start}", "\n".join(block), src.lang, src.name,
                               {"where": f"{file}:{start}"})
                block = []
        if block:
            yield Document(f"{src.name}/{file.name}:{start}", "\n".join(block), src.lang, src.name,
                           {"where": f"{file}:{start}"})


def _read_table(src: SourceConfig, path: Path, stats: DataStats) -> Iterator[Document]:
    delimiter = "\t" if src.format == "tsv" else ","
    for file in _files(path, (f".{src.format}",)):
        with file.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
            rows = csv.DictReader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else 0)
            if rows.fieldnames is None or src.text_field not in rows.fieldnames:
                raise DataError(f"{file}:1: no column {src.text_field!r} in header {rows.fieldnames}")
            for row in rows:
                where = f"{file}:{rows.line_num}"
                text = row.get(src.text_field)
                if text is None:
                    _quarantine(stats, src, f"missing_field_{src.text_field}", where)
                    continue
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    _quarantine(stats, src, "invalid_utf8", where)
                    continue
                yield Document(f"{src.name}/{file.name}:{rows.line_num}", text, src.lang, src.name,
                               {"where": where})


def _read_code(src: SourceConfig, path: Path, stats: DataStats) -> Iterator[Document]:
    """A source tree: one document per file, its relative path kept as metadata and in the id."""
    for file in _files(path, src.extensions):
        rel = file.relative_to(path) if path.is_dir() else Path(file.name)
        data = file.read_bytes()
        if b"\0" in data:
            _quarantine(stats, src, "binary_file", str(file))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            _quarantine(stats, src, "invalid_utf8", str(file))
            continue
        yield Document(f"{src.name}/{rel.as_posix()}", text, src.lang, src.name, {"path": rel.as_posix()})
