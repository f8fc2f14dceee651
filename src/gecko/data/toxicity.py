"""A small, fast harmful-content classifier shipped with GECKO: hashed character n-grams → logistic regression.

Korean abuse is written with spacing tricks, jamo (ㅅㅂ), and particles glued to the insult, so word features
miss it while character 1-4-grams catch it. Features are hashed into 2^18 buckets; the whole model is one
float16 weight vector and a bias (toxicity.npz, ~0.5 MB), trained by tools/train_toxicity.py on the
../shared/data/safety training splits. Scoring is vectorized with numpy (no Python loop per character).

A long document is scored in windows of WINDOW characters (the length the model was trained on); its score
is the length-weighted mean window probability, so one rude sentence in a long article does not condemn it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from datatrove.data import Document

from gecko.data.filters.base import GeckoFilter

MODEL_PATH = Path(__file__).with_name("toxicity.npz")
BITS = 18
NGRAMS = 4
WINDOW = 256
BATCH = 256
"""Documents scored per numpy pass."""
_PRIME = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(64 - BITS)


def prepare(text: str) -> str:
    """Lowercased, whitespace collapsed, padded with spaces so word edges are n-grams too."""
    return " " + " ".join(text.lower().split()) + " "


def featurize(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket, start position, n) of every 1..NGRAMS-gram of a prepared text."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    h = np.zeros(len(cp) + 1, dtype=np.uint64)
    buckets, positions, sizes = [], [], []
    for n in range(1, NGRAMS + 1):
        if len(cp) < n:
            break
        h = h[: len(cp) - n + 1] * _PRIME + cp[n - 1:]
        buckets.append(((h + np.uint64(n)) * _MIX) >> _SHIFT)
        positions.append(np.arange(len(cp) - n + 1))
        sizes.append(np.full(len(cp) - n + 1, n))
    if not buckets:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(buckets).astype(np.int64), np.concatenate(positions), np.concatenate(sizes)


@cache
def load_model(path: Path = MODEL_PATH) -> tuple[np.ndarray, float]:
    with np.load(path) as z:
        return z["weights"].astype(np.float32), float(z["bias"])


def score(text: str) -> float:
    """Probability that `text` is hateful, offensive or profane (length-weighted over windows)."""
    return score_batch([text])[0]


def score_batch(texts: list[str]) -> list[float]:
    """score() of many texts in one numpy pass: per-document overhead dominates on short comments."""
    weights, bias = load_model()
    prepared = [prepare(t) for t in texts]
    lengths = np.array([len(t) for t in prepared])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    buckets, pos, n = featurize("".join(prepared))
    doc = np.searchsorted(starts, pos, side="right") - 1
    keep = pos + n <= (starts + lengths)[doc]  # drop n-grams that straddle two documents
    buckets, pos, doc = buckets[keep], pos[keep], doc[keep]
    first_window = np.concatenate([[0], np.cumsum((lengths + WINDOW - 1) // WINDOW)[:-1]])
    window = first_window[doc] + (pos - starts[doc]) // WINDOW
    counts = np.bincount(window, minlength=int(first_window[-1]) + 1).astype(np.float64)
    sums = np.bincount(window, weights=weights[buckets], minlength=len(counts))
    probs = 1.0 / (1.0 + np.exp(-(bias + sums / np.sqrt(np.maximum(counts, 1)))))
    window_doc = np.repeat(np.arange(len(texts)), (lengths + WINDOW - 1) // WINDOW)
    num = np.bincount(window_doc, weights=(probs * counts)[: len(window_doc)], minlength=len(texts))
    den = np.bincount(window_doc, weights=counts[: len(window_doc)], minlength=len(texts))
    return [float(x) for x in np.where(den > 0, num / np.maximum(den, 1), 0.0)]


class ToxicityFilter(GeckoFilter):
    """Scores documents of the configured languages (metadata toxicity) and drops those ≥ threshold."""

    name = "☣️ gecko toxicity"
    step = "toxicity"

    def __init__(self, threshold: float = 0.7, langs: tuple[str, ...] = ("ko",), **kw) -> None:
        super().__init__(batch_size=BATCH, **kw)
        self.threshold = threshold
        self.langs = langs

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        scored = [doc for doc in batch if doc.metadata.get("lang") in self.langs]
        for doc, p in zip(scored, score_batch([doc.text for doc in scored]) if scored else []):
            doc.metadata["toxicity"] = round(p, 4)
        results = [(False, "toxic") if doc.metadata.get("toxicity", 0.0) >= self.threshold else True
                   for doc in batch]
        self.record_drops(batch, results)
        return results
