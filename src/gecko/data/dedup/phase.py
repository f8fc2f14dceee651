"""The dedup phase: boilerplate lines → MinHash signatures → buckets → clusters → filter, on any executor.

`run_dedup(in_dir, out_dir, cfg)` reads datatrove JSONL shards (every `*.jsonl*` below `in_dir`), writes the
survivors to `out_dir` and keeps its intermediate files in `out_dir/../NAME.work/`:
`duplicates.jsonl` says which document was dropped as a duplicate of which, `removed/` holds every dropped
document, `logs/` the completion markers that make a rerun after a kill skip finished ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from gecko.config import DedupConfig, to_dict
from gecko.data.dedup.boilerplate import LineCounts, LineMerge
from gecko.data.dedup.engine import Engine, execute, shard_writer
from gecko.data.dedup.minhash import DedupFilter, MinhashBuckets, MinhashClusters, MinhashSignatures
from gecko.data.readers import CorpusReader
from gecko.data.stats import MAX_EXAMPLES, DataStats, example_key
from gecko.errors import DataError
from gecko.io.atomic import write_json, write_text

log = logging.getLogger(__name__)


@dataclass
class PhaseResult:
    """Documents kept per language and dropped per (step, reason, lang), summed over ranks."""

    kept: Counter[str]
    dropped: Counter[tuple[str, str, str]]
    work_dir: Path
    examples: dict[str, list[str]] = field(default_factory=dict)
    """A few dropped ids per step/reason/lang (with the survivor or benchmark items), for the data report."""

    @property
    def read(self) -> int:
        return sum(self.kept.values()) + sum(self.dropped.values())

    def save(self, path: Path, key: str) -> None:
        """Mark the phase finished for `key` (the data stage skips it on a rerun with the same key)."""
        write_json(
            path,
            {
                "key": key,
                "kept": self.kept,
                "examples": self.examples,
                "dropped": [[*k, n] for k, n in sorted(self.dropped.items())],
            },
        )

    @classmethod
    def load(cls, path: Path, key: str) -> PhaseResult | None:
        """The result a finished phase saved for `key`, or None (not finished, or made with another key)."""
        if not path.exists():
            return None
        d = json.loads(path.read_text(encoding="utf-8"))
        if d["key"] != key:
            return None
        return cls(
            Counter(d["kept"]),
            Counter({(s, r, lang): n for s, r, lang, n in d["dropped"]}),
            path.parent,
            d["examples"],
        )

    def add_drops_to(self, stats: DataStats) -> None:
        """Merge this phase's drops into the data stage's accounting (kept documents flow on to the mix)."""
        stats.dropped.update(self.dropped)
        for key, shown in self.examples.items():
            mine = stats.examples.setdefault(key, [])
            mine.extend(shown[: MAX_EXAMPLES - len(mine)])


def input_files(in_dir: Path) -> list[Path]:
    files = sorted(p for p in Path(in_dir).glob("*.jsonl*") if p.is_file())
    if not files:
        raise DataError(f"{in_dir}: no *.jsonl / *.jsonl.gz files to read")
    return files


def reader(in_dir: Path, lang: str = "field", counts_dir: Path | None = None) -> CorpusReader:
    """The phase's documents, one input file per rank; `lang` says where labels come from (langid.LANG_MODES),
    and the pass given `counts_dir` counts what was quarantined (once, not once per pass)."""
    return CorpusReader(input_files(in_dir), lang, str(counts_dir) if counts_dir else None)


def work_dir_for(out_dir: Path) -> Path:
    return Path(out_dir).parent / f"{Path(out_dir).name}.work"


def collect_counts(work: Path) -> tuple[Counter[str], Counter[tuple[str, str, str]]]:
    kept: Counter[str] = Counter()
    dropped: Counter[tuple[str, str, str]] = Counter()
    for f in sorted((work / "counts").glob("*.json")):
        for key, n in json.loads(f.read_text(encoding="utf-8")).items():
            step, reason, lang = key.split("|")
            if step == "kept":
                kept[lang] += n
            else:
                dropped[(step, reason, lang)] += n
    return kept, dropped


def run_dedup(
    in_dir: Path,
    out_dir: Path,
    cfg: DedupConfig,
    workers: int = 1,
    engine: Engine = "local",
    tasks: int | None = None,
    lang: str = "field",
) -> PhaseResult:
    """Dedup every document under `in_dir` into `out_dir`; `tasks` (default: one per input file) ranks.
    `lang`: where each document's language (hence its shingles) comes from, see langid.LANG_MODES."""
    tasks = tasks or len(input_files(in_dir))
    work = work_dir_for(out_dir)
    reset_if_changed(in_dir, out_dir, [to_dict(cfg), tasks, lang])
    logs = work / "logs"
    bands = MinhashBuckets(work, cfg).bands()
    boilerplate: list[tuple[str, list[PipelineStep], int]] = (
        [
            ("lines", [reader(in_dir, lang), LineCounts(work, cfg)], tasks),
            ("merge", [LineMerge(work, cfg)], 1),
        ]
        if cfg.boilerplate_min_docs > 0
        else []
    )
    stages = boilerplate + [
        ("signatures", [reader(in_dir, lang), MinhashSignatures(work, cfg)], tasks),
        ("buckets", [MinhashBuckets(work, cfg)], len(bands)),
        ("clusters", [MinhashClusters(work, cfg)], 1),
        (
            "filter",
            [
                reader(in_dir, lang, work / "counts"),
                DedupFilter(work, cfg, exclusion_writer=shard_writer(work / "removed")),
                shard_writer(out_dir),
            ],
            tasks,
        ),
    ]
    in_bytes = sum(f.stat().st_size for f in input_files(in_dir))
    for name, steps, n in stages:
        log.debug("dedup: %s (%d tasks)", name, n)
        execute(steps, n, workers, logs / name, engine, label=f"dedup {name}", total_bytes=in_bytes)
    rows = _write_duplicates(work)
    kept, dropped = collect_counts(work)
    examples: dict[str, list[str]] = {}
    for d in rows:
        step, reason = (
            ("exact_dedup", "duplicate") if d["kind"] == "exact" else ("minhash_dedup", "near_duplicate")
        )
        shown = examples.setdefault(example_key(step, reason, d["lang"]), [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(f"{d['id']} = {d['duplicate_of']}")
    return PhaseResult(kept, dropped, work, examples)


SCRATCH = ("lines", "signatures", "pairs")
"""dedup.work folders no later step reads: removed once the phase has finished. Kept: `bands/` and `docs/`
(the LSH index: band hashes → document ids), `clusters/`, `boilerplate.npy`, `duplicates.jsonl`, `removed/`."""


def remove_scratch(work: Path) -> None:
    for name in SCRATCH:
        shutil.rmtree(work / name, ignore_errors=True)


def reset_if_changed(in_dir: Path, out_dir: Path, settings: list) -> None:
    """Clear a phase's output and work folders when its settings or input files changed since they were
    written: completion markers of another input must never let a rerun skip ranks."""
    work = work_dir_for(out_dir)
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in input_files(in_dir)]
    fp = hashlib.sha256(json.dumps([files, settings], sort_keys=True).encode()).hexdigest()
    marker = work / "fingerprint"
    if marker.exists() and marker.read_text() == fp:
        return
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    work.mkdir(parents=True)
    write_text(marker, fp)


def _write_duplicates(work: Path) -> list[dict]:
    """One line per dropped duplicate: {"id", "lang", "duplicate_of", "kind"}, sorted by id."""
    rows = []
    for r, f in enumerate(sorted((work / "clusters").glob("*.json"))):
        docs = [json.loads(line) for line in (work / "docs" / f"{r:05d}.jsonl").open(encoding="utf-8")]
        for index, dup in json.loads(f.read_text(encoding="utf-8")).items():
            rows.append({"id": docs[int(index)]["id"], "lang": docs[int(index)]["lang"], **dup})
    rows.sort(key=lambda d: d["id"])
    write_text(work / "duplicates.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in rows))
    return rows
