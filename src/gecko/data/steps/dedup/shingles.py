"""Text → arrays of 64-bit unit and n-gram hashes for MinHash dedup (decontamination has gecko.data.text.overlap).

Prose (Korean, English and the rest) is cut into the normalized units of decontamination
(gecko.data.text.overlap: NFKC and case folding; a word per run of letters and digits, punctuation and spaces only
separating; one unit per Hangul syllable with spaces ignored and one-syllable particles dropped), so a copy
that was re-spaced, re-punctuated, decomposed (NFD), typed in full-width forms or (Korean) given other
particles has the original's units. N-grams are shorter for Korean, whose units are syllables, than for
words. Code uses identifier/operator tokens so that reformatting does not hide a copy. Hashing is vectorized
with numpy (uint64 arithmetic wraps, which is what a rolling hash wants; code tokens get xxh3 from
gecko.data.text.xxh3), so Python loops over neither tokens nor n-grams.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gecko.data.text import overlap
from gecko.data.text.xxh3 import xxh3_64

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
    return ngrams_flat([units.astype(np.uint64, copy=False)], [n])[0]


def _windows(units: np.ndarray, n: int) -> np.ndarray:
    """The n-gram hash at every start of `units` (uint64, at least `n` of them) that has n units after it."""
    m = len(units) - n + 1
    with np.errstate(over="ignore"):
        mixed = units * _MIX
        h = mixed[:m].copy()
        for k in range(1, n):  # n vector operations in place, not a Python loop per n-gram
            h *= _BASE
            h += mixed[k : m + k]
        return _finalize(h)


def ngrams_flat(units: list[np.ndarray], ns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """`ngrams(units[i], ns[i])` of each text (uint64 units), concatenated in text order, and the offsets
    that bound each text's (`flat[offsets[i]:offsets[i + 1]]`, what rensa takes): one numpy pass over the
    texts of each window size, a text shorter than its n being one window of all its units. Neither a
    numpy call per text nor an array per text (splitting the flat hashes per text, to be joined again for
    rensa, cost a fifth of the shingling)."""
    lengths = np.fromiter(map(len, units), dtype=np.int64, count=len(units))
    sizes = np.minimum(np.asarray(ns, dtype=np.int64), lengths)
    counts = np.where(lengths > 0, lengths - sizes + 1, 0)
    offsets = np.zeros(len(units) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint64)
    for n in np.unique(sizes[lengths > 0]).tolist():
        mine = (sizes == n) & (lengths > 0)
        texts = np.flatnonzero(mine).tolist()
        hashes = _windows(np.concatenate([units[i] for i in texts]), n)
        inside = np.ones(len(hashes) + n - 1, dtype=bool)  # windows that start and end in one text
        ends = np.cumsum(lengths[mine])
        for k in range(1, n):
            inside[ends - k] = False
        hashes = hashes[inside[: len(hashes)]]
        if len(texts) == np.count_nonzero(lengths):  # one size for every text: the windows are all of them
            return hashes, offsets
        flat[np.repeat(mine, counts)] = hashes
    return flat, offsets


GROUP_CHARS = 1 << 16
"""Prose is cut into units this many characters of texts at a time: one numpy pass per group rather than a
dozen numpy calls per text (4x faster on the benchmark's Korean and English, most of it short comments), in
arrays small enough to stay in the CPU cache."""


def prose_units(text: str) -> np.ndarray:
    """Hashes of the normalized units of gecko.data.text.overlap: the one prose normalization of the project."""
    return prose_units_batch([text])[0]


def _groups(texts: list[str]) -> list[tuple[int, int]]:
    """(start, end) of consecutive texts of at most GROUP_CHARS characters together (or one larger text)."""
    groups, start = [], 0
    while start < len(texts):
        end, size = start + 1, len(texts[start])
        while end < len(texts) and size + len(texts[end]) <= GROUP_CHARS:
            size, end = size + len(texts[end]), end + 1
        groups.append((start, end))
        start = end
    return groups


def prose_units_batch(texts: list[str]) -> list[np.ndarray]:
    """prose_units of each text, a group of texts per overlap.units call (a unit never spans two texts)."""
    out: list[np.ndarray] = []
    for start, end in _groups(texts):
        u = overlap.units(texts[start:end])
        cuts = np.searchsorted(u.text_of, np.arange(end - start + 1)).tolist()
        out += [u.hashes[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    return out


_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"
_SPACE, _MARK, _OTHER = 0, 1, 2
_LAST_SPACE = 0x3000
"""The highest codepoint str.split() splits on (test_dedup checks every codepoint)."""


def _code_classes() -> np.ndarray:
    """Class of each codepoint up to _LAST_SPACE + 1 (all above are _OTHER): whitespace as str.split() has
    it, ASCII punctuation, or anything else."""
    table = np.full(_LAST_SPACE + 2, _OTHER, dtype=np.uint8)
    table[[c for c in range(_LAST_SPACE + 1) if chr(c).isspace()]] = _SPACE
    table[[ord(c) for c in _PUNCT]] = _MARK
    return table


_CODE_CLASSES = _code_classes()
_ASCII_CODE_CLASSES = _CODE_CLASSES[:128].tobytes() + bytes(128)
"""_CODE_CLASSES of ASCII as a bytes.translate table (the upper half is never used)."""


def code_units(text: str) -> np.ndarray:
    """Identifier and punctuation tokens: reformatting (spaces, line breaks) does not change them."""
    return code_units_batch([text])[0]


def code_units_batch(texts: list[str]) -> list[np.ndarray]:
    """code_units of each text, a group of texts at a time (GROUP_CHARS, as prose_units_batch)."""
    out: list[np.ndarray] = []
    for start, end in _groups(texts):
        out += _code_units_group(texts[start:end])
    return out


def _utf8_offsets(cp: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function from character positions to UTF-8 byte offsets in the text of codepoints `cp`. Only the
    characters beyond ASCII, few in code, are counted: a cumulative sum over every character cost a third
    of the tokenizer's time."""
    wide = np.flatnonzero(cp >= 0x80)
    c = cp[wide]
    extra = np.concatenate(([0], np.cumsum(1 + (c >= 0x800).astype(np.int64) + (c >= 0x10000))))
    return lambda positions: positions + extra[np.searchsorted(wide, positions)]


def _code_units_group(texts: list[str]) -> list[np.ndarray]:
    """The xxh3_64 of the UTF-8 of each token of the texts, found and hashed with numpy. A token is a run of
    characters that are neither whitespace nor ASCII punctuation, or one punctuation mark: the tokens of
    splitting on whitespace with spaces put around punctuation (what test_dedup checks), 4x faster than a
    regex scan with a Python hash call per token. ASCII texts (most code) are classified byte by byte with
    bytes.translate, their bytes being their characters and their UTF-8 (a fifth of the tokenizer's time)."""
    joined = "\n".join(texts)  # a space between texts: no token spans two
    if joined.isascii():
        data = joined.encode("ascii")
        begin, end = _token_bounds(np.frombuffer(data.translate(_ASCII_CODE_CLASSES), dtype=np.uint8))
        hashes = xxh3_64(data, begin, end - begin)
    else:
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        begin, end = _token_bounds(_CODE_CLASSES[np.minimum(cp, _LAST_SPACE + 1)])
        at = _utf8_offsets(cp)
        start = at(begin)
        hashes = xxh3_64(joined.encode("utf-8", "surrogatepass"), start, at(end) - start)
    text_starts = np.cumsum([0] + [len(t) + 1 for t in texts])
    cuts = np.searchsorted(begin, text_starts).tolist()
    return [hashes[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _token_bounds(cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last + 1) character offsets of each token, given each character's class."""
    mark, other = cls == _MARK, cls == _OTHER
    first = mark | (other & ~np.concatenate(([False], other[:-1])))
    last = mark | (other & ~np.concatenate((other[1:], [False])))
    return np.flatnonzero(first), np.flatnonzero(last) + 1


def shingle_hashes(text: str, lang: str, sizes: dict[str, int]) -> np.ndarray:
    """MinHash shingles of `text`: token n-grams for code, normalized-unit n-grams for prose (ko: its own n)."""
    return shingle_flat([text], [lang], sizes)[0]


def shingle_flat(texts: list[str], langs: list[str], sizes: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """shingle_hashes of each text (of language `langs[i]`), concatenated, and the offsets that bound each
    text's (ngrams_flat); the prose units computed a group of texts at a time."""
    prose = [i for i, lang in enumerate(langs) if lang != "code"]
    code = [i for i, lang in enumerate(langs) if lang == "code"]
    units = dict(zip(prose, prose_units_batch([texts[i] for i in prose])))
    units.update(zip(code, code_units_batch([texts[i] for i in code])))
    ns = []
    for i, (text, lang) in enumerate(zip(texts, langs)):
        ns.append(sizes["code" if lang == "code" else "ko" if lang == "ko" else "en"])
        # only symbols or emoji (`^^;`, `😀😀`): their tokens, or all would share one signature
        if lang != "code" and len(units[i]) == 0:
            units[i] = code_units(text)
    return ngrams_flat([units[i].astype(np.uint64, copy=False) for i in range(len(texts))], ns)
