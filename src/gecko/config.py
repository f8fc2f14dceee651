"""One typed config drives a run: YAML → `section.key=value` overrides → validation → frozen dataclasses.

Each stage receives only its own section. Unknown keys and wrong types are errors that name the key path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import re
import sysconfig
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gecko.errors import ConfigError, pip_hint

Lang = Literal["ko", "en", "code"]
SourceFormat = Literal["jsonl", "json", "parquet", "text", "tsv", "csv", "code"]
LANGS: tuple[str, ...] = typing.get_args(Lang)
Preset = Literal["tiny", "small", "125m", "350m", "1b", "gecko-7b"]
"""Model shapes defined in gecko.model.presets (a test keeps the two lists equal)."""


@dataclass(frozen=True)
class Range:
    """Bounds a numeric field must satisfy; None is allowed only where the field's type admits it."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def admits(self, value: float) -> bool:
        """NaN and infinities fail: comparisons with NaN are false, and no field means ±inf."""
        return (
            math.isfinite(value)
            and (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def __str__(self) -> str:
        bounds = [
            f"{op} {bound:g}"
            for op, bound in (("≥", self.ge), (">", self.gt), ("≤", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(bounds)


def ranged(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A field with a default and the range its values must lie in, checked when a config is loaded."""
    return field(default=default, metadata={"range": Range(ge, gt, le, lt)})


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
    engine: Literal["local", "ray"] = "local"
    """datatrove executor for dedup/decontam: local processes, or a Ray cluster (ray.init before)."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    align: AlignConfig = field(default_factory=AlignConfig)


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = ranged(32000, ge=512)
    """Including special and reserved tokens."""
    min_frequency: int = ranged(2, ge=1)
    """A pair must occur this often to be merged."""
    max_train_bytes: int | None = ranged(None, ge=1)
    """Train on at most this many bytes of the corpus, split across languages by lang_shares (None: all)."""
    lang_shares: dict[str, float] | None = None
    """Share of max_train_bytes per language (None: equal). A language with less text gives its unused share
    to the others in proportion. More Korean buys Korean vocabulary (docs/tokenizer.md has the ablation)."""
    character_coverage: float = ranged(0.9999, gt=0, le=1)
    """Share of training character occurrences covered by the BPE alphabet; rarer characters (Hanja, emoji)
    get no vocabulary slot of their own and are spelled with byte-fallback tokens (SentencePiece's rule)."""


@dataclass(frozen=True)
class TokenizeConfig:
    val_fraction: float = ranged(0.05, gt=0, lt=1)
    """Share of documents (per language, chosen by hashed id) held out for validation."""
    workers: int = ranged(0, ge=0)
    """Encoding processes (0: one per CPU core available to this process; 1: encode in this process)."""
    chunk_bytes: int = ranged(8 << 20, ge=1)
    """Largest corpus byte range per work unit, the grain of parallel encoding and of resuming an interrupted
    run (a smaller corpus is cut finer, into up to 256 units of at least 256 KiB). The shards are identical
    for any value."""


@dataclass(frozen=True)
class CompareConfig:
    """`gecko tokenizer compare`: efficiency on held-out text, ours beside reference tokenizers."""

    heldout: tuple[SourceConfig, ...] = ()
    """Text of other domains than the tokenizer's training text (read like data.sources)."""
    references: str | None = "../shared/data/tokenizers"
    """Folder searched for `*tokenizer.json` and SentencePiece `*.model` files (None: ours only)."""
    max_bytes_per_lang: int = ranged(2_000_000, ge=1)
    """Held-out UTF-8 bytes scored per language, taken round-robin across its sources."""


@dataclass(frozen=True)
class ModelConfig:
    preset: Preset = "tiny"
    """Named shape from gecko.model.presets; the fields below override it when set."""
    dim: int | None = ranged(None, ge=1)
    n_layers: int | None = ranged(None, ge=1)
    n_heads: int | None = ranged(None, ge=1)
    n_kv_heads: int | None = ranged(None, ge=1)
    ffn_dim: int | None = ranged(None, ge=1)
    max_seq_len: int | None = ranged(None, ge=1)
    rope_theta: float | None = ranged(None, gt=0)
    tie_embeddings: bool | None = None


@dataclass(frozen=True)
class TrainStageConfig:
    """One stage of staged (continued) pretraining; see gecko.train.stages."""

    name: str
    steps: int
    lr: float
    """Peak lr of this stage; its own warmup, then train.schedule's decay over its own steps."""
    warmup_steps: int = 0
    trainable: Literal["all", "new_embeddings", "embeddings"] = "all"
    """new_embeddings: only the rows of tokens added by `gecko tokenizer extend` (input and output);
    embeddings: every embedding row; all: the whole model."""


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = ranged(256, ge=8)
    """Tokens per packed sample."""
    batch_size: int = ranged(8, ge=1)
    """Packed samples per micro-batch (per process)."""
    grad_accum: int = ranged(1, ge=1)
    """Micro-batches per optimizer step."""
    steps: int = ranged(100, ge=1)
    lr: float = ranged(3e-3, gt=0)
    min_lr_ratio: float = ranged(0.1, ge=0, le=1)
    """Final learning rate as a fraction of lr."""
    warmup_steps: int = ranged(10, ge=0)
    schedule: Literal["cosine", "linear", "wsd", "constant"] = "cosine"
    weight_decay: float = ranged(0.1, ge=0)
    """Applied to 2-D weights only (not norms or biases)."""
    beta1: float = ranged(0.9, ge=0, lt=1)
    beta2: float = ranged(0.95, ge=0, lt=1)
    grad_clip: float | None = ranged(1.0, gt=0)
    """Max global grad norm (null: no clipping)."""
    doc_mask: bool = True
    """Mask attention at document boundaries and restart positions per document; False is the paper's
    naive packing."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Autocast dtype for the forward pass; master weights stay float32."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    """torch.compile each block and the loss (GPU runs; costs ~1 min of compilation at start)."""
    activation_checkpointing: Literal["none", "selective", "full"] = "none"
    """Recompute activations in backward to save memory: "selective" keeps matmul and attention outputs,
    "full" keeps only each block's input."""
    z_loss: float = ranged(0.0, ge=0)
    """Weight of PaLM's z-loss (logsumexp² of the logits) added to the objective; 1e-4 is typical."""
    loss_spike_factor: float = ranged(0.0, ge=0)
    """Skip the update when the loss exceeds this multiple of the mean of the last 20 accepted losses
    (0: off; NaN/inf losses and grad norms are always skipped)."""
    peak_tflops: float | None = ranged(None, gt=0)
    """The card's bf16 matmul rate for MFU; None: measured at start on CUDA (no MFU on CPU)."""
    log_every: int = ranged(10, ge=1)
    eval_every: int | None = ranged(None, ge=1)
    """Steps between validation bits-per-byte passes (null: only at the start and end)."""
    eval_tasks: tuple[str, ...] = ()
    """Benchmarks (names as in eval.tasks, bpb aside) also scored at every validation point, on the main
    process, with the eval section's settings; logged as `eval_tasks` in metrics.jsonl and TensorBoard."""
    eval_tasks_limit: int | None = ranged(20, ge=1)
    """Items per task (per subject for KMMLU and MMLU) at each of those points; None: eval.limit."""
    checkpoint_every: int | None = ranged(None, ge=1)
    """Steps between checkpoints (null: only at the end)."""
    keep_checkpoints: int = ranged(3, ge=1)
    """Complete checkpoints kept; older ones are deleted once a newer one is complete."""
    async_checkpoint: bool = True
    """On CUDA, copy the state to host memory and write it in the background while training goes on (the
    copy is the only stall); CPU runs save synchronously."""
    stages: tuple[TrainStageConfig, ...] = ()
    """Consecutive stages, each with its own steps, lr, warmup and trainable set (empty: one stage of
    `steps` at `lr`). When set, `steps` must equal their sum; `lr` and `warmup_steps` are not used."""


EVAL_TASKS = (
    "bpb",
    "kmmlu",
    "mmlu",
    "gsm8k",
    "humaneval",
    "mbpp",
    "kobest_boolq",
    "kobest_copa",
    "kobest_hellaswag",
    "kobest_sentineg",
    "kobest_wic",
    "arc_easy",
    "arc_challenge",
    "piqa",
    "winogrande",
    "lambada",
)
"""Built-in eval tasks; a name from eval.mc_sets or a task file is a task too."""
SUITES = {
    "early": (
        "bpb",
        "kobest_boolq",
        "kobest_copa",
        "kobest_hellaswag",
        "kobest_sentineg",
        "kobest_wic",
        "arc_easy",
        "arc_challenge",
        "piqa",
        "winogrande",
        "lambada",
        "kmmlu",
        "mmlu",
    )
}
"""Named task lists (docs/evaluation.md): `early` gives signal at proxy scale (bits per byte, cloze tasks)."""


@dataclass(frozen=True)
class MCSetConfig:
    """A local multiple-choice set (JSONL or CSV) mapped onto question / choices / answer."""

    name: str
    path: str
    question: str = "question"
    """Column (CSV header) or field (JSONL) with the question text."""
    choices: tuple[str, ...] = ("A", "B", "C", "D")
    """One column per option, in order; the options are lettered A, B, …"""
    answer: str = "answer"
    answer_base: int | None = ranged(None, ge=0, le=1)
    """None: the answer is a letter; 0 or 1: an integer index counted from it."""


@dataclass(frozen=True)
class EvalConfig:
    max_tokens_per_lang: int = ranged(50_000, ge=0)
    """Validation tokens scored per language (0: all)."""
    batch_size: int = ranged(8, ge=1)
    tasks: tuple[str, ...] = ("bpb",)
    """What `gecko eval` scores; each also names a local MC set from mc_sets."""
    limit: int | None = ranged(None, ge=1)
    """Items per task (per subject for KMMLU and MMLU, as lm-eval's --limit); None: all."""
    missing_data: Literal["error", "skip"] = "error"
    """A task whose data folder is absent: stop with an error, or record it as skipped with the path."""
    kmmlu_dir: str = "../shared/data/eval/kmmlu/data"
    """KMMLU as released: {Subject}-dev.csv and {Subject}-test.csv."""
    mmlu_dir: str = "../shared/data/eval/mmlu/data"
    """MMLU as released: dev/ and test/ with {subject}_{split}.csv."""
    gsm8k_dir: str = "../shared/data/eval/gsm8k/grade_school_math/data"
    humaneval_file: str = "../shared/data/eval/humaneval/data/HumanEval.jsonl.gz"
    mbpp_file: str = "../shared/data/eval/mbpp/mbpp.jsonl"
    mc_shots: int = ranged(5, ge=0)
    """Few-shot examples for KMMLU and MMLU, taken in order from each subject's dev split."""
    gsm8k_shots: int = ranged(8, ge=0)
    """Chain-of-thought exemplars before each GSM8K question (at most 8 with gsm8k_fewshot=standard)."""
    gsm8k_fewshot: Literal["standard", "train"] = "standard"
    """standard: the 8 hand-written exemplars of Wei et al. (2022), as lm-eval's gsm8k_cot; train: the first
    gsm8k_shots worked solutions of gsm8k_dir/train.jsonl."""
    gen_max_new_tokens: int = ranged(256, ge=1)
    """Generation budget for GSM8K and code."""
    code_samples: int = ranged(1, ge=1)
    """Completions per code problem (n); pass@k needs n ≥ k."""
    code_pass_k: tuple[int, ...] = (1,)
    code_temperature: float = ranged(0.0, ge=0)
    """0: greedy (use with code_samples=1); 0.2–0.8 for pass@k with k > 1."""
    sandbox_timeout_s: float = ranged(10.0, gt=0)
    """Wall-clock limit per program (CPU limit is the same, rounded up)."""
    sandbox_workers: int = ranged(0, ge=0)
    """int >= 0; programs run in parallel by code tasks (each its own sandbox); 0 = one per CPU core."""
    unsafe_no_sandbox: bool = False
    """bool; true runs model code where the kernel sandbox is unavailable (rlimits and an audit hook only)."""
    mc_sets: tuple[MCSetConfig, ...] = ()
    """Extra local multiple-choice sets, scored zero-shot by the KMMLU/MMLU engine."""
    suite: Literal["none", "early"] = "none"
    """A named task list added to `tasks` (config.SUITES); `train.eval_tasks` may name a suite too."""
    formulation: Literal["mc", "cloze", "both"] = "both"
    """Multiple-choice formulation: lettered options (mc), answer texts scored as continuations (cloze,
    OLMES's RC, normalized raw/per token/per character), or both side by side."""
    task_files: tuple[str, ...] = ()
    """TASK.yaml files of local multiple-choice tasks (`gecko eval --task`), docs/evaluation.md."""
    kobest_dir: str = "../shared/data/eval/kobest/v1.0"
    """KoBEST as released: {BoolQ,COPA,HellaSwag,SentiNeg,WiC}/{train,dev,test}.tsv."""
    arc_dir: str = "../shared/data/eval/arc"
    """ARC-Easy/ and ARC-Challenge/ with ARC-*-{Train,Dev}.jsonl (dev is scored, train gives the shots)."""
    piqa_dir: str = "../shared/data/eval/piqa"
    """valid.jsonl and valid-labels.lst."""
    winogrande_dir: str = "../shared/data/eval/winogrande"
    """dev.jsonl (scored) and train_m.jsonl (shots), labels in the `answer` field."""
    lambada_file: str = "../shared/data/eval/lambada_openai/lambada_test.jsonl"


@dataclass(frozen=True)
class ExportConfig:
    dtype: Literal["float32", "bfloat16"] = "float32"
    max_shard_bytes: int = ranged(2 << 30, ge=1)
    """Weights larger than this are split into model-0000i-of-0000n.safetensors plus an index."""
    license: str = "apache-2.0"
    """SPDX id written to the model card (see docs/release.md for the data and tokenizer licences)."""
    gguf: Literal["f32", "f16", "bf16", "q8_0"] | None = None
    """Also write RUN/export/model-{gguf}.gguf through llama.cpp's converter (`gecko export --gguf`)."""


@dataclass(frozen=True)
class GenerateConfig:
    prompts: tuple[str, ...] = ("대한민국의 수도는",)
    prompts_file: str | None = None
    """Text file with one prompt per line (blank lines skipped); replaces `prompts` when set."""
    max_new_tokens: int = ranged(48, ge=1)
    temperature: float = ranged(0.8, ge=0)
    top_k: int = ranged(50, ge=0)
    top_p: float = ranged(1.0, gt=0, le=1)
    repetition_penalty: float = ranged(1.0, gt=0)
    """CTRL/Hugging Face penalty on tokens already in the prompt or output (1.0: off)."""
    stop: tuple[str, ...] = ()
    """Stop a completion at the first of these strings (the string itself is cut off)."""
    batch_size: int = ranged(8, ge=1)
    """Prompts decoded together (left-padded, one KV cache)."""
    stream: bool = False
    """Print tokens as they are sampled (one prompt at a time)."""
    seed: int = 0


@dataclass(frozen=True)
class ChatSourceConfig:
    name: str
    path: str
    lang: Lang
    format: Literal["jsonl", "csv", "tsv"] = "jsonl"
    """jsonl: {"messages": [{"role": "system"|"user"|"assistant", "content": str}, …]} per line;
    csv/tsv: one question/answer pair per row, with a header."""
    question: str = "Q"
    """csv/tsv column holding the user turn."""
    answer: str = "A"
    """csv/tsv column holding the assistant turn."""
    prompt: str = "{question}"
    """User turn built from the question column, e.g. "Translate into Korean: {question}"."""
    max_conversations: int | None = ranged(None, ge=1)


@dataclass(frozen=True)
class SFTConfig:
    """`gecko sft`: instruction tuning of an exported (or any LLaMA-format) Hugging Face model."""

    sources: tuple[ChatSourceConfig, ...] = ()
    init_from: str | None = None
    """Hugging Face folder to start from (None: RUN/export/hf); its tokenizer_config.json must hold a
    chat template."""
    system: str | None = None
    """System message for conversations that have none (None: no system turn)."""
    val_fraction: float = ranged(0.05, gt=0, lt=1)
    """Share of conversations (chosen by hashed id) held out for evaluation."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            seq_len=256, batch_size=8, steps=200, lr=3e-4, warmup_steps=20, eval_every=100, log_every=10
        )
    )
    """The same trainer settings as pretraining; lr is ~10× lower because the model is already trained."""


Sink = Literal["tensorboard", "wandb", "mlflow", "trackio", "jsonl"]


@dataclass(frozen=True)
class LoggingConfig:
    """Experiment trackers (gecko.tracking). The data, train, eval and sft stages log the resolved config,
    training metrics, eval tables and their reports and plots to every sink listed. No field here changes
    any stage's output."""

    sinks: tuple[Sink, ...] = ()
    """Any of tensorboard (RUN/STAGE/tensorboard), wandb (offline by default: RUN/wandb), mlflow (RUN/mlflow.db),
    trackio ($TRACKIO_DIR) and jsonl (RUN/tracking.jsonl). tensorboard needs the `train` extra, the others
    the `trackers` extra."""
    project: str = "gecko"
    """W&B project, MLflow experiment and trackio project name."""
    run_name: str | None = None
    """Groups the stages' tracker runs (named RUN_NAME-STAGE); None: the run folder's name."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """offline writes RUN/wandb only (upload later with `wandb sync RUN/wandb/offline-run-*`); online streams
    to the W&B server (needs `wandb login`)."""
    wandb_entity: str | None = None
    """W&B team or user (None: the logged-in user's default)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI, e.g. http://mlflow.internal:5000 (None: sqlite:///RUN/mlflow.db, artifacts in
    RUN/mlartifacts)."""


@dataclass(frozen=True)
class GeckoConfig:
    run_dir: str = "runs/demo"
    """Every stage writes below this directory."""
    seed: int = 1234
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


@dataclass(frozen=True)
class Origin:
    """Where a config's values came from, so that an error names the YAML file and line (or the override)."""

    file: str = "<defaults>"
    lines: dict[str, int] = field(default_factory=dict)
    """Dotted key path (`data.sources[0].lang`) → line in `file`."""
    overrides: dict[str, str] = field(default_factory=dict)
    """Dotted key path → the `key=value` argument that set it."""

    def at(self, key: str) -> str:
        """`file:line` of `key`, of its nearest parent written in the file, or the override that set it."""
        while key:
            if key in self.overrides:
                return f"override {self.overrides[key]}"
            if key in self.lines:
                return f"{self.file}:{self.lines[key]}"
            key = re.sub(r"(\.?[^.\[]+|\[\d+\])$", "", key)
        return self.file

    def __str__(self) -> str:
        return self.file


def load_config(
    path: str | Path | None = None, overrides: typing.Sequence[str] = (), *, needs_device: bool = False
) -> GeckoConfig:
    """Read YAML (or start from defaults), apply `a.b=value` overrides, validate, freeze. `needs_device`: the
    caller will train or run the model, so train.device must exist here (data stages run on CPU machines)."""
    raw: dict[str, Any] = {}
    origin = Origin()
    if path is not None:
        raw, lines = read_yaml(Path(path))
        origin = Origin(str(path), lines)
    for item in overrides:
        origin.overrides[_apply_override(raw, item)] = item
    cfg = build(GeckoConfig, raw, origin, "")
    validate(cfg, origin)
    if needs_device:
        _validate_device(cfg.train.device, origin)
    return cfg


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping in a YAML file and the line of every key; unreadable files, bad encodings, YAML syntax
    errors and duplicate keys are one-line errors with the line (and column)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as Windows editors write it, is not an error
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: not UTF-8 (byte 0x{data[e.start]:02x}); save the config as UTF-8"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context, opened = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and opened is not None and opened is not mark:  # e.g. a bracket left open lines earlier
            problem += f" ({context} started at line {opened.line + 1}, column {opened.column + 1})"
        raise ConfigError(f"{at}: invalid YAML: {problem}") from None
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: top level must be a mapping, found {type(raw).__name__}")
    lines: dict[str, int] = {}
    _key_lines(node, "", path, lines)
    return raw, lines


def _key_lines(node: yaml.Node, prefix: str, path: Path, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            if key in lines:
                raise ConfigError(
                    f"{path}:{key_node.start_mark.line + 1}: duplicate key {key} (first on line {lines[key]})"
                )
            lines[key] = key_node.start_mark.line + 1
            _key_lines(value_node, key, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[f"{prefix}[{i}]"] = item.start_mark.line + 1
            _key_lines(item, f"{prefix}[{i}]", path, lines)


def _apply_override(raw: dict[str, Any], item: str) -> str:
    """Set `key.path=value` in the raw mapping and return the key path."""
    key, sep, value = item.partition("=")
    if not sep or not key or "" in key.split("."):
        raise ConfigError(f"override {item!r}: expected key.path=value")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    try:
        node[leaf] = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(
            f"override {item!r}: invalid YAML value: {getattr(e, 'problem', None) or e}"
        ) from None
    return key


def build(cls: type, raw: Any, where: Origin, prefix: str) -> Any:
    """Turn a mapping into dataclass `cls`, checking every key, value type and range."""
    if not isinstance(raw, dict):
        key = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where.at(key)}: {key} must be a mapping, found {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ConfigError(
            f"{where.at(f'{prefix}{unknown[0]}')}: unknown key {prefix}{unknown[0]!s} (known keys of "
            f"{prefix or 'the top level'}: {', '.join(sorted(fields))})"
        )
    missing = [f.name for f in fields.values() if f.name not in raw and _required(f)]
    if missing:
        key = f"{prefix}{missing[0]}"
        choices = typing.get_args(hints[missing[0]])
        allowed = (
            f" (one of {', '.join(map(str, choices))})"
            if typing.get_origin(hints[missing[0]]) is Literal
            else ""
        )
        raise ConfigError(f"{where.at(prefix.rstrip('.') or 'config')}: {key} is required{allowed}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        kwargs[name] = _coerce(hints[name], value, where, key)
        bounds = fields[name].metadata.get("range")
        if bounds is not None and kwargs[name] is not None and not bounds.admits(kwargs[name]):
            nullable = type(None) in typing.get_args(hints[name])
            raise ConfigError(
                f"{where.at(key)}: {key}={value!r} must be {bounds}" + (" (or null)" if nullable else "")
            )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # a required field is missing, or __post_init__ rejects a value
        key = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where.at(key)}: {key}: {e}") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _coerce(tp: Any, value: Any, where: Origin, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(typing.cast(type, tp), value, where, key + ".")  # a field's type, never an instance
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where.at(key)}: {key}={value!r} must be one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where.at(key)}: {key} must be a list, found {value!r}")
        return tuple(_coerce(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where.at(key)}: {key} must be a mapping, found {value!r}")
        return {
            _coerce(args[0], k, where, key): _coerce(args[1], v, where, f"{key}.{k}")
            for k, v in value.items()
        }
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ConfigError(f"{where.at(key)}: {key}={value!r} must be of type {tp.__name__}")
    return value


def validate(cfg: GeckoConfig, where: Origin) -> None:
    """Cross-field checks that types and ranges alone cannot express; each message starts with its key."""
    names = [s.name for s in cfg.data.sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    total = sum(cfg.data.mix.values())
    fed = {s.lang for s in cfg.data.sources}
    starved = sorted(lang for lang, share in cfg.data.mix.items() if share > 0 and lang not in fed)
    unknown = sorted(set(cfg.data.mix) - set(LANGS))
    t = cfg.train
    _check(
        where,
        [
            (not dupes, f"data.sources: duplicate source name {dupes[0] if dupes else ''!r}"),
            (
                not unknown,
                f"data.mix.{unknown[0] if unknown else ''}: unknown language (known: {', '.join(LANGS)})",
            ),
            (
                abs(total - 1.0) <= 1e-6 and all(v >= 0 for v in cfg.data.mix.values()),
                f"data.mix shares must be ≥ 0 and sum to 1, found sum {total:.4f}",
            ),
            (
                not (cfg.data.sources and starved),
                f"data.mix.{starved[0] if starved else ''} > 0 but no source has lang {starved[0] if starved else ''}",
            ),
            (
                bool(t.stages) or t.warmup_steps < t.steps,  # with stages, each stage has its own warmup
                f"train.warmup_steps={t.warmup_steps} must be < train.steps ({t.steps})",
            ),
            (
                t.loss_spike_factor == 0 or t.loss_spike_factor > 1,
                f"train.loss_spike_factor={t.loss_spike_factor} must be 0 (off) or > 1",
            ),
            (
                cfg.sft.train.warmup_steps < cfg.sft.train.steps,
                f"sft.train.warmup_steps={cfg.sft.train.warmup_steps} must be < sft.train.steps ({cfg.sft.train.steps})",
            ),
        ],
    )
    _validate_eval(cfg.eval, t.eval_tasks, where)
    _validate_stages(t, where)
    _validate_data_phases(cfg.data, where)
    _validate_logging(cfg.logging, where)


def _check(where: Origin, checks: list[tuple[bool, str]]) -> None:
    """Raise the first failed check's message, located at the key it starts with."""
    for ok, message in checks:
        if not ok:
            match = re.match(r"[\w.\[\]]*", message)
            assert match is not None  # the pattern matches the empty string
            key = match[0].rstrip(".")
            raise ConfigError(f"{where.at(key)}: {message}")


def _validate_device(device: str, where: Origin) -> None:
    """A run asking for CUDA on a machine without it fails now, not after the data stage has run for hours."""
    if device == "cuda":
        import torch  # only here: loading a config must not cost a torch import

        _check(
            where,
            [
                (
                    torch.cuda.is_available(),
                    "train.device='cuda' but no CUDA device is available (use auto or cpu)",
                )
            ],
        )


def expand_tasks(tasks: tuple[str, ...], suite: str = "none") -> tuple[str, ...]:
    """Task names with every suite name replaced by its tasks (and `suite` appended), without repeats."""
    names = [t for name in (*tasks, *([suite] if suite != "none" else [])) for t in SUITES.get(name, (name,))]
    return tuple(dict.fromkeys(names))


def _validate_eval(e: EvalConfig, train_tasks: tuple[str, ...], where: Origin) -> None:
    known = EVAL_TASKS + tuple(SUITES) + tuple(m.name for m in e.mc_sets)
    benchmarks = [t for t in known if t != "bpb"]  # bpb already runs at every validation point
    bad_task = next((t for t in e.tasks if t not in known), None)
    # task files name their own tasks, read when the eval runs
    bad_train_task = next((t for t in train_tasks if t not in benchmarks and not e.task_files), None)
    clash = sorted({m.name for m in e.mc_sets} & set(EVAL_TASKS))
    too_big = [k for k in e.code_pass_k if not 1 <= k <= e.code_samples]
    _check(
        where,
        [
            (bad_task is None, f"eval.tasks: unknown task {bad_task!r} (known: {', '.join(known)})"),
            (
                bad_train_task is None,
                f"train.eval_tasks: unknown task {bad_train_task!r} (known: {', '.join(benchmarks)})",
            ),
            (
                e.gsm8k_fewshot != "standard" or 0 <= e.gsm8k_shots <= 8,
                f"eval.gsm8k_shots={e.gsm8k_shots}: the standard exemplars are 8 (set eval.gsm8k_fewshot=train for more)",
            ),
            (not clash, f"eval.mc_sets: name {clash[0] if clash else ''!r} is a built-in task"),
            (
                not too_big,
                f"eval.code_pass_k contains {too_big[0] if too_big else ''}, but pass@k needs "
                f"1 ≤ k ≤ eval.code_samples ({e.code_samples})",
            ),
        ],
    )


def _validate_stages(t: TrainConfig, where: Origin) -> None:
    """train.stages must add up to train.steps, so the schedule, checkpoints and resume agree on the end."""
    total = sum(s.steps for s in t.stages)
    _check(
        where,
        [
            (
                not t.stages or total == t.steps,
                f"train.steps={t.steps} but train.stages add up to {total} steps; set train.steps={total}",
            ),
            *(
                (
                    s.steps >= 1 and s.lr >= 0 and 0 <= s.warmup_steps < s.steps,
                    f"train.stages[{i}] ({s.name}): need steps ≥ 1, lr ≥ 0 and 0 ≤ warmup_steps < steps (found "
                    f"{s.steps}, {s.lr}, {s.warmup_steps})",
                )
                for i, s in enumerate(t.stages)
            ),
        ],
    )


def _validate_data_phases(data: DataConfig, where: Origin) -> None:
    """Dedup, decontam, align and mix settings (gecko.data.steps.dedup, decontam, align, mix)."""
    names = {s.name for s in data.sources} | {f"align/{a.name}" for a in data.align.sources}
    unknown = sorted(set(data.source_weights) - names)
    a = data.align
    _check(
        where,
        [
            (
                not unknown,
                f"data.source_weights.{unknown[0] if unknown else ''}: no such source "
                f"(known: {', '.join(sorted(names))})",
            ),
            (
                a.min_len_ratio < a.max_len_ratio,
                f"data.align.min_len_ratio={a.min_len_ratio} must be < data.align.max_len_ratio ({a.max_len_ratio})",
            ),
            (all(w >= 0 for w in data.source_weights.values()), "data.source_weights must be ≥ 0"),
            (all(v > 0 for v in data.bytes_per_token.values()), "data.bytes_per_token must be > 0"),
        ],
    )


SINK_PACKAGES: dict[str, tuple[str, str] | None] = {
    "tensorboard": ("tensorboard", "train"),
    "wandb": ("wandb", "trackers"),
    "mlflow": ("mlflow", "trackers"),
    "trackio": ("trackio", "trackers"),
    "jsonl": None,
}
"""logging sink → (the module gecko.tracking imports for it, the extra that installs it); None: no package."""


def missing_package(sinks: tuple[str, ...]) -> str | None:
    """The message for the first sink whose package is not installed (found without importing it, so loading
    a config stays fast), or None."""
    for sink in sinks:
        package = SINK_PACKAGES[sink]
        if package is not None and importlib.util.find_spec(package[0]) is None:
            module, extra = package
            return (
                f"logging.sinks includes {sink} but the {module} package is not installed: "
                f"{pip_hint(extra)} (or remove {sink} from logging.sinks)"
            )
    return None


def _validate_logging(c: LoggingConfig, where: Origin) -> None:
    """A sink whose package is missing stops the command now, not when the stage that logs starts."""
    repeated = sorted({s for s in c.sinks if c.sinks.count(s) > 1})
    missing = missing_package(c.sinks)
    _check(
        where,
        [
            (not repeated, f"logging.sinks lists {repeated[0] if repeated else ''} twice"),
            (bool(c.project.strip()), "logging.project must not be empty"),
            (missing is None, missing or ""),
        ],
    )


def to_dict(obj: Any) -> Any:
    """JSON-safe view of a config (or section), saved next to every output."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def fingerprint(*parts: Any) -> str:
    """Stable short hash of config sections and upstream fingerprints."""
    blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
