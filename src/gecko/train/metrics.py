"""Training metrics: one JSON line per logged step (machine-readable), optional TensorBoard scalars, a
loss-curve PNG at the end, and the MFU denominator (the card's measured bf16 matmul rate).

MFU = flops_per_token · tokens/s per device ÷ peak, with flops_per_token = 6·N_non-embedding +
12·layers·dim·seq (`Llama.flops_per_token`: forward + backward through every matmul weight, plus the
attention scores and weighted sums counted in full) and peak = `measure_peak_tflops` on the same card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gecko.errors import ConfigError


class MetricsLog:
    """JSONL (and TensorBoard) sink. Only one process of a distributed run writes: `enabled=False` on the
    others makes every call a no-op, so the trainer needs no rank checks."""

    def __init__(self, path: Path, resume: bool, enabled: bool = True, tensorboard: bool = False) -> None:
        self.path, self.enabled = path, enabled
        self._file = self._tb = None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a" if resume else "w", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard=true needs the tensorboard package: "
                                  "pip install 'gecko[train]'") from None
            self._tb = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in _scalars(record):
                self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        for sink in (self._file, self._tb):
            if sink is not None:
                sink.close()


def _scalars(record: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Flatten {"loss_by_lang": {"ko": 2.1}} into [("loss_by_lang/ko", 2.1)], numbers only."""
    out = []
    for key, value in record.items():
        if isinstance(value, dict):
            out += _scalars(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
            out.append((prefix + key, float(value)))
    return out


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


def _last_per_step(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A resumed run logs the steps after its checkpoint again; the later record wins, so lines don't fold
    back."""
    return sorted({r["step"]: r for r in records}.values(), key=lambda r: r["step"])


def plot_loss(records: list[dict[str, Any]], out: Path) -> None:
    """Training loss and validation bits-per-byte against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = _last_per_step([r for r in records if "loss" in r])
    evals = _last_per_step([r for r in records if "val_bpb" in r])
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
