"""Training metrics: one JSON line per logged step (machine-readable), plus a loss-curve PNG at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, path: Path, resume: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a" if resume else "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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
