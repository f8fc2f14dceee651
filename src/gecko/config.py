"""One typed config drives a run: YAML → `section.key=value` overrides → validation → frozen dataclasses.

Each stage receives only its own section. Unknown keys and wrong types are errors that name the key path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gecko.errors import ConfigError

Lang = Literal["ko", "en", "code"]
LANGS: tuple[str, ...] = typing.get_args(Lang)


@dataclass(frozen=True)
class SourceConfig:
    name: str
    """Short unique name; appears in document ids and stats."""
    path: str
    """File or directory, relative to the working directory."""
    lang: Lang
    """Language bucket the source feeds in the mix."""
    format: Literal["jsonl", "text", "tsv", "csv", "code"] = "jsonl"
    """jsonl: one JSON object per line; text: documents separated by blank lines; tsv/csv: one row per
    document; code: a directory tree of source files, one file per document."""
    text_field: str = "text"
    """Field (jsonl) or column header (tsv/csv) holding the text."""
    extensions: tuple[str, ...] = (".py",)
    """File extensions read when format is code."""
    max_docs: int | None = None
    """Read at most this many documents (None: all)."""


@dataclass(frozen=True)
class DataConfig:
    sources: tuple[SourceConfig, ...] = ()
    mix: dict[str, float] = field(default_factory=lambda: {"ko": 0.35, "en": 0.28, "code": 0.37})
    """Target share of each language in the corpus, measured in UTF-8 bytes (tokens need a tokenizer,
    which is trained after mixing). Must sum to 1."""
    min_chars: int = 20
    """Documents shorter than this (after normalization) are dropped as too_short."""
    max_repeat: float = 0.0
    """Extra passes allowed over a language's documents when it is short of its share. 0 (default): never
    repeat; the scarcest language sets the corpus size and the others are down-sampled."""


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 32000
    """Including special and reserved tokens."""
    min_frequency: int = 2
    """A pair must occur this often to be merged."""
    max_train_bytes: int | None = None
    """Train on at most this many bytes of the corpus, taken evenly across languages (None: all)."""
    character_coverage: float = 0.9999
    """Share of training character occurrences covered by the BPE alphabet; rarer characters (Hanja, emoji)
    get no vocabulary slot of their own and are spelled with byte-fallback tokens (SentencePiece's rule)."""


@dataclass(frozen=True)
class TokenizeConfig:
    val_fraction: float = 0.05
    """Share of documents (per language, chosen by hashed id) held out for validation."""
    workers: int = 0
    """Encoding processes (0: one per CPU core)."""
    chunk_bytes: int = 8 << 20
    """Corpus bytes per work unit: the grain of parallel encoding and of resuming an interrupted run. The
    shards are identical for any value."""


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "tiny"
    """Named shape from gecko.model.presets; the fields below override it when set."""
    dim: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    ffn_dim: int | None = None
    max_seq_len: int | None = None
    rope_theta: float | None = None
    tie_embeddings: bool | None = None


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 256
    """Tokens per packed sample."""
    batch_size: int = 8
    """Packed samples per micro-batch (per process)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    steps: int = 100
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of lr."""
    warmup_steps: int = 10
    schedule: Literal["cosine", "linear", "wsd", "constant"] = "cosine"
    weight_decay: float = 0.1
    """Applied to 2-D weights only (not norms or biases)."""
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    """Max global grad norm (0: no clipping)."""
    doc_mask: bool = True
    """Mask attention at document boundaries and restart positions per document; False is the paper's
    naive packing."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Autocast dtype for the forward pass; master weights stay float32."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    log_every: int = 10
    eval_every: int = 0
    """Steps between validation bits-per-byte passes (0: only at the start and end)."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end)."""
    keep_checkpoints: int = 2


@dataclass(frozen=True)
class EvalConfig:
    max_tokens_per_lang: int = 50_000
    """Validation tokens scored per language (0: all)."""
    batch_size: int = 8


@dataclass(frozen=True)
class ExportConfig:
    dtype: Literal["float32", "bfloat16"] = "float32"


@dataclass(frozen=True)
class GenerateConfig:
    prompts: tuple[str, ...] = ("대한민국의 수도는",)
    max_new_tokens: int = 48
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class GeckoConfig:
    run_dir: str = "runs/demo"
    """Every stage writes below this directory."""
    seed: int = 1234
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> GeckoConfig:
    """Read YAML (or start from defaults), apply `a.b=value` overrides, validate, freeze."""
    raw: dict[str, Any] = {}
    where = "<defaults>"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping, found {type(raw).__name__}")
    for item in overrides:
        _apply_override(raw, item)
    cfg = build(GeckoConfig, raw, where, "")
    validate(cfg, where)
    return cfg


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key.path=value")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value)


def build(cls: type, raw: Any, where: str, prefix: str) -> Any:
    """Turn a mapping into dataclass `cls`, checking every key and value type."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, found {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {prefix}{unknown[0]!s} (known keys of {prefix or 'the top level'}: "
            f"{', '.join(sorted(fields))})"
        )
    kwargs = {name: _coerce(hints[name], value, where, f"{prefix}{name}") for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'}: {e}") from None


def _coerce(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, key + ".")
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
            raise ConfigError(f"{where}: {key}={value!r} must be one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {key} must be a list, found {value!r}")
        return tuple(_coerce(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, found {value!r}")
        return {_coerce(args[0], k, where, key): _coerce(args[1], v, where, f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ConfigError(f"{where}: {key}={value!r} must be of type {tp.__name__}")
    return value


def validate(cfg: GeckoConfig, where: str) -> None:
    """Cross-field checks that types alone cannot express."""
    names = [s.name for s in cfg.data.sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: data.sources: duplicate source name {dupes[0]!r}")
    unknown = sorted(set(cfg.data.mix) - set(LANGS))
    if unknown:
        raise ConfigError(f"{where}: data.mix.{unknown[0]}: unknown language (known: {', '.join(LANGS)})")
    total = sum(cfg.data.mix.values())
    if abs(total - 1.0) > 1e-6 or any(v < 0 for v in cfg.data.mix.values()):
        raise ConfigError(f"{where}: data.mix shares must be ≥ 0 and sum to 1, found sum {total:.4f}")
    fed = {s.lang for s in cfg.data.sources}
    starved = sorted(lang for lang, share in cfg.data.mix.items() if share > 0 and lang not in fed)
    if cfg.data.sources and starved:
        raise ConfigError(f"{where}: data.mix.{starved[0]} > 0 but no source has lang {starved[0]}")
    checks = [
        (cfg.tokenizer.vocab_size >= 512, "tokenizer.vocab_size must be ≥ 512 (256 byte tokens + specials)"),
        (0 < cfg.tokenize.val_fraction < 1, "tokenize.val_fraction must be in (0, 1)"),
        (cfg.train.seq_len >= 8, "train.seq_len must be ≥ 8"),
        (cfg.train.batch_size >= 1 and cfg.train.grad_accum >= 1, "train.batch_size and grad_accum must be ≥ 1"),
        (cfg.train.steps >= 1, "train.steps must be ≥ 1"),
        (cfg.train.warmup_steps < cfg.train.steps, "train.warmup_steps must be < train.steps"),
        (0 <= cfg.train.min_lr_ratio <= 1, "train.min_lr_ratio must be in [0, 1]"),
        (cfg.generate.temperature >= 0, "generate.temperature must be ≥ 0"),
        (0 < cfg.generate.top_p <= 1, "generate.top_p must be in (0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")


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
