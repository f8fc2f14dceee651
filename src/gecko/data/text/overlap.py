"""Normalized units and long windows for benchmark overlap, hashed for many documents at once with numpy.

A copied benchmark item rarely comes back byte-exact: it is re-spaced, set in full-width punctuation,
upper-cased, or (Korean) written with other spacing and particles. So text is first NFKC-normalized and
case-folded (full-width letters and punctuation, ligatures, compatibility forms fold to one form; by table,
gecko.data.text.fold), then cut into units that ignore what a copy changes:

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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gecko.data.text import fold

PARTICLES = "은는이가을를에의도와과로"
"""One-syllable Korean particles (josa), dropped from the unit stream."""
WORD_WEIGHT = 5
HANGUL_WEIGHT = 2
"""A word weighs 2.5 Hangul syllables: a Korean word (eojeol) keeps 2.45 syllables on average once its
particles are dropped (kowiki; 2.60 in KMMLU law questions), so a window of 13 words is also ~13 Korean words."""

_SEP, _WORD, _HANGUL = 0, 1, 2
_B = np.uint64(0x100000001B3)  # odd, so invertible mod 2**64
_B_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_WORD_CHAR = re.compile(r"\w")


@lru_cache(maxsize=1)
def _classes() -> np.ndarray:
    """Class of every codepoint (built once, 1.1 MB): a table as long as Unicode, so classifying a text is one
    lookup per character. Outside the Basic Multilingual Plane every codepoint counts as a word character."""
    table = np.full(0x110000, _WORD, dtype=np.uint8)
    table[:0x10000] = [_WORD if _WORD_CHAR.match(chr(c)) else _SEP for c in range(0x10000)]
    table[0xAC00:0xD7A4] = _HANGUL
    table[[ord(p) for p in PARTICLES]] = _SEP  # dropped wherever they stand: between words they separate
    table[0xD800:0xE000] = _SEP  # lone surrogates
    return table


@lru_cache(maxsize=1)
def _folding() -> np.ndarray:
    """fold.table for these unit rules (built once)."""
    return fold.table(_classes() == _SEP)


def _finalize(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads nearby inputs over all 64 bits."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _power_table(base: np.uint64, size: int) -> np.ndarray:
    """base**k for k < size, wrapping mod 2**64 (cumprod wraps like uint64 multiplication)."""
    with np.errstate(over="ignore"):
        out = np.empty(size, dtype=np.uint64)
        out[0] = 1
        out[1:] = np.cumprod(np.full(size - 1, base, dtype=np.uint64), dtype=np.uint64)
        return out


class _Powers:
    """B**k and B**-k mod 2**64 for k < n. Tables up to `KEEP` long are kept and grown by doubling; a longer
    request (one text of megabytes) gets tables of its own, so memory does not stay at its largest text."""

    KEEP = 1 << 21

    def __init__(self) -> None:
        self.fwd = self.inv = np.ones(1, dtype=np.uint64)

    def __call__(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(B**k, B**-k) for k < n, or longer."""
        if n > self.KEEP:
            return _power_table(_B, n), _power_table(_B_INV, n)
        if n > len(self.fwd):
            size = min(max(n, 2 * len(self.fwd)), self.KEEP)
            self.fwd, self.inv = _power_table(_B, size), _power_table(_B_INV, size)
        return self.fwd, self.inv


_POWERS = _Powers()


def _prefix_sums(values: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """S[k] = sum of values[j] * B**j for j < k, mod 2**64, so that a run i..e of values hashes to
    (S[e] - S[i]) * B**-i: the same polynomial wherever the run stands."""
    out = np.zeros(len(values) + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.cumsum(np.multiply(values, fwd[: len(values)], dtype=np.uint64), out=out[1:])
    return out


@dataclass
class Units:
    """The units of a batch of texts: hash, weight and owning text of each, in text order."""

    hashes: np.ndarray  # uint64
    weights: np.ndarray  # int64
    text_of: np.ndarray  # int64, index of the text in the batch

    def __len__(self) -> int:
        return len(self.hashes)


def units(texts: list[str], drop_markers: bool = False) -> Units:
    """Units of every text, concatenated; a unit never spans two texts.

    A unit's hash is sum((c + 1) * B**j) over its codepoints c at offsets j, mixed by _MIX and _finalize; it
    is taken from prefix sums over the whole batch's codepoints, so no Python or per-unit loop is needed."""
    cp, classes, lengths = _normalized(texts)
    start, end, hangul = _unit_bounds(classes)
    if drop_markers:
        c = cp[start]
        marker = (end - start == 1) & (((c - 0x30) < 10) | ((c - 0x61) < 26))  # one of 0-9 a-z (uint32 wraps)
        keep = ~marker
        start, end, hangul = start[keep], end[keep], hangul[keep]
    fwd, inv = _POWERS(len(cp) + 1)
    with np.errstate(over="ignore"):
        sums = _prefix_sums(cp + np.uint32(1), fwd)
        hashes = _finalize((sums[end] - sums[start]) * inv[start] * _MIX)
    weights = np.where(hangul, HANGUL_WEIGHT, WORD_WEIGHT).astype(np.int64)
    text_starts = np.cumsum(lengths + 1) - (lengths + 1)
    text_of = np.repeat(
        np.arange(len(texts)), np.diff(np.searchsorted(start, text_starts), append=len(start))
    )
    return Units(hashes, weights, text_of)


def _normalized(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codepoints, their classes, each text's length) of the NFKC-normalized, case-folded texts joined by
    NUL, a separator. An all-ASCII batch (most code) takes a shortcut: NFKC leaves ASCII as it is and case
    folding is lower(), and bytes.translate classifies: C loops over bytes instead of two table lookups a
    character (a third of the per-character cost)."""
    if all(t.isascii() for t in texts):
        data = "\0".join(texts).lower().encode("ascii")
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return (
            np.frombuffer(data, np.uint8),
            np.frombuffer(data.translate(_ascii_classes()), np.uint8),
            lengths,
        )
    cp, lengths = fold.codepoints(texts, _folding())
    return cp, _classes()[cp], lengths


@lru_cache(maxsize=1)
def _ascii_classes() -> bytes:
    """_classes of the first 256 codepoints as a bytes.translate table."""
    return _classes()[:256].tobytes()


def _unit_bounds(cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, last + 1, is Hangul) of every unit, in codepoint offsets: a unit is a run of word characters
    or one Hangul syllable."""
    word = cls == _WORD
    first = cls != _SEP
    last = first.copy()
    apart = ~(word[1:] & word[:-1])  # no word continues from codepoint k to k + 1
    first[1:] &= apart
    last[:-1] &= apart
    start = np.flatnonzero(first)
    return start, np.flatnonzero(last) + 1, cls[start] == _HANGUL


class Windows:
    """Window hashes over a batch's units, for any weight threshold."""

    def __init__(self, u: Units) -> None:
        self.u = u
        n = len(u)
        self.cum = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(u.weights, out=self.cum[1:])
        self.fwd, self.inv = _POWERS(n + 1)
        self.prefix = _prefix_sums(u.hashes, self.fwd)

    def reaching(self) -> np.ndarray:
        """For every weight w up to the batch's total, the first unit count e with cum[e] >= w: the weights
        are small integers, so for a window from every start this table replaces a binary search each."""
        return np.repeat(np.arange(len(self.cum)), np.diff(self.cum, prepend=-1))

    def ends(self, starts: np.ndarray, threshold: int | np.ndarray) -> np.ndarray:
        """End (exclusive) of the shortest window from each start whose weight reaches the threshold, or
        -1 where the text ends first. A binary search per start: for a few starts, cheaper than `reaching`."""
        e = np.searchsorted(self.cum, self.cum[starts] + threshold, side="left")
        ok = e <= len(self.u)
        ok[ok] &= self.u.text_of[e[ok] - 1] == self.u.text_of[starts[ok]]
        return np.where(ok, e, -1)

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return _finalize((self.prefix[ends] - self.prefix[starts]) * self.inv[starts])

    def unchecked(self, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """(end, hash) of the window of the given weight from every start, in order, as far as the batch has
        room: a window may run into the next text (`within_text` tells), which a caller that looks the hashes
        up need check only for the few it finds, sparing two lookups and two compactions per window. The
        ends grow with the starts, so the starts that fit in the batch are a prefix of all units."""
        fit = min(int(np.searchsorted(self.cum, self.cum[-1] - threshold, side="right")), len(self.u))
        ends = self.reaching()[self.cum[:fit] + threshold]
        with np.errstate(over="ignore"):
            return ends, _finalize((self.prefix[ends] - self.prefix[:fit]) * self.inv[:fit])

    def heads(self, k: int) -> np.ndarray:
        """A hash of the `k` units from every start that has `k` units after it (they may run into the next
        text): unfinalized, from slices of the prefix sums, so one subtraction and one product a start. Every
        window of weight w begins with `min_units(w)` units, so their head is a cheap first test of a window."""
        n = len(self.u)
        if n < k:
            return np.zeros(0, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (self.prefix[k:] - self.prefix[: n + 1 - k]) * self.inv[: n + 1 - k]

    def within_text(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Whether each window starts and ends in one text."""
        return self.u.text_of[ends - 1] == self.u.text_of[starts]

    def all(self, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, hash) of every complete window of the given weight."""
        ends, hashes = self.unchecked(threshold)
        starts = np.arange(len(ends))
        ok = self.within_text(starts, ends)
        return starts[ok], hashes[ok]


def min_units(weight: int) -> int:
    """The fewest units that can weigh `weight` (all words, the heaviest unit)."""
    return -(-weight // WORD_WEIGHT)


def text_weights(texts: list[str]) -> np.ndarray:
    """Total unit weight of each text under decontamination's units (a text lighter than a window can only
    match as a whole)."""
    u = units(texts, drop_markers=True)
    return np.bincount(u.text_of, weights=u.weights, minlength=len(texts)).astype(np.int64)
