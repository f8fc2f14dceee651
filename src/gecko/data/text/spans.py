"""Prose and code spans of one document: Korean (or English) prose with fenced code blocks.

A tutorial, a Q&A answer or a README is prose with code in it, and one label for the whole document gets one
part wrong: as prose, its code loses trailing spaces and blank lines and pulls the Hangul share and the
Korean quality ratios down (a Korean page about Python turns `en` or fails `ko_hangul_ratio`); as code, its
prose loses the prose rules. So the steps that care look at spans: normalization tidies only the prose
spans and leaves code blocks byte-exact, language ID and the prose quality rules read only the prose, and
PII is searched in both (its rules, secrets included, hold in prose and code alike).

A code span is a fenced block as CommonMark defines it: a line of three or more backticks or tildes (up to
three spaces of indentation, a backtick fence's info string without backticks) up to a closing line of the
same character at least as long, or to the end of the text when it is never closed. Fence lines belong to
the code span.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)
FENCE_INDENT = 3
"""Spaces a fence line may start with: its three fence characters begin within the line's first four."""


@cache
def _closing(char: str, length: int) -> re.Pattern[str]:
    return re.compile(rf"^ {{0,3}}{re.escape(char)}{{{length},}}[ \t]*$", re.MULTILINE)


def has_code_blocks(text: str) -> bool:
    """A cheap screen: only a text containing a fence can hold a code span. A text without the fence's
    character is passed by a one-character scan (memchr speed), ~2x cheaper than looking for three."""
    return ("`" in text and "```" in text) or ("~" in text and "~~~" in text)


def fence_lines(text: str, fence: str, pos: int = 0) -> Iterator[int]:
    """Starts of the lines from `pos` (a line start) on whose first FENCE_INDENT + 1 characters begin a
    `fence`, in order: every line where a fence line's regex (^ {0,3}```…) can match. `str.find` jumps to
    them, where a MULTILINE regex without a leading literal is tried at every character (~19 ns each)."""
    i = text.find(fence, pos)
    while i >= 0:
        start = text.rfind("\n", 0, i) + 1
        if i - start <= FENCE_INDENT:
            yield start
        end = text.find("\n", i)  # any later fence of this line starts further in
        i = text.find(fence, end) if end >= 0 else -1


def _openings(text: str) -> Iterator[re.Match[str]]:
    """What `_OPEN.finditer(text)` yields: its matches are whole lines, each on a line fence_lines finds."""
    starts = sorted({*fence_lines(text, "```"), *fence_lines(text, "~~~")})
    return (m for m in (_OPEN.match(text, start) for start in starts) if m)


def _close(text: str, fence: str, pos: int) -> re.Match[str] | None:
    """What `_closing(fence[0], len(fence)).search(text, pos)` finds, from the line start `pos` on."""
    closing = _closing(fence[0], len(fence))
    return next(filter(None, (closing.match(text, i) for i in fence_lines(text, fence[:3], pos))), None)


def segments(text: str) -> list[tuple[bool, str]]:
    """(is_code, piece) in order; the pieces concatenate back to `text` exactly."""
    if not has_code_blocks(text):
        return [(False, text)]
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _openings(text):
        fence = m.group(1)
        if m.start() < pos or (fence[0] == "`" and "`" in m.group(2)):
            continue  # inside the previous block, or inline code such as ```x``` on one line
        close = _close(text, fence, m.end() + 1)
        end = close.end() if close else len(text)
        out += [(False, text[pos : m.start()]), (True, text[m.start() : end])]
        pos = end
    out.append((False, text[pos:]))
    return [(is_code, piece) for is_code, piece in out if piece]


def prose(text: str) -> str:
    """The text without its code blocks (the text itself when it has none, or when it is all code)."""
    if not has_code_blocks(text):
        return text
    kept = "".join(piece for is_code, piece in segments(text) if not is_code)
    return kept if kept.strip() else text
