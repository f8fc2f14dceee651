"""Issue 3, item 4: is `gecko tokenize` (sharding) at least as fast as `encode_batch` on all cores?

Both sides encode the same documents with the same tokenizer on all cores, in fresh subprocesses, with the
rounds interleaved (baseline, ours, baseline, ours …) so that load from other jobs hits both alike:

- baseline: `tokenizers` `encode_batch_fast` on the texts already in memory (RAYON_NUM_THREADS = cores),
  timed on a second, warm call; no reading, parsing or writing.
- ours: `pretokenize` (`gecko tokenize`) end to end from the JSONL corpus: read, encode, index, write the
  train/val shards, with `workers=0` (one process per core), timed cold.

    .venv/bin/python bench/tokenize_vs_encode_batch.py --corpus runs/tokenizer/data/corpus.jsonl \\
        --tokenizer runs/tokenizer/tokenizer --mb 8 --rounds 5 --out runs/bench/tokenize_vs_encode_batch

Writes results.json (every round, medians and ranges) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
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


def summary(rows: list[dict], text_mb: float) -> dict:
    """MB/s of document text (UTF-8), the same numerator for both sides (the JSONL file is larger)."""
    rates = [round(text_mb / r["seconds"], 3) for r in rows]
    return {"text_mb_per_s": rates, "median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "tokens": rows[0]["tokens"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("runs/tokenizer/data/corpus.jsonl"))
    parser.add_argument("--tokenizer", type=Path, default=Path("runs/tokenizer/tokenizer"))
    parser.add_argument("--mb", type=float, default=8.0, help="corpus MB encoded per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/tokenize_vs_encode_batch"))
    args = parser.parse_args()
    for path in (args.corpus, args.tokenizer / "tokenizer.json"):
        if not path.exists():
            print(f"{path} not found (run `gecko data run`, `gecko tokenizer train` first)", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    corpus, texts = corpus_slice(args.corpus, args.mb, args.out)
    cores = os.cpu_count() or 1
    rounds: dict[str, list[dict]] = {"encode_batch": [], "gecko_tokenize": []}
    for i in range(args.rounds):
        model = str(args.tokenizer / "tokenizer.json")
        base = run_child(["encode", "gecko", model, str(cores), str(texts)], cores)
        ours = run_child(["shards", str(args.tokenizer), str(corpus), "0", str(args.out / f"shards_{i}")])
        rounds["encode_batch"].append(base)
        rounds["gecko_tokenize"].append(ours)
        print(json.dumps({"round": i, "encode_batch_s": base["seconds"], "tokenize_s": ours["seconds"]}),
              flush=True)
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
