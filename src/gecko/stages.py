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
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gecko import tracking
from gecko.config import GeckoConfig, fingerprint, to_dict
from gecko.errors import GeckoError
from gecko.io.atomic import write_text

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE.json"
STARTED = "_STARTED.json"


CONFIG_COPY = "config.yaml"
"""RUN/config.yaml: the resolved config of the last command that wrote RUN (`gecko status RUN` reads it)."""

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


class StaleError(GeckoError):
    """A stage's outputs hold work that its changed config would discard; --force allows it."""


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


def _marker(path: Path) -> dict[str, Any] | None:
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


def _upstream_fingerprints(cfg: GeckoConfig, stage: Stage) -> dict[str, str | None]:
    found = {}
    for up in stage.upstream:
        marker = _marker(stage_dir(cfg, up) / COMPLETE) or _marker(stage_dir(cfg, up) / STARTED)
        found[up] = marker.get("fingerprint") if marker else None
    return found


def stage_fingerprint(cfg: GeckoConfig, stage: Stage) -> str:
    """Identity of the stage's output: its values and its inputs' identities (downstream stages record it)."""
    return fingerprint(stage.name, stage_values(cfg, stage), _upstream_fingerprints(cfg, stage))


def started_marker(cfg: GeckoConfig, stage: Stage) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "fingerprint": stage_fingerprint(cfg, stage),
        "values": stage_values(cfg, stage),
        "upstream": _upstream_fingerprints(cfg, stage),
    }


# ── planning: what each stage needs, and why ─────────────────────────────────────────────────────────────

Action = Literal["skip", "run", "resume", "extend", "redo"]


@dataclass(frozen=True)
class Plan:
    stage: Stage
    action: Action
    """skip: up to date; run: never ran; resume: interrupted with the same config; extend: a `grows` field
    increased; redo: stale (its outputs are replaced)."""
    changes: tuple[str, ...] = ()
    """One `key: old → new` per changed field or upstream stage."""
    note: str = ""

    @property
    def needs_force(self) -> bool:
        return self.action == "redo" and self.stage.precious

    def describe(self) -> str:
        text = {
            "skip": "up to date",
            "run": "not run yet",
            "resume": "interrupted: resumes",
            "extend": "continues",
            "redo": "stale",
        }[self.action]
        if self.needs_force:
            text += " (holds work: redone only with --force)"
        details = "; ".join(self.changes) + (f". {self.note}" if self.note else "")
        return f"{text}: {details}" if details else text


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _diff(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Changed fields. A field the marker does not record (added by a later GECKO) counts as its default:
    upgrading GECKO must not make a finished stage stale when the new field keeps the old behaviour."""
    return [
        (k, old.get(k, "(unset)"), new.get(k, "(unset)"))
        for k in sorted(set(old) | set(new))
        if old.get(k, defaults.get(k, "(unset)")) != new.get(k, "(unset)")
    ]


def plan_stage(cfg: GeckoConfig, stage: Stage, rerun: frozenset[str] = frozenset()) -> Plan:
    """What running `stage` now would do; `rerun`: upstream stages that this command redoes first."""
    out = stage_dir(cfg, stage.name)
    marker = _marker(out / COMPLETE)
    complete = marker is not None
    marker = marker or _marker(out / STARTED)
    if marker is None:
        return Plan(stage, "run")  # nothing of ours there; files without a marker are kept, never deleted
    if "values" not in marker:
        return Plan(stage, "redo", ("its markers come from an older gecko and record no field values",))
    values = stage_values(cfg, stage)
    changed = _diff(marker["values"], values, stage_values(GeckoConfig(), stage))
    grown = [
        (k, a, b)
        for k, a, b in changed
        if k in stage.grows and isinstance(a, int) and isinstance(b, int) and b > a
    ]
    changes = [f"{k}: {_short(a)} → {_short(b)}" for k, a, b in changed if (k, a, b) not in grown]
    now = _upstream_fingerprints(cfg, stage)
    for up in stage.upstream:
        if up in rerun:
            changes.append(f"upstream {up} is redone first")
        elif marker.get("upstream", {}).get(up) != now[up]:
            changes.append(f"upstream {up} changed since this stage ran")
    if changes:
        return Plan(stage, "redo", tuple(changes))
    if grown:
        return Plan(
            stage,
            "extend",
            tuple(f"{k}: {a} → {b}" for k, a, b in grown),
            _extend_note(cfg, stage, grown, complete),
        )
    return Plan(stage, "skip" if complete else "resume")


def _extend_note(cfg: GeckoConfig, stage: Stage, grown: list[tuple[str, Any, Any]], complete: bool) -> str:
    """What a longer run does to the learning rate: the schedule is a function of (step, total steps), so
    from the resume point on it follows the new total."""
    from gecko.train.schedule import lr_multiplier

    t = cfg.sft.train if stage.name == "sft" else cfg.train
    old_steps = grown[0][1]
    if not complete:
        return (
            f"Training continues from its last checkpoint; from there the {t.schedule} schedule follows "
            f"the new total of {t.steps} steps"
        )
    before = t.lr * lr_multiplier(old_steps - 1, old_steps, t.warmup_steps, t.schedule, t.min_lr_ratio)
    after = t.lr * lr_multiplier(old_steps, t.steps, t.warmup_steps, t.schedule, t.min_lr_ratio)
    return (
        f"Training continues from the step-{old_steps} checkpoint with the {t.schedule} schedule recomputed "
        f"for {t.steps} steps: the learning rate goes from {before:.3g} (last step of the old run) to "
        f"{after:.3g} at step {old_steps}, then follows the new schedule to {t.lr * t.min_lr_ratio:.3g}"
        if t.schedule != "constant"
        else f"Training continues from the step-{old_steps} checkpoint at the constant learning rate {t.lr:.3g}"
    )


def plan_run(cfg: GeckoConfig) -> list[Plan]:
    """The plan of `gecko run`: every stage in order, a stage redone when an upstream one reruns."""
    plans: list[Plan] = []
    rerun: set[str] = set()
    for stage in STAGES:
        plan = plan_stage(cfg, stage, frozenset(rerun))
        if plan.action in ("run", "redo", "extend"):
            rerun.add(stage.name)
        plans.append(plan)
    return plans


def check_plans(plans: list[Plan], force: bool) -> None:
    """Refuse, before any work, to discard a precious stage's outputs without --force."""
    blocked = [p for p in plans if p.needs_force]
    if blocked and not force:
        first, also = blocked[0], ", ".join(p.stage.name for p in blocked[1:])
        raise StaleError(
            f"stage {first.stage.name} is stale ({'; '.join(first.changes)}) and its outputs in "
            f"RUN/{first.stage.folder} would be deleted: rerun with --force to redo it, or restore "
            f"the old values" + (f" (also stale: {also})" if also else "")
        )


def stage_dir(cfg: GeckoConfig, name: str) -> Path:
    return cfg.run_path / BY_NAME[name].folder


def record_config(cfg: GeckoConfig) -> None:
    """Keep the config of the last command that wrote RUN, for `gecko status RUN`."""
    if not _is_main():
        return
    cfg.run_path.mkdir(parents=True, exist_ok=True)
    write_text(
        cfg.run_path / CONFIG_COPY,
        "# written by gecko: the config of the last command that wrote this "
        "folder\n" + yaml.safe_dump(to_dict(cfg), allow_unicode=True, sort_keys=False),
    )


def _is_main() -> bool:
    return "TORCHELASTIC_RUN_ID" not in os.environ or os.environ.get("RANK") == "0"


def _announce(plan: Plan) -> None:
    if plan.action == "redo":
        log.warning("stage %s is stale, redoing it: %s", plan.stage.name, "; ".join(plan.changes))
    elif plan.action == "extend":
        log.warning("stage %s continues: %s. %s", plan.stage.name, "; ".join(plan.changes), plan.note)


def run_stage(
    cfg: GeckoConfig, stage: Stage, force: bool = False, plan: Plan | None = None
) -> dict[str, Any]:
    """Run one stage now: resume or extend it where its outputs allow, redo it when stale (precious outputs
    only with `force`)."""
    plan = plan or plan_stage(cfg, stage)
    check_plans([plan], force)
    record_config(cfg)
    out = stage_dir(cfg, stage.name)
    torchrun = "TORCHELASTIC_RUN_ID" in os.environ  # every rank runs the stage; rank 0 alone keeps its books
    if _is_main():
        _announce(plan)
        if plan.action == "redo" and out.exists():
            shutil.rmtree(out)  # stale outputs: never mix them with this config's
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPLETE).unlink(missing_ok=True)
        write_text(
            out / STARTED, json.dumps(started_marker(cfg, stage), ensure_ascii=False, default=str) + "\n"
        )
    if torchrun:
        from gecko.train.distributed import barrier

        barrier(cfg.train.device)  # the other ranks start once rank 0 has cleared the folder
    t0 = time.time()
    with _tracked(cfg, stage, out):
        summary = stage.run(cfg, out) or {}
    marker = {**started_marker(cfg, stage), "seconds": round(time.time() - t0, 2), "summary": summary}
    if _is_main():
        write_text(out / COMPLETE, json.dumps(marker, indent=2, ensure_ascii=False, default=str) + "\n")
    return marker


@contextlib.contextmanager
def _tracked(cfg: GeckoConfig, stage: Stage, out: Path) -> Iterator[None]:
    """The stage runs with its tracker runs open (main process only); its artifacts are logged when it ends."""
    if not (stage.artifacts and cfg.logging.sinks and _is_main()):
        yield
        return
    with tracking.session(cfg, stage.name) as tracker:
        yield
        for name in stage.artifacts:
            tracker.artifact(out / name)


def run_all(cfg: GeckoConfig, force: bool = False) -> list[dict[str, Any]]:
    """Chain every stage, skipping those up to date; refuses before any work if a precious stage is stale."""
    plans = plan_run(cfg)
    check_plans(plans, force)
    record_config(cfg)
    done = []
    for plan in plans:
        if plan.action == "skip":
            log.info("stage %s: up to date, skipped", plan.stage.name)
            done.append({"stage": plan.stage.name, "skipped": True})
            continue
        # re-planned: the upstream stages that just ran set the fingerprints this stage compares with
        current = plan_stage(cfg, plan.stage)
        if current.action == "skip":  # an upstream stage was redone into exactly what this one read
            done.append({"stage": plan.stage.name, "skipped": True})
            continue
        log.info("stage %s: running", plan.stage.name)
        done.append(run_stage(cfg, plan.stage, force=force, plan=current))
    return done


def status_lines(cfg: GeckoConfig) -> list[str]:
    """`gecko status`: the lock holder, then each stage's state and, when stale, the field-by-field diff."""
    from gecko.runlock import describe, holder

    lock = holder(cfg.run_path)
    lines = [
        f"run folder {cfg.run_path}: " + (f"in use by {describe(lock)}" if lock else "no command running")
    ]
    for plan in [*plan_run(cfg), plan_stage(cfg, SFT)]:
        complete = _marker(stage_dir(cfg, plan.stage.name) / COMPLETE)
        took = f" [{complete['seconds']:.0f} s]" if complete and "seconds" in complete else ""
        lines.append(f"  {plan.stage.name:<10} {plan.describe()}{took}")
    return lines


def is_complete(cfg: GeckoConfig, stage: Stage) -> bool:
    """Complete, and still valid for this config."""
    return plan_stage(cfg, stage).action == "skip"
