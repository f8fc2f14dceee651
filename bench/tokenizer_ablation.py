"""Ablation of the 32k tokenizer: what moves characters/token on held-out Korean, English and code.

Trains one tokenizer per variant (pre-tokenizer regex, byte shares per language, training size, Hangul
coverage, Korean sources) on formal Korean (kowiki, statutes, novels; later rows add precedents, Korean
Python docs, chatbot dialogue, community comments, KoSBi and SQuARe), the Python docs and the standard
library, and scores each on text of other domains: Korean petitions, movie reviews, news comments and
boddari (also per source, with the byte-fallback share); the Debian/PostgreSQL/Git manuals; the sources of
site-packages that the training Python does not ship. Held-out text that also occurs in training (same
normalized text) is dropped and counted.

    .venv/bin/python bench/tokenizer_ablation.py --out runs/bench/tokenizer_ablation [--only NAME ...]
        [--rescore]

Needs ../shared/data. Writes results.json (and one tokenizer JSON per variant) to --out; --rescore scores
the tokenizers already saved there instead of training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import sysconfig
import time
from dataclasses import replace
from pathlib import Path

from tokenizers import Tokenizer

from gecko.config import LANGS, SourceConfig, TokenizerConfig
from gecko.data.steps.normalize import normalize_text
from gecko.data.heldout import read_texts
from gecko.tokenizer.compare import HFEncoder, score
from gecko.tokens import N_SPECIAL
from gecko.tokenizer.train import HANGUL_ALPHABET, SPLIT_PATTERN, build_alphabet, train_bpe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KO, EN, SAFETY = SHARED / "corpus" / "ko", SHARED / "corpus" / "en", SHARED / "safety"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
HELDOUT_PACKAGES = ("transformers", "pandas", "sklearn", "matplotlib", "rich", "datasets", "aiohttp",
                    "huggingface_hub", "fsspec")
"""Site-packages of the venv absent from the stdlib's own site-packages (which training excludes anyway)."""


def train_sources() -> dict[str, list[SourceConfig]]:
    return {
        "ko": [SourceConfig("kowiki", str(KO / "kowiki/kowiki.jsonl"), "ko"),
               SourceConfig("statutes", str(KO / "statutes/kr_statutes.jsonl"), "ko"),
               SourceConfig("novels", str(KO / "novels/ko_pd_novels.jsonl"), "ko")],
        "ko_wide": [SourceConfig("kowiki", str(KO / "kowiki/kowiki.jsonl"), "ko"),
                    SourceConfig("statutes", str(KO / "statutes/kr_statutes.jsonl"), "ko"),
                    SourceConfig("novels", str(KO / "novels/ko_pd_novels.jsonl"), "ko"),
                    SourceConfig("precedents", str(KO / "precedents/kr_precedents.jsonl"), "ko"),
                    SourceConfig("python_docs_ko", str(KO / "python_docs_ko/python_docs_ko.jsonl"), "ko"),
                    SourceConfig("chatbot_q", str(KO / "chatbot"), "ko", format="csv", text_field="Q"),
                    SourceConfig("chatbot_a", str(KO / "chatbot"), "ko", format="csv", text_field="A")],
        "en": [SourceConfig("python_docs", str(EN / "python_docs/python311_docs_rst.jsonl"), "en")],
    }


def informal_sources() -> list[SourceConfig]:
    """Conversational Korean of domains not held out (no reviews, news comments or petitions)."""
    kosbi, square = SAFETY / "kosbi_square/data/KoSBi", SAFETY / "kosbi_square/data/SQuARe"
    return [SourceConfig("community", str(SAFETY / "curse_detection/dataset.txt"), "ko", format="tsv",
                         delimiter="|", columns=("text", "label")),
            SourceConfig("kosbi_context", str(kosbi), "ko", format="json", text_field="context"),
            SourceConfig("kosbi_sentence", str(kosbi), "ko", format="json", text_field="sentence"),
            SourceConfig("square_question", str(square), "ko", format="json", text_field="question")]


KO_MIXES = {"wide": ("kowiki", "statutes", "novels", "precedents", "python_docs_ko", "chatbot_q",
                     "chatbot_a")}
KO_MIXES["community"] = (*KO_MIXES["wide"], "community")
KO_MIXES["kosbi_square"] = (*KO_MIXES["wide"], "kosbi_context", "kosbi_sentence", "square_question")
KO_MIXES["informal"] = (*KO_MIXES["wide"], "community", "kosbi_context", "kosbi_sentence", "square_question")
"""Korean source sets read as equal bytes per source (capped at its size), as `source_weights` ∝ 1/size."""


def stdlib_code(budget: int) -> list[str]:
    """Standard-library sources in a fixed shuffled order, without its site-packages."""
    files = sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.relative_to(STDLIB).parts)
    random.Random(0).shuffle(files)
    out, used = [], 0
    for f in files:
        if used >= budget:
            break
        try:
            text = normalize_text(f.read_text(encoding="utf-8"), is_code=True)
        except UnicodeDecodeError:
            continue  # a few test files are deliberately not UTF-8
        out.append(text)
        used += len(text.encode())
    return out


def heldout_sources() -> list[SourceConfig]:
    petitions = sorted((KO / "petitions").glob("petitions_*"))
    return [
        *(SourceConfig(f"petitions_{f.name}", str(f), "ko", text_field="content") for f in petitions[:1]),
        SourceConfig("nsmc", str(KO / "nsmc/nsmc_raw_reviews.tsv"), "ko", format="tsv", text_field="review"),
        SourceConfig("news_comments", str(KO / "news_comments"), "ko", format="text"),
        SourceConfig("boddari", str(KO / "boddari/txt"), "ko", format="text"),
        SourceConfig("debian_docs", str(EN / "debian_docs/debian_docs_en.jsonl"), "en"),
        *(SourceConfig(f"site_{p}", str(SITE / p), "code", format="code") for p in HELDOUT_PACKAGES),
    ]


# Pre-tokenizer variants, each one change to the GPT-4 split with single digits (the colleague's baseline).
GPT4_SINGLE_DIGIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                     r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_WORD, _HANGUL_WORD = r"|[^\r\n\p{L}\p{N}]?\p{L}+", r"|[^\r\n\p{L}\p{N}]?\p{Hangul}+[.,!?~]*"
INDENT_PATTERN = GPT4_SINGLE_DIGIT.replace(r"|\s*[\r\n]+|", r"|\s*[\r\n]+[ \t]*|")
HANGUL_PUNCT_PATTERN = GPT4_SINGLE_DIGIT.replace(_WORD, _HANGUL_WORD + _WORD)
SPACE_DIGIT_PATTERN = GPT4_SINGLE_DIGIT.replace(r"|\p{N}|", r"| ?\p{N}|")
PUNCT_INDENT_PATTERN = GPT4_SINGLE_DIGIT.replace(r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|",
                                                 r"| ?[^\s\p{L}\p{N}]+(?:[\r\n]+[ \t]*)?|\s*[\r\n]+[ \t]*|")
ALL_PATTERN = PUNCT_INDENT_PATTERN.replace(r"|\p{N}|", r"| ?\p{N}|").replace(_WORD, _HANGUL_WORD + _WORD)
assert ALL_PATTERN == SPLIT_PATTERN, "the shipped pattern is the combination measured here"
PHRASE_PATTERN = ALL_PATTERN.replace(r"\p{Hangul}+[.,!?~]*", r"\p{Hangul}+(?: \p{Hangul}+)*[.,!?~]*")
JAMO_PATTERN = ALL_PATTERN.replace(r"\p{Hangul}+[.,!?~]*", r"[\p{Hangul}&&[^\u3131-\u318E]]+[.,!?~]*")
"""Loose jamo runs (ㅋㅋㅋ, ㅠㅠ) split from the syllables before them: `좋아요ㅋㅋ` → `좋아요` `ㅋㅋ`."""


def variants(base_mb: float) -> dict[str, dict]:
    """One change at a time against the baseline, then the shipped combination and two steps beyond it."""
    mb = int(base_mb * 1e6)

    def shares(ko: float, en: float, code: float, scale: float = 1.0) -> dict[str, int]:
        return {"ko": int(3 * mb * scale * ko), "en": int(3 * mb * scale * en), "code": int(3 * mb * scale * code)}

    equal = shares(1 / 3, 1 / 3, 1 / 3)
    final = {"budgets": shares(0.55, 0.15, 0.30), "ko_set": "ko_wide", "forced": HANGUL_ALPHABET,
             "pattern": ALL_PATTERN}
    return {
        "baseline": {"budgets": equal},
        "indent_regex": {"budgets": equal, "pattern": INDENT_PATTERN},
        "punct_indent": {"budgets": equal, "pattern": PUNCT_INDENT_PATTERN},
        "space_digit": {"budgets": equal, "pattern": SPACE_DIGIT_PATTERN},
        "hangul_punct": {"budgets": equal, "pattern": HANGUL_PUNCT_PATTERN},
        "all_regex": {"budgets": equal, "pattern": ALL_PATTERN},
        "hangul_alphabet": {"budgets": equal, "forced": HANGUL_ALPHABET},
        "coverage_99999": {"budgets": equal, "coverage": 0.99999},
        "ko_wide_sources": {"budgets": equal, "ko_set": "ko_wide"},
        "ko45_en20_code35": {"budgets": shares(0.45, 0.20, 0.35)},
        "ko55_en15_code30": {"budgets": shares(0.55, 0.15, 0.30)},
        "double_data": {"budgets": shares(1 / 3, 1 / 3, 1 / 3, 2.0)},
        "final": final,
        "final_2x": {**final, "budgets": shares(0.55, 0.15, 0.30, 2.0)},
        "final_ko45": {**final, "budgets": shares(0.45, 0.20, 0.35)},
        "final_phrases": {**final, "pattern": PHRASE_PATTERN},
        # Closing the Korean gap (2026-11-26, second round): on top of the recipe, one change per row.
        "final_balanced": {**final, "ko_mix": "wide"},
        "balanced_community": {**final, "ko_mix": "community"},
        "balanced_kosbi_square": {**final, "ko_mix": "kosbi_square"},
        "balanced_informal": {**final, "ko_mix": "informal"},
        "final_ko65": {**final, "budgets": shares(0.65, 0.10, 0.25)},
        "final_jamo_split": {**final, "pattern": JAMO_PATTERN},
        "final_min_freq5": {**final, "min_frequency": 5},
        "informal_ko65": {**final, "ko_mix": "informal", "budgets": shares(0.65, 0.10, 0.25)},
        "informal_ko65_2x": {**final, "ko_mix": "informal", "budgets": shares(0.65, 0.10, 0.25, 2.0)},
        "informal_ko65_jamo_split": {**final, "ko_mix": "informal", "budgets": shares(0.65, 0.10, 0.25),
                                     "pattern": JAMO_PATTERN},
    }


def load_all(max_train: int, max_heldout: int) -> tuple[dict[str, list[str]], dict[str, list[str]], dict]:
    """Training text per language, held-out text minus anything that is also training text; Korean held-out
    text per source under `ko:NAME` too (same documents, for the per-source table)."""
    train = {name: read_texts(srcs, max_train)[srcs[0].lang] for name, srcs in train_sources().items()}
    train["code"] = stdlib_code(max_train)
    ko_sources = {s.name: s for s in [*train_sources()["ko_wide"], *informal_sources()]}
    train.update({f"src:{n}": read_texts([s], max_train)["ko"] for n, s in ko_sources.items()})
    heldout = read_texts(heldout_sources(), max_heldout)
    ko_heldout = [s for s in heldout_sources() if s.lang == "ko"]
    share = max_heldout // len(ko_heldout)
    heldout.update({f"ko:{s.name}": read_texts([s], share)["ko"] for s in ko_heldout})
    seen = {hashlib.sha256(t.encode()).digest() for docs in train.values() for t in docs}
    overlap = {}
    for lang, docs in heldout.items():
        kept = [t for t in docs if hashlib.sha256(t.encode()).digest() not in seen]
        if lang in LANGS:
            overlap[lang] = len(docs) - len(kept)
        heldout[lang] = kept
    return train, heldout, overlap


def take(texts: list[str], budget: int) -> list[str]:
    out, used = [], 0
    for t in texts:
        if used >= budget:
            break
        out.append(t)
        used += len(t.encode())
    return out


def lang_texts(lang: str, budget: int, spec: dict, train: dict[str, list[str]]) -> list[str]:
    """A language's training text: a prefix of its set, or with `ko_mix` equal bytes per Korean source."""
    if lang == "ko" and "ko_mix" in spec:
        names = KO_MIXES[spec["ko_mix"]]
        return [t for n in names for t in take(train[f"src:{n}"], budget // len(names))]
    return take(train[spec.get("ko_set", "ko") if lang == "ko" else lang], budget)


BYTE_IDS = range(N_SPECIAL, N_SPECIAL + 256)


def byte_fallback_share(tok: Tokenizer, texts: list[str]) -> float:
    """Share of tokens that are byte-fallback tokens (`<0x..>`): characters the vocabulary cannot spell."""
    ids = [i for enc in tok.encode_batch(texts, add_special_tokens=False) for i in enc.ids]
    return sum(BYTE_IDS.start <= i < BYTE_IDS.stop for i in ids) / max(1, len(ids))


def run_variant(name: str, spec: dict, train: dict[str, list[str]], heldout: dict[str, list[str]],
                vocab: int, out: Path, rescore: bool) -> dict:
    texts = [t for lang, budget in spec["budgets"].items() for t in lang_texts(lang, budget, spec, train)]
    coverage = spec.get("coverage", 0.9999)  # the character-level design's alphabet rule
    cfg = TokenizerConfig(vocab_size=vocab, min_frequency=spec.get("min_frequency", 2))
    t0 = time.perf_counter()
    if rescore:
        tok = Tokenizer.from_file(str(out / f"{name}.json"))
    else:
        alphabet = build_alphabet(texts, coverage, spec.get("forced", ()))
        tok = train_bpe(texts, cfg, alphabet, spec.get("pattern", GPT4_SINGLE_DIGIT))
        tok.encode_special_tokens = True
        tok.save(str(out / f"{name}.json"))
    seconds = None if rescore else round(time.perf_counter() - t0, 1)
    scores = {s.lang: round(s.chars_per_token, 3) for s in score(HFEncoder(name, tok), heldout)}
    scores["ko_byte_fallback"] = round(byte_fallback_share(tok, heldout["ko"]), 4)
    used = {lang: sum(len(t.encode()) for t in lang_texts(lang, b, spec, train))
            for lang, b in spec["budgets"].items()}
    row = {"variant": name, "train_mb": {k: round(v / 1e6, 1) for k, v in used.items()},
           "coverage": coverage, "seconds": seconds, **scores}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/tokenizer_ablation"))
    parser.add_argument("--train-mb", type=float, default=5.0, help="training MB per language (baseline)")
    parser.add_argument("--heldout-mb", type=float, default=2.0)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--rescore", action="store_true", help="score the tokenizers saved in --out")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} not found", file=sys.stderr)
        return 1
    specs = variants(args.train_mb)
    train, heldout, overlap = load_all(int(args.train_mb * 2.5e6), int(args.heldout_mb * 1e6))
    print("held-out docs dropped as also in training:", overlap, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_variant(n, s, train, heldout, args.vocab, args.out, args.rescore) for n, s in specs.items()
            if not args.only or n in args.only]
    (args.out / "results.json").write_text(json.dumps({"overlap": overlap, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
