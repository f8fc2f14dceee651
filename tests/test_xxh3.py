"""The numpy xxh3_64 gives xxhash's values for every length (its short paths and the fallback above them)."""

from __future__ import annotations

import random

import numpy as np
import xxhash

from gecko.data.text.xxh3 import SHORT, xxh3_64


def test_xxh3_of_many_strings_is_xxhash_for_every_length():
    rng = random.Random(0)
    parts = [rng.randbytes(n) for n in range(1, 3 * SHORT) for _ in range(200)]
    parts += [bytes([b]) for b in range(256)] + [b"\xff" * n for n in range(1, SHORT + 2)]
    rng.shuffle(parts)
    lengths = np.array([len(p) for p in parts])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    got = xxh3_64(b"".join(parts), starts, lengths)
    assert got.tolist() == [xxhash.xxh3_64_intdigest(p) for p in parts]


def test_xxh3_of_no_strings():
    assert len(xxh3_64(b"", np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))) == 0
