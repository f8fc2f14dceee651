"""Normalized units and long windows for benchmark overlap, hashed for many documents at once with numpy.

A copied benchmark item rarely comes back byte-exact: it is re-spaced, set in full-width punctuation,
upper-cased, or (Korean) written with other spacing and particles. So text is first NFKC-normalized and
case-folded (full-width letters and punctuation, ligatures, compatibility forms fold to one form), then cut
into units that ignore what a copy changes:

- a run of letters, digits or `_` outside Hangul is one *word* unit (punctuation and spaces separate
  words and are otherwise ignored, so re-spacing around punctuation does not matter);
- every Hangul syllable is its own unit and spaces between Hangul are ignored: Korean spacing is
  inconsistent in practice (할 수 있다 / 할수있다), and a word unit would break on every difference;
- the one-syllable particles in `PARTICLES` are dropped wherever they stand, so a quote with other
  particles (서울은 / 서울이) still matches; both sides lose the same syllables, so an exact copy always
  matches;
- with `drop_markers` (decontamination), a unit that is one ASCII letter or digit is dropped too: exam copies
  of an item number it and label its choices (문제 5., ① … ④ which NFKC makes 1 … 4, A., (B), 3)), and a
  marker between two choices would otherwise break every window across them.

A window is the shortest run of units from a start whose weight reaches a threshold; a word weighs 2.5
syllables (`WORD_WEIGHT` / `HANGUL_WEIGHT`), so 13 English words and about 13 Korean words (33 syllables)
make one window. A
window's hash comes from prefix sums (hash(i..e) = (S[e] - S[i]) · B⁻ⁱ mod 2⁶⁴), so every window of a
batch is a few vector operations, never a Python loop over words or windows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PARTICLES = "은는이가을를에의도와과로"
"""One-syllable Korean particles (josa), dropped from the unit stream."""
WORD_WEIGHT = 5
HANGUL_WEIGHT = 2
"""A word weighs 2.5 Hangul syllables: a Korean word (eojeol) keeps 2.45 syllables on average once its
particles are dropped (kowiki; 2.60 in KMMLU law questions), so a window of 13 words is also ~13 Korean words."""

_SEP, _WORD, _HANGUL, _DROP = 0, 1, 2, 3
_B = np.uint64(0x100000001B3)  # odd, so invertible mod 2**64
_B_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_WORD_CHAR = re.compile(r"\w")


@lru_cache(maxsize=1)
def _classes() -> np.ndarray:
    """Class of every Basic Multilingual Plane codepoint (built once, 64 KiB)."""
    table = np.array([_WORD if _WORD_CHAR.match(chr(c)) else _SEP for c in range(0x10000)], dtype=np.uint8)
    table[0xAC00:0xD7A4] = _HANGUL
    table[[ord(p) for p in PARTICLES]] = _DROP
    table[0xD800:0xE000] = _SEP  # lone surrogates
    return table


def _finalize(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads nearby inputs over all 64 bits."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


class _Powers:
    """B**k and B**-k mod 2**64 for k < n, grown by doubling as longer batches arrive."""

    def __init__(self) -> None:
        self.fwd = self.inv = np.ones(1, dtype=np.uint64)

    def need(self, n: int) -> None:
        if n <= len(self.fwd):
            return
        size = max(n, 2 * len(self.fwd))
        with np.errstate(over="ignore"):
            self.fwd = _power_table(_B, size)
            self.inv = _power_table(_B_INV, size)


def _power_table(base: np.uint64, size: int) -> np.ndarray:
    """base**k for k < size, wrapping mod 2**64 (cumprod wraps like uint64 multiplication)."""
    with np.errstate(over="ignore"):
        out = np.empty(size, dtype=np.uint64)
        out[0] = 1
        out[1:] = np.cumprod(np.full(size - 1, base, dtype=np.uint64), dtype=np.uint64)
        return out


_POWERS = _Powers()


@dataclass
class Units:
    """The units of a batch of texts: hash, weight and owning text of each, in text order."""

    hashes: np.ndarray  # uint64
    weights: np.ndarray  # int64
    text_of: np.ndarray  # int64, index of the text in the batch

    def __len__(self) -> int:
        return len(self.hashes)


def normalize(text: str) -> str:
    """NFKC then case folding: full-width forms, compatibility characters and case become one form."""
    return unicodedata.normalize("NFKC", text).casefold()


def units(texts: list[str], drop_markers: bool = False) -> Units:
    """Units of every text, concatenated; a unit never spans two texts."""
    joined = "\0".join(normalize(t.replace("\0", " ") if "\0" in t else t) for t in texts)  # NUL ends a text
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    cls = _classes()[np.minimum(cp, 0xFFFF)]
    cls[cp > 0xFFFF] = _WORD
    text_of_char = np.cumsum(cp == 0)
    keep = (cls == _WORD) | (cls == _HANGUL)
    is_word = cls == _WORD
    starts_char = (cls == _HANGUL) | (is_word & ~np.concatenate(([False], is_word[:-1])))
    kept_idx = np.flatnonzero(keep)
    starts = starts_char[kept_idx]
    unit_start = np.flatnonzero(starts)
    if len(unit_start) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Units(np.zeros(0, dtype=np.uint64), empty, empty)
    pos = np.arange(len(kept_idx)) - unit_start[np.cumsum(starts) - 1]  # position inside its unit
    _POWERS.need(int(pos.max()) + 1)
    with np.errstate(over="ignore"):
        values = (cp[kept_idx].astype(np.uint64) + np.uint64(1)) * _POWERS.fwd[pos]
        hashes = _finalize(np.add.reduceat(values, unit_start) * _MIX)
    first = kept_idx[unit_start]
    weights = np.where(cls[first] == _HANGUL, HANGUL_WEIGHT, WORD_WEIGHT).astype(np.int64)
    text_of = text_of_char[first].astype(np.int64)
    if drop_markers:
        one_char = np.diff(np.append(unit_start, len(kept_idx))) == 1
        c = cp[first]
        keep_unit = ~(one_char & (((c >= 0x30) & (c <= 0x39)) | ((c >= 0x61) & (c <= 0x7A))))
        return Units(hashes[keep_unit], weights[keep_unit], text_of[keep_unit])
    return Units(hashes, weights, text_of)


class Windows:
    """Window hashes over a batch's units, for any weight threshold."""

    def __init__(self, u: Units) -> None:
        self.u = u
        n = len(u)
        self.cum = np.concatenate(([0], np.cumsum(u.weights)))
        _POWERS.need(n + 1)
        with np.errstate(over="ignore"):
            self.prefix = np.concatenate(
                ([np.uint64(0)], np.cumsum(u.hashes * _POWERS.fwd[:n], dtype=np.uint64))
            )

    def ends(self, starts: np.ndarray, threshold: int | np.ndarray) -> np.ndarray:
        """End (exclusive) of the shortest window from each start whose weight reaches the threshold, or
        -1 where the text ends first."""
        e = np.searchsorted(self.cum, self.cum[starts] + threshold, side="left")
        ok = e <= len(self.u)
        ok[ok] &= self.u.text_of[e[ok] - 1] == self.u.text_of[starts[ok]]
        return np.where(ok, e, -1)

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return _finalize((self.prefix[ends] - self.prefix[starts]) * _POWERS.inv[starts])

    def all(self, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, hash) of every complete window of the given weight."""
        starts = np.arange(len(self.u))
        ends = self.ends(starts, threshold)
        ok = ends >= 0
        return starts[ok], self.hashes(starts[ok], ends[ok])


def text_weights(texts: list[str]) -> np.ndarray:
    """Total unit weight of each text under decontamination's units (a text lighter than a window can only
    match as a whole)."""
    u = units(texts, drop_markers=True)
    return np.bincount(u.text_of, weights=u.weights, minlength=len(texts)).astype(np.int64)
