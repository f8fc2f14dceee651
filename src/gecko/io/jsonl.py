"""Strict JSONL (one JSON object per line), shared by the corpus, benchmark files and SFT conversations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gecko.errors import DataError
from gecko.io import rawio


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
