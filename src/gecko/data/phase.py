"""Phase machinery of the data stage: a phase (dedup, decontam) reads datatrove JSONL shards from one folder
and writes the survivors to another, on any executor (gecko.data.engine).

Its intermediate files live in `out_dir/../NAME.work/` and are cleared when the settings or the input files
change (`reset_if_changed`), so completion markers of another input never let a rerun skip ranks; each rank
of the counting pass writes what it kept and dropped to `NAME.work/counts/` (`collect_counts`), and the
finished phase is a `PhaseResult` the data stage merges into its accounting.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gecko.data.engine.executor import written_text_bytes
from gecko.data.io.readers import CorpusReader
from gecko.data.stats import MAX_EXAMPLES, DataStats
from gecko.errors import DataError
from gecko.io.atomic import write_json, write_text
from gecko.io.rawio import expanded_total


@dataclass
class PhaseResult:
    """Documents kept per language and dropped per (step, reason, lang), summed over ranks."""

    kept: Counter[str]
    dropped: Counter[tuple[str, str, str]]
    work_dir: Path
    examples: dict[str, list[str]] = field(default_factory=dict)
    """A few dropped ids per step/reason/lang (with the survivor or benchmark items), for the data report."""

    @property
    def read(self) -> int:
        return sum(self.kept.values()) + sum(self.dropped.values())

    def save(self, path: Path, key: str) -> None:
        """Mark the phase finished for `key` (the data stage skips it on a rerun with the same key)."""
        write_json(
            path,
            {
                "key": key,
                "kept": self.kept,
                "examples": self.examples,
                "dropped": [[*k, n] for k, n in sorted(self.dropped.items())],
            },
        )

    @classmethod
    def load(cls, path: Path, key: str) -> PhaseResult | None:
        """The result a finished phase saved for `key`, or None (not finished, or made with another key)."""
        if not path.exists():
            return None
        d = json.loads(path.read_text(encoding="utf-8"))
        if d["key"] != key:
            return None
        return cls(
            Counter(d["kept"]),
            Counter({(s, r, lang): n for s, r, lang, n in d["dropped"]}),
            path.parent,
            d["examples"],
        )

    def add_drops_to(self, stats: DataStats) -> None:
        """Merge this phase's drops into the data stage's accounting (kept documents flow on to the mix)."""
        stats.dropped.update(self.dropped)
        for key, shown in self.examples.items():
            mine = stats.examples.setdefault(key, [])
            mine.extend(shown[: MAX_EXAMPLES - len(mine)])


def input_files(in_dir: Path) -> list[Path]:
    files = sorted(p for p in Path(in_dir).glob("*.jsonl*") if p.is_file())
    if not files:
        raise DataError(f"{in_dir}: no *.jsonl / *.jsonl.gz files to read")
    return files


def input_size(in_dir: Path) -> int:
    """The phase's input in the unit its progress lines count (text read, not zstd bytes on disk): what the
    previous phase's writer recorded, else estimated (rawio.expanded_total)."""
    files = input_files(in_dir)
    recorded = written_text_bytes(files)
    return recorded if recorded is not None else expanded_total([(f, f.stat().st_size) for f in files])


def reader(in_dir: Path, lang: str = "field", counts_dir: Path | None = None) -> CorpusReader:
    """The phase's documents, one input file per rank; `lang` says where labels come from (langid.LANG_MODES),
    and the pass given `counts_dir` counts what was quarantined (once, not once per pass)."""
    return CorpusReader(input_files(in_dir), lang, str(counts_dir) if counts_dir else None)


def work_dir_for(out_dir: Path) -> Path:
    return Path(out_dir).parent / f"{Path(out_dir).name}.work"


def collect_counts(work: Path) -> tuple[Counter[str], Counter[tuple[str, str, str]]]:
    kept: Counter[str] = Counter()
    dropped: Counter[tuple[str, str, str]] = Counter()
    for f in sorted((work / "counts").glob("*.json")):
        for key, n in json.loads(f.read_text(encoding="utf-8")).items():
            step, reason, lang = key.split("|")
            if step == "kept":
                kept[lang] += n
            else:
                dropped[(step, reason, lang)] += n
    return kept, dropped


def reset_if_changed(in_dir: Path, out_dir: Path, settings: list) -> None:
    """Clear a phase's output and work folders when its settings or input files changed since they were
    written: completion markers of another input must never let a rerun skip ranks."""
    work = work_dir_for(out_dir)
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in input_files(in_dir)]
    fp = hashlib.sha256(json.dumps([files, settings], sort_keys=True).encode()).hexdigest()
    marker = work / "fingerprint"
    if marker.exists() and marker.read_text() == fp:
        return
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    work.mkdir(parents=True)
    write_text(marker, fp)
