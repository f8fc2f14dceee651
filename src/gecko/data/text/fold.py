"""NFKC and case folding of many texts at once, one table lookup per codepoint where that is exact.

`unicodedata.normalize("NFKC", t).casefold()` costs a pass of Python's normalizer and one of its case
folder per text; on Korean that was a fifth of decontamination. Both are a character-by-character mapping
except where NFKC composes or reorders across characters, so a table gives the same result for every text made
only of *context-free* characters: c is one when

- its full decomposition (NFKD) starts with a starter (combining class 0) that is not the second half of
  any canonical composition (Hangul vowel and final jamo, a few Indic vowel signs): then nothing before c
  can compose with it or be reordered across it, and what follows composes with c's last starter at most,
  as it does within NFKC(c) alone, which the table maps c to; and
- NFKC(c).casefold() is one codepoint (case folding maps characters one by one), or only separators of
  gecko.data.text.overlap (`…` → `...`), which the table maps to one space: for units, a run of
  separators is one separator.

Texts with another character (compatibility jamo as in ㅋㅠ, which NFKC composes into 큐; ℃, ß, ½, or
a codepoint outside the Basic Multilingual Plane and the emoji blocks) go through Python as before: 5% of
the Korean documents of the data stage benchmark.
"""

from __future__ import annotations

import unicodedata

import numpy as np

UNSAFE = np.uint32(0xFFFFFFFF)
"""The table's mark for a codepoint that is not context-free."""
TABLE_RANGES = ((0, 0x10000), (0x1F000, 0x1FB00))
"""Codepoints the table maps (the Basic Multilingual Plane and the emoji blocks: `in_table`); others are
UNSAFE."""
_HANGUL_JAMO_SECOND = (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))
"""Vowel and final jamo: composed with what precedes them by the Hangul algorithm, not by a decomposition
listed in the Unicode data."""


def normalize(text: str) -> str:
    """NFKC then case folding: full-width forms, compatibility characters and case become one form."""
    return unicodedata.normalize("NFKC", text).casefold()


def in_table(c: int) -> bool:
    return c < 0x10000 or 0x1F000 <= c < 0x1FB00


def second_halves(composites: range = range(0x10000)) -> set[int]:
    """Second halves of the canonical compositions to `composites` (NFKC may join them to the character
    before). Those of compositions outside the BMP lie outside TABLE_RANGES (test_overlap_units checks), so
    the BMP's are all that `table` needs."""
    out = set(_HANGUL_JAMO_SECOND)
    for c in composites:
        parts = unicodedata.decomposition(chr(c)).split()
        if (
            len(parts) == 2
            and not parts[0].startswith("<")
            and unicodedata.normalize("NFC", chr(c)) == chr(c)
        ):
            out.add(int(parts[1], 16))
    return out


def table(is_separator: np.ndarray) -> np.ndarray:
    """NFKC(c).casefold() of every context-free codepoint c (a space for only separators), else UNSAFE;
    `is_separator`: True at the separators of the unit rules, for every codepoint (4.4 MB, ~0.05 CPU-s).
    Each character is normalized alone, all in one call: NUL, context-free, keeps them apart."""
    seconds = second_halves()
    codes = [c for lo, hi in TABLE_RANGES for c in range(lo, hi) if c]  # NUL, context-free, is itself
    joined = "\0".join(map(chr, codes))
    decomposed = unicodedata.normalize("NFKD", joined).split("\0")
    folded = normalize(joined).split("\0")
    out = np.full(0x110000, UNSAFE, dtype=np.uint32)
    safe, mapped = [0], [0]
    for c, d, f in zip(codes, decomposed, folded):
        first = ord(d[0])
        if unicodedata.combining(d[0]) or first in seconds or not in_table(first):
            continue
        if len(f) == 1 or all(is_separator[ord(x)] for x in f):
            safe.append(c)
            mapped.append(ord(f) if len(f) == 1 else ord(" "))
    out[safe] = mapped
    return out


def codepoints(texts: list[str], mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codepoints of the normalized texts joined by NUL, and each normalized text's length. `mapping`: a
    `table`. A run of UNSAFE codepoints is normalized by Python together with the character before it (which
    it may compose with) and spliced in: NFKC never joins or reorders across the start of a context-free
    character, so the text around it is mapped as it is. (Normalizing the whole text instead cost as much
    as all the rest: Python's NFKC is ten times slower on a text that is not already normalized.)"""
    joined = "\0".join(texts)
    mapped = mapping[np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    unsafe = mapped == UNSAFE
    if not unsafe.any():
        return mapped, lengths
    edges = np.flatnonzero(np.diff(unsafe.view(np.int8), prepend=0, append=0))
    text_ends = np.cumsum(lengths + 1) - 1
    pieces, done = [], 0
    for a, b in zip(np.maximum(edges[::2] - 1, 0).tolist(), edges[1::2].tolist()):
        normalized = normalize(joined[a:b])
        pieces += [mapped[done:a], np.frombuffer(normalized.encode("utf-32-le", "surrogatepass"), np.uint32)]
        lengths[np.searchsorted(text_ends, b - 1)] += len(normalized) - (b - a)
        done = b
    return np.concatenate([*pieces, mapped[done:]]), lengths
