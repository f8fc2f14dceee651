"""Accounting for the data stage: every input document is kept, or dropped by a named step for a reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from gecko.io.atomic import write_json, write_text

MAX_EXAMPLES = 3
# Autoescaped: examples are raw text from the corpus (markup, scripts, anything), shown verbatim and inert.
_HTML = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string("""\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:3px 8px}td.n{text-align:right}code{white-space:pre-wrap}</style></head>
<body>
<h1>{{ title }}</h1>
<p>{{ "{:,}".format(read_total) }} documents read: {{ "{:,}".format(kept_total) }} kept,
{{ "{:,}".format(dropped_total) }} dropped.</p>
<h2>{{ section }} (UTF-8 bytes)</h2>
<table><tr><th>lang</th><th>docs</th><th>MB</th><th>share</th><th>target</th></tr>
{% for row in kept %}
<tr><td>{{ row.lang }}</td><td class="n">{{ "{:,}".format(row.docs) }}</td>
<td class="n">{{ "%.2f"|format(row.mb) }}</td><td class="n">{{ "%.1f%%"|format(row.share * 100) }}</td><td class="n">{{ "%.1f%%"|format(row.target * 100) }}</td></tr>
{% endfor %}
</table>
<h2>Read</h2>
<table><tr><th>source</th><th>docs</th></tr>
{% for source, n in read %}<tr><td>{{ source }}</td><td class="n">{{ "{:,}".format(n) }}</td></tr>
{% endfor %}
</table>
<h2>Dropped per step</h2>
<table><tr><th>step</th><th>docs</th></tr>
{% for step, n in steps %}<tr><td>{{ step }}</td><td class="n">{{ "{:,}".format(n) }}</td></tr>
{% endfor %}
</table>
<h2>Dropped per reason and language</h2>
<table><tr><th>step</th><th>reason</th>{% for lang in langs %}<th>{{ lang }}</th>{% endfor %}<th>total</th>
<th>examples</th></tr>
{% for r in reasons %}
<tr><td>{{ r.step }}</td><td>{{ r.reason }}</td>
{% for lang in langs %}<td class="n">{{ "{:,}".format(r.by_lang.get(lang, 0)) }}</td>{% endfor %}
<td class="n">{{ "{:,}".format(r.total) }}</td>
<td>{% for lang, e in r.examples %}{{ lang }}: <code>{{ e }}</code>{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
{% endfor %}
</table>
</body></html>
""")


def example_key(step: str, reason: str, lang: str) -> str:
    """Where a drop's examples are kept: per language too, so each report row shows its own language's."""
    return f"{step}/{reason}/{lang}"


def _md_cell(text: str) -> str:
    """An example inside a markdown table cell and code span: no `|` or backtick may end either early."""
    return text.replace("`", "'").replace("|", "\\|")


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
    """A few `file:line` or document ids per drop (`example_key`: step/reason/lang) or repair (step/what)."""
    repaired: Counter[str] = field(default_factory=Counter)
    """Kept documents mended on the way, per `step/what` (invalid UTF-8 bytes replaced, a duplicate id
    renamed): counted, so nothing changes silently."""

    def repair(self, step: str, what: str, example: str, n: int = 1) -> None:
        self.repaired[f"{step}/{what}"] += n
        shown = self.examples.setdefault(f"{step}/{what}", [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)

    def drop(self, step: str, reason: str, lang: str, example: str) -> None:
        self.drop_many(step, reason, lang, 1, [example])

    def drop_many(self, step: str, reason: str, lang: str, n: int, examples: list[str]) -> None:
        self.dropped[(step, reason, lang)] += n
        shown = self.examples.setdefault(example_key(step, reason, lang), [])
        shown.extend(examples[: MAX_EXAMPLES - len(shown)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": dict(self.read),
            "read_total": sum(self.read.values()),
            "dropped": [
                {"step": s, "reason": r, "lang": lang, "count": n}
                for (s, r, lang), n in sorted(self.dropped.items())
            ],
            "dropped_total": sum(self.dropped.values()),
            "kept": dict(self.kept),
            "kept_bytes": dict(self.kept_bytes),
            "repeated": dict(self.repeated),
            "repaired": dict(self.repaired),
            "examples": self.examples,
        }

    def merge(self, other: DataStats) -> None:
        """Add another step's or rank's counts (the clean phase writes one ledger per step and rank)."""
        self.read.update(other.read)
        self.dropped.update(other.dropped)
        self.kept.update(other.kept)
        self.kept_bytes.update(other.kept_bytes)
        self.repeated.update(other.repeated)
        self.repaired.update(other.repaired)
        for key, shown in other.examples.items():
            mine = self.examples.setdefault(key, [])
            mine.extend(shown[: MAX_EXAMPLES - len(mine)])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataStats:
        stats = cls(
            Counter(d["read"]),
            Counter(),
            Counter(d["kept"]),
            Counter(d["kept_bytes"]),
            Counter(d["repeated"]),
            d["examples"],
            Counter(d.get("repaired", {})),
        )
        for row in d["dropped"]:
            stats.dropped[(row["step"], row["reason"], row["lang"])] += row["count"]
        return stats

    def save_ledger(self, folder: Path, step: str, rank: int) -> None:
        """Written when a step has seen its whole shard; a crashed rank leaves none and is rerun."""
        write_text(folder / f"{step}-{rank:05d}.json", json.dumps(self.to_dict(), ensure_ascii=False))

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
        assert read == kept_unique + dropped, (
            f"accounting: read {read} != kept {kept_unique} + dropped {dropped}"
        )

    def write(self, out_dir: Path, mix_targets: dict[str, float]) -> None:
        write_json(out_dir / "stats.json", self.to_dict())
        write_text(out_dir / "report.md", self.report(mix_targets))
        write_text(out_dir / "report.html", self.report_html(mix_targets))

    def report(self, mix_targets: dict[str, float], title: str = "Data stage report") -> str:
        total_bytes = sum(self.kept_bytes.values()) or 1
        section = "Mix" if mix_targets else "Kept"
        lines = [
            f"# {title}",
            "",
            f"## {section} (UTF-8 bytes)",
            "",
            "| lang | docs | MB | share | target |",
            "|---|---:|---:|---:|---:|",
        ]
        for lang in sorted(set(self.kept) | set(mix_targets)):
            b = self.kept_bytes[lang]
            lines.append(
                f"| {lang} | {self.kept[lang]:,} | {b / 1e6:.2f} | {b / total_bytes:.1%} | "
                f"{mix_targets.get(lang, 0):.1%} |"
            )
        lines += ["", "## Read", "", "| source | docs |", "|---|---:|"]
        lines += [f"| {s} | {n:,} |" for s, n in sorted(self.read.items())]
        lines += [
            "",
            "## Dropped",
            "",
            "| step | reason | lang | docs | examples |",
            "|---|---|---|---:|---|",
        ]
        for (step, reason, lang), n in sorted(self.dropped.items()):
            ex = ", ".join(f"`{_md_cell(e)}`" for e in self.examples.get(example_key(step, reason, lang), []))
            lines.append(f"| {step} | {reason} | {lang} | {n:,} | {ex} |")
        if self.repaired:
            lines += ["", "## Repaired (kept)", "", "| step/what | count | examples |", "|---|---:|---|"]
            for key, n in sorted(self.repaired.items()):
                ex = ", ".join(f"`{_md_cell(e)}`" for e in self.examples.get(key, []))
                lines.append(f"| {key} | {n:,} | {ex} |")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """Documents kept and dropped per reason, one column per language: the table printed when the data
        stage ends (the full report with examples is report.md)."""
        langs = sorted(set(self.kept) | {lang for _, _, lang in self.dropped})
        rows: list[tuple[str, str, int | None, dict[str, int] | None]] = [
            ("read", "", sum(self.read.values()), None)
        ]
        rows += [
            (step, reason, None, lang_counts) for (step, reason), lang_counts in self._by_reason().items()
        ]
        rows.append(("kept", "", None, dict(self.kept)))
        width = max(len(f"{s} {r}") for s, r, _, _ in rows) + 2
        head = f"{'':<{width}}" + "".join(f"{lang:>9}" for lang in langs) + f"{'total':>9}"
        lines = [head]
        for step, reason, total, by_lang in rows:
            label = f"{step} {reason}".strip()
            if by_lang is None:
                lines.append(f"{label:<{width}}" + " " * 9 * len(langs) + f"{total:>9,}")
                continue
            cells = "".join(f"{by_lang.get(lang, 0):>9,}" for lang in langs)
            lines.append(f"{label:<{width}}{cells}{sum(by_lang.values()):>9,}")
        return "\n".join(lines)

    def _by_reason(self) -> dict[tuple[str, str], dict[str, int]]:
        out: dict[tuple[str, str], dict[str, int]] = {}
        for (step, reason, lang), n in sorted(self.dropped.items()):
            out.setdefault((step, reason), {})[lang] = n
        return out

    def report_html(self, mix_targets: dict[str, float], title: str = "Data stage report") -> str:
        """The report as one self-contained HTML page: counts per step, per reason and language, and a few
        examples per reason (HTML-escaped)."""
        total_bytes = sum(self.kept_bytes.values()) or 1
        kept = [
            {
                "lang": lang,
                "docs": self.kept[lang],
                "mb": self.kept_bytes[lang] / 1e6,
                "share": self.kept_bytes[lang] / total_bytes,
                "target": mix_targets.get(lang, 0.0),
            }
            for lang in sorted(set(self.kept) | set(mix_targets))
        ]
        steps: Counter[str] = Counter()
        reasons: dict[tuple[str, str], Counter[str]] = {}
        for (step, reason, lang), n in sorted(self.dropped.items()):
            steps[step] += n
            reasons.setdefault((step, reason), Counter())[lang] += n
        rows = [
            {
                "step": step,
                "reason": reason,
                "by_lang": by_lang,
                "total": sum(by_lang.values()),
                "examples": [
                    (lang, e)
                    for lang in sorted(by_lang)
                    for e in self.examples.get(example_key(step, reason, lang), [])
                ],
            }
            for (step, reason), by_lang in reasons.items()
        ]
        return _HTML.render(
            title=title,
            section="Mix" if mix_targets else "Kept",
            kept=kept,
            read=sorted(self.read.items()),
            steps=sorted(steps.items()),
            reasons=rows,
            langs=sorted({lang for _, _, lang in self.dropped}),
            read_total=sum(self.read.values()),
            dropped_total=sum(self.dropped.values()),
            kept_total=sum(self.kept.values()) - sum(self.repeated.values()),
        )
