"""Invalidation by field: which config edits make which stage stale, and that stale work is never deleted
without --force."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from gecko.cli import main
from gecko.config import GeckoConfig, load_config
from gecko.runlock import LOCK
from gecko.runner import StaleError, plan_run, run_all
from gecko.stages import COMPLETE, NEUTRAL, SFT, STAGES, stage_dir, started_marker


def _finish_on_paper(cfg: GeckoConfig) -> None:
    """Mark every stage complete for `cfg` without running it: planning only reads markers."""
    for stage in STAGES:
        out = stage_dir(cfg, stage.name)
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPLETE).write_text(json.dumps({**started_marker(cfg, stage), "seconds": 1.0}))


def _actions(cfg: GeckoConfig) -> dict[str, str]:
    return {p.stage.name: p.action for p in plan_run(cfg)}


@pytest.fixture
def finished(tiny_config: Path) -> Path:
    _finish_on_paper(load_config(tiny_config, TINY_OVERRIDES))
    return tiny_config


@pytest.mark.parametrize(
    "override",
    [
        "train.log_every=3",
        "train.eval_every=null",
        "train.checkpoint_every=4",
        "train.keep_checkpoints=5",
        "train.eval_tasks=[mmlu]",
        "train.eval_tasks_limit=3",
        "logging.sinks=[jsonl]",
        "train.compile=true",
        "train.device=cpu",
        "train.activation_checkpointing=full",
        "data.workers=2",
        "tokenize.workers=3",
        "tokenize.chunk_bytes=1000000",
        "eval.sandbox_workers=2",
    ],
)
def test_neutral_fields_invalidate_nothing(finished, override):
    assert set(_actions(load_config(finished, [*TINY_OVERRIDES, override])).values()) == {"skip"}


@pytest.mark.parametrize(
    "override, redone",
    [
        ("eval.tasks=[bpb, mmlu]", {"eval", "export", "generate"}),
        ("eval.max_tokens_per_lang=100", {"eval", "export", "generate"}),
        ("export.dtype=bfloat16", {"export", "generate"}),
        ("generate.top_k=3", {"generate"}),
        ("train.lr=1e-3", {"train", "eval", "export", "generate"}),
        ("train.seq_len=32", {"train", "eval", "export", "generate"}),
        ("model.dim=32", {"train", "eval", "export", "generate"}),
        ("tokenizer.vocab_size=900", {"tokenizer", "tokenize", "train", "eval", "export", "generate"}),
        ("data.min_chars=50", {s.name for s in STAGES}),
        ("seed=7", {s.name for s in STAGES}),
    ],
)
def test_a_field_invalidates_its_stage_and_what_reads_it(finished, override, redone):
    actions = _actions(load_config(finished, [*TINY_OVERRIDES, override]))
    assert {name for name, action in actions.items() if action == "redo"} == redone
    assert {name for name, action in actions.items() if action == "skip"} == {s.name for s in STAGES} - redone


def test_stale_precious_stage_refuses_without_force_naming_the_fields(finished, capsys):
    before = {p: p.stat().st_mtime_ns for p in finished.parent.joinpath("run").rglob("*")}
    assert main(["run", str(finished), *TINY_OVERRIDES, "train.lr=1e-3", "train.warmup_steps=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "stage train is stale (train.lr: 0.003 → 0.001; train.warmup_steps: 2 → 3)" in err
    assert "--force" in err
    after = {p: p.stat().st_mtime_ns for p in finished.parent.joinpath("run").rglob("*") if p.name != LOCK}
    assert before == after
    with pytest.raises(StaleError):
        main_cfg = load_config(finished, [*TINY_OVERRIDES, "model.n_layers=1"])
        run_all(main_cfg)


def test_longer_training_continues_and_says_what_the_schedule_does(finished):
    plans = {p.stage.name: p for p in plan_run(load_config(finished, [*TINY_OVERRIDES, "train.steps=24"]))}
    train = plans["train"]
    assert train.action == "extend" and not train.needs_force
    assert train.changes == ("train.steps: 12 → 24",)
    assert (
        "continues from the step-12 checkpoint" in train.note
        and "cosine schedule recomputed for 24" in train.note
    )
    assert "learning rate goes from 0.000" in train.note
    assert {n: p.action for n, p in plans.items() if n != "train"} == {
        "data": "skip",
        "tokenizer": "skip",
        "tokenize": "skip",
        "eval": "redo",
        "export": "redo",
        "generate": "redo",
    }
    shorter = {p.stage.name: p for p in plan_run(load_config(finished, [*TINY_OVERRIDES, "train.steps=6"]))}
    assert shorter["train"].needs_force and shorter["train"].changes == ("train.steps: 12 → 6",)


def test_status_lists_stale_stages_with_the_diff(finished, capsys):
    run_dir = finished.parent / "run"
    shutil.copy(finished, run_dir / "config.yaml")  # what a command that wrote RUN leaves there
    assert main(["status", str(run_dir), *TINY_OVERRIDES, "eval.tasks=[bpb, mmlu]"]) == 0
    out = capsys.readouterr().out
    assert f"run folder {run_dir}: no command running" in out
    assert "train      up to date" in out
    assert 'eval       stale: eval.tasks: ["bpb"] → ["bpb", "mmlu"]' in out
    assert "export     stale: upstream eval is redone first" in out
    assert main(["status", str(finished), *TINY_OVERRIDES, "model.dim=32"]) == 0
    assert (
        "train      stale (holds work: redone only with --force): model.dim: 64 → 32"
        in capsys.readouterr().out
    )


def test_markers_of_an_older_gecko_are_stale_not_silently_reused(finished):
    cfg = load_config(finished, TINY_OVERRIDES)
    (stage_dir(cfg, "train") / COMPLETE).write_text(json.dumps({"fingerprint": "0123456789abcdef"}))
    plan = {p.stage.name: p for p in plan_run(cfg)}["train"]
    assert plan.needs_force and "older gecko" in plan.changes[0]


def test_a_field_added_by_a_newer_gecko_at_its_default_changes_nothing(finished):
    """Markers written before a field existed lack it; at its default it keeps the old behaviour, so the
    stage stays up to date, and only a non-default value makes it stale."""
    cfg = load_config(finished, TINY_OVERRIDES)
    marker_file = stage_dir(cfg, "generate") / COMPLETE
    marker = json.loads(marker_file.read_text())
    assert marker["values"].pop("generate.top_k") == GeckoConfig().generate.top_k
    marker_file.write_text(json.dumps(marker))
    assert set(_actions(cfg).values()) == {"skip"}
    plan = {p.stage.name: p for p in plan_run(load_config(finished, [*TINY_OVERRIDES, "generate.top_k=3"]))}
    assert plan["generate"].action == "redo" and plan["generate"].changes == (
        'generate.top_k: "(unset)" → 3',
    )


def test_every_config_section_is_claimed_by_a_stage_or_neutral():
    """A new top-level section must be given to a stage (its prefix) or listed in NEUTRAL."""
    claimed = {f.split(".")[0] for s in (*STAGES, SFT) for f in s.fields} | {"run_dir", "compare"}
    unclaimed = [
        f.name
        for f in dataclasses.fields(GeckoConfig)
        if f.name not in claimed and not any(p.split(".")[0] == f.name for p in NEUTRAL)
    ]
    assert not unclaimed


@pytest.mark.slow
def test_a_finished_run_keeps_its_training_when_eval_or_logging_changes(tiny_prepared, tmp_path, capsys):
    """The real thing on a tiny finished run: edits to eval tasks and log_every redo eval only; a changed lr
    refuses without --force; a longer run continues from its checkpoint."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_prepared.run_path, run_dir)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        (tiny_prepared.run_path.parent / "tiny.yaml")
        .read_text()
        .replace(str(tiny_prepared.run_path), str(run_dir))
    )
    base = [*TINY_OVERRIDES, "train.steps=6", "train.eval_every=null", "train.checkpoint_every=null"]
    assert main(["run", str(config), *base]) == 0
    train = run_dir / "train"
    snapshot = {p: p.stat().st_mtime_ns for p in train.rglob("*")}
    eval_done = (run_dir / "eval" / COMPLETE).stat().st_mtime_ns

    assert main(["run", str(config), *base, "train.log_every=3", "eval.max_tokens_per_lang=500"]) == 0
    assert snapshot == {p: p.stat().st_mtime_ns for p in train.rglob("*")}  # training untouched
    assert (run_dir / "eval" / COMPLETE).stat().st_mtime_ns != eval_done

    capsys.readouterr()
    assert main(["run", str(config), *base, "train.lr=1e-3"]) == 2
    assert "stage train is stale (train.lr: 0.003 → 0.001)" in capsys.readouterr().err
    assert snapshot == {p: p.stat().st_mtime_ns for p in train.rglob("*")}

    assert main(["train", str(config), *base, "train.steps=8"]) == 0  # continues: step 6 → 8
    steps = [
        json.loads(line)["step"]
        for line in (train / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert steps == list(range(1, 9))

    assert main(["run", str(config), *base, "train.lr=1e-3", "--force"]) == 0
    marker = json.loads((train / COMPLETE).read_text())
    assert marker["values"]["train.lr"] == 1e-3 and marker["values"]["train.steps"] == 6
