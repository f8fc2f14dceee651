"""The data stage. Phase 1, clean: read → normalize → language ID → quality → PII → toxicity, as datatrove
PipelineSteps run by the datatrove executor `data.engine` names (local processes, Ray or Slurm; the same
step list and output on each), writing RUN/data/clean/NNNNN.jsonl. Then dedup (exact, MinHash, boilerplate; RUN/data/dedup/) →
decontam (RUN/data/decontam/) → mix with alignment documents (RUN/data/align/) → RUN/data/corpus.jsonl.

Accounting: every step writes a per-rank ledger of what it read or dropped as (step, reason, lang), so
stats.json proves read == kept + dropped. Resuming: datatrove skips ranks with a completion marker, and a
changed config (or input) clears the phase first, so a rerun never mixes outputs of two configs.
One step on one file, outside a run: gecko.data.commands.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter

from gecko.config import DataConfig, fingerprint
from gecko.data.engine.executor import engine_of, execute, shard_writer
from gecko.data.engine.step import GeckoStep
from gecko.data.io.readers import (
    SourceReader,
    check_source,
)
from gecko.data.phase import PhaseResult
from gecko.data.stats import DataStats
from gecko.data.steps.align import run_align
from gecko.data.steps.decontam import run_decontam
from gecko.data.steps.dedup.run import remove_scratch, run_dedup
from gecko.data.steps.langid import LanguageFilter
from gecko.data.steps.mix.run import run_mix
from gecko.data.steps.normalize import Normalize
from gecko.data.steps.pii import PiiScrubber
from gecko.data.steps.quality import QualityFilter
from gecko.data.steps.toxicity import ToxicityFilter
from gecko.errors import DataError
from gecko.io import sources
from gecko.io.atomic import write_json, write_text

log = logging.getLogger(__name__)

CLEAN = "clean"
"""RUN/data/clean/: the clean phase's datatrove JSONL shards, one per rank, and nothing else."""
QUARANTINE = "quarantine"
"""RUN/data/quarantine/read-NNNNN.jsonl: every record the readers could not make a document, with reason,
`file:line` and detail; their count is the `read` step's drops in the stats."""


class Tally(GeckoStep):
    """Counts the documents that survive cleaning, per language, for the clean phase's own report."""

    name = "🧮 gecko tally"
    step = "tally"

    def __init__(self, ledger_dir: str) -> None:
        super().__init__()
        self.ledger_dir = ledger_dir

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        stats = DataStats()
        for doc in data:
            stats.kept[doc.metadata["lang"]] += 1
            stats.kept_bytes[doc.metadata["lang"]] += len(doc.text.encode("utf-8"))
            yield doc
        stats.save_ledger(Path(self.ledger_dir), self.step, rank)


def clean_steps(cfg: DataConfig, data_dir: Path) -> list[PipelineStep]:
    """The clean phase as a datatrove step list, run by the executor `data.engine` names."""
    ledger = str(data_dir / "logs" / "ledger")

    def dropped(step: str) -> JsonlWriter | None:
        return shard_writer(data_dir / "dropped" / step) if cfg.clean.dump_dropped else None

    c = cfg.clean
    steps: list[PipelineStep] = [
        SourceReader(cfg.sources, c.max_doc_bytes, ledger, str(data_dir / QUARANTINE)),
        Normalize(),
        LanguageFilter(
            c.mixed_hangul_ratio,
            c.min_en_score,
            c.keep_other,
            ledger_dir=ledger,
            exclusion_writer=dropped("langid"),
        ),
        QualityFilter(c, cfg.min_chars, ledger_dir=ledger, exclusion_writer=dropped("quality")),
    ]
    if cfg.pii.enabled:
        steps.append(PiiScrubber(cfg.pii.types))
    if cfg.toxicity.enabled:
        steps.append(
            ToxicityFilter(
                cfg.toxicity.threshold,
                cfg.toxicity.langs,
                ledger_dir=ledger,
                exclusion_writer=dropped("toxicity"),
            )
        )
    steps += [Tally(str(data_dir / "logs" / "kept")), shard_writer(data_dir / CLEAN, text_bytes=True)]
    return steps


def _reset_if_changed(cfg: DataConfig, data_dir: Path) -> None:
    """Keep a finished or interrupted clean phase only if it was made by the same config."""
    marker = data_dir / "logs" / "clean.fingerprint"
    fp = _clean_key(cfg)
    if marker.exists() and marker.read_text() == fp:
        return
    for sub in (CLEAN, "dropped", "logs", QUARANTINE):
        shutil.rmtree(data_dir / sub, ignore_errors=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_text(marker, fp)


def _clean_key(cfg: DataConfig) -> str:
    return fingerprint(cfg.sources, cfg.clean, cfg.pii, cfg.toxicity, cfg.min_chars, cfg.workers)


def run_clean(cfg: DataConfig, data_dir: Path) -> DataStats:
    """Run the clean phase (resuming finished ranks); write clean_stats.json, clean_report.md and .html."""
    if not cfg.sources:
        raise DataError("data.sources is empty: nothing to build a corpus from")
    for src in cfg.sources:
        check_source(src)
    _reset_if_changed(cfg, data_dir)
    workers = max(cfg.workers, 1)
    execute(
        clean_steps(cfg, data_dir),
        workers,
        workers,
        data_dir / "logs" / "clean",
        engine_of(cfg),
        label="clean",
        total_bytes=sum(
            sources.total_bytes(src.path, src.subset, src.extensions if src.format == "code" else None)
            for src in cfg.sources
        ),
    )
    stats = DataStats.load_ledgers(data_dir / "logs" / "ledger")
    kept = DataStats.load_ledgers(data_dir / "logs" / "kept")
    report = DataStats(
        stats.read, stats.dropped, kept.kept, kept.kept_bytes, Counter(), stats.examples, stats.repaired
    )
    report.check_accounting()
    write_json(data_dir / "clean_stats.json", report.to_dict())
    write_text(data_dir / "clean_report.md", report.report({}, "Clean phase report"))
    write_text(data_dir / "clean_report.html", report.report_html({}, "Clean phase report"))
    return stats


def run_data(cfg: DataConfig, out_dir: Path, seed: int) -> DataStats:
    """clean → dedup (exact, MinHash, boilerplate) → decontam → (+ align) → mix: write `out_dir/corpus.jsonl`,
    `stats.json` and `report.md`, with every phase's folder and report below `out_dir`.

    Storage stays near the input's size: shards between phases are zstd, and a phase's input is removed
    once the next phase has finished (clean/ after dedup, decontam/ after the mix; dedup/ stays, so changing
    the benchmarks or the mix reruns only decontamination, at tens of MB/s). Each phase leaves `DONE` with
    its key; a rerun skips finished phases, and a removed input that is needed again is remade.
    Kept: the drop lists (`dropped/`, `*.work/removed/`, `duplicates.jsonl`, `matches.jsonl`), the dedup
    index (`dedup.work/bands`, `docs`, `clusters`) and the corpus."""
    keys = _phase_keys(cfg, seed)
    if _finished(out_dir, keys["mix"]):
        _remove_consumed(out_dir)
        stats = DataStats.from_dict(json.loads((out_dir / "stats.json").read_text(encoding="utf-8")))
        print(stats.summary(), file=sys.stderr)
        return stats
    if (out_dir / "logs" / CONSUMED).exists() and PhaseResult.load(
        out_dir / "dedup.work" / DONE, keys["dedup"]
    ) is None:
        (
            out_dir / "logs" / "clean.fingerprint"
        ).unlink()  # dedup must run again on clean shards already removed
    stats = run_clean(cfg, out_dir)
    dedup = _phase(
        out_dir / "dedup.work",
        out_dir / "dedup",
        keys["dedup"],
        lambda: run_dedup(out_dir / CLEAN, out_dir / "dedup", cfg.dedup, cfg.workers, engine_of(cfg)),
    )
    _consume(out_dir / CLEAN, out_dir / "logs" / CONSUMED)
    remove_scratch(out_dir / "dedup.work")
    dedup.add_drops_to(stats)
    decontam = _phase(
        out_dir / "decontam.work",
        out_dir / "decontam",
        keys["decontam"],
        lambda: run_decontam(
            out_dir / "dedup", out_dir / "decontam", cfg.decontam, cfg.workers, engine_of(cfg)
        ),
    )
    decontam.add_drops_to(stats)
    mix_inputs = [out_dir / "decontam"]
    if cfg.align.sources:
        align = run_align(cfg.align, out_dir / "align", seed)
        stats.read.update(align.documents)  # alignment documents enter the accounting as read
        mix_inputs.append(out_dir / "align")
    mix = run_mix(mix_inputs, out_dir / "corpus.jsonl", cfg, seed, stats)
    stats.check_accounting()
    stats.write(out_dir, cfg.mix)
    write_text(out_dir / DONE, keys["mix"])
    _consume(out_dir / "decontam", out_dir / "decontam.work" / CONSUMED)
    print(stats.summary(), file=sys.stderr)  # plain columns: a log handler would re-wrap them
    log.info(
        "data: %d documents read, %d in the corpus; token shares %s",
        sum(stats.read.values()),
        mix.documents,
        {g: round(v, 4) for g, v in mix.achieved.items()},
    )
    return stats


DONE = "DONE"
"""A phase's completion marker (its key; for dedup and decontam with the phase's counts)."""
CONSUMED = "CONSUMED"
"""Written before a phase's output folder is removed, so a kill during the removal is finished on rerun."""


def _phase_keys(cfg: DataConfig, seed: int) -> dict[str, str]:
    """Each phase's key covers its own settings and the key of the phase before it."""
    dedup = fingerprint(_clean_key(cfg), cfg.dedup)
    decontam = fingerprint(dedup, cfg.decontam)
    return {"dedup": dedup, "decontam": decontam, "mix": fingerprint(decontam, cfg, seed)}


def _finished(out_dir: Path, key: str) -> bool:
    return (
        (out_dir / DONE).exists()
        and (out_dir / DONE).read_text() == key
        and (out_dir / "stats.json").exists()
    )


def _phase(work: Path, out: Path, key: str, run: Callable[[], PhaseResult]) -> PhaseResult:
    """Run a phase unless it finished with this key. A finished phase whose output a later phase consumed is
    run again from scratch (its completion markers would make datatrove skip every rank)."""
    done = PhaseResult.load(work / DONE, key)
    if done and not (work / CONSUMED).exists():
        return done
    if done:
        shutil.rmtree(work)
        shutil.rmtree(out, ignore_errors=True)
    result = run()
    result.save(work / DONE, key)
    return result


def _consume(folder: Path, marker: Path) -> None:
    """Remove an intermediate folder whose documents a finished phase has written elsewhere; the marker
    comes first, so a kill during the removal leaves a marked folder that `_remove_consumed` finishes."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    shutil.rmtree(folder, ignore_errors=True)


def _remove_consumed(out_dir: Path) -> None:
    """A finished stage has consumed every intermediate (a kill may have come before or during a removal)."""
    _consume(out_dir / CLEAN, out_dir / "logs" / CONSUMED)
    _consume(out_dir / "decontam", out_dir / "decontam.work" / CONSUMED)
    remove_scratch(out_dir / "dedup.work")
