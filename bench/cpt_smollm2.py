"""Continued pretraining of SmolLM2-135M-Instruct with an extended Korean vocabulary, through the gecko CLI.

Issue 23's demonstration, every step a `gecko` command on configs/cpt-smollm2.yaml (docs/continued_pretraining.md):

    # CPU: the corpus, the extended tokenizer (and the base one, --add 0), the early-signal task data
    python bench/cpt_smollm2.py prepare --gguf SmolLM2-135M-Instruct.Q4_1.gguf --out .carry/cpt
    # GPU: per run, tokenize, `gecko import` the GGUF, `gecko eval`; the extended run also trains (two stages)
    python bench/cpt_smollm2.py run --gguf SmolLM2-135M-Instruct.Q4_1.gguf --dir .carry/cpt --out $OUT

Two runs share the corpus and its train/val split (ids hashed with the same seed): `base` keeps SmolLM2's
49,152-token tokenizer and is only evaluated ("before"); `cpt` adds --add tokens, is evaluated right after the
import (mean-of-pieces rows, untrained) and after training ("after"). Bits per byte are per UTF-8 byte of the
same validation documents, so the two tokenizers compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "cpt-smollm2.yaml"
EVAL_DIRS = {  # eval config key → folder under ../shared/data/eval (the early-signal suite's data)
    "kobest_dir": "kobest/v1.0",
    "arc_dir": "arc",
    "piqa_dir": "piqa",
    "winogrande_dir": "winogrande",
    "lambada_file": "lambada_openai/lambada_test.jsonl",
    "kmmlu_dir": "kmmlu/data",
    "mmlu_dir": "mmlu/data",
}


def gecko(*args: str, log: Path | None = None) -> float:
    """Run one gecko command (this checkout's source), echo its output, return its wall seconds."""
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    print("$ gecko", " ".join(args), flush=True)
    t0 = time.perf_counter()
    with (log or Path(os.devnull)).open("a", encoding="utf-8") as f:  # streamed: a cut run keeps its log
        f.write(f"$ gecko {' '.join(args)}\n")
        f.flush()
        proc = subprocess.run([sys.executable, "-m", "gecko.cli", *args], env=env, stdout=f, stderr=f)
        seconds = time.perf_counter() - t0
        f.write(f"# {seconds:.1f} s, rc {proc.returncode}\n")
    print(f"  {seconds:.1f} s, rc {proc.returncode}", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"gecko {args[0]} failed (rc {proc.returncode})")
    return seconds


def prepare(args: argparse.Namespace) -> None:
    out, shared = Path(args.out), Path(args.shared)
    out.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    cfg["run_dir"] = str(out / "runs" / "cpt")
    stdlib = sysconfig.get_paths()["stdlib"]  # more code than the bundled sample, for 15% replay
    cfg["data"]["sources"].append(
        {"name": "stdlib_full", "path": stdlib, "lang": "code", "format": "code", "max_docs": args.code_files}
    )
    for key, rel in EVAL_DIRS.items():
        target = out / "eval" / rel
        source = shared / "eval" / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
        cfg["eval"][key] = str(target)
    cfg["train"]["dtype"] = "bfloat16"  # the run is for one GPU
    config = out / "cpt.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    log = out / "prepare.log"
    gecko("data", "run", str(config), log=log)
    base_run = out / "runs" / "base"
    shutil.copytree(out / "runs" / "cpt" / "data", base_run / "data", dirs_exist_ok=True)
    gecko(
        "tokenizer", "extend", args.gguf, str(config), "--add", str(args.add), "--langs", "ko,code", log=log
    )
    gecko("tokenizer", "extend", args.gguf, str(config), f"run_dir={base_run}", "--add", "0", log=log)


def _eval_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval" / "results.json").read_text(encoding="utf-8"))


def run(args: argparse.Namespace) -> None:
    work, out = Path(args.dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config, log = str(work / "cpt.yaml"), out / "gecko.log"
    base, cpt = work / "runs" / "base", work / "runs" / "cpt"
    results_file = out / "results.json"
    results: dict = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    results.setdefault("seconds", {})

    def step(name: str, *command: str) -> None:
        results["seconds"][name] = round(gecko(*command, log=log), 1)
        results_file.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")

    if "base" in args.runs:
        step("tokenize_base", "tokenize", config, f"run_dir={base}")
        step("import_base", "import", args.gguf, config, f"run_dir={base}")
        step("eval_base", "eval", config, f"run_dir={base}")
        results["before"] = _eval_json(base)
    if "cpt" not in args.runs:
        return
    step("tokenize_cpt", "tokenize", config)
    step("import_cpt", "import", args.gguf, config)
    step("eval_cpt_init", "eval", config, "eval.suite=none", "--tasks", "bpb")
    results["resized_init"] = _eval_json(cpt)
    step("train_cpt", "train", config)
    results["train_metrics"] = (cpt / "train" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-5:]
    step("eval_cpt", "eval", config)
    results["after"] = _eval_json(cpt)
    results_file.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--gguf", required=True)
    p.add_argument("--shared", default="../shared/data")
    p.add_argument("--add", type=int, default=16384)
    p.add_argument("--code-files", type=int, default=1500, help="stdlib .py files added to the code source")
    p.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--gguf", required=True)
    r.add_argument("--dir", required=True, help="the folder `prepare` wrote")
    r.add_argument("--out", required=True)
    r.add_argument(
        "--runs", default="base,cpt", help="base (evaluate SmolLM2 as it is), cpt (extend and train)"
    )
    args = parser.parse_args()
    prepare(args) if args.cmd == "prepare" else run(args)


if __name__ == "__main__":
    main()
