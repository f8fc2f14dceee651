"""Benchmark decontamination: training documents sharing a long window of units with a benchmark item.

Units and windows are gecko.data.text.overlap's: NFKC, case-folded words; Hangul syllables with spacing ignored and
one-syllable particles dropped; a window weighs `ngram` words (GPT-3's 13), about as many Korean words.
Items shorter than that are matched as a whole when they weigh at least `min_item_units` words; shorter ones
cannot be told apart from common phrases and are counted as unchecked in the report.

The benchmark index (sorted 64-bit window hashes → item) is built once per content of the benchmark files
and kept in the user's cache (`cache_dir`), then every rank of the datatrove filter loads it; a contaminated
document is dropped (or flagged in metadata) and recorded with the benchmark items it overlaps, so the
report names both sides.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.typeshelper import StatHints

from gecko.config import BenchmarkConfig, DecontamConfig, to_dict
from gecko.data.engine.executor import Engine, execute, shard_writer
from gecko.data.engine.step import batch_stats, batched
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
from gecko.data.text import overlap
from gecko.errors import DataError
from gecko.io.atomic import write_text

MAX_ITEMS_NAMED = 5
GROUP_CHARS = 1 << 18
INDEX_VERSION = 5
"""Bump when the unit or window rules change: cached indexes of another version are not reused."""


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
                    text = "\n".join(_strings(r[k]) for k in fields if k in r)
                except (json.JSONDecodeError, TypeError) as e:
                    raise DataError(f"{f}:{lineno}: not a {name} record ({e})") from None
                item = r.get(id_field) if id_field else None
                yield Item(f"{name}:{item if item is not None else f'{f.stem}:{lineno}'}", text)


def _strings(value: object) -> str:
    """The text of a field, nested objects included (ARC's question holds its stem and choices)."""
    if isinstance(value, dict):
        return "\n".join(_strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_strings(v) for v in value)
    return str(value)


def _tsv_items(name: str, path: Path) -> Iterator[Item]:
    """The sentences of KoBEST-style TSV files (no quoting: their cells hold unbalanced quotes); ids, labels
    and single words are left out, so an item is the text a training document could copy."""
    for f in sorted(path.rglob("*.tsv")) if path.is_dir() else [path]:
        with f.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)):
                if i:  # the header
                    yield Item(
                        f"{name}:{f.parent.name}/{f.stem}:{i}", "\n".join(c for c in row if " " in c.strip())
                    )


BENCHMARK_FORMATS: dict[str, Callable[[str, Path], Iterator[Item]]] = {
    "kmmlu": lambda name, path: _csv_items(name, path, header=True),
    "mmlu": lambda name, path: _csv_items(name, path, header=False),
    "humaneval": lambda name, path: _jsonl_items(name, path, ("prompt", "canonical_solution"), "task_id"),
    "mbpp": lambda name, path: _jsonl_items(name, path, ("text", "code"), "task_id"),
    "gsm8k": lambda name, path: _jsonl_items(name, path, ("question", "answer"), None),
    "jsonl": lambda name, path: _jsonl_items(name, path, ("text",), "id"),
    "kobest": _tsv_items,
    "arc": lambda name, path: _jsonl_items(name, path, ("question",), "id"),
    "piqa": lambda name, path: _jsonl_items(name, path, ("goal", "sol1", "sol2"), None),
    "winogrande": lambda name, path: _jsonl_items(name, path, ("sentence", "option1", "option2"), "qID"),
    "lambada": lambda name, path: _jsonl_items(name, path, ("text",), None),
}
"""How each benchmark's release is read into items: adding a benchmark format is one line here."""


def load_items(bench: BenchmarkConfig) -> list[Item]:
    """Items of one benchmark as released (see BENCHMARK_FORMATS)."""
    path = Path(bench.path)
    if not path.exists():
        raise DataError(f"data.decontam.benchmarks[{bench.name}].path={bench.path}: not found")
    if bench.format not in BENCHMARK_FORMATS:
        raise DataError(
            f"data.decontam.benchmarks[{bench.name}].format={bench.format!r}: unknown "
            f"(known: {', '.join(BENCHMARK_FORMATS)})"
        )
    return list(BENCHMARK_FORMATS[bench.format](bench.name, path))


def _content_key(cfg: DecontamConfig) -> str:
    """Hash of everything the index depends on: benchmark files' bytes, the window settings, the unit rules."""
    h = hashlib.sha256(
        json.dumps(
            [
                INDEX_VERSION,
                cfg.ngram,
                cfg.min_item_units,
                overlap.PARTICLES,
                overlap.WORD_WEIGHT,
                overlap.HANGUL_WEIGHT,
            ]
        ).encode()
    )
    for b in cfg.benchmarks:
        path = Path(b.path)
        if not path.exists():
            raise DataError(f"data.decontam.benchmarks[{b.name}].path={b.path}: not found")
        h.update(json.dumps([b.name, b.format]).encode())
        for f in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:24]


def cache_dir() -> Path:
    """Where built benchmark indexes are kept ($GECKO_CACHE_DIR, else the user's cache folder)."""
    root = (
        os.environ.get("GECKO_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gecko"
    )
    return Path(root) / "decontam"


def index_path(cfg: DecontamConfig) -> Path:
    """The benchmark index for `cfg`, built on first use and reused while the benchmark files are unchanged."""
    path = cache_dir() / f"{_content_key(cfg)}.npz"
    if not path.exists():
        arrays = build_index(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # mypy matches **arrays to allow_pickle; keys are array names
        os.replace(tmp, path)
    return path


def build_index(cfg: DecontamConfig) -> dict[str, np.ndarray]:
    """Window hashes of every benchmark item, sorted, with the item each came from.

    Items of at least `ngram` words' weight give every window of that weight. A shorter item (but at least
    `min_item_units` words' weight) is keyed by its first window of the minimum weight and matched only when
    the whole item follows; shorter ones are counted as unchecked."""
    items = [it for b in cfg.benchmarks for it in load_items(b)]
    full, least = cfg.ngram * overlap.WORD_WEIGHT, min(cfg.ngram, cfg.min_item_units) * overlap.WORD_WEIGHT
    u = overlap.units([it.text for it in items], drop_markers=True)
    win = overlap.Windows(u)
    weight = np.bincount(u.text_of, weights=u.weights, minlength=len(items)).astype(np.int64)
    starts, hashes = win.all(full)
    owners = u.text_of[starts]
    first = np.searchsorted(u.text_of, np.arange(len(items)))
    short = np.flatnonzero((weight >= least) & (weight < full))
    whole_ends = win.ends(first[short], weight[short])
    short_keys = win.hashes(first[short], win.ends(first[short], least))
    order, short_order = np.argsort(hashes, kind="stable"), np.argsort(short_keys, kind="stable")
    return {
        "head_bits": _Bitmap.of(_sorted_unique(win.heads(overlap.min_units(full))[starts])).bits,
        "short_head_bits": _Bitmap.of(_sorted_unique(win.heads(overlap.min_units(least))[first[short]])).bits,
        "hashes": hashes[order],
        "owners": owners[order].astype(np.uint32),
        "short_hashes": short_keys[short_order],
        "short_owners": short.astype(np.uint32)[short_order],
        "short_weights": weight[short][short_order],
        "short_full": win.hashes(first[short], whole_ends)[short_order],
        "thresholds": np.array([full, least]),
        "item_ids": np.array([it.id for it in items], dtype=np.str_),
        "unchecked": np.array([int((weight < least).sum())]),
    }


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2.4's np.unique hashes 64-bit keys first and took 2.4 CPU-s for the
    index's 2.4 M heads, against 0.15 s for a sort (the index is built on a user's first run)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


class _Bitmap:
    """Which 64-bit values may be in a set, as one bit per slot of their top bits: most probes miss, and a
    bit test is far cheaper than any search over millions of keys. Packed 8 bits a byte (32 MB for the five
    benchmark sets, not 256 MB of bools, which every decontam rank took ~1 CPU-s of page faults to fill).
    Built with the index and stored in it: setting 2.4 M bits cost each rank 0.1 CPU-s, reading them less.
    One of UNPACKED_BYTES or less (the short items': 32 KB) is also kept as a bool a slot, within the L2
    cache: its test is then one lookup a value."""

    UNPACKED_BYTES = 1 << 18

    def __init__(self, bits: np.ndarray) -> None:
        self.bits, self.shift = bits, np.uint64(64 - 3 - int(np.log2(len(bits))))
        small = len(bits) <= self.UNPACKED_BYTES
        self.flags = np.unpackbits(bits, bitorder="little").view(np.bool_) if small else None

    @classmethod
    def of(cls, keys: np.ndarray) -> _Bitmap:
        """The bitmap of sorted `keys` (so the bytes of their slots are sorted too): 64 slots a key."""
        bitmap = cls(np.zeros(1 << max(13, min(27, int(np.ceil(np.log2(max(len(keys), 1) * 8))))), np.uint8))
        slots = keys >> bitmap.shift  # byte of the bitmap, and bit mask in it, of each key
        byte, bit = (
            (slots >> np.uint64(3)).astype(np.intp),
            np.left_shift(1, slots & np.uint64(7)).astype(np.uint8),
        )
        first = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1]))) if len(keys) else byte
        bitmap.bits[byte[first]] = np.bitwise_or.reduceat(bit, first) if len(keys) else bit
        return cls(bitmap.bits)  # its flags from the bits set

    def may_hold(self, values: np.ndarray) -> np.ndarray:
        """Indices of the values that may be in the set (all that are, a few that are not). The byte shifted
        by the bit's place, not masked by a mask made per value: a third fewer passes over the values."""
        slots = (values >> self.shift).view(np.int64)  # below 2**61
        if self.flags is not None:
            return np.flatnonzero(self.flags[slots])
        return np.flatnonzero(np.right_shift(self.bits[slots >> 3], (slots & 7).astype(np.uint8)) & 1)


class _SortedSet:
    """Sorted 64-bit keys, found by bucket (the keys sharing a value's top bits, two on average) rather than
    by a binary search over all keys, whose ~22 dependent cache misses cost more than a bitmap test."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys  # sorted, so the buckets are too
        bucket_bits = max(1, int(np.log2(max(len(keys), 1))))
        self.bucket_shift = np.uint64(64 - bucket_bits)
        self.bucket_start = np.zeros((1 << bucket_bits) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self._bucket(keys), minlength=1 << bucket_bits), out=self.bucket_start[1:])

    def _bucket(self, values: np.ndarray) -> np.ndarray:
        return (values >> self.bucket_shift).astype(np.intp)

    def find(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probe index, key index) of every probe equal to a key, by probe then key; a probe equal to k keys
        appears k times."""
        buckets = self._bucket(probes)
        at, end = self.bucket_start[buckets], self.bucket_start[buckets + 1]
        hits: list[np.ndarray] = [np.zeros(0, dtype=np.intp)]
        keys: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        active = np.flatnonzero(at < end)
        while len(active):  # the k-th key of every bucket at once; a bucket holds a few keys
            key = self.keys[at[active]]
            equal = key == probes[active]
            hits.append(active[equal])
            keys.append(at[active[equal]])
            at[active] += 1
            active = active[(key <= probes[active]) & (at[active] < end[active])]
        hit, key_index = np.concatenate(hits), np.concatenate(keys)
        order = np.argsort(hit, kind="stable")
        return hit[order], key_index[order]


class BenchmarkIndex:
    """A loaded benchmark index: which items each text of a batch overlaps, and with how many windows."""

    def __init__(self, path: Path) -> None:
        z = np.load(path)
        self.owners, self.short_owners = z["owners"], z["short_owners"]
        self.short_weights, self.short_full = z["short_weights"], z["short_full"]
        self.full, self.least = (int(t) for t in z["thresholds"])
        self.item_ids = z["item_ids"].tolist()
        self.unchecked = int(z["unchecked"][0])
        self.long, self.short = _SortedSet(z["hashes"]), _SortedSet(z["short_hashes"])
        self.heads, self.short_heads = _Bitmap(z["head_bits"]), _Bitmap(z["short_head_bits"])

    def __len__(self) -> int:
        return len(self.item_ids)

    def match(self, texts: list[str]) -> list[dict[str, int]]:
        """For each text, the items it overlaps and how many of its windows hit each (insertion order: the
        order hits were found). Texts are taken in groups of about `GROUP_CHARS`: arrays that stay in the CPU
        cache are several times faster."""
        found: list[dict[str, int]] = []
        group: list[str] = []
        size = 0
        for text in texts:
            if group and size + len(text) > GROUP_CHARS:
                found += self._match_group(group)
                group, size = [], 0
            group.append(text)
            size += len(text)
        return found + self._match_group(group) if group else found

    def _match_group(self, texts: list[str]) -> list[dict[str, int]]:
        u = overlap.units(texts, drop_markers=True)
        win = overlap.Windows(u)
        found: list[dict[str, int]] = [{} for _ in texts]  # not Counter(): 1.5 µs each, for every document
        start, key = self._found(win, self.heads, self.long, self.full)
        self._count(found, u.text_of[start], self.owners[key])
        if len(self.short.keys):
            s, key = self._found(win, self.short_heads, self.short, self.least)
            ends = win.ends(s, self.short_weights[key])
            ok = ends >= 0
            ok[ok] &= win.hashes(s[ok], ends[ok]) == self.short_full[key[ok]]
            self._count(found, u.text_of[s[ok]], self.short_owners[key[ok]])
        return found

    @staticmethod
    def _found(
        win: overlap.Windows, heads: _Bitmap, keys: _SortedSet, threshold: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(window start, key index) of every window of weight `threshold` equal to a key, by start then key.
        Only the starts whose first units may begin a benchmark window (about one in a hundred) get a window
        hash: the head test costs two vector operations and a bit test a start, the window hash a dozen."""
        starts = heads.may_hold(win.heads(overlap.min_units(threshold)))
        ends = win.ends(starts, threshold)
        starts, ends = starts[ends >= 0], ends[ends >= 0]
        probe, key = keys.find(win.hashes(starts, ends))
        return starts[probe], key

    def _count(self, found: list[dict[str, int]], texts: np.ndarray, owners: np.ndarray) -> None:
        for t, o in zip(texts.tolist(), owners.tolist()):
            item = self.item_ids[o]
            found[t][item] = found[t].get(item, 0) + 1


class DecontamFilter(BaseFilter):
    """Drops (or flags) documents with any window of a benchmark item; records which items matched.
    Documents are matched `BATCH` at a time: the per-call cost of numpy is paid once per batch."""

    name = "🧪 decontam"
    BATCH = 512

    def __init__(
        self, index: Path, work_dir: Path, cfg: DecontamConfig, exclusion_writer: DiskWriter | None = None
    ):
        super().__init__(exclusion_writer, batch_size=self.BATCH)
        self.index_file, self.work_dir, self.cfg = Path(index), Path(work_dir), cfg
        self.counts: Counter[str] = Counter()
        self.matches: list[dict] = []

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        found = self.index.match([d.text for d in batch]) if len(self.index) else [{} for _ in batch]
        return [self._decide(doc, items) for doc, items in zip(batch, found)]

    def _decide(self, doc: Document, items: dict[str, int]) -> bool | tuple[bool, str]:
        lang = doc.metadata.get("lang") or "other"
        if not items:
            self.counts[f"kept|kept|{lang}"] += 1
            return True
        named = [i for i, _ in Counter(items).most_common(MAX_ITEMS_NAMED)]
        self.matches.append(
            {"id": doc.id, "lang": lang, "ngrams": sum(items.values()), "items": named, "n_items": len(items)}
        )
        if self.cfg.action == "flag":
            doc.metadata["contamination"] = named
            self.counts[f"kept|kept|{lang}"] += 1
            return True
        self.counts[f"decontam|contaminated|{lang}"] += 1
        return False, "contaminated"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        self.index = BenchmarkIndex(self.index_file)
        yield from self._filtered(data, rank)
        (self.work_dir / "counts").mkdir(parents=True, exist_ok=True)
        write_text(self.work_dir / "counts" / f"{rank:05d}.json", json.dumps(self.counts))
        (self.work_dir / "matches").mkdir(parents=True, exist_ok=True)
        write_text(
            self.work_dir / "matches" / f"{rank:05d}.jsonl",
            "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in self.matches),
        )

    def _filtered(self, data: DocumentsPipeline, rank: int) -> Iterator[Document]:
        """BaseFilter.run with datatrove's counters updated once per batch (batch_stats: the same totals);
        one update per document cost a fifth of the phase."""
        with self.exclusion_writer or contextlib.nullcontext() as writer:
            for batch in batched(data, self.BATCH):
                with self.track_time("batch"):
                    results = self.filter_batch(batch)
                kept = [doc for doc, keep in zip(batch, results) if keep is True]
                for doc, result in zip(batch, results):
                    if result is not True and writer:
                        doc.metadata["filter_reason"] = "contaminated"
                        writer.write(doc, rank)
                dropped = len(batch) - len(kept)
                counts = Counter(batches=1, dropped_contaminated=dropped)
                counts.update(
                    {StatHints.total: len(batch), StatHints.forwarded: len(kept), StatHints.dropped: dropped}
                )
                batch_stats(self, counts, kept)
                yield from kept


def run_decontam(
    in_dir: Path,
    out_dir: Path,
    cfg: DecontamConfig,
    workers: int = 1,
    engine: Engine = "local",
    tasks: int | None = None,
) -> PhaseResult:
    """Filter every document under `in_dir` into `out_dir`; writes `NAME.work/report.md` and `matches.jsonl`."""
    tasks = tasks or len(input_files(in_dir))
    work = work_dir_for(out_dir)
    reset_if_changed(in_dir, out_dir, [to_dict(cfg), tasks])
    index = index_path(cfg)
    with np.load(index) as z:  # the report's figures only: the lookup tables are built in the ranks
        index_info = {"items": len(z["item_ids"]), "unchecked_short_items": int(z["unchecked"][0])}
    removed = shard_writer(work / "removed")
    execute(
        [
            reader(in_dir),
            DecontamFilter(index, work, cfg, exclusion_writer=removed),
            shard_writer(out_dir, text_bytes=True),
        ],
        tasks,
        workers,
        work / "logs",
        engine,
        label="decontam",
        total_bytes=input_size(in_dir),
    )
    matches = sorted(
        (
            json.loads(line)
            for f in sorted((work / "matches").glob("*.jsonl"))
            for line in f.open(encoding="utf-8")
        ),
        key=lambda m: m["id"],
    )
    write_text(work / "matches.jsonl", "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in matches))
    write_text(work / "report.md", _report(cfg, index_info, matches))
    kept, dropped = collect_counts(work)
    examples: dict[str, list[str]] = {}
    for m in matches:
        shown = examples.setdefault(example_key("decontam", "contaminated", m["lang"]), [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(f"{m['id']} ~ {m['items'][0]}")
    return PhaseResult(kept, dropped, work, examples)


def _report(cfg: DecontamConfig, info: dict[str, int], matches: list[dict]) -> str:
    lines = [
        "# Decontamination report",
        "",
        f"{info['items']:,} benchmark items from {', '.join(b.name for b in cfg.benchmarks) or 'none'}; "
        f"{cfg.ngram}-unit overlap; {info['unchecked_short_items']:,} items shorter than "
        f"{cfg.min_item_units} units not checked. Action: {cfg.action}.",
        "",
        f"{len(matches):,} contaminated documents.",
        "",
        "| document | lang | n-gram hits | benchmark items |",
        "|---|---|---:|---|",
    ]
    lines += [
        f"| `{m['id']}` | {m['lang']} | {m['ngrams']} | {', '.join(m['items'])}"
        f"{' …' if m['n_items'] > len(m['items']) else ''} |"
        for m in matches
    ]
    return "\n".join(lines) + "\n"
