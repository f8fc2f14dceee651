"""Training stall per checkpoint, synchronous against asynchronous DCP saves, and the load time, in one run.

A GECKO model of `--preset` trains on random tokens the way the trainer runs on one GPU (fp32 master
weights, bf16 autocast, fused AdamW). Then, for each mode, `--saves` checkpoints are written through
`gecko.train.checkpoint.CheckpointManager`, each after `--steps-between` timed steps:

  sync   `dcp.save`: training waits for every byte to be on disk (the baseline)
  async  `dcp.async_save`: training waits only for the copy to pinned host memory; a thread writes the rest

Measured per save: the stall (the `save()` call, GPU synchronized on both sides), the time until the
checkpoint is complete (COMPLETE written), and the mean step time while a background write is going on
against the steps before it. Then a fresh model and optimizer restore the newest checkpoint (load time) and
the weights are compared with the saved ones. Results go to `--out` as JSON and are printed.

  python bench/checkpoint_save.py --preset 1b --saves 3 --out results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from gecko.model.llama import Llama
from gecko.model.presets import PRESETS
from gecko.train.checkpoint import COMPLETE, CheckpointManager
from gecko.train.trainer import token_losses


def build(preset: str, seq: int, device: torch.device) -> tuple[Llama, torch.optim.Optimizer]:
    cfg = dataclasses.replace(PRESETS[preset], max_seq_len=max(seq, PRESETS[preset].max_seq_len))
    with torch.device("meta"):
        model = Llama(cfg)
    model.to_empty(device=device)
    torch.manual_seed(0)
    model.init_weights()
    return model, torch.optim.AdamW(model.param_groups(0.1), lr=1e-4, fused=device.type == "cuda")


def make_step(model: Llama, optimizer: torch.optim.Optimizer, batch: int, seq: int, device: torch.device):
    tokens = torch.randint(0, model.cfg.vocab_size, (batch, seq + 1), device=device)

    def step() -> float:
        """One optimizer step; seconds, GPU work included."""
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
        token_losses(logits, tokens[:, 1:], 0.0)[0].mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return time.perf_counter() - started

    return step


def run_mode(mode: str, root: Path, model: Llama, optimizer: torch.optim.Optimizer, step, saves: int,
             between: int, first_step: int) -> dict:
    manager = CheckpointManager(root, keep=1, async_save=mode == "async")
    records, n = [], first_step
    for i in range(saves):
        before = [step() for _ in range(between)]
        n += between
        if i == saves - 1:  # what the last checkpoint must hold (copied outside the timed part)
            snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        torch.cuda.synchronize()
        started = time.perf_counter()
        saved_at = n
        final = manager.save(n, model, optimizer, {"step": n}, {"step": n, "world_size": 1})
        torch.cuda.synchronize()
        stall = time.perf_counter() - started
        during = []
        while not (final / COMPLETE).exists():  # the background write, while training goes on
            during.append(step())
            n += 1
            manager.poll()
        complete = time.perf_counter() - started
        records.append({"step": saved_at, "stall_s": stall, "complete_s": complete, "steps_during_write": len(during),
                        "step_s_before": statistics.mean(before),
                        "step_s_during_write": statistics.mean(during) if during else None})
        print(mode, records[-1], flush=True)
    manager.wait()
    return {"saves": records, "last": final, "steps": n, "snapshot": snapshot}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="1b", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--steps-between", type=int, default=4)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/gecko_ckpt_bench"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device("cuda")
    model, optimizer = build(args.preset, args.seq, device)
    step = make_step(model, optimizer, args.batch, args.seq, device)
    for _ in range(3):  # warm-up; creates the AdamW moments that every checkpoint holds
        step()
    shutil.rmtree(args.dir, ignore_errors=True)
    results = {"preset": args.preset, "params": sum(p.numel() for p in model.parameters()),
               "batch": args.batch, "seq": args.seq, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(), "host": platform.node(),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "modes": {}}
    n = 3
    for mode in ("sync", "async"):
        out = run_mode(mode, args.dir / mode, model, optimizer, step, args.saves, args.steps_between, n)
        n, last, saved = out["steps"], out.pop("last"), out.pop("snapshot")
        results["checkpoint_bytes"] = sum(f.stat().st_size for f in last.rglob("*") if f.is_file())
        results["modes"][mode] = out
        if mode == "sync":
            shutil.rmtree(args.dir / mode)  # disk room for the next mode
    del model, optimizer
    torch.cuda.empty_cache()
    fresh, fresh_optimizer = build(args.preset, args.seq, device)
    make_step(fresh, fresh_optimizer, args.batch, args.seq, device)()  # moments exist, as in a real resume
    torch.cuda.synchronize()
    started = time.perf_counter()
    path, _ = CheckpointManager(args.dir / "async", keep=1).restore(fresh, fresh_optimizer)
    torch.cuda.synchronize()
    results["load_s"] = time.perf_counter() - started
    results["loaded"] = path.name
    results["loaded_equals_saved"] = all(torch.equal(saved[k], v.cpu()) for k, v in fresh.state_dict().items())
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
