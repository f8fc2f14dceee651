"""The token shards: their format, the split rule, the writer, the one reader, and the document layout of a
window.

Format (docs/architecture.md): `{split}.bin` is a flat token array in which each document is `<s> ids </s>`;
`{split}.idx.npy` has one row per document (start, length, lang, source, n_bytes); `meta.json` describes both.
Shards of loss-masked documents (SFT conversations: `"format": "sft"` in meta.json) add `{split}.mask.npy`,
one bool per token, True where the token is a target of the loss; other shards have none.
Written by `write_shards` (SFT's conversations) and by gecko.tokenizer.pretokenize, which streams the corpus
into the same files (`shard_file` names them); read by train, eval and SFT through `Shards`, which checks
every file against meta.json. Imports only gecko.errors, gecko.io.atomic and numpy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gecko.errors import DataError
from gecko.io.atomic import write_bytes, write_json, write_npy

SPLITS = ("train", "val")
INDEX_DTYPE = np.dtype(
    [
        ("start", np.int64),
        ("length", np.int64),
        ("lang", np.uint8),
        ("source", np.uint16),
        ("n_bytes", np.int64),
    ]
)
META_FILE = "meta.json"
MASKED_FORMAT = "sft"
"""meta.json `format` of shards whose documents carry a loss mask (`{split}.mask.npy`)."""
SUFFIXES = {"tokens": ".bin", "index": ".idx.npy", "mask": ".mask.npy"}


def shard_file(folder: Path, split: str, kind: str) -> Path:
    """The file of one split: `kind` is tokens, index or mask (SUFFIXES)."""
    return Path(folder) / f"{split}{SUFFIXES[kind]}"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32: the token stream is the largest file of a run."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def write_shards(
    folder: Path, splits: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]], meta: dict[str, Any]
) -> None:
    """Write each split's (tokens, index, mask or None) atomically, then meta.json last: its presence means the
    folder is complete. The arrays must agree with `meta` (dtype, token and document counts, a mask exactly
    where the format has one), so a writer's bug fails here rather than in a reader hours later."""
    masked = meta.get("format") == MASKED_FORMAT
    for split, (tokens, index, mask) in splits.items():
        counts = meta["splits"][split]
        ok = (
            tokens.dtype == np.dtype(meta["dtype"])
            and index.dtype == INDEX_DTYPE
            and (len(tokens), len(index)) == (counts["tokens"], counts["docs"])
            and (mask is not None) == masked
            and (mask is None or (mask.dtype == np.bool_ and len(mask) == len(tokens)))
        )
        assert ok, f"{folder}: {split} arrays disagree with the shard metadata"
        write_bytes(shard_file(folder, split, "tokens"), tokens.tobytes())
        write_npy(shard_file(folder, split, "index"), index)
        if mask is not None:
            write_npy(shard_file(folder, split, "mask"), mask)
    write_json(Path(folder) / META_FILE, meta)


def unit_hash(seed: int, doc_id: str) -> float:
    """A stable number in [0, 1) (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


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
        path = self._file(split, "tokens")
        n_tokens = self.meta["splits"][split]["tokens"]
        size = path.stat().st_size
        if size != n_tokens * self.dtype.itemsize:
            raise DataError(
                f"{path}: {size:,} bytes, but {META_FILE} says {n_tokens:,} {self.dtype.name} "
                f"tokens ({n_tokens * self.dtype.itemsize:,} bytes)"
            )
        if n_tokens == 0:
            return np.zeros(0, dtype=self.dtype)  # np.memmap cannot map an empty file
        return np.memmap(path, dtype=self.dtype, mode="r")

    def index(self, split: str) -> np.ndarray:
        """One INDEX_DTYPE row per document of the split."""
        path = self._file(split, "index")
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
            raise DataError(
                f"{path}: documents end at token {end:,}, but {META_FILE} says {expected['tokens']:,} tokens"
            )
        return index

    def mask(self, split: str) -> np.ndarray | None:
        """The split's loss mask (one bool per token), or None for shards without one (pretraining)."""
        if self.meta.get("format") != MASKED_FORMAT:
            return None
        path = self._file(split, "mask")
        try:
            mask = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: unreadable loss mask ({e})") from None
        n_tokens = self.meta["splits"][split]["tokens"]
        if mask.dtype != np.bool_ or mask.shape != (n_tokens,):
            raise DataError(
                f"{path}: loss mask of {mask.dtype} {mask.shape}, expected bool ({n_tokens},) like the tokens"
            )
        return mask

    def _file(self, split: str, kind: str) -> Path:
        if split not in SPLITS:
            raise DataError(f"{self.path}: unknown split {split!r} (known: {', '.join(SPLITS)})")
        path = shard_file(self.path, split, kind)
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


def doc_layout(starts: np.ndarray, begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Document number and in-document position for stream offsets [begin, end).

    `starts` are the sorted start offsets of all documents in the stream. A document that began before
    the window restarts at position 0 at the window edge, so positions stay below seq_len.
    """
    offsets = np.arange(begin, end)
    doc = np.searchsorted(starts, offsets, side="right") - 1  # index of the containing document
    doc_start = np.maximum(starts[doc], begin)
    return doc - doc[0], offsets - doc_start
