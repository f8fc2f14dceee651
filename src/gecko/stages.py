"""The stage table: what each stage reads, writes and depends on, and when its output is still valid.

Each stage declares the config fields that change its output (`fields`, as key prefixes); NEUTRAL fields
(logging cadence, workers, progress, where and how fast it runs) change no stage's output. A stage's markers
(`_STARTED.json` while it runs, `_COMPLETE.json` when done) record the *values* of its fields and the
fingerprints of the stages it read, so a changed config gives a field-by-field diff. A stage whose fields or
upstream changed is *stale*: a cheap stage (eval, export, generate) is redone, saying why; a stage holding
hours of work or checkpoints (`precious`) is never deleted without `--force`: the command stops first, naming
the changed fields. A field in `grows` may increase without invalidating: a longer `train.steps` continues
from the last checkpoint (the printed note says what the LR schedule does). A config field nobody lists is
covered by its section's prefix, so a new field invalidates its own section's stage unless made neutral.
Planning and running the table: gecko.runner.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gecko.config import GeckoConfig, fingerprint, to_dict

COMPLETE = "_COMPLETE.json"
STARTED = "_STARTED.json"


NEUTRAL: tuple[str, ...] = (
    "*_every",  # log/eval/checkpoint cadence
    "*.workers",
    "*.sandbox_workers",
    "tokenize.chunk_bytes",
    "data.engine",  # parallelism: same output
    "data.slurm",
    "data.slurm.*",
    "*train.keep_checkpoints",
    "*train.peak_tflops",  # bookkeeping and metrics only
    "*train.device",
    "*train.compile",
    "*train.activation_checkpointing",  # where and how fast, not what
    "*train.eval_tasks",
    "*train.eval_tasks_limit",  # benchmarks scored during training: metrics only
    "logging",
    "logging.*",
    "*.progress",
    "*.verbose",
    "*.verbosity",
)
"""Config fields (fnmatch patterns on dotted key paths) that change no stage's output."""


@dataclass(frozen=True)
class Stage:
    name: str
    folder: str
    fields: tuple[str, ...]
    """Config key prefixes whose values change the stage's output (NEUTRAL ones aside)."""
    upstream: tuple[str, ...]
    """Stages whose outputs it reads."""
    run: Callable[[GeckoConfig, Path], dict[str, Any] | None]
    command: tuple[str, ...]
    """`gecko` subcommand that runs it alone."""
    help: str
    precious: bool = False
    """Its outputs hold checkpoints or hours of work: redone only with --force."""
    grows: tuple[str, ...] = ()
    """Fields that may increase without invalidating: the stage continues where it stopped."""
    artifacts: tuple[str, ...] = ()
    """Reports and plots (relative to the folder) sent to the experiment trackers when the stage ends; a stage
    with none opens no tracker run."""


def _data(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.data.pipeline import run_data

    stats = run_data(cfg.data, out, cfg.seed)
    return {"documents": sum(stats.kept.values()), "bytes": dict(stats.kept_bytes)}


def _tokenizer(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.tokenizer.train import train_tokenizer

    train_tokenizer(cfg.tokenizer, stage_dir(cfg, "data") / "corpus.jsonl", out)
    return {}


def _tokenize(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.tokenizer.pretokenize import pretokenize

    return pretokenize(
        cfg.tokenize, stage_dir(cfg, "data") / "corpus.jsonl", stage_dir(cfg, "tokenizer"), out, cfg.seed
    )


def _train(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.train.trainer import run_train

    tokenizer, hook = stage_dir(cfg, "tokenizer"), None
    if cfg.train.eval_tasks:
        from gecko.eval.harness import benchmark_hook  # the eval suite loads only when asked for

        hook = benchmark_hook(cfg, tokenizer)
    final = run_train(cfg, stage_dir(cfg, "tokenize"), out, tokenizer, hook)
    return {"checkpoint": str(final)}


def _eval(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.eval.report import run_eval
    from gecko.train.checkpoint import load_final_model
    from gecko.train.metrics import read_metrics

    train = stage_dir(cfg, "train")
    model, meta = load_final_model(train)
    evals = [r for r in read_metrics(train / "metrics.jsonl") if "val_bpb" in r]
    step0 = evals[0]["val_bpb"] if evals and evals[0]["step"] == 0 else {}
    return run_eval(
        cfg, model, meta["step"], step0, stage_dir(cfg, "tokenize"), stage_dir(cfg, "tokenizer"), out
    )


def _export(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.export.card import model_card
    from gecko.model.hf import export_hf
    from gecko.train.checkpoint import load_final_model

    model, meta = load_final_model(stage_dir(cfg, "train"))
    card = model_card(cfg, model, meta["step"])
    hf = export_hf(
        model, stage_dir(cfg, "tokenizer"), out / "hf", cfg.export.dtype, cfg.export.max_shard_bytes, card
    )
    if cfg.export.gguf:
        from gecko.export.gguf import export_gguf

        export_gguf(hf, out / f"model-{cfg.export.gguf}.gguf", cfg.export.gguf, force=True)  # stage dir: ours
    return {"step": meta["step"]}


def _generate(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.infer.generate import run_generate

    return run_generate(cfg.generate, stage_dir(cfg, "export") / "hf", out)


def _sft(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.sft import run_sft

    return run_sft(
        cfg, Path(cfg.sft.init_from) if cfg.sft.init_from else stage_dir(cfg, "export") / "hf", out
    )


STAGES: tuple[Stage, ...] = (
    Stage(
        "data",
        "data",
        ("seed", "data"),
        (),
        _data,
        ("data", "run"),
        "the whole data stage: sources → RUN/data/corpus.jsonl",
        precious=True,
        artifacts=("report.md", "report.html", "mix_report.md"),
    ),
    Stage(
        "tokenizer",
        "tokenizer",
        ("tokenizer",),
        ("data",),
        _tokenizer,
        ("tokenizer", "train"),
        "train the BPE tokenizer on the corpus",
        precious=True,
    ),
    Stage(
        "tokenize",
        "shards",
        ("seed", "tokenize"),
        ("data", "tokenizer"),
        _tokenize,
        ("tokenize",),
        "encode the corpus into packed shards with a train/validation split by document",
        precious=True,
    ),
    Stage(
        "train",
        "train",
        ("seed", "model", "train"),
        ("tokenize",),
        _train,
        ("train",),
        "pretrain the model on the shards (resumes from the last checkpoint)",
        precious=True,
        grows=("train.steps",),
        artifacts=("loss.png",),
    ),
    Stage(
        "eval",
        "eval",
        ("eval", "train.seq_len"),
        ("train", "tokenize"),
        _eval,
        ("eval",),
        "score the final checkpoint: bits per byte per language, KMMLU, MMLU, GSM8K, HumanEval, MBPP",
        artifacts=("results.md", "results.json"),
    ),
    Stage(
        "export",
        "export",
        ("export",),
        ("train", "tokenizer", "eval"),
        _export,
        ("export",),  # eval: card
        "write a Hugging Face LlamaForCausalLM folder",
    ),
    Stage(
        "generate",
        "generate",
        ("generate",),
        ("export",),
        _generate,
        ("generate",),
        "sample continuations of the configured prompts from the exported model",
    ),
)
SFT = Stage(
    "sft",
    "sft",
    ("seed", "sft", "export"),
    ("export",),
    _sft,
    ("sft",),
    "instruction-tune the exported model on conversations (loss on assistant turns only)",
    precious=True,
    grows=("sft.train.steps",),
    artifacts=("report.md", "eval.json", "train/loss.png"),
)
"""Instruction tuning: run on demand (`gecko sft`), not part of `gecko run`."""
BY_NAME = {s.name: s for s in (*STAGES, SFT)}


def _input_files(cfg: GeckoConfig) -> dict[str, str]:
    """A digest per data input path ((file, size, mtime) locally; gecko.io.sources.digest for URLs and
    hf:// datasets): editing the raw data invalidates the corpus."""
    from gecko.io import sources

    paths = [(s.path, s.subset) for s in cfg.data.sources] + [
        (b.path, None) for b in cfg.data.decontam.benchmarks
    ]
    paths += [(p, None) for a in cfg.data.align.sources for p in (a.path, a.en_path) if p is not None]
    return {f"files under {path}": fingerprint(sources.digest(path, subset)) for path, subset in paths}


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_neutral(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in NEUTRAL)


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if is_neutral(key):
        return
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _flatten(getattr(value, f.name), f"{key}.{f.name}", out)
    elif isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{key}.{k}", out)
    elif isinstance(value, tuple) and value and all(dataclasses.is_dataclass(v) for v in value):
        out[f"{key}.count"] = len(value)
        for i, v in enumerate(value):
            _flatten(v, f"{key}[{i}]", out)
    else:
        out[key] = to_dict(value)


def stage_values(cfg: GeckoConfig, stage: Stage) -> dict[str, Any]:
    """Every non-neutral config value that changes the stage's output, by dotted key (plus input digests)."""
    values: dict[str, Any] = {}
    for prefix in stage.fields:
        node: Any = cfg
        for part in prefix.split("."):
            node = getattr(node, part)
        _flatten(node, prefix, values)
    if stage.name == "data":
        values.update(_input_files(cfg))
    return values


def upstream_fingerprints(cfg: GeckoConfig, stage: Stage) -> dict[str, str | None]:
    found = {}
    for up in stage.upstream:
        marker = read_marker(stage_dir(cfg, up) / COMPLETE) or read_marker(stage_dir(cfg, up) / STARTED)
        found[up] = marker.get("fingerprint") if marker else None
    return found


def stage_fingerprint(cfg: GeckoConfig, stage: Stage) -> str:
    """Identity of the stage's output: its values and its inputs' identities (downstream stages record it)."""
    return fingerprint(stage.name, stage_values(cfg, stage), upstream_fingerprints(cfg, stage))


def started_marker(cfg: GeckoConfig, stage: Stage) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "fingerprint": stage_fingerprint(cfg, stage),
        "values": stage_values(cfg, stage),
        "upstream": upstream_fingerprints(cfg, stage),
    }


def stage_dir(cfg: GeckoConfig, name: str) -> Path:
    return cfg.run_path / BY_NAME[name].folder
