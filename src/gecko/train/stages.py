"""Staged training (continued pretraining): consecutive stages with their own steps, peak lr and warmup,
and what they train.

The usual recipe after a vocabulary extension: first train only the new embedding rows (the body and the
old rows frozen, so the model's existing knowledge cannot be damaged while the new rows are still noise-like
means), then everything at a low lr with English/code replay in the data mix. The schedule is a pure
function of the global step, so a resumed run lands in the same stage at the same lr.

Freezing: parameters outside a stage's set get `requires_grad=False` (AdamW skips parameters without a
gradient: no update, no weight decay). In `new_embeddings`, the old rows' gradients are zeroed after
backward and weight decay is off, so with zero Adam moments (a first stage) the old rows stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gecko.config import TrainStageConfig
from gecko.errors import ConfigError
from gecko.model.llama import Llama
from gecko.train.schedule import lr_multiplier

EMBEDDING_PREFIXES = ("tok_embeddings.", "output.")


def stage_at(stages: Sequence[TrainStageConfig], step: int) -> tuple[int, int]:
    """(stage index, step within that stage) of global `step`; the last stage continues past its end."""
    start = 0
    for i, stage in enumerate(stages):
        if step < start + stage.steps or i == len(stages) - 1:
            return i, step - start
        start += stage.steps
    raise ValueError("no stages")


def stage_lr(stages: Sequence[TrainStageConfig], step: int, schedule: str, min_lr_ratio: float) -> float:
    """The stage's own warmup and decay (train.schedule) over its own steps, to its own peak lr."""
    i, local = stage_at(stages, step)
    s = stages[i]
    return s.lr * lr_multiplier(local, s.steps, s.warmup_steps, schedule, min_lr_ratio)


def set_trainable(model: nn.Module, trainable: str) -> None:
    """requires_grad per parameter for a stage's `trainable` (all | embeddings | new_embeddings)."""
    for name, p in model.named_parameters():
        p.requires_grad_(trainable == "all" or name.startswith(EMBEDDING_PREFIXES))


@torch.no_grad()
def zero_old_row_grads(model: nn.Module, new_rows: torch.Tensor) -> None:
    """Keep only the gradient of the new vocabulary rows (input and output embeddings)."""
    for name, p in model.named_parameters():
        if name.startswith(EMBEDDING_PREFIXES) and p.grad is not None:
            p.grad[~new_rows.to(p.grad.device)] = 0


def enter_stage(
    model: Llama,
    optimizer: torch.optim.Optimizer,
    stage: TrainStageConfig,
    new_rows: torch.Tensor | None,
    weight_decay: float,
) -> None:
    """Freeze what `stage` does not train; no weight decay while only new rows train (decay would move the
    frozen old rows of a decayed output matrix)."""
    if stage.trainable == "new_embeddings" and new_rows is None:
        raise ConfigError(
            f"train.stages ({stage.name}): trainable=new_embeddings needs the run's tokenizer to "
            "be an extension (tokenizer/extension.json from `gecko tokenizer extend`)"
        )
    set_trainable(model, stage.trainable)
    # the optimizer was built from model.param_groups(weight_decay), group for group
    for group, planned in zip(optimizer.param_groups, model.param_groups(weight_decay), strict=True):
        group["weight_decay"] = 0.0 if stage.trainable == "new_embeddings" else planned["weight_decay"]


def new_row_mask(vocab_size: int, base_vocab_size: int) -> torch.Tensor:
    """Rows of tokens appended by an extension: every id at or past the base tokenizer's size."""
    return torch.arange(vocab_size) >= base_vocab_size
