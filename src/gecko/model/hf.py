"""GECKO ⇄ Hugging Face `LlamaForCausalLM`, through one key table.

GECKO's RoPE already uses the Hugging Face convention (rotate halves), so weights map one to one, with
no q/k permutation. Both directions check every key and shape before anything is written or loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from gecko.errors import CheckpointError, DataError
from gecko.io.atomic import share_modes
from gecko.model.llama import Llama, LlamaConfig
from gecko.tokens import CHAT, document_boundary_tokens, gguf_tokenizer_json

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# GECKO name → Hugging Face name; {i} is the layer number.
KEY_TABLE: list[tuple[str, str]] = [
    ("tok_embeddings.weight", "model.embed_tokens.weight"),
    ("layers.{i}.attention_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("layers.{i}.attention.wq.weight", "model.layers.{i}.self_attn.q_proj.weight"),
    ("layers.{i}.attention.wk.weight", "model.layers.{i}.self_attn.k_proj.weight"),
    ("layers.{i}.attention.wv.weight", "model.layers.{i}.self_attn.v_proj.weight"),
    ("layers.{i}.attention.wo.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    ("layers.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("layers.{i}.feed_forward.w1.weight", "model.layers.{i}.mlp.gate_proj.weight"),
    ("layers.{i}.feed_forward.w3.weight", "model.layers.{i}.mlp.up_proj.weight"),
    ("layers.{i}.feed_forward.w2.weight", "model.layers.{i}.mlp.down_proj.weight"),
    ("norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
]


def _translate(name: str, src: int, dst: int) -> str | None:
    """Map a key through KEY_TABLE from column src to column dst; None if no row matches."""
    for row in KEY_TABLE:
        pattern = "^" + re.escape(row[src]).replace(r"\{i\}", r"(\d+)") + "$"
        match = re.match(pattern, name)
        if match:
            return row[dst].replace("{i}", match.group(1)) if match.groups() else row[dst]
    return None


def to_hf_state_dict(model: Llama, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """GECKO state dict renamed to Hugging Face keys and cast; every key must map."""
    out = {}
    for name, tensor in model.state_dict().items():
        hf_name = _translate(name, 0, 1)
        if hf_name is None:
            raise CheckpointError(f"export: model key {name!r} has no Hugging Face name in KEY_TABLE")
        out[hf_name] = tensor.detach().to("cpu", dtype).contiguous()
    return out


def hf_config(cfg: LlamaConfig, special_ids: dict[str, int | None], dtype: str) -> dict[str, Any]:
    """config.json for LlamaForCausalLM; rope_theta/rope_scaling at top level are read by transformers 4
    and 5 alike (5 folds them into rope_parameters)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": cfg.rope_scaling,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "bos_token_id": special_ids[BOS],
        "eos_token_id": special_ids[EOS],
        "pad_token_id": special_ids[PAD],
        "torch_dtype": dtype,
    }


def _special_ids(tokenizer_path: Path, vocab_size: int) -> tuple[dict[str, int | None], tuple[str, str]]:
    """Ids of the document boundaries (GECKO's <s> and </s>, or a base model's own, e.g. SmolLM2's
    <|endoftext|>: tokens.document_boundary_tokens), <pad> and the chat tokens (optional), and the boundary
    tokens themselves; every tokenizer id must fit the embedding."""
    try:
        tok = Tokenizer.from_file(str(tokenizer_path))
    except Exception as e:  # tokenizers raises a bare Exception for missing or malformed files
        raise DataError(f"{tokenizer_path}: cannot load tokenizer: {e}") from None
    boundaries = document_boundary_tokens(tok, tokenizer_path)
    ids = {t: tok.token_to_id(t) for t in (PAD, *CHAT)}
    ids[BOS], ids[EOS] = (tok.token_to_id(t) for t in boundaries)
    if tok.get_vocab_size() > vocab_size:
        raise DataError(
            f"{tokenizer_path}: tokenizer has {tok.get_vocab_size()} tokens but the model's vocab_size is "
            f"{vocab_size}; was the model trained with another tokenizer?"
        )
    return ids, boundaries


def export_hf(
    model: Llama,
    tokenizer_dir: Path,
    out_dir: Path,
    dtype: str = "float32",
    max_shard_bytes: int = 2 << 30,
    card: str | None = None,
) -> Path:
    """Write a Hugging Face Llama folder (config, weights, tokenizer with chat template, generation config,
    model card) to out_dir, replacing it atomically. Weights over max_shard_bytes are sharded."""
    if dtype not in DTYPES:
        raise CheckpointError(f"export: dtype={dtype!r} must be one of {', '.join(DTYPES)}")
    cfg = model.cfg
    tokenizer_path = Path(tokenizer_dir) / "tokenizer.json"
    ids, boundaries = _special_ids(tokenizer_path, cfg.vocab_size)
    tensors = to_hf_state_dict(model, DTYPES[dtype])
    _check_hf_tensors(tensors, cfg, "export")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_weights(tensors, tmp, max_shard_bytes)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
        if (
            tokenizer_path.parent / "tokenizer.model"
        ).is_file():  # SentencePiece kind: llama.cpp's converter reads it
            shutil.copyfile(tokenizer_path.parent / "tokenizer.model", tmp / "tokenizer.model")
        _write_json(tmp / "config.json", hf_config(cfg, ids, dtype))
        _write_json(tmp / "tokenizer_config.json", _tokenizer_config(cfg, ids, boundaries))
        _write_json(tmp / "generation_config.json", _generation_config(ids))
        share_modes(tmp)
        _fsync_dir_files(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def save_weights(tensors: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int) -> None:
    """model.safetensors, or model-0000i-of-0000n.safetensors + model.safetensors.index.json (the
    transformers layout) when the weights exceed max_shard_bytes; tensors are never split."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    if len(shards) == 1:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    _write_json(folder / "model.safetensors.index.json", index)


def _tokenizer_config(
    cfg: LlamaConfig, ids: dict[str, int | None], boundaries: tuple[str, str]
) -> dict[str, Any]:
    from gecko.tokens import CHAT_TEMPLATE

    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": boundaries[0],
        "eos_token": boundaries[1],
        "pad_token": PAD if ids[PAD] is not None else None,
        "model_max_length": cfg.max_seq_len,
        "clean_up_tokenization_spaces": False,
    } | ({"chat_template": CHAT_TEMPLATE} if all(ids[t] is not None for t in CHAT) else {})


def _generation_config(ids: dict[str, int | None]) -> dict[str, Any]:
    """A chat reply ends with <|end|>, so generation stops there as well as at </s>."""
    end = ids.get(CHAT[-1])
    eos = ids[EOS] if end is None else [ids[EOS], end]
    return {"bos_token_id": ids[BOS], "eos_token_id": eos, "pad_token_id": ids[PAD]}


def gguf_to_hf(gguf: Path, out_dir: Path) -> Path:
    """A Hugging Face LLaMA folder (config.json, model.safetensors, tokenizer.json) from a GGUF file, its
    weights dequantized to float32 by transformers (`gguf_file=`): open models are often shipped only as GGUF,
    and `gecko import` / `gecko tokenizer extend` then read them like any folder."""
    gguf = Path(gguf)
    tokenizer_json = gguf_tokenizer_json(gguf)  # checks the file and the packages first
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar line per update off a terminal; gecko import says when it is done
    try:
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # gguf/transformers raise many kinds on a bad or unsupported file
        raise CheckpointError(f"{gguf}: cannot read this GGUF ({type(e).__name__}: {e})") from None
    if hf.config.model_type != "llama":
        raise CheckpointError(f"{gguf}: a {hf.config.model_type} model; GECKO imports the LLaMA architecture")
    out_dir.mkdir(parents=True, exist_ok=True)
    # tied embeddings share storage, which safetensors refuses: each tensor is written as its own copy
    tensors = {k: v.detach().clone().contiguous() for k, v in hf.state_dict().items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    hf.config.to_json_file(out_dir / "config.json")
    (out_dir / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    return out_dir


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fsync_dir_files(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename tmp to out_dir; an existing out_dir is moved aside first and removed only afterwards."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old)


# ----------------------------------------------------------------------------------------------------
# Import


def load_hf(folder: Path) -> tuple[Llama, LlamaConfig]:
    """Load any LLaMA-format Hugging Face folder (config.json + safetensors, sharded or not) as a float32
    GECKO Llama on the CPU."""
    folder = Path(folder)
    cfg = llama_config_from_hf(_read_json(folder / "config.json"), folder / "config.json")
    tensors = _read_safetensors(folder)
    _check_hf_tensors(tensors, cfg, str(folder))
    state = {}
    for hf_name, tensor in tensors.items():
        name = _translate(hf_name, 1, 0)
        if name is None or (name == "output.weight" and cfg.tie_embeddings):
            continue  # old RoPE buffers, or a tied head saved twice: the embedding is the one we keep
        state[name] = tensor.float()
    with torch.device("meta"):
        model = Llama(cfg)
    model.to_empty(device="cpu")
    model.init_weights()  # fills the RoPE tables; every parameter is overwritten below
    model.load_state_dict(state, strict=True)
    return model, cfg


def llama_config_from_hf(hf: dict[str, Any], where: Path) -> LlamaConfig:
    """LlamaConfig from a Hugging Face config.json (transformers 4 or 5 field names)."""
    unsupported = [
        (hf.get("model_type") != "llama", f"model_type={hf.get('model_type')!r}, expected 'llama'"),
        (hf.get("hidden_act", "silu") != "silu", f"hidden_act={hf.get('hidden_act')!r}, expected 'silu'"),
        (
            hf.get("attention_bias", False) or hf.get("mlp_bias", False),
            "attention or MLP biases are not supported",
        ),
        (
            hf.get("head_dim") not in (None, hf["hidden_size"] // hf["num_attention_heads"]),
            f"head_dim={hf.get('head_dim')} differs from hidden_size/num_attention_heads",
        ),
    ]
    for bad, message in unsupported:
        if bad:
            raise CheckpointError(f"{where}: {message}")
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    theta = rope.pop("rope_theta", hf.get("rope_theta", 10000.0))
    kind = rope.get("rope_type", rope.get("type", "default"))
    return LlamaConfig(
        vocab_size=hf["vocab_size"],
        dim=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        ffn_dim=hf["intermediate_size"],
        max_seq_len=hf["max_position_embeddings"],
        rope_theta=float(theta),
        rope_scaling=None if kind == "default" else rope,
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=hf.get("tie_word_embeddings", False),
        init_std=hf.get("initializer_range", 0.02),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read: {e}") from None


def _read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(_read_json(index)["weight_map"].values()))
    elif (folder / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update(load_file(str(folder / file)))
    return tensors


def _expected_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Hugging Face key → shape, from a meta-device model (no memory is allocated)."""
    with torch.device("meta"):
        model = Llama(cfg)
    return {_translate(k, 0, 1): tuple(v.shape) for k, v in model.state_dict().items()}  # type: ignore[misc]


def _check_hf_tensors(tensors: dict[str, torch.Tensor], cfg: LlamaConfig, where: str) -> None:
    """Every expected key present with its shape, nothing unknown (old RoPE buffers and a tied lm_head
    are tolerated)."""
    expected = _expected_shapes(cfg)
    ignorable = {k for k in tensors if k.endswith("rotary_emb.inv_freq")}  # recomputed, not loaded
    if cfg.tie_embeddings:
        ignorable.add("lm_head.weight")
    missing = sorted(expected.keys() - tensors.keys())
    unexpected = sorted(tensors.keys() - expected.keys() - ignorable)
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: weights do not match the config: missing {missing[:5]} ({len(missing)} in all), "
            f"unexpected {unexpected[:5]} ({len(unexpected)} in all)"
        )
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            found = tuple(tensors[key].shape)
            raise CheckpointError(f"{where}: {key} has shape {found}, config expects {shape}")
