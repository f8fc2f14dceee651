"""Bits per byte on held-out documents, per language.

Per-token loss depends on the tokenizer; bits per UTF-8 byte does not, so it compares models with different
tokenizers. Each language's validation documents (whole documents, up to a token budget) are packed into
windows with document masking; the predictions of the text tokens are scored (not of `</s>`, nor of the
next document's `<s>`), and their summed negative log-likelihood is divided by the documents' bytes.
A document longer than a window is scored in window-sized pieces without the earlier context.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from gecko.model.llama import Llama
from gecko.shards import Shards, doc_layout


def _select_docs(index: np.ndarray, lang_id: int, max_tokens: int) -> np.ndarray:
    rows = index[index["lang"] == lang_id]
    if max_tokens > 0:
        keep = np.cumsum(rows["length"]) <= max_tokens
        keep[0] = True  # always score at least one document
        rows = rows[keep]
    return rows


@torch.no_grad()
def evaluate_bpb(
    model: Llama,
    shards: Shards,
    split: str,
    seq_len: int,
    batch_size: int,
    max_tokens: int,
    device: torch.device,
) -> dict[str, float]:
    """{lang: bits per byte} on `split`, plus "all" over every scored byte."""
    was_training = model.training
    model.eval()
    tokens, index = shards.tokens(split), shards.index(split)
    special = torch.tensor([shards.meta["bos_id"], shards.meta["eos_id"]], device=device)
    results, total_nats, total_bytes = {}, 0.0, 0
    for lang_id, lang in enumerate(shards.langs):
        rows = _select_docs(index, lang_id, max_tokens)
        if len(rows) == 0:
            continue
        stream = np.concatenate([tokens[r["start"] : r["start"] + r["length"]] for r in rows]).astype(
            np.int64
        )
        starts = np.concatenate([[0], np.cumsum(rows["length"])[:-1]])
        nats = _stream_nll(model, stream, starts, seq_len, batch_size, special, device)
        n_bytes = int(rows["n_bytes"].sum())
        results[lang] = nats / math.log(2) / n_bytes
        total_nats, total_bytes = total_nats + nats, total_bytes + n_bytes
    if total_bytes:
        results["all"] = total_nats / math.log(2) / total_bytes
    model.train(was_training)
    return results


def _stream_nll(
    model: Llama,
    stream: np.ndarray,
    starts: np.ndarray,
    seq_len: int,
    batch_size: int,
    special: torch.Tensor,
    device: torch.device,
) -> float:
    """Summed NLL (nats) of every non-special target in `stream`, scored window by window."""
    n_targets = len(stream) - 1
    full = [b for b in range(0, n_targets, seq_len) if b + seq_len <= n_targets]
    groups = [(full[i : i + batch_size], seq_len) for i in range(0, len(full), batch_size)]
    tail = len(full) * seq_len
    if tail < n_targets:  # the short last window runs alone
        groups.append(([tail], n_targets - tail))
    total = 0.0
    for begins, T in groups:
        x = torch.from_numpy(np.stack([stream[b : b + T] for b in begins])).to(device)
        y = torch.from_numpy(np.stack([stream[b + 1 : b + T + 1] for b in begins])).to(device)
        layouts = [doc_layout(starts, b, b + T) for b in begins]
        doc_ids = torch.from_numpy(np.stack([d for d, _ in layouts])).to(device)
        positions = torch.from_numpy(np.stack([p for _, p in layouts])).to(device)
        logits = model(x, positions=positions, doc_ids=doc_ids).float()
        nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        scored = ~torch.isin(y.flatten(), special)
        total += float(nll[scored].sum())
    return total
