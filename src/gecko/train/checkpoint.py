"""Atomic checkpoints: everything a bitwise-exact resume needs, in `step-000123/`.

Files are written into `step-000123.tmp/`, fsynced, and the folder is renamed: a crash mid-write leaves a
`.tmp` folder that is ignored (and cleaned), never a half checkpoint that looks complete.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gecko.errors import CheckpointError
from gecko.model.llama import Llama, LlamaConfig

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    for file in path.iterdir():
        with file.open("rb") as f:
            os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root: Path, step: int, weights: dict[str, torch.Tensor], train_state: dict[str, Any],
                    meta: dict[str, Any], keep: int) -> Path:
    """Write `root/step-{step}`: full (unsharded) `weights` as safetensors, and `train_state` (optimizer,
    loader, RNG, counters). Called by one process; under FSDP the trainer gathers the state first."""
    final = root / f"step-{step:06d}"
    tmp = root / f"step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, tmp / "model.safetensors")
    torch.save(train_state, tmp / "train_state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    for stale in root.glob("step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def read_weights(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The checkpoint's full weights, after checking every key and (global) shape against `model`."""
    file = path / "model.safetensors"
    if not file.exists():
        raise CheckpointError(f"{path}: no model.safetensors; not a GECKO checkpoint")
    state = load_file(file)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{file}: keys differ from the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{file}: {key} has shape {tuple(value.shape)}, model expects "
                                  f"{tuple(expected[key].shape)}")
    return state


def load_train_state(path: Path) -> dict[str, Any]:
    file = path / "train_state.pt"
    if not file.exists():
        raise CheckpointError(f"{path}: no train_state.pt; cannot resume from it")
    return torch.load(file, map_location="cpu", weights_only=False)


def load_final_model(train_dir: Path) -> tuple[Llama, dict[str, Any]]:
    """The newest checkpoint of a training run as a CPU model, with its meta (step, config, shape)."""
    found = list_checkpoints(train_dir / "checkpoints")
    if not found:
        raise CheckpointError(f"{train_dir}/checkpoints: no checkpoint; run `gecko train` first")
    meta = json.loads((found[-1] / "meta.json").read_text())
    model = Llama(LlamaConfig(**meta["model"]))
    model.load_state_dict(read_weights(found[-1], model))
    return model, meta
