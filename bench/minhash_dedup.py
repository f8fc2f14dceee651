"""MinHash dedup benchmark and planted-set quality, on the shared corpus (../shared/data).

    python bench/minhash_dedup.py speed   [--mb 20]   # ours vs datatrove's stock 4-stage MinHash, same input
    python bench/minhash_dedup.py planted [--docs 300] # precision/recall against threshold → JSON + PNG

`speed` runs each engine in its own subprocess with one worker (and RAYON_NUM_THREADS=1), and reports
MB/s per CPU-second of that process (user + sys: the per-core rate) and its peak RSS. Both use 16 bands × 8
rows = 128 permutations and 5-gram shingles; ours also runs its exact-dedup band, boilerplate stage off.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))

from gecko.config import DedupConfig  # noqa: E402
from gecko.data.steps.dedup.planted import make_planted, score, write_shards  # noqa: E402


def _take(path: Path, lang: str, source: str, limit: int, max_chars: int = 20_000) -> list[dict]:
    out, size = [], 0
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            text = json.loads(line)["text"][:max_chars]
            out.append({"id": f"{source}/{i}", "text": text, "lang": lang, "source": source})
            size += len(text.encode())
            if size >= limit:
                break
    return out


def _code(limit: int) -> list[dict]:
    out, size = [], 0
    for p in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        text = p.read_text(encoding="utf-8", errors="replace")
        out.append({"id": f"stdlib/{p.name}/{len(out)}", "text": text, "lang": "code", "source": "stdlib"})
        size += len(text.encode())
        if size >= limit:
            break
    return out


def corpus(mb: float) -> list[dict]:
    """A third each of Korean Wikipedia, English manuals and Python source, by bytes."""
    third = int(mb * 1e6 / 3)
    return (_take(SHARED / "corpus/ko/kowiki/kowiki.jsonl", "ko", "kowiki", third)
            + _take(SHARED / "corpus/en/debian_docs/debian_docs_en.jsonl", "en", "debian_docs", third)
            + _code(third))


def run_engine(engine: str, src: Path, work: Path) -> None:
    """One engine, in this process (called in a subprocess by `speed`)."""
    if engine == "ours":
        from gecko.data.steps.dedup.run import run_dedup

        run_dedup(src, work / "out", DedupConfig(boilerplate_min_docs=0), workers=1)
        return
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    import datatrove.utils.hashes.xxhash as dt_xxhash
    import xxhash

    # datatrove 0.10 passes str to xxhash, which xxhash ≥ 4 refuses: encode first (as xxhash 3 did inside).
    dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
    cfg = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8)
    tasks = len(list(src.glob("*.jsonl")))

    def read() -> JsonlReader:
        return JsonlReader(str(src), glob_pattern="*.jsonl")

    stages = [
        ([read(), MinhashDedupSignature(str(work / "sigs"), config=cfg)], tasks),
        ([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=cfg)], cfg.num_buckets),
        ([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=cfg)], 1),
        ([read(), MinhashDedupFilter(str(work / "remove")), JsonlWriter(str(work / "out"), compression=None)],
         tasks),
    ]
    for i, (steps, n) in enumerate(stages):
        LocalPipelineExecutor(steps, tasks=n, workers=1, logging_dir=str(work / f"logs{i}")).run()


def _child(engine: str, src: Path, work: Path) -> dict:
    t0 = time.time()
    run_engine(engine, src, work)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"engine": engine, "wall_s": time.time() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_mb": ru.ru_maxrss / 1024}


def speed(mb: float, shards: int) -> list[dict]:
    docs = corpus(mb)
    size = sum(len(d["text"].encode()) for d in docs) / 1e6
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        write_shards(docs, src, shards)
        for engine in ("ours", "datatrove"):
            env = {**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "child", engine, str(src), str(Path(tmp) / engine)],
                                 env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(mb=round(size, 2), docs=len(docs), mb_per_cpu_s=size / r["cpu_s"], mb_per_wall_s=size / r["wall_s"])
            results.append(r)
            print(json.dumps(r))
    return results


def planted(n_docs: int, out: Path) -> list[dict]:
    from gecko.data.steps.dedup.run import run_dedup

    originals = (_take(SHARED / "corpus/ko/kowiki/kowiki.jsonl", "ko", "kowiki", 10**9, 3000)[:n_docs]
                 + _take(SHARED / "corpus/en/debian_docs/debian_docs_en.jsonl", "en", "debian_docs", 10**9,
                         3000)[:n_docs]
                 + [dict(d, text=d["text"][:3000]) for d in _code(10**9)[:n_docs]])
    base = DedupConfig(boilerplate_min_docs=0)
    strengths = [0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3]
    truth = make_planted(originals, 1, strengths, seed=0, cfg=base)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_shards(truth.docs, Path(tmp) / "in", 4)
        for t in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
            cfg = DedupConfig(boilerplate_min_docs=0, threshold=t)
            res = run_dedup(Path(tmp) / "in", Path(tmp) / f"out{t}", cfg)
            dups = [json.loads(line) for line in (res.work_dir / "duplicates.jsonl").open()]
            rows.append(score(truth, dups, t, cfg))
            print(json.dumps(rows[-1]))
    js = sorted(j for _, _, j in truth.pairs)
    out.write_text(json.dumps({"rows": rows, "pairs": len(js), "originals": len(originals),
                               "jaccard_quartiles": [js[len(js) // 4], js[len(js) // 2], js[3 * len(js) // 4]]},
                              indent=2) + "\n")
    _plot(rows, out.with_suffix(".png"))
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["threshold"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(t, [r["precision"] for r in rows], "o-", label="precision")
    ax.plot(t, [r["recall"] for r in rows], "s-", label="recall")
    ax.set_xlabel("threshold (Jaccard of 5-gram shingles)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("MinHash-LSH dedup on a planted set (16×8)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--mb", type=float, default=20)
    s.add_argument("--shards", type=int, default=4)
    pl = sub.add_parser("planted")
    pl.add_argument("--docs", type=int, default=300, help="originals per language")
    pl.add_argument("--out", type=Path, default=REPO / "docs" / "dedup_planted.json")
    c = sub.add_parser("child")
    c.add_argument("engine")
    c.add_argument("src", type=Path)
    c.add_argument("work", type=Path)
    args = p.parse_args()
    if args.cmd == "speed":
        speed(args.mb, args.shards)
    elif args.cmd == "planted":
        planted(args.docs, args.out)
    else:
        print(json.dumps(_child(args.engine, args.src, args.work)))


if __name__ == "__main__":
    main()
