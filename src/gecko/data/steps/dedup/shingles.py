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


GROUP_CHARS = 1 << 16
"""Prose is cut into units this many characters of texts at a time: one numpy pass per group rather than a
dozen numpy calls per text (4x faster on the benchmark's Korean and English, most of it short comments), in
arrays small enough to stay in the CPU cache."""


def prose_units(text: str) -> np.ndarray:
    """Hashes of the normalized units of gecko.data.text.overlap: the one prose normalization of the project."""
    return prose_units_batch([text])[0]


def prose_units_batch(texts: list[str]) -> list[np.ndarray]:
    """prose_units of each text, a group of texts per overlap.units call (a unit never spans two texts)."""
    out: list[np.ndarray] = []
    start = 0
    while start < len(texts):
        end, size = start + 1, len(texts[start])
        while end < len(texts) and size + len(texts[end]) <= GROUP_CHARS:
            size, end = size + len(texts[end]), end + 1
        u = overlap.units(texts[start:end])
        cuts = np.searchsorted(u.text_of, np.arange(end - start + 1)).tolist()
        out += [u.hashes[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
        start = end
    return out


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
    return shingle_batch([text], [lang], sizes)[0]


def shingle_batch(texts: list[str], langs: list[str], sizes: dict[str, int]) -> list[np.ndarray]:
    """shingle_hashes of each text (of language `langs[i]`), the prose units computed a group at a time."""
    prose = [i for i, lang in enumerate(langs) if lang != "code"]
    units = dict(zip(prose, prose_units_batch([texts[i] for i in prose])))
    out = []
    for i, (text, lang) in enumerate(zip(texts, langs)):
        if lang == "code":
            out.append(ngrams(code_units(text), sizes["code"]))
            continue
        u = units[i]
        # only symbols or emoji (`^^;`, `😀😀`): their tokens, or all would share one signature
        if len(u) == 0:
            u = code_units(text)
        out.append(ngrams(u, sizes["ko" if lang == "ko" else "en"]))
    return out
