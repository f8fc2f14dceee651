"""Korean near-duplicates made the way people and pipelines make them, written apart from the dedup rules.

This file imports nothing from gecko: it knows how Korean text gets re-typed, re-formatted and re-posted,
not how the dedup normalizes or shingles, so a dedup tuned to these edits is tuned to real edits, not to
its own generator. Each edit is a function (text, rng) -> text; `perturb` applies one named edit or a mix.

Edits (one "kind" per copy, so recall can be reported per kind):
- respace: Korean spacing is inconsistent: join ~30 % of word pairs, split ~10 % of long words;
- particle: another particle of the same role (은/는, 이/가, 을/를, 와/과, 으로/로, 에서/에, 에게/한테) or the
  particle dropped, on ~25 % of the words ending in one;
- punct: ASCII punctuation to its CJK/typographic forms (。，“”…), commas dropped or added, ! and ?;
- sentence_del / sentence_add: one sentence removed, or one taken from another document inserted;
- nfd: the whole text decomposed into conjoining jamo (what macOS file names and some editors produce);
- fullwidth: ASCII letters, digits and punctuation as full-width forms (what Korean IMEs type);
- rewrap: lines joined into one paragraph, or the text wrapped at 30-60 columns;
- typo: ~2 % of the syllables replaced by a neighbour syllable (one jamo off);
- mixed: three of the above at once.

English text gets the edits that mean something there (ENGLISH_KINDS).
"""

from __future__ import annotations

import random
import re
import unicodedata

PARTICLE_SWAPS = {"은": "는", "는": "은", "이": "가", "가": "이", "을": "를", "를": "을", "와": "과", "과": "와",
                  "으로": "로", "로": "으로", "에서": "에", "에게": "한테", "한테": "에게", "의": ""}
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|(?<=다\.)\s*|\n+")
_HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]+")


def respace(text: str, rng: random.Random) -> str:
    out = []
    for part in re.split(r"( )", text):
        if part == " " and rng.random() < 0.3:
            continue  # join two words
        if _HANGUL_WORD.fullmatch(part) and len(part) >= 4 and rng.random() < 0.1:
            cut = rng.randrange(2, len(part) - 1)
            part = part[:cut] + " " + part[cut:]
        out.append(part)
    return "".join(out)


def particle(text: str, rng: random.Random) -> str:
    def swap(m: re.Match) -> str:
        word = m.group(0)
        for p in sorted(PARTICLE_SWAPS, key=len, reverse=True):
            if word.endswith(p) and len(word) > len(p) and rng.random() < 0.25:
                return word[: -len(p)] + PARTICLE_SWAPS[p]
        return word
    return _HANGUL_WORD.sub(swap, text)


def punct(text: str, rng: random.Random) -> str:
    table = {".": "。", ",": "，", "\"": "“", "'": "‘", "...": "…", "!": "！", "?": "？"}
    out = []
    for ch in text:
        r = rng.random()
        if ch == "," and r < 0.3:
            continue
        if ch in table and r < 0.7:
            ch = table[ch]
        elif ch == " " and r < 0.02:
            ch = ", "
        out.append(ch)
    return "".join(out)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s and s.strip()]


def sentence_del(text: str, rng: random.Random) -> str:
    parts = sentences(text)
    if len(parts) < 2:
        return text
    del parts[rng.randrange(len(parts))]
    return " ".join(parts)


def sentence_add(text: str, rng: random.Random, donor: str = "") -> str:
    parts, extra = sentences(text), sentences(donor)
    if not extra:
        return text
    parts.insert(rng.randrange(len(parts) + 1), rng.choice(extra))
    return " ".join(parts)


def nfd(text: str, rng: random.Random) -> str:
    return unicodedata.normalize("NFD", text)


def fullwidth(text: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def rewrap(text: str, rng: random.Random) -> str:
    if "\n" in text and rng.random() < 0.5:
        return " ".join(text.split("\n"))
    width, out, line = rng.randrange(30, 61), [], ""
    for word in " ".join(text.split("\n")).split(" "):
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(out + [line])


def typo(text: str, rng: random.Random) -> str:
    """A syllable with its final consonant changed: 0xAC00 + (initial*21 + medial)*28 + final."""
    chars = list(text)
    for i, c in enumerate(chars):
        if "\uac00" <= c <= "\ud7a3" and rng.random() < 0.02:
            base = ord(c) - 0xAC00
            chars[i] = chr(0xAC00 + base - base % 28 + (base % 28 + rng.randrange(1, 28)) % 28)
    return "".join(chars)


EDITS = {"respace": respace, "particle": particle, "punct": punct, "sentence_del": sentence_del,
         "sentence_add": sentence_add, "nfd": nfd, "fullwidth": fullwidth, "rewrap": rewrap, "typo": typo}
KINDS = (*EDITS, "mixed")
ENGLISH_KINDS = ("punct", "sentence_del", "sentence_add", "fullwidth", "rewrap", "mixed")
"""The edits that mean something in English text (no particles, syllables or Korean spacing)."""


def perturb(text: str, kind: str, rng: random.Random, donor: str = "", kinds: tuple[str, ...] = KINDS) -> str:
    """`text` with the edit `kind` applied (`donor`: another document, for sentence_add); `mixed` draws three
    of the other `kinds`."""
    if kind == "mixed":
        for k in rng.sample(sorted(set(kinds) - {"mixed"}), 3):
            text = perturb(text, k, rng, donor)
        return text
    if kind == "sentence_add":
        return sentence_add(text, rng, donor)
    return EDITS[kind](text, rng)
