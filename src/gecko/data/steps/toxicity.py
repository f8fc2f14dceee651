"""A small, fast harmful-content classifier shipped with GECKO: hashed character n-grams → logistic regression.

Korean abuse is written with spacing tricks, jamo (ㅅㅂ), and particles glued to the insult, so word features
miss it while character 1-4-grams catch it. Features are hashed into 2^18 buckets; the whole model is one
float16 weight vector and a bias (toxicity.npz, ~0.5 MB), trained by tools/train_toxicity.py on the
../shared/data/safety training splits. Scoring is vectorized with numpy (no Python loop per character).

A long document is scored in windows of WINDOW characters (the length the model was trained on); its score
is the length-weighted mean window probability, so one rude sentence in a long article does not condemn it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
from datatrove.data import Document

from gecko.data.engine.step import GeckoFilter
from gecko.data.text.charclass import codepoints
from gecko.errors import DataError

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
    """Lowercased, whitespace collapsed, padded with spaces so word edges are n-grams too.

    Most comments are one line of single-spaced words, which split() and join() would rebuild word by word:
    in a printable text the only whitespace is the space (every other str.isspace() character is a control
    or a Z* separator), so without a double, leading or trailing space it is already collapsed."""
    text = text.lower()
    if "  " in text or text[:1] == " " or text[-1:] == " " or not text.isprintable():
        text = " ".join(text.split())
    return " " + text + " "


def ngram_buckets(text: str) -> Iterator[tuple[int, np.ndarray]]:
    """(n, bucket of the n-gram starting at each position 0..len-n) for n = 1..NGRAMS, by a rolling hash."""
    cp = codepoints(text).astype(np.uint64)
    h = np.zeros(len(cp) + 1, dtype=np.uint64)
    for n in range(1, min(NGRAMS, len(cp)) + 1):
        h = h[: len(cp) - n + 1]  # in place (uint64 wraps the same way): no temporary arrays
        h *= _PRIME
        h += cp[n - 1 :]
        bucket = h + np.uint64(n)
        bucket *= _MIX
        bucket >>= _SHIFT
        yield n, bucket.view(np.int64)  # < 2^BITS, so the same numbers as int64


@cache
def load_model(path: Path = MODEL_PATH) -> tuple[np.ndarray, float]:
    """float64 weights (stored as float16; exact in float64), so scoring gathers them without a cast. Only
    float16 weights make a window's sum exact in any order (_window_sums), so other weights are refused."""
    with np.load(path) as z:
        if z["weights"].dtype != np.float16:
            raise DataError(f"{path}: toxicity weights must be float16 (tools/train_toxicity.py writes them)")
        return z["weights"].astype(np.float64), float(z["bias"])


def score(text: str) -> float:
    """Probability that `text` is hateful, offensive or profane (length-weighted over windows)."""
    return score_batch([text])[0]


def score_batch(texts: list[str]) -> list[float]:
    """score() of many texts in one numpy pass: per-document overhead dominates on short comments.

    The texts are joined; every n-gram adds its weight to the window its first character is in, except
    the n-grams that would run into the next text (the last n-1 positions of each). A window's n-gram
    count follows from its bounds: positions start..end-1 of a text of length L hold min(end, L-n+1) - start
    n-gram starts. The weights of the n-grams starting at each position are added up first and each window
    is then one contiguous np.add.reduceat, ~4x cheaper than a weighted bincount per n; the order of the
    additions cannot change a sum, which is exact (see _window_sums)."""
    if not texts:
        return []
    weights, bias = load_model()
    prepared = [prepare(t) for t in texts]
    lengths = np.array([len(t) for t in prepared])
    ends = np.cumsum(lengths)
    windows_per_doc = (lengths + WINDOW - 1) // WINDOW
    first_window = np.concatenate([[0], np.cumsum(windows_per_doc)[:-1]])
    window_doc = np.repeat(np.arange(len(texts)), windows_per_doc)
    start = (np.arange(len(window_doc)) - np.repeat(first_window, windows_per_doc)) * WINDOW  # in its text
    end = np.minimum(start + WINDOW, lengths[window_doc])
    # prepare() leaves no text empty, so every window opens on a position of the joined texts, in order
    opens = (ends - lengths)[window_doc] + start
    sums = _window_sums("".join(prepared), ends, opens, weights)
    counts = np.zeros(len(window_doc))
    for n in range(1, NGRAMS + 1):
        counts += np.maximum(np.minimum(end, lengths[window_doc] - n + 1) - start, 0)
    probs = 1.0 / (1.0 + np.exp(-(bias + sums / np.sqrt(np.maximum(counts, 1)))))
    num = np.bincount(window_doc, weights=probs * counts, minlength=len(texts))
    den = np.bincount(window_doc, weights=counts, minlength=len(texts))
    return [float(x) for x in np.where(den > 0, num / np.maximum(den, 1), 0.0)]


def _window_sums(joined: str, ends: np.ndarray, opens: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of the weights of the n-grams starting in each window (`opens`: the windows' first positions in
    `joined`, increasing from 0), those that cross a text end (`ends`) left out.

    Exact, so equal to the sum in any order: the weights are float16 values (load_model), each an integer
    multiple of 2^-24 below 2^16, and a window holds at most NGRAMS * WINDOW = 1024 n-grams, so every partial
    sum is a multiple of 2^-24 below 2^26, which float64's 53-bit mantissa holds exactly."""
    per_position = np.zeros(len(joined))
    for n, buckets in ngram_buckets(joined):
        w = weights.take(buckets)
        cross = (ends[:, None] - np.arange(1, n)[None, :]).ravel()  # starts of n-grams that cross a text end
        w[cross[(cross >= 0) & (cross < len(buckets))]] = 0.0
        per_position[: len(w)] += w
    return np.add.reduceat(per_position, opens)


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
        return [
            (False, "toxic") if doc.metadata.get("toxicity", 0.0) >= self.threshold else True for doc in batch
        ]
