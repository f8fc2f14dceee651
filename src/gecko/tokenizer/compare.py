"""Tokenizer efficiency on held-out text: characters and bytes per token, ours beside reference tokenizers.

Held-out text comes from a `TextReader` the caller hands in (the CLI: gecko.data.heldout.read_texts, the data
stage's readers and normalization), so every tokenizer sees exactly the text the model would. A reference is any `tokenizer.json` (Hugging Face
tokenizers) or SentencePiece `.model` file below the reference folder; files with identical bytes count once.
Token counts exclude added special tokens (<s>, </s>), so a tokenizer is not charged for its template.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

from gecko.config import LANGS, CompareConfig, SourceConfig
from gecko.errors import DataError, pip_hint
from gecko.io.atomic import write_text
from gecko.tokens import TOKENIZER_FILE, load_tokenizer

log = logging.getLogger(__name__)

REPORT_MD = "compare.md"
REPORT_JSON = "compare.json"
REPORT_PNG = "compare.png"
_SPM_NAME = re.compile(r"\.model(\.v\d+)?$")
_BATCH = 256


TextReader = Callable[[Sequence[SourceConfig], int], dict[str, list[str]]]
"""(held-out sources, bytes per language) → normalized documents per language: gecko.data.heldout.read_texts,
passed in because a stage does not import another."""


class Encoder(Protocol):
    name: str

    @property
    def vocab_size(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens for `texts`, without added special tokens."""
        ...


@dataclass
class HFEncoder:
    """A `tokenizer.json` (ours, Llama-3, Qwen3, GPT-4o, Polyglot-Ko, KoGPT2, …)."""

    name: str
    tokenizer: Tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def count_tokens(self, texts: Sequence[str]) -> int:
        total = 0
        for i in range(0, len(texts), _BATCH):
            batch = self.tokenizer.encode_batch_fast(list(texts[i : i + _BATCH]), add_special_tokens=False)
            total += sum(len(e.ids) for e in batch)
        return total


@dataclass
class SentencePieceEncoder:
    """A SentencePiece `.model` (LLaMA-2, Mistral). Its dummy-prefix `▁` is counted, as the model sees it."""

    name: str
    path: Path

    def __post_init__(self) -> None:
        try:
            import sentencepiece as spm
        except ImportError:
            raise ImportError(
                "comparing against .model files needs sentencepiece: " + pip_hint("bench")
            ) from None
        try:
            self.processor = spm.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as e:
            raise DataError(f"{self.path}: not a SentencePiece model ({e})") from None

    @property
    def vocab_size(self) -> int:
        return self.processor.vocab_size()

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(ids) for ids in self.processor.encode(list(texts)))


FileEncoder = HFEncoder | SentencePieceEncoder
"""What a tokenizer file loads as: `tokenizer.json` or a SentencePiece `.model`."""


@dataclass(frozen=True)
class Score:
    tokenizer: str
    vocab_size: int
    lang: str
    chars: int
    bytes: int
    tokens: int

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(self.tokens, 1)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / max(self.tokens, 1)


# ── held-out text ─────────────────────────────────────────────────────────────────────────────────────


# ── tokenizers ────────────────────────────────────────────────────────────────────────────────────────


def find_references(root: Path) -> list[FileEncoder]:
    """Every `*tokenizer.json` and SentencePiece `*.model[.vN]` below `root`, one per distinct file."""
    if not root.is_dir():
        raise DataError(f"{root}: reference tokenizer folder not found")
    seen: set[str] = set()
    encoders: list[FileEncoder] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        is_json, is_spm = path.name.endswith("tokenizer.json"), bool(_SPM_NAME.search(path.name))
        if not (is_json or is_spm):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        name = str(path.relative_to(root))
        encoders.append(load_encoder(path, name))
    return encoders


def load_encoder(path: Path, name: str) -> FileEncoder:
    if _SPM_NAME.search(path.name):
        return SentencePieceEncoder(name, path)
    try:
        return HFEncoder(name, Tokenizer.from_file(str(path)))
    except Exception as e:  # tokenizers raises a bare Exception on a malformed file
        raise DataError(f"{path}: not a tokenizers file ({e})") from None


def ours(tokenizer_dir: Path, name: str = "gecko") -> HFEncoder:
    return HFEncoder(name, load_tokenizer(tokenizer_dir, text_only=True))


# ── scoring and report ────────────────────────────────────────────────────────────────────────────────


def score(encoder: Encoder, texts: dict[str, list[str]]) -> list[Score]:
    return [
        Score(
            encoder.name,
            encoder.vocab_size,
            lang,
            sum(len(t) for t in docs),
            sum(len(t.encode("utf-8")) for t in docs),
            encoder.count_tokens(docs),
        )
        for lang, docs in texts.items()
    ]


def markdown_table(scores: list[Score]) -> str:
    """One row per tokenizer: chars/token and bytes/token per language."""
    langs = [
        lang for lang in (*LANGS, *sorted({s.lang for s in scores})) if any(s.lang == lang for s in scores)
    ]
    langs = list(dict.fromkeys(langs))
    rows: dict[tuple[str, int], dict[str, Score]] = {}
    for s in scores:
        rows.setdefault((s.tokenizer, s.vocab_size), {})[s.lang] = s
    head = (
        "| tokenizer | vocab | " + " | ".join(f"{lang} chars/tok | {lang} bytes/tok" for lang in langs) + " |"
    )
    sep = "|---|---:|" + "---:|---:|" * len(langs)
    lines = [head, sep]
    for (name, vocab), by_lang in rows.items():
        cells = [
            f"{by_lang[lang].chars_per_token:.2f} | {by_lang[lang].bytes_per_token:.2f}" for lang in langs
        ]
        lines.append(f"| {name} | {vocab:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(scores: list[Score], path: Path) -> None:
    """Two panels (chars/token, bytes/token), a bar group per language, a bar per tokenizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(s.tokenizer for s in scores))
    langs = list(dict.fromkeys(s.lang for s in scores))
    width = 0.8 / len(names)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, metric in zip(axes, ("chars_per_token", "bytes_per_token")):
        for i, name in enumerate(names):
            values = [
                next(getattr(s, metric) for s in scores if s.tokenizer == name and s.lang == lang)
                for lang in langs
            ]
            ax.bar([j + i * width for j in range(len(langs))], values, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs)
        ax.set_title(metric.replace("_", " ") + " (higher is better)")
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(
    cfg: CompareConfig, tokenizer_dir: Path | None, out_dir: Path, read_texts: TextReader
) -> list[Score]:
    """Score our tokenizer (when given) and every reference on the held-out text; write md, json and png."""
    if not cfg.heldout:
        raise DataError("compare.heldout lists no held-out sources")
    encoders: list[Encoder] = []
    if tokenizer_dir is not None:
        if not (tokenizer_dir / TOKENIZER_FILE).is_file():
            raise DataError(
                f"{tokenizer_dir / TOKENIZER_FILE}: tokenizer not found (run `gecko tokenizer train`)"
            )
        encoders.append(ours(tokenizer_dir))
    if cfg.references:
        encoders.extend(find_references(Path(cfg.references)))
    texts = read_texts(cfg.heldout, cfg.max_bytes_per_lang)
    scores = [s for enc in encoders for s in score(enc, texts)]
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {
        lang: f"{sum(len(t.encode()) for t in docs) / 1e6:.2f} MB, {len(docs):,} docs"
        for lang, docs in texts.items()
    }
    sources = ", ".join(f"{s.name} ({s.lang})" for s in cfg.heldout)
    md = (
        f"# Tokenizer efficiency on held-out text\n\nHeld-out sources: {sources}.\n"
        f"Text per language: {json.dumps(sizes, ensure_ascii=False)}. Higher is better.\n\n"
        + markdown_table(scores)
    )
    write_text(out_dir / REPORT_MD, md)
    records = [
        {**asdict(s), "chars_per_token": s.chars_per_token, "bytes_per_token": s.bytes_per_token}
        for s in scores
    ]
    write_text(out_dir / REPORT_JSON, json.dumps(records, indent=2) + "\n")
    bar_chart(scores, out_dir / REPORT_PNG)
    log.info("compare: %d tokenizers × %d languages → %s", len(encoders), len(texts), out_dir / REPORT_MD)
    return scores
