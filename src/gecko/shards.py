"""The token shards: their format, the split rule, the one reader, and the document layout of a window.

Format (docs/architecture.md): `{split}.bin` is a flat token array in which each document is `<s> ids </s>`;
`{split}.idx.npy` has one row per document (start, length, lang, source, n_bytes); `meta.json` describes both.
Written by gecko.tokenizer.pretokenize (and the SFT stage's conversation shards); read by train, eval and SFT
through `Shards`, which checks every file against meta.json. Imports only gecko.errors and numpy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from gecko.errors import DataError

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
        path = self._file(split, ".bin")
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
            raise DataError(
                f"{path}: documents end at token {end:,}, but {META_FILE} says {expected['tokens']:,} tokens"
            )
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


def doc_layout(starts: np.ndarray, begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Document number and in-document position for stream offsets [begin, end).

    `starts` are the sorted start offsets of all documents in the stream. A document that began before
    the window restarts at position 0 at the window edge, so positions stay below seq_len.
    """
    offsets = np.arange(begin, end)
    doc = np.searchsorted(starts, offsets, side="right") - 1  # index of the containing document
    doc_start = np.maximum(starts[doc], begin)
    return doc - doc[0], offsets - doc_start
