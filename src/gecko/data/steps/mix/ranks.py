"""The mix's three datatrove stages. Each rank reads and writes files of its own under mix.work/, so the
stages run on any executor (local processes, Ray, Slurm) and give the same corpus for any worker count:

1. `MixScan`, a rank per input file: the arrays the choice needs (`scan/RANK.npy`, `.json`).
2. `MixBuckets`, a rank per input file, once the driver has saved the choice (`choice.npy`): every chosen
   copy of its documents into the scratch bucket of its corpus-order key's range (`bucket/RANK/BUCKET.zst`),
   with the corpus bytes each bucket got (`sizes.npy`) and the ids of the drops the report shows.
3. `MixSort`, a rank per worker, each an equal run of buckets: a bucket's records from every writing rank,
   sorted, written at the bucket's offset of the corpus file (the buckets before it fix where it starts);
   the sorted buckets end to end are the corpus.
"""

from __future__ import annotations

import json
import os
import shutil
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
import xxhash
import zstandard
from datatrove.data import DocumentsPipeline

from gecko.data.corpus import read_datatrove_file
from gecko.data.engine.progress import ProgressFile, ReadingStep
from gecko.data.steps.mix.choice import SCAN_ROW, group_of, order_key
from gecko.errors import DataError
from gecko.io.atomic import write_json, write_npy

CHOICE_ROW = np.dtype(
    [("copies", "<i4"), ("slot", "<i4"), ("tokens", "<i8"), ("nbytes", "<i8"), ("example", "?")]
)
"""One document as the writing ranks read the choice: copies, its slot (global), estimated tokens, text
bytes (for the progress line) and whether the report shows its id."""
FLUSH_BYTES = 32 << 20
"""Records a writing rank buffers before it appends them to their buckets."""


class MixScan(ReadingStep):
    name = "🎲 mix scan"
    type = "🎲 - MIX"

    def __init__(self, files: list[Path], work: Path, seed: int) -> None:
        super().__init__()
        self.files, self.work, self.seed = files, work, seed

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        slot_ids: dict[tuple[str, str], int] = {}
        lang_ids: dict[str, int] = {}
        slot, lang, nbytes = array("i"), array("h"), array("q")
        key, tiebreak = array("Q"), array("Q")
        progress = self.progress(rank)
        for d in read_datatrove_file(self.files[rank]):
            assert d is not None  # every document is wanted
            raw = d.text.encode("utf-8")
            slot.append(slot_ids.setdefault((group_of(d.lang, d.source), d.source), len(slot_ids)))
            lang.append(lang_ids.setdefault(d.lang, len(lang_ids)))
            nbytes.append(len(raw))
            key.append(order_key(self.seed, d.id))
            tiebreak.append(xxhash.xxh3_64_intdigest(raw))
            if progress:
                progress.add(len(raw))
        rows = np.empty(len(slot), SCAN_ROW)
        for name, values in zip(SCAN_ROW.names or (), (slot, lang, nbytes, key, tiebreak), strict=True):
            rows[name] = np.frombuffer(values, dtype=values.typecode)
        write_npy(self.work / "scan" / f"{rank:05d}.npy", rows)
        write_json(
            self.work / "scan" / f"{rank:05d}.json", {"slots": list(slot_ids), "langs": list(lang_ids)}
        )
        if progress:
            progress.save()
        return iter(())


def load_scan(work: Path, rank: int) -> tuple[np.ndarray, list[tuple[str, str]], list[str]]:
    names = json.loads((work / "scan" / f"{rank:05d}.json").read_text(encoding="utf-8"))
    rows = np.load(work / "scan" / f"{rank:05d}.npy")
    return rows, [(g, s) for g, s in names["slots"]], names["langs"]


class _Buckets:
    """One writing rank's scratch files of chosen copies, split by the range of their order key, so each
    bucket can be sorted alone and the sorted buckets concatenated are the whole corpus in order."""

    def __init__(self, folder: Path, count: int) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # this rank's own files from an attempt that failed
        folder.mkdir(parents=True)
        self.folder, self.count = folder, count
        self.sizes = [0] * count
        """Corpus bytes (lines with their newline) each bucket holds."""
        self._pending: list[list[bytes]] = [[] for _ in range(count)]
        self._pending_bytes = 0
        self._zstd = zstandard.ZstdCompressor(level=1)  # scratch read once: level 3 cost twice the CPU

    def add(self, key: int, copy: int, slot: int, tokens: int, line: bytes) -> None:
        b = (key * self.count) >> 64
        self._pending[b].append(b"%d %d %d %d %s\n" % (key, copy, slot, tokens, line))
        self.sizes[b] += len(line) + 1
        self._pending_bytes += len(line)
        if self._pending_bytes > FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append each bucket's pending records as one zstd frame (frames concatenate)."""
        for b, records in enumerate(self._pending):
            if records:
                with (self.folder / f"{b:05d}.zst").open("ab") as f:
                    f.write(self._zstd.compress(b"".join(records)))
                records.clear()
        self._pending_bytes = 0


class MixBuckets(ReadingStep):
    name = "🎲 mix buckets"
    type = "🎲 - MIX"

    def __init__(self, files: list[Path], work: Path, seed: int, starts: list[int], buckets: int) -> None:
        """`starts`: the index of each file's first document in reading order (the choice's row)."""
        super().__init__()
        self.files, self.work, self.seed, self.starts, self.buckets = files, work, seed, starts, buckets

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        start = self.starts[rank]
        mine = np.load(self.work / "choice.npy", mmap_mode="r")[start : self.starts[rank + 1]]
        copies, slot, tokens, nbytes, example = (
            mine[f].tolist() for f in ("copies", "slot", "tokens", "nbytes", "example")
        )
        buckets = _Buckets(self.work / "bucket" / f"{rank:05d}", self.buckets)
        ids: dict[int, str] = {}
        progress = self.progress(rank)
        for i, doc in enumerate(
            read_datatrove_file(self.files[rank], (mine["copies"] > 0) | mine["example"])
        ):
            if progress:
                progress.add(nbytes[i])
            if doc is None:
                continue
            if example[i]:
                ids[start + i] = doc.id
            line = doc.to_json_bytes() if copies[i] else b""
            for copy in range(1, copies[i] + 1):  # a repeated document's copies land at independent places
                key = order_key(self.seed, f"{doc.id}\x1e{copy}")
                buckets.add(key, copy, slot[i], tokens[i], line)
        buckets.flush()
        write_npy(buckets.folder / "sizes.npy", np.array(buckets.sizes, dtype=np.int64))
        write_json(buckets.folder / "ids.json", ids)
        if progress:
            progress.save()
        return iter(())


Record = tuple[int, int, int, int, bytes]
"""(order key, copy, slot, estimated tokens, the corpus line)."""


def sorted_records(data: bytes) -> list[Record]:
    """A bucket's records by (order key, id, copy, text): the key first; documents that share it (they
    share an id) are then ordered by decoding them. Lines stay bytes: a bucket is held about twice."""
    records = [_parse(line) for line in data.split(b"\n")[:-1]]
    records.sort(key=lambda r: r[0])
    start = 0
    while start < len(records):
        end = start + 1
        while end < len(records) and records[end][0] == records[start][0]:
            end += 1
        if end - start > 1:
            records[start:end] = sorted(records[start:end], key=_id_copy_text)
        start = end
    return records


def _parse(line: bytes) -> Record:
    key, copy, slot, tokens, doc = line.split(b" ", 4)
    return int(key), int(copy), int(slot), int(tokens), doc


def _id_copy_text(record: Record) -> tuple[str, int, str]:
    doc = json.loads(record[4])
    return doc["id"], record[1], doc["text"]


WRITE_BYTES = 4 << 20
"""Corpus bytes a sorting rank gathers before one positional write."""


class MixSort(ReadingStep):
    """Rank r of R sorts the r-th of R equal runs of buckets, one bucket at a time: a rank per worker, as each
    rank pays the executor's start (its loggers and stats), and memory stays a bucket's. A ReadingStep, so
    the stage's line shows the corpus bytes written."""

    name = "🎲 mix sort"
    type = "🎲 - MIX"

    def __init__(self, work: Path, corpus: Path, starts: list[int], groups: list[str]) -> None:
        """`starts`: each bucket's first byte in `corpus` (and the file's size last); `groups`: each slot's."""
        super().__init__()
        self.work, self.corpus, self.starts, self.groups = work, corpus, starts, groups

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        per = (len(self.starts) - 1) // world_size
        progress = self.progress(rank)
        for bucket in range(rank * per, (rank + 1) * per):
            done = self.work / "achieved" / f"{bucket:05d}.json"
            parts = sorted((self.work / "bucket").glob(f"*/{bucket:05d}.zst"))  # writing ranks in order
            if not done.exists():  # else an attempt that failed afterwards wrote this bucket already
                write_json(done, self._write(bucket, parts, progress))
            for part in parts:  # the corpus holds the records from here on
                part.unlink()
        if progress:
            progress.save()
        return iter(())

    def _write(self, bucket: int, parts: list[Path], progress: ProgressFile | None) -> list[tuple[str, int]]:
        """Sort the bucket into its range of the corpus; returns its estimated tokens per group, in order."""
        data = b"".join(_decompressed(part) for part in parts)
        achieved: Counter[str] = Counter()
        offset, end = self.starts[bucket], self.starts[bucket + 1]
        fd = os.open(self.corpus, os.O_WRONLY)
        try:
            held: list[bytes] = []
            held_bytes = 0
            for _, _, slot, tokens, line in sorted_records(data):
                achieved[self.groups[slot]] += tokens
                held += (line, b"\n")
                held_bytes += len(line) + 1
                if progress:
                    progress.add(len(line) + 1)
                if held_bytes >= WRITE_BYTES:
                    offset = _write_at(fd, b"".join(held), offset)
                    held.clear()
                    held_bytes = 0
            offset = _write_at(fd, b"".join(held), offset)
        finally:
            os.close(fd)
        if offset != end:
            raise DataError(
                f"mix: bucket {bucket} came to {offset - self.starts[bucket]} corpus bytes, not the "
                f"{end - self.starts[bucket]} its writing ranks counted"
            )
        return list(achieved.items())


def _decompressed(path: Path) -> bytes:
    with path.open("rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()


def _write_at(fd: int, data: bytes, offset: int) -> int:
    """Write all of `data` at `offset` (os.pwrite may write less than asked); returns the offset after it."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
    return offset
