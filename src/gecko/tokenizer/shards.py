"""Pretokenization of the corpus into memory-mapped token shards, and the `Shards` reader.

Format (docs/architecture.md): `{split}.bin` is a flat token array in which each document is `<s> ids </s>`;
`{split}.idx.npy` has one row per document (start, length, lang, source, n_bytes); `meta.json` describes both.

How it runs: a first pass reads only ids, languages and sources, decides each document's split and cuts the
corpus into chunks of about `chunk_bytes`. Chunks are then encoded in one process: each chunk is read by byte
offset, cut into slices, and the slices are encoded on `workers` threads (tokenizers releases the GIL while
encoding, single-threaded per call); two chunks are in flight, so reading, parsing and writing one overlaps
the encoding of the other. Each chunk is written to part files with a completion marker; the parts are
concatenated in corpus order at the end. The output therefore does not depend on the number of workers or
the chunk size, and an interrupted run resumes from its finished chunks.

Threads rather than worker processes: no pool start-up, one tokenizer load, and load balancing by slice
rather than by chunk. Forked processes also proved fragile: after `datatrove` had been imported (as in a
full pipeline run), two forked workers ran at the speed of one (2-core VM, 20 MB: 8.8 s instead of 4.9 s).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress
from tokenizers import Tokenizer

from gecko.atomic import write_bytes, write_json, write_npy
from gecko.config import LANGS, TokenizeConfig
from gecko.errors import DataError
from gecko.tokenizer.special_tokens import BOS, EOS, special_id
from gecko.tokenizer.train import TOKENIZER_FILE, corpus_records, file_sha256, load_tokenizer, parse_record

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
INDEX_DTYPE = np.dtype([
    ("start", np.int64), ("length", np.int64), ("lang", np.uint8), ("source", np.uint16), ("n_bytes", np.int64),
])
META_FILE = "meta.json"
SHARD_TOKENS = (BOS, EOS)
"""The only special tokens shards use: any tokenizer with them at GECKO's ids can be pretokenized."""
TIMING_FILE = "timing.json"
"""Wall-clock numbers live apart from meta.json, so that identical shards have an identical meta.json
(the training loader fingerprints it)."""
PARTS_DIR = ".parts"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    index: int
    offset: int
    """Byte offset of the chunk's first line in the corpus file."""
    first_doc: int
    n_docs: int


@dataclass
class Plan:
    """Everything decided before encoding, from one pass over the corpus."""

    corpus_sha256: str
    langs: list[str]
    sources: list[str]
    lang: np.ndarray
    """(n_docs,) uint8 index into langs."""
    source: np.ndarray
    """(n_docs,) uint16 index into sources."""
    is_val: np.ndarray
    """(n_docs,) bool."""
    chunks: list[Chunk]


@dataclass(frozen=True)
class Task:
    """One chunk and the per-document decisions a worker needs for it."""

    chunk: Chunk
    is_val: np.ndarray
    lang: np.ndarray
    source: np.ndarray


def pretokenize(cfg: TokenizeConfig, corpus: Path, tokenizer_dir: Path, out_dir: Path,
                seed: int) -> dict[str, Any]:
    """Encode `corpus` into train/val shards under `out_dir`; returns the stats also saved in meta.json."""
    t0 = time.perf_counter()
    # text_only: a literal "<s>" in a document (HTML strikethrough) is text, not a boundary.
    tokenizer = load_tokenizer(tokenizer_dir, text_only=True, required=SHARD_TOKENS)
    vocab_size = tokenizer.get_vocab_size()
    dtype = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    plan = plan_corpus(corpus, seed, cfg.val_fraction, cfg.chunk_bytes)
    tokenizer_sha = file_sha256(Path(tokenizer_dir) / TOKENIZER_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = _prepare_parts(out_dir / PARTS_DIR, {
        "format": FORMAT_VERSION, "corpus_sha256": plan.corpus_sha256, "tokenizer_sha256": tokenizer_sha,
        "seed": seed, "val_fraction": cfg.val_fraction, "chunk_bytes": cfg.chunk_bytes, "dtype": dtype.name,
    })
    workers = _encode_chunks(plan, corpus, tokenizer, parts, dtype, cfg.workers)
    t_encoded = time.perf_counter()
    stats = _sum_chunk_stats(parts, plan)
    meta = {
        "format": FORMAT_VERSION, "dtype": dtype.name, "vocab_size": vocab_size,
        "bos_id": special_id(BOS), "eos_id": special_id(EOS), "tokenizer_sha256": tokenizer_sha,
        "corpus_sha256": plan.corpus_sha256, "seed": seed, "val_fraction": cfg.val_fraction,
        "langs": plan.langs, "sources": plan.sources, "splits": stats,
    }
    _finalize(out_dir, parts, plan, dtype, meta)
    timing = _timing(stats, t0, t_encoded, workers)
    write_json(out_dir / TIMING_FILE, timing)
    log.info("shards: %s train / %s val tokens in %.1fs → %s", f"{stats['train']['tokens']:,}",
             f"{stats['val']['tokens']:,}", timing["seconds"], out_dir)
    return {**stats, "timing": timing}


# ── planning ──────────────────────────────────────────────────────────────────────────────────────────


def plan_corpus(corpus: Path, seed: int, val_fraction: float, chunk_bytes: int) -> Plan:
    """Split decisions and chunk boundaries from ids, languages and sources (texts are not kept)."""
    digest = hashlib.sha256()
    ids: list[str] = []
    langs: list[str] = []
    sources: list[str] = []
    chunks: list[Chunk] = []
    offset = chunk_start = chunk_first = 0
    for raw, record in corpus_records(corpus):
        digest.update(raw)
        ids.append(record["id"])
        langs.append(record["lang"])
        sources.append(record["source"])
        offset += len(raw)
        if offset - chunk_start >= chunk_bytes:
            chunks.append(Chunk(len(chunks), chunk_start, chunk_first, len(ids) - chunk_first))
            chunk_start, chunk_first = offset, len(ids)
    if len(ids) > chunk_first:
        chunks.append(Chunk(len(chunks), chunk_start, chunk_first, len(ids) - chunk_first))
    if not ids:
        raise DataError(f"{corpus}: corpus has no documents")
    lang_names = sorted(set(langs), key=lambda x: (LANGS.index(x) if x in LANGS else len(LANGS), x))
    source_names = sorted(set(sources))
    if len(lang_names) > 256 or len(source_names) > 1 << 16:
        raise DataError(f"{corpus}: {len(lang_names)} languages / {len(source_names)} sources exceed the "
                        f"shard index (uint8 lang, uint16 source)")
    lang = np.array([lang_names.index(x) for x in langs], dtype=np.uint8)
    source_ids = {name: i for i, name in enumerate(source_names)}
    source = np.array([source_ids[x] for x in sources], dtype=np.uint16)
    is_val = split_by_document(ids, lang, seed, val_fraction)
    return Plan(digest.hexdigest(), lang_names, source_names, lang, source, is_val, chunks)


def split_by_document(ids: list[str], lang: np.ndarray, seed: int, val_fraction: float) -> np.ndarray:
    """A document is in val when a hash of (seed, id) falls below val_fraction.

    Depends only on the id, so it is stable across runs, worker counts and corpus order. A language with at
    least two documents gets at least one in each split (the extreme hash is moved), so every language has
    a validation score.
    """
    u = np.array([unit_hash(seed, doc_id) for doc_id in ids], dtype=np.float64)
    is_val = u < val_fraction
    for code in np.unique(lang):
        rows = np.flatnonzero(lang == code)
        if len(rows) < 2:
            continue
        if not is_val[rows].any():
            is_val[rows[np.argmin(u[rows])]] = True
        if is_val[rows].all():
            is_val[rows[np.argmax(u[rows])]] = False
    return is_val


def unit_hash(seed: int, doc_id: str) -> float:
    """A stable number in [0, 1) (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# ── encoding ──────────────────────────────────────────────────────────────────────────────────────────


class ChunkEncoder:
    """Encodes one chunk into per-split part files; called from up to two threads at once."""

    def __init__(self, corpus: Path, tokenizer: Tokenizer, parts: Path, dtype: np.dtype,
                 pool: ThreadPoolExecutor | None, threads: int) -> None:
        self.corpus, self.tokenizer, self.parts, self.dtype, self.pool = corpus, tokenizer, parts, dtype, pool
        self.n_slices = SLICES_PER_THREAD * threads
        self.bos, self.eos = special_id(BOS), special_id(EOS)

    def __call__(self, task: Task) -> int:
        texts = self._read(task.chunk)
        ids = self._encode(texts)
        stats: dict[str, list[list[int]]] = {}
        for split, mask in (("train", ~task.is_val), ("val", task.is_val)):
            rows = np.flatnonzero(mask)
            tokens, index = self._pack([ids[i] for i in rows], [texts[i] for i in rows])
            index["lang"], index["source"] = task.lang[rows], task.source[rows]
            self._save(task.chunk, split, tokens, index)
            stats[split] = [index["lang"].tolist(), index["length"].tolist(), index["n_bytes"].tolist()]
        write_json(_part(self.parts, task.chunk, "done.json"), stats)  # last: marks the chunk complete
        return task.chunk.n_docs

    def _read(self, chunk: Chunk) -> list[str]:
        with self.corpus.open("rb") as f:
            f.seek(chunk.offset)
            lines = [f.readline() for _ in range(chunk.n_docs)]
        first_line = chunk.first_doc + 1
        return [parse_record(raw, self.corpus, first_line + i)["text"] for i, raw in enumerate(lines)]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text; with a pool, slices of the chunk are encoded on its threads in parallel."""
        if self.pool is None:
            return _encode_batch(self.tokenizer, texts)
        step = -(-len(texts) // self.n_slices) or 1
        slices = [texts[i:i + step] for i in range(0, len(texts), step)]
        return list(chain.from_iterable(self.pool.map(partial(_encode_batch, self.tokenizer), slices)))

    def _pack(self, ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`<s> ids </s>` per document in one array, filled by numpy rather than by growing a list."""
        index = np.zeros(len(ids), dtype=INDEX_DTYPE)
        index["length"] = np.fromiter(map(len, ids), np.int64, len(ids)) + 2
        ends = np.cumsum(index["length"])
        index["start"] = ends - index["length"]
        index["n_bytes"] = [len(text.encode("utf-8")) for text in texts]
        tokens = np.empty(int(ends[-1]) if len(ids) else 0, dtype=self.dtype)
        body = np.ones(len(tokens), dtype=bool)
        body[index["start"]] = body[ends - 1] = False
        tokens[index["start"]], tokens[ends - 1] = self.bos, self.eos
        tokens[body] = np.fromiter(chain.from_iterable(ids), self.dtype, len(tokens) - 2 * len(ids))
        return tokens, index

    def _save(self, chunk: Chunk, split: str, tokens: np.ndarray, index: np.ndarray) -> None:
        write_bytes(_part(self.parts, chunk, f"{split}.bin"), tokens.tobytes())
        write_npy(_part(self.parts, chunk, f"{split}.idx.npy"), index)


SLICES_PER_THREAD = 4
"""A chunk is cut into this many slices per thread, so that threads finishing early pick up more work."""
_PARALLELISM = "TOKENIZERS_PARALLELISM"


def _encode_batch(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Runs without the GIL while tokenizers encodes, so calls on several threads use several cores."""
    return [e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def _encode_chunks(plan: Plan, corpus: Path, tokenizer: Tokenizer, parts: Path, dtype: np.dtype,
                   workers: int) -> int:
    """Encode every chunk without a completion marker; returns the number of encoding threads used."""
    todo = [c for c in plan.chunks if not _part(parts, c, "done.json").exists()]
    rows = [slice(c.first_doc, c.first_doc + c.n_docs) for c in todo]
    tasks = [Task(c, plan.is_val[r], plan.lang[r], plan.source[r]) for c, r in zip(todo, rows)]
    threads = max(1, workers if workers > 0 else os.cpu_count() or 1)
    if len(todo) < len(plan.chunks):
        log.info("shards: resuming, %d of %d chunks already encoded", len(plan.chunks) - len(todo),
                 len(plan.chunks))
    with ExitStack() as stack:
        stack.enter_context(_single_threaded_tokenizers())
        pool = stack.enter_context(ThreadPoolExecutor(threads)) if threads > 1 else None
        # Two chunks in flight: one is read, parsed, packed and written while the other is being encoded.
        chunk_threads = stack.enter_context(ThreadPoolExecutor(2 if pool else 1))
        progress = stack.enter_context(Progress(disable=not sys.stderr.isatty(), transient=True))
        bar = progress.add_task("encoding", total=sum(t.chunk.n_docs for t in tasks))
        encoder = ChunkEncoder(corpus, tokenizer, parts, dtype, pool, threads)
        for n_docs in chunk_threads.map(encoder, tasks):  # on an error, map cancels the queued chunks
            progress.advance(bar, n_docs)
    return threads


@contextmanager
def _single_threaded_tokenizers() -> Iterator[None]:
    """TOKENIZERS_PARALLELISM=false while encoding: each call then runs on its own thread only.

    `workers` is then the exact number of encoding threads, and tokenizers' rayon pool does not compete
    with ours for the same cores.
    """
    saved = os.environ.get(_PARALLELISM)
    os.environ[_PARALLELISM] = "false"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_PARALLELISM]
        else:
            os.environ[_PARALLELISM] = saved


# ── parts and final files ─────────────────────────────────────────────────────────────────────────────


def _part(parts: Path, chunk: Chunk, suffix: str) -> Path:
    return parts / f"{chunk.index:06d}.{suffix}"


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


def _sum_chunk_stats(parts: Path, plan: Plan) -> dict[str, Any]:
    """Documents, tokens (with <s> and </s>) and bytes per split and language, from the chunk markers."""
    stats: dict[str, Any] = {}
    for split in SPLITS:
        per_lang: dict[str, Counter[str]] = {lang: Counter() for lang in plan.langs}
        for chunk in plan.chunks:
            langs, lengths, n_bytes = json.loads(_part(parts, chunk, "done.json").read_text())[split]
            for code, length, size in zip(langs, lengths, n_bytes):
                per_lang[plan.langs[code]].update(docs=1, tokens=length, bytes=size)
        total = sum(per_lang.values(), Counter())
        stats[split] = {key: total[key] for key in ("docs", "tokens", "bytes")}
        stats[split]["langs"] = {lang: {key: c[key] for key in ("docs", "tokens", "bytes")}
                                 for lang, c in per_lang.items()}
    return stats


def _finalize(out_dir: Path, parts: Path, plan: Plan, dtype: np.dtype, meta: dict[str, Any]) -> None:
    """Concatenate parts in corpus order, then publish: meta.json goes last, so its presence means done."""
    (out_dir / META_FILE).unlink(missing_ok=True)
    for split in SPLITS:
        _merge_split(out_dir, parts, plan.chunks, split, dtype)
    write_json(out_dir / META_FILE, meta)
    shutil.rmtree(parts)


def _merge_split(out_dir: Path, parts: Path, chunks: list[Chunk], split: str, dtype: np.dtype) -> None:
    indexes, offset = [], 0
    tmp = out_dir / f"{split}.bin.tmp"
    with tmp.open("wb") as f:
        for chunk in chunks:
            tokens = np.fromfile(_part(parts, chunk, f"{split}.bin"), dtype=dtype)
            index = np.load(_part(parts, chunk, f"{split}.idx.npy"))
            index["start"] += offset
            offset += len(tokens)
            f.write(tokens.tobytes())
            indexes.append(index)
        f.flush()
        os.fsync(f.fileno())
    write_npy(out_dir / f"{split}.idx.npy", np.concatenate(indexes) if indexes else np.zeros(0, INDEX_DTYPE))
    os.replace(tmp, out_dir / f"{split}.bin")


def _timing(stats: dict[str, Any], t0: float, t_encoded: float, workers: int) -> dict[str, Any]:
    seconds = time.perf_counter() - t0
    tokens = stats["train"]["tokens"] + stats["val"]["tokens"]
    return {"seconds": round(seconds, 3), "encode_seconds": round(t_encoded - t0, 3), "workers": workers,
            "tokens_per_second": round(tokens / max(seconds, 1e-9))}


# ── reader ────────────────────────────────────────────────────────────────────────────────────────────


class Shards:
    """Read-only view of a shard folder; every inconsistency is a DataError naming the file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = _read_meta(self.path / META_FILE)
        self.langs: list[str] = list(self.meta["langs"])
        self.sources: list[str] = list(self.meta["sources"])
        self.dtype = np.dtype(self.meta["dtype"])

    def tokens(self, split: str) -> np.ndarray:
        """The split's token stream as a read-only memmap (an empty array for an empty split)."""
        path = self._file(split, ".bin")
        n_tokens = self.meta["splits"][split]["tokens"]
        size = path.stat().st_size
        if size != n_tokens * self.dtype.itemsize:
            raise DataError(f"{path}: {size:,} bytes, but {META_FILE} says {n_tokens:,} {self.dtype.name} "
                            f"tokens ({n_tokens * self.dtype.itemsize:,} bytes)")
        if n_tokens == 0:
            return np.zeros(0, dtype=self.dtype)  # np.memmap cannot map an empty file
        return np.memmap(path, dtype=self.dtype, mode="r")

    def index(self, split: str) -> np.ndarray:
        """One INDEX_DTYPE row per document of the split."""
        path = self._file(split, ".idx.npy")
        try:
            index = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: unreadable shard index ({e})") from None
        expected = self.meta["splits"][split]
        if index.dtype != INDEX_DTYPE or index.ndim != 1:
            raise DataError(f"{path}: index has dtype {index.dtype}, expected {INDEX_DTYPE}")
        if len(index) != expected["docs"]:
            raise DataError(f"{path}: {len(index):,} documents, but {META_FILE} says {expected['docs']:,}")
        end = int(index["start"][-1] + index["length"][-1]) if len(index) else 0
        if end != expected["tokens"]:
            raise DataError(f"{path}: documents end at token {end:,}, but {META_FILE} says "
                            f"{expected['tokens']:,} tokens")
        return index

    def _file(self, split: str, suffix: str) -> Path:
        if split not in SPLITS:
            raise DataError(f"{self.path}: unknown split {split!r} (known: {', '.join(SPLITS)})")
        path = self.path / f"{split}{suffix}"
        if not path.is_file():
            raise DataError(f"{path}: shard file missing (re-run `gecko tokenize`)")
        return path


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: shard metadata missing (run `gecko tokenize`)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable shard metadata ({e})") from None
    required = ("dtype", "vocab_size", "bos_id", "eos_id", "tokenizer_sha256", "langs", "sources", "splits")
    missing = [key for key in required if key not in meta]
    missing += [f"splits.{s}" for s in SPLITS if s not in meta.get("splits", {})]
    if missing:
        raise DataError(f"{path}: missing key {missing[0]}")
    return meta
