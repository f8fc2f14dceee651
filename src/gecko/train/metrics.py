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
from typing import Any, TextIO

import torch

from gecko import tracking
from gecko.io.atomic import open_atomic

log = logging.getLogger(__name__)


class MetricsLog:
    """metrics.jsonl, which later stages read, and the current stage's trackers (`logging.sinks`). Only one
    process of a distributed run writes: `enabled=False` on the others makes every call a no-op, so the
    trainer needs no rank checks."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled
        self._file: TextIO | None = None
        self.tracker = tracking.current()

    def start(self, step: int) -> None:
        """Open the log for a run that continues after `step` (0: a fresh start). Records of later steps,
        written before a crash by the steps that will now run again, are cut, so every step has one line;
        at step 0 everything goes (the step-0 evaluation runs again too)."""
        if not self.enabled:
            return
        kept = [r for r in _readable_records(self.path) if step > 0 and r.get("step", 0) <= step]
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


VALIDATION = (
    ("val_bpb", "bits per byte", "Validation bits per byte"),
    ("val_loss", "loss per assistant token (nats)", "Validation loss (SFT)"),
)
"""The validation metric a run logs, with its axis label and panel title: pretraining and SFT differ."""


def loss_figure(records: list[dict[str, Any]]) -> Any:
    """The training loss and, beside it, the validation metric the run logged, per language; a run that
    logged none gets one panel, never an empty one."""
    from matplotlib.figure import Figure

    train = [r for r in records if "loss" in r]
    shown = [(key, label, title) for key, label, title in VALIDATION if any(key in r for r in records)]
    fig = Figure(figsize=(5 + 5 * len(shown), 4))
    axes = fig.subplots(1, 1 + len(shown), squeeze=False)[0]
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train])
    axes[0].set(xlabel="step", ylabel="train loss (nats/token)", title="Training loss")
    for ax, (key, label, title) in zip(axes[1:], shown):
        evals = [r for r in records if key in r]
        for lang in sorted({k for r in evals for k in r[key]}):
            ax.plot([r["step"] for r in evals], [r[key].get(lang) for r in evals], marker="o", label=lang)
        ax.set(xlabel="step", ylabel=label, title=title)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_loss(records: list[dict[str, Any]], out: Path) -> None:
    """loss.png: `loss_figure` of the run's metrics."""
    loss_figure(records).savefig(out, dpi=100)
