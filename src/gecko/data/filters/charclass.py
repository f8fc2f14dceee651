"""Character-class counts for a whole batch in one numpy pass.

Language ID and the quality rules count letters, spaces, Hangul and symbols in every document. A regex
substitution per document and class costs a C-level scan plus a Python call each; here a batch is joined,
encoded to code points once, and every code point looks up its classes in a 1.1 M-entry table. The table is
built from the very regexes the rules are defined by, so every count equals the regex-based count exactly.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

LETTER, SPACE, SYMBOL, HANGUL, SYLLABLE, JAMO = range(6)
"""Column of each class in `class_counts`."""
_DEFINITIONS = {
    LETTER: re.compile(r"[\W\d_]+"),  # removing these leaves letters: `[^\W\d_]`
    SPACE: re.compile(r"\S+"),  # str.split()'s whitespace (str.isspace), as regex `\s` is
    # Neither letter, digit, whitespace nor prose punctuation: emoticon symbols, box drawing, markup junk.
    SYMBOL: re.compile(r"[\w\s.,!?;:'\"()\[\]{}<>\-–—…·~%/&@#*+=^`|"
                       r"“”‘’「」『』《》〈〉]+"),
    SYLLABLE: re.compile("[^\uac00-\ud7a3]+"),
    JAMO: re.compile("[^\u3131-\u318e\u1100-\u11ff]+"),  # jamo as in ㅋㅋㅋ, ㅠㅠ
}
_HANGUL = re.compile("[^\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+")
"""HANGUL: syllables and conjoining/compatibility jamo that are letters (langid's Hangul share)."""


def codepoints(text: str) -> np.ndarray:
    """The text as uint32 code points (one per Python character, lone surrogates included)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@cache
def class_table() -> np.ndarray:
    """uint8 flags (bit i = class i) for every code point; built once per process (~0.1 s)."""
    everything = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=np.uint8)
    for cls, removes in _DEFINITIONS.items():
        table[codepoints(removes.sub("", everything))] |= np.uint8(1 << cls)
    letters = _DEFINITIONS[LETTER].sub("", everything)
    table[codepoints(_HANGUL.sub("", letters))] |= np.uint8(1 << HANGUL)
    return table


def class_counts(texts: list[str]) -> np.ndarray:
    """(len(texts), 6) int64: characters of each class (columns LETTER … JAMO) in each text."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    flags = class_table()[codepoints("".join(texts))]
    counts = np.empty((len(texts), len(_DEFINITIONS) + 1), dtype=np.int64)
    for cls in range(counts.shape[1]):
        running = np.concatenate([[0], np.cumsum((flags >> cls) & 1, dtype=np.int64)])
        counts[:, cls] = running[bounds[1:]] - running[bounds[:-1]]
    return counts


def letter_words(text: str) -> int:
    """Whitespace-delimited words with at least one letter: the number of matches of `\\S*[^\\W\\d_]\\S*`."""
    flags = class_table()[codepoints(text)]
    space = (flags & (1 << SPACE)) != 0
    starts = ~space
    starts[1:] &= space[:-1]  # first character of each word
    word = np.cumsum(starts)[(flags & (1 << LETTER)) != 0]  # word number of each letter
    return int(len(word) > 0) + int(np.count_nonzero(word[1:] != word[:-1]))
