"""GECKO's KMMLU/MMLU engine against lm-evaluation-harness on one exported model: agreement and speed.

Both score the same items of the first N subjects of each benchmark (5-shot, --limit items per subject)
from the same exported folder. Prints per-benchmark agreement of the chosen letters, the largest
log-likelihood difference, both accuracies and both wall-clock times, and writes them as JSON.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_crosscheck.py runs/demo/export/hf --subjects 5 --limit 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from gecko.eval import data
from gecko.eval.lm import GeckoLM
from gecko.eval.lm_eval_tasks import task_name, write_tasks
from gecko.eval.choice import KMMLU_FORMAT, MMLU_FORMAT, evaluate_choice
from gecko.model.hf import load_hf
from gecko.tokens import load_tokenizer

BENCHES = {"kmmlu": (data.kmmlu, KMMLU_FORMAT, "kmmlu/data"), "mmlu": (data.mmlu, MMLU_FORMAT, "mmlu/data")}


def run_lm_eval(export: Path, task_dir: Path, tasks: list[str], limit: int, batch_size: int) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={export},add_bos_token=True,dtype=float32", tasks=tasks,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False), limit=limit,
        log_samples=True, batch_size=batch_size, device="cpu")
    return {t: sorted(out["samples"][t], key=lambda s: s["doc_id"]) for t in tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/eval"))
    parser.add_argument("--subjects", type=int, default=5)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/eval_crosscheck.json"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, _ = load_hf(args.export)
    lm = GeckoLM(model, load_tokenizer(args.export), args.batch_size)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bench, (load, fmt, rel) in BENCHES.items():
            folder = args.data / rel
            test, dev = load(folder, "test"), load(folder, "dev")
            subjects = sorted(test)[: args.subjects]
            test = {s: test[s] for s in subjects}
            t0 = time.perf_counter()
            metrics, records = evaluate_choice(lm, test, dev, 5, fmt, "mc", args.limit)
            ours_s = time.perf_counter() - t0
            names = write_tasks(Path(tmp), bench, folder, subjects=subjects)
            t0 = time.perf_counter()
            theirs = run_lm_eval(args.export, Path(tmp), names, args.limit, args.batch_size)
            theirs_s = time.perf_counter() - t0
            samples = [s for n in names for s in theirs[n]]
            their_ll = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
            their_pred = [max(range(len(ll)), key=lambda j: (ll[j], -j)) for ll in their_ll]
            report[bench] = {
                "items": len(records), "subjects": len(subjects),
                "same_choice": sum(p == r["mc_acc_pred"] for p, r in zip(their_pred, records, strict=True)),
                "max_abs_loglik_diff": max(abs(a - b) for ll, r in zip(their_ll, records, strict=True)
                                           for a, b in zip(ll, r["mc_loglik"], strict=True)),
                "acc_gecko": metrics["mc_acc"],
                "acc_lm_eval": sum(s["acc"] for s in samples) / len(samples),
                "seconds_gecko": round(ours_s, 1), "seconds_lm_eval": round(theirs_s, 1),
                "truncated_requests_gecko": lm.truncated,
            }
            print(bench, json.dumps(report[bench]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
