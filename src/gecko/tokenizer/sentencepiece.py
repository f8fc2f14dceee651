"""The `sentencepiece` tokenizer kind: a SentencePiece BPE whose pieces may cross spaces and scripts.

Why (docs/tokenizer.md, Round 4): with no split at spaces or script changes, pieces such as `▁of▁the`,
`수▁있다` and `):\\n▁▁▁▁` are learned, and at 32k held-out English gains 9% and code 13% characters per token
over the byte-level BPE under Qwen2's split. llama.cpp runs such a model exactly as SentencePiece does (its
`llama` vocabulary type has no pre-split), and so does the `tokenizer.json` that transformers converts from it.

Options, each for an exact round trip or for GECKO's id layout:
- identity normalization, `remove_extra_whitespaces=False`, whitespace-only pieces, byte fallback: every
  string comes back from decode(encode(x)) except a literal U+2581 `▁`, which SentencePiece uses for a space
  and so decodes as one (the report card counts such documents);
- `split_digits`: every digit its own token, as in the byte-level BPE;
- `<unk> <s> </s> <pad>` at ids 0-3 and GECKO's other special tokens as control symbols at 4-31, so the
  256 byte pieces sit at 32-287 as in every GECKO tokenizer.

Training sentences are the sample's documents cut at line ends into chunks of at most CHUNK_BYTES: longer
sentences are skipped by SentencePiece, and most sample bytes are in longer documents (code files, articles).
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from gecko.config import TokenizerConfig
from gecko.errors import ConfigError, pip_hint
from gecko.io.atomic import write_bytes, write_text
from gecko.tokens import (
    BOS,
    EOS,
    PAD,
    SENTENCEPIECE_MODEL_FILE,
    SPECIAL_TOKENS,
    TOKENIZER_FILE,
    UNK,
    sentencepiece_tokenizer,
    special_id,
)

MODEL_FILE = SENTENCEPIECE_MODEL_FILE
CHUNK_BYTES = 16_384
OPTIONS: dict[str, Any] = {
    "model_type": "bpe",
    "split_by_whitespace": False,
    "split_by_unicode_script": False,
    "split_digits": True,
    "byte_fallback": True,
    "allow_whitespace_only_pieces": True,
    "remove_extra_whitespaces": False,
    "normalization_rule_name": "identity",
    "max_sentence_length": CHUNK_BYTES,
    "unk_id": special_id(UNK),
    "bos_id": special_id(BOS),
    "eos_id": special_id(EOS),
    "pad_id": special_id(PAD),
    "control_symbols": [t for t in SPECIAL_TOKENS if t not in (UNK, BOS, EOS, PAD)],
}
"""The measured recipe (bench/tokenizer_generalize.py `spm_bpe_no_splits`, with `--specials` ids)."""


def train_sentencepiece(texts: list[str], cfg: TokenizerConfig, out_dir: Path) -> Tokenizer:
    """Train on `texts`; write tokenizer.model and the tokenizer.json transformers converts from it."""
    require()
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=chunks(texts, CHUNK_BYTES),
            model_writer=model,
            vocab_size=cfg.vocab_size,
            character_coverage=cfg.character_coverage,
            num_threads=2,
            minloglevel=2,
            **OPTIONS,
        )
    except RuntimeError as e:  # too small a vocabulary for the characters to cover is a config mistake
        if "vocab_size" not in str(e):
            raise
        raise ConfigError(f"tokenizer: {str(e).split('] ', 1)[-1]}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes(out_dir / MODEL_FILE, model.getvalue())
    tokenizer = sentencepiece_tokenizer(out_dir / MODEL_FILE)
    write_text(out_dir / TOKENIZER_FILE, tokenizer.to_str(pretty=True))
    return tokenizer


def chunks(texts: list[str], limit: int) -> Iterator[str]:
    """Each text cut at line ends into pieces of at most `limit` UTF-8 bytes (a longer line by characters)."""
    for text in texts:
        chunk, size = "", 0
        for line in text.splitlines(keepends=True):
            n = len(line.encode("utf-8"))
            if chunk and size + n > limit:
                yield chunk
                chunk, size = "", 0
            if n > limit:
                step = limit // 4  # at most 4 UTF-8 bytes per character
                yield from (line[i : i + step] for i in range(0, len(line), step))
                continue
            chunk, size = chunk + line, size + n
        if chunk:
            yield chunk


def require() -> None:
    """Fail before any work, in one line naming the extra to install, if a package of this kind is missing."""
    for package in ("sentencepiece", "transformers"):
        try:
            importlib.import_module(package)
        except ImportError:
            raise ConfigError(f"tokenizer.kind: sentencepiece needs {package}: {pip_hint('spm')}") from None
