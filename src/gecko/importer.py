"""`gecko import HF_DIR CONFIG`: continue pretraining from a Hugging Face LLaMA folder.

The folder's weights become checkpoint step-000000 of RUN/train, with a fresh optimizer and the loader at
the start of the shards; `gecko train` (or `gecko run`) then resumes from it like from any checkpoint.
The run's model shape and shards must match the folder: its vocabulary is the shards' tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from gecko.config import GeckoConfig
from gecko.errors import CheckpointError
from gecko.io.atomic import write_text
from gecko.model.hf import load_hf
from gecko.model.llama import LlamaConfig
from gecko.shards import Shards
from gecko.tokens import file_sha256

_CONFIG_KEY = {
    name: f"model.{name}"
    for name in (
        "dim",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "ffn_dim",
        "max_seq_len",
        "rope_theta",
        "tie_embeddings",
    )
}


def shape_mismatch(run: LlamaConfig, hf: LlamaConfig) -> list[str]:
    """`key=value` overrides that would make the run's model shape equal the folder's (init_std aside)."""
    diffs = []
    for field in dataclasses.fields(LlamaConfig):
        ours, theirs = getattr(run, field.name), getattr(hf, field.name)
        if field.name != "init_std" and ours != theirs:
            diffs.append(f"{_CONFIG_KEY.get(field.name, field.name)}={theirs} (run has {ours})")
    return diffs


def import_hf(cfg: GeckoConfig, hf_dir: Path) -> Path:
    """Write the folder's weights as RUN/train/checkpoints/step-000000 and return that folder."""
    from gecko.stages import BY_NAME, STARTED, stage_dir, started_marker
    from gecko.train.checkpoint import list_checkpoints
    from gecko.train.trainer import build_trainer

    hf_dir = Path(hf_dir)
    train_dir, shards_dir = stage_dir(cfg, "train"), stage_dir(cfg, "tokenize")
    if list_checkpoints(train_dir / "checkpoints"):
        raise CheckpointError(f"{train_dir}/checkpoints already holds a run; remove it to import {hf_dir}")
    _check_tokenizer(hf_dir, Shards(shards_dir))
    model, hf_cfg = load_hf(hf_dir)
    trainer = build_trainer(cfg, shards_dir, train_dir)
    diffs = shape_mismatch(trainer.model_cfg, hf_cfg)
    if diffs:
        raise CheckpointError(f"{hf_dir}: model shape differs from the run's; set " + ", ".join(diffs))
    trainer.model.load_state_dict(model.state_dict())
    # `gecko train` keeps (resumes) a folder whose start marker carries this config's fingerprint
    marker = {**started_marker(cfg, BY_NAME["train"]), "imported_from": str(hf_dir)}
    write_text(train_dir / STARTED, json.dumps(marker) + "\n")
    return trainer.save()


def _check_tokenizer(hf_dir: Path, shards: Shards) -> None:
    path = hf_dir / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; it must be the tokenizer the shards were made with")
    if file_sha256(path) != shards.meta["tokenizer_sha256"]:
        raise CheckpointError(
            f"{path} is not the tokenizer of {shards.path} (sha256 differs); tokenize the "
            "corpus with the folder's tokenizer first"
        )
