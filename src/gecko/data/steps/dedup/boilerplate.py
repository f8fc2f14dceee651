"""Boilerplate removal: lines repeated across many documents (navigation, licence headers, sign-offs).

`LineTally`, inside the MinHash signature pass (which reads each document once), counts per rank in how many
documents each normalized line occurs and notes which document has which; `LineMerge` (one datatrove task)
sums the ranks and keeps the hashes seen in at least `boilerplate_min_docs` documents. `BoilerplateStripper`
then removes those lines from the few documents that have one (`stripped_docs`), for their MinHash
signatures and in the dedup output, so repeated frames neither inflate similarity nor reach the corpus. Code
is left alone by default: `return None` in a thousand files is syntax, not boilerplate.
"""

from __future__ import annotations

from array import array
from collections import Counter
from itertools import repeat
from pathlib import Path

import numpy as np
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.config import DedupConfig
from gecko.io.atomic import write_npy

COUNTS = np.dtype([("hash", "<u8"), ("docs", "<u4")])


def line_key(line: str) -> int:
    return xxhash.xxh3_64_intdigest(" ".join(line.casefold().split()).encode("utf-8", "surrogatepass"))


def _candidate_lines(text: str, folded: str, min_chars: int) -> set[int]:
    """Keys of the lines of at least `min_chars` characters besides surrounding whitespace; `folded`:
    `text.casefold()`. Where folding kept every character one character, its lines are the folded lines
    of `text` with the same lengths, so they are keyed without folding each line again (0.5 CPU-s of the
    benchmark's 3)."""
    if len(folded) != len(text):  # a character folded to several (ß → ss): fold line by line
        return {line_key(line) for line in text.splitlines() if len(line.strip()) >= min_chars}
    h = xxhash.xxh3_64_intdigest
    return {
        h(" ".join(line.split()).encode("utf-8", "surrogatepass"))
        for line in folded.splitlines()
        if len(line) >= min_chars and len(line.strip()) >= min_chars
    }


DOC_LINE = np.dtype([("doc", "<u4"), ("hash", "<u8")])
"""A candidate line of a document: the document's index in its rank, the line's key."""


class LineTally:
    """The candidate lines of a rank's documents: how many documents have each (`lines/RANK.npy`, summed by
    LineMerge) and which document has which (`doclines/RANK.npy`, for `stripped_docs`)."""

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.counts: Counter[int] = Counter()
        self.docs, self.hashes = array("I"), array("Q")  # 12 bytes a line, not a Python tuple's ~100

    def add(self, index: int, text: str, folded: str, lang: str) -> None:
        """Tally document `index`'s lines; `folded`: `text.casefold()`."""
        if lang in self.cfg.boilerplate_langs:
            keys = _candidate_lines(text, folded, self.cfg.boilerplate_min_line_chars)
            self.counts.update(keys)
            self.docs.extend(repeat(index, len(keys)))
            self.hashes.extend(keys)

    def write(self, work_dir: Path, rank: int) -> None:
        out = np.zeros(len(self.counts), dtype=COUNTS)
        out["hash"] = np.fromiter(self.counts.keys(), dtype=np.uint64, count=len(self.counts))
        out["docs"] = np.fromiter(self.counts.values(), dtype=np.uint32, count=len(self.counts))
        out = out[np.argsort(out["hash"])]  # by hash (sorting the Python pairs took 20x longer)
        write_npy(work_dir / "lines" / f"{rank:05d}.npy", out)
        rows = np.zeros(len(self.docs), dtype=DOC_LINE)
        rows["doc"], rows["hash"] = np.frombuffer(self.docs, np.uint32), np.frombuffer(self.hashes, np.uint64)
        write_npy(work_dir / "doclines" / f"{rank:05d}.npy", rows)


def stripped_docs(work_dir: Path, rank: int) -> np.ndarray:
    """Indices (sorted) of the rank's documents that have a boilerplate line: the only ones whose text the
    stripper changes; none without a LineMerge result (boilerplate removal off)."""
    frequent = work_dir / "boilerplate.npy"
    if not frequent.exists():
        return np.zeros(0, dtype=np.int64)
    rows = np.load(work_dir / "doclines" / f"{rank:05d}.npy")
    return np.unique(rows["doc"][np.isin(rows["hash"], np.load(frequent))]).astype(np.int64)


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


class BoilerplateStripper:
    """Finds the frequent lines found by LineMerge in a document (loaded lazily, once per worker process)."""

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        self.path, self.cfg = Path(work_dir) / "boilerplate.npy", cfg
        self._frequent: set[int] | None = None

    def cut_lines(self, doc: Document) -> list[int]:
        """Indices of the document's boilerplate lines (in `text.splitlines(keepends=True)`)."""
        if self.cfg.boilerplate_min_docs <= 0 or doc.metadata.get("lang") not in self.cfg.boilerplate_langs:
            return []
        if self._frequent is None:
            self._frequent = set(np.load(self.path).tolist())
        min_chars = self.cfg.boilerplate_min_line_chars
        return [
            i
            for i, line in enumerate(doc.text.splitlines(keepends=True))
            if len(line.strip()) >= min_chars and line_key(line) in self._frequent
        ]


def without_lines(text: str, cut: list[int]) -> str:
    """`text` without the lines at `cut` (BoilerplateStripper.cut_lines)."""
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
