"""Boilerplate removal: lines repeated across many documents (navigation, licence headers, sign-offs).

Two datatrove stages: `LineCounts` counts, per rank, in how many documents each normalized line occurs;
`LineMerge` (one task) sums the ranks and keeps the hashes seen in at least `boilerplate_min_docs` documents.
`BoilerplateStripper` then removes those lines wherever the text is used next (MinHash signatures and the
dedup filter), so repeated frames neither inflate similarity nor reach the corpus. Code is left alone by
default: `return None` in a thousand files is syntax, not boilerplate.
"""

from __future__ import annotations

from collections import Counter
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


def _candidate_lines(text: str, min_chars: int) -> set[int]:
    return {line_key(line) for line in text.splitlines() if len(line.strip()) >= min_chars}


class LineCounts(PipelineStep):
    name = "🧱 boilerplate line counts"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        super().__init__()
        self.work_dir, self.cfg = Path(work_dir), cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter[int] = Counter()
        for doc in data:
            if doc.metadata.get("lang") in self.cfg.boilerplate_langs:
                counts.update(_candidate_lines(doc.text, self.cfg.boilerplate_min_line_chars))
        table = np.array(sorted(counts.items()), dtype=np.uint64).reshape(-1, 2)
        out = np.zeros(len(table), dtype=COUNTS)
        out["hash"], out["docs"] = table[:, 0], table[:, 1]
        write_npy(self.work_dir / "lines" / f"{rank:05d}.npy", out)
        return iter(())


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
    """Removes the frequent lines found by LineMerge (loaded lazily, once per worker process)."""

    def __init__(self, work_dir: Path, cfg: DedupConfig):
        self.path, self.cfg = Path(work_dir) / "boilerplate.npy", cfg
        self._frequent: set[int] | None = None

    def strip(self, doc: Document) -> str:
        if self.cfg.boilerplate_min_docs <= 0 or doc.metadata.get("lang") not in self.cfg.boilerplate_langs:
            return doc.text
        if self._frequent is None:
            self._frequent = set(np.load(self.path).tolist())
        if not self._frequent:
            return doc.text
        min_chars = self.cfg.boilerplate_min_line_chars
        lines = doc.text.splitlines(keepends=True)
        kept = [ln for ln in lines if len(ln.strip()) < min_chars or line_key(ln) not in self._frequent]
        return doc.text if len(kept) == len(lines) else "".join(kept)
