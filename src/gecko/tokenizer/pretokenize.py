"""Pretokenization of the corpus into memory-mapped token shards (the format and its reader: gecko.shards).

How it runs: the corpus file is cut into byte ranges, and worker processes each take one range at a time and
do everything for it: read the lines that begin in it, parse, encode, pack `<s> ids </s>` (documents whose
id hash puts them in train first, then those in val) and write a part. The parts are then appended to
train.bin and val.bin in corpus order, copied by the kernel (`copy_file_range`) rather than through Python.
The output therefore does not depend on the number of workers or the chunk size, and an interrupted run
resumes from its finished parts.

Processes rather than threads: tokenizers releases the GIL while encoding, but parsing, id lists and packing
do not, and at 16 threads that serial share held a one-process design to 0.58x `encode_batch` (see
docs/benchmarks.md). On Linux the workers are forked once the tokenizer is loaded and before this module
starts any thread: they start in milliseconds and share the tokenizer's memory, where workers from a fork
server each loaded their own copy, took ~0.5 s to start and encoded 10% less per core on 16 cores.

Size: over 500 lines because it is one resumable pipeline (plan byte ranges → encode in forked workers →
merge parts in corpus order → publish) whose phases share the part record and the resume rules: the merge
is correct only together with how parts are written, so the phases stay side by side.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, normalizers

from gecko.config import LANGS, TokenizeConfig
from gecko.errors import DataError
from gecko.io.atomic import write_bytes, write_json, write_npy
from gecko.progress import Steps
from gecko.shards import INDEX_DTYPE, META_FILE, SPLITS, shard_file, token_dtype, unit_hash
from gecko.tokenizer.train import parse_record
from gecko.tokens import TOKENIZER_FILE, document_boundaries, file_sha256, load_tokenizer

log = logging.getLogger(__name__)

PART_DTYPE = np.dtype(INDEX_DTYPE.descr + [("unit", np.float64)])
"""A part's index: lang and source are codes into that part's own name lists; `unit` is the split hash."""
"""The only special tokens shards use: any tokenizer with them at GECKO's ids can be pretokenized."""
TIMING_FILE = "timing.json"
"""Wall-clock numbers live apart from meta.json, so that identical shards have an identical meta.json
(the training loader fingerprints it)."""
PARTS_DIR = ".parts"
FORMAT_VERSION = 1
TARGET_CHUNKS = 256
"""Chunks are made smaller than `chunk_bytes` until the corpus has this many (down to MIN_CHUNK_BYTES), so
that 16 workers stay busy to the end: 256 chunks encoded 10% faster than 64 on 131 MB with 16 workers."""
MIN_CHUNK_BYTES = 256 << 10


@dataclass(frozen=True)
class Chunk:
    """The corpus lines that begin at a byte offset in [start, end)."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Task:
    """What a worker needs for one chunk (picklable: it crosses to a worker process)."""

    corpus: Path
    chunk: Chunk
    parts: Path
    seed: int
    val_fraction: float
    dtype: str


@dataclass
class Part:
    """An encoded chunk's documents: index rows (`start` within the part's token file) and the names that
    their lang and source codes refer to."""

    index: np.ndarray
    langs: list[str]
    sources: list[str]


def pretokenize(
    cfg: TokenizeConfig, corpus: Path, tokenizer_dir: Path, out_dir: Path, seed: int
) -> dict[str, Any]:
    """Encode `corpus` into train/val shards under `out_dir`; returns the stats also saved in meta.json."""
    clock = {"start": time.perf_counter()}
    # text_only: a literal "<s>" in a document (HTML strikethrough) is text, not a boundary.
    tokenizer = load_tokenizer(tokenizer_dir, text_only=True, required=())
    bos_id, eos_id = document_boundaries(tokenizer, Path(tokenizer_dir) / TOKENIZER_FILE)
    vocab_size = tokenizer.get_vocab_size()
    dtype = token_dtype(vocab_size)
    tokenizer_sha = file_sha256(Path(tokenizer_dir) / TOKENIZER_FILE)
    size, mtime_ns = _corpus_stat(corpus)
    chunks = plan_chunks(size, cfg.chunk_bytes)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Resuming needs the same corpus (by size and modification time: hashing it first would be a serial
    # pass over every byte), tokenizer, seed and chunking.
    parts = _prepare_parts(
        out_dir / PARTS_DIR,
        {
            "format": FORMAT_VERSION,
            "corpus_bytes": size,
            "corpus_mtime_ns": mtime_ns,
            "tokenizer_sha256": tokenizer_sha,
            "seed": seed,
            "val_fraction": cfg.val_fraction,
            "chunk_bytes": cfg.chunk_bytes,
            "dtype": dtype.name,
        },
    )
    clock["planned"] = time.perf_counter()
    (out_dir / META_FILE).unlink(missing_ok=True)  # until the new shards are complete
    tasks = [Task(corpus, chunk, parts, seed, cfg.val_fraction, dtype.name) for chunk in chunks]
    finished = _finished_parts(tasks)
    todo = [task for task in tasks if task.chunk.index not in finished]
    workers = max(1, min(_cores(cfg.workers), len(todo)))
    # The pool first: its workers are forked before the hash thread exists. hashlib releases the GIL, so
    # the hash and the merger's copies run while the workers encode.
    encoder = Encoder(tokenizer, (bos_id, eos_id))
    with (
        _worker_pool(encoder, workers) as pool,
        ThreadPoolExecutor(1) as hasher,
        TokenMerger(out_dir, parts, cfg.val_fraction, dtype) as merger,
    ):
        corpus_sha = hasher.submit(file_sha256, corpus)
        for chunk_index, part in sorted(finished.items()):
            merger.add(chunk_index, part)
        _encode_chunks(todo, encoder, pool, workers, merger.add)
        clock["encoded"] = time.perf_counter()
        encoded = [merger.encoded[task.chunk.index] for task in tasks]
        index, names = _gather_index(encoded, parts)
        if len(index) == 0:
            raise DataError(f"{corpus}: corpus has no documents")
        is_val = split_by_unit_hash(index["unit"], index["lang"], cfg.val_fraction)
        stats = _split_stats(index, is_val, names["langs"])
        meta = {
            "format": FORMAT_VERSION,
            "dtype": dtype.name,
            "vocab_size": vocab_size,
            "bos_id": bos_id,
            "eos_id": eos_id,
            "tokenizer_sha256": tokenizer_sha,
            "corpus_sha256": corpus_sha.result(),
            "seed": seed,
            "val_fraction": cfg.val_fraction,
            "langs": names["langs"],
            "sources": names["sources"],
            "splits": stats,
        }
        merger.finish(is_val)
    _publish(out_dir, parts, index, is_val, meta)
    clock["done"] = time.perf_counter()
    timing = _timing(stats, clock, workers)
    write_json(out_dir / TIMING_FILE, timing)
    log.info(
        "shards: %s train / %s val tokens in %.1fs → %s",
        f"{stats['train']['tokens']:,}",
        f"{stats['val']['tokens']:,}",
        timing["seconds"],
        out_dir,
    )
    return {**stats, "timing": timing}


# ── planning ──────────────────────────────────────────────────────────────────────────────────────────


def _corpus_stat(corpus: Path) -> tuple[int, int]:
    try:
        stat = corpus.stat()
    except OSError as e:
        raise DataError(f"{corpus}: cannot read corpus: {e.strerror}") from None
    return stat.st_size, stat.st_mtime_ns


def plan_chunks(size: int, chunk_bytes: int) -> list[Chunk]:
    """Byte ranges of about `chunk_bytes` (smaller for a small corpus, see TARGET_CHUNKS); no I/O here, the
    workers find the line boundaries themselves."""
    step = max(1, min(chunk_bytes, max(MIN_CHUNK_BYTES, -(-size // TARGET_CHUNKS))))
    return [Chunk(i, start, min(start + step, size)) for i, start in enumerate(range(0, size, step))]


def split_by_unit_hash(unit: np.ndarray, lang: np.ndarray, val_fraction: float) -> np.ndarray:
    """A document is in val when its unit hash (of seed and id, see `unit_hash`) falls below val_fraction.

    Depends only on the id, so it is stable across runs, worker counts and corpus order. A language with at
    least two documents gets at least one in each split (the extreme hash is moved), so every language has
    a validation score.
    """
    is_val = unit < val_fraction
    for code in np.unique(lang):
        rows = np.flatnonzero(lang == code)
        if len(rows) < 2:
            continue
        if not is_val[rows].any():
            is_val[rows[np.argmin(unit[rows])]] = True
        if is_val[rows].all():
            is_val[rows[np.argmax(unit[rows])]] = False
    return is_val


# ── encoding (in worker processes) ────────────────────────────────────────────────────────────────────


class Encoder:
    """Token ids of corpus texts, as `tokenizer` gives them, with the tokenizer's NFC pass skipped where the
    text is already NFC: the corpus is NFC by contract (the clean phase normalizes it), NFC is then the
    identity, and tokenizers' normalizer, which tracks alignments character by character, cost 5-20% of
    encoding (3 MB, one thread). Each text is checked (`unicodedata.is_normalized`, ~1 ms a MB); one that is
    not NFC goes through the full tokenizer."""

    def __init__(self, tokenizer: Tokenizer, boundaries: tuple[int, int]) -> None:
        self.tokenizer = tokenizer
        self.boundaries = boundaries
        """(start, end) ids packed around each document (tokens.document_boundaries)."""
        self.without_nfc: Tokenizer | None = None
        if isinstance(tokenizer.normalizer, normalizers.NFC):
            self.without_nfc = Tokenizer.from_str(tokenizer.to_str())
            self.without_nfc.normalizer = None
        self.text_only()

    def text_only(self) -> None:
        """Special-token strings in a text are text (see load_tokenizer); pickling does not keep this."""
        for tokenizer in (self.tokenizer, self.without_nfc):
            if tokenizer is not None:
                tokenizer.encode_special_tokens = True

    def ids(self, texts: list[str]) -> list[list[int]]:
        if self.without_nfc is None:
            return _ids(self.tokenizer, texts)
        nfc = [unicodedata.is_normalized("NFC", text) for text in texts]
        if all(nfc):
            return _ids(self.without_nfc, texts)
        fast = iter(_ids(self.without_nfc, [text for text, ok in zip(texts, nfc) if ok]))
        full = iter(_ids(self.tokenizer, [text for text, ok in zip(texts, nfc) if not ok]))
        return [next(fast) if ok else next(full) for ok in nfc]


def _ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def encode_chunk(task: Task, encoder: Encoder) -> Part:
    """Read, parse, encode and pack one chunk into its part files."""
    records = _read_records(task.corpus, task.chunk)
    texts = [record["text"] for record in records]
    ids = encoder.ids(texts)
    unit = np.array([unit_hash(task.seed, record["id"]) for record in records], dtype=np.float64)
    tokens, index = _pack(ids, unit < task.val_fraction, np.dtype(task.dtype), encoder.boundaries)
    index["unit"] = unit
    index["n_bytes"] = [len(text.encode("utf-8")) for text in texts]
    langs, index["lang"] = _local_codes(records, "lang")
    sources, index["source"] = _local_codes(records, "source")
    part = Part(index, langs, sources)
    write_bytes(_part(task.parts, task.chunk.index, ".bin"), tokens.tobytes())
    _save_part_index(_part(task.parts, task.chunk.index, ".npz"), part)  # last: marks the chunk done
    return part


def _read_records(corpus: Path, chunk: Chunk) -> list[dict[str, Any]]:
    """The records of the lines that begin in the chunk's byte range (a line is in exactly one chunk)."""
    with corpus.open("rb") as f:
        offset = chunk.start
        if offset > 0:
            f.seek(offset - 1)
            offset += len(f.readline()) - 1  # to the first line that begins at or after `start`
        if offset >= chunk.end:
            return []
        data = f.read(chunk.end - offset)
        if not data.endswith(b"\n"):
            data += f.readline()  # the last line begins in the range and ends after it
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    records = []
    for i, raw in enumerate(lines):
        try:
            records.append(parse_record(raw, corpus, 0))
        except DataError:  # count lines only now, to name the line in the error
            line_start = offset + sum(len(line) + 1 for line in lines[:i])
            parse_record(raw, corpus, _line_number(corpus, line_start))
    return records


def _line_number(corpus: Path, offset: int) -> int:
    """The 1-based number of the line that begins at byte `offset` (counted only to name a bad line)."""
    newlines = 0
    with corpus.open("rb") as f:
        while f.tell() < offset:
            newlines += f.read(min(1 << 20, offset - f.tell())).count(b"\n")
    return newlines + 1


def _local_codes(records: list[dict[str, Any]], key: str) -> tuple[list[str], list[int]]:
    """The part's distinct values of `key` in first-seen order, and each record's position among them."""
    codes: dict[str, int] = {}
    positions = [codes.setdefault(record[key], len(codes)) for record in records]
    return list(codes), positions


def _pack(
    ids: list[list[int]], is_val: np.ndarray, dtype: np.dtype, boundaries: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """`<s> ids </s>` (the tokenizer's boundaries) per document in one array, train documents first, then val, each in corpus order;
    filled by numpy rather than by growing a list."""
    order = np.argsort(is_val, kind="stable")
    index = np.zeros(len(ids), dtype=PART_DTYPE)
    index["length"] = np.fromiter(map(len, ids), np.int64, len(ids)) + 2
    lengths = index["length"][order]
    starts = np.cumsum(lengths) - lengths
    index["start"][order] = starts
    tokens = np.empty(int(lengths.sum()), dtype=dtype)
    body = np.ones(len(tokens), dtype=bool)
    body[starts] = body[starts + lengths - 1] = False
    tokens[starts], tokens[starts + lengths - 1] = boundaries
    tokens[body] = np.fromiter(chain.from_iterable(ids[i] for i in order), dtype, len(tokens) - 2 * len(ids))
    return tokens, index


_worker_encoder: Encoder | None = None
"""A worker process's encoder, set once by `_start_worker`."""


def _start_worker(encoder: Encoder) -> None:
    """Each worker encodes on its own thread only: no rayon pool competing with the other workers."""
    global _worker_encoder
    os.environ[_PARALLELISM] = "false"
    encoder.text_only()  # when spawned, the encoder arrived pickled
    _worker_encoder = encoder


def _worker_encode_chunk(task: Task) -> Part:
    assert _worker_encoder is not None, "_start_worker runs first"
    return encode_chunk(task, _worker_encoder)


# ── scheduling ────────────────────────────────────────────────────────────────────────────────────────


@contextmanager
def _worker_pool(encoder: Encoder, workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """`workers` encoding processes, all started on entry; None for one worker (encode in this process).

    On Linux they are forked, so they inherit the loaded tokenizer (copy-on-write) instead of each loading
    it; elsewhere they are spawned and receive the encoder pickled.
    """
    if workers == 1:
        yield None
        return
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with _environ(**{_PARALLELISM: "false"}):  # set before the fork: tokenizers warns about forks otherwise
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(encoder,)
        )
        pool.submit(int).result()  # the first task starts every worker process, now
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finished_parts(tasks: list[Task]) -> dict[int, Part]:
    """The parts an interrupted run finished (their index file is written last)."""
    finished = {
        task.chunk.index: _load_part_index(path)
        for task in tasks
        if (path := _part(task.parts, task.chunk.index, ".npz")).exists()
    }
    if finished:
        log.info("shards: resuming, %d of %d chunks already encoded", len(finished), len(tasks))
    return finished


def _encode_chunks(
    tasks: list[Task],
    encoder: Encoder,
    pool: ProcessPoolExecutor | None,
    workers: int,
    on_part: Callable[[int, Part], None],
) -> None:
    """Encode the chunks of `tasks`, passing each part to `on_part` as it comes, with a progress bar."""
    with Steps("tokenize: encoding", len(tasks), unit="chunks") as progress:
        for task, part in _run(tasks, encoder, pool, workers):
            on_part(task.chunk.index, part)
            progress.advance()


def _run(
    tasks: list[Task], encoder: Encoder, pool: ProcessPoolExecutor | None, workers: int
) -> Iterator[tuple[Task, Part]]:
    """`encode_chunk` over `tasks`, in this process without a pool.

    On the pool, two tasks per worker are in flight, taken in completion order (a slow chunk holds up no
    one), so an error stops the run within a few chunks rather than after every queued chunk was encoded.
    """
    if pool is None:
        with _environ(**{_PARALLELISM: "false"}):  # one thread, as in a worker
            yield from ((task, encode_chunk(task, encoder)) for task in tasks)
        return
    queue = iter(tasks)
    running = {pool.submit(_worker_encode_chunk, task): task for task in islice(queue, 2 * workers)}
    try:
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield running.pop(future), future.result()
            running |= {pool.submit(_worker_encode_chunk, task): task for task in islice(queue, len(done))}
    finally:
        for future in running:
            future.cancel()


def _cores(workers: int) -> int:
    if workers > 0:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_PARALLELISM = "TOKENIZERS_PARALLELISM"


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set for the block only."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


# ── parts and final files ─────────────────────────────────────────────────────────────────────────────


def _tmp(path: Path) -> Path:
    """Where a split's tokens stream until they are complete."""
    return path.with_name(path.name + ".tmp")


def _part(parts: Path, chunk_index: int, suffix: str) -> Path:
    return parts / f"{chunk_index:06d}{suffix}"


def _save_part_index(path: Path, part: Part) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        index=part.index,
        langs=np.array(part.langs, dtype=str),
        sources=np.array(part.sources, dtype=str),
    )
    write_bytes(path, buffer.getvalue())


def _load_part_index(path: Path) -> Part:
    with np.load(path, allow_pickle=False) as saved:
        return Part(saved["index"], saved["langs"].tolist(), saved["sources"].tolist())


def _prepare_parts(parts: Path, fingerprint: dict[str, Any]) -> Path:
    """Keep finished chunks of an interrupted run with the same inputs; otherwise start clean."""
    plan_file = parts / "plan.json"
    try:
        same = json.loads(plan_file.read_text()) == fingerprint
    except (OSError, json.JSONDecodeError):
        same = False
    if not same:
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        write_json(plan_file, fingerprint)
    return parts


def _gather_index(encoded: list[Part], parts: Path) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Every document's part-index row, with lang and source recoded into corpus-wide sorted name lists."""
    langs = sorted(
        {x for part in encoded for x in part.langs},
        key=lambda x: (LANGS.index(x) if x in LANGS else len(LANGS), x),
    )
    sources = sorted({x for part in encoded for x in part.sources})
    if len(langs) > 256 or len(sources) > 1 << 16:
        raise DataError(
            f"{parts.parent}: {len(langs)} languages / {len(sources)} sources exceed the shard "
            f"index (uint8 lang, uint16 source)"
        )
    lang_code = {x: i for i, x in enumerate(langs)}
    source_code = {x: i for i, x in enumerate(sources)}
    indexes = []
    for part in encoded:
        index = part.index.copy()
        index["lang"] = np.array([lang_code[x] for x in part.langs], np.uint8)[index["lang"]]
        index["source"] = np.array([source_code[x] for x in part.sources], np.uint16)[index["source"]]
        indexes.append(index)
    index = np.concatenate(indexes) if indexes else np.zeros(0, PART_DTYPE)
    return index, {"langs": langs, "sources": sources}


def _split_stats(index: np.ndarray, is_val: np.ndarray, langs: list[str]) -> dict[str, Any]:
    """Documents, tokens (with <s> and </s>) and bytes per split and language."""
    stats: dict[str, Any] = {}
    for split, rows in (("train", ~is_val), ("val", is_val)):
        lang = index["lang"][rows]
        per_lang = {
            "docs": np.bincount(lang, minlength=len(langs)),
            "tokens": np.bincount(lang, weights=index["length"][rows], minlength=len(langs)),
            "bytes": np.bincount(lang, weights=index["n_bytes"][rows], minlength=len(langs)),
        }
        stats[split] = {key: int(counts.sum()) for key, counts in per_lang.items()}
        stats[split]["langs"] = {
            name: {key: int(counts[i]) for key, counts in per_lang.items()} for i, name in enumerate(langs)
        }
    return stats


class TokenMerger:
    """Appends the parts' tokens to {split}.bin.tmp in corpus order, most of them while later chunks are still
    being encoded.

    Each part holds its train documents' tokens, then its val documents', by the tentative split
    `unit < val_fraction`; the two runs are copied by the kernel. `split_by_unit_hash` changes that split
    only for a language with no val (or no train) document at all, so a part goes as soon as the finished
    parts hold documents of both splits for each of its languages. The rest go at `finish`, with the final
    split; a part whose documents moved is regrouped document by document.
    """

    def __init__(self, out_dir: Path, parts: Path, val_fraction: float, dtype: np.dtype) -> None:
        self.parts, self.val_fraction, self.dtype = parts, val_fraction, dtype
        self.files = {
            split: _tmp(shard_file(out_dir, split, "tokens")).open("wb", buffering=0) for split in SPLITS
        }
        self.encoded: dict[int, Part] = {}
        """Every part added, by chunk index."""
        self.splits_seen: dict[str, set[bool]] = {}
        self.next = 0
        """Parts before this one are appended."""
        self.first_doc = 0
        """Corpus index of the next part's first document."""

    def __enter__(self) -> TokenMerger:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self.files.values():
            f.close()

    def add(self, chunk_index: int, part: Part) -> None:
        self.encoded[chunk_index] = part
        tentative = part.index["unit"] < self.val_fraction
        for code, lang in enumerate(part.langs):
            self.splits_seen.setdefault(lang, set()).update(tentative[part.index["lang"] == code].tolist())
        while self.next in self.encoded and self._settled(self.encoded[self.next]):
            part = self.encoded[self.next]
            self._append(part, part.index["unit"] < self.val_fraction)

    def finish(self, is_val: np.ndarray) -> None:
        """Append the remaining parts with the final split, then make both files durable."""
        while self.next in self.encoded:
            part = self.encoded[self.next]
            self._append(part, is_val[self.first_doc : self.first_doc + len(part.index)])
        for f in self.files.values():
            os.fsync(f.fileno())

    def _settled(self, part: Part) -> bool:
        return all(len(self.splits_seen[lang]) == 2 for lang in part.langs)

    def _append(self, part: Part, final: np.ndarray) -> None:
        path = _part(self.parts, self.next, ".bin")
        if np.array_equal(final, part.index["unit"] < self.val_fraction):
            n_train = int(part.index["length"][~final].sum()) * self.dtype.itemsize
            with path.open("rb", buffering=0) as src:
                _append(src, 0, n_train, self.files["train"])
                _append(src, n_train, path.stat().st_size - n_train, self.files["val"])
        else:
            tokens = np.fromfile(path, dtype=self.dtype)
            for split, docs in (("train", ~final), ("val", final)):
                starts, lengths = part.index["start"][docs], part.index["length"][docs]
                self.files[split].write(
                    b"".join(tokens[s : s + n].tobytes() for s, n in zip(starts, lengths))
                )
        self.next += 1
        self.first_doc += len(part.index)


def _publish(out_dir: Path, parts: Path, index: np.ndarray, is_val: np.ndarray, meta: dict[str, Any]) -> None:
    """Index files next to the merged tokens, then meta.json last: its presence means the shards are done."""
    for split, rows in (("train", ~is_val), ("val", is_val)):
        write_npy(shard_file(out_dir, split, "index"), _final_index(index[rows]))
        tokens = shard_file(out_dir, split, "tokens")
        os.replace(_tmp(tokens), tokens)
    write_json(out_dir / META_FILE, meta)
    shutil.rmtree(parts)


def _append(src: io.FileIO, offset: int, count: int, dst: io.FileIO) -> None:
    """Bytes [offset, offset + count) of `src` to the end of `dst`: in the kernel (`copy_file_range`) where
    the platform and file system allow it, else through a buffer."""
    while count > 0:
        try:
            n = os.copy_file_range(src.fileno(), dst.fileno(), count, offset)
        except (AttributeError, OSError):  # not Linux, or a file system without it
            src.seek(offset)
            n = dst.write(src.read(min(count, 1 << 26))) or 0
        if n <= 0:
            raise DataError(f"{src.name}: part file shorter than its index (re-run `gecko tokenize`)")
        offset, count = offset + n, count - n


def _final_index(index: np.ndarray) -> np.ndarray:
    """INDEX_DTYPE rows of a split's documents, starts in the split's token stream."""
    final = np.zeros(len(index), INDEX_DTYPE)
    assert INDEX_DTYPE.names is not None  # a structured dtype
    for name in INDEX_DTYPE.names:
        final[name] = index[name]
    final["start"] = np.cumsum(final["length"]) - final["length"]
    return final


def _timing(stats: dict[str, Any], clock: dict[str, float], workers: int) -> dict[str, Any]:
    """Seconds in total and per phase: plan (tokenizer load, chunks), encode (workers), merge (split, files)."""
    seconds = clock["done"] - clock["start"]
    tokens = stats["train"]["tokens"] + stats["val"]["tokens"]
    phases = {"plan": ("start", "planned"), "encode": ("planned", "encoded"), "merge": ("encoded", "done")}
    return {
        "seconds": round(seconds, 3),
        "workers": workers,
        **{f"{name}_seconds": round(clock[b] - clock[a], 3) for name, (a, b) in phases.items()},
        "tokens_per_second": round(tokens / max(seconds, 1e-9)),
    }
