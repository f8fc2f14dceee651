"""Exact duplicates: the digest of whitespace- and case-normalized text. It is the `exact` band of the
MinHash stages (gecko.data.steps.dedup.minhash), so exact and near duplicates share one cluster-and-filter pass."""

from __future__ import annotations

import hashlib


def folded_key(folded: str) -> bytes:
    """Whitespace- and case-insensitive digest of a text, given case-folded (`text.casefold()`, which the
    boilerplate tally shares), so re-wrapped or re-cased copies count as the same text."""
    return normalized_key(" ".join(folded.split()))  # str.split is several times faster than a \s+ regex


def normalized_key(normalized: str) -> bytes:
    """folded_key of a text given as `" ".join(text.casefold().split())` (the boilerplate tally makes it)."""
    return hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=16).digest()
