"""Recall and false positives of GECKO's MinHash dedup on Korean near-duplicates it did not make.

    .venv/bin/python bench/ko_dedup_eval.py [--per-source 150] [--threshold 0.8] [--english] [--json out.json]

Originals are real Korean documents from ../shared/data/corpus/ko (Wikipedia, statutes, court precedents,
petitions, public-domain novels, Korean Python docs with code blocks, long NSMC reviews and news comments),
each cut to at most 3,000 characters at a line end. Every original gets one near-copy from
bench/ko_neardup_gen.py (which imports nothing from gecko), the edit kind taken in turn. Records go out
without a `lang` field and are deduplicated with `run_dedup(..., lang="auto")`, as `gecko data dedup` does
by default, so language detection is part of what is measured.

Recall of a kind: copies that end in their original's cluster. A false positive: a document dropped as a
duplicate of a document of another family (two different originals, or their copies); each is listed with
an independent similarity (difflib ratio of the two texts with whitespace removed after NFKC), so a real
near-duplicate pair inside the corpus can be told from a dedup error.

`--english`: the same on 300 each of the Python and Debian manuals (../shared/data/corpus/en) with the edits
that apply to English (ko_neardup_gen.ENGLISH_KINDS), no hard negatives.

Hard negatives, deduplicated on their own with no copies: short real texts (NSMC reviews of ≥ 30
characters) and statute articles (one `제N조` each: the same legal templates over and over). Every drop
there is either a real near-duplicate in the corpus (similarity ≥ 0.8) or a false positive.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import random
import re
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ko_neardup_gen  # the generator lives beside this script, apart from gecko

from gecko.config import DedupConfig
from gecko.data.phase import PhaseResult
from gecko.data.steps.dedup.run import run_dedup

KO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "ko"
MAX_CHARS = 3000


def _jsonl(path: Path, field: str = "text") -> list[str]:
    return [json.loads(line)[field] for line in path.open(encoding="utf-8")]


def _cut(text: str) -> str:
    """At most MAX_CHARS characters, ending at a line end where there is one."""
    if len(text) <= MAX_CHARS:
        return text
    head = text[:MAX_CHARS]
    return head[: head.rfind("\n")] if "\n" in head[MAX_CHARS // 2:] else head


def english_sources() -> dict[str, list[str]]:
    """The Python and Debian manuals of ../shared/data/corpus/en (≥ 300 characters, cut as above)."""
    en = KO.parent / "en"
    return {name.split("/")[0]: [_cut(t) for t in _jsonl(en / name) if len(t) >= 300]
            for name in ("python_docs/python311_docs_rst.jsonl", "debian_docs/debian_docs_en.jsonl")}


def sources() -> dict[str, list[str]]:
    """Texts per source, long ones (≥ 300 characters) except the two short-text sources (≥ 100)."""
    with (KO / "nsmc/nsmc_raw_reviews.tsv").open(encoding="utf-8") as f:
        nsmc = [r["review"] or "" for r in csv.DictReader(f, delimiter="\t")]
    comments = (KO / "news_comments/unlabeled_comments_5.txt").read_text(encoding="utf-8").splitlines()
    petitions = [t for p in sorted((KO / "petitions").glob("petitions_*")) for t in _jsonl(p, "content")]
    long_ = {"kowiki": _jsonl(KO / "kowiki/kowiki.jsonl"), "statutes": _jsonl(KO / "statutes/kr_statutes.jsonl"),
             "precedents": _jsonl(KO / "precedents/kr_precedents.jsonl"), "petitions": petitions,
             "novels": _jsonl(KO / "novels/ko_pd_novels.jsonl"),
             "python_docs_ko": _jsonl(KO / "python_docs_ko/python_docs_ko.jsonl")}
    out = {name: [_cut(t) for t in texts if len(t) >= 300] for name, texts in long_.items()}
    out["nsmc_100+"] = [t for t in nsmc if len(t) >= 100]
    out["comments_100+"] = [t for t in comments if len(t) >= 100]
    return out


def build(per_source: int, seed: int, english: bool = False) -> tuple[list[dict], dict[str, str]]:
    """Originals and one copy each; returns the records and each copy's kind by id."""
    rng = random.Random(seed)
    originals = []
    kinds_in_turn = ko_neardup_gen.ENGLISH_KINDS if english else ko_neardup_gen.KINDS
    for name, texts in (english_sources() if english else sources()).items():
        seen: set[str] = set()
        for t in rng.sample(texts, min(per_source * 2, len(texts))):
            if t not in seen and len(seen) < per_source:  # no exact duplicates among the originals
                seen.add(t)
                originals.append({"id": f"{name}:{len(seen)}", "text": t, "source": name})
    kinds, records = {}, []
    for i, o in enumerate(originals):
        kind = kinds_in_turn[i % len(kinds_in_turn)]
        donor = originals[rng.randrange(len(originals))]["text"]
        copy = ko_neardup_gen.perturb(o["text"], kind, rng, donor, kinds_in_turn)
        cid = f"{o['id']}~{kind}"
        kinds[cid] = kind
        records += [o, {"id": cid, "text": copy, "source": o["source"]}]
    rng.shuffle(records)
    return records, kinds


def negatives(n: int, seed: int) -> list[dict]:
    """Distinct real short reviews and statute articles, `n` of each."""
    rng = random.Random(seed)
    with (KO / "nsmc/nsmc_raw_reviews.tsv").open(encoding="utf-8") as f:
        reviews = sorted({r["review"] for r in csv.DictReader(f, delimiter="\t") if len(r["review"] or "") >= 30})
    articles = sorted({a.strip() for law in _jsonl(KO / "statutes/kr_statutes.jsonl")
                       for a in re.split(r"\n(?=제\d+조)", law) if len(a.strip()) >= 100})
    picked = [("nsmc", t) for t in rng.sample(reviews, n)] + [("article", t) for t in rng.sample(articles, n)]
    return [{"id": f"{name}:{i}", "text": t, "source": name} for i, (name, t) in enumerate(picked)]


def family(doc_id: str) -> str:
    return doc_id.split("~")[0]


def similarity(a: str, b: str) -> float:
    def squeeze(t: str) -> str:
        return "".join(unicodedata.normalize("NFKC", t).split())
    return difflib.SequenceMatcher(None, squeeze(a), squeeze(b), autojunk=False).ratio()


def dedup(records: list[dict], cfg: DedupConfig) -> tuple[list[dict], PhaseResult, float]:
    """duplicates.jsonl rows, the PhaseResult and seconds of `run_dedup` on the records (2 files, no lang)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for s in range(2):
            with (src / f"{s}.jsonl").open("w", encoding="utf-8") as f:
                f.writelines(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n"
                             for r in records[s::2])
        t = time.monotonic()
        result = run_dedup(src, Path(tmp) / "out", cfg, lang="auto")
        seconds = time.monotonic() - t
        rows = [json.loads(line) for line in (result.work_dir / "duplicates.jsonl").open(encoding="utf-8")]
    return rows, result, seconds


def hard_negatives(records: list[dict], cfg: DedupConfig) -> dict:
    """Drops among documents that have no planted copy, by independent similarity."""
    rows, _, _ = dedup(records, cfg)
    text = {r["id"]: r["text"] for r in records}
    sims = [similarity(text[r["id"]], text[r["duplicate_of"]]) for r in rows]
    low = [(text[r["id"]], text[r["duplicate_of"]]) for r, s in zip(rows, sims) if s < 0.8]
    return {"documents": len(records), "dropped": len(rows), "similarity_>=0.8": sum(s >= 0.8 for s in sims),
            "similarity_0.6-0.8": sum(0.6 <= s < 0.8 for s in sims), "similarity_<0.6": sum(s < 0.6 for s in sims),
            "false_positive_rate": round(len(low) / len(records), 4), "examples_below_0.8": low[:5]}


def evaluate(records: list[dict], kinds: dict[str, str], cfg: DedupConfig) -> dict:
    dup_rows, result, seconds = dedup(records, cfg)
    survivor = {r["id"]: r["duplicate_of"] for r in dup_rows}
    text = {r["id"]: r["text"] for r in records}
    source = {r["id"]: r["source"] for r in records}
    found, total, missed_close = Counter(), Counter(), Counter()
    by_source = Counter()
    for cid, kind in kinds.items():
        total[kind] += 1
        hit = survivor.get(cid, cid) == survivor.get(family(cid), family(cid))
        found[kind] += hit
        if not hit:
            missed_close[kind] += similarity(text[cid], text[family(cid)]) >= 0.9
        by_source[(source[cid], hit)] += 1
    cross = [{"id": r["id"], "duplicate_of": r["duplicate_of"],
              "similarity": round(similarity(text[r["id"]], text[r["duplicate_of"]]), 3)}
             for r in dup_rows if family(r["id"]) != family(r["duplicate_of"])]
    n_orig = len(records) - len(kinds)
    return {
        "threshold": cfg.threshold, "shingle_ko": cfg.shingle_ko, "documents": len(records), "originals": n_orig,
        "seconds": round(seconds, 1),
        "recall": {k: [found[k], total[k], round(found[k] / total[k], 3)] for k in total},
        "missed_with_similarity_>=0.9": dict(missed_close),
        "recall_overall": round(sum(found.values()) / sum(total.values()), 4),
        "recall_by_source": {s: round(by_source[(s, True)] / (by_source[(s, True)] + by_source[(s, False)]), 3)
                             for s in sorted({s for s, _ in by_source})},
        "cross_family_drops": cross,
        "false_positive_rate": round(sum(c["similarity"] < 0.8 for c in cross) / n_orig, 4),
        "langs_kept": dict(result.kept), "dropped": {"/".join(k): n for k, n in result.dropped.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-source", type=int, default=150)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--shingle-ko", type=int, help="default: DedupConfig's")
    ap.add_argument("--negatives", type=int, default=3000, help="hard negatives of each kind (Korean only)")
    ap.add_argument("--english", action="store_true", help="English manuals and the edits that apply to them")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    records, kinds = build(args.per_source, args.seed, args.english)
    cfg = DedupConfig(threshold=args.threshold, **({"shingle_ko": args.shingle_ko} if args.shingle_ko else {}))
    report = evaluate(records, kinds, cfg)
    if not args.english:
        report["hard_negatives"] = hard_negatives(negatives(args.negatives, args.seed), cfg)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
