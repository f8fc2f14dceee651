"""Training throughput of GECKO's LLaMA against Hugging Face `LlamaForCausalLM`, in one run.

Each variant trains `--steps` timed steps (after `--warmup` steps that absorb compilation) on synthetic
packed batches: random tokens cut into documents of exponential length (mean `--doc-mean` tokens).

  gecko-doc     GECKO model, document-masked attention (flex block mask built every step), positions per doc
  gecko-causal  GECKO model, naive packing (plain causal SDPA)
  hf            transformers LlamaForCausalLM, SDPA, bf16 weights, torch.compile, fused AdamW

GECKO runs as the trainer does: fp32 master weights, bf16 autocast (single GPU) or FSDP2 bf16 gather with
fp32 reduction (under torchrun), per-block compile, fused AdamW, the trainer's loss function.
MFU = flops_per_token · tokens/s ÷ peak, flops_per_token = 6·N_non-embedding + 12·layers·dim·seq
(`Llama.flops_per_token`), peak = a bf16 8192³ matmul measured in the same run.

  python bench/train_throughput.py --presets 125m 1b --batch 16 8 --out results.json
  torchrun --nproc-per-node 2 bench/train_throughput.py --presets 1b --batch 8 --variants gecko-doc
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from gecko.model.llama import Llama
from gecko.model.presets import PRESETS
from gecko.train.distributed import Dist, close_distributed, init_distributed
from gecko.train.metrics import measure_peak_tflops
from gecko.train.parallelize import parallelize
from gecko.train.trainer import token_losses

VARIANTS = ("gecko-doc", "gecko-causal", "hf")


def synthetic_batches(n: int, B: int, T: int, vocab: int, doc_mean: int, device: torch.device,
                      seed: int) -> list[dict[str, torch.Tensor]]:
    """`n` packed batches: tokens, targets, doc ids and per-document positions."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        tokens = torch.randint(0, vocab, (B, T + 1), generator=g)
        lengths = (-doc_mean * torch.rand(B, T, generator=g).log()).long().clamp(min=1)  # exponential
        ends = lengths.cumsum(1)  # (B, T) document end offsets, far more than needed
        idx = torch.arange(T)
        doc_ids = torch.stack([torch.searchsorted(e, idx, right=True) for e in ends])  # (B, T)
        starts = torch.cat([torch.zeros(B, 1, dtype=torch.long), ends], 1).gather(1, doc_ids)
        batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "doc_ids": doc_ids, "positions": idx - starts}
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def gecko_step(preset: str, T: int, dist: Dist, doc_mask: bool, compile: bool, ac: str) -> tuple[Callable, Llama]:
    cfg = dataclasses.replace(PRESETS[preset], max_seq_len=max(T, PRESETS[preset].max_seq_len))
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Llama(cfg)
    flops_model = model
    bf16 = dist.device.type == "cuda"
    parallelize(model, ac=ac, compile=compile, mesh=dist.mesh, bf16=bf16)
    model.to_empty(device=dist.device)
    model.init_weights()
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-4, fused=dist.device.type == "cuda")
    autocast = torch.autocast(dist.device.type, torch.bfloat16, enabled=bf16 and dist.mesh is None)
    loss_fn = torch.compile(token_losses) if compile else token_losses

    def step(batch: dict[str, torch.Tensor]) -> None:
        with autocast:
            logits = model(batch["inputs"], batch["positions"] if doc_mask else None,
                           batch["doc_ids"] if doc_mask else None)
        ce, _ = loss_fn(logits, batch["targets"], 0.0)
        ce.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, flops_model


def hf_step(preset: str, T: int, dist: Dist, compile: bool) -> Callable:
    from transformers import LlamaConfig, LlamaForCausalLM

    c = PRESETS[preset]
    hf_cfg = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=c.ffn_dim,
                         num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
                         num_key_value_heads=c.n_kv_heads, max_position_embeddings=max(T, c.max_seq_len),
                         rms_norm_eps=c.norm_eps, tie_word_embeddings=c.tie_embeddings,
                         attn_implementation="sdpa")
    dtype = torch.bfloat16 if dist.device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    model = LlamaForCausalLM(hf_cfg).to(dist.device, dtype)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=dist.device.type == "cuda")
    fwd = torch.compile(model) if compile else model

    def step(batch: dict[str, torch.Tensor]) -> None:
        fwd(input_ids=batch["inputs"], labels=batch["inputs"]).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def time_variant(step: Callable, batches: list, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` timed steps, after `warmup` untimed ones."""
    for i in range(warmup):
        step(batches[i % len(batches)])
    sync(device)
    started = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    sync(device)
    return (time.perf_counter() - started) / steps


def run_one(args: argparse.Namespace, dist: Dist, preset: str, B: int, variant: str, peak: float | None) -> dict:
    T = args.seq
    batches = synthetic_batches(4, B, T, PRESETS[preset].vocab_size, args.doc_mean, dist.device, seed=dist.rank)
    if variant == "hf":
        step = hf_step(preset, T, dist, args.compile)
        with torch.device("meta"):
            flops = Llama(dataclasses.replace(PRESETS[preset], max_seq_len=T)).flops_per_token(T)
    else:
        step, model = gecko_step(preset, T, dist, variant == "gecko-doc", args.compile, args.ac)
        flops = model.flops_per_token(T)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds = time_variant(step, batches, args.warmup, args.steps, dist.device)
    tok_per_gpu = B * T / seconds
    result = {"preset": preset, "variant": variant, "batch_per_gpu": B, "seq": T, "world_size": dist.world_size,
              "tokens_per_s_per_gpu": round(tok_per_gpu), "tokens_per_s": round(tok_per_gpu * dist.world_size),
              "step_ms": round(seconds * 1e3, 2), "flops_per_token": flops,
              "mfu": round(flops * tok_per_gpu / (peak * 1e12), 4) if peak else None,
              "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}
    del step
    gc.collect()
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["125m", "1b"])
    p.add_argument("--batch", nargs="+", type=int, default=[16, 8], help="per-GPU batch, one per preset")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--doc-mean", type=int, default=600, help="mean document length in tokens")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--ac", default="none", choices=["none", "selective", "full"], help="GECKO activation checkpointing")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if len(args.batch) != len(args.presets):
        p.error(f"--batch needs one value per preset ({len(args.presets)})")
    dist = init_distributed(args.device)
    if dist.mesh is not None and "hf" in args.variants:
        p.error("the hf variant runs in a single process only")
    torch.backends.cuda.matmul.allow_tf32 = True
    peak = measure_peak_tflops(dist.device)
    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
           "device": torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else platform.processor(),
           "world_size": dist.world_size, "peak_bf16_tflops": round(peak, 1) if peak else None}
    if dist.is_main:
        print(json.dumps(env), flush=True)
    results = []
    for preset, B in zip(args.presets, args.batch):
        for variant in args.variants:
            try:
                r = run_one(args, dist, preset, B, variant, peak)
            except Exception as e:  # one failing variant must not cost the others' numbers
                traceback.print_exc()
                r = {"preset": preset, "variant": variant, "error": f"{type(e).__name__}: {e}"[:500]}
            results.append(r)
            if dist.is_main:
                print(json.dumps(r), flush=True)
                if args.out:  # rewritten after every variant: a run cut short keeps what it measured
                    Path(args.out).write_text(json.dumps({"env": env, "args": vars(args), "results": results},
                                                         indent=2))
    if dist.is_main:
        print(f"{'preset':8} {'variant':13} {'tok/s/GPU':>10} {'MFU':>6} {'step ms':>8} {'GiB':>6}")
        for r in (r for r in results if "error" not in r):
            mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
            print(f"{r['preset']:8} {r['variant']:13} {r['tokens_per_s_per_gpu']:>10,} {mfu:>6} {r['step_ms']:>8} "
                  f"{r['max_mem_gib'] or '-':>6}")
    close_distributed()


if __name__ == "__main__":
    main()
