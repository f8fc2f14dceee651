"""Mixing to target language shares, deterministic given the seed.

Shares are measured in UTF-8 bytes of kept text. The language that is scarcest relative to its target sets
the corpus size; it may be repeated up to `max_repeat` extra passes, and the others are down-sampled by a
seeded shuffle. A document is either in the mix (possibly repeated) or dropped with reason `mix_downsample`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from gecko.data.document import Document


@dataclass
class MixPlan:
    budget: dict[str, int]
    """Target bytes per language."""
    repeats: dict[str, float]
    """Passes over each language's documents (1.0: each once; below 1: a sample)."""


def plan_mix(bytes_per_lang: dict[str, int], shares: dict[str, float], max_repeat: float) -> MixPlan:
    active = {lang: s for lang, s in shares.items() if s > 0}
    # Total size each language could support on its own, with up-sampling allowed.
    supportable = min(bytes_per_lang.get(lang, 0) * (1 + max_repeat) / s for lang, s in active.items())
    budget = {lang: int(supportable * s) for lang, s in active.items()}
    repeats = {lang: budget[lang] / bytes_per_lang[lang] for lang in active if bytes_per_lang.get(lang)}
    return MixPlan(budget, repeats)


def take_by_bytes(docs: Sequence[Document], budget: int, seed: int) -> tuple[list[Document], list[Document]]:
    """Whole passes over `docs`, then a seeded sample until `budget` bytes: returns (mixed, never used)."""
    rng = random.Random(seed)
    order = list(docs)
    rng.shuffle(order)
    out: list[Document] = []
    used: set[str] = set()
    remaining = budget
    while remaining > 0 and order:
        progressed = False
        for doc in order:
            size = len(doc.text.encode("utf-8"))
            if size > remaining and out:
                continue  # a smaller document may still fit this pass
            out.append(doc)
            used.add(doc.id)
            remaining -= size
            progressed = True
            if remaining <= 0:
                break
        if not progressed:
            break
    unused = [d for d in docs if d.id not in used]
    return out, unused
