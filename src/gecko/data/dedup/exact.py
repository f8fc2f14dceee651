"""Exact deduplication: the first document with a given normalized text wins, later copies are dropped."""

from __future__ import annotations

import hashlib
import re

_SPACE = re.compile(r"\s+")


def text_key(text: str) -> bytes:
    """Whitespace- and case-insensitive digest, so re-wrapped or re-cased copies count as the same text."""
    return hashlib.blake2b(_SPACE.sub(" ", text).strip().casefold().encode("utf-8"), digest_size=16).digest()


class ExactDedup:
    """Remembers 16-byte digests only, so memory stays small next to the texts themselves."""

    def __init__(self) -> None:
        self.first_seen: dict[bytes, str] = {}

    def duplicate_of(self, doc_id: str, text: str) -> str | None:
        """The id of the earlier document with the same text, or None (and remember this one)."""
        key = text_key(text)
        first = self.first_seen.setdefault(key, doc_id)
        return None if first == doc_id else first
