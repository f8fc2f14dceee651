import json

import numpy as np
import pytest
import torch

from gecko.errors import CheckpointError
from gecko.stages import stage_dir
from gecko.tokenizer.shards import Shards
from gecko.train.checkpoint import list_checkpoints
from gecko.train.loader import PackedLoader, doc_layout
from gecko.train.trainer import build_trainer


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
    with pytest.raises(CheckpointError, match="batch_size=2 but this run has 3"):
        _loader(tiny_prepared, batch_size=3).load_state_dict(state)


def test_ranks_split_a_global_batch(tiny_prepared):
    whole = next(_loader(tiny_prepared, batch_size=4))
    parts = [next(_loader(tiny_prepared, batch_size=2, rank=r, world_size=2)) for r in range(2)]
    assert sorted(map(tuple, whole.inputs.tolist())) == sorted(tuple(r) for p in parts for r in p.inputs.tolist())


def _losses(out_dir):
    return [r["loss"] for r in map(json.loads, (out_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


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
    assert len(list_checkpoints(tmp_path / "resumed" / "checkpoints")) == cfg.train.keep_checkpoints
    assert (tmp_path / "resumed" / "loss.png").stat().st_size > 0


def test_loss_falls_and_nan_steps_are_skipped(tiny_prepared, tmp_path):
    trainer = build_trainer(tiny_prepared, stage_dir(tiny_prepared, "tokenize"), tmp_path)
    first = trainer.train_step()["loss"]
    for _ in range(10):
        last = trainer.train_step()["loss"]
    assert last < first
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.forward = lambda batch: torch.full((batch.targets.numel(),), float("nan"), requires_grad=True)
    record = trainer.train_step()
    assert record.get("skipped") is True and trainer.skipped_steps == 1
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
