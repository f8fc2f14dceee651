"""Packed, resumable batches from the token shards: the one loader of pretraining and SFT.

The shard is one stream of documents. A sample is a row of `seq_len + 1` tokens; the rows of an epoch come in
a seeded order, and each data-parallel rank takes every `world_size`-th one. Two layouts, by the shards:
- plain shards (pretraining, `<s> doc </s>` runs): a row is a window cut from the stream, windows visited in
  a seeded permutation; a document may begin before the window and end after it;
- loss-masked shards (SFT conversations, gecko.shards' mask): a row holds whole documents, consecutive in a
  seeded permutation until the next does not fit (`pack`), then padding; only masked targets count.
With document masking each token also carries its row-local document number and its position inside that
document, so attention never crosses a boundary and RoPE positions restart per document.

The whole state is (epoch, cursor) plus a fingerprint of the shards: resuming replays exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from gecko.errors import CheckpointError
from gecko.shards import Shards, doc_layout


@dataclass
class Batch:
    inputs: torch.Tensor
    """(B, T) token ids."""
    targets: torch.Tensor
    """(B, T) next-token ids."""
    doc_ids: torch.Tensor | None
    """(B, T) window-local document number; None for naive packing."""
    positions: torch.Tensor | None
    """(B, T) position of each token inside its document; None for naive packing."""
    langs: torch.Tensor
    """(B, T) language index (into Shards.langs) of each target token."""
    loss_mask: torch.Tensor | None = None
    """(B, T) bool, True where the target counts in the loss (SFT: assistant tokens); None: every target."""


class BatchSource(Protocol):
    """What the trainer needs from a loader (PackedLoader; the tests' scripted loaders)."""

    fingerprint: str

    def __next__(self) -> Batch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _fingerprint(meta: dict[str, Any], split: str, *layout: str) -> str:
    """Identifies the shards a loader position belongs to (tokenizer, counts, split, layout)."""
    blob = json.dumps([meta, split, *layout], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def pack(lengths: np.ndarray, order: np.ndarray, capacity: int) -> list[list[int]]:
    """Consecutive documents (in `order`) fill a row until the next one does not fit."""
    rows: list[list[int]] = [[]]
    used = 0
    for i in order.tolist():
        if used + int(lengths[i]) > capacity and rows[-1]:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += int(lengths[i])
    return rows if rows[-1] else rows[:-1]


class PackedLoader:
    def __init__(
        self,
        shards: Shards,
        split: str,
        seq_len: int,
        batch_size: int,
        seed: int,
        doc_mask: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tokens = shards.tokens(split)
        index = shards.index(split)
        self.starts = np.ascontiguousarray(index["start"])
        self.lengths = np.ascontiguousarray(index["length"])
        self.doc_lang = np.ascontiguousarray(index["lang"])
        self.mask = shards.mask(split)
        self.whole_docs = self.mask is not None
        self.pad_id = int(shards.meta["pad_id"]) if self.whole_docs else 0
        # the SFT loader's fingerprint before the loaders were one, so SFT checkpoints keep resuming
        self.fingerprint = _fingerprint(shards.meta, split, *(["sft"] if self.whole_docs else []))
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.doc_mask, self.rank, self.world_size = doc_mask, rank, world_size
        self.n_windows = (len(self.tokens) - 1) // seq_len
        self.epoch, self.cursor = 0, 0
        self._order = self._epoch_order()
        if len(self._order) < batch_size * world_size:
            raise CheckpointError(
                f"sft {split} split packs into {len(self._order)} rows of {seq_len + 1} tokens, fewer than "
                f"batch_size={batch_size}; add data or lower the batch"
                if self.whole_docs
                else f"{split} split has {len(self.tokens):,} tokens: fewer than one global batch of "
                f"{batch_size}×{world_size} windows of {seq_len}+1; lower train.batch_size or seq_len"
            )

    def _epoch_order(self) -> np.ndarray | list[list[int]]:
        """This epoch's rows: window numbers, or lists of whole documents."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.whole_docs:
            return pack(self.lengths, rng.permutation(len(self.lengths)), self.seq_len + 1)
        return rng.permutation(self.n_windows)

    def __iter__(self) -> PackedLoader:
        return self

    def __next__(self) -> Batch:
        global_batch = self.batch_size * self.world_size
        if self.cursor + global_batch > len(self._order):  # drop the ragged tail, start a new epoch
            self.epoch, self.cursor = self.epoch + 1, 0
            self._order = self._epoch_order()
        mine = self._order[self.cursor + self.rank : self.cursor + global_batch : self.world_size]
        self.cursor += global_batch
        if self.whole_docs:
            return self.collate(list(mine))
        return self._windows([int(w) * self.seq_len for w in np.asarray(mine)])

    def _windows(self, begins: list[int]) -> Batch:
        T = self.seq_len
        windows = np.stack([self.tokens[b : b + T + 1].astype(np.int64) for b in begins])  # (B, T+1)
        layouts = [doc_layout(self.starts, b, b + T) for b in begins]
        target_docs = [
            np.searchsorted(self.starts, np.arange(b + 1, b + T + 1), side="right") - 1 for b in begins
        ]
        langs = torch.from_numpy(np.stack([self.doc_lang[d] for d in target_docs]).astype(np.int64))
        doc_ids = positions = None
        if self.doc_mask:
            doc_ids = torch.from_numpy(np.stack([d for d, _ in layouts]))
            positions = torch.from_numpy(np.stack([p for _, p in layouts]))
        w = torch.from_numpy(windows)
        return Batch(w[:, :-1], w[:, 1:], doc_ids, positions, langs)

    def collate(self, rows: list[list[int]]) -> Batch:
        """Rows of whole documents (lists of document numbers), padded; the padding is a document of its own
        and never a target (loss-masked shards only)."""
        assert self.mask is not None, "whole-document rows need loss-masked shards"
        T = self.seq_len + 1
        tokens = np.full((len(rows), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=bool)
        docs, pos, langs = (np.zeros((len(rows), T), dtype=np.int64) for _ in range(3))
        for r, row in enumerate(rows):
            at = 0
            for d, i in enumerate(row):
                n, s = int(self.lengths[i]), int(self.starts[i])
                tokens[r, at : at + n] = self.tokens[s : s + n]
                mask[r, at : at + n] = self.mask[s : s + n]
                docs[r, at : at + n], pos[r, at : at + n], langs[r, at : at + n] = (
                    d,
                    np.arange(n),
                    self.doc_lang[i],
                )
                at += n
            docs[r, at:], pos[r, at:] = len(row), np.arange(T - at)
        t = torch.from_numpy
        return Batch(
            t(tokens[:, :-1]),
            t(tokens[:, 1:]),
            t(docs[:, :-1]),
            t(pos[:, :-1]),
            t(langs[:, 1:]),
            t(mask[:, 1:]),
        )

    def state_dict(self) -> dict[str, Any]:
        """The position in the global sample order: it does not depend on how many ranks share a batch, so a
        run can resume on another number of GPUs with the same global batch."""
        return {
            "epoch": self.epoch,
            "cursor": self.cursor,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "seq_len": self.seq_len,
            "global_batch": self.batch_size * self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        if "global_batch" not in state and "batch_size" in state:  # SFT checkpoints from before 2026-12-04
            state = {**state, "global_batch": state["batch_size"]}
        for key in ("fingerprint", "seed", "seq_len", "global_batch"):
            if state.get(key) != mine[key]:
                hint = (
                    f"; set train.batch_size so that batch_size × {self.world_size} ranks = {state.get(key)}"
                    if key == "global_batch"
                    else "; resume with the same shards and batch layout"
                )
                raise CheckpointError(
                    f"data loader: checkpoint has {key}={state.get(key)!r} but this run has "
                    f"{mine[key]!r}{hint}"
                )
        self.epoch, self.cursor = state["epoch"], state["cursor"]
        self._order = self._epoch_order()
