"""Loading a config: YAML → `section.key=value` overrides → typed, range-checked frozen dataclasses →
cross-field validation; every error names the file and line of the key (or the override). Also the views
of a loaded config that stages record: `to_dict`, `fingerprint`."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gecko.config.data import DataConfig, SlurmConfig
from gecko.config.fields import LANGS
from gecko.config.sections import EVAL_TASKS, SUITES, EvalConfig, GeckoConfig, LoggingConfig, TrainConfig
from gecko.errors import ConfigError, pip_hint


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
    if data.engine == "slurm":
        _validate_slurm(data.slurm, where)


SLURM_TIME = re.compile(r"(\d+-)?\d+(:\d\d){0,2}")
SBATCH_OWN = (
    "array",
    "dependency",
    "output",
    "error",
    "job-name",
    "partition",
    "time",
    "cpus-per-task",
    "mem-per-cpu",
)
"""sbatch options gecko sets itself (one job array per stage, its logs under the stage's folder)."""


def _validate_slurm(s: SlurmConfig, where: Origin) -> None:
    bad = sorted(k for k in s.sbatch_args if not re.fullmatch(r"[a-z][a-z0-9-]*", k))
    own = sorted(k for k in s.sbatch_args if k in SBATCH_OWN)
    _check(
        where,
        [
            (bool(s.partition), "data.slurm.partition is required with data.engine=slurm (sinfo lists them)"),
            (
                bool(SLURM_TIME.fullmatch(s.time)),
                f"data.slurm.time={s.time!r} must be MM, HH:MM:SS or D-HH:MM:SS (quoted in YAML)",
            ),
            (
                not bad,
                f"data.slurm.sbatch_args.{bad[0] if bad else ''}: not an sbatch option name "
                "(long form without dashes, e.g. account)",
            ),
            (
                not own,
                f"data.slurm.sbatch_args.{own[0] if own else ''}: gecko sets it (partition, time, cpus and "
                "memory are data.slurm fields; one job array per stage, logs in its folder)",
            ),
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
