"""Bases for GECKO's datatrove steps.

datatrove's BaseFilter already counts kept/dropped documents per reason and can write the excluded ones; GECKO
also needs the language of each drop and a few examples for the report, per rank, so that the data stage can
prove read == kept + dropped. Each step writes that ledger when it has seen its whole shard.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.disk_base import DiskWriter

from gecko.data.stats import DataStats

EXAMPLE_CHARS = 80


def example(doc: Document) -> str:
    """`id: first characters`, for the report's examples column."""
    snippet = " ".join(doc.text[:EXAMPLE_CHARS].split())
    return f"{doc.id}: {snippet}"


class GeckoFilter(BaseFilter):
    """A datatrove filter whose drops also land in GECKO's ledger as (step, reason, lang)."""

    step: str = "filter"
    """Name of the step in stats.json and report.md."""

    def __init__(self, ledger_dir: str | None = None, exclusion_writer: DiskWriter | None = None,
                 batch_size: int = 1) -> None:
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        self.ledger_dir = ledger_dir
        self.ledger = DataStats()

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        results = [self.filter(doc) for doc in batch]
        self.record_drops(batch, results)
        return results

    def record_drops(self, batch: list[Document], results: list[bool | tuple[bool, str]]) -> None:
        for doc, result in zip(batch, results):
            keep, reason = get_filter_result(result)
            if not keep:
                doc.metadata["filter_step"] = self.step
                self.ledger.drop(self.step, reason or "filtered", doc.metadata["lang"], example(doc))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.ledger = DataStats()
        yield from super().run(data, rank, world_size)
        if self.ledger_dir:
            self.ledger.save_ledger(Path(self.ledger_dir), self.step, rank)


class GeckoStep(PipelineStep):
    """A step that rewrites documents one at a time and never drops one."""

    step: str = "step"

    def apply(self, doc: Document) -> Document:
        raise NotImplementedError

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                doc = self.apply(doc)
            self.stat_update("documents")
            yield doc
