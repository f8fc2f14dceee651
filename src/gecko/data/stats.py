"""Accounting for the data stage: every input document is kept, or dropped by a named step for a reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_EXAMPLES = 3


@dataclass
class DataStats:
    read: Counter[str] = field(default_factory=Counter)
    """Documents read, per source."""
    dropped: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(step, reason, lang) → documents dropped."""
    kept: Counter[str] = field(default_factory=Counter)
    """Documents in the final corpus, per language."""
    kept_bytes: Counter[str] = field(default_factory=Counter)
    repeated: Counter[str] = field(default_factory=Counter)
    """Extra copies added by up-sampling, per language."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """A few `file:line` or document ids per (step/reason), for the report."""

    def drop(self, step: str, reason: str, lang: str, example: str) -> None:
        self.dropped[(step, reason, lang)] += 1
        shown = self.examples.setdefault(f"{step}/{reason}", [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": dict(self.read),
            "read_total": sum(self.read.values()),
            "dropped": [
                {"step": s, "reason": r, "lang": lang, "count": n} for (s, r, lang), n in sorted(self.dropped.items())
            ],
            "dropped_total": sum(self.dropped.values()),
            "kept": dict(self.kept),
            "kept_bytes": dict(self.kept_bytes),
            "repeated": dict(self.repeated),
            "examples": self.examples,
        }

    def merge(self, other: DataStats) -> None:
        """Add another step's or rank's counts (the clean phase writes one ledger per step and rank)."""
        self.read.update(other.read)
        self.dropped.update(other.dropped)
        self.kept.update(other.kept)
        self.kept_bytes.update(other.kept_bytes)
        self.repeated.update(other.repeated)
        for key, shown in other.examples.items():
            mine = self.examples.setdefault(key, [])
            mine.extend(shown[: MAX_EXAMPLES - len(mine)])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataStats:
        stats = cls(Counter(d["read"]), Counter(), Counter(d["kept"]), Counter(d["kept_bytes"]),
                    Counter(d["repeated"]), d["examples"])
        for row in d["dropped"]:
            stats.dropped[(row["step"], row["reason"], row["lang"])] += row["count"]
        return stats

    def save_ledger(self, folder: Path, step: str, rank: int) -> None:
        """Written when a step has seen its whole shard; a crashed rank leaves none and is rerun."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{step}-{rank:05d}.json.tmp"
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False))
        tmp.replace(folder / f"{step}-{rank:05d}.json")

    @classmethod
    def load_ledgers(cls, folder: Path) -> DataStats:
        stats = cls()
        for path in sorted(folder.glob("*.json")):
            stats.merge(cls.from_dict(json.loads(path.read_text())))
        return stats

    def check_accounting(self) -> None:
        """Every document read is either kept once or dropped once: a mismatch is a bug, never data loss."""
        kept_unique = sum(self.kept.values()) - sum(self.repeated.values())
        read, dropped = sum(self.read.values()), sum(self.dropped.values())
        assert read == kept_unique + dropped, f"accounting: read {read} != kept {kept_unique} + dropped {dropped}"

    def write(self, out_dir: Path, mix_targets: dict[str, float]) -> None:
        (out_dir / "stats.json").write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        (out_dir / "report.md").write_text(self.report(mix_targets))

    def report(self, mix_targets: dict[str, float], title: str = "Data stage report") -> str:
        total_bytes = sum(self.kept_bytes.values()) or 1
        section = "Mix" if mix_targets else "Kept"
        lines = [f"# {title}", "", f"## {section} (UTF-8 bytes)", "", "| lang | docs | MB | share | target |",
                 "|---|---:|---:|---:|---:|"]
        for lang in sorted(set(self.kept) | set(mix_targets)):
            b = self.kept_bytes[lang]
            lines.append(f"| {lang} | {self.kept[lang]:,} | {b / 1e6:.2f} | {b / total_bytes:.1%} | "
                         f"{mix_targets.get(lang, 0):.1%} |")
        lines += ["", "## Read", "", "| source | docs |", "|---|---:|"]
        lines += [f"| {s} | {n:,} |" for s, n in sorted(self.read.items())]
        lines += ["", "## Dropped", "", "| step | reason | lang | docs | examples |", "|---|---|---|---:|---|"]
        for (step, reason, lang), n in sorted(self.dropped.items()):
            ex = ", ".join(f"`{e}`" for e in self.examples.get(f"{step}/{reason}", []))
            lines.append(f"| {step} | {reason} | {lang} | {n:,} | {ex} |")
        return "\n".join(lines) + "\n"
