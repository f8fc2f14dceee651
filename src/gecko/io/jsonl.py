"""Strict JSONL (one JSON object per line), shared by the corpus, benchmark files and SFT conversations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gecko.errors import DataError
from gecko.io import rawio

INEXACT = 2.0**63
"""orjson reads an integer beyond 64 bits as a float (json keeps the int), and such a float is at least this
large; a float below it in magnitude is an orjson float literal, parsed exactly as json parses it."""
MAX_DEPTH = 64
"""Containers nested deeper than this are left to json (its recursion limit is not orjson's)."""
MAX_LINE_BYTES = 1 << 30
"""json_records' default limit on one line."""


def loads(raw: bytes) -> Any:
    """`raw` parsed as `json.loads(raw.decode())` parses it, by orjson at about twice json's speed. Raises
    ValueError (orjson.JSONDecodeError is one) where orjson refuses the line or may read it differently:
    not UTF-8, a BOM, NaN/Infinity, raw control characters, lone surrogate escapes, integers beyond 64 bits,
    deep nesting. The caller then parses it with json, so results, repairs and error messages stay json's.
    Where orjson accepts a line it reads it as json does (duplicate keys: the last value, at the first key's
    place; floats correctly rounded)."""
    value = orjson.loads(raw)
    if not _exact(value, 0):
        raise ValueError("a number beyond 64 bits or deep nesting: left to json")
    return value


def _exact(value: Any, depth: int) -> bool:
    """False where `value` (orjson's) may differ from json's reading: a float of INEXACT magnitude or more
    (an integer beyond 64 bits), or nesting deeper than MAX_DEPTH."""
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return kind is not float or -INEXACT < value < INEXACT
    if depth >= MAX_DEPTH:
        return False
    for item in value:  # floats checked here, not by a call each: a few per record on every phase's read
        kind = type(item)
        if kind is float:
            if not -INEXACT < item < INEXACT:
                return False
        elif (kind is dict or kind is list) and not _exact(item, depth + 1):
            return False
    return True


def json_records(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
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
        record = loads(raw)
    except ValueError:  # refused by orjson, or not surely read as json reads it: json's reading and messages
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
