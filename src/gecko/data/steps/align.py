"""Language-alignment documents: ko↔en translation pairs turned into training text with several templates.

Pairs are read from TSV (Tatoeba), JSONL (LibreOffice help), line-aligned files or tar archives of them
(korean-parallel-corpora), checked (length bounds, length ratio, Hangul on the Korean side and none on the
English side, identical sides), deduplicated on normalized text, then packed `pairs_per_doc` to a document.
Each pair is used once, in one direction chosen by a seeded hash, so both directions are covered without
repeating a pair (repeats are what dedup exists to prevent). Documents carry lang "ko" (the language they
help) and source `align/NAME`; the mix gives them their own share (data.align.share).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from gecko.config import AlignConfig, ParallelSourceConfig
from gecko.errors import DataError
from gecko.io.atomic import open_atomic, write_json

TEMPLATES = {
    "en-ko": (
        "English: {en}\nKorean: {ko}",
        "Translate into Korean.\n{en}\n→ {ko}",
        "다음 영어 문장을 한국어로 옮기면?\n{en}\n{ko}",
    ),
    "ko-en": ("한국어: {ko}\n영어: {en}", "Translate into English.\n{ko}\n→ {en}", "{ko}\n= {en}"),
}
_SPACE = re.compile(r"\s+")


@dataclass
class AlignStats:
    read: Counter[str] = field(default_factory=Counter)
    """Pairs read per source."""
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(source, reason) → pairs dropped."""
    kept: Counter[str] = field(default_factory=Counter)
    documents: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "pairs_read": dict(self.read),
            "pairs_kept": dict(self.kept),
            "documents": dict(self.documents),
            "pairs_dropped": [
                {"source": s, "reason": r, "count": n} for (s, r), n in sorted(self.dropped.items())
            ],
        }


def read_pairs(src: ParallelSourceConfig) -> Iterator[tuple[str, str, str]]:
    """(en, ko, where) per pair; a malformed record is an error naming the file and line."""
    path = Path(src.path)
    if not path.exists():
        raise DataError(f"data.align.sources[{src.name}].path={src.path}: not found")
    if src.format == "lines":
        if src.en_path is None:
            raise DataError(f"data.align.sources[{src.name}]: format lines needs en_path")
        with path.open(encoding="utf-8") as ko, Path(src.en_path).open(encoding="utf-8") as en:
            yield from _read_lines(ko, en, str(path))
        return
    if src.format == "tar":
        yield from _read_tar(path)
        return
    with path.open(encoding="utf-8", newline="") as f:
        if src.format == "jsonl":
            for lineno, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                    yield r["en"], r["ko"], f"{path}:{lineno}"
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise DataError(f"{path}:{lineno}: expected a JSON object with en and ko ({e})") from None
            return
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        first = next(rows, None)
        en_col, ko_col = (
            (first.index("en"), first.index("ko")) if first and {"en", "ko"} <= set(first) else (0, 1)
        )
        pending = [] if first is None or (first[en_col] == "en") else [first]
        for lineno, row in enumerate([*pending, *rows], 1 if pending else 2):
            if len(row) <= max(en_col, ko_col):
                raise DataError(f"{path}:{lineno}: expected en and ko columns, found {len(row)} column(s)")
            yield row[en_col], row[ko_col], f"{path}:{lineno}"


def _read_lines(ko: Iterator[str], en: Iterator[str], where: str) -> Iterator[tuple[str, str, str]]:
    lineno = 0
    try:
        for lineno, (k, e) in enumerate(zip(ko, en, strict=True), 1):
            yield e.rstrip("\n"), k.rstrip("\n"), f"{where}:{lineno}"
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 after line {lineno} ({e.reason})") from None
    except ValueError:  # zip(strict=True): one side ran out first
        raise DataError(f"{where}: Korean and English sides differ in length after line {lineno}") from None


def _member_text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> io.TextIOWrapper:
    file = tar.extractfile(member)
    assert file is not None  # a regular file (the caller keeps only those) has a body
    return io.TextIOWrapper(file, encoding="utf-8")


def _read_tar(path: Path) -> Iterator[tuple[str, str, str]]:
    """Every NAME.ko member with its NAME.en (korean-parallel-corpora's news releases), streamed from the
    archive: nothing is extracted to disk."""
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the `with tar:` below; the open alone is guarded)
    except tarfile.TarError as e:
        raise DataError(f"{path}: not a readable tar archive ({e})") from None
    with tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        ko_names = sorted(n for n in members if n.endswith(".ko"))
        if not ko_names:
            raise DataError(f"{path}: no *.ko member (found {', '.join(sorted(members)) or 'nothing'})")
        for ko_name in ko_names:
            en_name = ko_name.removesuffix(".ko") + ".en"
            if en_name not in members:
                raise DataError(f"{path}: member {ko_name} has no English side {en_name}")
            ko, en = (_member_text(tar, members[n]) for n in (ko_name, en_name))
            yield from _read_lines(ko, en, f"{path}:{ko_name}")


def _letters(text: str) -> tuple[int, int, int]:
    """(Hangul, Latin, all letters)."""
    hangul = sum(
        "\uac00" <= c <= "\ud7a3" or "\u1100" <= c <= "\u11ff" or "\u3130" <= c <= "\u318f" for c in text
    )
    latin = sum(c.isascii() and c.isalpha() for c in text)
    return hangul, latin, sum(c.isalpha() for c in text)


def check_pair(en: str, ko: str, cfg: AlignConfig) -> str | None:
    """The reason a pair is unusable, or None."""
    if not (cfg.min_chars <= len(en) <= cfg.max_chars and cfg.min_chars <= len(ko) <= cfg.max_chars):
        return "length"
    if not cfg.min_len_ratio <= len(ko) / len(en) <= cfg.max_len_ratio:
        return "length_ratio"
    ko_hangul, _, ko_letters = _letters(ko)
    if ko_letters == 0 or ko_hangul / ko_letters < 0.5:
        return "ko_not_korean"
    en_hangul, en_latin, en_letters = _letters(en)
    if en_hangul > 0 or en_letters == 0 or en_latin / en_letters < 0.8:
        return "en_not_english"
    return None


def _norm(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _hash(*parts: object) -> int:
    return xxhash.xxh3_64_intdigest("\x1f".join(map(str, parts)).encode("utf-8"))


def clean_pairs(cfg: AlignConfig, stats: AlignStats) -> dict[str, list[tuple[str, str]]]:
    """Checked, deduplicated pairs per source (a pair seen in an earlier source is a duplicate_pair)."""
    seen: set[int] = set()
    out: dict[str, list[tuple[str, str]]] = {}
    for src in cfg.sources:
        kept = out.setdefault(src.name, [])
        for en, ko, _where in read_pairs(src):
            stats.read[src.name] += 1
            en, ko = _norm(en), _norm(ko)
            reason = check_pair(en, ko, cfg)
            key = _hash(en.casefold(), ko)
            if reason is None and key in seen:
                reason = "duplicate_pair"
            if reason is not None:
                stats.dropped[(src.name, reason)] += 1
                continue
            seen.add(key)
            kept.append((en, ko))
            stats.kept[src.name] += 1
    return out


def make_documents(name: str, pairs: list[tuple[str, str]], cfg: AlignConfig, seed: int) -> Iterator[dict]:
    """Datatrove-format records {"text", "id", "metadata"}: each pair once, in a seeded direction."""
    by_direction: dict[str, list[tuple[str, str]]] = {"en-ko": [], "ko-en": []}
    for en, ko in sorted(pairs, key=lambda p: _hash(seed, *p)):
        by_direction["en-ko" if _hash(seed, "dir", en, ko) % 2 else "ko-en"].append((en, ko))
    for direction, items in by_direction.items():
        for start in range(0, len(items), cfg.pairs_per_doc):
            chunk = items[start : start + cfg.pairs_per_doc]
            k = start // cfg.pairs_per_doc
            template = TEMPLATES[direction][_hash(seed, name, direction, k) % len(TEMPLATES[direction])]
            text = "\n\n".join(template.format(en=en, ko=ko) for en, ko in chunk)
            yield {
                "text": text,
                "id": f"align/{name}/{direction}/{k}",
                "metadata": {
                    "lang": "ko",
                    "source": f"align/{name}",
                    "direction": direction,
                    "pairs": len(chunk),
                },
            }


def run_align(cfg: AlignConfig, out_dir: Path, seed: int) -> AlignStats:
    """Write `out_dir/00000.jsonl` (datatrove format) and `out_dir.work/report.json`."""
    stats = AlignStats()
    with open_atomic(out_dir / "00000.jsonl") as f:
        for name, pairs in clean_pairs(cfg, stats).items():
            for doc in make_documents(name, pairs, cfg, seed):
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                stats.documents[f"align/{name}"] += 1
    work = out_dir.parent / f"{out_dir.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "report.json", stats.to_dict())
    return stats
