"""`gecko sft`: instruction tuning on conversations, with the pretraining trainer and checkpoints.

conversations (jsonl / csv / tsv) → chat template (from the model's tokenizer_config.json) → token ids and
an assistant mask → shards in the usual format with a loss mask (gecko.shards) → whole conversations packed
into rows with document masking by the pretraining loader (gecko.train.loader) → `Trainer` (loss on
assistant tokens only) → held-out loss → HF export.

Conversations are split by a hash of their first user turn, so a question asked twice (with two answers)
never sits on both sides of the split.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from gecko.config import ChatSourceConfig, GeckoConfig, SFTConfig
from gecko.errors import CheckpointError, DataError
from gecko.infer.chat import Message, check_conversation, read_chat_template, render, tokenize_conversation
from gecko.io.atomic import write_json, write_text
from gecko.io.jsonl import json_records
from gecko.model.llama import Llama
from gecko.shards import (
    INDEX_DTYPE,
    MASKED_FORMAT,
    META_FILE,
    SPLITS,
    Shards,
    token_dtype,
    unit_hash,
    write_shards,
)
from gecko.train.loader import PackedLoader, pack

log = logging.getLogger(__name__)

LANGS = ("ko", "en", "code")


# ----------------------------------------------------------------------------------------------------
# Reading conversations


def read_conversations(src: ChatSourceConfig, system: str | None) -> Iterator[list[Message]]:
    """The conversations of one source; a malformed record raises a DataError naming file:line."""
    path = Path(src.path)
    records = _jsonl(path) if src.format == "jsonl" else _qa_rows(path, src)
    for n, (where, messages) in enumerate(records):
        if src.max_conversations is not None and n >= src.max_conversations:
            return
        if system is not None and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        yield check_conversation(messages, where)


def _jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    for lineno, record in json_records(path):
        if "messages" not in record:
            raise DataError(f"{path}:{lineno}: expected an object with a messages list")
        yield f"{path}:{lineno}", record["messages"]


def _qa_rows(path: Path, src: ChatSourceConfig) -> Iterator[tuple[str, list[Message]]]:
    try:
        f = path.open(encoding="utf-8", newline="")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        reader = csv.DictReader(f, delimiter="\t" if src.format == "tsv" else ",")
        missing = [c for c in (src.question, src.answer) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}:1: no column {missing[0]!r} (header: {reader.fieldnames})")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            question, answer = row[src.question], row[src.answer]
            if not isinstance(question, str) or not isinstance(answer, str):
                raise DataError(f"{where}: row has fewer columns than the header")
            yield (
                where,
                [
                    {"role": "user", "content": src.prompt.format(question=question.strip())},
                    {"role": "assistant", "content": answer.strip()},
                ],
            )


# ----------------------------------------------------------------------------------------------------
# Tokenizing into shards


def split_key(messages: list[Message]) -> str:
    return next((m["content"] for m in messages if m["role"] == "user"), messages[0]["content"])


def prepare_sft_data(
    cfg: SFTConfig, tokenizer: Tokenizer, template: str, bos: str, seq_len: int, out_dir: Path, seed: int
) -> dict[str, Any]:
    """Tokenize every conversation into train/val shards plus assistant masks; a conversation longer
    than seq_len+1 tokens or with an empty reply is counted in stats.json, not trained on."""
    if not cfg.sources:
        raise DataError("sft.sources is empty: list at least one conversation file")
    parts: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, int, int]]]] = {
        s: ([], [], []) for s in SPLITS
    }
    stats: dict[str, Counter[str]] = {}
    for src in cfg.sources:
        counts = stats.setdefault(src.name, Counter())
        for messages in read_conversations(src, cfg.system):
            if any(m["role"] == "assistant" and not m["content"] for m in messages):
                counts["dropped_empty_reply"] += 1
                continue
            ids, mask = tokenize_conversation(tokenizer, messages, template, bos)
            if len(ids) > seq_len + 1:
                counts["dropped_too_long"] += 1
                continue
            split = "val" if unit_hash(seed, split_key(messages)) < cfg.val_fraction else "train"
            counts[f"kept_{split}"] += 1
            tokens, masks, rows = parts[split]
            tokens.append(np.asarray(ids, dtype=np.uint32))
            masks.append(np.asarray(mask, dtype=bool))
            rows.append((len(ids), LANGS.index(src.lang), len(render(messages, template, bos).encode())))
    meta = _write_shards(parts, tokenizer, [s.name for s in cfg.sources], out_dir)
    summary = {
        "sources": {k: dict(v) for k, v in stats.items()},
        "splits": meta["splits"],
        "assistant_tokens": meta["assistant_tokens"],
    }
    write_json(out_dir / "stats.json", summary)
    return summary


def _write_shards(
    parts: dict[str, Any], tokenizer: Tokenizer, sources: list[str], out_dir: Path
) -> dict[str, Any]:
    """The conversations of each split as one token stream, its index and its loss mask (gecko.shards)."""
    dtype = token_dtype(tokenizer.get_vocab_size())
    arrays, splits, assistant = {}, {}, {}
    for split, (tokens, masks, rows) in parts.items():
        if split == "train" and not tokens:
            raise DataError(f"{out_dir}: no training conversations left (see stats.json for the reasons)")
        index = np.zeros(len(rows), dtype=INDEX_DTYPE)
        if rows:
            index["length"], index["lang"], index["n_bytes"] = (np.array(c) for c in zip(*rows))
            index["start"] = np.cumsum(index["length"]) - index["length"]
        flat = np.concatenate(tokens).astype(dtype) if tokens else np.zeros(0, dtype)
        arrays[split] = (flat, index, np.concatenate(masks) if masks else np.zeros(0, bool))
        splits[split] = {"tokens": len(flat), "docs": len(rows)}
        assistant[split] = int(sum(m.sum() for m in masks))
    meta = {
        "format": MASKED_FORMAT,
        "dtype": dtype.name,
        "vocab_size": tokenizer.get_vocab_size(),
        "bos_id": tokenizer.token_to_id("<s>"),
        "eos_id": tokenizer.token_to_id("</s>"),
        "pad_id": tokenizer.token_to_id("<pad>") or 0,
        "tokenizer_sha256": hashlib.sha256(tokenizer.to_str().encode()).hexdigest(),
        "langs": list(LANGS),
        "sources": sources,
        "splits": splits,
        "assistant_tokens": assistant,
    }
    write_shards(out_dir, arrays, meta)
    return meta


# ----------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate_sft(
    model: Llama, shards: Shards, seq_len: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean loss (nats) per assistant token of the held-out conversations, per language and overall."""
    if not shards.meta["splits"]["val"]["docs"]:
        return {}
    loader = PackedLoader(shards, "val", seq_len, 1, 0)
    rows = pack(loader.lengths, np.arange(len(loader.lengths)), seq_len + 1)  # file order: comparable runs
    was_training = model.training
    model.eval()
    total, count = torch.zeros(len(LANGS) + 1), torch.zeros(len(LANGS) + 1)
    for i in range(0, len(rows), batch_size):
        b = loader.collate(rows[i : i + batch_size])
        assert b.doc_ids is not None and b.positions is not None and b.loss_mask is not None, (
            "SFT batches are packed"
        )
        logits = model(b.inputs.to(device), b.positions.to(device), b.doc_ids.to(device))
        loss = F.cross_entropy(logits.flatten(0, 1), b.targets.to(device).flatten(), reduction="none").cpu()
        keep = b.loss_mask.flatten()
        langs = b.langs.flatten()[keep]
        total.index_add_(0, langs, loss[keep])
        count.index_add_(0, langs, torch.ones_like(langs, dtype=torch.float32))
        total[-1] += loss[keep].sum()
        count[-1] += keep.sum()
    model.train(was_training)
    names = [*LANGS, "all"]
    return {names[i]: float(total[i] / count[i]) for i in range(len(names)) if count[i] > 0}


# ----------------------------------------------------------------------------------------------------
# The stage


def run_sft(cfg: GeckoConfig, init_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Fine-tune the Hugging Face model in init_dir on cfg.sft.sources; write out_dir/{data, train,
    hf, eval.json, report.md}. An interrupted run resumes from its last checkpoint."""
    from gecko.export.card import model_card
    from gecko.model.device import pick_device
    from gecko.model.hf import export_hf, load_hf
    from gecko.train.metrics import MetricsLog, read_metrics
    from gecko.train.trainer import Trainer, build_optimizer

    t = cfg.sft.train
    model, model_cfg = load_hf(init_dir)
    if model_cfg.max_seq_len < t.seq_len:
        raise CheckpointError(
            f"{init_dir}: the model's context is {model_cfg.max_seq_len} tokens; "
            f"sft.train.seq_len={t.seq_len} must not exceed it"
        )
    tokenizer = Tokenizer.from_file(str(init_dir / "tokenizer.json"))
    template, bos = read_chat_template(init_dir)
    data_dir = out_dir / "data"
    if not (data_dir / META_FILE).exists():  # the stage folder is wiped when config or inputs change
        prepare_sft_data(cfg.sft, tokenizer, template, bos, t.seq_len, data_dir, cfg.seed)
    shards = Shards(data_dir)
    device = pick_device(t.device)
    model.to(device)
    evaluator = functools.partial(
        evaluate_sft, shards=shards, seq_len=t.seq_len, batch_size=t.batch_size, device=device
    )
    train_cfg = dataclasses.replace(cfg, train=t)
    train_dir = out_dir / "train"
    trainer = Trainer(
        train_cfg,
        train_dir,
        shards,
        device,
        model,
        model_cfg,
        build_optimizer(train_cfg, model, device),
        PackedLoader(shards, "train", t.seq_len, t.batch_size, cfg.seed),
        MetricsLog(train_dir / "metrics.jsonl"),
        evaluator=evaluator,
    )
    trainer.restore()
    trainer.train()  # evaluates at step 0 and at the end
    evals = [r["val_loss"] for r in read_metrics(train_dir / "metrics.jsonl") if "val_loss" in r]
    before, after = evals[0], evals[-1]
    model.cpu()
    samples = _sample_replies(trainer.model, tokenizer, template, bos, shards, cfg.sft)
    results = {
        "step": trainer.step,
        "val_loss_step0": before,
        "val_loss": after,
        "samples": samples,
        "data": json.loads((data_dir / "stats.json").read_text()),
        "init_from": str(init_dir),
    }
    write_json(out_dir / "eval.json", results)
    write_text(out_dir / "report.md", report(results))
    card = model_card(
        cfg, trainer.model, trainer.step, title="GECKO chat (SFT)", extra=_card_section(results, cfg.sft)
    )
    export_hf(trainer.model, init_dir, out_dir / "hf", cfg.export.dtype, cfg.export.max_shard_bytes, card)
    log.info("sft: held-out assistant loss %s → %s; chat with `gecko chat CONFIG`", before, after)
    return {"step": trainer.step, "val_loss": after}


def _sample_replies(
    model: Llama, tokenizer: Tokenizer, template: str, bos: str, shards: Shards, cfg: SFTConfig, n: int = 4
) -> list[dict[str, str]]:
    """Greedy replies to the first held-out conversations' opening turns, for the report."""
    from gecko.infer.chat import chat_reply
    from gecko.infer.generate import GREEDY

    ids = np.asarray(shards.tokens("val"), dtype=np.int64)
    index = shards.index("val")
    samples = []
    for row in index[:n]:
        conv = ids[row["start"] : row["start"] + row["length"]].tolist()
        text = tokenizer.decode(conv, skip_special_tokens=False)
        user = text.split("<|user|>\n", 1)[1].split("<|end|>", 1)[0] if "<|user|>\n" in text else ""
        messages = ([{"role": "system", "content": cfg.system}] if cfg.system else []) + [
            {"role": "user", "content": user}
        ]
        reply = "".join(chat_reply(model, tokenizer, messages, template, bos, 48, GREEDY, torch.Generator()))
        samples.append({"user": user, "reply": reply})
    return samples


def report(results: dict[str, Any]) -> str:
    rows = "".join(
        f"| {k} | {results['val_loss_step0'].get(k, float('nan')):.3f} | {v:.3f} |\n"
        for k, v in results["val_loss"].items()
    )
    data = "".join(
        f"| {name} | {c.get('kept_train', 0)} | {c.get('kept_val', 0)} | "
        f"{c.get('dropped_too_long', 0)} | {c.get('dropped_empty_reply', 0)} |\n"
        for name, c in results["data"]["sources"].items()
    )
    samples = "".join(f"- **user:** {s['user']}\n  **gecko:** {s['reply']}\n" for s in results["samples"])
    return (
        f"# SFT report\n\nStarted from `{results['init_from']}`, {results['step']} steps.\n\n"
        "## Conversations\n\n| source | train | held out | too long | empty reply |\n"
        f"|---|---:|---:|---:|---:|\n{data}\n## Held-out loss per assistant token (nats)\n\n"
        f"| lang | step 0 | step {results['step']} |\n"
        f"|---|---:|---:|\n{rows}\n## Greedy replies to held-out questions\n\n{samples}"
    )


def _card_section(results: dict[str, Any], cfg: SFTConfig) -> str:
    names = ", ".join(f"`{s.name}` ({s.lang})" for s in cfg.sources)
    losses = ", ".join(
        f"{k} {results['val_loss_step0'].get(k, float('nan')):.3f} → {v:.3f}"
        for k, v in results["val_loss"].items()
    )
    return (
        f"## Instruction tuning\n\nFine-tuned for {results['step']} steps on {names}, loss on assistant "
        f"tokens only. Held-out loss per assistant token (nats): {losses}.\n"
    )
