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

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from gecko.config import DataConfig
from gecko.data.corpus import CorpusRecord, write_jsonl
from gecko.data.stats import DataStats
from gecko.errors import DataError
from gecko.io.atomic import write_json, write_text
from gecko.io.jsonl import json_records

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
    return max(1, round(len(text.encode("utf-8")) / bytes_per_token.get(lang, DEFAULT_BYTES_PER_TOKEN)))


def group_of(doc: CorpusRecord) -> str:
    return ALIGN if doc.source.startswith(ALIGN + "/") else doc.lang


def target_shares(cfg: DataConfig, has_align: bool) -> dict[str, float]:
    align = cfg.align.share if has_align else 0.0
    shares = {lang: s * (1 - align) for lang, s in cfg.mix.items()}
    if align > 0:
        shares[ALIGN] = align
    return shares


def read_datatrove_dir(folder: Path) -> list[CorpusRecord]:
    """GECKO documents from datatrove JSONL shards ({"text","id","metadata":{lang, source, …}})."""
    docs = []
    for path in sorted(folder.glob("*.jsonl*")):
        for lineno, r in json_records(path):
            try:
                meta = dict(r.get("metadata") or {})
                docs.append(CorpusRecord(r["id"], r["text"], meta.pop("lang"), meta.pop("source"), meta))
            except (KeyError, TypeError) as e:
                raise DataError(
                    f"{path}:{lineno}: not a datatrove record with metadata lang/source ({e})"
                ) from None
    return docs


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


Sized = tuple[CorpusRecord, int]
"""A document with its estimated tokens. Documents are handled as objects, never looked up by id: ids come
from the input and need not be unique (one manual ships two files under the same name)."""


def take(docs: list[Sized], epochs: float, seed: int) -> list[Sized]:
    """floor(epochs) whole passes, then a hash-ordered prefix until the fractional part's tokens."""
    whole, frac = int(epochs), epochs - int(epochs)
    out = [d for _ in range(whole) for d in docs]
    want, got = frac * sum(t for _, t in docs), 0
    for d in sorted(docs, key=lambda d: (_key(seed, d[0].id), d[0].id, d[0].text)):
        if got >= want:
            break
        out.append(d)
        got += d[1]
    return out


def _slot_name(group: str, source: str, groups_of_source: dict[str, set[str]]) -> str:
    """A source is mixed per group: NSMC's English reviews follow the English budget, its Korean ones the
    Korean budget."""
    return source if len(groups_of_source[source]) == 1 else f"{source} ({group})"


def mix_documents(
    cfg: DataConfig, docs: list[CorpusRecord], stats: DataStats, seed: int
) -> tuple[list[CorpusRecord], MixReport]:
    """Choose (and repeat) documents to the target shares; every unchosen document is counted as dropped."""
    slots: dict[tuple[str, str], list[Sized]] = defaultdict(list)  # (group, source) → documents
    for d in docs:
        slots[group_of(d), d.source].append((d, estimate_tokens(d.text, d.lang, cfg.bytes_per_token)))
    group_tokens: dict[str, dict[str, int]] = defaultdict(dict)
    for (g, source), sdocs in slots.items():
        group_tokens[g][source] = sum(t for _, t in sdocs)
    shares = target_shares(cfg, ALIGN in group_tokens)
    for g, share in shares.items():
        if share > 0 and not group_tokens.get(g):
            raise DataError(f"mix: target share of {g} is {share:.2f} but no {g} document is left to mix")
    cap = 1 + cfg.max_repeat
    weights = {s: min(cap, cfg.source_weights.get(s, 1.0)) for _, s in slots}
    capacity = {
        g: int(sum(t * cap for s, t in srcs.items() if weights[s] > 0)) for g, srcs in group_tokens.items()
    }
    plan = plan_mix(capacity, shares, max_repeat=0)
    epochs: dict[tuple[str, str], float] = {}
    for g, srcs in group_tokens.items():
        budget = plan.budget.get(g, 0)
        scaled = _scale(srcs, weights, cap, budget) if budget > 0 else {s: 0.0 for s in srcs}
        epochs.update({(g, s): e for s, e in scaled.items()})
    mixed: list[Sized] = []
    for slot, sdocs in sorted(slots.items()):
        chosen = take(sdocs, epochs[slot], seed)
        times = Counter(id(d) for d, _ in chosen)
        for d, _ in sdocs:
            if times[id(d)] == 0:
                stats.drop("mix", "mix_downsample", d.lang, d.id)
            stats.repeated[d.lang] += max(0, times[id(d)] - 1)
        for d, _ in chosen:
            stats.kept[d.lang] += 1
            stats.kept_bytes[d.lang] += len(d.text.encode("utf-8"))
        mixed.extend(chosen)
    copies: Counter[int] = Counter()
    keyed = []
    for d, t in mixed:  # a repeated document's copies land at independent places
        copies[id(d)] += 1
        keyed.append((_key(seed, f"{d.id}\x1e{copies[id(d)]}"), d.id, copies[id(d)], d.text, d, t))
    keyed.sort(key=lambda k: k[:4])
    achieved: Counter[str] = Counter()
    for *_, d, t in keyed:
        achieved[group_of(d)] += t
    total = sum(achieved.values()) or 1
    groups_of_source: dict[str, set[str]] = defaultdict(set)
    for g, source in slots:
        groups_of_source[source].add(g)
    report = MixReport(
        shares,
        {g: achieved[g] / total for g in shares},
        dict(achieved),
        {_slot_name(g, s, groups_of_source): round(e, 6) for (g, s), e in epochs.items()},
        len(keyed),
    )
    return [k[4] for k in keyed], report


def run_mix(in_dirs: list[Path], out_path: Path, cfg: DataConfig, seed: int, stats: DataStats) -> MixReport:
    """Mix the documents of datatrove folders `in_dirs` into GECKO's corpus.jsonl at `out_path`."""
    docs = [d for folder in in_dirs if folder.exists() for d in read_datatrove_dir(folder)]
    mixed, report = mix_documents(cfg, docs, stats, seed)
    write_jsonl(mixed, out_path)
    report.write(out_path.parent)
    return report
