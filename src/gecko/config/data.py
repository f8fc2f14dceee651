"""The `data:` section of a config: sources, the clean steps, dedup, decontam, alignment and the mix."""

from __future__ import annotations

import re
import sysconfig
from dataclasses import dataclass, field
from typing import Literal

from gecko.config.fields import Lang, SourceFormat, ranged


@dataclass(frozen=True)
class SourceConfig:
    name: str
    """Short unique name; appears in document ids and stats."""
    path: str
    """A file, folder or glob (`data/*.jsonl.gz`, `**` crosses folders), relative to the working directory;
    `hf://datasets/ORG/NAME[/SPLIT]`, a Hugging Face dataset read through the `datasets` cache (split train
    by default; `format` does not apply); or an fsspec URL (`s3://bucket/dir/*.parquet`, `gs://…`) with the
    `sources` extra (docs/data_sources.md). `{stdlib}` (or any other `sysconfig.get_paths()` key, such as
    `{purelib}`) stands for that directory of the Python running gecko, so a config can name the standard
    library without hard-coding one machine's install."""
    lang: Lang
    """Language bucket the source feeds in the mix."""
    format: SourceFormat = "jsonl"
    """jsonl: one JSON object per line (.jsonl, .jsonl.gz, .jsonl.zst); json: a .json file holding an array
    of objects, one document each; parquet: one row per document; text: documents separated by blank
    lines; tsv/csv: one row per document (tsv: no quoting); code: a directory tree of source files, one file
    per document."""
    text_field: str = "text"
    """Field (jsonl/json/parquet) or column header (tsv/csv) holding the text."""
    delimiter: str | None = None
    """tsv/csv field separator (None: tab for tsv, comma for csv), e.g. `|` for `text|label` lines."""
    columns: tuple[str, ...] = ()
    """tsv/csv column names for files without a header row (empty: the first row is the header)."""
    id_field: str = "id"
    """Field or column holding the document id; absent: `file:line` (or row number) is the id."""
    extensions: tuple[str, ...] = (".py",)
    """File extensions read when format is code."""
    max_docs: int | None = ranged(None, ge=1)
    """Read at most this many documents (None: all)."""
    subset: str | None = None
    """The dataset's configuration (subset) name for an hf:// path, e.g. `20231101.ko` of wikimedia/wikipedia."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", expand_path(self.path))


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def expand_path(path: str) -> str:
    """Replace `{stdlib}`-style placeholders with this interpreter's `sysconfig.get_paths()` directories."""
    paths = sysconfig.get_paths()

    def sub(m: re.Match[str]) -> str:
        if m[1] not in paths:
            raise ValueError(f"path {path!r}: unknown placeholder {m[0]} (known: {', '.join(sorted(paths))})")
        return paths[m[1]]

    return _PLACEHOLDER.sub(sub, path)


@dataclass(frozen=True)
class KoQualityConfig:
    """Korean rules (gecko.data.steps.quality); defaults measured in docs/cleaning.md."""

    min_hangul_ratio: float = ranged(0.2, ge=0, le=1)
    """Hangul syllables / non-space characters; below it the text is not really Korean prose."""
    max_jamo_ratio: float = ranged(0.1, ge=0, le=1)
    """Characters in jamo-only runs (ㅋㅋㅋ, ㅠㅠ) / non-space characters."""
    max_char_run: int = ranged(20, ge=1)
    """Longest run of one repeated letter or digit."""
    max_dup_line_frac: float = ranged(0.3, ge=0, le=1)
    """Characters in lines that occur more than once / all characters."""
    max_top_ngram_frac: float = ranged(0.25, ge=0, le=1)
    """Characters covered by the most frequent word 2-gram / all word characters."""
    max_symbol_ratio: float = ranged(0.25, ge=0, le=1)
    """Characters that are neither letters, digits, whitespace nor common punctuation / all characters."""


@dataclass(frozen=True)
class EnQualityConfig:
    """Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020) document rules; defaults in docs/cleaning.md."""

    min_words: int = ranged(20, ge=0)
    max_words: int = ranged(100_000, ge=1)
    min_mean_word_len: float = ranged(3.0, gt=0)
    max_mean_word_len: float = ranged(10.0, gt=0)
    max_symbol_word_ratio: float = ranged(0.1, ge=0)
    """('#' + '...') / words."""
    max_bullet_lines: float = ranged(0.9, ge=0, le=1)
    max_ellipsis_lines: float = ranged(0.3, ge=0, le=1)
    min_alpha_words: float = ranged(0.5, ge=0, le=1)
    """Words with at least one letter / words (Gopher: 0.8, which rejects technical prose)."""
    min_stop_words: int = ranged(2, ge=0)
    max_dup_line_frac: float = ranged(0.3, ge=0, le=1)
    max_top_ngram_frac: float = ranged(0.2, ge=0, le=1)
    c4_lorem_ipsum: bool = True
    c4_javascript: bool = True
    """Drop pages that ask for JavaScript to be enabled."""
    c4_curly_brace: bool = False
    """C4 drops any page with '{'; off because it rejects every technical document."""


@dataclass(frozen=True)
class CodeQualityConfig:
    """Rules for source files (StarCoder-style); defaults in docs/cleaning.md."""

    max_bytes: int = ranged(1_000_000, ge=1)
    max_line_len: int = ranged(1000, ge=1)
    max_mean_line_len: float = ranged(100.0, gt=0)
    min_alnum_frac: float = ranged(0.25, ge=0, le=1)
    max_blob_frac: float = ranged(0.3, ge=0, le=1)
    """Characters inside base64/hex runs of ≥ 64 characters / all characters."""
    drop_autogenerated: bool = True
    """Drop files whose first lines say they are generated ('DO NOT EDIT', 'generated by')."""


@dataclass(frozen=True)
class CleanConfig:
    """The clean phase: read → normalize → language ID → quality → PII → toxicity (docs/cleaning.md)."""

    max_doc_bytes: int = ranged(10_000_000, ge=1)
    """Larger records are quarantined as too_large before they are decoded."""
    min_en_score: float = ranged(0.5, ge=0, le=1)
    """fastText probability needed to label a document without Hangul `en`; below it, `other`."""
    mixed_hangul_ratio: float = ranged(0.15, ge=0, le=1)
    """A document whose letters are at least this share Hangul is `ko` (Korean with English terms)."""
    keep_other: bool = False
    """Keep documents whose language is neither ko nor en (they cannot enter the mix)."""
    dump_dropped: bool = False
    """Write every dropped document to RUN/data/clean/dropped/ with its step and reason."""
    ko: KoQualityConfig = field(default_factory=KoQualityConfig)
    en: EnQualityConfig = field(default_factory=EnQualityConfig)
    code: CodeQualityConfig = field(default_factory=CodeQualityConfig)


PII_TYPES = (
    "secret",
    "email",
    "rrn",
    "frn",
    "card",
    "brn",
    "phone",
    "driver_license",
    "bank_account",
    "passport",
    "ip",
)
"""Every PII type gecko.data.steps.pii finds, in order of priority: a span taken by an earlier type is never
matched again by a later one."""


@dataclass(frozen=True)
class PiiConfig:
    enabled: bool = True
    """Replace PII by typed placeholders such as <PHONE>; counts per type go to the document metadata."""
    types: tuple[str, ...] = PII_TYPES
    """Types to replace (all by default; docs/cleaning.md lists each one's rule)."""


@dataclass(frozen=True)
class ToxicityConfig:
    enabled: bool = True
    threshold: float = ranged(0.7, ge=0, le=1)
    """Drop a document whose length-weighted toxicity probability reaches this. 0.7 favours precision
    (APEACH test P 0.86 / R 0.61; drops 3% of NSMC reviews vs 9% at 0.5): docs/cleaning.md."""
    langs: tuple[str, ...] = ("ko",)
    """Languages scored; the shipped model is trained on Korean data only."""


@dataclass(frozen=True)
class DedupConfig:
    """Exact + MinHash-LSH near-duplicate dedup and boilerplate-line removal (docs/dedup.md)."""

    exact: bool = True
    """Drop documents whose whitespace- and case-normalized text equals a survivor's."""
    near: bool = True
    """MinHash-LSH near-duplicate dedup."""
    threshold: float = ranged(0.8, gt=0, le=1)
    """Estimated Jaccard similarity of shingle sets at or above which two documents are duplicates."""
    bands: int = ranged(16, ge=1)
    """LSH bands; with `rows` the candidate S-curve is centred near (1/bands)^(1/rows) ≈ 0.71, below the
    threshold, so recall is high and every candidate pair is then checked against the threshold."""
    rows: int = ranged(8, ge=1)
    """MinHash values per band; num_perm = bands × rows."""
    shingle_ko: int = ranged(3, ge=1)
    """Korean shingles: n-grams of this many normalized units (Hangul syllables with spaces, punctuation and
    one-syllable particles ignored; gecko.data.text.overlap). 3 recalls more re-typed copies than 4 or 5 with no
    false positive more on 6,000 real hard negatives (docs/dedup.md, bench/ko_dedup_eval.py)."""
    shingle_en: int = ranged(5, ge=1)
    """English (and other) shingles: n-grams of normalized words (NFKC, case-folded, punctuation ignored)."""
    shingle_code: int = ranged(5, ge=1)
    """Code shingles: n-grams of identifier/operator tokens."""
    seed: int = 1
    """MinHash permutation seed."""
    boilerplate_min_docs: int = ranged(20, ge=0)
    """A line found in at least this many documents is boilerplate and removed (0: off)."""
    boilerplate_min_line_chars: int = ranged(30, ge=0)
    """Shorter lines are never treated as boilerplate (headings, list markers)."""
    boilerplate_langs: tuple[str, ...] = ("ko", "en")
    min_chars_after_strip: int = ranged(20, ge=0)
    """A document left shorter than this by boilerplate removal is dropped as boilerplate_only."""


@dataclass(frozen=True)
class BenchmarkConfig:
    name: str
    path: str
    """File or folder of the benchmark's items."""
    format: str
    """A key of gecko.data.steps.decontam.BENCHMARK_FORMATS: kmmlu/mmlu: CSV folders; humaneval/mbpp/gsm8k/arc/piqa/
    winogrande/lambada: their released JSONL (a file or folder); kobest: the TSV folder; jsonl: `text` per line."""


@dataclass(frozen=True)
class DecontamConfig:
    """Benchmark decontamination by long n-gram overlap (gecko.data.steps.decontam)."""

    benchmarks: tuple[BenchmarkConfig, ...] = ()
    """Benchmarks to check against; none: the phase copies its input."""
    ngram: int = ranged(13, ge=1)
    """Overlap length in Korean-aware word units (GPT-3's 13)."""
    min_item_units: int = ranged(8, ge=1)
    """Items shorter than ngram but at least this long are matched as a whole; shorter ones are skipped and
    counted in the report."""
    action: Literal["drop", "flag"] = "drop"
    """drop: remove contaminated documents; flag: keep them with metadata["contamination"]."""


@dataclass(frozen=True)
class ParallelSourceConfig:
    name: str
    path: str
    format: Literal["tsv", "jsonl", "lines", "tar"] = "tsv"
    """tsv: columns en, ko (a header row naming them, or the first two columns); jsonl: fields en, ko;
    lines: `path` is the Korean file and `en_path` the line-aligned English file; tar: `path` is a
    .tar(.gz) archive whose NAME.ko members each have a line-aligned NAME.en (read without extracting)."""
    en_path: str | None = None
    """English side of a `lines` source."""


@dataclass(frozen=True)
class AlignConfig:
    """ko↔en translation documents built from parallel pairs (gecko.data.steps.align)."""

    sources: tuple[ParallelSourceConfig, ...] = ()
    share: float = ranged(0.02, ge=0, lt=1)
    """Target share of the corpus tokens held by alignment documents; ko/en/code shares fill the rest."""
    pairs_per_doc: int = ranged(8, ge=1)
    """Pairs packed into one document (one template and direction per document)."""
    min_len_ratio: float = ranged(0.15, gt=0)
    """Bounds on characters(ko) / characters(en); outside them a pair is misaligned."""
    max_len_ratio: float = ranged(1.5, gt=0)
    min_chars: int = ranged(2, ge=0)
    max_chars: int = ranged(2000, ge=1)


@dataclass(frozen=True)
class SlurmConfig:
    """sbatch settings of `data.engine: slurm` (datatrove's SlurmPipelineExecutor): every stage of a phase is
    one job array, each depending on the one before, and `gecko data run` waits for them (docs/dedup.md)."""

    partition: str = ""
    """Required with engine slurm (`sinfo` lists the partitions)."""
    time: str = "24:00:00"
    """Time limit of each array task: MM, HH:MM:SS or D-HH:MM:SS (quote it in YAML: 24:00:00 bare is a
    number there)."""
    cpus_per_task: int = ranged(1, ge=1)
    mem_per_cpu_gb: int = ranged(2, ge=1)
    sbatch_args: dict[str, str] = field(default_factory=dict)
    """More `#SBATCH --KEY=VALUE` lines, e.g. {account: proj, qos: normal, constraint: cpu}."""
    env_command: str = ""
    """Shell line each task runs first (e.g. `source /shared/venv/bin/activate`); empty: the bin folder of
    the Python running gecko goes first on PATH (jobs inherit the rest of the environment)."""


@dataclass(frozen=True)
class DataConfig:
    sources: tuple[SourceConfig, ...] = ()
    mix: dict[str, float] = field(default_factory=lambda: {"ko": 0.35, "en": 0.28, "code": 0.37})
    """Target share of each language in the corpus, in estimated tokens (bytes / bytes_per_token: the
    tokenizer is trained after mixing). Must sum to 1."""
    bytes_per_token: dict[str, float] = field(default_factory=lambda: {"ko": 3.86, "en": 3.55, "code": 3.70})
    """UTF-8 bytes per token of each language, for the token estimate of the mix (docs/dedup.md: measured
    with the demo BPE); a language not listed counts 4.0."""
    source_weights: dict[str, float] = field(default_factory=dict)
    """Epoch weight per source name (default 1): 2 doubles a source within its language, 0.5 halves it.
    Capped at 1 + max_repeat."""
    min_chars: int = ranged(20, ge=0)
    """Documents shorter than this (after normalization) are dropped as too_short."""
    max_repeat: float = ranged(0.0, ge=0)
    """Extra passes allowed over a language's documents when it is short of its share. 0 (default): never
    repeat; the scarcest language sets the corpus size and the others are down-sampled."""
    workers: int = ranged(1, ge=1)
    """Parallel tasks of the datatrove executor; the output is identical for any value."""
    clean: CleanConfig = field(default_factory=CleanConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    toxicity: ToxicityConfig = field(default_factory=ToxicityConfig)
    engine: Literal["local", "ray", "slurm"] = "local"
    """datatrove executor of the clean, dedup and decontam phases: local processes, a Ray cluster (the one
    RAY_ADDRESS names, else a one-machine Ray), or Slurm job arrays (data.slurm). Same output for each."""
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
