"""Which training recipe generalizes: held-out chars/token of byte-level BPEs (Qwen2's split, 32k unless said)
and of SentencePiece models (`spm` rows: BPE or Unigram, LLaMA-2's vocabulary type in llama.cpp).

Every variant is trained on a byte budget split across ko/en/code by shares and, within a language, evenly
across its training sources (a source smaller than its part leaves the rest to the others; `weights` tilt
that), and scored on whole sources left out of training (`heldout_sources`): Korean petitions, movie reviews,
news comments, boddari and APEACH comments; English Debian/PostgreSQL/Git manuals and LAMBADA fiction; code
from site-packages the stdlib lacks (transformers, pandas, scikit-learn, rich), npm packages and a C project
(the X server) that training never sees. The rows that train on other documents of NSMC and the petitions
(`in_domain_sources`), as configs/tokenizer.yaml now does, are compared on `ko_untouched` (news comments,
boddari, APEACH: its `compare.heldout`). (The Korea Herald parallel news is
not held out: its English side is byte-identical to the North Korean news' English side, a training source.)
Also counts where the vocabulary goes (`gecko.tokenizer.report.vocab_kind`), the held-out documents whose
decode(encode(x)) != x, and the training time in CPU seconds of the process (all its threads).

    .venv/bin/python bench/tokenizer_generalize.py [--out runs/bench/tokenizer_generalize] [--only NAME ...]

Needs ../shared/data and `bash tools/fetch_code_corpus.sh`. Each source is read once into --out/cache (a
seeded random sample of at most 3 MB to train on, 0.7 MB held out); writes results.jsonl to --out.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import sys
import sysconfig
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gecko import tokens
from gecko.config import SourceConfig
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import iter_records
from gecko.data.steps.normalize import normalize_text
from gecko.tokenizer import train as tok_train
from gecko.tokenizer.report import vocab_kind
from gecko.tokenizer.sentencepiece import chunks

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CODE = ROOT / "runs" / "code_corpus"
KO, EN, SAFETY, PAR = SHARED / "corpus/ko", SHARED / "corpus/en", SHARED / "safety", SHARED / "parallel"
SITE = Path(sysconfig.get_paths()["purelib"])  # the venv running this script
JS = (".js", ".mjs", ".cjs", ".ts")
TRAIN_CAP, HELD_CAP, MAX_FILES, PY_CAP = 3_000_000, 700_000, 30_000, 1_000_000
PY_PKGS = ("torch", "numpy", "sqlalchemy", "matplotlib", "networkx", "mypy")
"""Python libraries of the venv, none of them held out: Python beyond the stdlib's own style."""


def src(name: str, path: Path | str, lang: str, **kw) -> SourceConfig:
    return SourceConfig(name, str(path), lang, **kw)


def train_sources() -> list[SourceConfig]:
    kosbi, square = SAFETY / "kosbi_square/data/KoSBi", SAFETY / "kosbi_square/data/SQuARe"
    nk = PAR / "korean_parallel_corpora/northkorean-english-news-v1"
    jhe = PAR / "korean_parallel_corpora/korean-english-jhe"
    deb = CODE / "train/debian"
    return [src("kowiki", KO / "kowiki/kowiki.jsonl", "ko"),
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
            src("jhe_ko", jhe / "jhe-koen-dev.ko", "ko", format="text"),
            src("python_docs", EN / "python_docs/python311_docs_rst.jsonl", "en"),
            src("libreoffice_en", PAR / "libreoffice_help/lo_help_ko_en_pairs.jsonl", "en", text_field="en"),
            src("tatoeba_en", PAR / "tatoeba/kor.txt", "en", format="tsv", columns=("en", "ko", "by"),
                text_field="en"),
            src("nk_news_en", nk / "northkorean-english.test.en", "en", format="text"),
            src("jhe_en", jhe / "jhe-koen-dev.en", "en", format="text"),
            src("fortunes", CODE / "train/text/fortunes.txt", "en", format="text"),
            src("stdlib", sysconfig.get_paths()["stdlib"], "code", format="code"),
            src("npm", CODE / "train/npm", "code", format="code", extensions=JS),
            src("c", deb / "glibc-source", "code", format="code", extensions=(".c", ".h")),
            src("shell", deb, "code", format="code", extensions=(".sh",)),
            src("sql", deb / "postgresql-15", "code", format="code", extensions=(".sql",)),
            src("go", deb / "golang-1.19-src", "code", format="code", extensions=(".go",)),
            src("rust", deb / "rust-src", "code", format="code", extensions=(".rs",)),
            *(src(f"py_{p}", SITE / p, "code", format="code") for p in PY_PKGS),
            *in_domain_sources()]


def in_domain_sources() -> list[SourceConfig]:
    """Other documents of held-out sources (held-out documents removed): `configs/tokenizer.yaml` trains on
    NSMC and petitions, which then leave its held-out set; the oracle row trains on all four."""
    return [src("nsmc_train", KO / "nsmc/nsmc_raw_reviews.tsv", "ko", format="tsv", text_field="review"),
            src("petitions_train", KO / "petitions/petitions_20*", "ko", text_field="content"),
            src("news_comments_train", KO / "news_comments", "ko", format="text"),
            src("boddari_train", KO / "boddari/txt", "ko", format="text")]


def heldout_sources() -> list[SourceConfig]:
    return [src("petitions", KO / "petitions/petitions_2017-08", "ko", text_field="content"),
            src("nsmc", KO / "nsmc/nsmc_raw_reviews.tsv", "ko", format="tsv", text_field="review"),
            src("news_comments", KO / "news_comments", "ko", format="text"),
            src("boddari", KO / "boddari/txt", "ko", format="text"),
            src("debian_docs", EN / "debian_docs/debian_docs_en.jsonl", "en"),
            src("lambada", SHARED / "eval/lambada_openai/lambada_test.jsonl", "en"),
            *(src(p, SITE / p, "code", format="code") for p in ("transformers", "pandas", "sklearn", "rich")),
            src("npm_heldout", CODE / "heldout/npm", "code", format="code", extensions=JS),
            src("xorg", CODE / "heldout/debian", "code", format="code", extensions=(".c", ".h")),
            src("apeach", SAFETY / "apeach/APEACH/test.csv", "ko", format="csv", text_field="text")]


UNTOUCHED_KO = ("news_comments", "boddari", "apeach")
"""Korean held-out sources that no variant trains on: `ko_untouched` compares rows that train on NSMC and
petitions with rows that do not. APEACH (crowd-written comments) counts only there, so the `ko` column of
the earlier rows (petitions, NSMC, news comments, boddari) is unchanged."""


def cached(source: SourceConfig, cap: int, seed: int, cache: Path) -> list[str]:
    """A seeded random sample of the source's documents (of its first MAX_FILES), at most `cap` bytes."""
    path = cache / f"{source.lang}__{source.name}__{cap}.jsonl"
    if path.exists():
        return [json.loads(line) for line in path.open(encoding="utf-8")]
    docs = []
    for n, (_, decode) in enumerate(iter_records(source, 10_000_000)):
        if n >= MAX_FILES:
            break
        try:
            docs.append(normalize_text(decode()[1], is_code=source.lang == "code"))
        except Quarantine:
            continue
    random.Random(seed).shuffle(docs)
    docs = _take(docs, cap)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return docs


def sample(pool: dict[SourceConfig, list[str]], variant: dict) -> tuple[list[str], dict[str, int]]:
    """The variant's training text: per-language budget, split across sources by weight, capped at each size."""
    texts, used = [], {}
    for lang, share in variant["shares"].items():
        docs = {s.name: d for s, d in pool.items() if s.lang == lang and s.name not in variant.get("drop", ())}
        weights = {name: variant.get("weights", {}).get(name, 1.0) for name in docs}
        size = {name: sum(len(t.encode()) for t in d) for name, d in docs.items()}
        left, wsum = int(variant["mb"] * 1e6 * share), sum(weights.values())
        for name in sorted(docs, key=lambda n: size[n] / weights[n]):  # smallest first: leftovers flow on
            taken = _take(docs[name], int(left * weights[name] / wsum))
            wsum -= weights[name]
            used[f"{lang}/{name}"] = sum(len(t.encode()) for t in taken)
            left -= used[f"{lang}/{name}"]
            texts += taken
    return texts, used


NEW = (*(f"py_{p}" for p in PY_PKGS), *(s.name for s in in_domain_sources()))
"""Sources added after the rows above `ceiling_*` were measured: those rows drop them."""
BEFORE = {"mb": 18, "shares": {"ko": 0.45, "en": 0.22, "code": 0.33}, "drop": ("fortunes", "go", "rust", *NEW)}
COLLOQUIAL = ("chatbot_q", "chatbot_a", "community", "kosbi_context", "kosbi_sentence", "square_question",
              "news_titles")
FINAL = {**BEFORE, "drop": NEW, "shares": {"ko": 0.5, "en": 0.2, "code": 0.3}}
SHIPPED = {**FINAL, "drop": ("news_comments_train", "boddari_train")}
"""`configs/tokenizer.yaml`'s recipe (the `py_nsmc_petitions` row)."""
SPM = {"model_type": "bpe", "split_digits": True, "byte_fallback": True, "allow_whitespace_only_pieces": True,
       "remove_extra_whitespaces": False, "normalization_rule_name": "identity", "character_coverage": 0.9995}
"""SentencePiece options for an exact round trip (no normalization, spaces kept as they are, any character
through byte pieces) with single digits as in Qwen2's split; the vocabulary counts its 3 control pieces
(`<unk> <s> </s>`) and 256 byte pieces, as the byte-level rows count their special and byte tokens."""
SPM_FREE = {**SPM, "split_by_unicode_script": False, "split_by_whitespace": False}
"""Pieces may cross spaces and scripts (`수▁있다`, `):\n▁▁▁▁`): llama.cpp's SentencePiece encoder has no
pre-split, so it runs such pieces as SentencePiece does."""
SPM_CHUNK = 16_384
"""Training sentences are documents cut at line ends to at most this many bytes: SentencePiece skips longer
ones (`max_sentence_length`), and most of the sample's bytes are in longer documents (code files, articles)."""
VARIANTS = {
    # name: recipe (MB in all, shares, sources dropped, per-source weights, pre-tokenizer, vocabulary size)
    "before_45_22_33": BEFORE,
    "before_9mb": {**BEFORE, "mb": 9},
    "before_colloquial_x2": {**BEFORE, "weights": dict.fromkeys(COLLOQUIAL, 2.0)},
    "before_55_20_25": {**BEFORE, "shares": {"ko": 0.55, "en": 0.2, "code": 0.25}},
    "before_60_20_20": {**BEFORE, "shares": {"ko": 0.6, "en": 0.2, "code": 0.2}},
    "before_exaone_moe_split": {**BEFORE, "pre": "exaone_moe"},
    "before_starcoder_split": {**BEFORE, "pre": "starcoder"},
    "plus_fortunes": {**BEFORE, "drop": ("go", "rust", *NEW)},
    "plus_fortunes_50_20_30": {**FINAL, "drop": ("go", "rust", *NEW)},
    "plus_fortunes_go_rust_50_20_30": FINAL,
    "final_36mb": {**FINAL, "mb": 36},
    "final_48k_vocab": {**FINAL, "vocab": 48000},
    "final_64k_vocab": {**FINAL, "vocab": 64000},
    # ceilings at 32k: the whole vocabulary for one language, on its part of the recipe or on all its text
    "ceiling_ko_only": {**FINAL, "mb": 9, "shares": {"ko": 1.0}},
    "ceiling_ko_only_all": {**FINAL, "mb": 100, "shares": {"ko": 1.0}},
    "ceiling_code_only": {**FINAL, "mb": 5.4, "shares": {"code": 1.0}},
    "ceiling_code_only_all": {**FINAL, "drop": NEW[len(PY_PKGS):], "mb": 100, "shares": {"code": 1.0}},
    "oracle_ko_in_domain": {**FINAL, "mb": 9, "shares": {"ko": 1.0},
                            "drop": tuple(s.name for s in train_sources() if s.lang == "ko"
                                          and not s.name.endswith("_train"))},
    "final_70_15_15": {**FINAL, "shares": {"ko": 0.7, "en": 0.15, "code": 0.15}},
    # issue 20, second round: more Python, and NSMC reviews + petitions moved from held out to training
    "py_libraries": {**FINAL, "drop": NEW[len(PY_PKGS):]},
    "nsmc_petitions": {**FINAL, "drop": (*NEW[:len(PY_PKGS)], "news_comments_train", "boddari_train")},
    "py_nsmc_petitions": {**FINAL, "drop": ("news_comments_train", "boddari_train")},
    "py_nsmc_petitions_no_legal": {**FINAL, "drop": ("news_comments_train", "boddari_train", "statutes", "precedents")},
    "py_nsmc_petitions_36mb": {**FINAL, "drop": ("news_comments_train", "boddari_train"), "mb": 36},
    "py_nsmc_petitions_55_17_28": {**FINAL, "drop": ("news_comments_train", "boddari_train"),
                                   "shares": {"ko": 0.55, "en": 0.17, "code": 0.28}},
    # issue 20, third round: SentencePiece models on the shipped recipe's sample (`py_nsmc_petitions`)
    "spm_bpe": {**SHIPPED, "spm": SPM},
    "spm_bpe_no_script_split": {**SHIPPED, "spm": {**SPM, "split_by_unicode_script": False}},
    "spm_bpe_across_spaces": {**SHIPPED, "spm": {**SPM, "split_by_whitespace": False}},
    "spm_bpe_coverage_1": {**SHIPPED, "spm": {**SPM, "character_coverage": 1.0}},
    "spm_unigram": {**SHIPPED, "spm": {**SPM, "model_type": "unigram"}},
    "spm_unigram_across_spaces": {**SHIPPED, "spm": {**SPM, "model_type": "unigram", "split_by_whitespace": False}},
    "spm_bpe_no_splits": {**SHIPPED, "spm": SPM_FREE},
    "spm_bpe_no_splits_len_32": {**SHIPPED, "spm": {**SPM_FREE, "max_sentencepiece_length": 32}},
    "spm_bpe_no_splits_len_8": {**SHIPPED, "spm": {**SPM_FREE, "max_sentencepiece_length": 8}},
    "spm_bpe_no_splits_coverage_1": {**SHIPPED, "spm": {**SPM_FREE, "character_coverage": 1.0}},
    "spm_bpe_no_splits_60_15_25": {**SHIPPED, "spm": SPM_FREE, "shares": {"ko": 0.6, "en": 0.15, "code": 0.25}},
    "spm_bpe_no_splits_len_12": {**SHIPPED, "spm": {**SPM_FREE, "max_sentencepiece_length": 12}},
    "spm_bpe_no_splits_70_10_20": {**SHIPPED, "spm": SPM_FREE, "shares": {"ko": 0.7, "en": 0.1, "code": 0.2}},
    "spm_bpe_no_splits_70_15_15": {**SHIPPED, "spm": SPM_FREE, "shares": {"ko": 0.7, "en": 0.15, "code": 0.15}},
    "spm_bpe_no_splits_75_10_15": {**SHIPPED, "spm": SPM_FREE, "shares": {"ko": 0.75, "en": 0.1, "code": 0.15}},
    "spm_bpe_no_splits_75_8_17": {**SHIPPED, "spm": SPM_FREE, "shares": {"ko": 0.75, "en": 0.08, "code": 0.17}},
    "spm_bpe_no_splits_80_8_12": {**SHIPPED, "spm": SPM_FREE, "shares": {"ko": 0.8, "en": 0.08, "code": 0.12}},
    "py_nsmc_petitions_70_10_20": {**SHIPPED, "shares": {"ko": 0.7, "en": 0.1, "code": 0.2}},  # byte-level
    "spm_bpe_no_splits_70_10_20_coverage_1": {**SHIPPED, "spm": {**SPM_FREE, "character_coverage": 1.0},
                                             "shares": {"ko": 0.7, "en": 0.1, "code": 0.2}},
    "spm_bpe_no_splits_70_10_20_36mb": {**SHIPPED, "spm": SPM_FREE, "mb": 36,
                                        "shares": {"ko": 0.7, "en": 0.1, "code": 0.2}},
    "spm_ceiling_ko_only": {**FINAL, "mb": 9, "shares": {"ko": 1.0}, "spm": SPM_FREE},
    "spm_ceiling_ko_only_nsmc_petitions": {**SHIPPED, "mb": 9, "shares": {"ko": 1.0}, "spm": SPM_FREE},
    "spm_ceiling_code_only": {**FINAL, "mb": 5.4, "shares": {"code": 1.0}, "spm": SPM_FREE},
}
PRE = {  # llama.cpp's `exaone-moe` split: letters joined across single spaces (phrases as one pre-token);
    # `starcoder`: GPT-2's split after every digit is cut off alone (one regex here, two passes in llama.cpp)
    "starcoder": r"\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "exaone_moe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",
}


@dataclass
class Trained:
    """A trained tokenizer as this benchmark sees it: batch encode and decode, and the text of every id."""

    encode: Callable[[list[str]], list[list[int]]]
    decode: Callable[[list[list[int]]], list[str]]
    pieces: list[str]
    """What each id stands for, as `vocab_kind` reads it ("" for control ids)."""
    model: bytes = b""
    """The SentencePiece model file (`spm` rows), for bench/tokenizer_spm_gguf.py."""


def train_bytelevel(texts: list[str], variant: dict) -> Trained:
    """A byte-level BPE (gecko's trainer) under the variant's pre-tokenizer (Qwen2's unless `pre`)."""
    qwen2 = tokens.QWEN2_PATTERN
    tokens.QWEN2_PATTERN = PRE.get(variant.get("pre", ""), qwen2)  # bytelevel_pipeline reads it
    try:
        tok = tok_train.train_bytelevel_bpe(texts, variant.get("vocab", 32000))
    finally:
        tokens.QWEN2_PATTERN = qwen2
    return Trained(lambda docs: [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)],
                   tok.decode_batch, [tok.decode([i]) for i in range(tok.get_vocab_size())])


def train_spm(texts: list[str], variant: dict) -> Trained:
    """A SentencePiece model with the variant's `spm` options; its dummy-prefix `▁` counts, as in compare."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=chunks(texts, SPM_CHUNK), model_writer=model, vocab_size=variant.get("vocab", 32000),
        max_sentence_length=SPM_CHUNK, num_threads=2, minloglevel=2, **variant["spm"])
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return Trained(sp.encode, sp.decode, [_spm_piece(sp, i) for i in range(sp.get_piece_size())], model.getvalue())


def _spm_piece(sp, i: int) -> str:
    """A SentencePiece id's text: byte pieces as the byte (U+FFFD unless ASCII), `▁` as a space."""
    if sp.is_control(i) or sp.is_unknown(i):
        return ""
    if sp.is_byte(i):
        return bytes([int(sp.id_to_piece(i)[3:5], 16)]).decode("utf-8", "replace")
    return sp.id_to_piece(i).replace("\u2581", " ")


def score(tok: Trained, held: dict[SourceConfig, list[str]]) -> dict[str, float]:
    """Chars/token per held-out source and per language (all of its sources' text together), and how many
    held-out documents do not come back from decode(encode(x))."""
    row, totals, failures = {}, {}, 0
    for s, docs in held.items():
        ids = tok.encode(docs)
        chars, toks = sum(map(len, docs)), sum(map(len, ids))
        failures += sum(d != back for d, back in zip(docs, tok.decode(ids), strict=True))
        row[f"{s.lang}/{s.name}"] = round(chars / toks, 3)
        for group in (s.lang if s.name != "apeach" else None, "ko_untouched" if s.name in UNTOUCHED_KO else None):
            if group:
                c, t = totals.get(group, (0, 0))
                totals[group] = (c + chars, t + toks)
        if s.name in UNTOUCHED_KO:  # the same text in NFD (the tokenizer has no normalizer), NFC characters
            nfd = [unicodedata.normalize("NFD", d) for d in docs]
            c, t = totals.get("ko_untouched_nfd", (0, 0))
            totals["ko_untouched_nfd"] = (c + chars, t + sum(map(len, tok.encode(nfd))))
    return {**{lang: round(c / t, 3) for lang, (c, t) in totals.items()}, **row, "roundtrip_failures": failures}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load(cache: Path) -> tuple[dict[SourceConfig, list[str]], dict[SourceConfig, list[str]]]:
    """The held-out samples and the training pool (held-out documents removed from the `_train` sources)."""
    held = {s: cached(s, HELD_CAP, 0, cache) for s in heldout_sources()}
    pool = {s: cached(s, PY_CAP if s.name.startswith("py_") else TRAIN_CAP, 1, cache) for s in train_sources()}
    seen = {t for docs in held.values() for t in docs}
    return held, {s: [t for t in d if t not in seen] if s.name.endswith("_train") else d for s, d in pool.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs/bench/tokenizer_generalize")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    held, pool = load(args.out / "cache")
    for name, variant in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        texts, used = sample(pool, variant)
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        tok = (train_spm if "spm" in variant else train_bytelevel)(texts, variant)
        secs, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        kinds = Counter(vocab_kind(p) for p in tok.pieces if p)
        row = {"variant": name, "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1),
               "mb": {lang: round(sum(n for k, n in used.items() if k.startswith(lang + "/")) / 1e6, 2)
                      for lang in variant["shares"]},
               **score(tok, held), "vocab": dict(kinds)}
        print(json.dumps(row, ensure_ascii=False), flush=True)
        with (args.out / "results.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


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
