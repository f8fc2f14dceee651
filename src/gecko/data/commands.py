"""`gecko data normalize|langid|quality|pii|toxicity --in FILE --out FILE`: one clean step on a file of any
schema and reader format, outside a run (docs/cleaning.md). The step is the clean phase's own datatrove step,
applied in this process without an executor; records that are not documents go to OUT.quarantine.jsonl, and
read = written + dropped + quarantined is checked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.config import DataConfig, SourceConfig, SourceFormat
from gecko.data.io.code import CODE_LANGS
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import (
    QuarantineLog,
    SeenIds,
    check_source,
    iter_records,
)
from gecko.data.steps.langid import LanguageFilter, initial_lang, label_languages
from gecko.data.steps.normalize import Normalize
from gecko.data.steps.pii import PiiScrubber
from gecko.data.steps.quality import QualityFilter
from gecko.data.steps.toxicity import ToxicityFilter
from gecko.errors import DataError
from gecko.io import rawio
from gecko.io.atomic import open_atomic

STANDALONE = ("normalize", "langid", "quality", "pii", "toxicity")
STEP_FORMATS: dict[str, SourceFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".txt": "text",
}
"""What a per-step command reads, by the input's suffix (under any .gz/.zst/.bz2/.xz); a folder is a code tree."""


@dataclass
class StepResult:
    counts: Counter[str] = field(default_factory=Counter)
    """read, written, dropped_<reason>, quarantined_<reason>, repaired_<what>, duplicate_id."""
    first: dict[str, str] = field(default_factory=dict)
    """kind of fault → where it was first met and what was found, for one warning line per kind."""
    quarantine: Path | None = None

    def note(self, kind: str, where: str, detail: str, n: int = 1) -> None:
        self.counts[kind] += n
        self.first.setdefault(kind, f"{where}: {detail}" if detail else where)

    def warnings(self) -> list[str]:
        """One line per kind of fault: file and line where first met, how many, where the records went."""
        out = []
        for kind, first in self.first.items():
            n = self.counts[kind]
            went = f"quarantined in {self.quarantine}" if kind.startswith("quarantined_") else "kept"
            out.append(f"{first} [{kind}: {n} in all, {went}]")
        return out

    def check_accounting(self) -> None:
        """read = written + dropped + quarantined: a mismatch is a bug, never data loss."""
        lost = sum(n for k, n in self.counts.items() if k.startswith(("dropped_", "quarantined_")))
        read, written = self.counts["read"], self.counts["written"]
        assert read == written + lost, f"accounting: read {read} != written {written} + dropped {lost}"


def step_source(in_path: Path, text_field: str) -> SourceConfig:
    """The input of a per-step command as a source: its format from the suffix, a folder as a code tree."""
    if in_path.is_dir():
        return SourceConfig("in", str(in_path), "code", format="code", extensions=tuple(CODE_LANGS))
    suffix = rawio.base_suffix(in_path)
    if suffix not in STEP_FORMATS:
        raise DataError(
            f"{in_path}: cannot tell the format from {suffix or 'no suffix'!r}; known: "
            f"{', '.join(STEP_FORMATS)} (also under {', '.join(rawio.COMPRESSED)}), or a code folder"
        )
    return SourceConfig("in", str(in_path), "ko", format=STEP_FORMATS[suffix], text_field=text_field)


def _standalone_step(step: str, cfg: DataConfig) -> PipelineStep:
    c = cfg.clean
    return {
        "normalize": lambda: Normalize(),
        "langid": lambda: LanguageFilter(c.mixed_hangul_ratio, c.min_en_score, keep_other=True),
        "quality": lambda: QualityFilter(c, cfg.min_chars),
        "pii": lambda: PiiScrubber(cfg.pii.types),
        "toxicity": lambda: ToxicityFilter(
            threshold=float("inf"), langs=("ko", "en", "other")
        ),  # scores only
    }[step]()


def _step_documents(
    src: SourceConfig, max_bytes: int, lang: str, result: StepResult, log: QuarantineLog
) -> Iterator[Document]:
    """The input's records as documents carrying the whole record; faults counted in `result`."""
    seen = SeenIds()
    for where, decode in iter_records(src, max_bytes):
        result.counts["read"] += 1
        try:
            doc_id, text, meta = decode()
        except Quarantine as q:
            result.note(f"quarantined_{q.reason}", where, q.detail)
            log.add(where, q, str(src.path))
            continue
        for what, n in meta.get("repaired", {}).items():
            result.note(f"repaired_{what}", where, f"{n} invalid byte sequence(s) replaced by U+FFFD", n)
        record = meta.get("record") or {
            "id": doc_id,
            src.text_field: text,
            **{k: meta[k] for k in ("path", "code_lang") if k in meta},
        }
        if "record" in meta and seen.add(doc_id):  # the record is written unchanged, id included
            result.note("duplicate_id", where, f"id {doc_id!r} seen before")
        first = "code" if src.format == "code" else initial_lang(record.get("lang"), lang)
        yield Document(text, doc_id, metadata={"lang": first, "record": record})


def quarantine_path(out_path: Path) -> Path:
    """`OUT.quarantine.jsonl` beside a per-step command's output."""
    return out_path.with_name(out_path.name.removesuffix(".jsonl") + ".quarantine.jsonl")


def run_step(
    step: str, in_path: Path, out_path: Path, text_field: str, cfg: DataConfig, lang: str = "auto"
) -> StepResult:
    """One cleaning step on a file of any schema and reader format (JSONL, JSON, CSV/TSV, Parquet, text, a
    code folder; compressed or not), written as JSONL: the text field is rewritten (normalize, pii), fields
    are added (langid: lang, lid_label, lid_score; pii: pii; toxicity: toxicity), or failing records are left
    out (quality: counted by reason). Records that are not documents go to OUT.quarantine.jsonl. `lang`
    (langid.LANG_MODES) says where each record's language comes from; by default from its text."""
    if step not in STANDALONE:
        raise DataError(f"unknown step {step!r} (known: {', '.join(STANDALONE)})")
    initial_lang(None, lang)
    src = step_source(in_path, text_field)
    check_source(src)
    if in_path.is_file():
        rawio.open_raw(in_path).close()  # unreadable input: one line naming it, before anything is written
    quarantine = quarantine_path(out_path)
    result = StepResult(Counter(read=0, written=0), quarantine=quarantine)
    quarantine.unlink(missing_ok=True)  # our own output of an earlier run, never the user's file
    log = QuarantineLog(quarantine)
    c = cfg.clean
    data: DocumentsPipeline = _step_documents(src, c.max_doc_bytes, lang, result, log)
    if step != "langid":  # langid labels every record itself
        data = label_languages(data, c.mixed_hangul_ratio, c.min_en_score)
    last = _standalone_step(step, cfg)
    data = last.run(data)
    added = {"langid": ("lang", "lid_label", "lid_score"), "pii": ("pii",), "toxicity": ("toxicity",)}.get(
        step, ()
    )
    with open_atomic(out_path) as f:
        for doc in data:
            record = dict(doc.metadata["record"], **{text_field: doc.text})
            record.update({k: doc.metadata[k] for k in added if k in doc.metadata})
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            result.counts["written"] += 1
    log.save()
    if isinstance(last, QualityFilter):
        result.counts.update({f"dropped_{reason}": n for (_, reason, _), n in last.ledger.dropped.items()})
    result.check_accounting()
    return result
