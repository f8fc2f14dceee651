"""Grow a model's vocabulary for an extended tokenizer: old rows kept, new rows the mean of their old pieces.

A new token's row starts as the average of the rows of the base tokens that spelled it before (input and
output embeddings alike), so at step 0 the model already "reads" a new token roughly as the pieces it
replaces, instead of as noise; the output row gets the same mean, so a new token starts with about the
average logit of its pieces, and every old token's logit is unchanged. (Hewitt 2021,
"Initializing new word embeddings"; the mean-of-subwords variant used by Chinese-LLaMA and EEVE.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from gecko.errors import CheckpointError
from gecko.model.llama import Llama


@torch.no_grad()
def mean_rows(weight: torch.Tensor, vocab_size: int, pieces: Mapping[int, Sequence[int]]) -> torch.Tensor:
    """A (vocab_size, dim) table: `weight`'s rows at their ids, each new id the mean of its pieces' rows."""
    old = weight.shape[0]
    out = weight.new_zeros(vocab_size, weight.shape[1])
    out[: min(old, vocab_size)] = weight[:vocab_size]
    for new_id, ids in pieces.items():
        if not ids or max(ids) >= old or min(ids) < 0:
            raise CheckpointError(f"new token id {new_id}: pieces {list(ids)} must be non-empty ids < {old}")
        out[new_id] = weight[list(ids)].mean(dim=0)
    return out


def resize_vocab(model: Llama, vocab_size: int, pieces: Mapping[int, Sequence[int]]) -> torch.Tensor:
    """Resize `model` in place to `vocab_size` rows; returns the bool mask (vocab_size,) of new rows.

    `pieces` maps each new id to the base ids of its old tokenization. New ids may also fill rows a padded
    embedding already had (they are re-initialized); rows neither old nor listed start as the mean of all
    old rows. Tied models keep one table.
    """
    old = model.cfg.vocab_size
    bad = sorted(i for i in pieces if not 0 <= i < vocab_size)
    if bad:
        raise CheckpointError(f"new token id {bad[0]} is outside the resized vocabulary (0…{vocab_size - 1})")
    filled = dict(pieces)
    filled.update({i: list(range(old)) for i in range(old, vocab_size) if i not in filled})
    new_rows = torch.zeros(vocab_size, dtype=torch.bool)
    new_rows[list(filled)] = True
    emb = model.tok_embeddings.weight
    model.tok_embeddings = nn.Embedding(vocab_size, emb.shape[1], device=emb.device, dtype=emb.dtype)
    model.tok_embeddings.weight.data.copy_(mean_rows(emb, vocab_size, filled))
    if model.output is not None:
        out = model.output.weight
        model.output = nn.Linear(out.shape[1], vocab_size, bias=False, device=out.device, dtype=out.dtype)
        model.output.weight.data.copy_(mean_rows(out, vocab_size, filled))
    model.cfg = dataclasses.replace(model.cfg, vocab_size=vocab_size)
    return new_rows
