"""The vectorized units, windows and benchmark lookups agree with a plain Python reading of their rules.

gecko.data.text.overlap computes units with numpy (a folding table instead of Python's NFKC per text, prefix
sums instead of a loop per unit) and decontam's _SortedSet finds keys through a bitmap and buckets; these
tests hold them to a reference written from the docstrings: normalize with unicodedata, walk the characters,
hash each unit with Python integers.
"""

from __future__ import annotations

import random
import re
import unicodedata

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.data.steps.decontam import _Bitmap, _SortedSet
from gecko.data.text import fold, overlap

M = 2**64
B, MIX = 0x100000001B3, 0x9E3779B97F4A7C15

TRICKY = (
    "aZ09_ .,!?\n\t\0"
    "가나다은는이가을를에의도와과로한국어"  # Hangul syllables and the dropped particles
    "ㄱㅋㅠㅏㅡ"  # compatibility jamo: NFKC makes conjoining jamo, which compose (ㅋㅠ → 큐)
    "\u1100\u1161\u11a8\u1160"  # conjoining jamo: initial, vowel, final, filler
    "é\u0301\u0308e\u0327ǅ"  # precomposed and combining marks
    "ＡＺａ０！（）　"  # full-width
    "ﬁß İΐᾳΣς"  # ligature, case folding that expands or is Greek
    "…℃①½㈜™㎡Ⅱ"  # compatibility forms: several characters or separators only
    "\u0bc6\u0bbe\u0bca"  # a Tamil vowel sign that composes with the one before it
    "😀𠀀𐐀𐐨\U000110a5\U000110ba"  # outside the BMP: emoji, CJK, Deseret (has case), Kaithi (composes)
    "\ud800"  # a lone surrogate
)


def _finalize(h: int) -> int:
    h ^= h >> 30
    h = h * 0xBF58476D1CE4E5B9 % M
    h ^= h >> 27
    h = h * 0x94D049BB133111EB % M
    return h ^ (h >> 31)


def _kind(ch: str) -> str:
    c = ord(ch)
    if ch in overlap.PARTICLES or 0xD800 <= c < 0xE000:
        return "sep"
    if 0xAC00 <= c <= 0xD7A3:
        return "hangul"
    return "word" if c > 0xFFFF or re.match(r"\w", ch) else "sep"


def reference_units(text: str, drop_markers: bool) -> list[int]:
    """Unit hashes of `text` by the module docstring's rules, one character at a time."""
    runs: list[str] = []
    word = ""
    for ch in unicodedata.normalize("NFKC", text).casefold() + " ":
        kind = _kind(ch)
        if kind != "word" and word:
            runs.append(word)
            word = ""
        if kind == "word":
            word += ch
        elif kind == "hangul":
            runs.append(ch)
    if drop_markers:
        runs = [r for r in runs if not (len(r) == 1 and r in "0123456789abcdefghijklmnopqrstuvwxyz")]
    return [_finalize(sum((ord(c) + 1) * pow(B, j, M) for j, c in enumerate(r)) * MIX % M) for r in runs]


def _units_each(texts: list[str], drop_markers: bool) -> list[list[int]]:
    u = overlap.units(texts, drop_markers)
    return [u.hashes[u.text_of == i].tolist() for i in range(len(texts))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=TRICKY, max_size=12), min_size=1, max_size=6), st.booleans())
def test_units_follow_the_rules_on_tricky_text(texts, drop_markers):
    assert _units_each(texts, drop_markers) == [reference_units(t, drop_markers) for t in texts]


def test_every_pair_of_tricky_characters():
    """Composition and reordering happen between neighbours: every ordered pair, with context on both sides."""
    texts = [f"x{a}{b}y {a}{b}" for a in TRICKY for b in TRICKY]
    assert _units_each(texts, True) == [reference_units(t, True) for t in texts]


def test_real_text_in_one_batch_as_one_by_one():
    rng = random.Random(3)
    texts = ["".join(rng.choice(TRICKY) for _ in range(rng.randrange(40))) for _ in range(300)]
    texts += ["대한민국은 동아시아의 한반도에 위치한 민주공화국이다 ㅋㅋㅠㅠ…", "The PYTHON ﬁle, Straße ①②"]
    assert _units_each(texts, False) == [reference_units(t, False) for t in texts]


def test_an_ascii_batch_takes_the_same_units():
    """All-ASCII batches skip the folding table (lower() and bytes.translate)."""
    rng = random.Random(4)
    ascii_chars = [c for c in TRICKY if c.isascii()] + list("AQ_()[]{}#=+-*/'\"")
    texts = ["".join(rng.choice(ascii_chars) for _ in range(rng.randrange(60))) for _ in range(200)]
    texts.append("def Parse_URL(x, y2):\n    return X1 + y_2  # A. B) 3.")
    assert _units_each(texts, True) == [reference_units(t, True) for t in texts]
    assert _units_each(texts, False) == [reference_units(t, False) for t in texts]


def test_compositions_outside_the_basic_plane_leave_the_table_alone():
    """fold.table looks for characters that compose with the one before them among the BMP's compositions."""
    astral = fold.second_halves(range(0x10000, 0x110000)) - fold.second_halves(range(0))  # less Hangul's
    assert astral and not [c for c in astral if fold.in_table(c)]


def test_windows_match_a_loop_over_units():
    rng = random.Random(5)
    texts = [
        " ".join(rng.choice(["가", "나다", "word", "x", "가는"]) for _ in range(rng.randrange(30)))
        for _ in range(50)
    ]
    u = overlap.units(texts, drop_markers=True)
    win = overlap.Windows(u)
    starts, hashes = win.all(13)
    expected = []
    for i in range(len(u)):
        weight, e = 0, i
        while e < len(u) and u.text_of[e] == u.text_of[i] and weight < 13:
            weight, e = weight + int(u.weights[e]), e + 1
        if weight >= 13:
            h = sum(int(u.hashes[j]) * pow(B, j - i, M) for j in range(i, e)) % M
            expected.append((i, _finalize(h)))
    assert list(zip(starts.tolist(), hashes.tolist())) == expected


def test_heads_are_the_first_units_of_each_window():
    """A window's head (its first min_units(weight) units) is what the index's head bitmap holds."""
    texts = ["가나다라마바사아자차카타파하 " * 3, "one two three four five six seven eight nine ten", "x"]
    u = overlap.units(texts, drop_markers=True)
    win = overlap.Windows(u)
    k = overlap.min_units(40)
    heads = win.heads(k).tolist()
    assert len(heads) == len(u) - k + 1
    for i, h in enumerate(heads):
        assert h == sum(int(u.hashes[j]) * pow(B, j - i, M) for j in range(i, i + k)) % M
    starts, _ = win.all(40)
    assert all(win.ends(starts, 40) - starts >= k)  # every window spans its head


def test_bitmap_holds_every_key():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 2**64 - 1, 20000, dtype=np.uint64))
    probes = np.concatenate([keys, rng.integers(0, 2**64 - 1, 20000, dtype=np.uint64)])
    maybe = _Bitmap.of(keys).may_hold(probes)
    assert maybe[: len(keys)].tolist() == list(range(len(keys)))
    assert len(maybe) - len(keys) < 20000 * 0.05  # 64 slots a key: a few percent pass by chance
    packed = _Bitmap.of(keys)
    assert packed.flags is not None  # small: tested as bools; the packed bit test must agree
    packed.flags = None
    assert packed.may_hold(probes).tolist() == maybe.tolist()


def test_sorted_set_finds_every_equal_key_in_order():
    rng = np.random.default_rng(0)
    keys = np.sort(
        np.concatenate([rng.integers(0, 2**63, 5000, dtype=np.uint64)] * 2 + [np.arange(40, dtype=np.uint64)])
    )
    probes = np.concatenate([rng.choice(keys, 3000), rng.integers(0, 2**63, 3000, dtype=np.uint64)])
    rng.shuffle(probes)
    hit, key = _SortedSet(keys).find(probes)
    expected = [(p, k) for p, v in enumerate(probes.tolist()) for k in np.flatnonzero(keys == v).tolist()]
    assert list(zip(hit.tolist(), key.tolist())) == expected
