"""Learning-rate schedules as a multiplier of the peak lr, one pure function of the step."""

from __future__ import annotations

import math

WSD_DECAY_FRACTION = 0.2
"""Warmup-stable-decay spends its last 20% of steps decaying (MiniCPM, DeepSeek practice)."""


def lr_multiplier(step: int, total: int, warmup: int, kind: str, min_ratio: float) -> float:
    """Multiplier for `step` (0-based) of `total`: linear warmup, then the named decay down to min_ratio."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "wsd":
        decay_start = max(warmup, int(total * (1 - WSD_DECAY_FRACTION)))
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1, total - 1 - decay_start)
    else:
        progress = (step - warmup) / max(1, total - 1 - warmup)
    progress = min(1.0, progress)
    if kind == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1 - (1 - min_ratio) * progress  # linear, and wsd's decay phase
