"""MB/s per core of GECKO's cleaning chain next to datatrove's stock Gopher + C4 quality filters, same input.

    .venv/bin/python bench/clean_throughput.py [--mb-per-source 4] [--repeats 3]

Input: the first MB of each Korean and English corpus in ../shared/data (kowiki, petitions, NSMC, statutes,
Python docs, Debian docs), decoded once into memory. Both chains run in this one process (one core) on
fresh copies of the same documents, with no reader or writer, so only the filtering is timed. GECKO's chain
is timed step by step (each step over the whole list, in chain order), in CPU seconds of this process, so
the figure is per core even when other work shares the machine. The two chains alternate, `--repeats` times
each (ours first in odd rounds, datatrove first in even ones), so load from other work hits both alike; the
table gives the median per step and total, with the min-max spread, and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter

from gecko.config import CleanConfig, SourceConfig
from gecko.data.steps.quality import QualityFilter
from gecko.data.steps.langid import LanguageFilter
from gecko.data.steps.normalize import Normalize
from gecko.data.steps.pii import PiiScrubber
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import iter_records
from gecko.data.steps.toxicity import ToxicityFilter

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"
SOURCES = [
    SourceConfig("kowiki", str(SHARED / "ko/kowiki/kowiki.jsonl"), "ko"),
    SourceConfig("petitions", str(SHARED / "ko/petitions/petitions_2019-04"), "ko", text_field="content"),
    SourceConfig("nsmc", str(SHARED / "ko/nsmc/nsmc_raw_reviews.tsv"), "ko", format="tsv", text_field="review"),
    SourceConfig("statutes", str(SHARED / "ko/statutes/kr_statutes.jsonl"), "ko"),
    SourceConfig("python_docs", str(SHARED / "en/python_docs/python311_docs_rst.jsonl"), "en"),
    SourceConfig("debian_docs", str(SHARED / "en/debian_docs/debian_docs_en.jsonl"), "en"),
]


def load(mb_per_source: float) -> list[Document]:
    docs = []
    for src in SOURCES:
        size = 0
        for n, (_, decode) in enumerate(iter_records(src, 10_000_000)):
            try:
                doc_id, text, _ = decode()
            except Quarantine:
                continue
            docs.append(Document(text, f"{src.name}/{doc_id}", metadata={"lang": src.lang, "source": src.name}))
            size += len(text.encode("utf-8"))
            if size >= mb_per_source * 1e6:
                break
    return docs


def timed(step: Callable, docs: list[Document]) -> tuple[list[Document], float]:
    start = time.process_time()  # CPU seconds of this process: MB/s per core even on a busy machine
    out = list(step.run(iter(docs)))
    return out, time.process_time() - start


def run_chain(chain: list[tuple[str, Callable]], docs: list[Document]) -> tuple[list[float], list[int]]:
    """CPU seconds per step and documents left after each step, on a fresh copy of `docs`."""
    current = copy.deepcopy(docs)
    seconds, left = [], []
    for _, step in chain:
        current, t = timed(step, current)
        seconds.append(t)
        left.append(len(current))
    return seconds, left


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb-per-source", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    docs = load(args.mb_per_source)
    mb = sum(len(d.text.encode("utf-8")) for d in docs) / 1e6
    print(f"input: {len(docs):,} documents, {mb:.1f} MB; {platform.processor() or platform.machine()}, 1 process, "
          f"{args.repeats} interleaved rounds\n")

    cfg = CleanConfig()
    chains = {
        "GECKO clean chain": [("normalize", Normalize()), ("langid", LanguageFilter()),
                              ("quality", QualityFilter(cfg, 20)), ("pii", PiiScrubber()),
                              ("toxicity (ko)", ToxicityFilter())],
        "datatrove Gopher + C4": [("GopherQualityFilter", GopherQualityFilter()),
                                  ("C4QualityFilter", C4QualityFilter())],
    }
    times: dict[str, list[list[float]]] = {name: [] for name in chains}
    left: dict[str, list[int]] = {}
    for r in range(args.repeats):
        for name in (list(chains) if r % 2 == 0 else list(chains)[::-1]):
            seconds, left[name] = run_chain(chains[name], docs)
            times[name].append(seconds)
    rows = []
    for name, chain in chains.items():
        n_in = len(docs)
        for i, (step_name, _) in enumerate(chain):
            per_round = [t[i] for t in times[name]]
            rows.append(f"| {name} | {step_name} | {n_in:,} → {left[name][i]:,} | "
                        f"{statistics.median(per_round):.2f} s ({min(per_round):.2f}-{max(per_round):.2f}) |")
            n_in = left[name][i]
        totals = [sum(t) for t in times[name]]
        med = statistics.median(totals)
        rows.append(f"| **{name}** | **total** | {len(docs):,} → {left[name][-1]:,} | **{med:.2f} s "
                    f"({min(totals):.2f}-{max(totals):.2f}), {mb / med:.2f} MB/s** |")
    ratios = [sum(b) / sum(a) for a, b in zip(*times.values())]
    print("| chain | step | documents | CPU time, median (min-max) |\n|---|---|---:|---:|")
    print("\n".join(rows))
    print(f"\nGECKO / datatrove per core: median {statistics.median(ratios):.1f}x "
          f"(rounds: {', '.join(f'{x:.1f}x' for x in ratios)})")


if __name__ == "__main__":
    main()
