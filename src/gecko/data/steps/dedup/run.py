"""The dedup phase: MinHash signatures and boilerplate lines → boilerplate merge → index → buckets → clusters →
filter, on any executor.

`run_dedup(in_dir, out_dir, cfg)` reads datatrove JSONL shards (every `*.jsonl*` below `in_dir`), writes the
survivors to `out_dir` and keeps its intermediate files in `out_dir/../NAME.work/`:
`duplicates.jsonl` says which document was dropped as a duplicate of which, `removed/` holds every dropped
document, `logs/` the completion markers that make a rerun after a kill skip finished ranks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from gecko.config import DedupConfig, to_dict
from gecko.data.engine.executor import Engine, Stage, execute_stages, shard_writer
from gecko.data.phase import (
    PhaseResult,
    collect_counts,
    input_files,
    input_size,
    reader,
    reset_if_changed,
    work_dir_for,
)
from gecko.data.stats import MAX_EXAMPLES, example_key
from gecko.data.steps.dedup.boilerplate import LineMerge
from gecko.data.steps.dedup.filter import DedupFilter
from gecko.data.steps.dedup.minhash import (
    MinhashBuckets,
    MinhashClusters,
    MinhashIndex,
    MinhashSignatures,
    doc_rows,
)
from gecko.io.atomic import write_text

WORK_LAYOUT = 4
"""The layout of dedup.work's files; a work folder of another layout (older code) is cleared, not resumed."""


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
    reset_if_changed(in_dir, out_dir, [to_dict(cfg), tasks, lang, WORK_LAYOUT])
    logs = work / "logs"
    bands = MinhashBuckets(work, cfg).bands()
    merge: list[tuple[str, list[PipelineStep], int]] = (
        [("merge", [LineMerge(work, cfg)], 1)] if cfg.boilerplate_min_docs > 0 else []
    )
    output = shard_writer(out_dir, text_bytes=True)
    stages = [
        ("signatures", [reader(in_dir, lang, work / "counts"), MinhashSignatures(work, cfg)], tasks),
        *merge,
        ("index", [MinhashIndex(work, cfg, reader(in_dir, lang))], tasks),
        ("buckets", [MinhashBuckets(work, cfg)], len(bands)),
        ("clusters", [MinhashClusters(work, cfg)], 1),
        (
            "filter",
            [DedupFilter(work, cfg, reader(in_dir, lang), output, shard_writer(work / "removed"))],
            tasks,
        ),
    ]
    in_bytes = input_size(in_dir)
    execute_stages(
        [Stage(steps, n, logs / name, f"dedup {name}") for name, steps, n in stages],
        workers,
        engine,
        in_bytes,
    )
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


SCRATCH = ("lines", "doclines", "records", "cuts", "signatures", "pairs")
"""dedup.work folders no later step reads: removed once the phase has finished. Kept: `bands/` and `docs/`
(the LSH index: band hashes → document ids), `clusters/`, `boilerplate.npy`, `duplicates.jsonl`, `removed/`."""


def remove_scratch(work: Path) -> None:
    for name in SCRATCH:
        shutil.rmtree(work / name, ignore_errors=True)


def _write_duplicates(work: Path) -> list[dict]:
    """One line per dropped duplicate: {"id", "lang", "duplicate_of", "kind"}, sorted by id."""
    rows = []
    for r, f in enumerate(sorted((work / "clusters").glob("*.json"))):
        docs = doc_rows(work, r)
        for index, dup in json.loads(f.read_text(encoding="utf-8")).items():
            doc = json.loads(docs[int(index)])
            rows.append({"id": doc["id"], "lang": doc["lang"], **dup})
    rows.sort(key=lambda d: d["id"])
    write_text(work / "duplicates.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in rows))
    return rows
