"""The tokenizer contract every stage shares: GECKO's special tokens (defined once: their order here is
their id in every tokenizer we train), the chat template, loading a `tokenizer.json` with its ids checked,
and the record of the ids `gecko tokenizer extend` added; the byte-level pipeline GECKO trains
(`bytelevel_pipeline`) and the tokenizer.json form of a SentencePiece model (`sentencepiece_tokenizer`), which
GGUF export checks a tokenizer against; decoding continuations (`for_continuations`).

Owns no training (gecko.tokenizer does that); imports only gecko.errors, so any layer may use it.

Special tokens take ids 0 … N_SPECIAL-1, followed by the 256 byte-fallback tokens `<0x00>` … `<0xFF>`;
learned BPE tokens start after those. Reserved slots let later stages (chat tuning, fill-in-the-middle,
PII scrubbing) claim a token without retraining the tokenizer or resizing the embeddings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from gecko.errors import DataError, pip_hint

UNK = "<unk>"
"""Never produced (every byte has a fallback token); kept at id 0 for LLaMA-compatible tooling."""
BOS = "<s>"
EOS = "</s>"
PAD = "<pad>"

CHAT = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
FIM = ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>")
PII = ("<|email|>", "<|phone|>", "<|rrn|>", "<|card|>", "<|account|>", "<|ip|>", "<|passport|>", "<|secret|>")
"""Placeholders the data stage substitutes for scrubbed personal data (rrn: Korean resident number)."""

N_SPECIAL = 32
"""Size of the special block; the remainder after the named tokens is `<|reserved_N|>`."""

_NAMED = (UNK, BOS, EOS, PAD, *CHAT, *FIM, *PII)
RESERVED = tuple(f"<|reserved_{i}|>" for i in range(N_SPECIAL - len(_NAMED)))
SPECIAL_TOKENS: tuple[str, ...] = (*_NAMED, *RESERVED)

BYTE_TOKENS: tuple[str, ...] = tuple(f"<0x{b:02X}>" for b in range(256))
"""LLaMA/SentencePiece spelling, understood by the `ByteFallback` decoder."""
FIRST_BYTE_ID = N_SPECIAL


def special_id(token: str) -> int:
    """Fixed id of a special token (the same in every GECKO tokenizer)."""
    return SPECIAL_TOKENS.index(token)


CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
"""Jinja, as transformers renders it (sandboxed, trim_blocks, lstrip_blocks)."""

TOKENIZER_FILE = "tokenizer.json"


def load_tokenizer(
    tokenizer_dir: Path, text_only: bool = False, required: tuple[str, ...] = SPECIAL_TOKENS
) -> Tokenizer:
    """Load a GECKO tokenizer and check its special-token ids.

    text_only: encode special-token strings found in the input as ordinary text. Use it for corpus
    documents, where `<s>` is an HTML tag and must not become a document boundary.
    required: the special tokens that must sit at GECKO's ids. Packed shards need only `<s>` and `</s>`, so
    a foreign tokenizer with those at 1 and 2 (LLaMA-2, Mistral) can be pretokenized for an ablation.
    """
    path = Path(tokenizer_dir) / TOKENIZER_FILE
    if not path.is_file():
        raise DataError(f"{path}: tokenizer not found (run `gecko tokenizer train` first)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise DataError(f"{path}: not a tokenizers file ({e})") from None
    for token in required:
        expected = special_id(token)
        if tokenizer.token_to_id(token) != expected:
            raise DataError(
                f"{path}: {token} has id {tokenizer.token_to_id(token)}, expected {expected}; "
                f"not a GECKO tokenizer or trained with other special tokens"
            )
    tokenizer.encode_special_tokens = text_only
    return tokenizer


SENTENCEPIECE_MODEL_FILE = "tokenizer.model"
"""Beside tokenizer.json in a `sentencepiece`-kind tokenizer (and an export of it): llama.cpp's converter reads it."""


def sentencepiece_tokenizer(model_file: Path) -> Tokenizer:
    """The tokenizer.json form of a GECKO SentencePiece model: transformers' converter (what `AutoTokenizer`
    runs on a `.model`; llama.cpp's ids equal its ids), `<s>` prepended on `encode` as in the byte-level kind.
    Training writes it and GGUF export compares against it; GECKO's id layout is checked."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DataError(
            f"{model_file}: reading a SentencePiece model needs transformers ({pip_hint('spm')})"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:  # the model alone: a tokenizer.json beside it would be loaded
        shutil.copyfile(model_file, Path(tmp) / SENTENCEPIECE_MODEL_FILE)
        tokenizer: Tokenizer = AutoTokenizer.from_pretrained(tmp).backend_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, special_id(BOS))]
    )
    layout = [*SPECIAL_TOKENS, *BYTE_TOKENS]
    wrong = [(i, t) for i, t in enumerate(layout) if tokenizer.token_to_id(t) != i]
    if wrong:
        i, t = wrong[0]
        raise DataError(
            f"{model_file}: {t} has id {tokenizer.token_to_id(t)}, expected {i}; not a GECKO model"
        )
    return tokenizer


def for_continuations(tokenizer: Tokenizer) -> Tokenizer:
    """A copy of `tokenizer` whose decode keeps a leading space: for text that continues a prompt.

    SentencePiece-style decoders (GECKO's `sentencepiece` kind, LLaMA-2) drop the space of the first piece,
    since encode added it as a dummy prefix; a generated continuation's first piece `▁Paris` is a real space
    and must print as " Paris". Byte-level decoders are returned unchanged in effect.
    """
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.encode_special_tokens = tokenizer.encode_special_tokens
    if tokenizer.decoder is not None:
        spec = _keep_leading_space(json.loads(tokenizer.decoder.__getstate__()))
        decoder = decoders.Fuse()  # any decoder object: its state is replaced by the edited spec
        decoder.__setstate__(json.dumps(spec).encode())
        copy.decoder = decoder
    return copy


def _keep_leading_space(spec: dict[str, Any]) -> dict[str, Any]:
    """The decoder spec without `Strip` of leading characters and with Metaspace's prefix kept."""
    if spec.get("type") == "Sequence":
        steps = [_keep_leading_space(d) for d in spec["decoders"]]
        return {
            **spec,
            "decoders": [d for d in steps if not (d["type"] == "Strip" and d.get("start", 0) > 0)],
        }
    if spec.get("type") == "Metaspace":
        return {**spec, "prepend_scheme": "never"}
    return spec


DOCUMENT_BOUNDARIES = (
    (BOS, EOS),
    ("<|begin_of_text|>", "<|end_of_text|>"),
    ("<|endoftext|>", "<|endoftext|>"),
)
"""(start, end) tokens packed around each document, first match wins: GECKO's and LLaMA-2/Mistral's, Llama-3's,
GPT-2's single separator (SmolLM2, Qwen, StarCoder). Continued pretraining keeps the base model's own."""


def document_boundary_tokens(tokenizer: Tokenizer, path: Path) -> tuple[str, str]:
    """The tokens that start and end a document in packed shards (the first of DOCUMENT_BOUNDARIES present)."""
    for start, end in DOCUMENT_BOUNDARIES:
        if tokenizer.token_to_id(start) is not None and tokenizer.token_to_id(end) is not None:
            return start, end
    names = ", ".join(f"{a}/{b}" if a != b else a for a, b in DOCUMENT_BOUNDARIES)
    raise DataError(f"{path}: no document boundary tokens ({names}); packed shards need one of them")


def document_boundaries(tokenizer: Tokenizer, path: Path) -> tuple[int, int]:
    """Ids of document_boundary_tokens."""
    start, end = document_boundary_tokens(tokenizer, path)
    return tokenizer.token_to_id(start) or 0, tokenizer.token_to_id(end) or 0  # present: checked above


def gguf_tokenizer_json(path: Path) -> str:
    """The tokenizer inside a GGUF model file, as transformers reads it (`gguf_file=`), in tokenizers' JSON: the
    one reader behind `gecko tokenizer extend X.gguf` and `gecko import X.gguf`, so both see the same bytes."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DataError(f"{path}: reading a GGUF needs transformers and gguf ({pip_hint('gguf')})") from None
    if not path.is_file():
        raise DataError(f"{path}: no such GGUF file")
    try:
        return str(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).backend_tokenizer.to_str())
    except Exception as e:  # gguf/transformers raise many kinds on a bad or unsupported file
        raise DataError(f"{path}: cannot read the tokenizer of this GGUF ({type(e).__name__}: {e})") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


EXTENSION_FILE = "extension.json"
"""Written beside tokenizer.json by `gecko tokenizer extend`: which ids are new, and the base ids each
replaces (continued pretraining initializes and trains those embedding rows first)."""


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str
    """The token as the BPE model spells it (byte-level alphabet, or `▁` for a space)."""
    pieces: list[int]
    """The base tokenizer's ids for the same string: the rows averaged to initialize its embedding."""


def load_new_tokens(tokenizer_dir: Path) -> tuple[int, list[NewToken]]:
    """(base vocabulary size, new tokens) from an extended tokenizer's extension.json."""
    path = Path(tokenizer_dir) / EXTENSION_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return meta["base_vocab_size"], [
            NewToken(t["id"], t["token"], t["pieces"]) for t in meta["new_tokens"]
        ]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not an extension record ({e})") from None


QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Qwen2's split (llama.cpp's `qwen2` pre-tokenizer): GPT-4's with single digits."""


def bytelevel_pipeline(model: models.Model) -> Tokenizer:
    """Qwen2's pre-tokenizer and byte-level decoder around `model`, serialized exactly as Qwen2's."""
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()  # it takes no options: the keywords were ignored
    return tokenizer
