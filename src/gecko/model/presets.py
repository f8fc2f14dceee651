"""Named model shapes, tiny … gecko-7b, and the one function that turns `cfg.model` into a `LlamaConfig`.

Every preset carries the default 32k vocabulary; `build_llama_config` replaces it with the trained
tokenizer's size. Parameter counts below are totals for that 32k vocabulary, untied embeddings.
"""

from __future__ import annotations

import dataclasses

from gecko.config import ModelConfig
from gecko.errors import ConfigError
from gecko.model.llama import LlamaConfig

_VOCAB = 32000  # TokenizerConfig.vocab_size default; replaced by the real tokenizer's size

PRESETS: dict[str, LlamaConfig] = {
    # CPU demo: 9.0M params, of which 0.8M in the blocks (the rest is the two 32k vocab tables)
    "tiny": LlamaConfig(_VOCAB, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=384, max_seq_len=512),
    # 52M params, 19M in the blocks: still trainable on CPU
    "small": LlamaConfig(
        _VOCAB, dim=512, n_layers=6, n_heads=8, n_kv_heads=4, ffn_dim=1536, max_seq_len=1024
    ),
    # GPT-3 Small depth and width: 134M params
    "125m": LlamaConfig(
        _VOCAB, dim=768, n_layers=12, n_heads=12, n_kv_heads=12, ffn_dim=2048, max_seq_len=2048
    ),
    # GPT-3 Medium depth and width, with GQA: 349M params
    "350m": LlamaConfig(
        _VOCAB, dim=1024, n_layers=24, n_heads=16, n_kv_heads=8, ffn_dim=2816, max_seq_len=2048
    ),
    # TinyLlama's width and GQA at 16 layers: 0.89B params
    "1b": LlamaConfig(
        _VOCAB, dim=2048, n_layers=16, n_heads=16, n_kv_heads=8, ffn_dim=5632, max_seq_len=4096
    ),
    # LLaMA-2-7B shape: 6.74B params
    "gecko-7b": LlamaConfig(
        _VOCAB, dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, ffn_dim=11008, max_seq_len=8192
    ),
}

OVERRIDES = (
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "ffn_dim",
    "max_seq_len",
    "rope_theta",
    "tie_embeddings",
)
"""LlamaConfig fields a config may set over its preset (model.dim, …)."""


def build_llama_config(model_cfg: ModelConfig, vocab_size: int) -> LlamaConfig:
    """The preset named by model.preset, with the tokenizer's vocab_size and every non-None override."""
    if model_cfg.preset not in PRESETS:
        raise ConfigError(
            f"model.preset={model_cfg.preset!r} is not a known preset (known: {', '.join(PRESETS)})"
        )
    overrides = {k: getattr(model_cfg, k) for k in OVERRIDES if getattr(model_cfg, k) is not None}
    return dataclasses.replace(PRESETS[model_cfg.preset], vocab_size=vocab_size, **overrides)
