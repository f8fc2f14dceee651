"""The eval stage: score the final checkpoint and write results.json plus a markdown table.

Bits per byte sits beside the step-0 value the trainer recorded, so a run shows at a glance whether (and
how much) the model learned each language. Benchmark scores sit beside their chance level, so a tiny
model's numbers read as what they are.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gecko import tracking
from gecko.config import GeckoConfig, expand_tasks
from gecko.eval.harness import eval_task_names, evaluate_tasks, load_task_files
from gecko.eval.lm import GeckoLM
from gecko.infer.bpb import evaluate_bpb
from gecko.io.atomic import write_json, write_text
from gecko.model.device import pick_device
from gecko.model.llama import Llama
from gecko.shards import Shards
from gecko.tokens import load_tokenizer

GENERATION_HEADLINE = {"gsm8k": "exact_match", "humaneval": "pass@1", "mbpp": "pass@1"}
"""The metric shown for each generation task (every metric is in results.json)."""
COLUMNS = ("task", "formulation", "metric", "score", "95% CI", "chance", "majority", "n", "shots")


def run_eval(
    cfg: GeckoConfig,
    model: Llama,
    step: int,
    val_bpb_step0: dict[str, float],
    shards_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """Score the trained model (the pipeline loads it and the step-0 bits per byte the trainer logged, so
    eval reads no training file itself)."""
    device = pick_device(cfg.train.device)
    model.to(device)
    results: dict[str, Any] = {"step": step, "val_bpb": {}, "val_bpb_step0": {}, "tasks": {}}
    if "bpb" in expand_tasks(cfg.eval.tasks, cfg.eval.suite):
        results["val_bpb"] = evaluate_bpb(
            model,
            Shards(shards_dir),
            "val",
            cfg.train.seq_len,
            cfg.eval.batch_size,
            cfg.eval.max_tokens_per_lang,
            device,
        )
        results["val_bpb_step0"] = val_bpb_step0
    # required=(): an imported model's own tokenizer (continued pretraining) is scored as it is
    lm = GeckoLM(model, load_tokenizer(tokenizer_dir, required=()), cfg.eval.batch_size)
    tasks = eval_task_names(cfg.eval, load_task_files(cfg.eval))
    results["tasks"] = evaluate_tasks(lm, cfg.eval, tasks, out_dir)
    results["truncated_inputs"] = lm.truncated
    write_json(out_dir / "results.json", results)
    write_text(out_dir / "results.md", markdown_report(results))
    log_tables(results)
    print_tables(results)
    return results


def _bpb_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for lang, last in results["val_bpb"].items():
        first = results["val_bpb_step0"].get(lang)
        rows.append(
            (
                lang,
                f"{first:.3f}" if first is not None else "–",
                f"{last:.3f}",
                f"{last - first:+.3f}" if first is not None else "–",
            )
        )
    return rows


def _headline_metrics(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(formulation, metric key) rows of a task: MC accuracy and the cloze accuracies (per character first,
    OLMES's headline), macro over subjects before micro where a task has subjects."""
    rows = []
    for form in m.get("formulations", []):
        metrics = (
            ["acc"]
            if form == "mc" or "cloze_acc_per_char" not in m
            else ["acc_per_char", "acc_per_token", "acc"]
        )
        for metric in metrics:
            key = f"{form}_{metric}"
            rows += [(form, f"{key}_macro")] if f"{key}_macro" in m else []
            rows.append((form, key))
    return rows


def task_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per task and headline metric, each with its 95% interval, chance level, majority baseline
    (always giving the most frequent correct choice: the bar to clear), items scored and shots."""
    rows: list[tuple[str, ...]] = []
    for task, m in results["tasks"].items():
        if "skipped" in m:
            rows.append((task, "–", "–", "skipped", "–", "–", "–", "–", m["skipped"]))
            continue
        chance = f"{m['chance']:.3f}" if "chance" in m else "–"
        majority = f"{m['majority']:.3f}" if "majority" in m else "–"
        shots = str(m.get("shots", 0))
        keys = _headline_metrics(m) or [("generate", GENERATION_HEADLINE.get(task, "exact_match"))]
        for form, key in keys:
            ci = m.get(f"{key}_ci")
            rows.append(
                (
                    task,
                    form,
                    key.removeprefix(f"{form}_"),
                    f"{m[key]:.3f}",
                    f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "–",
                    chance,
                    majority,
                    str(m["n"]),
                    shots,
                )
            )
    return rows


def markdown_report(results: dict[str, Any]) -> str:
    parts = []
    if results["val_bpb"]:
        head = f"| lang | step 0 | step {results['step']} | change |\n|---|---:|---:|---:|\n"
        parts.append(
            "# Validation bits per byte\n\n"
            + head
            + "".join(f"| {' | '.join(r)} |\n" for r in _bpb_rows(results))
        )
    if results["tasks"]:
        head = "| " + " | ".join(COLUMNS) + " |\n|---|---|---|---:|---|---:|---:|---:|---:|\n"
        note = (
            f"\n{results['truncated_inputs']} inputs were longer than the model's window and were cut on "
            "the left.\n"
            if results.get("truncated_inputs")
            else ""
        )
        parts.append(
            f"# Benchmarks (step {results['step']})\n\n"
            + head
            + "".join(f"| {' | '.join(r)} |\n" for r in task_rows(results))
            + note
        )
    return "\n".join(parts)


def log_tables(results: dict[str, Any]) -> None:
    """The two tables of the report, to the stage's experiment trackers."""
    tracker = tracking.current()
    if results["val_bpb"]:
        tracker.table(
            "eval/bpb",
            ["lang", "step 0", f"step {results['step']}", "change"],
            [list(r) for r in _bpb_rows(results)],
        )
    if results["tasks"]:
        tracker.table("eval/benchmarks", list(COLUMNS), [list(r) for r in task_rows(results)])


def print_tables(results: dict[str, Any]) -> None:
    """Both tables to stdout; off a terminal (CI logs, nohup, Slurm) at full width instead of rich's 80
    columns, which cut task names and intervals to `…`."""
    console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 200)
    if results["val_bpb"]:
        table = Table(title="Validation bits per byte (lower is better)")
        for col in ("lang", "step 0", f"step {results['step']}", "change"):
            table.add_column(col, justify="left" if col == "lang" else "right")
        for row in _bpb_rows(results):
            table.add_row(*row)
        console.print(table)
    if results["tasks"]:
        table = Table(title=f"Benchmarks at step {results['step']} (chance level beside each score)")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col in ("task", "formulation", "metric") else "right")
        for cells in task_rows(results):
            table.add_row(*cells)
        console.print(table)
