"""`gecko ablate CONFIG --vary key=v1,v2,… [--vary …]`: a grid of small runs from one config, compared.

Each variant is the config with one value of every varied key, in `RUN/ablate/{variant}/`. A stage that
reads none of the varied sections, and whose upstream stages are shared too, runs once (in the first
variant) and the others link to it: varying `train.lr` trains three models on one corpus, tokenizer and
set of shards. `--share-tokenizer` keeps the first variant's tokenizer for every variant even when the data
varies, so a mixture ladder compares mixtures, not tokenizers.

`data.mix.LANG=v` sets that language's share and rescales the other shares in proportion so they still
sum to 1 (ko 0.25 from ko 0.35 / en 0.28 / code 0.37 gives en 0.3231 / code 0.4269).

Results: `RUN/ablate/ablate.json`, `ablate.md` (bits per byte per language and the headline score of each
benchmark with its 95% interval, per variant; then every task at every validation point, marked where
the interval clears both chance and the majority baseline) and `ablate.png`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from gecko.config import GeckoConfig, load_config, to_dict
from gecko.errors import ConfigError
from gecko.io.atomic import write_json, write_text
from gecko.runner import is_complete, run_stage
from gecko.stages import BY_NAME, Stage, stage_dir
from gecko.train.metrics import read_metrics

log = logging.getLogger(__name__)

DEFAULT_STAGES = ("data", "tokenizer", "tokenize", "train", "eval")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    """Folder name, e.g. `data.mix.ko=0.25`."""
    values: dict[str, str]
    cfg: GeckoConfig


def parse_vary(items: list[str]) -> dict[str, list[str]]:
    """["data.mix.ko=0.25,0.35"] → {"data.mix.ko": ["0.25", "0.35"]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values.strip(","):
            raise ConfigError(f"--vary {item!r}: expected key=v1,v2,…")
        if key in grid:
            raise ConfigError(f"--vary {key} given twice")
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def _mix_override(base: dict[str, float], values: dict[str, str]) -> str:
    """data.mix with the varied languages set and the others rescaled to fill the rest."""
    fixed = {k.removeprefix("data.mix."): float(v) for k, v in values.items() if k.startswith("data.mix.")}
    unknown = sorted(set(fixed) - set(base))
    if unknown:
        raise ConfigError(f"--vary data.mix.{unknown[0]}: not a language of data.mix ({', '.join(base)})")
    rest, left = {k: v for k, v in base.items() if k not in fixed}, 1 - sum(fixed.values())
    if left < 0 or (left > 0 and not sum(rest.values())):
        raise ConfigError(f"--vary data.mix: shares {fixed} leave {left:.3f} for the other languages")
    scale = left / sum(rest.values()) if rest and sum(rest.values()) else 0.0
    mix = {**{k: round(v * scale, 6) for k, v in rest.items()}, **fixed}
    return f"data.mix={json.dumps(mix)}"


def _slug(values: dict[str, str]) -> str:
    return "_".join(re.sub(r"[^\w.=-]+", "-", f"{k}={v}") for k, v in values.items())


def variants(config: str | Path, grid: dict[str, list[str]], overrides: list[str]) -> list[Variant]:
    """One config per point of the grid (every combination of the varied values)."""
    base = load_config(config, overrides)
    root = base.run_path / "ablate"
    out = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo, strict=True))
        plain = [f"{k}={v}" for k, v in values.items() if not k.startswith("data.mix.")]
        mix = [_mix_override(base.data.mix, values)] if len(plain) < len(values) else []
        name = _slug(values)
        cfg = load_config(config, [*overrides, *plain, *mix, f"run_dir={json.dumps(str(root / name))}"])
        out.append(Variant(name, values, cfg))
    return out


def shared_stages(grid: dict[str, list[str]], stages: tuple[Stage, ...], share_tokenizer: bool) -> set[str]:
    """Stages that read no varied section and whose upstream stages are all shared."""
    varied = {key.split(".")[0] for key in grid}
    shared: set[str] = set()
    for stage in stages:
        if not {f.split(".")[0] for f in stage.fields} & varied and all(u in shared for u in stage.upstream):
            shared.add(stage.name)
    if share_tokenizer:
        shared.add("tokenizer")
    return shared


def _link(variant: GeckoConfig, owner: GeckoConfig, stage: Stage) -> None:
    link, target = stage_dir(variant, stage.name), stage_dir(owner, stage.name)
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.exists() or link.is_symlink():
        raise ConfigError(
            f"{link}: exists and is not a link to the shared {stage.name} stage {target} "
            "(remove it to share the stage)"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def run_ablation(
    grid_variants: list[Variant],
    grid: dict[str, list[str]],
    stages: tuple[str, ...] = DEFAULT_STAGES,
    share_tokenizer: bool = False,
    force: bool = False,
) -> None:
    """Run `stages` for every variant, sharing what the varied keys allow; complete stages are skipped."""
    unknown = [s for s in stages if s not in DEFAULT_STAGES]
    if unknown:
        raise ConfigError(
            f"ablate --stages: unknown stage {unknown[0]!r} (known: {', '.join(DEFAULT_STAGES)})"
        )
    chosen = tuple(BY_NAME[s] for s in stages)
    shared = shared_stages(grid, tuple(BY_NAME[s] for s in DEFAULT_STAGES), share_tokenizer)
    owner = grid_variants[0].cfg
    for v in grid_variants:
        v.cfg.run_path.mkdir(parents=True, exist_ok=True)
        write_text(
            v.cfg.run_path / "ablate_variant.json",
            json.dumps({"values": v.values, "config": to_dict(v.cfg)}, indent=2, ensure_ascii=False) + "\n",
        )
        for stage in chosen:
            if stage.name in shared and v.cfg is not owner:
                _link(v.cfg, owner, stage)
                continue
            if not force and is_complete(v.cfg, stage):
                log.info("ablate %s: stage %s up to date", v.name, stage.name)
                continue
            log.info("ablate %s: stage %s", v.name, stage.name)
            run_stage(v.cfg, stage, force=force)


# ── the comparison ──────────────────────────────────────────────────────────────────────────────────────


def headline(m: dict[str, Any]) -> str | None:
    """The metric that shows signal at proxy scale: cloze per character (macro where there are subjects),
    else plain cloze (LAMBADA), else MC."""
    for key in ("cloze_acc_per_char", "cloze_acc", "mc_acc"):
        for k in (f"{key}_macro", key):
            if k in m and f"{k}_ci" in m:
                return k
    return None


def clears(m: dict[str, Any], key: str) -> bool:
    """The 95% interval lies above both chance and the majority baseline."""
    bar = max(m.get("chance", 0.0), m.get("majority", 0.0))
    return m[f"{key}_ci"][0] > bar


def collect(v: Variant) -> dict[str, Any]:
    """Bits per byte and benchmark scores at every validation point of the variant's training, and the
    final eval stage's results where it ran."""
    train = stage_dir(v.cfg, "train") / "metrics.jsonl"
    records = read_metrics(train) if train.exists() else []
    results = stage_dir(v.cfg, "eval") / "results.json"
    return {
        "name": v.name,
        "values": v.values,
        "bpb": {r["step"]: r["val_bpb"] for r in records if "val_bpb" in r},
        "tasks": {r["step"]: r["eval_tasks"] for r in records if "eval_tasks" in r},
        "final": json.loads(results.read_text()) if results.exists() else None,
    }


def _final_bpb(c: dict[str, Any]) -> dict[str, float]:
    if c["final"] and c["final"].get("val_bpb"):
        return c["final"]["val_bpb"]
    return c["bpb"][max(c["bpb"])] if c["bpb"] else {}


def _final_tasks(c: dict[str, Any]) -> dict[str, Any]:
    if c["final"] and c["final"].get("tasks"):
        return c["final"]["tasks"]
    return c["tasks"][max(c["tasks"])] if c["tasks"] else {}


def _cell(m: dict[str, Any] | None) -> str:
    if not m or "skipped" in m:
        return "–"
    key = headline(m)
    if key is None:
        return "–"
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:.3f} ({lo:.3f}–{hi:.3f}){' ✓' if clears(m, key) else ''}"


def markdown(collected: list[dict[str, Any]]) -> str:
    langs = list(dict.fromkeys(lang for c in collected for lang in _final_bpb(c)))
    tasks = list(dict.fromkeys(t for c in collected for t in _final_tasks(c)))
    head = ["variant", *(f"bpb {lang}" for lang in langs), *tasks]
    lines = [
        "# Ablation\n",
        "Bits per byte (lower is better) and each benchmark's headline score with its 95% "
        "interval, at the end of training; ✓: the interval clears chance and the majority baseline.\n",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for c in collected:
        bpb, final = _final_bpb(c), _final_tasks(c)
        lines.append(
            "| "
            + " | ".join(
                [
                    c["name"],
                    *(f"{bpb[lang]:.4f}" if lang in bpb else "–" for lang in langs),
                    *(_cell(final.get(t)) for t in tasks),
                ]
            )
            + " |"
        )
    lines += ["", "## Every validation point", ""]
    for task in tasks:
        steps = sorted({s for c in collected for s in c["tasks"] if task in c["tasks"][s]})
        if not steps:
            continue
        any_m = next(c["tasks"][s][task] for c in collected for s in steps if task in c["tasks"].get(s, {}))
        key = headline(any_m) or "–"
        lines += [
            f"### {task} ({key}; chance {any_m.get('chance', 0):.3f}, majority {any_m.get('majority', 0):.3f}, "
            f"n {any_m.get('n')}, {any_m.get('shots', 0)}-shot)",
            "",
            "| variant | " + " | ".join(f"step {s}" for s in steps) + " |",
            "|" + "---|" * (len(steps) + 1),
        ]
        for c in collected:
            lines.append(
                f"| {c['name']} | " + " | ".join(_cell(c["tasks"].get(s, {}).get(task)) for s in steps) + " |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(collected: list[dict[str, Any]], path: Path) -> None:
    """Bits per byte per language, then each task's headline score (interval bars, chance dashed), per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(t for c in collected for t, m in _final_tasks(c).items() if headline(m)))
    n = 1 + len(tasks)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    names = [c["name"] for c in collected]
    x = list(range(len(collected)))
    ax = axes[0][0]
    for lang in dict.fromkeys(lang for c in collected for lang in _final_bpb(c)):
        ax.plot(x, [_final_bpb(c).get(lang, float("nan")) for c in collected], marker="o", label=lang)
    ax.set_title("bits per byte")
    ax.legend(fontsize=7)
    for i, task in enumerate(tasks, 1):
        ax = axes[i // cols][i % cols]
        ms = [_final_tasks(c).get(task) or {} for c in collected]  # {}: the task did not run
        keys = [headline(m) if m else None for m in ms]
        ys = [m[k] if k else float("nan") for m, k in zip(ms, keys, strict=True)]
        err = [
            [y - m[f"{k}_ci"][0] if k else 0 for y, m, k in zip(ys, ms, keys, strict=True)],
            [m[f"{k}_ci"][1] - y if k else 0 for y, m, k in zip(ys, ms, keys, strict=True)],
        ]
        ax.errorbar(x, ys, yerr=err, marker="o", capsize=3)
        chance = next((m["chance"] for m in ms if m and "chance" in m), None)
        if chance is not None:
            ax.axhline(chance, linestyle="--", color="gray")
        ax.set_title(f"{task} ({next((k for k in keys if k), '')})", fontsize=8)
    for i in range(n, rows * cols):
        axes[i // cols][i % cols].axis("off")
    for row in axes:
        for ax in row:
            ax.set_xticks(x, names, rotation=20, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(grid_variants: list[Variant], out_dir: Path) -> str:
    """Write ablate.json, ablate.md and ablate.png under `out_dir`; return the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    collected = [collect(v) for v in grid_variants]
    write_json(out_dir / "ablate.json", collected)
    text = markdown(collected)
    write_text(out_dir / "ablate.md", text)
    plot(collected, out_dir / "ablate.png")
    return text
