"""Generation speed: GECKO's KV-cached `generate_batch` beside transformers `generate`, on the same exported
folder, in the same process, greedy, fixed length (no early stop), fp32.

    .venv/bin/python bench/generate_speed.py --model runs/demo/export/hf
    .venv/bin/python bench/generate_speed.py --preset small --tokenizer runs/demo/tokenizer   # random weights

Prints a markdown table and writes JSON next to it (--out). Each cell is the median of --repeats timed runs
after one warm-up run. Greedy outputs of the two are compared token for token.
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

    from gecko.export.hf import export_hf
    from gecko.model.llama import Llama
    from gecko.model.presets import PRESETS

    vocab = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json")).get_vocab_size()
    torch.manual_seed(0)
    model = Llama(dataclasses.replace(PRESETS[args.preset], vocab_size=vocab))
    return export_hf(model, Path(args.tokenizer), tmp / args.preset)


def prompt_batch(tokenizer, batch: int, length: int) -> list[list[int]]:
    """`batch` prompts of exactly `length` tokens (no padding: both libraries see the same input)."""
    rows = []
    for i in range(batch):
        ids = tokenizer.encode(PROMPTS[i % len(PROMPTS)] * 8).ids[:length]
        rows.append(ids)
    return rows


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench(folder: Path, batches: list[int], prompt_len: int, new: int, repeats: int) -> list[dict]:
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from gecko.export.generate import generate_batch
    from gecko.export.hf import load_hf

    ours, _ = load_hf(folder)
    ours.eval()
    theirs = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = []
    for batch in batches:
        prompts = prompt_batch(tokenizer, batch, prompt_len)
        x = torch.tensor(prompts)

        def run_ours() -> list[list[int]]:
            return generate_batch(ours, prompts, new, temperature=0.0)

        @torch.inference_mode()
        def run_theirs() -> list[list[int]]:
            out = theirs.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=new,
                                  min_new_tokens=new, pad_token_id=0)
            return out[:, prompt_len:].tolist()

        t_ours, out_ours = timed(run_ours, repeats)
        t_theirs, out_theirs = timed(run_theirs, repeats)
        rows.append({"batch": batch, "prompt_tokens": prompt_len, "new_tokens": new,
                     "gecko_tok_s": round(batch * new / t_ours, 1),
                     "transformers_tok_s": round(batch * new / t_theirs, 1),
                     "speedup": round(t_theirs / t_ours, 2), "identical_greedy": out_ours == out_theirs})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="exported Hugging Face folder")
    p.add_argument("--preset", default="small", help="random-weight model shape when --model is not given")
    p.add_argument("--tokenizer", default="runs/demo/tokenizer", help="tokenizer folder for --preset")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="runs/bench/generate_speed.json")
    args = p.parse_args()
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(args, Path(tmp))
        from gecko.export.hf import load_hf

        n_params = load_hf(folder)[0].num_params(non_embedding=False)
        rows = bench(folder, [int(b) for b in args.batches.split(",")], args.prompt_len, args.new_tokens,
                     args.repeats)
    env = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "transformers": transformers.__version__,
           "model": args.model or f"{args.preset} (random weights)", "params": n_params,
           "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    print(f"{env}\n\n| batch | prompt | new | GECKO tok/s | transformers tok/s | speedup | same greedy tokens |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['prompt_tokens']} | {r['new_tokens']} | {r['gecko_tok_s']} | "
              f"{r['transformers_tok_s']} | {r['speedup']}× | {'yes' if r['identical_greedy'] else 'no'} |")


if __name__ == "__main__":
    main()
