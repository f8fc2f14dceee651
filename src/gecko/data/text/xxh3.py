"""xxh3_64 (seed 0) of many short byte strings at once, with numpy: the values `xxhash.xxh3_64_intdigest`
gives, for strings of 1 to 16 bytes (the code tokens of MinHash dedup, almost all that short), without a
Python call per string. Longer strings go through xxhash itself.

The arithmetic follows xxHash 0.8's XXH3_len_1to3_64b, XXH3_len_4to8_64b and XXH3_len_9to16_64b
(xxhash.h; uint64 numpy arithmetic wraps as C's does); tests compare every length with the xxhash package.
"""

from __future__ import annotations

import numpy as np
import xxhash

SHORT = 16
"""Longest string hashed with numpy; xxh3 takes another, longer path above it."""

_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
)
"""The first 64 bytes of xxh3's default secret (XXH3_kSecret)."""


def _le(offset: int, size: int) -> int:
    return int.from_bytes(_SECRET[offset : offset + size], "little")


_FLIP_1TO3 = np.uint64(_le(0, 4) ^ _le(4, 4))
_FLIP_4TO8 = np.uint64(_le(8, 8) ^ _le(16, 8))
_FLIP_9TO16 = (np.uint64(_le(24, 8) ^ _le(32, 8)), np.uint64(_le(40, 8) ^ _le(48, 8)))
_PRIME64_2, _PRIME64_3 = np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_PRIME_MX1, _PRIME_MX2 = np.uint64(0x165667919E3779F9), np.uint64(0x9FB21C651E98DF25)
_LOW32 = np.uint64(0xFFFFFFFF)


def _u(n: int) -> np.uint64:
    return np.uint64(n)


def _xxh64_avalanche(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> _u(33))) * _PRIME64_2
    h = (h ^ (h >> _u(29))) * _PRIME64_3
    return h ^ (h >> _u(32))


def _xxh3_avalanche(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> _u(37))) * _PRIME_MX1
    return h ^ (h >> _u(32))


def _rrmxmx(h: np.ndarray, length: np.ndarray) -> np.ndarray:
    h = h ^ (((h << _u(49)) | (h >> _u(15))) ^ ((h << _u(24)) | (h >> _u(40))))
    h = h * _PRIME_MX2
    h = (h ^ ((h >> _u(35)) + length)) * _PRIME_MX2
    return h ^ (h >> _u(28))


def _mul128_fold64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Low 64 bits xor high 64 bits of the 128-bit product a*b, from 32-bit halves (XXH_mult64to128)."""
    a_lo, a_hi, b_lo, b_hi = a & _LOW32, a >> _u(32), b & _LOW32, b >> _u(32)
    lo_lo, hi_lo, lo_hi, hi_hi = a_lo * b_lo, a_hi * b_lo, a_lo * b_hi, a_hi * b_hi
    cross = (lo_lo >> _u(32)) + (hi_lo & _LOW32) + lo_hi
    upper = (hi_lo >> _u(32)) + (cross >> _u(32)) + hi_hi
    lower = (cross << _u(32)) | (lo_lo & _LOW32)
    return lower ^ upper


def _le64_at(buf: np.ndarray) -> np.ndarray:
    """`out[i]`: the little-endian uint64 starting at byte i of `buf` (a strided view, nothing copied)."""
    return np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))


_ONE_BYTE = np.array([xxhash.xxh3_64_intdigest(bytes([b])) for b in range(256)], dtype=np.uint64)
"""xxh3_64 of every one-byte string: half the code tokens are one punctuation mark."""


def xxh3_64(data: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """xxh3_64 of each `data[start : start + length]` (every length ≥ 1)."""
    buf = np.frombuffer(data + bytes(8), dtype=np.uint8)  # 8 zero bytes: a read past the end stays inside
    le64 = _le64_at(buf)
    starts, lengths = starts.astype(np.int64), lengths.astype(np.int64)
    out = np.empty(len(starts), dtype=np.uint64)
    one = lengths == 1
    out[one] = _ONE_BYTE[buf[starts[one]]]
    short = (lengths > 1) & (lengths <= 3)
    s, n = starts[short], lengths[short]
    combined = (
        (buf[s].astype(np.uint64) << _u(16))
        | (buf[s + (n >> 1)].astype(np.uint64) << _u(24))
        | buf[s + n - 1].astype(np.uint64)
        | (n.astype(np.uint64) << _u(8))
    )
    out[short] = _xxh64_avalanche(combined ^ _FLIP_1TO3)
    mid = (lengths > 3) & (lengths <= 8)
    s, n = starts[mid], lengths[mid]
    input64 = (le64[s + n - 4] & _LOW32) + ((le64[s] & _LOW32) << _u(32))
    out[mid] = _rrmxmx(input64 ^ _FLIP_4TO8, n.astype(np.uint64))
    upper = (lengths > 8) & (lengths <= SHORT)
    s, n = starts[upper], lengths[upper]
    lo, hi = le64[s] ^ _FLIP_9TO16[0], le64[s + n - 8] ^ _FLIP_9TO16[1]
    out[upper] = _xxh3_avalanche(n.astype(np.uint64) + lo.byteswap() + hi + _mul128_fold64(lo, hi))
    long = np.flatnonzero(lengths > SHORT)
    out[long] = [
        xxhash.xxh3_64_intdigest(data[a : a + b])
        for a, b in zip(starts[long].tolist(), lengths[long].tolist())
    ]
    return out
