"""Streaming readers for every source format (the formats: formats.py, code.py), as one datatrove step that
yields the documents of its shard; and the reader of the phases' JSONL shards.

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
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.config import SourceConfig
from gecko.data.engine.step import batch_stats
from gecko.data.io import code, formats
from gecko.data.io.formats import Quarantine, Record
from gecko.data.stats import DataStats
from gecko.data.steps.langid import initial_lang, label_languages
from gecko.errors import DataError
from gecko.io import rawio, sources
from gecko.io.atomic import write_text
from gecko.io.sources import SourceFile

FORMATS: dict[str, Callable[[SourceConfig, str, int], Iterator[Record]]] = {
    "jsonl": formats.from_jsonl,
    "json": formats.from_json,
    "parquet": formats.from_parquet,
    "text": formats.from_text,
    "tsv": formats.from_table,
    "csv": formats.from_table,
    "code": code.from_code,
}
"""Readers by format; each gets the source's `path` (a file, folder, glob or URL: gecko.io.sources)."""


def iter_records(src: SourceConfig, max_bytes: int) -> Iterator[Record]:
    """Every record of a source, undecoded, in a fixed order (at most `max_docs`)."""
    if sources.is_hf(src.path):
        records = formats.from_hf(src, max_bytes)
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
        bits, top = self.bits, self.BITS - 1
        i, j, k = h & top, (h >> 40) & top, (h >> 80) & top  # three bits: 40-bit slices of the hash
        mi, mj, mk = 1 << (i & 7), 1 << (j & 7), 1 << (k & 7)
        i, j, k = i >> 3, j >> 3, k >> 3
        seen = bool(bits[i] & mi and bits[j] & mj and bits[k] & mk)  # all three set before this key
        bits[i] |= mi
        bits[j] |= mj
        bits[k] |= mk
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
        counts: Counter[str] = Counter()  # datatrove's counters, updated once at the end (step.batch_stats)
        # progress: the executor's `clean` line (engine/executor.py)
        for s_idx, src in enumerate(self.sources):
            seen = SeenIds()
            for n, (where, decode) in enumerate(iter_records(src, self.max_doc_bytes)):
                if n % world_size == rank:
                    doc = self._decode(src, (s_idx, n), where, decode, stats, log, seen, counts)
                    if doc is not None:
                        yield doc
        batch_stats(self, counts, [])
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
        counts: Counter[str],
    ) -> Document | None:
        """The record's Document, or None where it is quarantined (counted and logged here)."""
        stats.read[src.name] += 1
        try:
            doc_id, text, meta = decode()
        except Quarantine as q:
            stats.drop("read", q.reason, src.lang, where)
            log.add(where, q, src.name)
            counts[f"quarantined_{q.reason}"] += 1
            return None
        counts["documents"] += 1
        meta.pop("record", None)
        if seen.add(doc_id):  # a second document under one id: kept, under an id naming where it was read
            stats.repair("read", "duplicate_id", where)
            doc_id = f"{doc_id}@{Path(where).name}"
        repaired = meta.get("repaired")
        if repaired:
            for what, n in repaired.items():
                stats.repair("read", what, where, n)
        meta.update(lang=src.lang, source=src.name, order=list(order))
        return Document(text=text, id=f"{src.name}/{doc_id}", metadata=meta)


_DOCUMENT_FIELDS = frozenset(("text", "id", "metadata", "media"))
"""A record's fields that are not metadata."""


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
                    doc = self._unlabelled(decode)
                except Quarantine as q:
                    counts[f"read|{q.reason}|unknown"] += 1
                    log.add(where, q, src.name)
                    continue
                yield doc

    def records(
        self, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[bytes | None, Callable[[], Document]]]:
        """The rank's records undecoded, as `run` reads them: each one's line (None where the format has no
        lines) and a function giving the Document `run` yields for it, or raising Quarantine where `run`
        skips it. Quarantined records are neither counted nor logged here: `run` does that."""
        for file in self.files[rank::world_size]:
            src = SourceConfig(Path(file).name, file, "ko", format="jsonl")
            for _, decode in iter_records(src, self.max_doc_bytes):
                raw = decode.raw if isinstance(decode, formats.JsonLine) else None
                yield raw, partial(self._labelled, decode)

    def _unlabelled(self, decode: Callable[[], tuple[str, str, dict[str, Any]]]) -> Document:
        doc_id, text, meta = decode()
        return Document(text=text, id=doc_id, metadata=self._metadata(meta["record"]))

    def _labelled(self, decode: Callable[[], tuple[str, str, dict[str, Any]]]) -> Document:
        return next(label_languages([self._unlabelled(decode)]))

    def _metadata(self, record: dict[str, Any]) -> dict[str, Any]:
        meta = record.get("metadata")
        meta = dict(meta) if isinstance(meta, dict) else {}
        if not record.keys() <= _DOCUMENT_FIELDS:  # other fields join the metadata (a phase's shards: none)
            meta.update((k, v) for k, v in record.items() if k not in _DOCUMENT_FIELDS)
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
