"""Reading a rank's shard again without decoding it again.

The signature pass decodes every document (the JSON parse is most of a read's cost) and records, per
document, the xxh3-128 of the line ShardWriter would write for it (`line_hash`). A later pass over the same
shard (`documents_again`) compares each line's hash with the next document's: equal, the line is that
document exactly as it would be written, so it can be copied to the output as it is, and decoded only if the
pass needs its text. A line that differs (a record not in ShardWriter's form) is decoded as the first pass
did; one that does not decode was quarantined there and is skipped here too, so indices stay aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import xxhash
from datatrove.data import Document

from gecko.data.engine.executor import shard_line
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import CorpusReader

RECORD = np.dtype(
    [("line", "<u8", (2,)), ("text_bytes", "<u8"), ("key", "<u8"), ("lang", "u1"), ("blank", "?")]
)
"""What the signature pass records of each document: its line's hash (`line_hash`, low and high 64 bits),
the UTF-8 bytes of its text (for ShardWriter.write_line), its exact-text digest and language (docs/RANK.jsonl's
`key`, and `lang` as `lang_code` gives it, so later stages need not parse that file) and whether its text is
too short to keep even with nothing stripped (DedupConfig.min_chars_after_strip)."""
LANGS = ("ko", "en", "code", "other")
OTHER_LANG = 255
"""The `lang` code of a language not in LANGS (docs/RANK.jsonl has its name)."""


def lang_code(lang: str) -> int:
    return LANGS.index(lang) if lang in LANGS else OTHER_LANG


def line_hash(doc: Document) -> tuple[int, int]:
    """xxh3-128 of the line ShardWriter writes for `doc`, newline left out (as readers give lines)."""
    return _hash(shard_line(doc)[:-1])


def _hash(raw: bytes) -> tuple[int, int]:
    h = xxhash.xxh3_128_intdigest(raw)
    return h & 0xFFFFFFFFFFFFFFFF, h >> 64


def _same(doc: Document) -> Document:
    return doc


def documents_again(
    reader: CorpusReader, rank: int, world_size: int, records: np.ndarray
) -> Iterator[tuple[int, bytes | None, Callable[[], Document]]]:
    """(index, line, document) for each document of the rank, in order: `line` is the document's line where
    it is the line ShardWriter writes for it (None otherwise), `document()` decodes it (already decoded when
    `line` is None). `records`: the RECORD rows of the rank's documents."""
    expected = [lo | hi << 64 for lo, hi in records["line"].tolist()]  # xxh3_128_intdigest's values
    digest = xxhash.xxh3_128_intdigest
    index = 0
    for raw, decode in reader.records(rank, world_size):
        if raw is not None and index < len(expected) and digest(raw) == expected[index]:
            yield index, raw, decode
        else:
            try:
                doc = decode()
            except Quarantine:
                continue
            yield index, None, partial(_same, doc)
        index += 1
