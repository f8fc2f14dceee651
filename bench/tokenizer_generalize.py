"""Which byte-level BPE recipe generalizes: held-out chars/token for pre-tokenizers and training samples.

Every variant is a byte-level BPE that llama.cpp can run (its pre-tokenizer is one llama.cpp implements),
trained on a per-domain byte budget split evenly across that domain's training sources, and scored on
whole sources left out of training (`HELDOUT`): Korean petitions, movie reviews, news comments, boddari
and the Korean side of the Korea Herald parallel news; English Debian/PostgreSQL/Git manuals, LAMBADA
fiction and the English side of that news; code from site-packages the stdlib lacks, npm packages and a
C project (the X server) that training never sees.

    .venv/bin/python bench/tokenizer_generalize.py --out runs/bench/tokenizer_generalize [--only NAME ...]

Needs ../shared/data and `bash tools/fetch_code_corpus.sh`. Writes results.json to --out.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

from tokenizers import Tokenizer

from gecko.config import SourceConfig, TokenizerConfig
from gecko.data.normalize import normalize_text
from gecko.data.readers import Quarantine, iter_records
from gecko.tokenizer.compare import HFEncoder, score
from gecko.tokenizer.train import HANGUL_ALPHABET, build_alphabet, train_bpe, train_bytelevel_bpe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CODE = ROOT / "runs" / "code_corpus"
KO, EN, SAFETY, PAR = SHARED / "corpus/ko", SHARED / "corpus/en", SHARED / "safety", SHARED / "parallel"
SITE = Path(sysconfig.get_paths()["purelib"])  # the venv running this script
JS = (".js", ".mjs", ".cjs", ".ts")


def src(name: str, path: Path | str, lang: str, **kw) -> SourceConfig:
    return SourceConfig(name, str(path), lang, **kw)


def train_sources() -> dict[str, list[SourceConfig]]:
    kosbi, square = SAFETY / "kosbi_square/data/KoSBi", SAFETY / "kosbi_square/data/SQuARe"
    nk = PAR / "korean_parallel_corpora/northkorean-english-news-v1"
    jhe = PAR / "korean_parallel_corpora/korean-english-jhe"
    return {
        "ko": [src("kowiki", KO / "kowiki/kowiki.jsonl", "ko"),
               src("statutes", KO / "statutes/kr_statutes.jsonl", "ko"),
               src("precedents", KO / "precedents/kr_precedents.jsonl", "ko"),
               src("novels", KO / "novels/ko_pd_novels.jsonl", "ko"),
               src("python_docs_ko", KO / "python_docs_ko/python_docs_ko.jsonl", "ko"),
               src("chatbot_q", KO / "chatbot/ChatbotData.csv", "ko", format="csv", text_field="Q"),
               src("chatbot_a", KO / "chatbot/ChatbotData.csv", "ko", format="csv", text_field="A"),
               src("community", SAFETY / "curse_detection/dataset.txt", "ko", format="tsv", delimiter="|",
                   columns=("text", "label")),
               src("kosbi_context", kosbi, "ko", format="json", text_field="context"),
               src("kosbi_sentence", kosbi, "ko", format="json", text_field="sentence"),
               src("square_question", square, "ko", format="json", text_field="question"),
               src("news_titles", SAFETY / "kocohub_hate/news_title/train.news_title.txt", "ko", format="tsv",
                   columns=("text",)),
               src("libreoffice_ko", PAR / "libreoffice_help/lo_help_ko_en_pairs.jsonl", "ko", text_field="ko"),
               src("tatoeba_ko", PAR / "tatoeba/kor.txt", "ko", format="tsv", columns=("en", "ko", "by"),
                   text_field="ko"),
               src("nk_news_ko", nk / "northkorean-english.test.nk", "ko", format="text"),
               src("jhe_ko", jhe / "jhe-koen-dev.ko", "ko", format="text")],
        "en": [src("python_docs", EN / "python_docs/python311_docs_rst.jsonl", "en"),
               src("libreoffice_en", PAR / "libreoffice_help/lo_help_ko_en_pairs.jsonl", "en", text_field="en"),
               src("tatoeba_en", PAR / "tatoeba/kor.txt", "en", format="tsv", columns=("en", "ko", "by"),
                   text_field="en"),
               src("nk_news_en", nk / "northkorean-english.test.en", "en", format="text"),
               src("jhe_en", jhe / "jhe-koen-dev.en", "en", format="text")],
        "code": [src("stdlib", "{stdlib}", "code"),
                 src("npm", CODE / "train/npm", "code", format="code", extensions=JS),
                 src("c", CODE / "train/debian/glibc-source", "code", format="code", extensions=(".c", ".h")),
                 src("shell", CODE / "train/debian", "code", format="code", extensions=(".sh",)),
                 src("sql", CODE / "train/debian/postgresql-15", "code", format="code", extensions=(".sql",))],
    }


def heldout_sources(news: Path) -> dict[str, list[SourceConfig]]:
    site = [src(p, SITE / p, "code", format="code") for p in ("transformers", "pandas", "sklearn", "rich")]
    return {
        "ko": [src("petitions", KO / "petitions/petitions_2017-08", "ko", text_field="content"),
               src("nsmc", KO / "nsmc/nsmc_raw_reviews.tsv", "ko", format="tsv", text_field="review"),
               src("news_comments", KO / "news_comments", "ko", format="text"),
               src("boddari", KO / "boddari/txt", "ko", format="text"),
               src("park_news_ko", news / "korean-english-park.test.ko", "ko", format="text")],
        "en": [src("debian_docs", EN / "debian_docs/debian_docs_en.jsonl", "en"),
               src("lambada", SHARED / "eval/lambada_openai/lambada_test.jsonl", "en"),
               src("park_news_en", news / "korean-english-park.test.en", "en", format="text")],
        "code": [*site,
                 src("npm_heldout", CODE / "heldout/npm", "code", format="code", extensions=JS),
                 src("xorg", CODE / "heldout/debian", "code", format="code", extensions=(".c", ".h"))],
    }


def read_source(source: SourceConfig, budget: int, seed: int) -> list[str]:
    """`budget` bytes of a source's documents in a seeded random order (not the first files only)."""
    docs = []
    for _, decode in iter_records(source, 10_000_000):
        try:
            docs.append(normalize_text(decode()[1], is_code=source.lang == "code"))
        except Quarantine:
            continue
    random.Random(seed).shuffle(docs)
    out, used = [], 0
    for text in docs:
        if used >= budget:
            break
        data = text.encode()[:budget - used]
        out.append(data.decode("utf-8", errors="ignore"))
        used += len(data)
    return out


def read_domain(sources: list[SourceConfig], budget: int, seed: int) -> list[str]:
    """Equal bytes per source; a source smaller than its share leaves the rest to the others."""
    texts, left = [], budget
    by_size = []
    for s in sources:
        docs = read_source(s, budget, seed)
        by_size.append((sum(len(t.encode()) for t in docs), s.name, docs))
    by_size.sort(key=lambda x: x[0])
    for i, (size, _, docs) in enumerate(by_size):
        share = left // (len(by_size) - i)
        taken = _take(docs, share)
        used = sum(len(t.encode()) for t in taken)
        texts.extend(taken)
        left -= used
    random.Random(seed).shuffle(texts)  # a prefix of the result keeps the per-source balance
    return texts


VARIANTS = {
    # name: (pre-tokenizer, MB ko/en/code)
    "qwen2_8_4_6": ("qwen2", (8, 4, 6)),
    "starcoder_8_4_6": ("starcoder", (8, 4, 6)),
    "qwen2_10_3_6": ("qwen2", (10, 3, 6)),
    "qwen2_10_4_8": ("qwen2", (10, 4, 8)),
    "char_custom_8_4_6": ("char", (8, 4, 6)),
    "qwen2_16_4_8": ("qwen2", (16, 4, 8)),
    "qwen2_20_6_10": ("qwen2", (20, 6, 10)),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs/bench/tokenizer_generalize")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--heldout-mb", type=float, default=2.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    news = args.out / "park_news"
    if not news.is_dir():
        with tarfile.open(PAR / "korean_parallel_corpora/korean-english-news-v1/korean-english-park.test.tar.gz") as t:
            t.extractall(news, filter="data")
    held = {lang: read_domain(s, int(args.heldout_mb * 1e6), 0) for lang, s in heldout_sources(news).items()}
    held_by_source = {lang: [(s, read_source(s, int(args.heldout_mb * 1e6 / len(srcs)), 0)) for s in srcs]
                      for lang, srcs in heldout_sources(news).items()}
    pool = {lang: read_domain(s, 20_000_000, 1) for lang, s in train_sources().items()}
    results = []
    for name, (pre, mb) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        texts = [t for (lang, docs), m in zip(pool.items(), mb) for t in _take(docs, int(m * 1e6))]
        t0 = time.perf_counter()
        tok = (train_bytelevel_bpe(texts, 32000) if pre == "qwen2" else
               train_bpe(texts, TokenizerConfig(), build_alphabet(texts, 0.9999, HANGUL_ALPHABET)))
        secs = time.perf_counter() - t0
        tok.save(str(args.out / f"{name}.json"))
        row = {"variant": name, "pre": pre, "mb": mb, "seconds": round(secs, 1),
               **{s.lang: round(s.chars_per_token, 3) for s in score(HFEncoder(name, tok), held)},
               **{f"{k}/{s.name}": round(v.chars_per_token, 3) for k, srcs in held_by_source.items()
                  for s, docs in srcs for v in score(HFEncoder(name, tok), {k: docs})}}
        results.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def _take(docs: list[str], budget: int) -> list[str]:
    """Documents up to `budget` UTF-8 bytes; the one crossing it is cut at a character boundary."""
    out, used = [], 0
    for t in docs:
        if used >= budget:
            break
        data = t.encode()[:budget - used]
        out.append(data.decode("utf-8", errors="ignore"))
        used += len(data)
    return out


if __name__ == "__main__":
    sys.exit(main())
