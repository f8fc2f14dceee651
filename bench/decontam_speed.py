"""Decontamination MB/s per core on real Korean, English and code, against the five benchmark sets.

    .venv/bin/python bench/decontam_speed.py [--planted 40]

Input: all of kowiki, statutes, petitions and NSMC (Korean), the Python and Debian manuals (English) from
../shared/data/corpus, and every `.py` file of this interpreter's standard library (code). Benchmarks:
KMMLU, MMLU, HumanEval, MBPP and GSM8K from ../shared/data/eval. Reported: the index build (cold) and load
(cached by content hash) in CPU seconds, then per language the matching speed in CPU seconds of this process
(so the figure is per core even on a shared machine) and the documents flagged; the flagged documents of
clean text are the false-positive ceiling (some are true quotes: statutes quoted by KMMLU law questions).
Last, `--planted` real items per benchmark, changed (re-spaced, full-width, upper-cased, NFKD) and planted
into real host documents: how many are found.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import sysconfig
import time
import unicodedata
from pathlib import Path

from gecko.config import BenchmarkConfig, DecontamConfig
from gecko.data.text import overlap
from gecko.data.steps.decontam import BenchmarkIndex, build_index, index_path, load_items

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
E, C = DATA / "eval", DATA / "corpus"
BENCHMARKS = (BenchmarkConfig("kmmlu", str(E / "kmmlu/data"), "kmmlu"), BenchmarkConfig("mmlu", str(E / "mmlu/data"), "mmlu"),
              BenchmarkConfig("humaneval", str(E / "humaneval/data/HumanEval.jsonl.gz"), "humaneval"),
              BenchmarkConfig("mbpp", str(E / "mbpp/mbpp.jsonl"), "mbpp"),
              BenchmarkConfig("gsm8k", str(E / "gsm8k/grade_school_math/data/test.jsonl"), "gsm8k"))


def _jsonl(path: Path, field: str = "text") -> list[str]:
    return [json.loads(line)[field] for line in path.open(encoding="utf-8")]


def corpora() -> dict[str, dict[str, list[str]]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return {
        "ko": {"kowiki": _jsonl(C / "ko/kowiki/kowiki.jsonl"), "statutes": _jsonl(C / "ko/statutes/kr_statutes.jsonl"),
               "petitions": [t for p in sorted((C / "ko/petitions").glob("petitions_*")) for t in _jsonl(p, "content")],
               "nsmc": [r["review"] or "" for r in csv.DictReader((C / "ko/nsmc/nsmc_raw_reviews.tsv").open(encoding="utf-8"),
                                                                  delimiter="\t")]},
        "en": {"python_docs": _jsonl(C / "en/python_docs/python311_docs_rst.jsonl"),
               "debian_docs": _jsonl(C / "en/debian_docs/debian_docs_en.jsonl")},
        "code": {"stdlib": [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.rglob("*.py"))]},
    }


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _respace(text: str, rng: random.Random) -> str:
    return "".join(rng.choice(["", "  ", "\n"]) if c == " " and "\uac00" <= p <= "\ud7a3" else
                   rng.choice([" ", "  ", "\n"]) if c == " " else f" {c} " if c in ",.?!:;()" else c
                   for p, c in zip(" " + text, text))


VARIANTS = {"respaced": _respace, "full_width": lambda t, r: _full_width(t), "upper": lambda t, r: t.upper(),
            "nfkd": lambda t, r: unicodedata.normalize("NFKD", t)}


def planted(cfg: DecontamConfig, index: BenchmarkIndex, hosts: dict[str, list[str]], per_set: int) -> tuple[int, int]:
    rng = random.Random(17)
    docs, ids = [], []
    for bench in cfg.benchmarks:
        items = load_items(bench)
        weights = overlap.text_weights([it.text for it in items])
        items = [it for it, w in zip(items, weights) if w >= cfg.min_item_units * overlap.WORD_WEIGHT]
        lang = {"kmmlu": "ko", "humaneval": "code", "mbpp": "code"}.get(bench.name, "en")
        for item in rng.sample(items, per_set):
            host, variant = rng.choice(hosts[lang]), rng.choice(sorted(VARIANTS))
            cut = rng.randrange(len(host) + 1)
            docs.append(host[:cut] + "\n" + VARIANTS[variant](item.text, rng) + "\n" + host[cut:])
            ids.append(item.id)
    found = index.match(docs)
    return sum(i in f for i, f in zip(ids, found)), len(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--planted", type=int, default=40, help="items planted per benchmark")
    args = ap.parse_args()
    cfg = DecontamConfig(benchmarks=BENCHMARKS)
    print(f"# decontamination speed, {platform.node()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    t = time.process_time()
    arrays = build_index(cfg)
    print(f"index build (cold): {time.process_time() - t:.1f} CPU-s, {len(arrays['item_ids']):,} items, "
          f"{len(arrays['hashes']):,} windows, {int(arrays['unchecked'][0])} items too short to check")
    index_path(cfg)
    t = time.process_time()
    index = BenchmarkIndex(index_path(cfg))
    print(f"index load (cached): {time.process_time() - t:.2f} CPU-s\n")
    print("| lang | source | docs | MB | MB/s/core | flagged |\n|---|---|---:|---:|---:|---:|")
    data = corpora()
    for lang, sources in data.items():
        total_mb = total_s = 0.0
        for name, texts in sources.items():
            mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
            t = time.process_time()
            flagged = sum(1 for f in index.match(texts) if f)
            dt = time.process_time() - t
            total_mb, total_s = total_mb + mb, total_s + dt
            print(f"| {lang} | {name} | {len(texts):,} | {mb:.1f} | {mb / dt:.1f} | {flagged} |")
        print(f"| **{lang}** | all | | {total_mb:.1f} | **{total_mb / total_s:.1f}** | |")
    hosts = {"ko": data["ko"]["kowiki"][:500], "en": data["en"]["debian_docs"][:500], "code": data["code"]["stdlib"][:500]}
    found, n = planted(cfg, index, hosts, args.planted)
    print(f"\nplanted real items (re-spaced / full-width / upper-cased / NFKD) found: {found}/{n}")


if __name__ == "__main__":
    main()
