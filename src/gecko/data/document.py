"""The unit every data step consumes and yields, and its JSONL form."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gecko.atomic import open_atomic
from gecko.data import rawio
from gecko.errors import DataError


@dataclass
class Document:
    id: str
    """Unique within a run: `{source}/{position or path}`."""
    text: str
    lang: str
    """ko, en or code: the bucket the document counts towards in the mix."""
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        record = {"id": self.id, "text": self.text, "lang": self.lang, "source": self.source}
        if self.meta:
            record["meta"] = self.meta
        return json.dumps(record, ensure_ascii=False)


def write_jsonl(docs: Iterable[Document], path: Path) -> int:
    """Write atomically (temporary file, then rename) so a killed run never leaves half a corpus."""
    n = 0
    with open_atomic(path) as f:
        for doc in docs:
            f.write(doc.to_json() + "\n")
            n += 1
    return n


def json_records(path: Path, max_line_bytes: int = 1 << 30) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file (.gz/.zst/.bz2/.xz too; BOM and CRLF
    allowed). Every strict JSONL reader goes through here, so a bad line is always reported the same way: a
    DataError naming the file and line."""
    try:
        for line in rawio.lines(path, max_line_bytes):
            if line.raw is None:
                raise DataError(
                    f"{path}:{line.number}: a line of {line.size:,} bytes (limit {max_line_bytes:,})"
                )
            record = _json_line(path, line.number, line.raw)
            if record is not None:
                yield line.number, record
    except rawio.StreamBroken as e:
        raise DataError(f"{path}:{e.line}: {e}") from None


def _json_line(path: Path, lineno: int, raw: bytes) -> dict[str, Any] | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{lineno}: malformed JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object, found {type(record).__name__}")
    return record


def read_jsonl(path: Path) -> Iterator[Document]:
    """Read a GECKO corpus file; a malformed line is an error naming the file and line."""
    for lineno, r in json_records(path):
        try:
            yield Document(r["id"], r["text"], r["lang"], r["source"], r.get("meta", {}))
        except KeyError as e:
            raise DataError(f"{path}:{lineno}: not a GECKO corpus record (no field {e})") from None
