"""Extend an existing BPE tokenizer with Korean (and code) tokens: every original id kept, new ids appended.

Continued BPE: the base tokenizer's own segmentation is the starting point, and new merges are learned on
top of it, ranked after every base merge. A BPE encoder always applies the lowest-ranked applicable merge,
so on any text it first reaches exactly the base segmentation, then applies the new merges over base tokens;
a new merge's output never feeds a base merge. Hence: original ids unchanged, `decode(encode(x))` identical
to the base's, and English text that the new merges do not touch is segmented exactly as before.

The merges are learned by Hugging Face `tokenizers`' BPE trainer, which works on characters: each unit of
the base segmentation (a base token, or a character the base spells in byte-fallback tokens) is mapped to one
Private-Use-Area character, so the trainer merges base tokens as if they were letters. Works for byte-level
BPE bases (GPT-2 style: SmolLM2, Llama-3, Qwen) and SentencePiece-derived BPE bases (`▁` word markers and
`<0xXX>` byte fallback: LLaMA-2, Mistral; a `.model` file is converted by transformers first). For the latter
a Korean syllable the base spells in bytes becomes a new single-character token when a learned merge uses it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers
from tokenizers.trainers import BpeTrainer

from gecko.config import LANGS, GeckoConfig
from gecko.errors import ConfigError, DataError, pip_hint
from gecko.io.atomic import write_text
from gecko.tokenizer.compare import TextReader
from gecko.tokenizer.train import balanced_budgets, corpus_records, merge_pairs
from gecko.tokens import EXTENSION_FILE, TOKENIZER_FILE, NewToken, file_sha256, gguf_tokenizer_json

log = logging.getLogger(__name__)

REPORT_FILE = "extension_report.md"
HELDOUT_EVERY = 20
"""One corpus document in this many (by a hash of its id) is held out from merge training for the report."""
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SP_WORD = re.compile(r"▁?[^▁]+|▁")
"""SentencePiece-style bases pre-tokenize nothing: a word is a `▁` and what follows, up to the next `▁`."""
_PUA_RANGES = ((0xF0000, 0xFFFFE), (0x100000, 0x10FFFE), (0xE000, 0xF900))


@dataclass(frozen=True)
class Extension:
    tokenizer: Tokenizer
    base_vocab_size: int
    """One past the largest id of the base tokenizer (model vocabulary and added tokens)."""
    new_tokens: list[NewToken]
    merges_added: int

    @property
    def vocab_size(self) -> int:
        return self.base_vocab_size + len(self.new_tokens)


# ── loading a base ────────────────────────────────────────────────────────────────────────────────────


def load_base(path: Path) -> dict[str, Any]:
    """The base's tokenizer.json as a dict: a tokenizer.json file, a folder holding one, a SentencePiece
    `.model` (converted by transformers, as `AutoTokenizer` does for a LLaMA folder) or a GGUF model file."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / TOKENIZER_FILE, path / "tokenizer.model"]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise DataError(f"{path}: no tokenizer.json or tokenizer.model in this folder")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path}: base tokenizer not found")
    if path.suffix == ".model":
        return _convert_sentencepiece(path)
    if path.suffix == ".gguf":
        return _from_gguf(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        Tokenizer.from_str(json.dumps(spec))
    except (json.JSONDecodeError, UnicodeDecodeError, Exception) as e:  # tokenizers raises a bare Exception
        raise DataError(f"{path}: not a tokenizers file ({e})") from None
    _check_supported(spec, path)
    return spec


def _convert_sentencepiece(path: Path) -> dict[str, Any]:
    try:
        from transformers import AutoTokenizer  # only for .model bases: the import takes seconds
    except ImportError:
        raise DataError(
            f"{path}: converting a SentencePiece model needs transformers ({pip_hint('spm')})"
        ) from None

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(path, Path(tmp) / "tokenizer.model")
        try:
            backend = AutoTokenizer.from_pretrained(tmp).backend_tokenizer
        except Exception as e:  # sentencepiece/transformers raise many kinds on a bad file
            raise DataError(f"{path}: cannot convert this SentencePiece model ({e})") from None
    spec = json.loads(backend.to_str())
    _check_supported(spec, path)
    return spec


def _from_gguf(path: Path) -> dict[str, Any]:
    spec = json.loads(gguf_tokenizer_json(path))
    _check_supported(spec, path)
    return spec


def _check_supported(spec: dict[str, Any], path: Path) -> None:
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise DataError(f"{path}: model type {model.get('type')!r}; only BPE tokenizers can be extended")
    if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise DataError(f"{path}: BPE with dropout or subword prefixes/suffixes is not supported")


# ── base segmentation as units ────────────────────────────────────────────────────────────────────────


class BaseSegmenter:
    """Splits text into the base's words, and each word into units: base tokens, or characters that the
    base spells in byte-fallback tokens (they can become new tokens)."""

    def __init__(self, base: Tokenizer, spec: dict[str, Any]) -> None:
        self.base = base
        self.byte_fallback = bool(spec["model"].get("byte_fallback"))
        self.sentencepiece = _is_sentencepiece(spec)
        self.cache: dict[str, tuple[str, ...]] = {}

    def words(self, text: str) -> Iterator[str]:
        normalized = self.base.normalizer.normalize_str(text) if self.base.normalizer else text
        pieces = (
            [p for p, _ in self.base.pre_tokenizer.pre_tokenize_str(normalized)]
            if self.base.pre_tokenizer
            else [normalized]
        )
        for piece in pieces:
            yield from (_SP_WORD.findall(piece) if self.sentencepiece else (piece,))

    def units(self, word: str) -> tuple[str, ...]:
        if word not in self.cache:
            self.cache[word] = tuple(self._units([t.value for t in self.base.model.tokenize(word)]))
        return self.cache[word]

    def _units(self, tokens: list[str]) -> Iterator[str]:
        pending = bytearray()
        for token in tokens:
            match = _BYTE_TOKEN.match(token) if self.byte_fallback else None
            if match:
                pending.append(int(match[1], 16))
                continue
            if pending:
                yield from pending.decode("utf-8", errors="replace")
                pending.clear()
            yield token
        if pending:
            yield from pending.decode("utf-8", errors="replace")


def _is_sentencepiece(spec: dict[str, Any]) -> bool:
    """A `▁`-marking base (Metaspace pre-tokenizer or a normalizer replacing spaces by `▁`)."""
    blob = json.dumps([spec.get("pre_tokenizer"), spec.get("normalizer")], ensure_ascii=False)
    return "Metaspace" in blob or "▁" in blob


def pua_chars() -> Iterator[str]:
    for start, stop in _PUA_RANGES:
        yield from map(chr, range(start, stop))


# ── continued BPE ─────────────────────────────────────────────────────────────────────────────────────


def extend(spec: dict[str, Any], texts: list[str], add: int, min_frequency: int = 2) -> Extension:
    """Learn up to `add` new tokens from `texts` on top of the base `spec`; `add=0` returns the base."""
    if add < 0:
        raise ConfigError(f"--add {add}: must be ≥ 0")
    base = Tokenizer.from_str(json.dumps(spec))
    base_size = 1 + max([*spec["model"]["vocab"].values(), *(t["id"] for t in spec.get("added_tokens", []))])
    if add == 0:
        return Extension(base, base_size, [], 0)
    segmenter = BaseSegmenter(base, spec)
    words: Counter[str] = Counter()
    for text in texts:
        words.update(segmenter.words(text))
    to_pua, from_pua, corpus = _to_pua(segmenter, words)
    learned = _train_merges(corpus, len(to_pua), add, min_frequency)
    vocab, merges = dict(spec["model"]["vocab"]), merge_pairs(spec["model"]["merges"])
    taken = {t["content"] for t in spec.get("added_tokens", [])}
    base_merges = set(merges)
    new: list[str] = []
    added_merges: list[tuple[str, str]] = []
    for left, right in learned:
        pair = ("".join(from_pua[c] for c in left), "".join(from_pua[c] for c in right))
        needed = [t for t in dict.fromkeys((*pair, pair[0] + pair[1])) if t not in vocab]
        if pair in base_merges or taken.intersection(needed):
            continue  # the base merges this pair already / the string is a special token
        if len(new) + len(needed) > add:
            break
        for token in needed:
            vocab[token] = base_size + len(new)
            new.append(token)
        added_merges.append(pair)
    out = dict(spec, model=dict(spec["model"], vocab=vocab, merges=_merges_like(spec, merges + added_merges)))
    tokenizer = Tokenizer.from_str(json.dumps(out, ensure_ascii=False))
    new_tokens = [NewToken(vocab[t], t, [tok.id for tok in base.model.tokenize(t)]) for t in new]
    log.info(
        "extension: %d new tokens from %d merges over %d distinct words",
        len(new),
        len(added_merges),
        len(words),
    )
    return Extension(tokenizer, base_size, new_tokens, len(added_merges))


def _to_pua(
    segmenter: BaseSegmenter, words: Counter[str]
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Each distinct unit → one Private-Use-Area character; each word → its string of those characters."""
    to_pua: dict[str, str] = {}
    fresh = pua_chars()
    corpus: list[str] = []
    for word, count in words.items():
        units = segmenter.units(word)
        if len(units) < 2:
            continue  # nothing to merge
        for unit in units:
            if unit not in to_pua:
                try:
                    to_pua[unit] = next(fresh)
                except StopIteration:
                    raise DataError("more distinct base units than Private-Use-Area characters") from None
        corpus.append(("".join(to_pua[u] for u in units) + " ") * count)
    return to_pua, {c: u for u, c in to_pua.items()}, corpus


def _train_merges(corpus: list[str], alphabet: int, add: int, min_frequency: int) -> list[tuple[str, str]]:
    """Merges over PUA strings, best first. A merge may yield a string the base already has, or need a
    byte-fallback character as a token, so more merges are learned than tokens wanted."""
    trainer = BpeTrainer(
        vocab_size=alphabet + 2 * add + 64,
        min_frequency=min_frequency,
        show_progress=False,
        initial_alphabet=[],
        limit_alphabet=alphabet,
    )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # PUA characters are never whitespace
    tokenizer.train_from_iterator(corpus, trainer, length=len(corpus))
    return merge_pairs(json.loads(tokenizer.to_str())["model"]["merges"])


def _merges_like(spec: dict[str, Any], merges: list[tuple[str, str]]) -> list[Any]:
    """Merges in the base file's format; the list form where a token holds a space ("a b" would be ambiguous)."""
    old = spec["model"]["merges"]
    as_strings = bool(old) and isinstance(old[0], str) and not any(" " in t for pair in merges for t in pair)
    return [f"{a} {b}" for a, b in merges] if as_strings else [[a, b] for a, b in merges]


# ── corpus, report, files ─────────────────────────────────────────────────────────────────────────────


def is_heldout(doc_id: str) -> bool:
    return zlib.crc32(doc_id.encode("utf-8")) % HELDOUT_EVERY == 0


def split_corpus(
    corpus: Path, langs: tuple[str, ...], max_bytes: int | None, shares: dict[str, float] | None
) -> tuple[list[str], dict[str, list[str]]]:
    """Training texts of `langs` (balanced to `max_bytes`), and held-out texts of every language."""
    available: Counter[str] = Counter()
    for _, record in corpus_records(corpus):
        if not is_heldout(record["id"]):
            available[record["lang"]] += len(record["text"].encode("utf-8"))
    missing = [lang for lang in langs if not available[lang]]
    if missing:
        raise DataError(f"{corpus}: no {missing[0]!r} documents to learn merges from (--langs)")
    chosen = {lang: available[lang] for lang in langs}
    budgets = balanced_budgets(
        chosen, max_bytes, {k: v for k, v in shares.items() if k in langs} if shares else None
    )
    train: list[str] = []
    heldout: dict[str, list[str]] = {}
    used: Counter[str] = Counter()
    for _, record in corpus_records(corpus):
        lang, text = record["lang"], record["text"]
        if is_heldout(record["id"]):
            heldout.setdefault(lang, []).append(text)
        elif lang in budgets and used[lang] < budgets[lang]:
            train.append(text)
            used[lang] += len(text.encode("utf-8"))
    return train, heldout


def efficiency(tokenizer: Tokenizer, texts: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Characters and UTF-8 bytes per token per language, special tokens not counted."""
    out = {}
    for lang, docs in texts.items():
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch_fast(docs, add_special_tokens=False))
        chars, size = sum(map(len, docs)), sum(len(d.encode("utf-8")) for d in docs)
        out[lang] = {
            "chars_per_token": chars / max(tokens, 1),
            "bytes_per_token": size / max(tokens, 1),
            "tokens": tokens,
            "chars": chars,
        }
    return out


def report_markdown(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], ext: Extension, source: str
) -> str:
    lines = [
        f"# Vocabulary extension: {len(ext.new_tokens)} new tokens (ids {ext.base_vocab_size}–"
        f"{ext.vocab_size - 1})",
        "",
        f"Held-out text: {source}.",
        "",
        "| language | chars | chars/token before | after | change |",
        "|---|---|---|---|---|",
    ]
    for lang in before:
        b, a = before[lang]["chars_per_token"], after[lang]["chars_per_token"]
        lines.append(
            f"| {lang} | {before[lang]['chars']:,} | {b:.3f} | {a:.3f} | {100 * (a / b - 1) if b else 0:+.1f}% |"
        )
    return "\n".join(lines) + "\n"


def save_extension(
    ext: Extension, out_dir: Path, base: Path, before: dict[str, Any], after: dict[str, Any], report: str
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TOKENIZER_FILE
    write_text(path, ext.tokenizer.to_str(pretty=True))
    meta = {
        "base": str(base),
        "base_sha256": file_sha256(base) if base.is_file() else None,
        "base_vocab_size": ext.base_vocab_size,
        "vocab_size": ext.vocab_size,
        "merges_added": ext.merges_added,
        "tokenizer_sha256": file_sha256(path),
        "chars_per_token": {"before": before, "after": after},
        "new_tokens": [{"id": t.id, "token": t.token, "pieces": t.pieces} for t in ext.new_tokens],
    }
    write_text(out_dir / EXTENSION_FILE, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    write_text(out_dir / REPORT_FILE, report)
    return path


def run_extend(
    cfg: GeckoConfig,
    base: Path,
    corpus: Path,
    add: int,
    langs: tuple[str, ...],
    out_dir: Path,
    read_texts: TextReader,
    force: bool = False,
) -> Path:
    """`gecko tokenizer extend`: learn merges on the run's corpus, write the tokenizer and the report
    (measured on compare.heldout, read by `read_texts`, when it names sources)."""
    unknown = [lang for lang in langs if lang not in LANGS]
    if unknown or not langs:
        raise ConfigError(f"--langs {','.join(langs)}: name languages of the corpus ({', '.join(LANGS)})")
    if (out_dir / TOKENIZER_FILE).exists() and not force:
        raise DataError(f"{out_dir / TOKENIZER_FILE} exists; pass --force to replace it")
    spec = load_base(base)
    train, heldout = split_corpus(corpus, langs, cfg.tokenizer.max_train_bytes, cfg.tokenizer.lang_shares)
    source = f"1 in {HELDOUT_EVERY} documents of {corpus} (by id hash), never used for merges"
    if cfg.compare.heldout:
        heldout = read_texts(cfg.compare.heldout, cfg.compare.max_bytes_per_lang)
        source = "compare.heldout: " + ", ".join(f"{s.name} ({s.lang})" for s in cfg.compare.heldout)
    ext = extend(spec, train, add, cfg.tokenizer.min_frequency)
    base_tok = Tokenizer.from_str(json.dumps(spec))
    before, after = efficiency(base_tok, heldout), efficiency(ext.tokenizer, heldout)
    report = report_markdown(before, after, ext, source)
    save_extension(ext, out_dir, Path(base), before, after, report)
    return out_dir / REPORT_FILE
