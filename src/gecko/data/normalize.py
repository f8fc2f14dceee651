"""Unicode normalization that keeps what matters byte-exact.

Korean must be NFC (composed syllables): decomposed jamo sequences look identical but tokenize into three
times as many tokens and break exact dedup. Control characters are removed everywhere. Prose gets its
whitespace tidied; code keeps indentation and blank lines exactly.
"""

from __future__ import annotations

import re
import unicodedata

from gecko.data.document import Document

# C0/C1 controls except tab and newline; also the BOM and other zero-width format marks that survive NFC.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u200b]")
_TRAILING_SPACE = re.compile(r"[ \t\u3000]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n{3,}")


def normalize_text(text: str, is_code: bool) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    if is_code:
        return text
    text = _TRAILING_SPACE.sub("", text)
    return _BLANK_RUN.sub("\n\n", text).strip()


def normalize(doc: Document) -> Document:
    doc.text = normalize_text(doc.text, is_code=doc.lang == "code")
    return doc
