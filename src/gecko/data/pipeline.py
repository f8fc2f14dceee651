"""The data stage: read every source → normalize → drop short texts → exact dedup → mix → shuffle → write.

Steps are small functions over documents; each drop is counted with its step and reason, so stats.json
accounts for every document read.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

from rich.progress import Progress

from gecko.config import DataConfig
from gecko.data.dedup.exact import ExactDedup
from gecko.data.document import Document, write_jsonl
from gecko.data.mix import plan_mix, take_by_bytes
from gecko.data.normalize import normalize
from gecko.data.readers import read_source
from gecko.data.stats import DataStats
from gecko.errors import DataError

log = logging.getLogger(__name__)


def clean(cfg: DataConfig, stats: DataStats) -> dict[str, list[Document]]:
    """Read, normalize, length-filter and exact-dedup all sources; returns kept documents by language."""
    dedup = ExactDedup()
    by_lang: dict[str, list[Document]] = defaultdict(list)
    with Progress(transient=True) as progress:
        for src in cfg.sources:
            task = progress.add_task(f"data: {src.name}", total=None)
            for doc in read_source(src, stats):
                progress.advance(task)
                doc = normalize(doc)
                if len(doc.text) < cfg.min_chars:
                    stats.drop("length", "too_short", doc.lang, doc.id)
                    continue
                first = dedup.duplicate_of(doc.id, doc.text)
                if first is not None:
                    stats.drop("exact_dedup", "duplicate", doc.lang, f"{doc.id} = {first}")
                    continue
                by_lang[doc.lang].append(doc)
    return by_lang


def mix(cfg: DataConfig, by_lang: dict[str, list[Document]], stats: DataStats, seed: int) -> list[Document]:
    sizes = {lang: sum(len(d.text.encode("utf-8")) for d in docs) for lang, docs in by_lang.items()}
    for lang, share in cfg.mix.items():
        if share > 0 and not sizes.get(lang):
            raise DataError(f"data.mix.{lang}={share} but no {lang} document survived cleaning")
    plan = plan_mix(sizes, cfg.mix, cfg.max_repeat)
    mixed: list[Document] = []
    for lang, docs in sorted(by_lang.items()):
        chosen, unused = take_by_bytes(docs, plan.budget.get(lang, 0), seed)
        for doc in unused:
            stats.drop("mix", "mix_downsample", lang, doc.id)
        stats.kept[lang] += len(chosen)
        stats.repeated[lang] += len(chosen) - len({d.id for d in chosen})
        stats.kept_bytes[lang] += sum(len(d.text.encode("utf-8")) for d in chosen)
        mixed.extend(chosen)
    random.Random(seed).shuffle(mixed)
    return mixed


def run_data(cfg: DataConfig, out_dir: Path, seed: int) -> DataStats:
    """Write `out_dir/corpus.jsonl`, `stats.json` and `report.md`."""
    if not cfg.sources:
        raise DataError("data.sources is empty: nothing to build a corpus from")
    stats = DataStats()
    mixed = mix(cfg, clean(cfg, stats), stats, seed)
    stats.check_accounting()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(mixed, out_dir / "corpus.jsonl")
    stats.write(out_dir, cfg.mix)
    log.info("data: %d documents read, %d kept", sum(stats.read.values()), len(mixed))
    return stats
