"""BPE training and loading: a 32k Korean/English/code byte-level BPE that llama.cpp tokenizes identically.

Design (see also docs/tokenizer.md):

- Byte-level BPE (GPT-2's byte alphabet): every input, any script, emoji, control characters, NFD text,
  round-trips exactly with no `<unk>` and no normalizer (`decode(encode(x)) == x` for any string).
- The pre-tokenizer is exactly Qwen2's: the GPT-4 split with every digit alone (arithmetic sees each
  digit). llama.cpp implements it as `tokenizer.ggml.pre = qwen2`, so a GGUF export tokenizes exactly as the
  Hugging Face tokenizer does (tests/test_gguf.py); an own regex would be silently re-split by llama.cpp.
- Ids: GECKO's special block (0 … N_SPECIAL-1), then the 256 single bytes, then merges in training order.
- The earlier character-level design (custom split regex, byte fallback, forced Hangul alphabet) is kept
  below only for the ablation benchmarks that compare against it: llama.cpp cannot reproduce its regex.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

from gecko.config import TokenizerConfig, to_dict
from gecko.errors import ConfigError, DataError
from gecko.io.atomic import write_text
from gecko.tokenizer.sentencepiece import MODEL_FILE, train_sentencepiece
from gecko.tokenizer.sentencepiece import require as require_sentencepiece
from gecko.tokens import (
    BOS,
    BYTE_TOKENS,
    N_SPECIAL,
    SPECIAL_TOKENS,
    TOKENIZER_FILE,
    UNK,
    bytelevel_pipeline,
    file_sha256,
    special_id,
)

log = logging.getLogger(__name__)

SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"  # English contractions
    r"|[^\r\n\p{L}\p{N}]?\p{Hangul}+[.,!?~]*"  # a Korean word with its sentence punctuation (다. 요~ 네요...)
    r"|[^\r\n\p{L}\p{N}]?\p{L}+"  # any other word (Latin, Hanja …) with one leading space or symbol
    r"| ?\p{N}"  # every digit alone; the first may carry the space before it
    r"| ?[^\s\p{L}\p{N}]+(?:[\r\n]+[ \t]*)?"  # punctuation / operators, with a line break and the next indent
    r"|\s*[\r\n]+[ \t]*"  # line breaks with the next line's indentation
    r"|\s+(?!\S)|\s+"  # other whitespace runs
)
"""The GPT-4 (cl100k) split, changed where the ablation in docs/tokenizer.md measured a gain: single digits
(a requirement), `):\n        ` as one pre-token (code +7% chars/token), Hangul words keeping their final
punctuation, and a space before a digit joining it."""

META_FILE = "train_meta.json"


@dataclass
class CorpusScan:
    sha256: str
    bytes_per_lang: dict[str, int]
    docs_per_lang: dict[str, int]
    bytes_per_source: dict[str, dict[str, int]]
    """language → source → UTF-8 bytes."""


def train_tokenizer(cfg: TokenizerConfig, corpus: Path, out_dir: Path) -> Path:
    """Train a tokenizer of `cfg.kind` on a language- and source-balanced sample of `corpus`; write
    tokenizer.json (and, for SentencePiece, tokenizer.model: gecko.tokenizer.sentencepiece) and train_meta.json.

    Each language gets its `lang_shares` part of `max_train_bytes`, split evenly across the language's
    sources (a source smaller than its part leaves the rest to the others): one large source, such as
    Wikipedia or the stdlib, must not stand for a whole language, or the vocabulary fits its domain only.
    """
    if cfg.kind == "sentencepiece":
        require_sentencepiece()
    t0 = time.perf_counter()
    scan = scan_corpus(corpus)
    missing = sorted(set(scan.bytes_per_lang) - set(cfg.lang_shares or scan.bytes_per_lang))
    if missing:
        raise ConfigError(f"tokenizer.lang_shares has no share for {missing[0]!r}, a language of {corpus}")
    budgets = balanced_budgets(scan.bytes_per_lang, cfg.max_train_bytes, cfg.lang_shares)
    per_source = {
        (lang, source): n
        for lang, sources in scan.bytes_per_source.items()
        for source, n in balanced_budgets(sources, budgets[lang]).items()
    }
    texts, used = sample_texts(corpus, per_source)
    if not texts:
        raise DataError(f"{corpus}: no text to train a tokenizer on")
    path = out_dir / TOKENIZER_FILE
    if cfg.kind == "sentencepiece":
        tokenizer = train_sentencepiece(texts, cfg, out_dir)
    else:
        tokenizer = train_bytelevel_bpe(texts, cfg.vocab_size, cfg.min_frequency)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MODEL_FILE).unlink(missing_ok=True)  # a sentencepiece model of an earlier run is stale now
        write_text(path, tokenizer.to_str(pretty=True))
    meta = {
        "config": to_dict(cfg),
        "corpus": str(corpus),
        "corpus_sha256": scan.sha256,
        "tokenizer_sha256": file_sha256(path),
        **({"model_sha256": file_sha256(out_dir / MODEL_FILE)} if cfg.kind == "sentencepiece" else {}),
        "vocab_size": tokenizer.get_vocab_size(),
        "bytes_available": scan.bytes_per_lang,
        "bytes_used": {lang: sum(n for (lg, _), n in used.items() if lg == lang) for lang in budgets},
        "bytes_used_per_source": {f"{lang}/{source}": n for (lang, source), n in sorted(used.items())},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_text(out_dir / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    log.info(
        "tokenizer: %d tokens from %s bytes in %.1fs → %s",
        meta["vocab_size"],
        meta["bytes_used"],
        meta["seconds"],
        path,
    )
    return path


# ── corpus sampling ─────────────────────────────────────────────────────────────────────────────────────


def scan_corpus(corpus: Path) -> CorpusScan:
    """One pass: the corpus hash (recorded so a tokenizer names its data) and UTF-8 bytes per language."""
    digest = hashlib.sha256()
    size: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    per_source: dict[str, Counter[str]] = {}
    for raw, record in corpus_records(corpus):
        digest.update(raw)
        n = len(record["text"].encode("utf-8"))
        size[record["lang"]] += n
        docs[record["lang"]] += 1
        per_source.setdefault(record["lang"], Counter())[record["source"]] += n
    return CorpusScan(digest.hexdigest(), dict(size), dict(docs), {k: dict(v) for k, v in per_source.items()})


def merge_pairs(merges: list[Any]) -> list[tuple[str, str]]:
    """The merges of a trained BPE model as pairs: tokenizers writes them as "a b" strings or [a, b] lists."""
    return [_merge_pair(m) for m in merges]


def _merge_pair(merge: str | list[str]) -> tuple[str, str]:
    first, second = merge.split(" ", 1) if isinstance(merge, str) else merge
    return first, second


def balanced_budgets(
    available: dict[str, int], total: int | None, shares: dict[str, float] | None = None
) -> dict[str, int]:
    """Byte budgets in proportion to `shares` (default equal); a language with less text than its share gives
    the rest to the others, in proportion to theirs."""
    if total is None:
        return dict(available)
    weights = {lang: (shares[lang] if shares is not None else 1.0) for lang in available}
    budgets, remaining, weight_left = {}, total, sum(weights.values())
    # scarcest first (relative to its weight), so every leftover is handed to languages that can use it
    for lang in sorted(available, key=lambda x: (available[x] / weights[x] if weights[x] else 0.0, x)):
        fair = round(remaining * weights[lang] / weight_left) if weight_left else 0
        budgets[lang] = min(available[lang], fair)
        remaining -= budgets[lang]
        weight_left -= weights[lang]
    return budgets


def sample_texts(
    corpus: Path, budgets: dict[tuple[str, str], int]
) -> tuple[list[str], dict[tuple[str, str], int]]:
    """The first documents of each (language, source) up to its budget (the corpus is already shuffled).

    The document that crosses the budget is cut at a character boundary, so the sample hits it exactly.
    """
    texts: list[str] = []
    used = dict.fromkeys(budgets, 0)
    for _, record in corpus_records(corpus):
        key, text = (record["lang"], record["source"]), record["text"]
        room = budgets[key] - used[key]
        if room <= 0:
            continue
        data = text.encode("utf-8")
        if len(data) > room:
            text = data[:room].decode("utf-8", errors="ignore")
        texts.append(text)
        used[key] += len(text.encode("utf-8"))
    return texts, used


def corpus_records(corpus: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(raw line, record) for each line of a GECKO corpus; the raw bytes feed the corpus hash."""
    try:
        f = corpus.open("rb")
    except OSError as e:
        raise DataError(f"{corpus}: cannot read corpus: {e.strerror}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            yield raw, parse_record(raw, corpus, lineno)


def parse_record(raw: bytes, corpus: Path, lineno: int) -> dict[str, Any]:
    """One corpus line; anything but {id, text, lang, source} strings is an error naming file and line."""
    try:
        record = json.loads(raw)
        if not all(isinstance(record[k], str) for k in ("id", "text", "lang", "source")):
            raise TypeError("id, text, lang and source must be strings")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{corpus}:{lineno}: not a GECKO corpus record ({e})") from None
    return record


# ── BPE ───────────────────────────────────────────────────────────────────────────────────────────────


def ks_x_1001_hangul() -> tuple[str, ...]:
    """The 2,350 syllables of KS X 1001 (EUC-KR) and the 51 compatibility jamo (ㄱ … ㅣ).

    Formal training text (Wikipedia, statutes) misses hundreds of syllables and nearly all loose jamo that
    informal Korean uses (ㅋㅋ, ㅠㅠ, 쩔어, 됬); left out of the alphabet, each costs 3 byte tokens.
    """
    syllables = (bytes([hi, lo]).decode("euc-kr") for hi in range(0xB0, 0xC9) for lo in range(0xA1, 0xFF))
    return (*syllables, *map(chr, range(0x3131, 0x3164)))


HANGUL_ALPHABET = ks_x_1001_hangul()
MIN_VOCAB_FOR_HANGUL = 4 * len(HANGUL_ALPHABET)
"""Below this vocabulary (tests, the 8k demo) the forced syllables would crowd out merges, so only the
characters of `character_coverage` form the alphabet."""


def build_alphabet(texts: list[str], coverage: float, forced: tuple[str, ...]) -> list[str]:
    """`forced` plus the fewest characters covering `coverage` of all occurrences (SentencePiece's rule)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    total, covered, chosen = sum(counts.values()), 0, dict.fromkeys(forced)
    for char, count in counts.most_common():
        if covered >= coverage * total:
            break
        covered += count
        chosen[char] = None
    return list(chosen)


def train_bpe(
    texts: list[str], cfg: TokenizerConfig, alphabet: list[str], pattern: str = SPLIT_PATTERN
) -> Tokenizer:
    """Train a character BPE, then insert the 256 byte tokens after the special block and enable fallback."""
    tokenizer = _pipeline(models.BPE(), pattern)
    trainer = BpeTrainer(
        vocab_size=cfg.vocab_size - len(BYTE_TOKENS),  # the byte tokens are added after training
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),  # initial characters rank first, so exactly `alphabet` is kept
        show_progress=sys.stderr.isatty(),
    )
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    trained = json.loads(tokenizer.to_str())["model"]
    vocab = _with_byte_tokens(trained["vocab"])
    merges = merge_pairs(trained["merges"])
    final = _pipeline(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True), pattern)
    final.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    final.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, special_id(BOS))]
    )
    return final


def _pipeline(model: models.Model, pattern: str) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    # ByteFallback turns <0xXX> runs back into characters; Fuse joins pieces with no separator.
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return tokenizer


def _with_byte_tokens(trained: dict[str, int]) -> dict[str, int]:
    """Special block (ids 0…N_SPECIAL-1), then <0x00>…<0xFF>, then the learned tokens in merge order."""
    for i, token in enumerate(SPECIAL_TOKENS):
        if trained.get(token) != i:
            raise RuntimeError(f"BPE trainer put {token} at id {trained.get(token)}, expected {i}")
    learned = sorted((i, t) for t, i in trained.items() if i >= N_SPECIAL)
    order = [*SPECIAL_TOKENS, *BYTE_TOKENS, *(t for _, t in learned)]
    vocab = {token: i for i, token in enumerate(order)}
    if len(vocab) != len(order):
        raise RuntimeError("a learned token collides with a special or byte token")
    return vocab


# ── files ─────────────────────────────────────────────────────────────────────────────────────────────


# ── byte-level BPE (llama.cpp-compatible) ─────────────────────────────────────────────────────────────


def train_bytelevel_bpe(texts: list[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Train; then put the special block first and the 256 bytes right after it, whatever their frequency."""
    tokenizer = bytelevel_pipeline(models.BPE())
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=sys.stderr.isatty(),
    )
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    trained = json.loads(tokenizer.to_str())["model"]
    merges = merge_pairs(trained["merges"])
    final = bytelevel_pipeline(models.BPE(vocab=_ordered_vocab(trained["vocab"], alphabet), merges=merges))
    final.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    final.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, special_id(BOS))]
    )
    return final


def _ordered_vocab(trained: dict[str, int], alphabet: list[str]) -> dict[str, int]:
    """Special block (ids 0…N_SPECIAL-1), the 256 byte symbols in byte order, then merges in training order."""
    for i, token in enumerate(SPECIAL_TOKENS):
        if trained.get(token) != i:
            raise RuntimeError(f"BPE trainer put {token} at id {trained.get(token)}, expected {i}")
    byte_symbols = sorted(alphabet, key=lambda c: _BYTE_OF[c])
    learned = sorted((i, t) for t, i in trained.items() if i >= N_SPECIAL and t not in _BYTE_OF)
    order = [*SPECIAL_TOKENS, *byte_symbols, *(t for _, t in learned)]
    return {token: i for i, token in enumerate(order)}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (the ByteLevel alphabet)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


_BYTE_OF = {c: b for b, c in _bytes_to_unicode().items()}
