"""Held-out text for measuring tokenizers, read with the data readers and normalized as the corpus is (NFC,
code kept byte-exact), so every tokenizer sees exactly the text the model would. The CLI hands `read_texts`
to gecko.tokenizer's compare, report and extend, which as a sibling stage may not import it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from gecko.config import SourceConfig
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import iter_records
from gecko.data.steps.normalize import normalize_text
from gecko.errors import DataError

log = logging.getLogger(__name__)

_MAX_DOC_BYTES = 10_000_000


def read_texts(sources: Iterable[SourceConfig], max_bytes_per_lang: int) -> dict[str, list[str]]:
    """Normalized documents per language; each of a language's sources gives an equal share of its bytes.

    Equal shares keep one large source (say news comments) from standing for the whole language. The
    document that crosses a source's share is cut at a character boundary; a text file without blank lines
    is one document, and this cut is what makes it usable.
    """
    by_lang: dict[str, list[SourceConfig]] = {}
    for src in sources:
        by_lang.setdefault(src.lang, []).append(src)
    texts: dict[str, list[str]] = {}
    for lang, group in by_lang.items():
        texts[lang] = [t for src in group for t in _take(src, max_bytes_per_lang // len(group))]
        if not texts[lang]:
            raise DataError(f"sources for {lang} ({', '.join(s.name for s in group)}) yield no text")
    return texts


def _take(src: SourceConfig, budget: int) -> list[str]:
    out: list[str] = []
    used = 0
    skipped: Counter[str] = Counter()
    for _, decode in iter_records(src, _MAX_DOC_BYTES):
        if used >= budget:
            break
        try:
            text = normalize_text(decode()[1], is_code=src.lang == "code")
        except Quarantine as q:
            skipped[q.reason] += 1
            continue
        data = text.encode("utf-8")
        if used + len(data) > budget:
            text = data[: budget - used].decode("utf-8", errors="ignore")
        if text:
            out.append(text)
            used += len(text.encode("utf-8"))
    if skipped:
        log.warning("%s: records skipped (quarantined by the reader): %s", src.name, dict(skipped))
    return out
