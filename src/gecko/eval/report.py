"""The eval stage: score the final checkpoint and write results.json plus a markdown table.

Bits per byte sits beside the step-0 value the trainer recorded, so a run shows at a glance whether (and
how much) the model learned each language. Benchmark scores sit beside their chance level, so a tiny
model's numbers read as what they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gecko.config import GeckoConfig
from gecko.eval.bpb import evaluate_bpb
from gecko.eval.harness import evaluate_tasks
from gecko.eval.lm import GeckoLM
from gecko.tokenizer.shards import Shards
from gecko.tokenizer.train import load_tokenizer
from gecko.train.checkpoint import load_final_model
from gecko.train.metrics import read_metrics
from gecko.train.trainer import pick_device

HEADLINE = {"kmmlu": "acc_macro", "mmlu": "acc_macro", "gsm8k": "exact_match", "humaneval": "pass@1",
            "mbpp": "pass@1"}
"""The metric shown in the table for each task (every metric is in results.json)."""


def run_eval(cfg: GeckoConfig, train_dir: Path, shards_dir: Path, tokenizer_dir: Path, out_dir: Path
             ) -> dict[str, Any]:
    device = pick_device(cfg.train.device)
    model, meta = load_final_model(train_dir)
    model.to(device)
    results: dict[str, Any] = {"step": meta["step"], "val_bpb": {}, "val_bpb_step0": {}, "tasks": {}}
    if "bpb" in cfg.eval.tasks:
        results["val_bpb"] = evaluate_bpb(model, Shards(shards_dir), "val", cfg.train.seq_len,
                                          cfg.eval.batch_size, cfg.eval.max_tokens_per_lang, device)
        evals = [r for r in read_metrics(train_dir / "metrics.jsonl") if "val_bpb" in r]
        results["val_bpb_step0"] = evals[0]["val_bpb"] if evals and evals[0]["step"] == 0 else {}
    lm = GeckoLM(model, load_tokenizer(tokenizer_dir), cfg.eval.batch_size)
    results["tasks"] = evaluate_tasks(lm, cfg.eval, cfg.eval.tasks, out_dir)
    results["truncated_inputs"] = lm.truncated
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "results.md").write_text(markdown_report(results))
    print_tables(results)
    return results


def _bpb_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for lang, last in results["val_bpb"].items():
        first = results["val_bpb_step0"].get(lang)
        rows.append((lang, f"{first:.3f}" if first is not None else "–", f"{last:.3f}",
                     f"{last - first:+.3f}" if first is not None else "–"))
    return rows


def task_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(task, metric, score, chance, majority, items) per task; a skipped task says why. `majority` is the
    score of always giving the most frequent correct letter (multiple choice only): the bar to clear."""
    rows = []
    for task, m in results["tasks"].items():
        if "skipped" in m:
            rows.append((task, "–", "skipped", "–", "–", m["skipped"]))
            continue
        metric = HEADLINE.get(task, "acc_macro")
        shots = f", {m['shots']}-shot" if m.get("shots") else ""
        majority = f"{m['majority']:.3f}" if "majority" in m else "–"
        rows.append((task, metric, f"{m[metric]:.3f}", f"{m['chance']:.3f}", majority, f"{m['n']}{shots}"))
    return rows


def markdown_report(results: dict[str, Any]) -> str:
    parts = []
    if results["val_bpb"]:
        head = f"| lang | step 0 | step {results['step']} | change |\n|---|---:|---:|---:|\n"
        parts.append("# Validation bits per byte\n\n" + head + "".join(f"| {' | '.join(r)} |\n"
                                                                     for r in _bpb_rows(results)))
    if results["tasks"]:
        head = "| task | metric | score | chance | majority | items |\n|---|---|---:|---:|---:|---|\n"
        note = (f"\n{results['truncated_inputs']} inputs were longer than the model's window and were cut on "
                "the left.\n" if results.get("truncated_inputs") else "")
        parts.append(f"# Benchmarks (step {results['step']})\n\n" + head
                     + "".join(f"| {' | '.join(r)} |\n" for r in task_rows(results)) + note)
    return "\n".join(parts)


def print_tables(results: dict[str, Any]) -> None:
    console = Console()
    if results["val_bpb"]:
        table = Table(title="Validation bits per byte (lower is better)")
        for col in ("lang", "step 0", f"step {results['step']}", "change"):
            table.add_column(col, justify="left" if col == "lang" else "right")
        for row in _bpb_rows(results):
            table.add_row(*row)
        console.print(table)
    if results["tasks"]:
        table = Table(title=f"Benchmarks at step {results['step']} (chance level beside each score)")
        for col in ("task", "metric", "score", "chance", "majority", "items"):
            table.add_column(col, justify="right" if col in ("score", "chance", "majority") else "left")
        for row in task_rows(results):
            table.add_row(*row)
        console.print(table)
