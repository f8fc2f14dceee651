"""The whole pipeline through the CLI on a tiny config, as `make demo` runs it (with smaller numbers)."""

import json
import os

import pytest
import torch

from conftest import TINY_OVERRIDES
from gecko.cli import main
from gecko.stages import COMPLETE
from gecko.train.checkpoint import load_final_model


@pytest.mark.slow
def test_gecko_run_end_to_end(tiny_config, tmp_path, capsys):
    assert main(["run", str(tiny_config), *TINY_OVERRIDES]) == 0
    run = tmp_path / "run"
    out = capsys.readouterr().out
    assert "Validation bits per byte" in out

    results = json.loads((run / "eval" / "results.json").read_text())
    for lang in ("ko", "en", "code"):
        assert results["val_bpb"][lang] < results["val_bpb_step0"][lang]
    samples = [json.loads(line) for line in (run / "generate" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 1 and samples[0]["prompt"] == "대한민국의 수도는" and samples[0]["completion"]

    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(run / "export" / "hf")
    tok = AutoTokenizer.from_pretrained(run / "export" / "hf")
    ids = tok("한국어 문장과 code: x = 42", return_tensors="pt").input_ids
    ours, _ = load_final_model(run / "train")
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids)).abs().max() <= 1e-4

    # A second run skips every stage; a shorter training is stale and, holding checkpoints, redone (with
    # train and what follows) only with --force.
    mtimes = {p.name: (p / COMPLETE).stat().st_mtime_ns for p in run.iterdir() if (p / COMPLETE).exists()}
    assert main(["run", str(tiny_config), *TINY_OVERRIDES]) == 0
    assert mtimes == {
        p.name: (p / COMPLETE).stat().st_mtime_ns for p in run.iterdir() if (p / COMPLETE).exists()
    }
    assert main(["run", str(tiny_config), *TINY_OVERRIDES, "train.steps=8"]) == 2
    assert main(["run", str(tiny_config), *TINY_OVERRIDES, "train.steps=8", "--force"]) == 0
    after = {p.name: (p / COMPLETE).stat().st_mtime_ns for p in run.iterdir() if (p / COMPLETE).exists()}
    assert {n for n in mtimes if mtimes[n] != after[n]} == {"train", "eval", "export", "generate"}

    # `gecko export --gguf` redoes only the export, adding a GGUF from llama.cpp's converter (tests/test_gguf.py
    # checks such files token for token against llama.cpp itself)
    assert main(["export", str(tiny_config), *TINY_OVERRIDES, "train.steps=8", "--gguf"]) == 0
    import gguf

    fields = gguf.GGUFReader(run / "export" / "model-f32.gguf").fields
    assert bytes(fields["tokenizer.ggml.pre"].parts[-1]).decode() == "qwen2"
    assert (
        main(["run", str(tiny_config), *TINY_OVERRIDES, "train.steps=8", "export.gguf=f32"]) == 0
    )  # up to date
    assert (run / "export" / "hf" / "model.safetensors").exists()


def test_cli_reports_config_errors_without_traceback(tiny_config, capsys):
    assert main(["data", "run", str(tiny_config), "train.stepz=3"]) == 2
    assert "unknown key train.stepz" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_config(tiny_config, capsys):
    assert main(["train", str(tiny_config), "train.steps=5", "train.warmup_steps=1", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["steps"] == 5
    assert not os.path.exists(tiny_config.parent / "run")
