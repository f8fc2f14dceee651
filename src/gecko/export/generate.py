"""KV-cached sampling: one forward over the prompt fills the cache, then one token per step.

A batch of prompts is left-padded; the padding is its own document (doc id 0), so the document mask
hides it from the real tokens, and each prompt's positions start at 0 at its first real token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gecko.config import GenerateConfig
from gecko.errors import ConfigError
from gecko.model.llama import KVCache, Llama

_PAD_DOC, _TEXT_DOC = 0, 1


def generate(
    model: Llama,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """New tokens after prompt_ids (not the prompt), ending with eos_id if it was sampled.
    temperature 0 is greedy; top_k None or 0 keeps every token. Deterministic given the generator."""
    rows = generate_batch(model, [prompt_ids], max_new_tokens, temperature, top_k, top_p, eos_id, generator)
    return rows[0]


@torch.inference_mode()
def generate_batch(
    model: Llama,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """`generate` for several prompts at once; stops when every row has sampled eos_id."""
    _check_args(model, prompts, max_new_tokens, temperature, top_p)
    device = model.tok_embeddings.weight.device
    tokens, positions, doc_ids = _left_pad(prompts, device)  # (B, P) each
    B, P = tokens.shape
    cache = KVCache(model.cfg, B, P + max_new_tokens, device, dtype=model.tok_embeddings.weight.dtype)
    logits = model(tokens, positions, doc_ids, cache)[:, -1]  # (B, V)
    position = positions[:, -1:] + 1  # (B, 1)
    text_doc = torch.full((B, 1), _TEXT_DOC, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    new: list[Tensor] = []
    for step in range(max_new_tokens):
        token = sample_next(logits, temperature, top_k, top_p, generator)  # (B,)
        new.append(token)
        if eos_id is not None:
            finished |= token == eos_id
        if step + 1 == max_new_tokens or bool(finished.all()):
            break
        logits = model(token[:, None], position, text_doc, cache)[:, -1]  # (B, V)
        position = position + 1
    rows = torch.stack(new, dim=1).tolist() if new else [[] for _ in prompts]
    return [_cut_after_eos(row, eos_id) for row in rows]


def sample_next(
    logits: Tensor, temperature: float, top_k: int | None, top_p: float, generator: torch.Generator | None
) -> Tensor:
    """logits (B, V) → token ids (B,)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        logits = _top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches top_p (never empty)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # the top token has 0 before it, so it always stays
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _left_pad(prompts: list[list[int]], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Tokens, positions and doc ids (B, P), each prompt right-aligned so all rows decode in step."""
    P = max(len(p) for p in prompts)
    tokens = torch.zeros(len(prompts), P, dtype=torch.long)
    positions = torch.zeros(len(prompts), P, dtype=torch.long)
    doc_ids = torch.full((len(prompts), P), _PAD_DOC, dtype=torch.long)
    for i, prompt in enumerate(prompts):
        n = len(prompt)
        tokens[i, P - n:] = torch.tensor(prompt)
        positions[i, P - n:] = torch.arange(n)
        doc_ids[i, P - n:] = _TEXT_DOC
    return tokens.to(device), positions.to(device), doc_ids.to(device)


def _cut_after_eos(row: list[int], eos_id: int | None) -> list[int]:
    return row[: row.index(eos_id) + 1] if eos_id is not None and eos_id in row else row


def _check_args(model: Llama, prompts: list[list[int]], max_new_tokens: int, temperature: float,
                top_p: float) -> None:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ConfigError("generate: every prompt needs at least one token (start it with <s>)")
    longest = max(len(p) for p in prompts)
    checks = [
        (max_new_tokens >= 0, f"generate: max_new_tokens={max_new_tokens} must be ≥ 0"),
        (temperature >= 0, f"generate: temperature={temperature} must be ≥ 0"),
        (0 < top_p <= 1, f"generate: top_p={top_p} must be in (0, 1]"),
        (longest + max_new_tokens <= model.cfg.max_seq_len,
         f"generate: prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
         f"max_seq_len ({model.cfg.max_seq_len})"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def run_generate(cfg: GenerateConfig, export_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The generate stage: sample each configured prompt from the *exported* folder, which proves the
    release loads; write samples.jsonl and print them."""
    from rich.console import Console

    from gecko.export.hf import load_hf
    from gecko.tokenizer.train import load_tokenizer

    model, _ = load_hf(export_dir)
    tokenizer = load_tokenizer(export_dir)
    eos_id = tokenizer.token_to_id("</s>")
    generator = torch.Generator().manual_seed(cfg.seed)
    console = Console()
    samples = []
    for prompt in cfg.prompts:
        new = generate(model, tokenizer.encode(prompt).ids, cfg.max_new_tokens, cfg.temperature, cfg.top_k,
                       cfg.top_p, eos_id, generator)
        completion = tokenizer.decode(new)  # special tokens (</s>) are skipped
        samples.append({"prompt": prompt, "completion": completion, "new_tokens": len(new)})
        console.print(f"[bold]{prompt}[/bold]{completion}\n")
    (out_dir / "samples.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    return {"samples": len(samples)}
