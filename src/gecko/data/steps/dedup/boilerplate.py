"""Boilerplate removal: lines repeated across many documents (navigation, licence headers, sign-offs).

`LineTally`, inside the MinHash signature pass (which reads each document once), counts per rank in how many
documents each normalized line occurs and notes which line of which document has which; `LineMerge` (one
datatrove task) sums the ranks and keeps the hashes seen in at least `boilerplate_min_docs` documents. Those
lines are then removed from the few documents that have one (`boilerplate_cuts`, `without_lines`), for their
MinHash signatures and in the dedup output, so repeated frames neither inflate similarity nor reach the corpus. Code
is left alone by default: `return None` in a thousand files is syntax, not boilerplate.
"""

from __future__ import annotations

from array import array
from itertools import repeat
from pathlib import Path

import numpy as np
import xxhash
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.config import DedupConfig
from gecko.io.atomic import write_npy

COUNTS = np.dtype([("hash", "<u8"), ("docs", "<u4")])


def line_key(line: str) -> int:
    return xxhash.xxh3_64_intdigest(" ".join(line.casefold().split()).encode("utf-8", "surrogatepass"))


def _candidate_lines(text: str, folded: str, min_chars: int) -> tuple[list[int], list[int], str | None]:
    """Indices (in `text.splitlines()`) and keys of the lines of at least `min_chars` characters besides
    surrounding whitespace, and `" ".join(folded.split())` (the exact-text key's normalization: the lines
    normalized for their keys give it for a join, 0.2 CPU-s of the benchmark's 2.5 instead of a second split
    of the whole text) or None; `folded`: `text.casefold()`. Where folding kept every character one
    character, its lines are the folded lines of `text` with the same lengths, so they are keyed without
    folding each line again (0.5 CPU-s)."""
    if len(folded) != len(text):  # a character folded to several (ß → ss): fold line by line
        lines = text.splitlines()
        at = [i for i, line in enumerate(lines) if len(line.strip()) >= min_chars]
        return at, [line_key(lines[i]) for i in at], None
    lines = folded.splitlines()
    norms = [" ".join(line.split()) for line in lines]  # every line break is whitespace to str.split
    at = [i for i, line in enumerate(lines) if len(line) >= min_chars and len(line.strip()) >= min_chars]
    h = xxhash.xxh3_64_intdigest
    return at, [h(norms[i].encode("utf-8", "surrogatepass")) for i in at], " ".join(filter(None, norms))


DOC_LINE = np.dtype([("doc", "<u4"), ("line", "<u4"), ("hash", "<u8")])
"""A candidate line of a document: the document's index in its rank, the line's index in the document
(`text.splitlines()`) and its key."""


class LineTally:
    """The candidate lines of a rank's documents: which line of which document has which key
    (`doclines/RANK.npy`, for `boilerplate_cuts`: the index stage then cuts lines without keying them again)
    and how many documents have each key (`lines/RANK.npy`, summed by LineMerge), counted from the former
    with numpy when the rank is written (a Counter updated per document took twice as long, and ~100 bytes
    a distinct line)."""

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.docs, self.lines = array("I"), array("I")  # 16 bytes a line, not a Python tuple's ~100
        self.hashes = array("Q")

    def add(self, index: int, text: str, folded: str, lang: str) -> str | None:
        """Tally document `index`'s lines; `folded`: `text.casefold()`. Returns `" ".join(folded.split())`
        where tallying made it on the way (see _candidate_lines), else None."""
        if lang not in self.cfg.boilerplate_langs:
            return None
        at, keys, normalized = _candidate_lines(text, folded, self.cfg.boilerplate_min_line_chars)
        self.docs.extend(repeat(index, len(keys)))
        self.lines.extend(at)
        self.hashes.extend(keys)
        return normalized

    def write(self, work_dir: Path, rank: int) -> None:
        rows = np.zeros(len(self.docs), dtype=DOC_LINE)
        rows["doc"], rows["line"] = np.frombuffer(self.docs, np.uint32), np.frombuffer(self.lines, np.uint32)
        rows["hash"] = np.frombuffer(self.hashes, np.uint64)
        write_npy(work_dir / "lines" / f"{rank:05d}.npy", line_counts(rows))
        write_npy(work_dir / "doclines" / f"{rank:05d}.npy", rows)


def line_counts(rows: np.ndarray) -> np.ndarray:
    """COUNTS rows, by hash: in how many documents each key of the DOC_LINE `rows` (in document order)
    occurs (a line repeated in one document counts once)."""
    order = np.argsort(rows["hash"], kind="stable")  # stable: documents stay in order within a key
    hashes, docs = rows["hash"][order], rows["doc"][order]
    first = np.ones(len(rows), dtype=bool)  # the first row of each (key, document)
    first[1:] = (hashes[1:] != hashes[:-1]) | (docs[1:] != docs[:-1])
    hashes = hashes[first]
    change = np.ones(len(hashes), dtype=bool)
    change[1:] = hashes[1:] != hashes[:-1]
    starts = np.flatnonzero(change)
    out = np.zeros(len(starts), dtype=COUNTS)
    out["hash"], out["docs"] = hashes[starts], np.diff(np.append(starts, len(hashes)))
    return out


def boilerplate_cuts(work_dir: Path, rank: int) -> dict[int, list[int]]:
    """The boilerplate lines of each of the rank's documents that has one (the only ones whose text
    stripping changes), by document index in ascending order: the indices (in `text.splitlines(keepends=True)`)
    of its lines that LineMerge found frequent; empty without a LineMerge result (boilerplate removal off)."""
    frequent = work_dir / "boilerplate.npy"
    if not frequent.exists():
        return {}
    rows = np.load(work_dir / "doclines" / f"{rank:05d}.npy")
    cuts: dict[int, list[int]] = {}
    for doc, line in rows[np.isin(rows["hash"], np.load(frequent))][["doc", "line"]].tolist():
        cuts.setdefault(doc, []).append(line)
    return cuts


class LineMerge(PipelineStep):
    name = "🧱 boilerplate merge"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        super().__init__()
        self.work_dir, self.cfg = Path(work_dir), cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        files = sorted((self.work_dir / "lines").glob("[0-9]*[0-9].npy"))
        parts = [np.load(f) for f in files]
        table = np.concatenate(parts) if parts else np.zeros(0, dtype=COUNTS)
        hashes, inverse = np.unique(table["hash"], return_inverse=True)
        docs = np.bincount(inverse, weights=table["docs"], minlength=len(hashes))
        frequent = hashes[docs >= self.cfg.boilerplate_min_docs]
        self.stat_update("boilerplate_lines", value=len(frequent))
        write_npy(self.work_dir / "boilerplate.npy", frequent)
        return iter(())


def without_lines(text: str, cut: list[int]) -> str:
    """`text` without the lines at `cut` (indices in `text.splitlines(keepends=True)`, see boilerplate_cuts)."""
    if not cut:
        return text
    drop = set(cut)
    return "".join(line for i, line in enumerate(text.splitlines(keepends=True)) if i not in drop)


CUT = np.dtype([("doc", "<u4"), ("line", "<u4")])
"""A boilerplate line cut from a document: the document's index in its rank, the line's in the document."""


def write_cuts(work_dir: Path, rank: int, cuts: dict[int, list[int]]) -> None:
    """`cuts/RANK.npy`: the lines the index stage cut from each stripped document, so the filter cuts the
    same lines without finding them again."""
    rows = [(doc, line) for doc, lines in cuts.items() for line in lines]
    write_npy(work_dir / "cuts" / f"{rank:05d}.npy", np.array(rows, dtype=CUT))


def read_cuts(work_dir: Path, rank: int) -> dict[int, list[int]]:
    """write_cuts' record; empty where the index stage stripped nothing (or boilerplate removal is off)."""
    path = work_dir / "cuts" / f"{rank:05d}.npy"
    cuts: dict[int, list[int]] = {}
    for doc, line in np.load(path).tolist() if path.exists() else []:
        cuts.setdefault(doc, []).append(line)
    return cuts
