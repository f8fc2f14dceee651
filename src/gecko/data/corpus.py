"""`CorpusRecord`, the unit of the corpus file (RUN/data/corpus.jsonl), and its JSONL form. Named apart from
datatrove's `Document`, which the clean steps and phases pass along; the mix reads their shards as records
(datatrove_files, read_datatrove_file)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gecko.errors import DataError
from gecko.io import jsonl, rawio
from gecko.io.atomic import open_atomic
from gecko.io.jsonl import MAX_LINE_BYTES, json_records


@dataclass
class CorpusRecord:
    id: str
    """Unique within a run: `{source}/{position or path}`."""
    text: str
    lang: str
    """ko, en or code: the bucket the document counts towards in the mix."""
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        record: dict[str, Any] = {"id": self.id, "text": self.text, "lang": self.lang, "source": self.source}
        if self.meta:
            record["meta"] = self.meta
        return _ENCODER.encode(record)

    def to_json_bytes(self) -> bytes:
        """`to_json().encode()`, 2.5x faster: the strings by orjson, whose escapes are json.dumps' with
        ensure_ascii=False for every character (tests/test_mix.py checks all of Unicode), straight to UTF-8;
        the meta (floats, nesting) by json. The mix writes every corpus line through here."""
        fields = (self.id, self.text, self.lang, self.source)
        if not all(type(f) is str for f in fields):
            return self.to_json().encode("utf-8")
        try:
            strings = tuple(map(orjson.dumps, fields))
        except orjson.JSONEncodeError:  # a lone surrogate: to_json's line, which UTF-8 cannot hold either
            return self.to_json().encode("utf-8")
        line = b'{"id": %s, "text": %s, "lang": %s, "source": %s' % strings
        return (
            b'%s, "meta": %s}' % (line, _ENCODER.encode(self.meta).encode("utf-8"))
            if self.meta
            else line + b"}"
        )


_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""json.dumps(…, ensure_ascii=False) without building an encoder per call (same output)."""


def write_jsonl(docs: Iterable[CorpusRecord], path: Path) -> int:
    """Write atomically (temporary file, then rename) so a killed run never leaves half a corpus."""
    n = 0
    with open_atomic(path) as f:
        for doc in docs:
            f.write(doc.to_json() + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[CorpusRecord]:
    """Read a GECKO corpus file; a malformed line is an error naming the file and line."""
    for lineno, r in json_records(path):
        try:
            yield CorpusRecord(r["id"], r["text"], r["lang"], r["source"], r.get("meta", {}))
        except KeyError as e:
            raise DataError(f"{path}:{lineno}: not a GECKO corpus record (no field {e})") from None


def datatrove_files(folders: list[Path]) -> list[Path]:
    """The datatrove JSONL shards of `folders` in reading order: folder, then file name (each file is then
    read by line), so every pass and every rank of the mix sees the same sequence."""
    return [path for folder in folders if folder.exists() for path in sorted(folder.glob("*.jsonl*"))]


def read_datatrove_file(path: Path, wanted: np.ndarray | None = None) -> Iterator[CorpusRecord | None]:
    """GECKO documents from a datatrove JSONL shard ({"text","id","metadata":{lang, source, …}}). With
    `wanted` (a bool per document of the file), one not wanted may come as None, unparsed."""
    for lineno, r in _json_records(path, wanted):
        if r is None:
            yield None
            continue
        try:
            meta = dict(r.get("metadata") or {})
            yield CorpusRecord(r["id"], r["text"], meta.pop("lang"), meta.pop("source"), meta)
        except (KeyError, TypeError) as e:
            raise DataError(
                f"{path}:{lineno}: not a datatrove record with metadata lang/source ({e})"
            ) from None


def _json_records(path: Path, wanted: np.ndarray | None) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """json_records(path), except that with `wanted` (whether each record of the file, from the first, is
    wanted) one not wanted comes as None, unparsed, where its line starts with `{` (a record: the first pass
    parsed every such line or failed). Parsing is most of reading a line, and the mix's second pass wants
    about half. A line jsonl.loads leaves to json, or a broken stream, hands the rest of the file to
    json_records, so what is yielded or raised stays json_records'."""
    if wanted is None:
        yield from json_records(path, MAX_LINE_BYTES)
        return
    resume, k = None, 0
    try:
        for line in rawio.lines(path, MAX_LINE_BYTES):
            raw = line.raw
            if raw is not None and raw[:1] == b"{" and not wanted[k]:
                k += 1
                yield line.number, None
                continue
            try:
                record = jsonl.loads(raw) if raw is not None else None
            except ValueError:
                record = None
            if type(record) is not dict:
                resume = line.number
                break
            k += 1
            yield line.number, record
    except rawio.StreamBroken as e:
        resume = e.line
    if resume is not None:
        yield from ((n, r) for n, r in json_records(path, MAX_LINE_BYTES) if n >= resume)
