"""Build the bundled sample corpus ``data/sample`` from ``../shared/data`` and the local standard library.

Why: ``make demo`` and the tests must run on a fresh clone, where ``../shared/data`` does not exist, so a
small (< 5 MB) real-text corpus ships in the repository. This script is how it was made; it is committed for
provenance and is not run by the tests. Only openly licensed material is taken, documents are copied whole
(documents over 30 KB are skipped, never cut), statutes and articles listed in the shared decontamination
report (overlap with KMMLU/KorQuAD/KLUE/CLIcK) are excluded, and every choice is drawn from a fixed seed, so a
re-run with the same inputs (and the same CPython version for the code part) gives byte-identical output.

Usage: python tools/build_sample.py [SHARED_DATA] [--out data/sample] [--stdlib DIR]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import shutil
import sysconfig
import tarfile
import unicodedata
from collections import Counter
from collections.abc import Collection
from pathlib import Path

SEED = 20240601
MAX_DOC_BYTES = 30_000
MAX_CODE_BYTES = 60_000
MIN_CODE_BYTES = 1_000  # skips empty __init__ files and one-line compatibility shims
# Byte budgets per output file (approximate; documents are whole, so totals land just under).
BUDGETS = {
    "ko/kowiki.jsonl": 560_000,
    "ko/novels.jsonl": 320_000,
    "ko/statutes.jsonl": 260_000,
    "ko/wikinews.jsonl": 150_000,
    "en/python_docs.jsonl": 680_000,
    "en/debian_docs.jsonl": 520_000,
    "code/python.tar.gz": 1_400_000,  # bytes of the .py files inside
    "parallel/tatoeba_ko_en.tsv": 150_000,
}
NSMC_REVIEWS = 3_000
PERMISSIVE_DEBIAN = {"PostgreSQL License"}  # the GPL-licensed Git manuals and Debian Reference are left out
CODE_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
                  "encodings", "pydoc_data", "lib2to3", "config-3.11-x86_64-linux-gnu"}
CODE_PER_GROUP = 3  # at most this many files per top-level module/package, for diversity
OWNED = ("ko", "en", "code", "parallel")


def is_nfc(text: str) -> bool:
    return unicodedata.is_normalized("NFC", text)


def take(items: list[tuple[str, str]], budget: int, rng: random.Random) -> set[str]:
    """Pick keys of (key, serialized) items in seeded random order while they fit the byte budget."""
    order = list(range(len(items)))
    rng.shuffle(order)
    chosen: set[str] = set()
    used = 0
    for i in order:
        key, line = items[i]
        size = len(line.encode("utf-8"))
        if used + size <= budget:
            chosen.add(key)
            used += size
    return chosen


def sample_jsonl(src: Path, dst: Path, budget: int, rng: random.Random, exclude: Collection[str] = (),
                 licenses: set[str] | None = None) -> None:
    """Copy a seeded sample of whole JSON-lines documents, in their original order, keeping all fields."""
    items = []
    for raw in src.read_text(encoding="utf-8").splitlines():
        doc = json.loads(raw)
        key = doc.get("id", doc.get("path"))
        text = doc["text"]
        if key in exclude or len(text.encode("utf-8")) > MAX_DOC_BYTES or not is_nfc(text):
            continue
        if licenses is not None and doc.get("license") not in licenses:
            continue
        items.append((key, json.dumps(doc, ensure_ascii=False) + "\n"))
    chosen = take(items, budget, rng)
    write(dst, "".join(line for key, line in items if key in chosen))


def sample_wikinews(src: Path, dst: Path, budget: int, rng: random.Random) -> None:
    """boddari's wikinews.txt holds articles (title line, then paragraphs) separated by blank lines."""
    blocks = [b.strip("\n") for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    items = []
    for n, block in enumerate(blocks, 1):
        doc = {"id": f"wikinews-{n:04d}", "text": block,
               "source": "github:yiunsr/boddari txt/wikinews.txt (ko.wikinews.org)", "license": "CC-BY-2.5"}
        if len(block.encode("utf-8")) <= MAX_DOC_BYTES:
            items.append((doc["id"], json.dumps(doc, ensure_ascii=False) + "\n"))
    chosen = take(items, budget, rng)
    write(dst, "".join(line for key, line in items if key in chosen))


def sample_nsmc(src: Path, dst: Path, n: int, rng: random.Random) -> None:
    """Seeded sample of well-formed NSMC review rows, original columns and order, header kept."""
    header, *rows = src.read_text(encoding="utf-8").splitlines()
    good = [r for r in rows if len(r.split("\t")) == 5 and r.split("\t")[4].strip() and is_nfc(r)]
    keep = set(rng.sample(range(len(good)), n))
    write(dst, header + "\n" + "".join(r + "\n" for i, r in enumerate(good) if i in keep))


def sample_tatoeba(src: Path, dst: Path, budget: int, rng: random.Random) -> None:
    """Seeded sample of en/ko sentence pairs; the attribution column is kept and a header is added."""
    rows = src.read_text(encoding="utf-8").splitlines()
    items = [(str(i), r + "\n") for i, r in enumerate(rows) if len(r.split("\t")) == 3]
    chosen = take(items, budget, rng)
    write(dst, "en\tko\tattribution\n" + "".join(line for key, line in items if key in chosen))


def code_candidates(stdlib: Path) -> list[Path]:
    """Stdlib .py files that are not tests, generated tables, stubs or too large, and are NFC UTF-8."""
    out = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if CODE_SKIP_DIRS & set(rel.parts[:-1]) or rel.name.startswith("test_") or path.is_symlink():
            continue
        data = path.read_bytes()
        if not MIN_CODE_BYTES <= len(data) <= MAX_CODE_BYTES:
            continue
        try:
            if not is_nfc(data.decode("utf-8")):
                continue
        except UnicodeDecodeError:
            continue
        out.append(rel)
    return out


def sample_code(stdlib: Path, dst: Path, budget: int, rng: random.Random) -> None:
    """Whole stdlib files, at most CODE_PER_GROUP per top-level module, in seeded order until the budget,
    packed unchanged into one tar.gz (`dst`): shipped as .py files they were walked as project code by every
    linter, grep and IDE index. Members are sorted by path, mode/owner/mtime fixed, so the bytes repeat."""
    files = code_candidates(stdlib)
    rng.shuffle(files)
    groups: Counter[str] = Counter()
    used = 0
    chosen = []
    for rel in files:
        group = rel.parts[0].removesuffix(".py")
        size = (stdlib / rel).stat().st_size
        if groups[group] < CODE_PER_GROUP and used + size <= budget:
            groups[group] += 1
            used += size
            chosen.append(rel)
    write_tar_gz(dst, {rel.as_posix(): (stdlib / rel).read_bytes() for rel in sorted(chosen)})


def write_tar_gz(dst: Path, members: dict[str, bytes]) -> None:
    """A byte-reproducible tar.gz of `members` (path → bytes) in the given order."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shared", nargs="?", default="../shared/data", type=Path)
    ap.add_argument("--out", default=Path(__file__).resolve().parents[1] / "data" / "sample", type=Path)
    ap.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"], type=Path)
    args = ap.parse_args()
    src, out = args.shared, args.out
    for sub in OWNED:  # only the folders this script owns; ATTRIBUTION.md and LICENSES notices are kept
        shutil.rmtree(out / sub, ignore_errors=True)

    with open(src / "corpus/ko/decontam_report-formal.tsv", encoding="utf-8") as f:
        flagged = {row["id"] for row in csv.DictReader(f, delimiter="\t")}

    def rng(name: str) -> random.Random:  # one stream per output, so changing one budget moves nothing else
        return random.Random(f"{SEED}:{name}")

    ko, en = src / "corpus/ko", src / "corpus/en"
    sample_jsonl(ko / "kowiki/kowiki.jsonl", out / "ko/kowiki.jsonl", BUDGETS["ko/kowiki.jsonl"],
                 rng("kowiki"), exclude=flagged)
    sample_jsonl(ko / "novels/ko_pd_novels.jsonl", out / "ko/novels.jsonl", BUDGETS["ko/novels.jsonl"],
                 rng("novels"))
    sample_jsonl(ko / "statutes/kr_statutes.jsonl", out / "ko/statutes.jsonl", BUDGETS["ko/statutes.jsonl"],
                 rng("statutes"), exclude=flagged)
    sample_wikinews(ko / "boddari/txt/wikinews.txt", out / "ko/wikinews.jsonl", BUDGETS["ko/wikinews.jsonl"],
                    rng("wikinews"))
    sample_nsmc(ko / "nsmc/nsmc_raw_reviews.tsv", out / "ko/nsmc.tsv", NSMC_REVIEWS, rng("nsmc"))
    sample_jsonl(en / "python_docs/python311_docs_rst.jsonl", out / "en/python_docs.jsonl",
                 BUDGETS["en/python_docs.jsonl"], rng("python_docs"))
    sample_jsonl(en / "debian_docs/debian_docs_en.jsonl", out / "en/debian_docs.jsonl",
                 BUDGETS["en/debian_docs.jsonl"], rng("debian_docs"), licenses=PERMISSIVE_DEBIAN)
    sample_code(args.stdlib, out / "code/python.tar.gz", BUDGETS["code/python.tar.gz"], rng("code"))
    sample_tatoeba(src / "parallel/tatoeba/kor.txt", out / "parallel/tatoeba_ko_en.tsv",
                   BUDGETS["parallel/tatoeba_ko_en.tsv"], rng("tatoeba"))

    # Verbatim licence texts that ship with the inputs themselves.
    lic = out / "LICENSES"
    lic.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.stdlib / "LICENSE.txt", lic / "PSF-2.0.txt")
    shutil.copyfile(ko / "news_comments/LICENSE.md", lic / "CC-BY-SA-4.0.txt")
    for raw in (en / "debian_docs/debian_docs_en.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(raw)
        if doc["id"] == "postgresql-doc-15/legalnotice.html":
            write(lic / "PostgreSQL.txt", doc["text"].strip() + "\n")

    for path in sorted(p for sub in ("ko", "en", "parallel") for p in (out / sub).iterdir()):
        lines = path.read_text(encoding="utf-8").count("\n")
        print(f"{path.relative_to(out)}\t{path.stat().st_size} bytes\t{lines} lines")
    with tarfile.open(out / "code/python.tar.gz") as tar:
        code = tar.getmembers()
    print(f"code/python.tar.gz\t{sum(m.size for m in code)} bytes\t{len(code)} files")


if __name__ == "__main__":
    main()
