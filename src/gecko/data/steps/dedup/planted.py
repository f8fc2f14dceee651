"""A planted near-duplicate set and its precision/recall, to measure MinHash dedup instead of assuming it.

Real documents get near-copies made by controlled edits (word insertions and deletions, line reorders,
whitespace changes) of a chosen strength; the true Jaccard similarity of every copy to its original is then
computed exactly on the same shingles MinHash estimates. Scoring a dedup run: a dropped document is a true
positive when its true Jaccard to its survivor reaches the threshold, and a planted pair at or above the
threshold is recalled when both end in the same cluster.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from gecko.config import DedupConfig
from gecko.data.steps.dedup.shingles import shingle_hashes
from gecko.io.atomic import open_atomic

EDITS = ("insert", "delete", "reorder", "whitespace")


@dataclass
class Planted:
    docs: list[dict]
    """Records {id, text, lang, source}: originals and copies."""
    pairs: list[tuple[str, str, float]]
    """(copy id, original id, true Jaccard)."""


def jaccard(a: str, b: str, lang: str, cfg: DedupConfig) -> float:
    sizes = {"ko": cfg.shingle_ko, "en": cfg.shingle_en, "code": cfg.shingle_code}
    sa, sb = set(shingle_hashes(a, lang, sizes).tolist()), set(shingle_hashes(b, lang, sizes).tolist())
    return len(sa & sb) / max(1, len(sa | sb))


def edit(text: str, strength: float, rng: random.Random, filler: list[str]) -> str:
    """Apply each kind of edit to about `strength` of the words or lines."""
    lines = text.split("\n")
    if len(lines) > 2:  # reorder: swap some line pairs
        for _ in range(int(strength * len(lines))):
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
    out = []
    for line in lines:
        words = []
        for w in line.split(" "):
            r = rng.random()
            if r < strength / 2:  # delete
                continue
            words.append(w)
            if r > 1 - strength / 2:  # insert a word from elsewhere
                words.append(rng.choice(filler))
        sep = "  " if rng.random() < strength else " "  # whitespace noise
        out.append(sep.join(words))
    return "\n".join(out)


def make_planted(
    originals: list[dict], copies_per_doc: int, strengths: list[float], seed: int, cfg: DedupConfig
) -> Planted:
    rng = random.Random(seed)
    filler = [w for d in originals[:50] for w in d["text"].split()[:200]] or ["x"]
    docs, pairs = list(originals), []
    for d in originals:
        for k in range(copies_per_doc):
            strength = rng.choice(strengths)
            text = edit(d["text"], strength, rng, filler)
            cid = f"{d['id']}~copy{k}"
            docs.append({**d, "id": cid, "text": text})
            pairs.append((cid, d["id"], jaccard(text, d["text"], d["lang"], cfg)))
    rng.shuffle(docs)
    return Planted(docs, pairs)


def write_shards(docs: list[dict], folder: Path, shards: int) -> None:
    """GECKO records as datatrove JSONL ({text, id, metadata}) in `shards` files."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with open_atomic(folder / f"{s:05d}.jsonl") as f:
            for d in docs[s::shards]:
                f.write(
                    json.dumps(
                        {
                            "text": d["text"],
                            "id": d["id"],
                            "metadata": {"lang": d["lang"], "source": d["source"]},
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )


def score(planted: Planted, duplicates: list[dict], threshold: float, cfg: DedupConfig) -> dict[str, float]:
    """Precision and recall of one dedup run (its duplicates.jsonl rows) against true Jaccard ≥ threshold."""
    text = {d["id"]: d for d in planted.docs}
    survivor = {row["id"]: row["duplicate_of"] for row in duplicates}
    tp = sum(
        jaccard(text[r["id"]]["text"], text[r["duplicate_of"]]["text"], text[r["id"]]["lang"], cfg)
        >= threshold
        for r in duplicates
    )
    positives = [(c, o) for c, o, j in planted.pairs if j >= threshold]
    recalled = sum(survivor.get(c, c) == survivor.get(o, o) for c, o in positives)
    return {
        "threshold": threshold,
        "dropped": len(duplicates),
        "true_positive": tp,
        "precision": tp / len(duplicates) if duplicates else 1.0,
        "positives": len(positives),
        "recall": recalled / len(positives) if positives else 1.0,
    }
