"""The Korean-share ladder on one GPU: which early-signal tasks rise above chance, and what the mix changes.

`gecko ablate bench/early_signal.yaml --vary data.mix.ko=0.25,0.35,0.45 --share-tokenizer`, split in two:

    python bench/early_signal.py prepare          # CPU, needs ../shared/data: data, tokenizer and shards of
                                                  # the three variants, the eval sets, packed into
                                                  # .carry/early_signal.tar.xz (carried to the GPU machine)
    python bench/early_signal.py train --out OUT  # GPU: unpack, train the variants (the early suite scored
                                                  # at steps 0, 100, 200, 300), write the comparison to OUT

`train` keeps to a wall-clock budget (--budget-s): the three variants run at once, each in its own process,
and are stopped at the budget; their metrics are copied to OUT as they grow and the comparison
(ablate.md/json/png) is written from what finished, so a cut-short call still returns results.
Results: docs/evaluation.md and docs/benchmarks.md.
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


def train(out: Path, budget_s: float, overrides: list[str]) -> None:
    """The three variants at once on the one GPU (a 35M model leaves it mostly idle, and the call's time is
    short), each in its own process; what finished by the budget is summarized."""
    from gecko.ablate import summarize, variants

    deadline = time.time() + budget_s
    out.mkdir(parents=True, exist_ok=True)
    (out / "env.json").write_text(json.dumps(_environment(sys.argv), indent=2) + "\n")
    if not (ROOT / "runs").exists():
        with tarfile.open(PACK) as tar:
            tar.extractall(".", filter="tar")
    grid_variants = variants(CONFIG, GRID, overrides)
    log = (out / "log.txt").open("a")
    pythonpath = os.pathsep.join(["src", *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
    sets = [f"--set={o}" for o in overrides]
    procs = {ko: subprocess.Popen([sys.executable, __file__, "variant", "--ko", ko, *sets], stdout=log,
                                  stderr=subprocess.STDOUT, env=env) for ko in LADDER}
    started = time.time()
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(5)
        _copy_metrics(grid_variants, out)
    for ko, p in procs.items():
        if p.poll() is None:
            p.terminate()
            p.wait(30)
        status = "done" if p.returncode == 0 else f"exit {p.returncode}"
        print(f"ko={ko}: {status} after {time.time() - started:.0f} s", file=log, flush=True)
    _copy_metrics(grid_variants, out)
    summarize(grid_variants, out)


def _copy_metrics(grid_variants: list, out: Path) -> None:
    for v, ko in zip(grid_variants, LADDER, strict=True):
        metrics = v.cfg.run_path / "train" / "metrics.jsonl"
        if metrics.exists():
            shutil.copyfile(metrics, out / f"metrics_ko{ko}.jsonl")


def train_variant(ko: str, overrides: list[str]) -> None:
    """One variant's train stage, as `gecko ablate … --stages train` runs it, under its own run lock (the
    ablate command locks the shared run folder, so three of it could not run at once)."""
    import logging

    from gecko.ablate import run_ablation, variants
    from gecko.runlock import run_lock

    logging.basicConfig(level=logging.INFO, format=f"ko={ko} %(levelname)s %(name)s: %(message)s")
    grid = {"data.mix.ko": [ko]}
    (variant,) = variants(CONFIG, grid, overrides)
    with run_lock(variant.cfg.run_path):
        run_ablation([variant], grid, ("train",), share_tokenizer=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="CPU: data, tokenizer, shards and eval sets into the pack")
    t = sub.add_parser("train", help="GPU: train the ladder and score the early suite")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--budget-s", type=float, default=500.0, help="wall-clock budget for all variants")
    one = sub.add_parser("variant", help="one variant's train stage (train starts the three)")
    one.add_argument("--ko", choices=LADDER, required=True)
    for p in (t, one):
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="config override for every variant, e.g. train.device=cpu for a smoke test")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare()
    elif args.command == "train":
        train(args.out, args.budget_s, args.set)
    else:
        train_variant(args.ko, args.set)


if __name__ == "__main__":
    main()
