"""Packed, resumable batches from the token shards.

The shard is one stream of `<s> doc </s>` runs. A sample is a window of `seq_len + 1` tokens; windows are
visited in a seeded permutation per epoch, and each data-parallel rank takes every `world_size`-th
sample. With document masking each token also carries its window-local document number and its position
inside that document, so attention never crosses a boundary and RoPE positions restart per document.

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
    """What the trainer needs from a loader: PackedLoader (pretraining) and SFTLoader (conversations)."""

    fingerprint: str

    def __next__(self) -> Batch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _fingerprint(meta: dict[str, Any], split: str) -> str:
    """Identifies the shards a loader position belongs to (tokenizer, counts, split)."""
    blob = json.dumps([meta, split], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
        self.doc_lang = np.ascontiguousarray(index["lang"])
        self.fingerprint = _fingerprint(shards.meta, split)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.doc_mask, self.rank, self.world_size = doc_mask, rank, world_size
        self.n_windows = (len(self.tokens) - 1) // seq_len
        if self.n_windows < batch_size * world_size:
            raise CheckpointError(
                f"{split} split has {len(self.tokens):,} tokens: fewer than one global batch of "
                f"{batch_size}×{world_size} windows of {seq_len}+1; lower train.batch_size or seq_len"
            )
        self.epoch, self.cursor = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n_windows)

    def __iter__(self) -> PackedLoader:
        return self

    def __next__(self) -> Batch:
        global_batch = self.batch_size * self.world_size
        if self.cursor + global_batch > self.n_windows:  # drop the ragged tail, start a new epoch
            self.epoch, self.cursor = self.epoch + 1, 0
            self._order = self._permutation()
        mine = self._order[self.cursor + self.rank : self.cursor + global_batch : self.world_size]
        self.cursor += global_batch
        return self._collate([int(w) * self.seq_len for w in mine])

    def _collate(self, begins: list[int]) -> Batch:
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
        self._order = self._permutation()
