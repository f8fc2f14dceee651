"""The stage table: what each stage reads, writes and depends on, and when it can be skipped.

A stage's fingerprint hashes the config sections it reads, the fingerprints of the stages it consumes and,
for the data stage, the size and modification time of every input file. A finished stage writes
`_COMPLETE.json` with its fingerprint; `gecko run` skips a stage whose marker matches and redoes one whose
inputs or config changed. A stage that was interrupted resumes when its fingerprint is unchanged (the trainer
continues from its last checkpoint) and starts clean when it changed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gecko.config import GeckoConfig, fingerprint

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE.json"
STARTED = "_STARTED.json"


@dataclass(frozen=True)
class Stage:
    name: str
    folder: str
    sections: tuple[str, ...]
    """Config sections (and top-level keys) the stage reads."""
    upstream: tuple[str, ...]
    """Stages whose outputs it reads."""
    run: Callable[[GeckoConfig, Path], dict[str, Any] | None]


def _data(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.data.pipeline import run_data

    stats = run_data(cfg.data, out, cfg.seed)
    return {"documents": sum(stats.kept.values()), "bytes": dict(stats.kept_bytes)}


def _tokenizer(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.tokenizer.train import train_tokenizer

    train_tokenizer(cfg.tokenizer, stage_dir(cfg, "data") / "corpus.jsonl", out)
    return {}


def _tokenize(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.tokenizer.shards import pretokenize

    return pretokenize(cfg.tokenize, stage_dir(cfg, "data") / "corpus.jsonl", stage_dir(cfg, "tokenizer"), out,
                       cfg.seed)


def _train(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.train.trainer import run_train

    final = run_train(cfg, stage_dir(cfg, "tokenize"), out, stage_dir(cfg, "tokenizer"))
    return {"checkpoint": str(final)}


def _eval(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.eval.report import run_eval

    return run_eval(cfg, stage_dir(cfg, "train"), stage_dir(cfg, "tokenize"), stage_dir(cfg, "tokenizer"), out)


def _export(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.export.card import model_card
    from gecko.export.hf import export_hf
    from gecko.train.checkpoint import load_final_model

    model, meta = load_final_model(stage_dir(cfg, "train"))
    card = model_card(cfg, model, meta["step"])
    export_hf(model, stage_dir(cfg, "tokenizer"), out / "hf", cfg.export.dtype, cfg.export.max_shard_bytes, card)
    return {"step": meta["step"]}


def _generate(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.export.generate import run_generate

    return run_generate(cfg.generate, stage_dir(cfg, "export") / "hf", out)


def _sft(cfg: GeckoConfig, out: Path) -> dict[str, Any]:
    from gecko.export.sft import run_sft

    return run_sft(cfg, Path(cfg.sft.init_from) if cfg.sft.init_from else stage_dir(cfg, "export") / "hf", out)


STAGES: tuple[Stage, ...] = (
    Stage("data", "data", ("seed", "data"), (), _data),
    Stage("tokenizer", "tokenizer", ("tokenizer",), ("data",), _tokenizer),
    Stage("tokenize", "shards", ("seed", "tokenize"), ("data", "tokenizer"), _tokenize),
    Stage("train", "train", ("seed", "model", "train", "eval"), ("tokenize",), _train),
    Stage("eval", "eval", ("eval", "train"), ("train", "tokenize"), _eval),
    Stage("export", "export", ("export",), ("train", "tokenizer", "eval"), _export),  # eval: the model card
    Stage("generate", "generate", ("generate",), ("export",), _generate),
)
SFT = Stage("sft", "sft", ("seed", "sft", "export"), ("export",), _sft)
"""Instruction tuning: run on demand (`gecko sft`), not part of `gecko run`."""
BY_NAME = {s.name: s for s in (*STAGES, SFT)}


def stage_dir(cfg: GeckoConfig, name: str) -> Path:
    return cfg.run_path / BY_NAME[name].folder


def _input_files(cfg: GeckoConfig) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every data source file: editing the raw data invalidates the corpus."""
    files = []
    paths = [s.path for s in cfg.data.sources] + [b.path for b in cfg.data.decontam.benchmarks]
    paths += [p for a in cfg.data.align.sources for p in (a.path, a.en_path) if p is not None]
    for src_path in paths:
        path = Path(src_path)
        for f in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
            st = f.stat()
            files.append((str(f), st.st_size, st.st_mtime_ns))
    return files


def _marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def stage_fingerprint(cfg: GeckoConfig, stage: Stage) -> str:
    parts: list[Any] = [stage.name] + [getattr(cfg, s) for s in stage.sections]
    for up in stage.upstream:
        marker = _marker(stage_dir(cfg, up) / COMPLETE)
        parts.append(marker["fingerprint"] if marker else None)
    if stage.name == "data":
        parts.append(_input_files(cfg))
    return fingerprint(*parts)


def is_complete(cfg: GeckoConfig, stage: Stage) -> bool:
    marker = _marker(stage_dir(cfg, stage.name) / COMPLETE)
    return marker is not None and marker["fingerprint"] == stage_fingerprint(cfg, stage)


def run_stage(cfg: GeckoConfig, stage: Stage) -> dict[str, Any]:
    """Run one stage now, resuming an interrupted attempt with the same fingerprint."""
    out = stage_dir(cfg, stage.name)
    fp = stage_fingerprint(cfg, stage)
    torchrun = "TORCHELASTIC_RUN_ID" in os.environ  # every rank runs the stage; rank 0 alone keeps its books
    main = not torchrun or os.environ.get("RANK") == "0"
    if main:
        started = _marker(out / STARTED)
        if out.exists() and (started is None or started["fingerprint"] != fp):
            shutil.rmtree(out)  # outputs of another config or input: never mix them with this run's
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPLETE).unlink(missing_ok=True)
        (out / STARTED).write_text(json.dumps({"fingerprint": fp}) + "\n")
    if torchrun:
        from gecko.train.distributed import barrier

        barrier(cfg.train.device)  # the other ranks start once rank 0 has cleared the folder
    t0 = time.time()
    summary = stage.run(cfg, out) or {}
    marker = {"stage": stage.name, "fingerprint": fp, "seconds": round(time.time() - t0, 2), "summary": summary}
    if main:
        (out / COMPLETE).write_text(json.dumps(marker, indent=2, ensure_ascii=False, default=str) + "\n")
    return marker


def run_all(cfg: GeckoConfig, force: bool = False) -> list[dict[str, Any]]:
    """Chain every stage, skipping those already complete for this config and these inputs."""
    done = []
    for stage in STAGES:
        if not force and is_complete(cfg, stage):
            log.info("stage %s: up to date, skipped", stage.name)
            done.append({"stage": stage.name, "skipped": True})
            continue
        log.info("stage %s: running", stage.name)
        done.append(run_stage(cfg, stage))
    return done
