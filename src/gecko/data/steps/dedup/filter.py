"""The dedup phase's last stage: strip boilerplate lines, drop every non-survivor, write the rest.

It reads the shard a third time, so it decodes as little as it can (reread.documents_again): a survivor
that keeps its text and whose line is the one ShardWriter would write is copied to the output line as it is;
only dropped documents (written to the exclusion folder with their reasons), stripped ones and records in
another form are decoded and written as documents. Each drop is counted by reason and language, and each
kept document under `kept`, in `counts/RANK.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline

from gecko.config import DedupConfig
from gecko.data.engine.executor import ShardWriter
from gecko.data.engine.progress import ReadingStep
from gecko.data.io.readers import CorpusReader
from gecko.data.steps.dedup.boilerplate import read_cuts, without_lines
from gecko.data.steps.dedup.minhash import EXACT, doc_langs
from gecko.data.steps.dedup.reread import documents_again
from gecko.io.atomic import write_text


class DedupFilter(ReadingStep):
    """Stage 5, one rank per input file: read, strip, drop, count and write (kept to `writer`, dropped to
    `exclusion_writer` with `duplicate_of`, `kind` and `filter_reason` in their metadata)."""

    name = "🎯 dedup filter"
    type = "🫂 - DEDUP"

    def __init__(
        self,
        work_dir: Path,
        cfg: DedupConfig,
        reader: CorpusReader,
        writer: ShardWriter,
        exclusion_writer: ShardWriter,
    ):
        super().__init__()
        self.work_dir, self.cfg, self.reader = Path(work_dir), cfg, reader
        self.writer, self.exclusion_writer = writer, exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        w = self.work_dir
        drops = json.loads((w / "clusters" / f"{rank:05d}.json").read_text(encoding="utf-8"))
        records = np.load(w / "records" / f"{rank:05d}.npy")
        langs = doc_langs(w, rank, records)
        text_bytes, blank = records["text_bytes"].tolist(), records["blank"].tolist()
        cuts = read_cuts(w, rank)
        counts: Counter[str] = Counter()
        progress = self.progress(rank)
        with self.writer, self.exclusion_writer:
            for index, line, document in documents_again(self.reader, rank, world_size, records):
                if progress:
                    progress.add(text_bytes[index])
                dup = drops.get(str(index))
                if line is not None and dup is None and index not in cuts and not blank[index]:
                    counts[f"kept|kept|{langs[index]}"] += 1
                    self.writer.write_line(line + b"\n", text_bytes[index], rank)
                    continue
                self._decoded(document, cuts.get(index, []), dup, langs[index], counts, rank)
        if progress:
            progress.save()
        write_text(w / "counts" / f"{rank:05d}.json", json.dumps(counts, ensure_ascii=False))
        return iter(())

    def _decoded(
        self,
        document: Callable[[], Document],
        cut: list[int],
        dup: dict | None,
        lang: str,
        counts: Counter[str],
        rank: int,
    ) -> None:
        """A document the fast path cannot copy: stripped if it has boilerplate, then dropped or written."""
        doc = document()
        doc.text = without_lines(doc.text, cut)
        reason = self._drop_reason(doc, dup, lang, counts)
        if reason is None:
            counts[f"kept|kept|{lang}"] += 1
            self.writer.write(doc, rank)
            return
        doc.metadata["filter_reason"] = reason
        self.exclusion_writer.write(doc, rank)

    def _drop_reason(self, doc: Document, dup: dict | None, lang: str, counts: Counter[str]) -> str | None:
        if dup is not None:
            doc.metadata.update(dup)
            exact = dup["kind"] == EXACT
            reason = "duplicate" if exact else "near_duplicate"
            counts[f"{'exact_dedup' if exact else 'minhash_dedup'}|{reason}|{lang}"] += 1
            return reason
        if len(doc.text.strip()) < self.cfg.min_chars_after_strip:
            counts[f"boilerplate|boilerplate_only|{lang}"] += 1
            return "boilerplate_only"
        return None
