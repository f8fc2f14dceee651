"""Bad configs through the CLI: each exits non-zero with one line naming the file, line, key and allowed
values, before any work, and never with a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gecko.cli import main

# (YAML text, text the message must contain, line it must name); line None: the file only
BAD: list[tuple[str, str, int | None]] = [
    ("train:\n  grad_clip: -1\n", "train.grad_clip=-1 must be > 0 (or null)", 2),
    ("train:\n  grad_clip: 0\n", "train.grad_clip=0 must be > 0 (or null)", 2),
    ("train:\n  lr: -1\n", "train.lr=-1 must be > 0", 2),
    ("train:\n  lr: 0\n", "train.lr=0 must be > 0", 2),
    ("train:\n  lr: .nan\n", "train.lr=nan must be > 0", 2),
    ("train:\n  lr: .inf\n", "train.lr=inf must be > 0", 2),
    ("train:\n  log_every: 0\n", "train.log_every=0 must be ≥ 1", 2),
    ("train:\n  eval_every: 0\n", "train.eval_every=0 must be ≥ 1 (or null)", 2),
    ("train:\n  checkpoint_every: 0\n", "train.checkpoint_every=0 must be ≥ 1 (or null)", 2),
    ("train:\n  warmup_steps: -3\n", "train.warmup_steps=-3 must be ≥ 0", 2),
    ("train:\n  steps: 0\n", "train.steps=0 must be ≥ 1", 2),
    ("train:\n  batch_size: 0\n", "train.batch_size=0 must be ≥ 1", 2),
    ("train:\n  seq_len: 4\n", "train.seq_len=4 must be ≥ 8", 2),
    ("train:\n  grad_accum: 0\n", "train.grad_accum=0 must be ≥ 1", 2),
    ("train:\n  min_lr_ratio: 1.5\n", "train.min_lr_ratio=1.5 must be ≥ 0 and ≤ 1", 2),
    ("train:\n  beta2: 1.0\n", "train.beta2=1.0 must be ≥ 0 and < 1", 2),
    ("train:\n  weight_decay: -0.1\n", "train.weight_decay=-0.1 must be ≥ 0", 2),
    ("train:\n  keep_checkpoints: 0\n", "train.keep_checkpoints=0 must be ≥ 1", 2),
    ("train:\n  steps: 20\n  warmup_steps: 20\n", "train.warmup_steps=20 must be < train.steps (20)", 3),
    ("train:\n  loss_spike_factor: 0.5\n", "train.loss_spike_factor=0.5 must be 0 (off) or > 1", 2),
    ("train:\n  schedule: exp\n", "train.schedule='exp' must be one of 'cosine'", 2),
    ("train:\n  dtype: fp16\n", "train.dtype='fp16' must be one of 'float32', 'bfloat16'", 2),
    ("train:\n  steps: three\n", "train.steps='three' must be of type int", 2),
    ("train:\n  steps: 10.5\n", "train.steps=10.5 must be of type int", 2),
    ("train:\n  doc_mask: 'yes'\n", "train.doc_mask='yes' must be of type bool", 2),
    ("train:\n  stepz: 3\n", "unknown key train.stepz", 2),
    ("train:\n  - 1\n", "train must be a mapping", 1),
    ("model:\n  preset: huge\n", "model.preset='huge' must be one of 'tiny', 'small'", 2),
    ("model:\n  dim: 0\n", "model.dim=0 must be ≥ 1 (or null)", 2),
    ("model:\n  rope_theta: -1\n", "model.rope_theta=-1 must be > 0 (or null)", 2),
    ("tokenizer:\n  vocab_size: 100\n", "tokenizer.vocab_size=100 must be ≥ 512", 2),
    ("tokenizer:\n  character_coverage: 0\n", "tokenizer.character_coverage=0 must be > 0 and ≤ 1", 2),
    ("tokenize:\n  val_fraction: 1\n", "tokenize.val_fraction=1 must be > 0 and < 1", 2),
    ("tokenize:\n  workers: -1\n", "tokenize.workers=-1 must be ≥ 0", 2),
    ("data:\n  workers: 0\n", "data.workers=0 must be ≥ 1", 2),
    ("data:\n  dedup:\n    threshold: 1.5\n", "data.dedup.threshold=1.5 must be > 0 and ≤ 1", 3),
    ("data:\n  dedup:\n    bands: 0\n", "data.dedup.bands=0 must be ≥ 1", 3),
    ("data:\n  toxicity:\n    threshold: 2\n", "data.toxicity.threshold=2 must be ≥ 0 and ≤ 1", 3),
    (
        "data:\n  align:\n    min_len_ratio: 2.0\n",
        "data.align.min_len_ratio=2.0 must be < data.align.max_len_ratio",
        3,
    ),
    ("data:\n  mix: {ko: 0.5, en: 0.6, code: 0.0}\n", "data.mix shares must be ≥ 0 and sum to 1", 2),
    (
        "data:\n  sources:\n    - {name: a, path: x, lang: jp}\n",
        "data.sources[0].lang='jp' must be one of",
        3,
    ),
    ("data:\n  sources:\n    - {path: x, lang: ko}\n", "data.sources[0].name is required", 3),
    (
        "data:\n  sources:\n    - {name: a, path: x}\n",
        "data.sources[0].lang is required (one of ko, en, code)",
        3,
    ),
    (
        "data:\n  sources:\n    - {name: a, path: x, lang: ko}\n    - {name: a, path: y, lang: ko}\n",
        "data.sources: duplicate source name 'a'",
        2,
    ),
    (
        "data:\n  sources:\n    - {name: a, path: x, lang: ko, max_docs: 0}\n",
        "data.sources[0].max_docs=0 must be ≥ 1 (or null)",
        3,
    ),
    ("data:\n  engine: k8s\n", "data.engine='k8s' must be one of 'local', 'ray', 'slurm'", 2),
    ("data:\n  engine: slurm\n", "data.slurm.partition is required with data.engine=slurm", 1),
    (
        "data:\n  engine: slurm\n  slurm: {partition: cpu, time: 1h}\n",
        "data.slurm.time='1h' must be MM, HH:MM:SS or D-HH:MM:SS",
        3,
    ),
    (
        "data:\n  engine: slurm\n  slurm:\n    partition: cpu\n    sbatch_args: {array: 0-3}\n",
        "data.slurm.sbatch_args.array: gecko sets it",
        5,
    ),
    (
        "data:\n  engine: slurm\n  slurm:\n    partition: cpu\n    sbatch_args: {--account: x}\n",
        "data.slurm.sbatch_args.--account: not an sbatch option name",
        5,
    ),
    ("data:\n  slurm:\n    mem_per_cpu_gb: 0\n", "data.slurm.mem_per_cpu_gb=0 must be ≥ 1", 3),
    ("eval:\n  tasks: [bpb, kmmmlu]\n", "eval.tasks: unknown task 'kmmmlu'", 2),
    ("eval:\n  limit: 0\n", "eval.limit=0 must be ≥ 1 (or null)", 2),
    ("eval:\n  batch_size: 0\n", "eval.batch_size=0 must be ≥ 1", 2),
    ("eval:\n  sandbox_timeout_s: 0\n", "eval.sandbox_timeout_s=0 must be > 0", 2),
    ("eval:\n  code_pass_k: [5]\n", "eval.code_pass_k contains 5", 2),
    ("generate:\n  top_p: 0\n", "generate.top_p=0 must be > 0 and ≤ 1", 2),
    ("generate:\n  temperature: -1\n", "generate.temperature=-1 must be ≥ 0", 2),
    ("generate:\n  max_new_tokens: 0\n", "generate.max_new_tokens=0 must be ≥ 1", 2),
    ("export:\n  dtype: float16\n", "export.dtype='float16' must be one of", 2),
    ("sft:\n  val_fraction: 0\n", "sft.val_fraction=0 must be > 0 and < 1", 2),
    ("sft:\n  train:\n    lr: 0\n", "sft.train.lr=0 must be > 0", 3),
    ("bogus: 1\n", "unknown key bogus", 1),
    ("- 1\n- 2\n", "top level must be a mapping", 1),
    ("train:\n  steps: 3\n  steps: 4\n", "duplicate key train.steps (first on line 2)", 3),
    ("train:\n  steps: [1, 2\n", "invalid YAML", None),
    ("train:\n\tsteps: 3\n", "invalid YAML", None),
    ("train: {steps: 3\n", "invalid YAML", None),
]


@pytest.mark.parametrize("text, message, line", BAD, ids=[f"{i:02d}" for i in range(len(BAD))])
def test_bad_config_is_one_line_naming_file_line_and_key(tmp_path, capsys, text, message, line):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["train", str(path), "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gecko: error: "), err
    assert message in err, err
    assert f"{path}:{line}:" in err if line is not None else str(path) in err, err
    assert not (tmp_path / "runs").exists()


def test_yaml_syntax_errors_give_line_and_column(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  steps: 3\n  lr: [1e-3\neval:\n  limit: 2\n", encoding="utf-8")
    assert main(["train", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:5: invalid YAML: expected ',' or ']'" in err and "started at line 3, column 7" in err, (
        err
    )


def test_non_utf8_config_names_line_and_column(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  steps: 3  # café\n".encode("latin-1"))
    assert main(["train", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:18: not UTF-8 (byte 0xe9)" in err


def test_missing_config_and_bad_overrides_are_one_line(tmp_path, capsys):
    cases = [
        (["train", str(tmp_path / "nope.yaml")], "nope.yaml: cannot read config: No such file or directory"),
        (["train", str(tmp_path)], "cannot read config: Is a directory"),
        (
            ["train", "--dry-run", str(_empty(tmp_path)), "train.lr=-1"],
            "override train.lr=-1: train.lr=-1 must be > 0",
        ),
        (
            ["train", str(_empty(tmp_path)), "train.lr=[1", "--dry-run"],
            "override 'train.lr=[1': invalid YAML value",
        ),
        (["train", str(_empty(tmp_path)), "train..lr=1", "--dry-run"], "expected key.path=value"),
        (
            ["train", str(_empty(tmp_path)), "train.steps=5", "--dry-run"],
            f"{tmp_path / 'empty.yaml'}: train.warmup_steps=10 must be < train.steps (5)",
        ),
    ]
    for argv, message in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_unavailable_device_is_refused_only_by_commands_that_use_it(tmp_path, capsys):
    path = tmp_path / "cuda.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ntrain:\n  device: cuda\n", encoding="utf-8")
    assert main(["train", str(path), "--dry-run"]) == 2
    assert f"{path}:3: train.device='cuda' but no CUDA device is available" in capsys.readouterr().err
    assert main(["data", "run", str(path), "--dry-run"]) == 0  # data work runs on CPU machines


def test_no_traceback_from_the_real_entry_point(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"train:\n  lr: -1\n")
    out = subprocess.run([sys.executable, "-m", "gecko", "train", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr == f"gecko: error: {path}:2: train.lr=-1 must be > 0\n"


def test_presets_in_config_match_the_model_presets():
    import typing

    from gecko.config import Preset
    from gecko.model.presets import PRESETS

    assert set(typing.get_args(Preset)) == set(PRESETS)


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing: every default\n", encoding="utf-8")
    return path
