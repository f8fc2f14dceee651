"""Issue 3, item 4: is `gecko tokenize` (sharding) at least as fast as `encode_batch` on all cores?

All sides encode the same documents with the same tokenizer on all cores, each run in a fresh subprocess,
with the sides interleaved in every round (their order alternating) so that load from other jobs hits all
alike:

- encode_batch: `tokenizers` `encode_batch_fast` on all the texts, already in memory, in one call (rayon on
  every core); the ids of each `Encoding` read out, as any consumer must; timed on a second, warm call.
  No reading, parsing or writing.
- encode_batch_1k: the same in calls of 1,000 documents, timed after a warm-up call on the first 1,000.
  At hundreds of MB, one call slows down (all `Encoding`s held at once); batches are what a pipeline over
  a large corpus would do.
- gecko_tokenize: `pretokenize` (`gecko tokenize`) end to end from the JSONL corpus: plan, start the worker
  processes, read, parse, encode, index, write the train/val shards, with the default `TokenizeConfig`
  (`workers=0`: all cores), timed cold, in a process that imports nothing else.
- before (optional, `--before FILE`): the same with another version of `shards.py`, e.g.
  `git show REV:src/gecko/tokenizer/pretokenize.py > /tmp/shards_before.py`; it must not use a process pool
  (its module is loaded from a file, which worker processes cannot import).

    .venv/bin/python bench/tokenize_vs_encode_batch.py --corpus runs/tokenizer/data/corpus.jsonl \\
        --tokenizer runs/tokenizer/tokenizer --mb 8 --rounds 5 --out runs/bench/tokenize_vs_encode_batch

Writes results.json (every round, with `gecko tokenize`'s own phase timings, medians and ranges) to --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH_DOCS = 1000


def corpus_slice(corpus: Path, mb: float, out: Path) -> tuple[Path, Path]:
    """The first `mb` MB of whole lines of `corpus` (it is shuffled), as JSONL and as a JSON list of texts."""
    lines, size = [], 0
    with corpus.open("rb") as f:
        for line in f:
            if size >= mb * 1e6:
                break
            lines.append(line)
            size += len(line)
    sliced, texts = out / "corpus.jsonl", out / "texts.json"
    sliced.write_bytes(b"".join(lines))
    texts.write_text(json.dumps([json.loads(x)["text"] for x in lines], ensure_ascii=False))
    return sliced, texts


def child_encode(model: Path, texts_file: Path, batch_docs: int) -> dict:
    """`encode_batch_fast` over the texts (in calls of `batch_docs`, 0: one call), warm, ids read out."""
    from tokenizers import Tokenizer

    texts = json.loads(texts_file.read_text())
    tok = Tokenizer.from_file(str(model))
    step = batch_docs or len(texts)

    def run(batches: range) -> int:
        return sum(len(e.ids) for i in batches
                   for e in tok.encode_batch_fast(texts[i:i + step], add_special_tokens=False))

    run(range(0, len(texts), step)[:1] if batch_docs else range(0, len(texts), step))  # warm-up
    t0 = time.perf_counter()
    tokens = run(range(0, len(texts), step))
    return {"tokens": tokens, "seconds": round(time.perf_counter() - t0, 3)}


def child_shards(module_file: str, tokenizer: Path, corpus: Path, out: Path) -> dict:
    """`pretokenize` of `module_file` ("" = the installed gecko) with the default config, timed cold."""
    from gecko.config import TokenizeConfig

    if module_file:
        spec = importlib.util.spec_from_file_location("shards_under_test", module_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    else:
        from gecko.tokenizer import pretokenize as module
    t0 = time.perf_counter()
    stats = module.pretokenize(TokenizeConfig(), corpus, tokenizer, out, 0)
    seconds = time.perf_counter() - t0
    return {"tokens": stats["train"]["tokens"] + stats["val"]["tokens"], "seconds": round(seconds, 3),
            "timing": stats["timing"]}


def run_child(args: list[str], cores: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(cores), TOKENIZERS_PARALLELISM="true")
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(rows: list[dict], text_mb: float) -> dict:
    """MB/s of document text (UTF-8), the same numerator for every side (the JSONL file is larger)."""
    rates = [round(text_mb / r["seconds"], 3) for r in rows]
    return {"text_mb_per_s": rates, "median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "tokens": rows[0]["tokens"]}


def main() -> int:
    if "--child" in sys.argv:
        kind, *rest = sys.argv[sys.argv.index("--child") + 1:]
        if kind == "encode":
            row = child_encode(Path(rest[0]), Path(rest[1]), int(rest[2]))
        else:
            row = child_shards(rest[0], Path(rest[1]), Path(rest[2]), Path(rest[3]))
        print(json.dumps(row))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("runs/tokenizer/data/corpus.jsonl"))
    parser.add_argument("--tokenizer", type=Path, default=Path("runs/tokenizer/tokenizer"))
    parser.add_argument("--mb", type=float, default=8.0, help="corpus MB encoded per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another shards.py, timed in the same rounds")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/tokenize_vs_encode_batch"))
    args = parser.parse_args()
    for path in (args.corpus, args.tokenizer / "tokenizer.json"):
        if not path.exists():
            print(f"{path} not found (run `gecko data run`, `gecko tokenizer train` first)", file=sys.stderr)
            return 1
    if args.before and not args.before.is_file():
        print(f"{args.before} not found (--before takes a shards.py file)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    corpus, texts = corpus_slice(args.corpus, args.mb, args.out)
    cores = len(os.sched_getaffinity(0))
    model = str(args.tokenizer / "tokenizer.json")
    sides = {
        "encode_batch": ["encode", model, str(texts), "0"],
        "encode_batch_1k": ["encode", model, str(texts), str(BATCH_DOCS)],
        "gecko_tokenize": ["shards", "", str(args.tokenizer), str(corpus)],
        **({"before": ["shards", str(args.before.resolve()), str(args.tokenizer), str(corpus)]}
           if args.before else {}),
    }
    rounds: dict[str, list[dict]] = {name: [] for name in sides}
    for i in range(args.rounds):
        for name, child in (sides.items() if i % 2 == 0 else reversed(sides.items())):
            out = [str(args.out / f"{name}_{i}")] if child[0] == "shards" else []
            rounds[name].append(run_child(child + out, cores))
        print(json.dumps({"round": i, **{f"{k}_s": v[-1]["seconds"] for k, v in rounds.items()}}), flush=True)
    text_mb = sum(len(t.encode()) for t in json.loads(texts.read_text())) / 1e6
    result = {"cores": cores, "corpus_mb": round(corpus.stat().st_size / 1e6, 2), "text_mb": round(text_mb, 2),
              "load_avg_after": os.getloadavg(), "rounds": rounds,
              "summary": {k: summary(v, text_mb) for k, v in rounds.items()}}
    ours = result["summary"]["gecko_tokenize"]["text_mb_per_s"]
    for base in ("encode_batch", "encode_batch_1k"):
        ratios = [round(a / b, 3) for a, b in zip(ours, result["summary"][base]["text_mb_per_s"])]
        result["summary"][f"gecko_tokenize_vs_{base}"] = {"per_round": ratios, "median": statistics.median(ratios)}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
