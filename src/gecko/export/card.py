"""The model card (README.md of the export), written from what the run recorded: data mix, tokenizer,
model shape, training budget, evaluation table and licence. A missing record becomes "not recorded",
never an invented number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gecko.config import GeckoConfig
from gecko.model.llama import Llama

NOT_RECORDED = "not recorded"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def model_card(cfg: GeckoConfig, model: Llama, step: int, title: str = "GECKO", extra: str = "") -> str:
    run = cfg.run_path
    front = (
        f"---\nlicense: {cfg.export.license}\nlanguage: [ko, en]\nlibrary_name: transformers\n"
        "pipeline_tag: text-generation\ntags: [gecko, llama, korean, code]\n---\n"
    )
    parts = [
        front,
        f"# {title}\n\nA LLaMA-architecture model built with GECKO from `{cfg.run_dir}` "
        f"(step {step}). Load it with `AutoModelForCausalLM.from_pretrained(folder)`; chat with "
        "`tokenizer.apply_chat_template`.\n",
        _model_section(model),
        _data_section(cfg, run),
        _tokenizer_section(run),
        _train_section(cfg),
        _eval_section(run),
        extra,
        _licence_section(cfg),
    ]
    return "\n".join(p for p in parts if p)


def _model_section(model: Llama) -> str:
    c = model.cfg
    return (
        f"## Model\n\n| parameters | layers | width | heads (q/kv) | ffn | context | vocab | tied |\n"
        f"|---:|---:|---:|---:|---:|---:|---:|---|\n| {model.num_params(non_embedding=False):,} | "
        f"{c.n_layers} | {c.dim} | {c.n_heads}/{c.n_kv_heads} | {c.ffn_dim} | {c.max_seq_len} | "
        f"{c.vocab_size:,} | {c.tie_embeddings} |\n"
    )


def _data_section(cfg: GeckoConfig, run: Path) -> str:
    """Target shares are in tokens (the mix's unit), so the achieved side is the shards' token counts; the
    ko↔en alignment documents count as Korean."""
    meta = _read(run / "shards" / "meta.json") or {}
    got = {lang: v["tokens"] for lang, v in meta.get("splits", {}).get("train", {}).get("langs", {}).items()}
    total = sum(got.values())
    rows = "".join(
        f"| {lang} | {share:.0%} | "
        + (f"{got[lang]:,} ({got[lang] / max(total, 1):.1%})" if lang in got else NOT_RECORDED)
        + " |\n"
        for lang, share in cfg.data.mix.items()
    )
    sources = ", ".join(f"`{s.name}` ({s.lang})" for s in cfg.data.sources) or NOT_RECORDED
    return (
        "## Training data\n\n| language | target share (tokens) | training tokens (share) |\n"
        f"|---|---:|---:|\n{rows}\nSources: {sources}. Origins and licences of the bundled sample are in "
        "`data/sample/ATTRIBUTION.md`.\n"
    )


def _tokenizer_section(run: Path) -> str:
    meta = _read(run / "tokenizer" / "train_meta.json")
    if meta is None:
        return f"## Tokenizer\n\n{NOT_RECORDED}\n"
    used = meta.get("bytes_used", {})
    return (
        f"## Tokenizer\n\nByte-level BPE with Qwen2's pre-tokenizer (every digit alone; any text round-trips, "
        f"no unknown token): {meta['vocab_size']:,} tokens, trained on {sum(used.values()):,} bytes "
        f"({', '.join(f'{k} {v:,}' for k, v in used.items())}). Chat turns use the reserved tokens "
        "`<|system|>`, `<|user|>`, `<|assistant|>`, `<|end|>` (template in tokenizer_config.json).\n"
    )


def _train_section(cfg: GeckoConfig) -> str:
    t = cfg.train
    tokens = t.steps * t.batch_size * t.grad_accum * t.seq_len
    return (
        f"## Training\n\nAdamW (β {t.beta1}/{t.beta2}, weight decay {t.weight_decay}), {t.schedule} "
        f"schedule, peak lr {t.lr}, {t.steps} steps of {t.batch_size}×{t.grad_accum} packed sequences of "
        f"{t.seq_len} tokens ({tokens:,} tokens), document masking {'on' if t.doc_mask else 'off'}.\n"
    )


def _eval_section(run: Path) -> str:
    results = _read(run / "eval" / "results.json")
    if results is None:
        return f"## Evaluation\n\n{NOT_RECORDED} (run `gecko eval`)\n"
    first = results.get("val_bpb_step0", {})
    rows = "".join(
        f"| {lang} | " + (f"{first[lang]:.3f}" if lang in first else "–") + f" | {v:.3f} |\n"
        for lang, v in results["val_bpb"].items()
    )
    return (
        f"## Evaluation\n\nValidation bits per byte (lower is better):\n\n| language | step 0 | step "
        f"{results['step']} |\n|---|---:|---:|\n{rows}"
    )


def _licence_section(cfg: GeckoConfig) -> str:
    return (
        f"## Licence\n\nWeights and code: {cfg.export.license}. The training text keeps its own licences "
        "(CC BY-SA, PSF, public domain and others; see `data/sample/ATTRIBUTION.md` and "
        "`docs/release.md`). This is a small research model: it makes things up and has had no safety "
        "tuning.\n"
    )
