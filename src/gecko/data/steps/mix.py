"""Mixing to target shares of tokens (default ko 35 / en 28 / code 37), deterministic given the seed.

Tokens are estimated before any tokenizer exists as UTF-8 bytes / `data.bytes_per_token[lang]`: a fixed
per-language ratio, measured once with the demo's BPE (docs/dedup.md). A sampling tokenizer was rejected
because the corpus would then depend on a throwaway tokenizer; the ratio is deterministic, costs nothing and
only its ratio *between* languages matters for shares.

Groups are the languages plus `align` (translation documents, share `data.align.share`; the language shares
fill the rest in proportion). Within a group each source gets epochs = min(1 + max_repeat, f × weight), with
f solved so the group meets its budget; the scarcest group sets the corpus size. An epoch's fraction is a
prefix of the source's documents ordered by a seeded hash of their ids, so the choice depends on the
documents only (not on file order or worker count). A document never chosen is dropped as `mix_downsample`.
"""

from __future__ import annotations

import json
import shutil
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash
import zstandard

from gecko.config import DataConfig
from gecko.data.corpus import CorpusRecord, read_datatrove_dirs
from gecko.data.stats import MAX_EXAMPLES, DataStats
from gecko.errors import DataError
from gecko.io.atomic import open_atomic, write_json, write_text

DEFAULT_BYTES_PER_TOKEN = 4.0
ALIGN = "align"


@dataclass
class MixPlan:
    budget: dict[str, int]
    """Target size per group (in the unit of the sizes given: estimated tokens)."""
    repeats: dict[str, float]
    """Passes over each group's documents (1.0: each once; below 1: a sample)."""


def plan_mix(sizes: dict[str, int], shares: dict[str, float], max_repeat: float) -> MixPlan:
    """The largest mix every group can fill with at most 1 + max_repeat passes over its documents."""
    active = {g: s for g, s in shares.items() if s > 0}
    supportable = min(sizes.get(g, 0) * (1 + max_repeat) / s for g, s in active.items())
    budget = {g: int(supportable * s) for g, s in active.items()}
    repeats = {g: budget[g] / sizes[g] for g in active if sizes.get(g)}
    return MixPlan(budget, repeats)


@dataclass
class MixReport:
    target: dict[str, float]
    achieved: dict[str, float]
    tokens: dict[str, int]
    """Estimated tokens per group in the corpus."""
    epochs: dict[str, float]
    """Passes over each source (below 1: down-sampled)."""
    documents: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def write(self, out_dir: Path) -> None:
        write_json(out_dir / "mix.json", self.__dict__)
        lines = [
            "# Mix (estimated tokens)",
            "",
            "| group | tokens | achieved | target |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {g} | {self.tokens.get(g, 0):,} | {self.achieved.get(g, 0):.2%} | {t:.2%} |"
            for g, t in sorted(self.target.items())
        ]
        lines += ["", "| source | epochs |", "|---|---:|"]
        lines += [f"| {s} | {e:.3f} |" for s, e in sorted(self.epochs.items())]
        write_text(out_dir / "mix_report.md", "\n".join(lines) + "\n")


def estimate_tokens(text: str, lang: str, bytes_per_token: dict[str, float]) -> int:
    return _tokens(len(text.encode("utf-8")), lang, bytes_per_token)


def _tokens(nbytes: int, lang: str, bytes_per_token: dict[str, float]) -> int:
    return max(1, round(nbytes / bytes_per_token.get(lang, DEFAULT_BYTES_PER_TOKEN)))


def group_of(doc: CorpusRecord) -> str:
    return ALIGN if doc.source.startswith(ALIGN + "/") else doc.lang


def target_shares(cfg: DataConfig, has_align: bool) -> dict[str, float]:
    align = cfg.align.share if has_align else 0.0
    shares = {lang: s * (1 - align) for lang, s in cfg.mix.items()}
    if align > 0:
        shares[ALIGN] = align
    return shares


def _scale(tokens: dict[str, int], weights: dict[str, float], cap: float, budget: float) -> dict[str, float]:
    """Epochs min(cap, f × weight) per source, f found by bisection so they sum to `budget` tokens."""

    def filled(f: float) -> float:
        return sum(t * min(cap, f * weights[s]) for s, t in tokens.items())

    lo, hi = 0.0, cap / min(w for w in weights.values() if w > 0)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filled(mid) < budget else (lo, mid)
    return {s: min(cap, hi * weights[s]) for s in tokens}


def _key(seed: int, doc_id: str) -> int:
    return xxhash.xxh3_64_intdigest(f"{seed}\x1f{doc_id}".encode())


def _slot_name(group: str, source: str, groups_of_source: dict[str, set[str]]) -> str:
    """A source is mixed per group: NSMC's English reviews follow the English budget, its Korean ones the
    Korean budget."""
    return source if len(groups_of_source[source]) == 1 else f"{source} ({group})"


Documents = Callable[[np.ndarray | None], Iterable[CorpusRecord | None]]
"""The mix's input, read twice: each call must yield the same documents in the same order. The second call
gives `wanted`, a bool per document: one not wanted may come as None, so a reader can skip parsing it (the
first call gives None: every document is wanted). Documents are
never looked up by id: ids come from the input and need not be unique (one manual ships two files under the
same name)."""

BUCKET_BYTES = 32 << 20
"""Chosen text per scratch bucket: the most the writing pass holds in memory at once."""
FLUSH_BYTES = 32 << 20
"""Records buffered before they are appended to their buckets."""


@dataclass
class _Scan:
    """The first pass: what the choice needs, one array row per document in reading order (38 bytes), so
    memory grows by bytes per document rather than with the corpus's text."""

    slots: list[tuple[str, str]]
    """(group, source) of each slot index, in order of first appearance."""
    langs: list[str]
    slot: np.ndarray
    lang: np.ndarray
    nbytes: np.ndarray
    tokens: np.ndarray
    key: np.ndarray
    """The seeded hash of the id: a source's fraction of an epoch is a prefix in this order."""
    tiebreak: np.ndarray
    """A hash of the text, ordering documents that share an id (and so a key)."""


def _scan(documents: Documents, cfg: DataConfig, seed: int) -> _Scan:
    slot_ids: dict[tuple[str, str], int] = {}
    lang_ids: dict[str, int] = {}
    slot, lang, nbytes = array("i"), array("h"), array("q")
    key, tiebreak = array("Q"), array("Q")
    for d in documents(None):
        assert d is not None  # every document is wanted
        raw = d.text.encode("utf-8")
        slot.append(slot_ids.setdefault((group_of(d), d.source), len(slot_ids)))
        lang.append(lang_ids.setdefault(d.lang, len(lang_ids)))
        nbytes.append(len(raw))
        key.append(_key(seed, d.id))
        tiebreak.append(xxhash.xxh3_64_intdigest(raw))
    slots, langs = list(slot_ids), list(lang_ids)
    slot_, lang_, nbytes_, key_, tiebreak_ = (
        np.frombuffer(a, dtype=a.typecode) for a in (slot, lang, nbytes, key, tiebreak)
    )
    tokens = _token_counts(nbytes_, lang_, langs, cfg.bytes_per_token)
    return _Scan(slots, langs, slot_, lang_, nbytes_, tokens, key_, tiebreak_)


def _token_counts(
    nbytes: np.ndarray, lang: np.ndarray, langs: list[str], bytes_per_token: dict[str, float]
) -> np.ndarray:
    """_tokens of every document at once: np.rint rounds half to even as round() does, on the same float64
    quotients."""
    ratio = np.array([bytes_per_token.get(g, DEFAULT_BYTES_PER_TOKEN) for g in langs], dtype=np.float64)
    return np.maximum(np.rint(nbytes / ratio[lang]), 1).astype(np.int64)


@dataclass
class _Slot:
    """One (group, source) slot's choice."""

    members: np.ndarray
    """Its documents' indices in reading order."""
    copies: np.ndarray
    """Copies of each member in the corpus (0: dropped as `mix_downsample`)."""
    whole: int
    """Whole passes over the members."""
    prefix: np.ndarray
    """Positions in `members` of the fractional epoch's documents, in the order they were taken."""


def _take(scan: _Scan, members: np.ndarray, epochs: float) -> _Slot:
    """floor(epochs) whole passes, then a key-ordered prefix until the fractional part's tokens."""
    whole, frac = int(epochs), epochs - int(epochs)
    tokens = scan.tokens[members]
    order = np.lexsort((scan.tiebreak[members], scan.key[members]))
    before = np.cumsum(tokens[order]) - tokens[order]
    prefix = order[: int(np.searchsorted(before, frac * int(tokens.sum()), side="left"))]
    copies = np.full(len(members), whole, dtype=np.int64)
    copies[prefix] += 1
    return _Slot(members, copies, whole, prefix)


def _epochs(scan: _Scan, cfg: DataConfig) -> dict[tuple[str, str], float]:
    """Epochs per slot: the group budgets from the shares, then each group's sources scaled by weight."""
    group_tokens: dict[str, dict[str, int]] = defaultdict(dict)
    per_slot = np.bincount(scan.slot, weights=scan.tokens, minlength=len(scan.slots))
    for s, (g, source) in enumerate(scan.slots):
        group_tokens[g][source] = int(per_slot[s])
    shares = target_shares(cfg, ALIGN in group_tokens)
    for g, share in shares.items():
        if share > 0 and not group_tokens.get(g):
            raise DataError(f"mix: target share of {g} is {share:.2f} but no {g} document is left to mix")
    cap = 1 + cfg.max_repeat
    weights = {s: min(cap, cfg.source_weights.get(s, 1.0)) for _, s in scan.slots}
    capacity = {
        g: int(sum(t * cap for s, t in srcs.items() if weights[s] > 0)) for g, srcs in group_tokens.items()
    }
    plan = plan_mix(capacity, shares, max_repeat=0)
    epochs: dict[tuple[str, str], float] = {}
    for g, srcs in group_tokens.items():
        budget = plan.budget.get(g, 0)
        scaled = _scale(srcs, weights, cap, budget) if budget > 0 else {s: 0.0 for s in srcs}
        epochs.update({(g, s): e for s, e in scaled.items()})
    return epochs


def _in_first_seen_order(values: np.ndarray) -> list[int]:
    unique, first = np.unique(values, return_index=True)
    return [int(v) for v in unique[np.argsort(first)]]


def _example_ids_wanted(scan: _Scan, slots: list[_Slot]) -> dict[int, str]:
    """Document index → id (filled by the writing pass) of the first MAX_EXAMPLES drops per language, in
    the ledger's order: slots by name, then reading order."""
    wanted: dict[int, str] = {}
    left: Counter[int] = Counter({lang: MAX_EXAMPLES for lang in range(len(scan.langs))})
    for slot in slots:
        for i in slot.members[slot.copies == 0]:
            if left[int(scan.lang[i])] > 0:
                left[int(scan.lang[i])] -= 1
                wanted[int(i)] = ""
    return wanted


def _record_in_ledger(scan: _Scan, slots: list[_Slot], example_ids: dict[int, str], stats: DataStats) -> None:
    """Counts and examples in the order one document at a time would add them (slot by slot: drops and
    repeats in reading order, then the kept copies in the order taken), so stats.json keeps its key order."""
    for slot in slots:
        langs = scan.lang[slot.members]
        dropped = slot.copies == 0
        for lang in _in_first_seen_order(langs[dropped]):
            mine = slot.members[dropped & (langs == lang)]
            shown = [example_ids[int(i)] for i in mine if int(i) in example_ids]
            stats.drop_many("mix", "mix_downsample", scan.langs[lang], len(mine), shown)
        for lang in _in_first_seen_order(langs):
            stats.repeated[scan.langs[lang]] += int(np.maximum(slot.copies[langs == lang] - 1, 0).sum())
        taken = slot.prefix if slot.whole == 0 else np.arange(len(slot.members))
        for lang in _in_first_seen_order(langs[taken]):
            mine = langs == lang
            stats.kept[scan.langs[lang]] += int(slot.copies[mine].sum())
            nbytes = scan.nbytes[slot.members[mine]]
            stats.kept_bytes[scan.langs[lang]] += int((nbytes * slot.copies[mine]).sum())


class _Buckets:
    """Scratch files of chosen copies, split by the range of their order key, so each can be sorted alone
    and the sorted buckets concatenated are the whole corpus in order (an external sort)."""

    def __init__(self, folder: Path, count: int) -> None:
        if folder.exists():
            shutil.rmtree(folder)  # the mix's own scratch from a killed run
        folder.mkdir(parents=True)
        self.folder, self.count = folder, count
        self._pending: list[list[bytes]] = [[] for _ in range(count)]
        self._pending_bytes = 0
        self._zstd = zstandard.ZstdCompressor(level=1)  # scratch read once: level 3 cost twice the CPU

    def path(self, b: int) -> Path:
        return self.folder / f"{b:05d}.zst"

    def add(self, order_key: int, record: bytes) -> None:
        self._pending[(order_key * self.count) >> 64].append(record)
        self._pending_bytes += len(record)
        if self._pending_bytes > FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append each bucket's pending records as one zstd frame (frames concatenate)."""
        for b, records in enumerate(self._pending):
            if records:
                with self.path(b).open("ab") as f:
                    f.write(self._zstd.compress(b"".join(records)))
                records.clear()
        self._pending_bytes = 0

    def take(self, b: int) -> bytes:
        """A bucket's records, its file removed (the corpus holds them from here on)."""
        if not self.path(b).exists():
            return b""
        with self.path(b).open("rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
        self.path(b).unlink()
        return data


def _record(order_key: int, copy: int, slot: int, tokens: int, doc: CorpusRecord) -> bytes:
    return b"%d %d %d %d %s\n" % (order_key, copy, slot, tokens, doc.to_json_bytes())


Record = tuple[int, int, int, int, bytes]
"""(order key, copy, slot, estimated tokens, the corpus line)."""


def _sorted_records(data: bytes) -> list[Record]:
    """A bucket's records by (order key, id, copy, text): the key first; documents that share it (they
    share an id) are then ordered by decoding them. Lines stay bytes: a bucket is held about twice."""
    records = [_parse(line) for line in data.split(b"\n")[:-1]]
    records.sort(key=lambda r: r[0])
    start = 0
    while start < len(records):
        end = start + 1
        while end < len(records) and records[end][0] == records[start][0]:
            end += 1
        if end - start > 1:
            records[start:end] = sorted(records[start:end], key=_id_copy_text)
        start = end
    return records


def _parse(line: bytes) -> Record:
    key, copy, slot, tokens, doc = line.split(b" ", 4)
    return int(key), int(copy), int(slot), int(tokens), doc


def _id_copy_text(record: Record) -> tuple[str, int, str]:
    doc = json.loads(record[4])
    return doc["id"], record[1], doc["text"]


def _write_corpus(
    documents: Documents,
    scan: _Scan,
    copies: np.ndarray,
    example_ids: dict[int, str],
    out_path: Path,
    seed: int,
) -> Counter[str]:
    """The second pass: every chosen copy into its bucket, then the buckets sorted one at a time into the
    corpus. Returns estimated tokens per group, counted in corpus order."""
    chosen_bytes = int((scan.nbytes * copies).sum())
    buckets = _Buckets(out_path.parent / "mix.work", max(1, -(-chosen_bytes // BUCKET_BYTES)))
    wanted = copies > 0
    wanted[list(example_ids)] = True
    for i, doc in enumerate(documents(wanted)):
        if doc is None:
            continue
        if i in example_ids:
            example_ids[i] = doc.id
        for copy in range(1, int(copies[i]) + 1):  # a repeated document's copies land at independent places
            order_key = _key(seed, f"{doc.id}\x1e{copy}")
            buckets.add(order_key, _record(order_key, copy, int(scan.slot[i]), int(scan.tokens[i]), doc))
    buckets.flush()
    achieved: Counter[str] = Counter()
    with open_atomic(out_path) as f:
        out = f.buffer  # the lines are UTF-8 already: bytes go straight through (nothing is written to f)
        for b in range(buckets.count):
            for _, _, slot, tokens, line in _sorted_records(buckets.take(b)):
                achieved[scan.slots[slot][0]] += tokens
                out.write(line)
                out.write(b"\n")
    shutil.rmtree(buckets.folder)
    return achieved


def mix_documents(
    cfg: DataConfig, documents: Documents, out_path: Path, stats: DataStats, seed: int
) -> MixReport:
    """Choose (and repeat) documents to the target shares and write them, shuffled, to `out_path`; every
    unchosen document is counted as dropped. Two passes over `documents`; memory per document, not text."""
    scan = _scan(documents, cfg, seed)
    epochs = _epochs(scan, cfg)
    slots = [
        _take(scan, np.flatnonzero(scan.slot == s), epochs[scan.slots[s]])
        for s in sorted(range(len(scan.slots)), key=lambda s: scan.slots[s])
    ]
    copies = np.zeros(len(scan.slot), dtype=np.int64)
    for slot in slots:
        copies[slot.members] = slot.copies
    example_ids = _example_ids_wanted(scan, slots)
    achieved = _write_corpus(documents, scan, copies, example_ids, out_path, seed)
    _record_in_ledger(scan, slots, example_ids, stats)
    shares = target_shares(cfg, ALIGN in {g for g, _ in scan.slots})
    total = sum(achieved.values()) or 1
    groups_of_source: dict[str, set[str]] = defaultdict(set)
    for g, source in scan.slots:
        groups_of_source[source].add(g)
    return MixReport(
        shares,
        {g: achieved[g] / total for g in shares},
        dict(achieved),
        {_slot_name(g, s, groups_of_source): round(e, 6) for (g, s), e in epochs.items()},
        int(copies.sum()),
    )


def run_mix(in_dirs: list[Path], out_path: Path, cfg: DataConfig, seed: int, stats: DataStats) -> MixReport:
    """Mix the documents of datatrove folders `in_dirs` into GECKO's corpus.jsonl at `out_path`."""
    report = mix_documents(cfg, lambda wanted: read_datatrove_dirs(in_dirs, wanted), out_path, stats, seed)
    report.write(out_path.parent)
    return report
