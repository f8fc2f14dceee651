"""The mix's choice: how many copies of each document the corpus holds, from arrays of what the scan found
(38 bytes a document, no text), so the choice is one process's work whatever the corpus's size.

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

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash

from gecko.config import DataConfig
from gecko.data.stats import MAX_EXAMPLES, DataStats
from gecko.errors import DataError
from gecko.io.atomic import write_json, write_text

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
    return tokens_of(len(text.encode("utf-8")), lang, bytes_per_token)


def tokens_of(nbytes: int, lang: str, bytes_per_token: dict[str, float]) -> int:
    return max(1, round(nbytes / bytes_per_token.get(lang, DEFAULT_BYTES_PER_TOKEN)))


def group_of(lang: str, source: str) -> str:
    return ALIGN if source.startswith(ALIGN + "/") else lang


def target_shares(cfg: DataConfig, has_align: bool) -> dict[str, float]:
    align = cfg.align.share if has_align else 0.0
    shares = {lang: s * (1 - align) for lang, s in cfg.mix.items()}
    if align > 0:
        shares[ALIGN] = align
    return shares


def order_key(seed: int, doc_id: str) -> int:
    """The seeded hash that orders a source's documents (its id) and the corpus (its id and copy number)."""
    return xxhash.xxh3_64_intdigest(f"{seed}\x1f{doc_id}".encode())


SCAN_ROW = np.dtype(
    [("slot", "<i4"), ("lang", "<i2"), ("nbytes", "<i8"), ("key", "<u8"), ("tiebreak", "<u8")]
)
"""One document as a scan rank saves it (its rank's own slot and language numbers)."""


@dataclass
class Scan:
    """What the choice needs, one array row per document in reading order (38 bytes), so memory grows by
    bytes per document rather than with the corpus's text."""

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

    @classmethod
    def merge(
        cls,
        parts: list[tuple[np.ndarray, list[tuple[str, str]], list[str]]],
        bytes_per_token: dict[str, float],
    ) -> Scan:
        """The scan of the whole input from each rank's (rows, slot names, language names), in reading order:
        numbered by first appearance over the ranks in order, as one pass over the whole input numbers them."""
        slot_ids: dict[tuple[str, str], int] = {}
        lang_ids: dict[str, int] = {}
        slot, lang = [], []
        for rows, slots, langs in parts:
            slot_map = np.array([slot_ids.setdefault(s, len(slot_ids)) for s in slots], dtype=np.int32)
            lang_map = np.array([lang_ids.setdefault(g, len(lang_ids)) for g in langs], dtype=np.int16)
            slot.append(slot_map[rows["slot"]])
            lang.append(lang_map[rows["lang"]])
        slot_, lang_ = _joined(slot, np.int32), _joined(lang, np.int16)
        nbytes, key, tiebreak = (
            _joined([rows[name] for rows, _, _ in parts], SCAN_ROW[name])
            for name in ("nbytes", "key", "tiebreak")
        )
        tokens = token_counts(nbytes, lang_, list(lang_ids), bytes_per_token)
        return cls(list(slot_ids), list(lang_ids), slot_, lang_, nbytes, tokens, key, tiebreak)


def _joined(arrays: list[np.ndarray], dtype: np.dtype | type) -> np.ndarray:
    """The arrays end to end, as an array of its own: a field of the ranks' rows (a view) would keep all
    their bytes alive."""
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def token_counts(
    nbytes: np.ndarray, lang: np.ndarray, langs: list[str], bytes_per_token: dict[str, float]
) -> np.ndarray:
    """tokens_of every document at once: np.rint rounds half to even as round() does, on the same float64
    quotients."""
    ratio = np.array([bytes_per_token.get(g, DEFAULT_BYTES_PER_TOKEN) for g in langs], dtype=np.float64)
    return np.maximum(np.rint(nbytes / ratio[lang]), 1).astype(np.int64)


@dataclass
class Slot:
    """One (group, source) slot's choice."""

    members: np.ndarray
    """Its documents' indices in reading order."""
    copies: np.ndarray
    """Copies of each member in the corpus (0: dropped as `mix_downsample`)."""
    whole: int
    """Whole passes over the members."""
    prefix: np.ndarray
    """Positions in `members` of the fractional epoch's documents, in the order they were taken."""


def _take(scan: Scan, members: np.ndarray, epochs: float) -> Slot:
    """floor(epochs) whole passes, then a key-ordered prefix until the fractional part's tokens."""
    whole, frac = int(epochs), epochs - int(epochs)
    tokens = scan.tokens[members]
    order = np.lexsort((scan.tiebreak[members], scan.key[members]))
    before = np.cumsum(tokens[order]) - tokens[order]
    prefix = order[: int(np.searchsorted(before, frac * int(tokens.sum()), side="left"))]
    copies = np.full(len(members), whole, dtype=np.int64)
    copies[prefix] += 1
    return Slot(members, copies, whole, prefix)


def _scale(tokens: dict[str, int], weights: dict[str, float], cap: float, budget: float) -> dict[str, float]:
    """Epochs min(cap, f × weight) per source, f found by bisection so they sum to `budget` tokens."""

    def filled(f: float) -> float:
        return sum(t * min(cap, f * weights[s]) for s, t in tokens.items())

    lo, hi = 0.0, cap / min(w for w in weights.values() if w > 0)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filled(mid) < budget else (lo, mid)
    return {s: min(cap, hi * weights[s]) for s in tokens}


def _epochs(scan: Scan, cfg: DataConfig) -> dict[tuple[str, str], float]:
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


@dataclass
class Choice:
    epochs: dict[tuple[str, str], float]
    slots: list[Slot]
    """Every slot's choice, slots in order of name (the ledger's order)."""
    copies: np.ndarray
    """Copies of each document in the corpus, in reading order."""
    examples: dict[int, str]
    """Document index → id (filled by the writing ranks) of the first MAX_EXAMPLES drops per language."""


def choose(scan: Scan, cfg: DataConfig) -> Choice:
    epochs = _epochs(scan, cfg)
    slots = [
        _take(scan, np.flatnonzero(scan.slot == s), epochs[scan.slots[s]])
        for s in sorted(range(len(scan.slots)), key=lambda s: scan.slots[s])
    ]
    copies = np.zeros(len(scan.slot), dtype=np.int64)
    for slot in slots:
        copies[slot.members] = slot.copies
    return Choice(epochs, slots, copies, _examples_wanted(scan, slots))


def _in_first_seen_order(values: np.ndarray) -> list[int]:
    unique, first = np.unique(values, return_index=True)
    return [int(v) for v in unique[np.argsort(first)]]


def _examples_wanted(scan: Scan, slots: list[Slot]) -> dict[int, str]:
    """The first MAX_EXAMPLES drops per language in the ledger's order: slots by name, then reading order."""
    wanted: dict[int, str] = {}
    left: Counter[int] = Counter({lang: MAX_EXAMPLES for lang in range(len(scan.langs))})
    for slot in slots:
        for i in slot.members[slot.copies == 0]:
            if left[int(scan.lang[i])] > 0:
                left[int(scan.lang[i])] -= 1
                wanted[int(i)] = ""
    return wanted


def record_in_ledger(scan: Scan, choice: Choice, stats: DataStats) -> None:
    """Counts and examples in the order one document at a time would add them (slot by slot: drops and
    repeats in reading order, then the kept copies in the order taken), so stats.json keeps its key order."""
    for slot in choice.slots:
        langs = scan.lang[slot.members]
        dropped = slot.copies == 0
        for lang in _in_first_seen_order(langs[dropped]):
            mine = slot.members[dropped & (langs == lang)]
            shown = [choice.examples[int(i)] for i in mine if int(i) in choice.examples]
            stats.drop_many("mix", "mix_downsample", scan.langs[lang], len(mine), shown)
        for lang in _in_first_seen_order(langs):
            stats.repeated[scan.langs[lang]] += int(np.maximum(slot.copies[langs == lang] - 1, 0).sum())
        taken = slot.prefix if slot.whole == 0 else np.arange(len(slot.members))
        for lang in _in_first_seen_order(langs[taken]):
            mine = langs == lang
            stats.kept[scan.langs[lang]] += int(slot.copies[mine].sum())
            nbytes = scan.nbytes[slot.members[mine]]
            stats.kept_bytes[scan.langs[lang]] += int((nbytes * slot.copies[mine]).sum())


def _slot_name(group: str, source: str, groups_of_source: dict[str, set[str]]) -> str:
    """A source is mixed per group: NSMC's English reviews follow the English budget, its Korean ones the
    Korean budget."""
    return source if len(groups_of_source[source]) == 1 else f"{source} ({group})"


def mix_report(cfg: DataConfig, scan: Scan, choice: Choice, achieved: Counter[str]) -> MixReport:
    """The report of a written mix; `achieved`: estimated tokens per group, counted in corpus order."""
    shares = target_shares(cfg, ALIGN in {g for g, _ in scan.slots})
    total = sum(achieved.values()) or 1
    groups_of_source: dict[str, set[str]] = defaultdict(set)
    for g, source in scan.slots:
        groups_of_source[source].add(g)
    return MixReport(
        shares,
        {g: achieved[g] / total for g in shares},
        dict(achieved),
        {_slot_name(g, s, groups_of_source): round(e, 6) for (g, s), e in choice.epochs.items()},
        int(choice.copies.sum()),
    )
