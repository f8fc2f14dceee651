"""Generation options (repetition penalty, stop strings, streaming, prompts files), sharded export, the
model card and `gecko import`."""

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from gecko.config import GenerateConfig, load_config
from gecko.errors import CheckpointError, ConfigError
from gecko.export.card import model_card
from gecko.infer.generate import (
    GREEDY,
    Sampling,
    cut_at_stop,
    generate,
    generate_batch,
    read_prompts,
    run_generate,
)
from gecko.model.hf import export_hf, load_hf
from helpers import hf_model, prompt, seeded_llama


def test_repetition_penalty_matches_transformers(tmp_path, tokenizer_dir):
    model = seeded_llama()
    ids = prompt(tokenizer_dir)
    ours = generate(model, ids, 20, Sampling(0.0, repetition_penalty=1.5))
    assert ours != generate(model, ids, 20, GREEDY)  # the penalty changes greedy choices here
    folder = export_hf(model, tokenizer_dir, tmp_path / "export")
    theirs = hf_model(folder).generate(
        torch.tensor([ids]), do_sample=False, max_new_tokens=20, min_new_tokens=20, repetition_penalty=1.5
    )
    assert ours == theirs[0, len(ids) :].tolist()
    prompts = [ids, [1, 5, 9, 9, 9], [1, 42, 7]]  # padding must not count as "seen"
    penalized = Sampling(0.0, repetition_penalty=1.5)
    assert generate_batch(model, prompts, 12, penalized) == [
        generate(model, p, 12, penalized) for p in prompts
    ]


def test_stop_callback_finishes_rows_independently(tokenizer_dir):
    model = seeded_llama()
    prompts = [prompt(tokenizer_dir), [1, 42, 7]]
    full = generate_batch(model, prompts, 15, GREEDY)
    stopped = generate_batch(model, prompts, 15, GREEDY, stop=lambda row: len(row) == 4)
    assert stopped == [row[:4] for row in full]
    assert cut_at_stop("abc\n\ndef END x", ("END", "\n\n")) == "abc"


def test_generate_stage_streams_what_it_batches(tmp_path, tokenizer_dir, capsys):
    folder = export_hf(seeded_llama(), tokenizer_dir, tmp_path / "export")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The capital of Korea\n\ndef add(a, b):\\n    return\n서울은\n")
    cfg = GenerateConfig(
        prompts_file=str(prompts), max_new_tokens=12, temperature=0.0, batch_size=2, stop=("Seoul",)
    )
    assert read_prompts(cfg) == ["The capital of Korea", "def add(a, b):\n    return", "서울은"]
    batched = tmp_path / "batched"
    streamed = tmp_path / "streamed"
    for out, stream in ((batched, False), (streamed, True)):
        out.mkdir()
        run_generate(dataclasses.replace(cfg, stream=stream), folder, out)
    rows = [json.loads(line) for line in (batched / "samples.jsonl").read_text().splitlines()]
    assert (streamed / "samples.jsonl").read_text() == (batched / "samples.jsonl").read_text()
    printed = capsys.readouterr().out
    assert all(r["completion"] in printed for r in rows) and all("Seoul" not in r["completion"] for r in rows)
    with pytest.raises(ConfigError, match="prompts_file=.*missing.txt: cannot read"):
        read_prompts(GenerateConfig(prompts_file=str(tmp_path / "missing.txt")))


def test_sharded_export_loads_everywhere(tmp_path, tokenizer_dir):
    model = seeded_llama()
    folder = export_hf(model, tokenizer_dir, tmp_path / "export", max_shard_bytes=40_000)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 2 and not (folder / "model.safetensors").exists()
    assert sum(len(load_file(folder / f)) for f in files) == len(index["weight_map"])
    x = torch.randint(0, 300, (1, 30))
    with torch.no_grad():
        assert (hf_model(folder)(x).logits - model(x)).abs().max() <= 1e-5
    assert torch.equal(load_hf(folder)[0](x), model(x))


def test_model_card_reports_what_the_run_recorded(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}"])
    card = model_card(cfg, seeded_llama(), step=7)
    assert card.startswith("---\nlicense: apache-2.0") and "not recorded" in card
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(
        json.dumps({"step": 7, "val_bpb": {"ko": 1.25, "en": 1.5}, "val_bpb_step0": {"ko": 4.0}})
    )
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "meta.json").write_text(
        json.dumps({"splits": {"train": {"langs": {"ko": {"tokens": 300}, "en": {"tokens": 100}}}}})
    )
    card = model_card(cfg, seeded_llama(), step=7)
    assert "| ko | 4.000 | 1.250 |" in card and "| en | – | 1.500 |" in card
    assert "| ko | 35% | 300 (75.0%) |" in card and "| code | 37% | not recorded |" in card


def test_import_continues_training_from_a_hf_folder(tiny_prepared, tmp_path):
    from gecko.infer.bpb import evaluate_bpb
    from gecko.runner import run_stage
    from gecko.shards import Shards
    from gecko.stages import BY_NAME, stage_dir
    from gecko.train.trainer import build_trainer

    shutil.copytree(tiny_prepared.run_path, tmp_path / "run")
    cfg = dataclasses.replace(
        tiny_prepared,
        run_dir=str(tmp_path / "run"),
        train=dataclasses.replace(
            tiny_prepared.train, steps=2, eval_every=0, checkpoint_every=0, warmup_steps=1
        ),
    )
    shards = Shards(stage_dir(cfg, "tokenize"))
    donor = build_trainer(dataclasses.replace(cfg, seed=99), shards.path, tmp_path / "donor-run").model
    folder = export_hf(donor, stage_dir(cfg, "tokenizer"), tmp_path / "donor")
    wrong = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dim=32))
    with pytest.raises(CheckpointError, match=r"set model.dim=64 \(run has 32\)"):
        from gecko.importer import import_hf

        import_hf(wrong, folder)
    import_hf(cfg, folder)
    run_stage(cfg, BY_NAME["train"])
    records = [
        json.loads(line) for line in (stage_dir(cfg, "train") / "metrics.jsonl").read_text().splitlines()
    ]
    first = next(r["val_bpb"] for r in records if "val_bpb" in r)
    e = cfg.eval
    expected = evaluate_bpb(
        donor, shards, "val", cfg.train.seq_len, e.batch_size, e.max_tokens_per_lang, torch.device("cpu")
    )
    assert first == pytest.approx(expected, rel=1e-6)  # training started from the imported weights
    with pytest.raises(CheckpointError, match="already holds a run"):
        import_hf(cfg, folder)


def test_generate_from_a_model_folder_needs_no_config_and_prints_text_verbatim(
    tmp_path, tokenizer_dir, capsys, monkeypatch
):
    from gecko.cli import main

    folder = export_hf(seeded_llama(), tokenizer_dir, tmp_path / "export")
    monkeypatch.chdir(tmp_path)
    text = "x = [/] [i]"  # rich markup would drop [i] and raise MarkupError on [/]
    argv = [
        "generate",
        "--model",
        str(folder),
        "--prompt",
        text,
        "--prompt",
        "서울은",
        "generate.max_new_tokens=4",
        "--out",
        "samples",
    ]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "samples" / "samples.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [text, "서울은"]
    assert capsys.readouterr().out.startswith(text + rows[0]["completion"] + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "samples"]  # no run folder was made
    assert main(["generate", "--model", str(tmp_path / "samples")]) == 2
    assert "no config.json" in capsys.readouterr().err
