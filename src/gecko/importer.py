"""`gecko import MODEL CONFIG`: continue pretraining from an open model (a Hugging Face LLaMA folder or a GGUF).

The model's weights become checkpoint step-000000 of RUN/train, with a fresh optimizer and the loader at the
start of the shards; `gecko train` (or `gecko run`) then resumes from it like from any checkpoint. The run's
model shape must match the model's, and its shards must be made with the model's tokenizer, or with an
extension of it (`gecko tokenizer extend`): then the embeddings grow to the extended vocabulary here, each
new row the mean of the rows of the base tokens that spelled it (gecko.model.vocab).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from gecko.config import GeckoConfig
from gecko.errors import CheckpointError
from gecko.io.atomic import write_text
from gecko.model.hf import gguf_to_hf, load_hf
from gecko.model.llama import LlamaConfig
from gecko.model.presets import OVERRIDES
from gecko.model.vocab import resize_vocab
from gecko.shards import Shards
from gecko.tokens import EXTENSION_FILE, TOKENIZER_FILE, file_sha256, load_new_tokens

_CONFIG_KEY = {name: f"model.{name}" for name in OVERRIDES}
"""The config key that sets each LlamaConfig field a preset lets a config override."""


def shape_mismatch(run: LlamaConfig, hf: LlamaConfig) -> list[str]:
    """`key=value` overrides that would make the run's model shape equal the folder's (init_std aside)."""
    diffs = []
    for field in dataclasses.fields(LlamaConfig):
        ours, theirs = getattr(run, field.name), getattr(hf, field.name)
        if isinstance(ours, float) and isinstance(theirs, float) and math.isclose(ours, theirs, rel_tol=1e-6):
            continue  # a GGUF stores norm_eps as float32: 1e-5 reads back as 9.9999997e-06
        if field.name != "init_std" and ours != theirs:
            diffs.append(f"{_CONFIG_KEY.get(field.name, field.name)}={theirs} (run has {ours})")
    return diffs


def import_model(cfg: GeckoConfig, source: Path) -> Path:
    """Write the model at `source` (HF folder or .gguf) as RUN/train/checkpoints/step-000000; return that folder."""
    source = Path(source)
    if source.suffix != ".gguf":
        return import_hf(cfg, source)
    from gecko.stages import stage_dir

    run_dir = stage_dir(cfg, "train").parent
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=run_dir) as tmp:
        return import_hf(cfg, gguf_to_hf(source, Path(tmp)), imported_from=source)


def import_hf(cfg: GeckoConfig, hf_dir: Path, imported_from: Path | None = None) -> Path:
    """Write the folder's weights as RUN/train/checkpoints/step-000000 and return that folder."""
    from gecko.stages import BY_NAME, STARTED, stage_dir, started_marker
    from gecko.train.checkpoint import list_checkpoints
    from gecko.train.trainer import build_trainer

    hf_dir = Path(hf_dir)
    train_dir, shards_dir = stage_dir(cfg, "train"), stage_dir(cfg, "tokenize")
    if list_checkpoints(train_dir / "checkpoints"):
        raise CheckpointError(f"{train_dir}/checkpoints already holds a run; remove it to import {hf_dir}")
    shards = Shards(shards_dir)
    new_pieces = new_token_pieces(hf_dir, shards, stage_dir(cfg, "tokenizer"))
    model, hf_cfg = load_hf(hf_dir)
    if new_pieces is not None:
        resize_vocab(model, shards.meta["vocab_size"], new_pieces)
        hf_cfg = model.cfg
    trainer = build_trainer(cfg, shards_dir, train_dir)
    diffs = shape_mismatch(trainer.model_cfg, hf_cfg)
    if diffs:
        raise CheckpointError(
            f"{imported_from or hf_dir}: model shape differs from the run's; set " + ", ".join(diffs)
        )
    trainer.model.load_state_dict(model.state_dict())
    # `gecko train` keeps (resumes) a folder whose start marker carries this config's fingerprint
    marker = {**started_marker(cfg, BY_NAME["train"]), "imported_from": str(imported_from or hf_dir)}
    if new_pieces is not None:
        marker["new_rows"] = len(new_pieces)
    write_text(train_dir / STARTED, json.dumps(marker) + "\n")
    return trainer.save()


def new_token_pieces(hf_dir: Path, shards: Shards, tokenizer_dir: Path) -> dict[int, Sequence[int]] | None:
    """None when the shards were made with the folder's own tokenizer; {new id: base ids} when they were made
    with an extension of it (RUN/tokenizer/extension.json, every base id unchanged); otherwise an error."""
    path = hf_dir / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; it must be the tokenizer the shards were made with")
    if file_sha256(path) == shards.meta["tokenizer_sha256"]:
        return None
    run_tokenizer = tokenizer_dir / TOKENIZER_FILE
    extended = (tokenizer_dir / EXTENSION_FILE).is_file() and run_tokenizer.is_file()
    if not extended or file_sha256(run_tokenizer) != shards.meta["tokenizer_sha256"]:
        raise CheckpointError(
            f"{path} is not the tokenizer of {shards.path} (sha256 differs) and {tokenizer_dir} holds no "
            "extension of it; tokenize the corpus with the model's tokenizer or `gecko tokenizer extend` it first"
        )
    base_size, new = load_new_tokens(tokenizer_dir)
    if _vocab(path, base_size) != _vocab(run_tokenizer, base_size):
        raise CheckpointError(
            f"{run_tokenizer} extends another tokenizer than {path}: their first {base_size} ids differ"
        )
    return {t.id: t.pieces for t in new}


def _vocab(path: Path, size: int) -> dict[str, int]:
    """Token → id for ids below `size` (special tokens included)."""
    return {
        t: i for t, i in Tokenizer.from_file(str(path)).get_vocab(with_added_tokens=True).items() if i < size
    }
