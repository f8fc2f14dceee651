"""Training metrics: one JSON line per logged step (machine-readable), the same records to the stage's
experiment trackers (gecko.tracking), a loss-curve PNG at the end, and the MFU denominator (the card's
measured bf16 matmul rate).

MFU = flops_per_token · tokens/s per device ÷ peak, with flops_per_token = 6·N_non-embedding +
12·layers·dim·seq (`Llama.flops_per_token`: forward + backward through every matmul weight, plus the
attention scores and weighted sums counted in full) and peak = `measure_peak_tflops` on the same card.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from gecko import tracking
from gecko.atomic import open_atomic

log = logging.getLogger(__name__)


class MetricsLog:
    """metrics.jsonl, which later stages read, and the current stage's trackers (`logging.sinks`). Only one
    process of a distributed run writes: `enabled=False` on the others makes every call a no-op, so the
    trainer needs no rank checks."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled
        self._file = None
        self.tracker = tracking.current()

    def start(self, step: int) -> None:
        """Open the log for a run that continues after `step` (0: a fresh start). Records of later steps,
        written before a crash by the steps that will now run again, are cut, so every step has one line;
        at step 0 everything goes (the step-0 evaluation runs again too)."""
        if not self.enabled:
            return
        kept = [r for r in _readable_records(self.path) if 0 < step and r.get("step", 0) <= step]
        with open_atomic(self.path) as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
        self._file = self.path.open("a", encoding="utf-8")
        self.tracker.start(step)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        assert self._file is not None, "MetricsLog.start() first"
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        self.tracker.metrics(record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def measure_peak_tflops(device: torch.device) -> float | None:
    """bf16 8192³ matmul rate on random data, median of 20 (under a second on an H100); None off CUDA,
    where MFU is not reported."""
    if device.type != "cuda":
        return None
    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(5):
        a @ b
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * 8192**3 / sorted(times)[len(times) // 2] / 1e12


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _readable_records(path: Path) -> list[dict[str, Any]]:
    """The log's records. A last line cut short by a kill is dropped quietly (appends can do no other
    damage); any other unreadable line is dropped with a warning naming it."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                log.warning("%s:%d: not a JSON record; dropped", path, number)
    return [r for r in records if isinstance(r, dict)]


def plot_loss(records: list[dict[str, Any]], out: Path) -> None:
    """Training loss and validation bits-per-byte against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "val_bpb" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot([r["step"] for r in train], [r["loss"] for r in train])
    ax1.set(xlabel="step", ylabel="train loss (nats/token)", title="Training loss")
    for lang in sorted({k for r in evals for k in r["val_bpb"]}):
        ax2.plot([r["step"] for r in evals], [r["val_bpb"].get(lang) for r in evals], marker="o", label=lang)
    ax2.set(xlabel="step", ylabel="bits per byte", title="Validation bits per byte")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
