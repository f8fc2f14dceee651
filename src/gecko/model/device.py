"""The device a config names: `auto` is CUDA when there is one, else CPU (train, eval and SFT share it)."""

from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
