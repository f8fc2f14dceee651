"""Running the stage table (gecko.stages): what each stage needs now, and doing it.

`plan_stage` compares a stage's markers with the current config: skip (unchanged, complete), run (never
ran), resume (interrupted with the same config), extend (a `grows` field increased), redo (stale). A stale
`precious` stage is never deleted without `--force` (`check_plans` refuses before any work). `run_stage`
writes the markers around one stage, `run_all` chains them (`gecko run`), `status_lines` is `gecko status`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gecko import tracking
from gecko.config import GeckoConfig, to_dict
from gecko.errors import GeckoError
from gecko.io.atomic import write_text
from gecko.stages import (
    COMPLETE,
    SFT,
    STAGES,
    STARTED,
    Stage,
    read_marker,
    stage_dir,
    stage_values,
    started_marker,
    upstream_fingerprints,
)

log = logging.getLogger(__name__)

CONFIG_COPY = "config.yaml"
"""RUN/config.yaml: the resolved config of the last command that wrote RUN (`gecko status RUN` reads it)."""


class StaleError(GeckoError):
    """A stage's outputs hold work that its changed config would discard; --force allows it."""


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
    made_by: str | None = None
    """The command that made the outputs in place of the stage (`gecko tokenizer extend`); a redo would
    replace them with the stage's own, so it needs --force like precious work."""

    @property
    def needs_force(self) -> bool:
        return self.action == "redo" and (self.stage.precious or self.made_by is not None)

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
    marker = read_marker(out / COMPLETE)
    complete = marker is not None
    marker = marker or read_marker(out / STARTED)
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
    now = upstream_fingerprints(cfg, stage)
    for up in stage.upstream:
        if up in rerun:
            changes.append(f"upstream {up} is redone first")
        elif marker.get("upstream", {}).get(up) != now[up]:
            changes.append(f"upstream {up} changed since this stage ran")
    if changes:
        made_by = marker.get("made_by")
        note = f"its outputs were made by `{made_by}`" if made_by else ""
        return Plan(stage, "redo", tuple(changes), note, made_by)
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
            f"RUN/{first.stage.folder}"
            + (f", made by `{first.made_by}`," if first.made_by else "")
            + " would be deleted: rerun with --force to redo it, or restore "
            "the old values" + (f" (also stale: {also})" if also else "")
        )


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
        _write_complete(cfg, stage, marker)
    return marker


def record_made_by(cfg: GeckoConfig, stage: Stage, command: str, summary: dict[str, Any]) -> None:
    """Mark `stage` complete with outputs another command made (`gecko tokenizer extend` writes RUN/tokenizer):
    `gecko run` then uses them instead of running the stage over them, and a config edit that makes the stage
    stale asks for --force before they are replaced."""
    _write_complete(cfg, stage, {**started_marker(cfg, stage), "made_by": command, "summary": summary})


def _write_complete(cfg: GeckoConfig, stage: Stage, marker: dict[str, Any]) -> None:
    """The marker that says the stage's outputs are whole (plan_stage reads it)."""
    path = stage_dir(cfg, stage.name) / COMPLETE
    write_text(path, json.dumps(marker, indent=2, ensure_ascii=False, default=str) + "\n")


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
        complete = read_marker(stage_dir(cfg, plan.stage.name) / COMPLETE)
        took = f" [{complete['seconds']:.0f} s]" if complete and "seconds" in complete else ""
        lines.append(f"  {plan.stage.name:<10} {plan.describe()}{took}")
    return lines


def is_complete(cfg: GeckoConfig, stage: Stage) -> bool:
    """Complete, and still valid for this config."""
    return plan_stage(cfg, stage).action == "skip"
