"""Parallelism applied from outside the model (torchtitan): activation checkpointing → compile → FSDP2.

The order matters: checkpoint wrappers go inside the compiled region so that recomputation is compiled too,
and `fully_shard` wraps each (compiled) block and then the root so that parameters are gathered one block
at a time. Each `apply_*` takes explicit arguments; `parallelize` is the one place that orders them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from gecko.model.llama import Llama

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

AcMode = Literal["none", "selective", "full"]


_SAVED_OPS = {
    torch.ops.aten.mm.default,
    torch.ops.aten._scaled_dot_product_efficient_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention.default,
}
if hasattr(torch.ops.higher_order, "flex_attention"):
    _SAVED_OPS.add(torch.ops.higher_order.flex_attention)


def _save_matmuls_and_attention(ctx: object, op: object, *args: object, **kwargs: object) -> object:
    """Selective checkpointing policy: keep matmul and attention outputs (costly to recompute), recompute
    the element-wise ops (norms, SiLU, RoPE), whose outputs are as large but nearly free to redo."""
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in _SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _selective_contexts() -> object:
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(_save_matmuls_and_attention)


def apply_ac(model: Llama, mode: AcMode) -> None:
    """Wrap each block in activation checkpointing ("full": keep only the block input; "selective": see
    `_save_matmuls_and_attention`). Parameter names are kept: the wrapper strips its prefix from state dicts."""
    if mode == "none":
        return
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    extra: dict[str, Any] = {"context_fn": _selective_contexts} if mode == "selective" else {}
    for name, block in list(model.layers.items()):
        model.layers[name] = checkpoint_wrapper(block, preserve_rng_state=False, **extra)


def apply_compile(model: Llama) -> None:
    """Compile each block on its own (in place, so parameter names keep no `_orig_mod.` prefix): the
    blocks share one shape, so one compilation serves them all, and FSDP hooks stay between blocks."""
    for block in model.layers.values():
        block.compile(dynamic=False)


def apply_fsdp(
    model: Llama,
    mesh: DeviceMesh,
    param_dtype: torch.dtype,
    reduce_dtype: torch.dtype,
    reshard_after_forward: bool = True,
) -> None:
    """FSDP2: shard every block, then the root (embedding, final norm, head). Parameters are gathered
    in param_dtype (bf16 for speed); gradients are reduced in reduce_dtype (fp32 keeps sums exact)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    blocks = list(model.layers.values())
    for i, block in enumerate(blocks):
        # the last block's parameters are needed again at once by backward: keep them gathered
        fully_shard(
            block,
            mesh=mesh,
            mp_policy=mp,
            reshard_after_forward=reshard_after_forward and i < len(blocks) - 1,
        )
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)


def parallelize(model: Llama, ac: AcMode, compile: bool, mesh: DeviceMesh | None, bf16: bool) -> nn.Module:
    """The one orchestrator: AC → per-block compile → FSDP2 (when a data-parallel mesh is given)."""
    apply_ac(model, ac)
    if compile:
        apply_compile(model)
    if mesh is not None:
        apply_fsdp(
            model, mesh, param_dtype=torch.bfloat16 if bf16 else torch.float32, reduce_dtype=torch.float32
        )
    return model
