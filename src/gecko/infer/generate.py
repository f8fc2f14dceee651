"""KV-cached sampling: one forward over the prompt fills the cache, then one token per step.

A batch of prompts is left-padded; the padding is its own document (doc id 0), so the document mask
hides it from the real tokens, and each prompt's positions start at 0 at its first real token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gecko.config import GenerateConfig
from gecko.errors import ConfigError
from gecko.io.atomic import write_text
from gecko.model.llama import KVCache, Llama

_PAD_DOC, _TEXT_DOC = 0, 1


@dataclass(frozen=True)
class Sampling:
    """How each next token is chosen; one value travels from the config (or a caller) to `sample_next`.
    temperature 0 is greedy; top_k None or 0 keeps every token; repetition_penalty 1 is off."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    @classmethod
    def of(cls, cfg: GenerateConfig) -> Sampling:
        """The generate section's sampling (used by `gecko generate` and `gecko chat`)."""
        return cls(cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty)


GREEDY = Sampling(temperature=0.0)


def generate(
    model: Llama,
    prompt_ids: list[int],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """New tokens after prompt_ids (not the prompt), ending with eos_id if it was sampled.
    Deterministic given the generator."""
    return generate_batch(model, [prompt_ids], max_new_tokens, sampling, eos_id, generator)[0]


def generate_batch(
    model: Llama,
    prompts: list[list[int]],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    stop: Callable[[list[int]], bool] | None = None,
) -> list[list[int]]:
    """`generate` for several prompts at once. A row is finished when it samples eos_id or when
    stop(row's new ids) is true (stop strings); decoding ends when every row is finished."""
    new: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    steps = decode_steps(model, prompts, max_new_tokens, sampling, generator)
    for tokens in steps:
        for i, token in enumerate(tokens.tolist()):
            if finished[i]:
                continue
            new[i].append(token)
            finished[i] = token == eos_id or (stop is not None and stop(new[i]))
        if all(finished):
            steps.close()
    return new


def stream_tokens(
    model: Llama,
    prompt_ids: list[int],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """One prompt's new tokens, one at a time as they are sampled; the caller stops by breaking out."""
    for tokens in decode_steps(model, [prompt_ids], max_new_tokens, sampling, generator):
        yield int(tokens[0])


@torch.inference_mode()
def decode_steps(
    model: Llama,
    prompts: list[list[int]],
    max_new_tokens: int,
    sampling: Sampling,
    generator: torch.Generator | None,
) -> Generator[Tensor, None, None]:
    """Yield the (B,) sampled tokens of each step: one forward over the prompts fills the KV cache, then
    one forward per token. The next forward runs only when the caller asks for the next step."""
    _check_args(model, prompts, max_new_tokens, sampling)
    device = model.tok_embeddings.weight.device
    tokens, positions, doc_ids = _left_pad(prompts, device)  # (B, P) each
    B, P = tokens.shape
    seen = None
    if sampling.repetition_penalty != 1.0:  # (B, V): tokens of each row's prompt (not its padding) and output
        seen = torch.zeros(B, model.cfg.vocab_size, dtype=torch.bool, device=device)
        seen.scatter_(1, tokens, doc_ids == _TEXT_DOC)
    cache = KVCache(model.cfg, B, P + max_new_tokens, device, dtype=model.tok_embeddings.weight.dtype)
    logits = model(tokens, positions, doc_ids, cache)[:, -1]  # (B, V)
    position = positions[:, -1:] + 1  # (B, 1)
    text_doc = torch.full((B, 1), _TEXT_DOC, device=device)
    for step in range(max_new_tokens):
        if seen is not None:
            logits = apply_repetition_penalty(logits, seen, sampling.repetition_penalty)
        token = sample_next(logits, sampling, generator)  # (B,)
        if seen is not None:
            seen[torch.arange(B, device=device), token] = True
        yield token
        if step + 1 == max_new_tokens:
            return
        logits = model(token[:, None], position, text_doc, cache)[:, -1]  # (B, V)
        position = position + 1


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL (Keskar et al., 2019) as transformers applies it: a seen token's logit is divided by the
    penalty when positive and multiplied when negative, so it always becomes less likely."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def sample_next(logits: Tensor, sampling: Sampling, generator: torch.Generator | None) -> Tensor:
    """logits (B, V) → token ids (B,) (the repetition penalty is applied before, with the seen tokens)."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    top_k = sampling.top_k
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        logits = _top_p_filter(logits, sampling.top_p)
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
        tokens[i, P - n :] = torch.tensor(prompt)
        positions[i, P - n :] = torch.arange(n)
        doc_ids[i, P - n :] = _TEXT_DOC
    return tokens.to(device), positions.to(device), doc_ids.to(device)


def _check_args(model: Llama, prompts: list[list[int]], max_new_tokens: int, sampling: Sampling) -> None:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ConfigError("generate: every prompt needs at least one token (start it with <s>)")
    longest = max(len(p) for p in prompts)
    checks = [
        (max_new_tokens >= 0, f"generate: max_new_tokens={max_new_tokens} must be ≥ 0"),
        (sampling.temperature >= 0, f"generate: temperature={sampling.temperature} must be ≥ 0"),
        (0 < sampling.top_p <= 1, f"generate: top_p={sampling.top_p} must be in (0, 1]"),
        (
            sampling.repetition_penalty > 0,
            f"generate: repetition_penalty={sampling.repetition_penalty} must be > 0",
        ),
        (
            longest + max_new_tokens <= model.cfg.max_seq_len,
            f"generate: prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
            f"max_seq_len ({model.cfg.max_seq_len})",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def run_generate(cfg: GenerateConfig, export_dir: Path, out_dir: Path | None) -> dict[str, Any]:
    """The generate stage: sample each configured prompt from the *exported* folder, which proves the
    release loads; print them (token by token with `stream`) and write out_dir/samples.jsonl (`gecko generate
    --model DIR` without --out writes nothing)."""
    from tokenizers import Tokenizer

    from gecko.model.hf import load_hf
    from gecko.terminal import styled, text_console
    from gecko.tokens import for_continuations

    model, _ = load_hf(export_dir)
    tokenizer = for_continuations(
        Tokenizer.from_file(str(export_dir / "tokenizer.json"))
    )  # decodes completions
    eos_id = tokenizer.token_to_id("</s>")
    generator = torch.Generator().manual_seed(cfg.seed)
    sampling = Sampling.of(cfg)
    prompts = read_prompts(cfg)
    console = text_console()
    samples = []
    step = 1 if cfg.stream else cfg.batch_size
    for i in range(0, len(prompts), step):
        batch = prompts[i : i + step]
        ids = [tokenizer.encode(p).ids for p in batch]  # the post-processor adds <s>
        if cfg.stream:
            console.print(styled(batch[0], "bold"), end="")
            rows = [_stream_one(model, tokenizer, ids[0], cfg, sampling, eos_id, generator)]
            print("\n")
        else:
            rows = generate_batch(
                model,
                ids,
                cfg.max_new_tokens,
                sampling,
                eos_id,
                generator,
                stop=_stop_check(tokenizer, cfg.stop),
            )
        for prompt, row in zip(batch, rows):
            completion = cut_at_stop(tokenizer.decode(row), cfg.stop)  # special tokens (</s>) are skipped
            samples.append({"prompt": prompt, "completion": completion, "new_tokens": len(row)})
            if not cfg.stream:
                console.print(styled(prompt, "bold"), completion, sep="", end="\n\n")
    if out_dir is not None:
        write_text(
            out_dir / "samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        )
    return {"samples": len(samples)}


def read_prompts(cfg: GenerateConfig) -> list[str]:
    """The prompts file's non-blank lines (`\\n` in a line stands for a newline), else cfg.prompts."""
    if cfg.prompts_file is None:
        prompts = list(cfg.prompts)
    else:
        try:
            lines = Path(cfg.prompts_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"generate.prompts_file={cfg.prompts_file}: cannot read: {e}") from None
        prompts = [line.replace("\\n", "\n") for line in lines if line.strip()]
    if not prompts:
        raise ConfigError(f"generate: no prompts (prompts_file={cfg.prompts_file})")
    return prompts


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """text up to the earliest stop string."""
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text


def _stop_check(tokenizer: Any, stops: tuple[str, ...]) -> Callable[[list[int]], bool] | None:
    if not stops:
        return None
    return lambda ids: any(s in tokenizer.decode(ids) for s in stops if s)


def _stream_one(
    model: Llama,
    tokenizer: Any,
    ids: list[int],
    cfg: GenerateConfig,
    sampling: Sampling,
    eos_id: int | None,
    generator: torch.Generator,
) -> list[int]:
    """Print one completion as it is sampled; stop at </s> or a stop string (which is not printed)."""
    import sys

    row: list[int] = []
    shown = ""
    for token in stream_tokens(model, ids, cfg.max_new_tokens, sampling, generator):
        row.append(token)
        if token == eos_id:
            break
        full = tokenizer.decode(row)
        if full.endswith("\ufffd"):
            continue
        visible = cut_at_stop(full, cfg.stop)
        # hold back a tail that may still grow into a stop string
        hold = max((len(s) - 1 for s in cfg.stop), default=0) if visible == full else 0
        safe = visible[: len(visible) - hold]
        if len(safe) > len(shown):
            sys.stdout.write(safe[len(shown) :])
            sys.stdout.flush()
            shown = safe
        if visible != full:
            break
    final = cut_at_stop(tokenizer.decode(row), cfg.stop)
    sys.stdout.write(final[len(shown) :])
    return row
