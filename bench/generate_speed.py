"""Generation speed: GECKO's KV-cached `generate_batch` beside transformers `generate`, on the same exported
folder, in the same process, greedy, fixed length (no early stop); fp32 on CPU, `--device cuda --dtype
bfloat16` on a GPU.

    .venv/bin/python bench/generate_speed.py --model runs/demo/export/hf
    .venv/bin/python bench/generate_speed.py --preset small --tokenizer runs/demo/tokenizer   # random weights

Prints a markdown table and writes JSON next to it (--out). After one warm-up run of each, the two libraries
alternate (which goes first alternates too) for --repeats rounds, so both see the same machine load; each
cell is the median with the min–max spread. Greedy outputs of the two are compared token for token.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["대한민국의 수도는 서울이다. 서울은", "The Python standard library is", "def parse_args(argv):\n    "]


def build_folder(args: argparse.Namespace, tmp: Path) -> Path:
    """The --model folder, or a random-weight --preset model exported with --tokenizer."""
    if args.model:
        return Path(args.model)
    from tokenizers import Tokenizer

    from gecko.model.hf import export_hf
    from gecko.model.llama import Llama
    from gecko.model.presets import PRESETS

    vocab = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json")).get_vocab_size()
    torch.manual_seed(0)
    model = Llama(dataclasses.replace(PRESETS[args.preset], vocab_size=vocab))
    return export_hf(model, Path(args.tokenizer), tmp / args.preset)


def prompt_batch(tokenizer, batch: int, length: int, padded: bool) -> list[list[int]]:
    """`batch` prompts of `length` tokens, or with `padded` of `length` down to about length/2 tokens, so
    that the batch is left-padded (the masked decode path)."""
    rows = []
    for i in range(batch):
        n = length - (i * length // (2 * batch) if padded else 0)
        rows.append(tokenizer.encode(PROMPTS[i % len(PROMPTS)] * 8).ids[:n])
    return rows


def left_pad(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' input: ids left-padded with 0, and the attention mask."""
    P = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (P - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def interleaved(fns: list, repeats: int) -> tuple[list[list[float]], list[object]]:
    """Seconds per run of each fn over `repeats` rounds, alternating the order; and each fn's last output."""
    outs = [fn() for fn in fns]  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t0 = time.perf_counter()
            outs[i] = fns[i]()
            times[i].append(time.perf_counter() - t0)
    return times, outs


def rate(tokens: int, seconds: list[float]) -> dict[str, float]:
    """tokens/s: median and spread over the runs."""
    rates = [tokens / t for t in seconds]
    return {"median": round(statistics.median(rates), 1), "min": round(min(rates), 1), "max": round(max(rates), 1)}


def bench(folder: Path, batches: list[str], prompt_len: int, new: int, repeats: int, device: str = "cpu",
          dtype: torch.dtype = torch.float32) -> list[dict]:
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from gecko.infer.generate import GREEDY, generate_batch
    from gecko.model.hf import load_hf

    ours, _ = load_hf(folder)
    ours.to(device, dtype).eval()
    theirs = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = []
    for spec in batches:
        batch, padded = int(spec.rstrip("p")), spec.endswith("p")
        prompts = prompt_batch(tokenizer, batch, prompt_len, padded)
        x, attention_mask = (t.to(device) for t in left_pad(prompts))

        def run_ours() -> list[list[int]]:
            return generate_batch(ours, prompts, new, GREEDY)

        @torch.inference_mode()
        def run_theirs() -> list[list[int]]:
            out = theirs.generate(x, attention_mask=attention_mask, do_sample=False, max_new_tokens=new,
                                  min_new_tokens=new, pad_token_id=0)
            return out[:, x.size(1):].tolist()

        (t_ours, t_theirs), (out_ours, out_theirs) = interleaved([run_ours, run_theirs], repeats)
        rows.append({"batch": batch, "padded": padded, "prompt_tokens": f"{min(map(len, prompts))}–{prompt_len}",
                     "new_tokens": new,
                     "gecko_tok_s": rate(batch * new, t_ours), "transformers_tok_s": rate(batch * new, t_theirs),
                     "speedup": round(statistics.median(t_theirs) / statistics.median(t_ours), 2),
                     "identical_greedy": out_ours == out_theirs})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="exported Hugging Face folder")
    p.add_argument("--preset", default="small", help="random-weight model shape when --model is not given")
    p.add_argument("--tokenizer", default="runs/demo/tokenizer", help="tokenizer folder for --preset")
    p.add_argument("--batches", default="1,8,8p", help="batch sizes; a trailing p: prompts of unequal length")
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--out", default="runs/bench/generate_speed.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(args, Path(tmp))
        from gecko.model.hf import load_hf

        n_params = load_hf(folder)[0].num_params(non_embedding=False)
        rows = bench(folder, args.batches.split(","), args.prompt_len, args.new_tokens, args.repeats, args.device,
                     getattr(torch, args.dtype))
    env = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "dtype": args.dtype,
           "torch": torch.__version__, "transformers": transformers.__version__,
           "model": args.model or f"{args.preset} (random weights)", "params": n_params,
           "repeats": args.repeats, "load_avg_start_end": [load_start, os.getloadavg()], "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    print(f"{env}\n\n| batch | prompt tokens | new | GECKO tok/s | transformers tok/s | GECKO / transformers | "
          "same greedy tokens |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['batch']}{' (left-padded)' if r['padded'] else ''} | {r['prompt_tokens']} | {r['new_tokens']} | {cell(r['gecko_tok_s'])} | "
              f"{cell(r['transformers_tok_s'])} | {r['speedup']}× | {'yes' if r['identical_greedy'] else 'no'} |")


def cell(r: dict[str, float]) -> str:
    return f"{r['median']} ({r['min']}–{r['max']})"


if __name__ == "__main__":
    main()
