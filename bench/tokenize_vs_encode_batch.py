"""Issue 3, item 4: is `gecko tokenize` (sharding) at least as fast as `encode_batch` on all cores?

Both sides encode the same documents with the same tokenizer on all cores, in fresh subprocesses, with the
rounds interleaved (baseline, ours, baseline, ours …) so that load from other jobs hits both alike:

- baseline: `tokenizers` `encode_batch_fast` on the texts already in memory (RAYON_NUM_THREADS = cores),
  timed on a second, warm call; no reading, parsing or writing.
- ours: `pretokenize` (`gecko tokenize`) end to end from the JSONL corpus: read, encode, index, write the
  train/val shards, with the default `TokenizeConfig` (`workers=0`: all cores), timed cold, in a process
  that imports nothing else.
- before (optional, `--before FILE`): the same with another version of `shards.py`, e.g.
  `git show REV:src/gecko/tokenizer/shards.py > /tmp/shards_before.py`, in the same interleaved rounds.

    .venv/bin/python bench/tokenize_vs_encode_batch.py --corpus runs/tokenizer/data/corpus.jsonl \\
        --tokenizer runs/tokenizer/tokenizer --mb 8 --rounds 5 --out runs/bench/tokenize_vs_encode_batch

Writes results.json (every round, medians and ranges) to --out. `cpu_seconds` of the sharding runs counts
the process and its children (user + system): above `seconds`, the run used more than one core.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_speed import run_child  # noqa: E402


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


def child_shards(module_file: str, tokenizer: Path, corpus: Path, out: Path) -> dict:
    """`pretokenize` of `module_file` ("" = the installed gecko) with the default config, timed cold."""
    from gecko.config import TokenizeConfig

    if module_file:
        spec = importlib.util.spec_from_file_location("shards_under_test", module_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # a process pool pickles its functions by module name
        spec.loader.exec_module(module)
    else:
        from gecko.tokenizer import shards as module
    t0 = time.perf_counter()
    stats = module.pretokenize(TokenizeConfig(), corpus, tokenizer, out, 0)
    seconds = time.perf_counter() - t0
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return {"tokens": stats["train"]["tokens"] + stats["val"]["tokens"], "seconds": round(seconds, 3),
            "cpu_seconds": round(sum(u.ru_utime + u.ru_stime for u in usage), 2)}


def run_shards(module_file: str, tokenizer: Path, corpus: Path, out: Path) -> dict:
    args = [sys.executable, __file__, "--child", module_file, str(tokenizer), str(corpus), str(out)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(rows: list[dict], text_mb: float) -> dict:
    """MB/s of document text (UTF-8), the same numerator for both sides (the JSONL file is larger)."""
    rates = [round(text_mb / r["seconds"], 3) for r in rows]
    return {"text_mb_per_s": rates, "median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "tokens": rows[0]["tokens"]}


def main() -> int:
    if "--child" in sys.argv:
        module_file, tokenizer, corpus, out = sys.argv[sys.argv.index("--child") + 1:]
        print(json.dumps(child_shards(module_file, Path(tokenizer), Path(corpus), Path(out))))
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
    cores = os.cpu_count() or 1
    sides = {"gecko_tokenize": ""} | ({"before": str(args.before.resolve())} if args.before else {})
    rounds: dict[str, list[dict]] = {"encode_batch": [], **{name: [] for name in sides}}
    model = str(args.tokenizer / "tokenizer.json")
    for i in range(args.rounds):
        rounds["encode_batch"].append(run_child(["encode", "gecko", model, str(cores), str(texts)], cores))
        for name, module_file in (sides if i % 2 == 0 else dict(reversed(sides.items()))).items():
            rounds[name].append(run_shards(module_file, args.tokenizer, corpus, args.out / f"{name}_{i}"))
        print(json.dumps({"round": i, **{f"{k}_s": v[-1]["seconds"] for k, v in rounds.items()}}), flush=True)
    text_mb = sum(len(t.encode()) for t in json.loads(texts.read_text())) / 1e6
    result = {"cores": cores, "corpus_mb": round(corpus.stat().st_size / 1e6, 2),
              "text_mb": round(text_mb, 2),
              "load_avg_after": os.getloadavg(), "rounds": rounds,
              "summary": {k: summary(v, text_mb) for k, v in rounds.items()}}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
