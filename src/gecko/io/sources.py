"""Where a data source's `path:` points: local files, folders, globs, Hugging Face datasets, object storage.

- a local file, a folder (every file below it with the format's suffix) or a glob (`data/*.jsonl.gz`,
  `shards/**/part-*.parquet`; `**` crosses folders); `file://` URLs are local paths;
- `hf://datasets/ORG/NAME[/SPLIT]` (default split: train): read with the `datasets` library, so the local
  Hugging Face cache is used and HF_DATASETS_OFFLINE=1 reads a cached dataset without the network;
- any other fsspec URL (`s3://bucket/corpus/*.jsonl.zst`, `gs://…`, `memory://…`, a file path inside a
  dataset repository such as `hf://datasets/ORG/NAME/data/*.parquet`): files, folders and globs as above,
  streamed through fsspec (s3:// needs s3fs, gs:// gcsfs; hf:// file paths use huggingface_hub, not the
  datasets cache).

Local and remote files come back as objects with the same small interface (`name`, `suffix`, `suffixes`,
`open("rb")`, `stat().st_size`, `str()`), so every reader and rawio's fault handling (BOM, invalid bytes,
truncated streams, quarantine with `file:line`) is the same for all of them; a remote file's `file:line`
names its URL.
"""

from __future__ import annotations

import functools
import glob as globlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from gecko.errors import DataError, pip_hint
from gecko.io.rawio import base_suffix, expanded_total

HF_PREFIX = "hf://datasets/"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")


def is_hf(path: str) -> bool:
    """A dataset (split) id: `hf://datasets/ORG/NAME[/SPLIT]`. Longer paths and globs name files inside the
    dataset's repository and are fsspec URLs (huggingface_hub's HfFileSystem)."""
    return path.startswith(HF_PREFIX) and path.strip("/").count("/") <= 5 and not _GLOB.search(path)


def is_remote(path: str) -> bool:
    """An fsspec URL other than file:// and hf://datasets/."""
    return bool(_URL.match(path)) and not path.startswith("file://") and not is_hf(path)


def _local(path: str) -> str:
    return path.removeprefix("file://")


def local_path(path: str) -> Path | None:
    """The local path a `path:` names (file:// stripped); None for hf:// and remote URLs."""
    return None if is_hf(path) or is_remote(path) else Path(_local(path))


@dataclass(frozen=True)
class RemoteStat:
    st_size: int


@dataclass(frozen=True)
class RemoteFile:
    """One file on an fsspec filesystem, with the part of pathlib's interface the readers use."""

    url: str
    fs: Any
    key: str
    """The path inside `fs` (no protocol)."""
    size: int

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def suffixes(self) -> list[str]:
        return PurePosixPath(self.key).suffixes

    def open(self, mode: str = "rb") -> BinaryIO:
        return self.fs.open(self.key, mode)

    def stat(self) -> RemoteStat:
        return RemoteStat(self.size)

    def __str__(self) -> str:
        return self.url


SourceFile = Path | RemoteFile


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise DataError(f"{url}: reading URLs needs fsspec ({pip_hint('sources')})") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # an unknown protocol, or its package (s3fs, gcsfs) missing
        raise DataError(f"{url}: {e}") from None


def exists(path: str) -> bool:
    """Whether a file, folder or glob (at least one match) is there; hf:// datasets are checked on loading."""
    if is_hf(path):
        return True
    if is_remote(path):
        fs, key = _filesystem(path)
        try:
            return bool(fs.glob(key)) if _GLOB.search(key) else fs.exists(key)
        except OSError as e:
            raise DataError(f"{path}: cannot list: {e}") from None
    local = _local(path)
    return bool(globlib.glob(local, recursive=True)) if _GLOB.search(local) else Path(local).exists()


def is_file(path: str) -> bool:
    """Whether the path names one file (not a folder, glob or dataset)."""
    if is_hf(path):
        return False
    if is_remote(path):
        fs, key = _filesystem(path)
        return not _GLOB.search(key) and fs.isfile(key)
    return not _GLOB.search(path) and Path(_local(path)).is_file()


def files(path: str, suffixes: tuple[str, ...]) -> Sequence[SourceFile]:
    """The files a path names, sorted: itself, the files below a folder whose format suffix (compression
    aside, `rawio.base_suffix`) is one of `suffixes`, or a glob's matching files (the glob is the filter)."""
    if is_remote(path):
        return _remote_files(path, suffixes)
    local = _local(path)
    if _GLOB.search(local):
        return sorted(p for p in map(Path, globlib.glob(local, recursive=True)) if p.is_file())
    root = Path(local)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and base_suffix(p) in suffixes)


def _remote_files(url: str, suffixes: tuple[str, ...]) -> Sequence[SourceFile]:
    fs, key = _filesystem(url)
    try:
        if _GLOB.search(key):
            found = fs.glob(key, detail=True)
        elif fs.isfile(key):
            found = {key: fs.info(key)}
        else:
            found = {
                k: v
                for k, v in fs.find(key, detail=True).items()
                if base_suffix(PurePosixPath(k)) in suffixes
            }
    except OSError as e:
        raise DataError(f"{url}: cannot list: {e}") from None
    return [
        RemoteFile(fs.unstrip_protocol(k), fs, k, int(info.get("size") or 0))
        for k, info in sorted(found.items())
        if info.get("type", "file") == "file"
    ]


def relative(file: SourceFile, path: str) -> PurePosixPath:
    """`file`'s path below the folder or glob base that `path` names (its name alone when `path` is it)."""
    base = _local(path) if not is_remote(path) else _filesystem(path)[1]
    base = _GLOB.split(base, maxsplit=1)[0].rpartition("/")[0] if _GLOB.search(base) else base
    full = PurePosixPath(file.key if isinstance(file, RemoteFile) else file.as_posix())
    try:
        rel = full.relative_to(PurePosixPath(base))
    except ValueError:
        return PurePosixPath(full.name)
    return rel if str(rel) != "." else PurePosixPath(full.name)


def total_bytes(path: str, subset: str | None = None, suffixes: tuple[str, ...] | None = None) -> int:
    """Input size for a progress line's ETA: every file the path names, or only those with `suffixes` below a
    folder (a code tree is mostly other files: site-packages/transformers counted 1.35 GB for 0.2 GB of .py),
    decompressed (estimated: rawio.expanded_total); or a dataset's cache files."""
    if is_hf(path):
        return sum(os.path.getsize(f["filename"]) for f in hf_dataset(path, subset).cache_files)
    found = _everything(path) if suffixes is None else files(path, suffixes)
    return expanded_total([(f, f.stat().st_size) for f in found])


def digest(path: str, subset: str | None = None) -> list[tuple[Any, ...]]:
    """What identifies the current contents of a source without reading them: (file, size, mtime) locally,
    fsspec's checksum of each remote file's listing (ETag, size, modification time), the cache files of a
    Hugging Face dataset (new ones when a new revision is downloaded)."""
    if is_hf(path):
        return [(f["filename"], os.path.getsize(f["filename"])) for f in hf_dataset(path, subset).cache_files]
    return [
        (str(f), f.fs.checksum(f.key))
        if isinstance(f, RemoteFile)
        else (str(f), f.stat().st_size, f.stat().st_mtime_ns)
        for f in _everything(path)
    ]


def _everything(path: str) -> Sequence[SourceFile]:
    """Every file a path names, whatever its suffix (nothing when it does not exist)."""
    if _GLOB.search(path if not is_remote(path) else _filesystem(path)[1]):
        return files(path, ())
    if is_remote(path):
        fs, key = _filesystem(path)
        if not fs.exists(key):
            return []
        found = {key: fs.info(key)} if fs.isfile(key) else fs.find(key, detail=True)
        return [
            RemoteFile(fs.unstrip_protocol(k), fs, k, int(v.get("size") or 0))
            for k, v in sorted(found.items())
        ]
    root = Path(_local(path))
    return [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())


def hf_name(path: str) -> tuple[str, str]:
    """(ORG/NAME, split) of `hf://datasets/ORG/NAME[/SPLIT]`."""
    parts = path.removeprefix(HF_PREFIX).strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise DataError(f"{path}: expected hf://datasets/ORG/NAME or hf://datasets/ORG/NAME/SPLIT")
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else "train"


@functools.lru_cache(maxsize=8)
def hf_dataset(path: str, subset: str | None = None) -> Any:
    """The split as a memory-mapped `datasets.Dataset`, from the local cache when it is there (downloaded
    once otherwise); loaded once per process."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{path}: reading hf:// datasets needs the datasets library ({pip_hint('sources')})"
        ) from None
    repo, split = hf_name(path)
    try:
        return datasets.load_dataset(repo, subset, split=split)
    except Exception as e:  # not found, offline without a cached copy, no such split or subset: one line
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot load the dataset: {detail}") from None


def hf_rows(path: str, subset: str | None, columns: list[str] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`hf://datasets/ORG/NAME/SPLIT:row N`, row) for every row, with those of `columns` that exist (None:
    all)."""
    ds = hf_dataset(path, subset)
    repo, split = hf_name(path)
    keep = [c for c in columns if c in ds.column_names] if columns is not None else ds.column_names
    row = 0
    for batch in ds.select_columns(keep).iter(batch_size=1024):
        for values in zip(*(batch[c] for c in keep), strict=True):
            row += 1
            yield f"{HF_PREFIX}{repo}/{split}:row {row}", dict(zip(keep, values, strict=True))
