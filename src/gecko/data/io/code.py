"""Code sources: a source tree (a folder, glob or URL) or a tar archive of one, one document per file with
its relative path and language; vendored, generated, minified, binary and empty files are quarantined."""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from gecko.config import SourceConfig
from gecko.data.io.formats import Quarantine, Record, guarded, raiser, text_of, with_repairs
from gecko.errors import DataError
from gecko.io import rawio, sources
from gecko.io.sources import SourceFile

CODE_LANGS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".php": "php",
    ".sh": "shell",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".sql": "sql",
    ".cs": "csharp",
    ".lua": "lua",
    ".r": "r",
    ".jl": "julia",
    ".hs": "haskell",
    ".md": "markdown",
}
VENDORED_DIRS = {
    "node_modules",
    "vendor",
    "third_party",
    "thirdparty",
    "site-packages",
    "dist-packages",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".tox",
    ".venv",
    "venv",
    "bower_components",
}
_GENERATED_NAME = re.compile(r"(_pb2(_grpc)?\.pyi?|\.pb\.go|\.generated\.\w+|\.g\.dart|-lock\.json|\.lock)$")
_MINIFIED_NAME = re.compile(r"\.min\.(js|css)$")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
"""A `code` source may be one archive of a tree (the bundled sample is `data/sample/code/python.tar.gz`)."""


def _skip_reason(rel: Path) -> str | None:
    if VENDORED_DIRS.intersection(rel.parts[:-1]):
        return "vendored"
    if _MINIFIED_NAME.search(rel.name):
        return "minified"
    if _GENERATED_NAME.search(rel.name):
        return "generated"
    return None


def from_code(src: SourceConfig, path: str, max_bytes: int) -> Iterator[Record]:
    """A source tree, or a tar archive of one: one document per file, its relative path and language kept
    as metadata."""
    local = sources.local_path(path)
    if local is not None and local.is_file() and local.name.endswith(TAR_SUFFIXES):
        yield from guarded(local, _tar_code(src, local, max_bytes))
        return
    for file in sources.files(path, src.extensions):
        rel = Path(sources.relative(file, path))
        yield str(file), partial(_decode_code, file, rel, max_bytes)


def _tar_code(src: SourceConfig, path: Path, max_bytes: int) -> Iterator[Record]:
    """The files of a tar archive in archive order, ids being member paths (as for the unpacked tree).
    A compressed archive cannot be entered in the middle, so every rank reads the members' bytes; only the
    decoding is split. A damaged archive raises DataError after the members read before it."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                rel = Path(member.name)
                if not member.isfile() or rawio.base_suffix(rel) not in src.extensions:
                    continue
                where = f"{path}:{member.name}"
                reason = _skip_reason(rel)
                if reason:
                    yield where, raiser(reason, rel.as_posix())
                elif member.size > max_bytes:
                    yield where, raiser("too_large", f"{member.size:,} bytes")
                else:
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]  # a regular file has a body
                    yield where, partial(_code_document, data, rel)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"{path}: damaged tar archive ({e})") from None


def _decode_code(file: SourceFile, rel: Path, max_bytes: int) -> tuple[str, str, dict[str, Any]]:
    reason = _skip_reason(rel)
    if reason:
        raise Quarantine(reason, rel.as_posix())
    try:
        if file.stat().st_size > max_bytes:
            raise Quarantine("too_large", f"{file.stat().st_size:,} bytes")
        data, broken = rawio.read_all(file, max_bytes)
    except DataError as e:
        raise Quarantine("unreadable_file", str(e)) from None
    if data is None:
        raise Quarantine("too_large", f"over {max_bytes:,} bytes")
    if broken is not None:
        raise Quarantine("truncated_file", f"truncated at byte {broken.at_byte} ({broken.detail})")
    return _code_document(data, rel)


def _code_document(data: bytes, rel: Path) -> tuple[str, str, dict[str, Any]]:
    """(id, text, metadata) of one source file's bytes, or the Quarantine saying why it is not code."""
    if not data.strip():
        raise Quarantine("empty_file", "no code")
    if b"\0" in data[:8192]:
        raise Quarantine("binary_file", "NUL bytes in the first 8 KB")
    text, replaced = text_of(data)
    lines = text.count("\n") + 1
    if len(text) / lines > 1000:
        raise Quarantine("minified", f"{len(text) / lines:.0f} characters per line")
    meta = {"path": rel.as_posix(), "code_lang": CODE_LANGS.get(rel.suffix.lower(), rel.suffix.lstrip("."))}
    return rel.as_posix(), text, with_repairs(meta, replaced)
