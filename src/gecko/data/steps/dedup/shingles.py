"""Text → arrays of 64-bit unit and n-gram hashes for MinHash dedup (decontamination has gecko.data.text.overlap).

Prose (Korean, English and the rest) is cut into the normalized units of decontamination
(gecko.data.text.overlap: NFKC and case folding; a word per run of letters and digits, punctuation and spaces only
separating; one unit per Hangul syllable with spaces ignored and one-syllable particles dropped), so a copy
that was re-spaced, re-punctuated, decomposed (NFD), typed in full-width forms or (Korean) given other
particles has the original's units. N-grams are shorter for Korean, whose units are syllables, than for
words. Code uses identifier/operator tokens so that reformatting does not hide a copy. Hashing is vectorized
with numpy (uint64 arithmetic wraps, which is what a rolling hash wants) and xxhash, so Python never loops
over n-grams.
"""

from __future__ import annotations

import re

import numpy as np
import xxhash

from gecko.data.text import overlap

_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: spreads small codepoints over 64 bits
_BASE = np.uint64(0x100000001B3)


def _finalize(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: nearby inputs (one codepoint apart) get unrelated outputs."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def ngrams(units: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every run of `n` consecutive unit hashes; a text shorter than `n` units is one n-gram."""
    units = units.astype(np.uint64, copy=False)
    if len(units) == 0:
        return units
    n = min(n, len(units))
    m = len(units) - n + 1
    with np.errstate(over="ignore"):
        mixed = units * _MIX
        h = mixed[:m].copy()
        for k in range(1, n):  # n vector operations in place, not a Python loop per n-gram
            h *= _BASE
            h += mixed[k : m + k]
        return _finalize(h)


def prose_units(text: str) -> np.ndarray:
    """Hashes of the normalized units of gecko.data.text.overlap: the one prose normalization of the project."""
    return overlap.units([text]).hashes


def hash_tokens(tokens: list[str]) -> np.ndarray:
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in tokens),
        dtype=np.uint64,
        count=len(tokens),
    )


_PUNCT = re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~")
_CODE_TOKEN = re.compile(f"[^\\s{_PUNCT}]+|[{_PUNCT}]")
"""A run of characters that are neither whitespace (re's \\s is str.split's whitespace) nor ASCII punctuation,
or one punctuation character: the tokens of splitting on whitespace with spaces put around punctuation, found
in one scan (2x faster than str.translate to a spaced copy, then str.split)."""


def code_units(text: str) -> np.ndarray:
    """Identifier and punctuation tokens: reformatting (spaces, line breaks) does not change them."""
    return hash_tokens(_CODE_TOKEN.findall(text))


def shingle_hashes(text: str, lang: str, sizes: dict[str, int]) -> np.ndarray:
    """MinHash shingles of `text`: token n-grams for code, normalized-unit n-grams for prose (ko: its own n)."""
    if lang == "code":
        return ngrams(code_units(text), sizes["code"])
    units = prose_units(text)
    if (
        len(units) == 0
    ):  # only symbols or emoji (`^^;`, `😀😀`): their tokens, or all would share one signature
        units = code_units(text)
    return ngrams(units, sizes["ko" if lang == "ko" else "en"])
