"""Continued pretraining: vocabulary resize with mean-of-pieces rows, and staged training in the trainer."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import REPO, TINY_OVERRIDES, TINY_SOURCES
from gecko.config import TrainStageConfig, load_config
from gecko.errors import CheckpointError, ConfigError
from gecko.model.llama import Llama, LlamaConfig
from gecko.model.vocab import resize_vocab
from gecko.stages import stage_dir
from gecko.train.stages import new_row_mask, stage_at, stage_lr
from gecko.train.trainer import build_trainer


def _model(tied: bool) -> Llama:
    torch.manual_seed(0)
    return Llama(
        LlamaConfig(
            vocab_size=50,
            dim=16,
            n_layers=2,
            n_heads=2,
            n_kv_heads=2,
            ffn_dim=32,
            max_seq_len=32,
            tie_embeddings=tied,
        )
    )


@pytest.mark.parametrize("tied", [False, True])
def test_resize_keeps_old_rows_and_logits_and_averages_pieces(tied: bool) -> None:
    model = _model(tied)
    tokens = torch.randint(0, 50, (2, 12))
    before_logits = model(tokens)
    emb = model.tok_embeddings.weight.detach().clone()
    out = (model.output.weight if model.output is not None else model.tok_embeddings.weight).detach().clone()
    mask = resize_vocab(model, 53, {50: [3, 7], 51: [10, 11, 12], 52: [4]})
    assert mask.tolist() == [False] * 50 + [True] * 3 and model.cfg.vocab_size == 53
    assert torch.equal(model.tok_embeddings.weight[:50], emb)
    assert torch.allclose(model.tok_embeddings.weight[50], emb[[3, 7]].mean(0))
    assert torch.allclose(model.tok_embeddings.weight[51], emb[[10, 11, 12]].mean(0))
    assert torch.equal(model.tok_embeddings.weight[52], emb[4])
    head = model.output.weight if model.output is not None else model.tok_embeddings.weight
    assert (model.output is None) == tied and torch.allclose(head[50], out[[3, 7]].mean(0))
    after_logits = model(tokens)
    assert after_logits.shape[-1] == 53 and torch.allclose(after_logits[..., :50], before_logits, atol=1e-6)


def test_resize_rejects_bad_pieces() -> None:
    with pytest.raises(CheckpointError, match="pieces"):
        resize_vocab(_model(False), 52, {50: [], 51: [1]})
    with pytest.raises(CheckpointError, match="outside"):
        resize_vocab(_model(False), 52, {60: [1]})


STAGES = (
    TrainStageConfig("new_embeddings", steps=4, lr=1e-2, warmup_steps=1, trainable="new_embeddings"),
    TrainStageConfig("all", steps=6, lr=1e-3, warmup_steps=2, trainable="all"),
)


def test_stage_schedule_is_a_function_of_the_global_step() -> None:
    assert [stage_at(STAGES, s) for s in (0, 3, 4, 9, 12)] == [(0, 0), (0, 3), (1, 0), (1, 5), (1, 8)]
    assert stage_lr(STAGES, 0, "cosine", 0.1) == pytest.approx(1e-2)  # warmup of 1: full lr at once
    assert stage_lr(STAGES, 4, "cosine", 0.1) == pytest.approx(5e-4)  # second stage restarts its warmup
    assert stage_lr(STAGES, 5, "cosine", 0.1) == pytest.approx(1e-3)
    assert stage_lr(STAGES, 9, "cosine", 0.1) == pytest.approx(1e-4)  # decayed to min_lr_ratio at its end


def test_config_stages_must_add_up(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "train:\n  steps: 9\n  stages:\n    - {name: a, steps: 4, lr: 0.01, trainable: new_embeddings}\n"
        "    - {name: b, steps: 6, lr: 0.001}\n"
    )
    with pytest.raises(ConfigError, match="add up to 10"):
        load_config(path)
    with pytest.raises(ConfigError, match="trainable"):
        load_config(path, ["train.steps=10", "train.stages=[{name: a, steps: 10, lr: 0.1, trainable: head}]"])
    assert load_config(path, ["train.steps=10"]).train.stages[0].trainable == "new_embeddings"


def _staged(tiny_prepared):
    t = dataclasses.replace(tiny_prepared.train, steps=10, stages=STAGES, checkpoint_every=None)
    return dataclasses.replace(tiny_prepared, train=t)


@pytest.mark.slow
def test_first_stage_trains_only_new_rows_then_everything(tiny_prepared, tmp_path) -> None:
    cfg = _staged(tiny_prepared)
    trainer = build_trainer(cfg, stage_dir(cfg, "tokenize"), tmp_path)
    vocab = trainer.model_cfg.vocab_size
    trainer.new_rows = new_row_mask(vocab, vocab - 40)  # as if the last 40 tokens came from an extension
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    records = []
    while trainer.step < 4:
        records.append(trainer.train_step())
        trainer.step += 1
    state = trainer.model.state_dict()
    for name, tensor in state.items():
        if name in ("tok_embeddings.weight", "output.weight"):
            assert torch.equal(tensor[: vocab - 40], start[name][: vocab - 40]), name  # old rows exact
            assert not torch.equal(tensor[vocab - 40 :], start[name][vocab - 40 :]), name
        else:
            assert torch.equal(tensor, start[name]), name  # the body is frozen
    assert [r["lr"] for r in records] == [pytest.approx(stage_lr(STAGES, s, "cosine", 0.1)) for s in range(4)]
    trainer.train_step()
    trainer.step += 1
    assert not torch.equal(
        trainer.model.state_dict()["layers.0.attention.wq.weight"], start["layers.0.attention.wq.weight"]
    )


@pytest.mark.slow
def test_staged_run_resumes_exactly(tiny_prepared, tmp_path) -> None:
    cfg = _staged(tiny_prepared)
    shards = stage_dir(cfg, "tokenize")

    def run(out, stop_at=None):
        trainer = build_trainer(cfg, shards, out)
        trainer.new_rows = new_row_mask(trainer.model_cfg.vocab_size, trainer.model_cfg.vocab_size - 40)
        losses = []
        while trainer.step < (stop_at or cfg.train.steps):
            losses.append(trainer.train_step()["loss"])
            trainer.step += 1
        trainer.save()
        trainer.metrics.close()
        return losses

    straight = run(tmp_path / "a")
    resumed = run(tmp_path / "b", stop_at=3) + run(tmp_path / "b")  # killed inside the first stage
    assert straight == resumed


def test_new_embeddings_stage_needs_an_extension(tiny_prepared, tmp_path) -> None:
    cfg = _staged(tiny_prepared)
    trainer = build_trainer(cfg, stage_dir(cfg, "tokenize"), tmp_path)
    with pytest.raises(ConfigError, match="extension"):
        trainer.train_step()
    assert json.loads(json.dumps(STAGES[0].__dict__))["trainable"] == "new_embeddings"


@pytest.mark.slow
def test_cli_extend_tokenize_import_grows_a_gpt_style_model(tiny_prepared, tmp_path, capsys) -> None:
    """The user's path with an open model whose tokenizer is GPT-2-like (byte-level, `<|endoftext|>` only, as
    SmolLM2): extend → tokenize → import. Old rows come over exactly, each new row is the mean of its pieces,
    and `gecko run` would not train a tokenizer over the extension."""
    import shutil

    from tokenizers.implementations import ByteLevelBPETokenizer

    from gecko.cli import main
    from gecko.model.hf import export_hf
    from gecko.model.presets import build_llama_config
    from gecko.runner import plan_run
    from gecko.tokens import load_new_tokens
    from gecko.train.checkpoint import load_final_model

    run = tmp_path / "run"
    shutil.copytree(tiny_prepared.run_path / "data", run / "data")
    config = tmp_path / "cpt.yaml"
    config.write_text(TINY_SOURCES.format(run_dir=run, repo=REPO), encoding="utf-8")
    overrides = list(TINY_OVERRIDES)  # the copied data stage stays up to date
    texts = [json.loads(line)["text"] for line in (run / "data" / "corpus.jsonl").open(encoding="utf-8")]
    base_tok = ByteLevelBPETokenizer()
    english = [t for t in texts if t.isascii()]
    base_tok.train_from_iterator(english, vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>"])
    (tmp_path / "tok").mkdir()
    base_tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    cfg = load_config(config, overrides)
    torch.manual_seed(0)
    donor = Llama(build_llama_config(cfg.model, base_tok.get_vocab_size()))
    folder = export_hf(donor, tmp_path / "tok", tmp_path / "donor")  # <|endoftext|> as bos/eos
    assert json.loads((folder / "tokenizer_config.json").read_text())["eos_token"] == "<|endoftext|>"

    args = [str(config), *overrides]
    assert main(["tokenizer", "extend", str(folder), *args, "--add", "150", "--langs", "ko"]) == 0
    assert main(["tokenize", *args]) == 0
    assert main(["import", str(folder), *args]) == 0
    capsys.readouterr()
    base_size, new = load_new_tokens(run / "tokenizer")
    assert base_size == 600 and len(new) >= 100
    model, meta = load_final_model(run / "train")
    assert meta["step"] == 0 and model.cfg.vocab_size == base_size + len(new)
    for name in ("tok_embeddings.weight", "output.weight"):
        grown, old = model.state_dict()[name], donor.state_dict()[name]
        assert torch.equal(grown[:base_size], old)
        for t in new[:20]:
            assert torch.allclose(grown[t.id], old[t.pieces].mean(dim=0), atol=1e-6)
    plans = {p.stage.name: p.action for p in plan_run(load_config(config, overrides))}
    assert plans["tokenizer"] == "skip" and plans["tokenize"] == "skip" and plans["train"] == "resume"

    # a config edit that would retrain the tokenizer asks for --force before replacing the extension
    assert main(["tokenizer", "train", *args, "tokenizer.vocab_size=2048"]) == 2
    assert "gecko tokenizer extend" in capsys.readouterr().err
    # a model whose tokenizer is not the extension's base is refused, naming both files
    other = tmp_path / "other_tok"
    other.mkdir()
    ByteLevelBPETokenizer().save(str(other / "tokenizer.json"))  # an empty vocabulary: different ids
    shutil.rmtree(run / "train")
    stranger = export_hf(donor, tmp_path / "tok", tmp_path / "stranger")
    shutil.copyfile(other / "tokenizer.json", stranger / "tokenizer.json")
    assert main(["import", str(stranger), *args]) == 2
    assert "extends another tokenizer" in capsys.readouterr().err
