"""Process-group setup for torchrun (any number of GPUs and nodes) and the single-process case.

`torchrun --nnodes N --nproc-per-node G -m gecko train CONFIG` starts one process per GPU; each finds its
rank in the launcher's environment. Without torchrun everything runs in one process with no group.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    device: torch.device
    mesh: DeviceMesh | None
    """1-D data-parallel DeviceMesh named "dp" (FSDP2 shards over it); None in a single process."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Dist:
    """Join the torchrun process group (NCCL on GPUs, gloo on CPU), or describe the single process."""
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if not dist.is_torchelastic_launched():
        return Dist(0, 1, torch.device("cuda" if cuda else "cpu"), None)
    from torch.distributed.device_mesh import init_device_mesh

    local_rank = int(os.environ["LOCAL_RANK"])  # set by torchrun; the GPU this process drives
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),), mesh_dim_names=("dp",))
    if dist.get_rank() != 0:  # one process speaks for the run
        logging.getLogger("gecko").setLevel(logging.WARNING)
    return Dist(dist.get_rank(), dist.get_world_size(), device, mesh)


def barrier(device_name: str) -> None:
    """Wait for every rank (joining the process group first if needed); a no-op without torchrun."""
    if dist.is_torchelastic_launched():
        init_distributed(device_name)
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a small metrics tensor over ranks (a no-op in a single process)."""
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
