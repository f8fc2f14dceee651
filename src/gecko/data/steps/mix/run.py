"""`run_mix`: the mix as three datatrove stages (gecko.data.steps.mix.ranks) on the executor `data.engine`
names, with the choice made in between by the driver from the scan's arrays (gecko.data.steps.mix.choice).

Two passes over the input, whatever its size: the first keeps arrays (38 bytes a document), the second writes
the chosen copies into scratch buckets by their place in the corpus; each bucket is then sorted alone and
written at its offset of the corpus, so no process holds more than a bucket of text and every pass spreads
over the workers. mix.work/ is cleared when a mix starts (completion markers of another mix must never let
a rank be skipped); at the end only its `logs/` stay, each stage's datatrove logs as every phase keeps them.
The corpus appears, complete, by one rename.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from gecko.config import DataConfig
from gecko.data.corpus import datatrove_files
from gecko.data.engine.executor import engine_of, execute, written_text_bytes
from gecko.data.stats import DataStats
from gecko.data.steps.mix.choice import Choice, MixReport, Scan, choose, mix_report, record_in_ledger
from gecko.data.steps.mix.ranks import CHOICE_ROW, MixBuckets, MixScan, MixSort, load_scan
from gecko.io.atomic import write_npy

BUCKET_BYTES = 32 << 20
"""Chosen text per scratch bucket: about the most a sorting rank holds in memory at once."""


def run_mix(in_dirs: list[Path], out_path: Path, cfg: DataConfig, seed: int, stats: DataStats) -> MixReport:
    """Mix the documents of datatrove folders `in_dirs` into GECKO's corpus.jsonl at `out_path`: choose (and
    repeat) documents to the target shares and write them, shuffled; every unchosen document is counted in
    `stats` as dropped. Writes mix.json and mix_report.md beside the corpus."""
    files = datatrove_files(in_dirs)
    work, partial = out_path.parent / "mix.work", out_path.with_name(out_path.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)  # the mix's own scratch from a killed run
    partial.unlink(missing_ok=True)
    stage = _Stages(cfg, work)
    in_bytes = written_text_bytes(files)
    stage.run(MixScan(files, work, seed), len(files), "scan", in_bytes)
    parts = [load_scan(work, r) for r in range(len(files))]
    scan = Scan.merge(parts, cfg.bytes_per_token)
    starts = [0, *np.cumsum([len(rows) for rows, _, _ in parts]).tolist()]
    del parts  # the scan holds what the choice needs: 38 bytes a document
    choice = choose(scan, cfg)
    _save_choice(work, scan, choice)
    buckets = _bucket_count(int((scan.nbytes * choice.copies).sum()), max(cfg.workers, 1))
    stage.run(MixBuckets(files, work, seed, starts, buckets), len(files), "buckets", int(scan.nbytes.sum()))
    offsets = _bucket_offsets(work, len(files), buckets)
    with partial.open("wb") as f:
        f.truncate(offsets[-1])  # each sorting rank writes its bucket's range of it
    sorter = MixSort(work, partial, offsets, [g for g, _ in scan.slots])
    stage.run(sorter, stage.workers, "sort", offsets[-1])  # _bucket_count made buckets a multiple of it
    _commit(partial, out_path)
    achieved: Counter[str] = Counter()
    for b in range(buckets):  # counted in corpus order, so groups keep their order of first appearance
        for group, tokens in json.loads((work / "achieved" / f"{b:05d}.json").read_text(encoding="utf-8")):
            achieved[group] += tokens
    for r in range(len(files)):
        for i, doc_id in json.loads(
            (work / "bucket" / f"{r:05d}" / "ids.json").read_text(encoding="utf-8")
        ).items():
            choice.examples[int(i)] = doc_id
    record_in_ledger(scan, choice, stats)
    _remove_scratch(work)
    report = mix_report(cfg, scan, choice, achieved)
    report.write(out_path.parent)
    return report


class _Stages:
    """Runs the mix's stages on the configured executor, logs and progress under mix.work/logs/NAME."""

    def __init__(self, cfg: DataConfig, work: Path) -> None:
        self.workers, self.engine, self.work = max(cfg.workers, 1), engine_of(cfg), work

    def run(
        self, step: MixScan | MixBuckets | MixSort, tasks: int, name: str, total_bytes: int | None
    ) -> None:
        """`total_bytes`: what the stage's progress line counts up to (None: unknown)."""
        if tasks:
            logs = self.work / "logs" / name
            execute([step], tasks, self.workers, logs, self.engine, f"mix {name}", total_bytes)


def _save_choice(work: Path, scan: Scan, choice: Choice) -> None:
    """choice.npy, a CHOICE_ROW per document in reading order, which the writing ranks map."""
    rows = np.zeros(len(scan.slot), CHOICE_ROW)
    rows["copies"] = choice.copies
    rows["slot"] = scan.slot
    rows["tokens"] = scan.tokens
    rows["nbytes"] = scan.nbytes
    rows["example"][list(choice.examples)] = True
    write_npy(work / "choice.npy", rows)


def _bucket_count(chosen_bytes: int, workers: int) -> int:
    """Enough buckets to hold BUCKET_BYTES of text each, a multiple of the workers so they share the sort."""
    needed = max(1, -(-chosen_bytes // BUCKET_BYTES))
    return workers * -(-needed // workers)


def _bucket_offsets(work: Path, ranks: int, buckets: int) -> list[int]:
    """Each bucket's first byte in the corpus, and the corpus's size last."""
    sizes = np.zeros(buckets, dtype=np.int64)
    for r in range(ranks):
        sizes += np.load(work / "bucket" / f"{r:05d}" / "sizes.npy")
    return [0, *np.cumsum(sizes).tolist()]


def _remove_scratch(work: Path) -> None:
    """Everything in mix.work but the stages' logs: the corpus holds what the scratch held."""
    for path in work.iterdir():
        if path.name == "logs":
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _commit(partial: Path, out_path: Path) -> None:
    """The written corpus to disk, then into place by one rename (as gecko.io.atomic does)."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, out_path)
