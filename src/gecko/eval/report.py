"""The eval stage: score the final checkpoint and write results.json plus a markdown table.

The table sets the final validation bits-per-byte beside the step-0 value the trainer recorded, so a run
shows at a glance whether (and how much) the model learned each language.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gecko.config import GeckoConfig
from gecko.eval.bpb import evaluate_bpb
from gecko.tokenizer.shards import Shards
from gecko.train.checkpoint import load_final_model
from gecko.train.metrics import read_metrics
from gecko.train.trainer import pick_device


def run_eval(cfg: GeckoConfig, train_dir: Path, shards_dir: Path, out_dir: Path) -> dict[str, Any]:
    device = pick_device(cfg.train.device)
    model, meta = load_final_model(train_dir)
    model.to(device)
    shards = Shards(shards_dir)
    final = evaluate_bpb(model, shards, "val", cfg.train.seq_len, cfg.eval.batch_size,
                         cfg.eval.max_tokens_per_lang, device)
    evals = [r for r in read_metrics(train_dir / "metrics.jsonl") if "val_bpb" in r]
    initial = evals[0]["val_bpb"] if evals and evals[0]["step"] == 0 else {}
    results = {"step": meta["step"], "val_bpb": final, "val_bpb_step0": initial}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown_table(results))
    print_table(results)
    return results


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for lang, last in results["val_bpb"].items():
        first = results["val_bpb_step0"].get(lang)
        rows.append((lang, f"{first:.3f}" if first is not None else "–", f"{last:.3f}",
                     f"{last - first:+.3f}" if first is not None else "–"))
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    head = f"| lang | step 0 | step {results['step']} | change |\n|---|---:|---:|---:|\n"
    return "# Validation bits per byte\n\n" + head + "".join(f"| {' | '.join(r)} |\n" for r in _rows(results))


def print_table(results: dict[str, Any]) -> None:
    table = Table(title="Validation bits per byte (lower is better)")
    for col in ("lang", "step 0", f"step {results['step']}", "change"):
        table.add_column(col, justify="left" if col == "lang" else "right")
    for row in _rows(results):
        table.add_row(*row)
    Console().print(table)
