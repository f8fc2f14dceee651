"""The Korean-share ladder on one GPU: which early-signal tasks rise above chance, and what the mix changes.

`gecko ablate bench/early_signal.yaml --vary data.mix.ko=0.25,0.35,0.45 --share-tokenizer`, split in two:

    python bench/early_signal.py prepare          # CPU, needs ../shared/data: data, tokenizer and shards of
                                                  # the three variants, the eval sets, packed into
                                                  # .carry/early_signal.tar.xz (carried to the GPU machine)
    python bench/early_signal.py train --out OUT  # GPU: unpack, train each variant (the early suite scored
                                                  # at steps 0, 100, 200, 300), write the comparison to OUT

`train` keeps to a wall-clock budget (--budget-s): each variant runs in its own process with the time left,
and the comparison (ablate.md/json/png) is rewritten after each one, so a cut-short call still returns
what finished. Results: docs/evaluation.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

CONFIG = "bench/early_signal.yaml"
LADDER = ("0.25", "0.35", "0.45")
GRID = {"data.mix.ko": list(LADDER)}
ROOT = Path(".carry/early_signal")
PACK = Path(".carry/early_signal.tar.xz")
ROWS_PER_SUBJECT = 10  # KMMLU and MMLU test rows kept per subject (train.eval_tasks_limit counts per subject)


def _head_csv(src: Path, dst: Path, rows: int, header: bool) -> None:
    """The first `rows` records of a CSV, re-written by the csv module (values unchanged)."""
    with src.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        kept = [next(reader)] if header else []
        kept += [row for _, row in zip(range(rows), reader, strict=False)]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(kept)


def copy_eval_data(src: Path, dst: Path) -> None:
    """The files the suite reads: scored splits and few-shot splits (KMMLU/MMLU test cut per subject)."""
    for task in ("BoolQ", "COPA", "HellaSwag", "SentiNeg", "WiC"):
        for split in ("test", "train"):
            _copy(src / f"kobest/v1.0/{task}/{split}.tsv", dst / f"kobest/{task}/{split}.tsv")
    for level in ("ARC-Easy", "ARC-Challenge"):
        for split in ("Dev", "Train"):
            _copy(src / f"arc/{level}/{level}-{split}.jsonl", dst / f"arc/{level}/{level}-{split}.jsonl")
    for name in ("valid.jsonl", "valid-labels.lst"):
        _copy(src / f"piqa/{name}", dst / f"piqa/{name}")
    for name in ("dev.jsonl", "train_m.jsonl"):
        _copy(src / f"winogrande/{name}", dst / f"winogrande/{name}")
    _copy(src / "lambada_openai/lambada_test.jsonl", dst / "lambada_openai/lambada_test.jsonl")
    for f in sorted((src / "kmmlu/data").glob("*-test.csv")):
        _head_csv(f, dst / "kmmlu" / f.name, ROWS_PER_SUBJECT, header=True)
        _copy(f.with_name(f.name.replace("-test", "-dev")), dst / "kmmlu" / f.name.replace("-test", "-dev"))
    for f in sorted((src / "mmlu/data/test").glob("*_test.csv")):
        _head_csv(f, dst / "mmlu/test" / f.name, ROWS_PER_SUBJECT, header=False)
        dev = src / "mmlu/data/dev" / f.name.replace("_test", "_dev")
        _copy(dev, dst / "mmlu/dev" / dev.name)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def prepare() -> None:
    from gecko.ablate import run_ablation, variants

    grid_variants = variants(CONFIG, GRID, [])
    run_ablation(grid_variants, GRID, ("data", "tokenizer", "tokenize"), share_tokenizer=True)
    copy_eval_data(Path("../shared/data/eval"), ROOT / "eval")
    with tarfile.open(PACK, "w:xz") as tar:
        tar.add(ROOT / "eval")
        for v in grid_variants:
            for part in ("tokenizer", "shards", "ablate_variant.json"):
                tar.add(v.cfg.run_path / part)  # the tokenizer of variants 2 and 3 is a link to the first's
    print(f"{PACK}: {PACK.stat().st_size / 2**20:.1f} MiB")


def _environment(argv: list[str]) -> dict[str, object]:
    import torch

    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(argv),
            "host": platform.node(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def train(out: Path, budget_s: float) -> None:
    from gecko.ablate import summarize, variants

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / "env.json").write_text(json.dumps(_environment(sys.argv), indent=2) + "\n")
    if not (ROOT / "runs").exists():
        with tarfile.open(PACK) as tar:
            tar.extractall(".", filter="tar")
    grid_variants = variants(CONFIG, GRID, [])
    log = (out / "log.txt").open("a")
    for v, ko in zip(grid_variants, LADDER, strict=True):
        left = budget_s - (time.time() - t0)
        if left < 40:
            print(f"ko={ko}: skipped, {left:.0f} s left", file=log, flush=True)
            continue
        cmd = [sys.executable, "-m", "gecko", "ablate", CONFIG, "--vary", f"data.mix.ko={ko}", "--stages", "train",
               "--share-tokenizer"]
        start = time.time()
        try:
            subprocess.run(cmd, timeout=left, stdout=log, stderr=subprocess.STDOUT, check=False,
                           env={**os.environ, "PYTHONPATH": "src", "PYTHONUNBUFFERED": "1"})
            status = "done"
        except subprocess.TimeoutExpired:
            status = "cut at the time budget"
        print(f"ko={ko}: {status} in {time.time() - start:.0f} s", file=log, flush=True)
        metrics = v.cfg.run_path / "train" / "metrics.jsonl"
        if metrics.exists():
            shutil.copyfile(metrics, out / f"metrics_ko{ko}.jsonl")
        summarize(grid_variants, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="CPU: data, tokenizer, shards and eval sets into the pack")
    t = sub.add_parser("train", help="GPU: train the ladder and score the early suite")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget for all variants")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare()
    else:
        train(args.out, args.budget_s)


if __name__ == "__main__":
    main()
