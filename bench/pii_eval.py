"""Precision and recall of gecko.data.steps.pii per type on the planted set of bench/pii_gen.py.

    python bench/pii_gen.py --out /tmp/pii_cases.jsonl
    python bench/pii_eval.py /tmp/pii_cases.jsonl [--misses 5] [--speed]

The cases were generated from public format specifications, apart from the rules (see pii_gen.py). A planted
PII value counts as found when every letter and digit of it lies inside a span `find()` reports (of any
type: what matters is that it is gone); its type is checked separately. A look-alike is kept when no
letter or digit of it is inside a span. A reported span that overlaps no planted PII is a false positive of
its type when it touches planted material (a look-alike, a template); inside the real carrier text it is
counted apart (that text may hold real PII, e.g. authors' e-mails in the Python docs): listed for reading.
`--speed` times `scrub` (CPU time, best of 3) on 6.5 MB of real Korean and English text from ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from gecko.data.steps.pii import PII_TYPES, find, scrub

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GEN_TO_RULE = {"driver": "driver_license", "bank": "bank_account"}


def covered(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> tuple[int, int]:
    """(alphanumeric characters of text[start:end] inside some span, alphanumeric characters in all)."""
    inside = total = 0
    for i in range(start, end):
        if text[i].isalnum():
            total += 1
            inside += any(s <= i < e for s, e in spans)
    return inside, total


def evaluate(cases: list[dict], split: str) -> tuple[dict, dict, list]:
    tp, fn, fp, wrong_type = Counter(), Counter(), Counter(), Counter()
    kept, look, carrier_hits, carrier_chars = Counter(), Counter(), Counter(), 0
    misses: dict[str, list[str]] = defaultdict(list)
    for case in (c for c in cases if c["split"] == split):
        text = case["text"]
        found = find(text)
        spans = [(f.start, f.end) for f in found]
        gold = [s for s in case["spans"] if s["label"] == "pii"]
        for s in case["spans"]:
            if s["label"] == "carrier":
                continue
            kind = GEN_TO_RULE.get(s["kind"], s["kind"])
            inside, total = covered(text, s["start"], s["end"], spans)
            value = text[s["start"]:s["end"]]
            if s["label"] == "pii":
                if inside == total:
                    tp[kind] += 1
                    types = {f.kind for f in found if f.start < s["end"] and s["start"] < f.end}
                    wrong_type[kind] += kind not in types
                else:
                    fn[kind] += 1
                    misses[kind].append(f"{value!r} ({s['variant']}, cue={s['cue']}, {case['family']})")
            else:
                look[kind] += 1
                kept[kind] += inside == 0
                if inside:
                    misses["lookalike:" + kind].append(f"{value!r} ({s['variant']}, {case['family']})")
        carriers = [s for s in case["spans"] if s["label"] == "carrier"]
        for f in found:
            if any(f.start < g["end"] and g["start"] < f.end for g in gold):
                continue
            where = "carrier" if any(c["start"] <= f.start and f.end <= c["end"] for c in carriers) else "fp"
            (carrier_hits if where == "carrier" else fp)[f.kind] += 1
            misses[f"{where}:{f.kind}"].append(repr(text[max(0, f.start - 25):f.end + 10]))
        carrier_chars += sum(c["end"] - c["start"] for c in carriers)
    return ({"tp": tp, "fn": fn, "fp": fp, "wrong_type": wrong_type, "carrier": carrier_hits,
             "carrier_chars": carrier_chars}, {"kept": kept, "n": look}, misses)


def table(pii: dict, look: dict) -> str:
    tp, fn, fp, wt = pii["tp"], pii["fn"], pii["fp"], pii["wrong_type"]
    rows = ["| type | planted | found | missed | false pos. | precision | recall | other type |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in PII_TYPES:
        p = tp[kind] / max(tp[kind] + fp[kind], 1)
        r = tp[kind] / max(tp[kind] + fn[kind], 1)
        rows.append(f"| {kind} | {tp[kind] + fn[kind]} | {tp[kind]} | {fn[kind]} | {fp[kind]} | {p:.3f} "
                    f"| {r:.3f} | {wt[kind]} |")
    T, N, F = sum(tp.values()), sum(fn.values()), sum(fp.values())
    rows.append(f"| **all** | {T + N} | {T} | {N} | {F} | {T / max(T + F, 1):.3f} "
                f"| {T / max(T + N, 1):.3f} | {sum(wt.values())} |")
    hits = pii["carrier"]
    reported = ", ".join(f"{k} {v}" for k, v in hits.most_common()) or "nothing"
    rows.append(f"\nIn {pii['carrier_chars']:,} characters of real carrier text (unlabelled, may hold real "
                f"PII): {reported} reported.")
    kept, n = look["kept"], look["n"]
    rows.append("\n| look-alike | planted | kept |\n|---|---:|---:|")
    rows += [f"| {k} | {n[k]} | {kept[k] / n[k]:.3f} |" for k in sorted(n)]
    rows.append(f"| **all** | {sum(n.values())} | {sum(kept.values()) / max(sum(n.values()), 1):.3f} |")
    return "\n".join(rows)


def real_text(limit: int = 4_000_000) -> list[str]:
    """About `limit` characters of real documents: half Korean (petitions, Wikipedia), half English docs."""
    texts: list[str] = []
    for path, key in ((DATA / "corpus/ko/petitions/petitions_2019-06", "content"),
                      (DATA / "corpus/ko/kowiki/kowiki.jsonl", "text"),
                      (DATA / "corpus/en/debian_docs/debian_docs_en.jsonl", "text")):
        size = 0
        with path.open(encoding="utf-8") as f:
            for line in f:
                texts.append(json.loads(line)[key])
                size += len(texts[-1])
                if size > limit // 3:
                    break
    return texts


def speed() -> str:
    """Best of 3 in CPU time (a fair per-core figure on a shared, throttled machine) and in wall time."""
    texts = real_text()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    cpu = wall = float("inf")
    for _ in range(3):
        c0, w0 = time.process_time(), time.perf_counter()
        n = sum(sum(scrub(t)[1].values()) for t in texts)
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return (f"scrub: {mb:.1f} MB of real text: {mb / cpu:.1f} MB/s per CPU-second, {mb / wall:.1f} MB/s wall "
            f"({n} spans)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", type=Path)
    ap.add_argument("--misses", type=int, default=5, 
                    help="examples of misses/false positives to print per type")
    ap.add_argument("--speed", action="store_true")
    args = ap.parse_args()
    cases = [json.loads(line) for line in args.cases.open(encoding="utf-8")]
    for split in ("tune", "heldout"):
        pii, look, misses = evaluate(cases, split)
        print(f"\n## {split}\n\n{table(pii, look)}")
        for key, examples in sorted(misses.items()):
            if args.misses:
                print(f"\n{key} ({len(examples)}): " + "; ".join(examples[:args.misses]))
    if args.speed:
        print("\n" + speed())


if __name__ == "__main__":
    main()
