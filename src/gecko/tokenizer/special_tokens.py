"""GECKO's special tokens, defined once: their order here is their id in every tokenizer we train.

Special tokens take ids 0 … N_SPECIAL-1, followed by the 256 byte-fallback tokens `<0x00>` … `<0xFF>`;
learned BPE tokens start after those. Reserved slots let later stages (chat tuning, fill-in-the-middle,
PII scrubbing) claim a token without retraining the tokenizer or resizing the embeddings.
"""

from __future__ import annotations

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
