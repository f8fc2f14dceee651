"""The tokenizer report card: what a user needs to judge a tokenizer before spending compute on it.

Per held-out domain and source: characters per token and, for Korean, tokens per eojeol (space-separated
word); the byte-fallback rate (tokens that are a fragment of a character: a SentencePiece `<0xXX>` piece or
a byte-level token that is not whole UTF-8); the share of the vocabulary never used on the held-out text;
where the vocabulary goes (tokens holding Hangul, Latin words, other ASCII such as code and punctuation,
other scripts, byte fragments); the longest tokens; how digits are split; and round-trip exactness, decode(encode(x)) == x, on every held-out
document and on named edge cases (NFC and NFD Hangul, emoji sequences, CRLF, tabs, runs of spaces). Ours is
scored beside every reference tokenizer that `gecko tokenizer compare` finds, on the same text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gecko.config import CompareConfig, SourceConfig
from gecko.errors import DataError
from gecko.io.atomic import write_json, write_text
from gecko.tokenizer.compare import FileEncoder, HFEncoder, TextReader, find_references, ours
from gecko.tokens import TOKENIZER_FILE, for_continuations

log = logging.getLogger(__name__)

CARD_MD, CARD_JSON, CARD_PNG = "report.md", "report.json", "report.png"
_BATCH = 256

EDGE_CASES: dict[str, str] = {
    "hangul_nfc": "한국어 토크나이저는 띄어쓰기를 지킵니다. 됐어요ㅋㅋ ㅠㅠ",
    "hangul_nfd": unicodedata.normalize("NFD", "한국어 토크나이저는 띄어쓰기를 지킵니다."),
    "emoji": "좋아요 👍🏽 가족 👨‍👩‍👧 국기 🇰🇷 하트 ❤️ 🦎",
    "crlf": "first line\r\nsecond line\r\n\r\n셋째 줄\r\n",
    "tabs": "def f(x):\n\tif x:\n\t\treturn x\t# tab\n",
    "space_runs": "a  b   c    d     e\n        x = 1\n                y = 2   \n",
    "edge_spaces": "  leading and trailing spaces  ",
    "digits": "3.14159, 2,024년 ₩1,000,000 0x1F 10e-3 ١٢٣",
    "mixed_code": "print('안녕하세요')  # 인사\nSELECT * FROM t WHERE id = 42;\n",
    "rare_chars": "漢字 ㈜ ① ｶﾀｶﾅ \u200b zero-width \u00a0 nbsp é e\u0301",
}
"""Inputs a tokenizer must return unchanged; NFD and the combining accent catch silent normalization."""

METASPACE = "\u2581"
DIGIT_PROBE = "In 2024, 1234567 people paid ₩3,000 (3.14%)."

VOCAB_KINDS = ("hangul", "latin_word", "ascii_other", "other_script", "byte_fragment")
"""How `vocab_kind` sorts a token: the classes of `Card.vocab_by_kind`, in the card's column order."""


def vocab_kind(piece: str) -> str:
    """Which part of the vocabulary a decoded token belongs to (its first matching class in VOCAB_KINDS)."""
    if "\ufffd" in piece:
        return "byte_fragment"
    if re.search("[\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e]", piece):
        return "hangul"
    if re.fullmatch(r"\s?[A-Za-z]+", piece):
        return "latin_word"
    return "ascii_other" if piece.isascii() else "other_script"


@dataclass
class Card:
    """One tokenizer's row of the report."""

    name: str
    vocab_size: int
    chars_per_token: dict[str, float] = field(default_factory=dict)
    per_source: dict[str, float] = field(default_factory=dict)
    tokens_per_eojeol: float | None = None
    byte_fallback_rate: dict[str, float] = field(default_factory=dict)
    unused_vocab_share: float = 0.0
    roundtrip_docs: dict[str, str] = field(default_factory=dict)
    roundtrip_inexact_with_u2581: dict[str, int] = field(default_factory=dict)
    """Inexact documents holding a literal U+2581 `▁`, which SentencePiece-style tokenizers (GECKO's
    `sentencepiece` kind, LLaMA-2) decode as a space: counted, not excused."""
    roundtrip_edge_failures: list[str] = field(default_factory=list)
    digits_split: bool = False
    digit_pieces: list[str] = field(default_factory=list)
    longest_tokens: list[str] = field(default_factory=list)
    vocab_by_kind: dict[str, int] = field(default_factory=dict)


class Tokenization:
    """Uniform encode/decode over a Hugging Face or SentencePiece tokenizer, and which ids are byte pieces."""

    def __init__(self, encoder: FileEncoder) -> None:
        self.name, self.vocab_size = encoder.name, encoder.vocab_size
        if isinstance(encoder, HFEncoder):
            tok = encoder.tokenizer
            self._encode = lambda texts: [
                e.ids for e in tok.encode_batch_fast(list(texts), add_special_tokens=False)
            ]
            self._decode = lambda ids: tok.decode(ids, skip_special_tokens=False)
            size = max(tok.get_vocab_size(with_added_tokens=True), max(tok.get_vocab().values()) + 1)
            alone = for_continuations(tok)  # a token's own text, its leading space kept (`▁the` is " the")
            pieces = [
                alone.decode([i], skip_special_tokens=False) if tok.id_to_token(i) is not None else ""
                for i in range(size)
            ]
            self.is_byte_piece = np.array(["\ufffd" in p for p in pieces])
        else:
            sp = encoder.processor
            self._encode = lambda texts: sp.encode(list(texts))
            self._decode = sp.decode
            size = sp.vocab_size()
            pieces = [sp.decode([i]) for i in range(size)]
            self.is_byte_piece = np.array([sp.is_byte(i) for i in range(size)])
        self.pieces = pieces

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        out: list[list[int]] = []
        for i in range(0, len(texts), _BATCH):
            out.extend(self._encode(texts[i : i + _BATCH]))
        return out

    def decode(self, ids: list[int]) -> str:
        return self._decode(ids)


def card_for(
    tk: Tokenization, texts: dict[str, list[str]], by_source: dict[str, list[str]], korean: str = "ko"
) -> Card:
    """Every measure of the card for one tokenizer on the held-out text."""
    card = Card(tk.name, tk.vocab_size)
    used = np.zeros(len(tk.is_byte_piece), dtype=bool)
    for lang, docs in texts.items():
        encoded = tk.encode(docs)
        ids = np.fromiter((i for e in encoded for i in e), dtype=np.int64)
        used[ids[ids < len(used)]] = True
        card.chars_per_token[lang] = sum(map(len, docs)) / max(len(ids), 1)
        card.byte_fallback_rate[lang] = (
            float(tk.is_byte_piece[ids[ids < len(used)]].mean()) if len(ids) else 0.0
        )
        inexact = [d for e, d in zip(encoded, docs) if tk.decode(e) != d]
        card.roundtrip_docs[lang] = f"{len(docs) - len(inexact)}/{len(docs)}"
        card.roundtrip_inexact_with_u2581[lang] = sum(METASPACE in d for d in inexact)
        if lang == korean:
            words = sum(len(d.split()) for d in docs)
            card.tokens_per_eojeol = len(ids) / max(words, 1)
    for name, docs in by_source.items():
        n = sum(len(e) for e in tk.encode(docs))
        card.per_source[name] = sum(map(len, docs)) / max(n, 1)
    card.unused_vocab_share = 1.0 - used.mean()
    card.roundtrip_edge_failures = [
        k for k, text in EDGE_CASES.items() if tk.decode(tk.encode([text])[0]) != text
    ]
    card.digit_pieces = [tk.pieces[i] for i in tk.encode([DIGIT_PROBE])[0]]
    card.digits_split = all(sum(c.isdigit() for c in p) <= 1 for p in card.digit_pieces)
    card.vocab_by_kind = {kind: 0 for kind in VOCAB_KINDS}
    for piece in tk.pieces:
        if piece:
            card.vocab_by_kind[vocab_kind(piece)] += 1
    card.longest_tokens = sorted((p for p in tk.pieces if "\ufffd" not in p), key=len, reverse=True)[:8]
    return card


def report(cfg: CompareConfig, tokenizer_dir: Path, out_dir: Path, read_texts: TextReader) -> list[Card]:
    """Write the report card (md, json, png) for our tokenizer beside every reference in `cfg.references`."""
    if not cfg.heldout:
        raise DataError("compare.heldout lists no held-out sources")
    if not (tokenizer_dir / TOKENIZER_FILE).is_file():
        raise DataError(
            f"{tokenizer_dir / TOKENIZER_FILE}: tokenizer not found (run `gecko tokenizer train`)"
        )
    encoders: list[FileEncoder] = [
        ours(tokenizer_dir),
        *(find_references(Path(cfg.references)) if cfg.references else []),
    ]
    texts = read_texts(cfg.heldout, cfg.max_bytes_per_lang)
    by_source = _split_by_source(cfg.heldout, cfg.max_bytes_per_lang, read_texts)
    cards = []
    for enc in encoders:
        log.info("report: scoring %s", enc.name)
        cards.append(card_for(Tokenization(enc), texts, by_source))
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {lang: (sum(len(t.encode()) for t in docs), len(docs)) for lang, docs in texts.items()}
    write_text(out_dir / CARD_MD, markdown(cards, cfg.heldout, sizes))
    write_json(out_dir / CARD_JSON, [asdict(c) for c in cards])
    chart(cards, out_dir / CARD_PNG)
    return cards


def _split_by_source(
    sources: Sequence[SourceConfig], max_bytes_per_lang: int, read_texts: TextReader
) -> dict[str, list[str]]:
    """Each source's share of its language's held-out text, read the same way as `read_texts`."""
    per_lang: dict[str, int] = {}
    for s in sources:
        per_lang[s.lang] = per_lang.get(s.lang, 0) + 1
    return {
        f"{s.lang}/{s.name}": read_texts([s], max_bytes_per_lang // per_lang[s.lang])[s.lang] for s in sources
    }


def markdown(cards: list[Card], sources: Sequence[SourceConfig], sizes: dict[str, tuple[int, int]]) -> str:
    langs = list(cards[0].chars_per_token)
    lines = [
        "# Tokenizer report card",
        "",
        "Held-out sources (never in training): " + ", ".join(f"{s.name} ({s.lang})" for s in sources) + ".",
        "Text: "
        + ", ".join(f"{lang} {b / 1e6:.2f} MB in {n:,} documents" for lang, (b, n) in sizes.items())
        + ".",
        "",
        "## Efficiency (higher chars/token is better; lower tokens/eojeol is better)",
        "",
        "| tokenizer | vocab | "
        + " | ".join(f"{lang} chars/tok" for lang in langs)
        + " | ko tokens/eojeol | byte-fallback "
        + "/".join(langs)
        + " | vocab unused |",
        "|---|---:|" + "---:|" * len(langs) + "---:|---:|---:|",
    ]
    for c in cards:
        eoj = f"{c.tokens_per_eojeol:.2f}" if c.tokens_per_eojeol is not None else "–"
        fallback = " / ".join(f"{100 * c.byte_fallback_rate[lang]:.2f}%" for lang in langs)
        lines.append(
            f"| {c.name} | {c.vocab_size:,} | "
            + " | ".join(f"{c.chars_per_token[lang]:.3f}" for lang in langs)
            + f" | {eoj} | {fallback} | {100 * c.unused_vocab_share:.1f}% |"
        )
    srcs = list(cards[0].per_source)
    lines += [
        "",
        "## Chars/token by held-out source",
        "",
        "| tokenizer | " + " | ".join(srcs) + " |",
        "|---|" + "---:|" * len(srcs),
    ]
    lines += [f"| {c.name} | " + " | ".join(f"{c.per_source[s]:.2f}" for s in srcs) + " |" for c in cards]
    lines += [
        "",
        "## Round trip: decode(encode(x)) == x",
        "",
        "Edge cases: " + ", ".join(f"`{k}`" for k in EDGE_CASES) + ".",
        "",
        f"In parentheses: inexact documents that hold a literal U+2581 `{METASPACE}`, which SentencePiece-style"
        " tokenizers decode as a space.",
        "",
        "| tokenizer | " + " | ".join(f"{lang} documents exact" for lang in langs) + " | edge cases failed |",
        "|---|" + "---:|" * len(langs) + "---|",
    ]
    lines += [
        f"| {c.name} | "
        + " | ".join(f"{c.roundtrip_docs[lang]} ({c.roundtrip_inexact_with_u2581[lang]})" for lang in langs)
        + " | "
        + (", ".join(c.roundtrip_edge_failures) or "none")
        + " |"
        for c in cards
    ]
    lines += [
        "",
        f"## Digits: `{DIGIT_PROBE}`",
        "",
        "| tokenizer | one digit per token | pieces |",
        "|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {'yes' if c.digits_split else 'no'} | "
        + " ".join(f"`{_show(p)}`" for p in c.digit_pieces)
        + " |"
        for c in cards
    ]
    lines += [
        "",
        "## Where the vocabulary goes (tokens by what they hold)",
        "",
        "| tokenizer | " + " | ".join(VOCAB_KINDS) + " |",
        "|---|" + "---:|" * len(VOCAB_KINDS),
    ]
    lines += [
        f"| {c.name} | " + " | ".join(f"{c.vocab_by_kind[k]:,}" for k in VOCAB_KINDS) + " |" for c in cards
    ]
    lines += ["", "## Longest tokens", "", "| tokenizer | longest |", "|---|---|"]
    lines += [f"| {c.name} | " + " ".join(f"`{_show(p)}`" for p in c.longest_tokens) + " |" for c in cards]
    return "\n".join(lines) + "\n\n![report card](report.png)\n"


def _show(piece: str) -> str:
    """A token as readable markdown: whitespace made visible, pipes and backticks escaped."""
    return (
        piece.replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace(" ", "␠")
        .replace("|", "\\|")
        .replace("`", "'")
    )


def chart(cards: list[Card], path: Path) -> None:
    """Chars/token per domain (left) and unused vocabulary and byte fallback (right), a bar per tokenizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = list(cards[0].chars_per_token)
    width = 0.8 / len(cards)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for i, c in enumerate(cards):
        xs = [j + i * width for j in range(len(langs))]
        left.bar(xs, [c.chars_per_token[lang] for lang in langs], width, label=c.name)
        right.bar([i], [100 * c.unused_vocab_share], 0.8, label=c.name)
    left.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs)
    left.set_title("held-out characters per token (higher is better)")
    left.grid(axis="y", alpha=0.3)
    right.set_xticks(
        range(len(cards)), [c.name.split("/")[0] for c in cards], rotation=45, ha="right", fontsize=8
    )
    right.set_title("vocabulary never used on held-out text (%)")
    right.grid(axis="y", alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
