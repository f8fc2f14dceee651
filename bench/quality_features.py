"""Measure the quality-rule features and drop rates per source on ../shared/data (how the defaults were chosen).

    .venv/bin/python bench/quality_features.py [--max-docs 2000]

For every source: percentiles of each feature of its language, and the share of documents each rule drops
with the current defaults (gecko.config.CleanConfig). Output: a markdown table per language on stdout.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from gecko.config import CleanConfig, SourceConfig
from gecko.data.steps import quality
from gecko.data.steps.normalize import normalize_text
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import iter_records

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"

SOURCES = [
    SourceConfig("kowiki", str(SHARED / "ko/kowiki/kowiki.jsonl"), "ko"),
    SourceConfig("statutes", str(SHARED / "ko/statutes/kr_statutes.jsonl"), "ko"),
    SourceConfig("precedents", str(SHARED / "ko/precedents/kr_precedents.jsonl"), "ko"),
    SourceConfig("novels", str(SHARED / "ko/novels/ko_pd_novels.jsonl"), "ko"),
    SourceConfig("python_docs_ko", str(SHARED / "ko/python_docs_ko/python_docs_ko.jsonl"), "ko"),
    SourceConfig("petitions", str(SHARED / "ko/petitions/petitions_2019-04"), "ko", text_field="content"),
    SourceConfig("nsmc", str(SHARED / "ko/nsmc/nsmc_raw_reviews.tsv"), "ko", format="tsv", text_field="review"),
    SourceConfig("chatbot_q", str(SHARED / "ko/chatbot/ChatbotData.csv"), "ko", format="csv", text_field="Q"),
    SourceConfig("python_docs", str(SHARED / "en/python_docs/python311_docs_rst.jsonl"), "en"),
    SourceConfig("debian_docs", str(SHARED / "en/debian_docs/debian_docs_en.jsonl"), "en"),
]
FEATURES = {"ko": quality.ko_features, "en": quality.en_features, "code": quality.code_features}


def stdlib_source() -> SourceConfig:
    import sysconfig

    return SourceConfig("py_stdlib", sysconfig.get_paths()["stdlib"], "code", format="code")


def texts(src: SourceConfig, max_docs: int) -> list[str]:
    out = []
    for _, decode in iter_records(src, 10_000_000):
        try:
            _, text, _ = decode()
        except Quarantine:
            continue
        out.append(normalize_text(text, is_code=src.lang == "code"))
        if len(out) >= max_docs:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-docs", type=int, default=2000)
    args = ap.parse_args()
    cfg = CleanConfig()
    for src in [*SOURCES, stdlib_source()]:
        docs = texts(src, args.max_docs)
        feats = [FEATURES[src.lang](t) for t in docs]
        reasons = Counter(quality.check(t, src.lang, cfg, 20) or "kept" for t in docs)
        print(f"\n### {src.name} ({src.lang}, {len(docs)} docs)\n")
        print("| feature | p1 | p5 | p50 | p95 | p99 |\n|---|---:|---:|---:|---:|---:|")
        for key in feats[0]:
            v = np.percentile([f[key] for f in feats], [1, 5, 50, 95, 99])
            print(f"| {key} | " + " | ".join(f"{x:.3g}" for x in v) + " |")
        print("\ndrops: " + ", ".join(f"{r} {n / len(docs):.1%}" for r, n in reasons.most_common()))


if __name__ == "__main__":
    main()
