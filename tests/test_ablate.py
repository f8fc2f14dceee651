"""`gecko ablate`: the grid, the mix rescaling, which stages are shared, and a Korean-share ladder of tiny runs
end to end (table, plot and every validation point's scores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from gecko.ablate import parse_vary, shared_stages, variants
from gecko.config import load_config
from gecko.errors import ConfigError
from gecko.stages import BY_NAME, STAGES


def test_mix_values_rescale_the_other_languages(tiny_config: Path):
    grid = parse_vary(["data.mix.ko=0.25,0.45", "train.lr=0.001"])
    vs = variants(tiny_config, grid, [])
    assert [v.name for v in vs] == ["data.mix.ko=0.25_train.lr=0.001", "data.mix.ko=0.45_train.lr=0.001"]
    base = load_config(tiny_config).data.mix  # ko 0.35, en 0.28, code 0.37
    mix = vs[0].cfg.data.mix
    assert mix["ko"] == 0.25 and sum(mix.values()) == pytest.approx(1)
    assert mix["en"] / mix["code"] == pytest.approx(base["en"] / base["code"], rel=1e-5)
    assert (
        vs[1].cfg.train.lr == 0.001
        and vs[1].cfg.run_path == load_config(tiny_config).run_path / "ablate" / vs[1].name
    )
    with pytest.raises(ConfigError, match="data.mix.jp: not a language"):
        variants(tiny_config, parse_vary(["data.mix.jp=0.2"]), [])
    with pytest.raises(ConfigError, match="expected key=v1,v2"):
        parse_vary(["train.lr"])


def test_only_stages_untouched_by_the_varied_keys_are_shared():
    stages = tuple(s for s in STAGES if s.name in ("data", "tokenizer", "tokenize", "train", "eval"))
    assert shared_stages({"train.lr": ["1", "2"]}, stages, False) == {"data", "tokenizer", "tokenize"}
    assert shared_stages({"data.mix.ko": ["1"]}, stages, False) == set()
    assert shared_stages({"data.mix.ko": ["1"]}, stages, True) == {"tokenizer"}
    assert shared_stages({"tokenizer.vocab_size": ["1"]}, stages, False) == {"data"}
    assert BY_NAME["train"].fields[0] == "seed"  # varying the seed shares nothing: data reads it too
    assert shared_stages({"seed": ["1"]}, stages, False) == set()


@pytest.mark.slow  # two data stages and two 4-step trainings: about a minute on 2 cores
def test_korean_share_ladder_of_tiny_runs(tiny_config: Path, capsys: pytest.CaptureFixture[str]):
    from gecko.cli import main

    quiz = tiny_config.parent / "quiz.jsonl"
    quiz.write_text(
        "".join(
            json.dumps({"question": q, "choices": c, "answer": a}, ensure_ascii=False) + "\n"
            for q, c, a in [("대한민국의 수도는?", ["부산", "서울"], 1), ("2 + 2 = ?", ["4", "5"], 0)]
        )
    )
    task = tiny_config.parent / "quiz.yaml"
    task.write_text(f"name: quiz\ndata: {quiz}\n")
    overrides = [
        *TINY_OVERRIDES,
        "train.steps=4",
        "train.eval_every=2",
        "train.checkpoint_every=null",
        f"eval.task_files=[{task}]",
        "train.eval_tasks=[quiz]",
        "eval.tasks=[bpb]",
    ]
    code = main(
        ["ablate", str(tiny_config), *overrides, "--vary", "data.mix.ko=0.3,0.5", "--share-tokenizer"]
    )
    assert code == 0
    root = load_config(tiny_config).run_path / "ablate"
    ko3, ko5 = root / "data.mix.ko=0.3", root / "data.mix.ko=0.5"
    assert (ko5 / "tokenizer").is_symlink() and (ko5 / "tokenizer").resolve() == (ko3 / "tokenizer").resolve()
    assert not (ko5 / "data").is_symlink()  # the data differ: each variant has its own corpus
    collected = json.loads((root / "ablate.json").read_text())
    assert [c["name"] for c in collected] == ["data.mix.ko=0.3", "data.mix.ko=0.5"]
    for c in collected:
        assert sorted(c["tasks"], key=int) == ["0", "2", "4"]  # the benchmark at every validation point
        assert {"ko", "en", "code"} <= set(c["final"]["val_bpb"])
        assert c["final"]["tasks"]["quiz"]["n"] == 2
    md = (root / "ablate.md").read_text()
    assert "| variant | bpb ko |" in md and "### quiz (cloze_acc_per_char" in md
    assert (root / "ablate.png").stat().st_size > 10_000 and "# Ablation" in capsys.readouterr().out
    # a second call finds every stage complete and runs nothing
    assert (
        main(["ablate", str(tiny_config), *overrides, "--vary", "data.mix.ko=0.3,0.5", "--share-tokenizer"])
        == 0
    )
