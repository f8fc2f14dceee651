"""Benchmark decontamination: training documents sharing a long n-gram with a benchmark item.

The unit is a Korean-aware word (gecko.data.dedup.shingles.decontam_units: NFKC, case-folded words, Hangul
words without their trailing particle) and the default overlap is 13 units, GPT-3's rule. Items shorter than
that are matched as a whole sequence when they have at least `min_item_units` units; shorter ones cannot be
told apart from common phrases and are counted as unchecked in the report.

The benchmark index (sorted 64-bit n-gram hashes → item) is built once and saved, then every rank of the
datatrove filter loads it; a contaminated document is dropped (or flagged in metadata) and recorded with
the benchmark items it overlaps, so the report names both sides.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers import JsonlWriter

from gecko.config import BenchmarkConfig, DecontamConfig, to_dict
from gecko.data.dedup.engine import Engine, execute
from gecko.data.dedup.phase import (PhaseResult, collect_counts, input_files, reader, reset_if_changed,
                                    work_dir_for)
from gecko.data.dedup.shingles import decontam_units, ngrams
from gecko.data.stats import MAX_EXAMPLES
from gecko.errors import DataError

MAX_ITEMS_NAMED = 5


@dataclass
class Item:
    id: str
    """`benchmark:item`, e.g. `mmlu:abstract_algebra_test:12` or `humaneval:HumanEval/0`."""
    text: str


def _csv_items(name: str, path: Path, header: bool) -> Iterator[Item]:
    for f in sorted(path.rglob("*.csv")) if path.is_dir() else [path]:
        with f.open(encoding="utf-8", newline="") as fh:
            rows = csv.reader(fh)
            if header:
                cols = next(rows, [])
                keep = [i for i, c in enumerate(cols) if c in ("question", "A", "B", "C", "D")]
            for i, row in enumerate(rows):
                fields = [row[k] for k in keep if k < len(row)] if header else row[:5]
                yield Item(f"{name}:{f.stem}:{i}", "\n".join(fields))


def _jsonl_items(name: str, path: Path, fields: tuple[str, ...], id_field: str | None) -> Iterator[Item]:
    files = sorted(p for p in path.rglob("*.jsonl*")) if path.is_dir() else [path]
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                try:
                    r = json.loads(line)
                    text = "\n".join(str(r[k]) for k in fields if k in r)
                except (json.JSONDecodeError, TypeError) as e:
                    raise DataError(f"{f}:{lineno}: not a {name} record ({e})") from None
                item = r.get(id_field) if id_field else None
                yield Item(f"{name}:{item if item is not None else f'{f.stem}:{lineno}'}", text)


def load_items(bench: BenchmarkConfig) -> list[Item]:
    """Items of one benchmark as released (KMMLU/MMLU CSV folders, HumanEval/MBPP/GSM8K JSONL)."""
    path = Path(bench.path)
    if not path.exists():
        raise DataError(f"data.decontam.benchmarks[{bench.name}].path={bench.path}: not found")
    readers = {
        "kmmlu": lambda: _csv_items(bench.name, path, header=True),
        "mmlu": lambda: _csv_items(bench.name, path, header=False),
        "humaneval": lambda: _jsonl_items(bench.name, path, ("prompt", "canonical_solution"), "task_id"),
        "mbpp": lambda: _jsonl_items(bench.name, path, ("text", "code"), "task_id"),
        "gsm8k": lambda: _jsonl_items(bench.name, path, ("question", "answer"), None),
        "jsonl": lambda: _jsonl_items(bench.name, path, ("text",), "id"),
    }
    return list(readers[bench.format]())


def build_index(cfg: DecontamConfig, out: Path) -> dict[str, int]:
    """Save sorted n-gram hashes with their item numbers, and the item ids; returns counts for the report."""
    items = [it for b in cfg.benchmarks for it in load_items(b)]
    hashes, owners, lengths = [], [], []
    unchecked = 0
    for i, item in enumerate(items):
        units = decontam_units(item.text)
        if len(units) < min(cfg.ngram, cfg.min_item_units):
            unchecked += 1
            continue
        h = ngrams(units, cfg.ngram)  # a short item gives one n-gram: itself
        hashes.append(h)
        owners.append(np.full(len(h), i, dtype=np.uint32))
        lengths.append(np.full(len(h), min(cfg.ngram, len(units)), dtype=np.uint8))
    h = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
    order = np.argsort(h, kind="stable")
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "index.npz", hashes=h[order],
             owners=np.concatenate(owners)[order] if owners else np.zeros(0, np.uint32),
             lengths=np.concatenate(lengths)[order] if lengths else np.zeros(0, np.uint8))
    (out / "items.jsonl").write_text("".join(json.dumps({"id": it.id, "text": it.text[:200]}, ensure_ascii=False)
                                             + "\n" for it in items), encoding="utf-8")
    return {"items": len(items), "unchecked_short_items": unchecked, "ngrams": int(len(h))}


class DecontamFilter(BaseFilter):
    """Drops (or flags) documents with any n-gram of a benchmark item; records which items matched."""

    name = "🧪 decontam"

    def __init__(self, work_dir: Path, cfg: DecontamConfig, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.work_dir, self.cfg = Path(work_dir), cfg
        self.counts: Counter[str] = Counter()
        self.matches: list[dict] = []

    def _load(self) -> None:
        index = np.load(self.work_dir / "index.npz")
        self.hashes, self.owners, self.lengths = index["hashes"], index["owners"], index["lengths"]
        self.sizes = sorted(set(self.lengths.tolist()))
        self.item_ids = [json.loads(line)["id"] for line in (self.work_dir / "items.jsonl").open(encoding="utf-8")]

    def match(self, text: str) -> tuple[Counter[str], int]:
        """Items overlapping `text` and how many of its n-grams hit the index."""
        units = decontam_units(text)
        items: Counter[str] = Counter()
        hits = 0
        for n in self.sizes:
            if len(units) < n:
                continue
            h = ngrams(units, n)
            left = np.searchsorted(self.hashes, h, side="left")
            right = np.searchsorted(self.hashes, h, side="right")
            hit = np.flatnonzero(right > left)  # an n-gram shared by several items matches all of them
            found = np.array([j for k in hit.tolist() for j in range(left[k], right[k])], dtype=np.int64)
            found = found[self.lengths[found] == n]
            hits += len(found)
            items.update(self.item_ids[o] for o in self.owners[found].tolist())
        return items, hits

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lang = doc.metadata.get("lang") or "other"
        items, hits = self.match(doc.text) if len(self.hashes) else (Counter(), 0)
        if not items:
            self.counts[f"kept|kept|{lang}"] += 1
            return True
        named = [i for i, _ in items.most_common(MAX_ITEMS_NAMED)]
        self.matches.append({"id": doc.id, "lang": lang, "ngrams": hits, "items": named, "n_items": len(items)})
        if self.cfg.action == "flag":
            doc.metadata["contamination"] = named
            self.counts[f"kept|kept|{lang}"] += 1
            return True
        self.counts[f"decontam|contaminated|{lang}"] += 1
        return False, "contaminated"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        self._load()
        yield from super().run(data, rank, world_size)
        (self.work_dir / "counts").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "counts" / f"{rank:05d}.json").write_text(json.dumps(self.counts), encoding="utf-8")
        (self.work_dir / "matches").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "matches" / f"{rank:05d}.jsonl").write_text(
            "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in self.matches), encoding="utf-8")


def run_decontam(in_dir: Path, out_dir: Path, cfg: DecontamConfig, workers: int = 1, engine: Engine = "local",
                 tasks: int | None = None) -> PhaseResult:
    """Filter every document under `in_dir` into `out_dir`; writes `NAME.work/report.md` and `matches.jsonl`."""
    tasks = tasks or len(input_files(in_dir))
    work = work_dir_for(out_dir)
    reset_if_changed(in_dir, out_dir, [to_dict(cfg), tasks])
    index_info = build_index(cfg, work)
    removed = JsonlWriter(str(work / "removed"), compression=None)
    execute([reader(in_dir), DecontamFilter(work, cfg, exclusion_writer=removed),
             JsonlWriter(str(out_dir), compression=None)], tasks, workers, work / "logs", engine)
    matches = sorted((json.loads(line) for f in sorted((work / "matches").glob("*.jsonl"))
                      for line in f.open(encoding="utf-8")), key=lambda m: m["id"])
    (work / "matches.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in matches),
                                        encoding="utf-8")
    (work / "report.md").write_text(_report(cfg, index_info, matches), encoding="utf-8")
    kept, dropped = collect_counts(work)
    examples = {"decontam/contaminated": [f"{m['id']} ~ {m['items'][0]}" for m in matches[:MAX_EXAMPLES]]}
    return PhaseResult(kept, dropped, work, examples if matches else {})


def _report(cfg: DecontamConfig, info: dict[str, int], matches: list[dict]) -> str:
    lines = ["# Decontamination report", "",
             f"{info['items']:,} benchmark items from {', '.join(b.name for b in cfg.benchmarks) or 'none'}; "
             f"{cfg.ngram}-unit overlap; {info['unchecked_short_items']:,} items shorter than "
             f"{cfg.min_item_units} units not checked. Action: {cfg.action}.", "",
             f"{len(matches):,} contaminated documents.", "",
             "| document | lang | n-gram hits | benchmark items |", "|---|---|---:|---|"]
    lines += [f"| `{m['id']}` | {m['lang']} | {m['ngrams']} | {', '.join(m['items'])}"
              f"{' …' if m['n_items'] > len(m['items']) else ''} |" for m in matches]
    return "\n".join(lines) + "\n"
