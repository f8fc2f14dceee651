"""Benchmarks during training (train.eval_tasks): scored at every validation point through gecko.eval's
harness, logged to metrics.jsonl and the trackers (TensorBoard here), without touching the training itself."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from gecko import tracking
from gecko.config import GeckoConfig, LoggingConfig, MCSetConfig, load_config
from gecko.errors import ConfigError
from gecko.eval.harness import benchmark_hook, evaluate_tasks
from gecko.eval.lm import GeckoLM
from gecko.stages import stage_dir
from gecko.tokens import load_tokenizer
from gecko.train.checkpoint import load_final_model
from gecko.train.metrics import read_metrics
from gecko.train.trainer import build_trainer

QUIZ = [
    {"q": "대한민국의 수도는?", "a": "서울", "b": "부산", "c": "인천", "gold": "A"},
    {"q": "What is 2 + 2?", "a": "3", "b": "4", "c": "5", "gold": "B"},
    {"q": "def add(a, b): return a + b — add(1, 2)?", "a": "12", "b": "21", "c": "3", "gold": "C"},
    {"q": "한글을 만든 왕은?", "a": "세종", "b": "태조", "c": "정조", "gold": "A"},
]


def _with_quiz(cfg: GeckoConfig, folder: Path) -> GeckoConfig:
    folder.mkdir(parents=True, exist_ok=True)
    quiz = folder / "quiz.jsonl"
    quiz.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in QUIZ), encoding="utf-8")
    mc = MCSetConfig("quiz", str(quiz), "q", ("a", "b", "c"), "gold", None)
    return dataclasses.replace(
        cfg,
        eval=dataclasses.replace(cfg.eval, mc_sets=(mc,)),
        train=dataclasses.replace(cfg.train, eval_tasks=("quiz",), eval_tasks_limit=3),
    )


def test_benchmarks_run_on_schedule_through_the_eval_harness(tiny_prepared, tmp_path):
    pytest.importorskip("tensorboard")
    cfg = _with_quiz(tiny_prepared, tmp_path)
    cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, steps=4, eval_every=2, checkpoint_every=0)
    )
    tokenizer, shards = stage_dir(cfg, "tokenizer"), stage_dir(cfg, "tokenize")
    tracked = dataclasses.replace(cfg, run_dir=str(tmp_path), logging=LoggingConfig(sinks=("tensorboard",)))
    with tracking.session(tracked, "train"):
        trainer = build_trainer(cfg, shards, tmp_path / "train")
        trainer.task_evaluator = benchmark_hook(cfg, tokenizer)
        trainer.train()
    assert trainer.model.training  # scoring put the model in eval mode; training must go on in train mode
    records = read_metrics(tmp_path / "train" / "metrics.jsonl")

    # train.eval_every=2 of 4 steps: at the start, in the middle and at the end, each right after validation
    bench = [r for r in records if "eval_tasks" in r]
    assert [r["step"] for r in bench] == [0, 2, 4]
    for r in bench:
        quiz = r["eval_tasks"]["quiz"]
        assert quiz["n"] == 3 and quiz["chance"] == pytest.approx(1 / 3) and "per_subject" not in quiz
        assert (
            "val_bpb" in records[records.index(r) - 1] and records[records.index(r) - 1]["step"] == r["step"]
        )

    # the logged score is the final model's, as `gecko eval`'s code computes it afresh
    model, _ = load_final_model(tmp_path / "train")
    e = dataclasses.replace(cfg.eval, limit=3)
    fresh = evaluate_tasks(GeckoLM(model, load_tokenizer(tokenizer), e.batch_size), e, ("quiz",))["quiz"]
    assert bench[-1]["eval_tasks"]["quiz"]["mc_acc"] == fresh["mc_acc"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "train" / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("eval_tasks/quiz/mc_acc")] == [0, 2, 4]


def test_unknown_benchmark_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.eval_tasks: unknown task 'bpb'"):
        load_config(None, [*TINY_OVERRIDES, "train.eval_tasks=[bpb]"])
    with pytest.raises(ConfigError, match="needs the run's tokenizer"):
        benchmark_hook(_with_quiz(load_config(None, TINY_OVERRIDES), tmp_path), None)
