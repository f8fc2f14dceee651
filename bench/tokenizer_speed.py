"""Tokenizer speed: BPE training time and peak memory against corpus size; encoding MB/s on 1 and all cores
for GECKO (HF tokenizers), SentencePiece BPE trained on the same text, and tiktoken built from our merges;
and `gecko tokenize` (shards) throughput with 1 and all workers. Everything in one run on one machine.

    .venv/bin/python bench/tokenizer_speed.py --out runs/bench/tokenizer_speed [--sizes 5 10 20 40]

Each measurement runs in a fresh subprocess, so thread pools are sized by environment variables before the
libraries load and peak RSS (ru_maxrss) belongs to that measurement alone. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_ablation import heldout_sources, stdlib_code, train_sources  # noqa: E402

from gecko.config import TokenizeConfig, TokenizerConfig  # noqa: E402
from gecko.data.heldout import read_texts  # noqa: E402
from gecko.tokens import BYTE_TOKENS, SPECIAL_TOKENS  # noqa: E402
from gecko.tokenizer.train import HANGUL_ALPHABET, SPLIT_PATTERN, build_alphabet, train_bpe  # noqa: E402

SHARES = {"ko": 0.55, "en": 0.15, "code": 0.30}


def training_text(total_mb: float) -> list[str]:
    """Text of the shipped recipe's sources and shares, `total_mb` MB in all."""
    budgets = {lang: int(total_mb * 1e6 * share) for lang, share in SHARES.items()}
    srcs = train_sources()
    texts = read_texts(srcs["ko_wide"], budgets["ko"])["ko"] + read_texts(srcs["en"], budgets["en"])["en"]
    return texts + stdlib_code(budgets["code"])


# ── child measurements (run as `tokenizer_speed.py --child KIND ARGS`) ───────────────────────────────


def child_train(total_mb: float, out: Path) -> dict:
    texts = training_text(total_mb)
    t0 = time.perf_counter()
    tok = train_bpe(texts, TokenizerConfig(), build_alphabet(texts, 0.9999, HANGUL_ALPHABET))
    seconds = time.perf_counter() - t0
    tok.save(str(out))
    return {"mb": round(sum(len(t.encode()) for t in texts) / 1e6, 2), "seconds": round(seconds, 2)}


def child_train_spm(total_mb: float, out: Path) -> dict:
    import sentencepiece as spm

    texts = training_text(total_mb)
    model = io.BytesIO()
    t0 = time.perf_counter()
    lines = (line for text in texts for line in text.split("\n") if line.strip())  # SentencePiece learns lines
    spm.SentencePieceTrainer.train(sentence_iterator=lines, model_writer=model, vocab_size=32000,
                                   model_type="bpe", byte_fallback=True, split_digits=True,
                                   character_coverage=0.9999, minloglevel=2, num_threads=os.cpu_count() or 1)
    seconds = time.perf_counter() - t0
    out.write_bytes(model.getvalue())
    return {"mb": round(sum(len(t.encode()) for t in texts) / 1e6, 2), "seconds": round(seconds, 2)}


def tiktoken_from_ours(tokenizer_json: Path):
    """A byte-level tiktoken Encoding with our vocabulary in merge order.

    Our alphabet is characters; tiktoken merges bytes, so each multi-byte character's byte prefixes get a
    rank just below it. Text outside our alphabet may then split differently (we count the agreement).
    """
    import tiktoken

    vocab = json.loads(tokenizer_json.read_text())["model"]["vocab"]
    ranks: dict[bytes, int] = {bytes([b]): b for b in range(256)}
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        if token in SPECIAL_TOKENS or token in BYTE_TOKENS:
            continue
        data = token.encode("utf-8")
        for end in range(2, len(data) + 1):  # prefixes first: every token is reachable by pairwise merges
            ranks.setdefault(data[:end], len(ranks))
    specials = {t: len(ranks) + i for i, t in enumerate(SPECIAL_TOKENS)}
    return tiktoken.Encoding("gecko-tiktoken", pat_str=SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def child_encode(kind: str, model: Path, threads: int, texts_file: Path) -> dict:
    texts = json.loads(texts_file.read_text())
    mb = sum(len(t.encode()) for t in texts) / 1e6
    if kind == "gecko":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(model))
        run = lambda: sum(len(e.ids) for e in tok.encode_batch_fast(texts, add_special_tokens=False))  # noqa: E731
    elif kind == "sentencepiece":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model))
        run = lambda: sum(len(x) for x in sp.encode(texts, num_threads=threads))  # noqa: E731
    else:
        enc = tiktoken_from_ours(model)
        run = lambda: sum(len(x) for x in enc.encode_ordinary_batch(texts, num_threads=threads))  # noqa: E731
    run()  # warm-up: lazy initialisation and page cache
    t0 = time.perf_counter()
    tokens = run()
    seconds = time.perf_counter() - t0
    return {"tokens": tokens, "mb_per_s": round(mb / seconds, 2), "seconds": round(seconds, 3)}


def child_shards(tokenizer_dir: Path, corpus: Path, workers: int, out: Path) -> dict:
    from gecko.tokenizer.pretokenize import pretokenize

    mb = corpus.stat().st_size / 1e6
    t0 = time.perf_counter()
    stats = pretokenize(TokenizeConfig(workers=workers, chunk_bytes=1 << 20), corpus, tokenizer_dir, out, 0)
    seconds = time.perf_counter() - t0
    tokens = stats["train"]["tokens"] + stats["val"]["tokens"]
    return {"tokens": tokens, "mb_per_s": round(mb / seconds, 2), "seconds": round(seconds, 3)}


def run_child(args: list[str], threads: int | None = None) -> dict:
    env = dict(os.environ)
    if threads is not None:  # tokenizers sizes its rayon pool from this when it loads
        env["RAYON_NUM_THREADS"] = str(threads)
        env["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "train":
        row = child_train(float(rest[0]), Path(rest[1]))
    elif kind == "train_spm":
        row = child_train_spm(float(rest[0]), Path(rest[1]))
    elif kind == "encode":
        row = child_encode(rest[0], Path(rest[1]), int(rest[2]), Path(rest[3]))
    else:
        row = child_shards(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]))
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(row))


# ── driver ────────────────────────────────────────────────────────────────────────────────────────────


def main() -> int:
    if "--child" in sys.argv:
        child_main(sys.argv[sys.argv.index("--child") + 1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/tokenizer_speed"))
    parser.add_argument("--sizes", type=float, nargs="+", default=[5, 10, 20, 40], help="training MB")
    parser.add_argument("--encode-mb", type=float, default=2.0, help="held-out MB per language to encode")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    results: dict = {"cores": cores, "train": [], "encode": [], "shards": []}
    for mb in args.sizes:
        for kind, suffix in (("train", "json"), ("train_spm", "model")):
            row = run_child([kind, str(mb), str(args.out / f"{kind}_{mb:g}.{suffix}")])
            results["train"].append({"trainer": kind, **row})
            print(kind, row, flush=True)
    largest = max(args.sizes)
    ours, spm_model = args.out / f"train_{largest:g}.json", args.out / f"train_spm_{largest:g}.model"
    texts = [t for docs in read_texts(heldout_sources(), int(args.encode_mb * 1e6)).values() for t in docs]
    texts_file = args.out / "heldout_texts.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False))
    for kind, model in (("gecko", ours), ("sentencepiece", spm_model), ("tiktoken", ours)):
        for threads in sorted({1, cores}):
            row = run_child(["encode", kind, str(model), str(threads), str(texts_file)], threads)
            results["encode"].append({"encoder": kind, "threads": threads, **row})
            print(kind, threads, row, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tok"
        tok_dir.mkdir()
        tok_dir.joinpath("tokenizer.json").write_bytes(ours.read_bytes())
        corpus = Path(tmp) / "corpus.jsonl"
        with corpus.open("w", encoding="utf-8") as f:
            for i, text in enumerate(texts):
                f.write(json.dumps({"id": str(i), "text": text, "lang": "ko", "source": "heldout"},
                                   ensure_ascii=False) + "\n")
        for workers in sorted({1, cores}):
            row = run_child(["shards", str(tok_dir), str(corpus), str(workers), str(Path(tmp) / f"s{workers}")])
            results["shards"].append({"workers": workers, **row})
            print("shards", workers, row, flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
