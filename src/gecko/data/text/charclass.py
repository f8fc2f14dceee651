"""Character-class counts for a whole batch in one numpy pass.

Language ID and the quality rules count letters, spaces, Hangul and symbols in every document. A regex
substitution per document and class costs a C-level scan plus a Python call each; here a batch is joined,
encoded to code points once, and every code point looks up its classes in a 1.1 M-entry table. The table is
built from the very regexes the rules are defined by, so every count equals the regex-based count exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

import numpy as np

LETTER, SPACE, SYMBOL, HANGUL, SYLLABLE, JAMO, ALNUM = CLASSES = range(7)
"""Column of each class in `class_counts`."""
JAMO_RUNS, CHAR_RUN = 7, 8
"""Columns that `class_counts(texts, char_run)` adds (see there)."""
_DEFINITIONS = {
    LETTER: re.compile(r"[\W\d_]+"),  # removing these leaves letters: `[^\W\d_]`
    SPACE: re.compile(r"\S+"),  # str.split()'s whitespace (str.isspace), as regex `\s` is
    # Neither letter, digit, whitespace nor prose punctuation: emoticon symbols, box drawing, markup junk.
    SYMBOL: re.compile(
        r"[\w\s.,!?;:'\"()\[\]{}<>\-–—…·~%/&@#*+=^`|"
        r"“”‘’「」『』《》〈〉]+"
    ),
    SYLLABLE: re.compile("[^\uac00-\ud7a3]+"),
    JAMO: re.compile("[^\u3131-\u318e\u1100-\u11ff]+"),  # jamo as in ㅋㅋㅋ, ㅠㅠ
    ALNUM: re.compile(r"[\W_]+"),  # removing these leaves letters and digits: `[^\W_]`
}
_HANGUL = re.compile("[^\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+")
"""HANGUL: syllables and conjoining/compatibility jamo that are letters (langid's Hangul share)."""


def codepoints(text: str) -> np.ndarray:
    """The text as uint32 code points (one per Python character, lone surrogates included)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@cache
def all_characters() -> str:
    """Every code point in order as one string (lone surrogates included), to derive tables from regexes."""
    return np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


@cache
def class_table() -> np.ndarray:
    """uint8 flags (bit i = class i) for every code point; built once per process (~0.1 s)."""
    everything = all_characters()
    table = np.zeros(0x110000, dtype=np.uint8)
    for cls, removes in _DEFINITIONS.items():
        table[codepoints(removes.sub("", everything))] |= np.uint8(1 << cls)
    letters = _DEFINITIONS[LETTER].sub("", everything)
    table[codepoints(_HANGUL.sub("", letters))] |= np.uint8(1 << HANGUL)
    return table


def class_counts(
    texts: list[str], char_run: int = 0, classes: Iterable[int] = CLASSES, cp: np.ndarray | None = None
) -> np.ndarray:
    r"""(len(texts), 7) int64: characters of each class (columns LETTER … ALNUM) in each text; only the
    columns in `classes` are counted, the others are left 0.

    With `char_run` > 0, two more columns from the same pass: JAMO_RUNS, the characters in runs of two or
    more jamo (what `[\u3131-\u318e\u1100-\u11ff]{2,}` matches), and CHAR_RUN, 1 if one letter or digit
    repeats `char_run` times in a row (a match of `([^\W_])\1{char_run - 1,}`), else 0.
    `cp`: codepoints("".join(texts)), when the caller has it."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    cp = codepoints("".join(texts)) if cp is None else cp
    flags = class_table()[cp]
    counts = np.zeros((len(texts), len(CLASSES) + 2 * (char_run > 0)), dtype=np.int64)
    for cls in classes:
        counts[:, cls] = _per_text((flags >> cls) & 1, bounds)
    if char_run > 0:
        starts = bounds[:-1][lengths > 0]  # first character of each non-empty text
        counts[:, JAMO_RUNS] = _per_text(_in_runs((flags >> JAMO) & 1 != 0, starts), bounds)
        counts[:, CHAR_RUN] = _has_run(cp, (flags >> ALNUM) & 1 != 0, starts, bounds, char_run)
    return counts


def _per_text(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of `values` (0 or 1 each) inside each text: differences of the running sum at the text bounds.
    The running sum is int32 where it fits (a batch is at most BATCH_CHARS characters or one document) and
    written after a leading 0: ~4x less memory traffic than an int64 sum copied behind one."""
    running = np.zeros(len(values) + 1, dtype=np.int32 if len(values) < 2**31 else np.int64)
    np.cumsum(values, dtype=running.dtype, out=running[1:])
    return (running[bounds[1:]] - running[bounds[:-1]]).astype(np.int64)


def _in_runs(member: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Members with a member neighbour in the same text: exactly the characters of runs of two or more."""
    before = np.zeros_like(member)
    before[1:] = member[:-1]
    before[starts] = False  # the previous character belongs to the previous text
    after = np.zeros_like(member)
    after[:-1] = member[1:]
    after[starts[1:] - 1] = False  # the last character of each text but the final one
    return member & (before | after)


def _has_run(
    cp: np.ndarray, member: np.ndarray, starts: np.ndarray, bounds: np.ndarray, n: int
) -> np.ndarray:
    """1 for each text holding `n` equal code points in a row that are members, else 0.

    For n ≥ 2 only the characters equal to the next one are listed (in prose a few per cent; listing every
    run's start cost 8 bytes a character): a run of n is n - 1 of them in a row."""
    if n >= 2:
        same = cp[1:] == cp[:-1]
        same[starts[starts > 0] - 1] = False  # a run never continues into the next text
        pairs = np.flatnonzero(same)  # i: cp[i + 1] continues the run through cp[i]
        cuts = np.flatnonzero(np.diff(pairs) != 1) + 1
        run_starts = pairs[np.concatenate([[0], cuts])] if len(pairs) else pairs
        run_lengths = np.diff(np.concatenate([cuts, [len(pairs)]]), prepend=0) + 1 if len(pairs) else pairs
    else:
        new_run = np.ones(len(cp), dtype=bool)
        new_run[1:] = cp[1:] != cp[:-1]
        new_run[starts] = True  # a run never continues into the next text
        run_starts = np.flatnonzero(new_run)
        run_lengths = np.diff(run_starts, append=len(cp))
    long_runs = run_starts[(run_lengths >= n) & member[run_starts]]
    out = np.zeros(len(bounds) - 1, dtype=np.int64)
    out[np.searchsorted(bounds[:-1], long_runs, side="right") - 1] = 1  # an empty text shares the next start
    return out


def letter_words(text: str) -> int:
    r"""Whitespace-delimited words with at least one letter: the number of matches of `\S*[^\W\d_]\S*`.
    Remove every character that is neither a letter nor a space, and each such word is one run of letters."""
    flags = class_table()[codepoints(text)]
    flags &= np.uint8((1 << LETTER) | (1 << SPACE))
    letter = flags[flags != 0] == (1 << LETTER)
    return int(letter[:1].sum()) + int(np.count_nonzero(letter[1:] > letter[:-1]))  # run starts
