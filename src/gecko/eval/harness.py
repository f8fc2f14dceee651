"""Run named eval tasks against a `LanguageModel`: one function for `gecko eval`, the trainer and tests.

Each task returns metrics (with the chance level beside the score) and per-item records, written to
`samples/{task}.jsonl` so any score can be traced to the items behind it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gecko.config import EVAL_TASKS, EvalConfig, GeckoConfig, MCSetConfig, expand_tasks
from gecko.errors import ConfigError, DataError
from gecko.eval import data, suite
from gecko.eval.choice import MCFormat, evaluate_choice, evaluate_last_word
from gecko.eval.lm import GeckoLM, LanguageModel
from gecko.eval.sandbox import SandboxLimits
from gecko.eval.taskfile import TaskFile, load_task_file
from gecko.eval.tasks import (
    GSM8K_COT_EXEMPLARS,
    HUMANEVAL_STOP,
    MBPP_STOP,
    Records,
    evaluate_code,
    evaluate_gsm8k,
    humaneval_program,
    mbpp_program,
    train_exemplar,
)
from gecko.io.atomic import write_text
from gecko.model.llama import Llama
from gecko.progress import Steps
from gecko.tokens import load_tokenizer

log = logging.getLogger(__name__)


def task_paths(name: str, e: EvalConfig) -> list[Path]:
    """The files or folders a task reads (checked before it runs)."""
    gsm8k = [Path(e.gsm8k_dir) / "test.jsonl"]
    if e.gsm8k_fewshot == "train":
        gsm8k.append(Path(e.gsm8k_dir) / "train.jsonl")
    if name in ("gsm8k", "humaneval", "mbpp"):
        return {"gsm8k": gsm8k, "humaneval": [Path(e.humaneval_file)], "mbpp": [Path(e.mbpp_file)]}[name]
    sets = {m.name: [Path(m.path)] for m in e.mc_sets}
    return sets[name] if name in sets else suite.task_paths(name, e)


def run_task(name: str, lm: LanguageModel, e: EvalConfig) -> tuple[dict[str, Any], Records]:
    limits = SandboxLimits(timeout_s=e.sandbox_timeout_s, cpu_s=math.ceil(e.sandbox_timeout_s))
    if suite.is_choice_task(name):
        spec = suite.choice_spec(name, e)
        return evaluate_choice(lm, spec.test, spec.shots, e.mc_shots, spec.fmt, e.formulation, e.limit)
    if name == "lambada":
        return evaluate_last_word(lm, suite.lambada(Path(e.lambada_file)), e.limit)
    if name == "gsm8k":
        test = data.gsm8k(Path(e.gsm8k_dir) / "test.jsonl")
        return evaluate_gsm8k(lm, test, gsm8k_exemplars(e), e.limit, e.gen_max_new_tokens)
    code = {
        "humaneval": (data.humaneval, e.humaneval_file, HUMANEVAL_STOP, humaneval_program),
        "mbpp": (data.mbpp, e.mbpp_file, MBPP_STOP, mbpp_program),
    }
    if name in code:
        load, path, stop, program = code[name]
        return evaluate_code(
            lm,
            load(Path(path)),
            e.limit,
            e.code_samples,
            e.code_pass_k,
            e.code_temperature,
            e.gen_max_new_tokens,
            stop,
            program,
            limits,
            workers=e.sandbox_workers or os.cpu_count() or 1,
            unsafe_no_sandbox=e.unsafe_no_sandbox,
        )
    mc_set = next(m for m in e.mc_sets if m.name == name)
    return evaluate_choice(
        lm, {"": _mc_set_items(mc_set)}, {}, 0, MCFormat("Answer:"), e.formulation, e.limit
    )


def run_task_file(task: TaskFile, lm: LanguageModel, e: EvalConfig) -> tuple[dict[str, Any], Records]:
    shots = task.shots if task.shots is not None else (e.mc_shots if task.spec.shots[""] else 0)
    metrics, records = evaluate_choice(
        lm,
        task.spec.test,
        task.spec.shots,
        shots,
        task.spec.fmt,
        task.formulation or e.formulation,
        task.limit or e.limit,
    )
    return {**metrics, "task_file": task.source}, records


def gsm8k_exemplars(e: EvalConfig) -> list[tuple[str, str]]:
    """Wei et al.'s fixed exemplars (lm-eval gsm8k_cot), or the first train-split solutions."""
    if e.gsm8k_fewshot == "standard":
        return list(GSM8K_COT_EXEMPLARS[: e.gsm8k_shots])
    return [train_exemplar(it) for it in data.gsm8k(Path(e.gsm8k_dir) / "train.jsonl")[: e.gsm8k_shots]]


def _mc_set_items(m: MCSetConfig) -> list[data.MCItem]:
    return data.mc_items(Path(m.path), m.question, m.choices, m.answer, m.answer_base, m.name)


def load_task_files(e: EvalConfig) -> dict[str, TaskFile]:
    """Every eval.task_files entry, read and checked before any model work (errors name file and row)."""
    files: dict[str, TaskFile] = {}
    for path in e.task_files:
        task = load_task_file(path)
        if task.name in files or task.name in EVAL_TASKS or task.name in {m.name for m in e.mc_sets}:
            raise DataError(
                f"{path}: task name {task.name!r} is already taken (a built-in task or another file)"
            )
        files[task.name] = task
    return files


def eval_task_names(e: EvalConfig, files: dict[str, TaskFile]) -> tuple[str, ...]:
    """What `gecko eval` scores: eval.tasks and eval.suite expanded, then the task files."""
    return expand_tasks(e.tasks, e.suite) + tuple(files)


def evaluate_tasks(
    lm: LanguageModel, e: EvalConfig, tasks: tuple[str, ...], out_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """{task: metrics} for `tasks` (suite names expanded; a task file's name runs that file) except bpb,
    which needs the shards, not a LanguageModel."""
    results: dict[str, dict[str, Any]] = {}
    files = load_task_files(e)
    names = [t for t in expand_tasks(tasks) if t != "bpb"]
    with Steps("eval", len(names), unit="tasks") as progress:
        for name in names:
            progress.describe(f"eval {name}")
            missing = [] if name in files else [p for p in task_paths(name, e) if not p.exists()]
            if missing and e.missing_data == "skip":
                log.warning("eval %s: skipped, data not found at %s", name, missing[0])
                results[name] = {"skipped": f"data not found: {missing[0]}"}
            elif missing:
                raise DataError(
                    f"eval {name}: data not found at {missing[0]} (set eval.*_dir / *_file, or "
                    f"eval.missing_data=skip)"
                )
            else:
                results[name], records = (
                    run_task_file(files[name], lm, e) if name in files else run_task(name, lm, e)
                )
                if out_dir is not None:
                    _write_records(out_dir / "samples" / f"{name}.jsonl", records)
            progress.advance()
    return results


def _write_records(path: Path, records: Records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def training_evaluator(
    e: EvalConfig, tasks: tuple[str, ...], limit: int | None, tokenizer_dir: Path
) -> Callable[[Llama], dict[str, dict[str, Any]]]:
    """The trainer's benchmark hook: `tasks` scored on the model as it is at that step (`limit` items per
    task), the same code as `gecko eval`. Per-subject tables stay out of the training log."""
    tokenizer, e = load_tokenizer(tokenizer_dir, required=()), dataclasses.replace(e, limit=limit)

    def evaluate(model: Llama) -> dict[str, dict[str, Any]]:
        try:
            results = evaluate_tasks(GeckoLM(model, tokenizer, e.batch_size), e, tasks)
        finally:
            model.train()  # GeckoLM switched it to eval mode
        return {task: {k: v for k, v in m.items() if not isinstance(v, dict)} for task, m in results.items()}

    return evaluate


def benchmark_hook(
    cfg: GeckoConfig, tokenizer_dir: Path | None
) -> Callable[[Llama], dict[str, dict[str, Any]]]:
    """train.eval_tasks through this harness, train.eval_tasks_limit items each (run_train's task_evaluator)."""
    t = cfg.train
    if tokenizer_dir is None:
        raise ConfigError(f"train.eval_tasks={list(t.eval_tasks)} needs the run's tokenizer (tokenizer_dir)")
    return training_evaluator(cfg.eval, t.eval_tasks, t.eval_tasks_limit or cfg.eval.limit, tokenizer_dir)
