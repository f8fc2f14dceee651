"""Bases for GECKO's datatrove steps.

datatrove's BaseFilter already counts kept/dropped documents per reason and can write the excluded ones; GECKO
also needs the language of each drop and a few examples for the report, per rank, so that the data stage can
prove read == kept + dropped. Each step writes that ledger when it has seen its whole shard.

Both bases work on batches of BATCH documents and update datatrove's counters once per batch, with the same
totals, counts and means that one update per document gives: datatrove's per-document bookkeeping (three
counter updates, a length statistic and a timer per document and step) cost as much CPU as GECKO's filters.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.stats import MetricStats
from datatrove.utils.typeshelper import StatHints

from gecko.data.stats import DataStats

EXAMPLE_CHARS = 80
BATCH = 256
"""Documents per batch: per-batch work (timers, counters, numpy passes) is amortized over this many."""
BATCH_CHARS = 4 << 20
"""Characters per batch at most (a longer document is a batch of its own): the numpy passes hold ~20-30 bytes
a character, and 256 of the kernel's generated headers made one batch of the clean phase peak at 2.9 GB."""


def batched(docs: Iterable[Document], n: int) -> Iterator[list[Document]]:
    """Batches of at most `n` documents and BATCH_CHARS characters, in order: memory per batch is bounded by
    the largest document (data.max_doc_bytes), not by how many large documents happen to be neighbours."""
    batch: list[Document] = []
    chars = 0
    for doc in docs:
        size = len(doc.text)
        if batch and (len(batch) == n or chars + size > BATCH_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append(doc)
        chars += size
    if batch:
        yield batch


def example(doc: Document) -> str:
    """`id: first characters`, for the report's examples column."""
    snippet = " ".join(doc.text[:EXAMPLE_CHARS].split())
    return f"{doc.id}: {snippet}"


def batch_stats(step: PipelineStep, counts: Counter[str], kept: list[Document]) -> None:
    """Add `counts[label]` unit updates per label and one `doc_len` update per kept document, as datatrove's
    per-document stat_update calls would (MetricStats merge exactly: total, n, mean, min, max, variance)."""
    for label, n in counts.items():
        if n:
            step.stats[label] += MetricStats(total=n, n=n, mean=1.0, min=1, max=1)
    if kept:
        lengths = [len(doc.text) for doc in kept]
        mean = sum(lengths) / len(lengths)
        step.stats["doc_len"] += MetricStats(
            total=sum(lengths),
            n=len(lengths),
            mean=mean,
            min=min(lengths),
            max=max(lengths),
            _running_variance=sum((x - mean) ** 2 for x in lengths),
        )


class GeckoFilter(BaseFilter):
    """A datatrove filter whose drops also land in GECKO's ledger as (step, reason, lang)."""

    step: str = "filter"
    """Name of the step in stats.json and report.md."""

    def __init__(
        self,
        ledger_dir: str | None = None,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = BATCH,
    ) -> None:
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        self.ledger_dir = ledger_dir
        self.ledger = DataStats()

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.filter(doc) for doc in batch]

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """BaseFilter.run with datatrove's counters updated once per batch (same totals), and each drop also
        recorded in GECKO's ledger."""
        self.ledger = DataStats()
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for batch in batched(data, self.batch_size):
                with self.track_time("batch"):
                    results = self.filter_batch(batch)
                counts: Counter[str] = Counter(batches=1, **{StatHints.total: len(batch)})
                kept = []
                for doc, result in zip(batch, results):
                    if result is True:  # the common case, without get_filter_result's call
                        kept.append(doc)
                        continue
                    keep, reason = get_filter_result(result)
                    if keep:
                        kept.append(doc)
                        continue
                    doc.metadata["filter_step"] = self.step
                    self.ledger.drop(self.step, reason or "filtered", doc.metadata["lang"], example(doc))
                    counts[StatHints.dropped] += 1
                    if reason:
                        counts[f"dropped_{reason}"] += 1
                    if writer:
                        if reason:
                            doc.metadata["filter_reason"] = reason
                        writer.write(doc, rank)
                counts[StatHints.forwarded] = len(kept)
                batch_stats(self, counts, kept)
                yield from kept
        if self.ledger_dir:
            self.ledger.save_ledger(Path(self.ledger_dir), self.step, rank)


class GeckoStep(PipelineStep):
    """A step that rewrites documents (one at a time, or a batch at once) and never drops one."""

    step: str = "step"

    def apply(self, doc: Document) -> Document:
        raise NotImplementedError

    def apply_batch(self, batch: list[Document]) -> list[Document]:
        return [self.apply(doc) for doc in batch]

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for batch in batched(data, BATCH):
            with self.track_time("batch"):
                out = self.apply_batch(batch)
            batch_stats(self, Counter(documents=len(out)), [])
            yield from out
