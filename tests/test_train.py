import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gecko import tracking
from gecko.config import load_config
from gecko.errors import CheckpointError
from gecko.model.llama import Llama, LlamaConfig
from gecko.shards import Shards, doc_layout
from gecko.stages import stage_dir
from gecko.train.checkpoint import list_checkpoints
from gecko.train.loader import PackedLoader
from gecko.train.metrics import MetricsLog, read_metrics
from gecko.train.parallelize import parallelize
from gecko.train.trainer import build_trainer, token_losses


def test_doc_layout_restarts_positions_at_each_document():
    starts = np.array([0, 5, 7, 20])
    doc, pos = doc_layout(starts, 3, 10)
    assert doc.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert pos.tolist() == [0, 1, 0, 1, 0, 1, 2]  # the document cut by the window edge restarts at 0


def _loader(cfg, **kw):
    args = dict(split="train", seq_len=32, batch_size=2, seed=5, doc_mask=True) | kw
    return PackedLoader(Shards(stage_dir(cfg, "tokenize")), **args)


def test_loader_batches_follow_the_shards(tiny_prepared):
    shards = Shards(stage_dir(tiny_prepared, "tokenize"))
    batch = next(_loader(tiny_prepared))
    assert batch.inputs.shape == batch.targets.shape == batch.doc_ids.shape == (2, 32)
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    bos = shards.meta["bos_id"]
    starts = batch.inputs == bos
    assert torch.all(batch.positions[starts] == 0)  # every document begins at position 0
    assert batch.langs.max() < len(shards.langs)


def test_loader_resumes_exactly_and_refuses_other_shards(tiny_prepared):
    a = _loader(tiny_prepared)
    for _ in range(3):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(40)]  # crosses an epoch boundary on these few tokens
    b = _loader(tiny_prepared)
    b.load_state_dict(state)
    for want, got in zip(expected, (next(b) for _ in range(40))):
        assert torch.equal(want.inputs, got.inputs) and torch.equal(want.positions, got.positions)
    with pytest.raises(CheckpointError, match="global_batch=2 but this run has 3"):
        _loader(tiny_prepared, batch_size=3).load_state_dict(state)
    _loader(tiny_prepared, batch_size=1, world_size=2).load_state_dict(state)  # same global batch, 2 ranks


def test_ranks_split_a_global_batch(tiny_prepared):
    whole = next(_loader(tiny_prepared, batch_size=4))
    parts = [next(_loader(tiny_prepared, batch_size=2, rank=r, world_size=2)) for r in range(2)]
    assert sorted(map(tuple, whole.inputs.tolist())) == sorted(
        tuple(r) for p in parts for r in p.inputs.tolist()
    )


def _losses(out_dir):
    return [
        r["loss"]
        for r in map(json.loads, (out_dir / "metrics.jsonl").read_text().splitlines())
        if "loss" in r
    ]


def test_resume_is_bitwise_exact(tiny_prepared, tmp_path):
    cfg = tiny_prepared
    shards = stage_dir(cfg, "tokenize")
    straight = build_trainer(cfg, shards, tmp_path / "straight")
    straight.train()

    first = build_trainer(cfg, shards, tmp_path / "resumed")
    while first.step < 6:  # train 6 steps, checkpoint, then "die" without finishing the run
        record = first.train_step()
        first.step += 1
        first.metrics.write(record | {"step": first.step})
    first.save()
    first.metrics.close()
    resumed = build_trainer(cfg, shards, tmp_path / "resumed")
    assert resumed.step == 6
    resumed.train()
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "resumed")
    assert [p.name for p in list_checkpoints(tmp_path / "resumed" / "checkpoints")] == [
        "step-000006",
        "step-000012",
    ]
    assert (tmp_path / "resumed" / "loss.png").stat().st_size > 0


def test_loss_falls_and_nan_steps_are_skipped(tiny_prepared, tmp_path):
    trainer = build_trainer(tiny_prepared, stage_dir(tiny_prepared, "tokenize"), tmp_path)
    first = trainer.train_step()["loss"]
    for _ in range(10):
        last = trainer.train_step()["loss"]
    assert last < first
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    nan = lambda batch: torch.full((batch.targets.numel(),), float("nan"), requires_grad=True)  # noqa: E731
    trainer.forward = lambda batch: (nan(batch), nan(batch))
    record = trainer.train_step()
    assert record.get("skipped") is True and trainer.skipped_steps == 1
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


@pytest.mark.parametrize("mode", ["selective", "full"])
def test_activation_checkpointing_keeps_names_losses_and_gradients(mode):
    cfg = LlamaConfig(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=160, max_seq_len=32)
    x = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(0))

    def loss_and_grads(ac: str):
        torch.manual_seed(0)
        model = parallelize(Llama(cfg), ac=ac, compile=False, mesh=None, bf16=False)
        loss = token_losses(model(x[:, :-1]), x[:, 1:], 0.0)[0].mean()
        loss.backward()
        return model, loss, {n: p.grad for n, p in model.named_parameters()}

    plain, loss, grads = loss_and_grads("none")
    wrapped, ac_loss, ac_grads = loss_and_grads(mode)
    assert list(wrapped.state_dict()) == list(plain.state_dict())  # checkpoints and export see the same keys
    assert torch.equal(loss, ac_loss)
    for g, ac_g in zip(grads.values(), ac_grads.values()):
        torch.testing.assert_close(ac_g, g, rtol=0, atol=1e-6)


def test_token_losses_match_cross_entropy_and_add_z_loss():
    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 11, (2, 5))
    ce, objective = token_losses(logits, targets, 0.0)
    torch.testing.assert_close(ce, F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none"))
    assert torch.equal(objective, ce)
    _, with_z = token_losses(logits, targets, 1e-2)
    torch.testing.assert_close(with_z - ce, 1e-2 * torch.logsumexp(logits.flatten(0, 1), -1) ** 2)


def test_loss_spike_is_skipped_and_logged(tiny_prepared, tmp_path, caplog):
    cfg = dataclasses.replace(
        tiny_prepared, train=dataclasses.replace(tiny_prepared.train, loss_spike_factor=1.5)
    )
    trainer = build_trainer(cfg, stage_dir(cfg, "tokenize"), tmp_path)
    trainer.recent_losses = [1.0] * 5  # far below the real loss of an untrained model (~ln 1024)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    record = trainer.train_step()
    assert record.get("skipped") is True and "over 1.5× the recent mean" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert trainer.recent_losses == [1.0] * 5  # a refused loss does not enter the window


def test_metrics_log_feeds_the_stage_trackers_and_stays_silent_when_disabled(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = load_config(None, [f"run_dir={tmp_path / 'on'}", "logging.sinks=[tensorboard, jsonl]"])
    with tracking.session(cfg, "train"):
        log = MetricsLog(tmp_path / "on" / "metrics.jsonl")
        log.start(0)
        log.write({"step": 1, "loss": 2.0, "loss_by_lang": {"ko": 2.5}, "skipped": True})
        log.close()
    assert read_metrics(tmp_path / "on" / "metrics.jsonl")[0]["loss_by_lang"] == {"ko": 2.5}
    assert list((tmp_path / "on" / "train" / "tensorboard").glob("events.out.tfevents.*"))
    events = read_metrics(tmp_path / "on" / tracking.EVENT_LOG)
    assert [e["kind"] for e in events] == ["config", "start", "metrics", "end"]
    assert events[2]["values"] == {"loss": 2.0, "loss_by_lang/ko": 2.5} and events[2]["step"] == 1
    off = MetricsLog(tmp_path / "off" / "metrics.jsonl", enabled=False)
    off.start(0)
    off.write({"step": 1, "loss": 2.0})
    off.close()
    assert not (tmp_path / "off").exists()  # ranks other than 0 write nothing
