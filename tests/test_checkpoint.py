"""DCP checkpoints: crafted files cannot run code, damaged ones are reported and skipped, the metrics log
follows the resumed step, and a process killed at any phase of a save resumes from the last complete one."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES
from gecko.config import load_config
from gecko.errors import CheckpointError
from gecko.stages import stage_dir
from gecko.train.checkpoint import COMPLETE, CheckpointManager, list_checkpoints, load_final_model
from gecko.train.metrics import MetricsLog, read_metrics
from gecko.train.trainer import build_trainer

ENV = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _train_and_save(cfg, out: Path, steps: tuple[int, ...]):
    """A trainer that ran to each of `steps` and saved there."""
    trainer = build_trainer(cfg, stage_dir(cfg, "tokenize"), out)
    for stop in steps:
        while trainer.step < stop:
            trainer.metrics.write(trainer.train_step() | {"step": trainer.step + 1})
            trainer.step += 1
        trainer.save()
    trainer.metrics.close()
    return trainer


class _RunsCode:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _metadata(folder: Path):
    return pickle.loads(
        (folder / "dcp" / ".metadata").read_bytes()
    )  # the test's own file: plain pickle is fine


def _rewrite_metadata(folder: Path, metadata) -> None:
    """Replace .metadata and update COMPLETE so that only the unpickler can catch it."""
    path = folder / "dcp" / ".metadata"
    path.write_bytes(pickle.dumps(metadata))
    manifest = json.loads((folder / COMPLETE).read_text())
    manifest["files"]["dcp/.metadata"] = path.stat().st_size
    (folder / COMPLETE).write_text(json.dumps(manifest))


def _load_outside(train_dir: Path) -> subprocess.CompletedProcess:
    code = (
        "import sys; from pathlib import Path; from gecko.train.checkpoint import load_final_model; "
        "from gecko.errors import GeckoError\n"
        "try:\n    load_final_model(Path(sys.argv[1]))\n"
        "except GeckoError as e:\n    print(e); sys.exit(1)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(train_dir)], env=ENV, capture_output=True, text=True, timeout=120
    )


def test_crafted_checkpoints_cannot_run_code(tiny_prepared, tmp_path):
    _train_and_save(tiny_prepared, tmp_path / "train", (1,))
    folder = list_checkpoints(tmp_path / "train" / "checkpoints")[-1]
    assert _load_outside(tmp_path / "train").returncode == 0  # the untouched checkpoint loads

    marker = tmp_path / "pwned"
    original = _metadata(folder)
    _rewrite_metadata(folder, {"metadata": _RunsCode(marker)})  # .metadata itself runs code when unpickled
    done = _load_outside(tmp_path / "train")
    assert done.returncode == 1 and not marker.exists()
    assert "posix.system" in done.stdout and "refusing" in done.stdout and len(done.stdout.splitlines()) == 1

    # valid metadata, but one weight declared a pickled object whose bytes run code (DCP would torch.load them
    # with weights_only=False)
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    payload = pickle.dumps(_RunsCode(marker))
    key = "model.norm.weight"
    index = next(i for i in original.storage_data if i.fqn == key)
    data_file = folder / "dcp" / original.storage_data[index].relative_path
    offset = data_file.stat().st_size
    with data_file.open("ab") as f:
        f.write(payload)
    original.state_dict_metadata[key] = BytesStorageMetadata()
    original.storage_data = {i: v for i, v in original.storage_data.items() if i.fqn != key}
    original.storage_data[type(index)(key)] = type(original.storage_data[next(iter(original.storage_data))])(
        data_file.name, offset, len(payload)
    )
    _rewrite_metadata(folder, original)
    manifest = json.loads((folder / COMPLETE).read_text())
    manifest["files"][f"dcp/{data_file.name}"] = data_file.stat().st_size
    (folder / COMPLETE).write_text(json.dumps(manifest))
    done = _load_outside(tmp_path / "train")
    assert done.returncode == 1 and not marker.exists(), done.stderr[-2000:]
    assert "pickled object" in done.stdout and len(done.stdout.splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncate_shard", "garbage_metadata", "no_marker", "bad_trainer_json"])
def test_damaged_latest_checkpoint_is_reported_moved_aside_and_the_previous_used(
    tiny_prepared, tmp_path, caplog, damage
):
    out = tmp_path / "train"
    saved = _train_and_save(tiny_prepared, out, (2, 4))
    weights_at_4 = {k: v.clone() for k, v in saved.model.state_dict().items()}
    latest = out / "checkpoints" / "step-000004"
    if damage == "truncate_shard":
        shard = next((latest / "dcp").glob("*.distcp"))
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "garbage_metadata":  # same size: only reading it can tell
        meta = latest / "dcp" / ".metadata"
        meta.write_bytes(os.urandom(meta.stat().st_size))
    elif damage == "no_marker":
        (latest / COMPLETE).unlink()
    else:
        (latest / "trainer.json").write_text("{", encoding="utf-8")
    caplog.set_level("WARNING")
    resumed = build_trainer(tiny_prepared, stage_dir(tiny_prepared, "tokenize"), out)
    assert resumed.step == 2
    assert (out / "checkpoints" / "step-000004.corrupt").is_dir() and not latest.exists()  # kept, not deleted
    warnings = [r.getMessage() for r in caplog.records if "unusable checkpoint" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "step-000004" in warnings[0]
    assert not all(torch.equal(weights_at_4[k], v) for k, v in resumed.model.state_dict().items())
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]  # steps 3-4 will be redone


def test_no_usable_checkpoint_is_one_error_naming_what_was_moved(tiny_prepared, tmp_path):
    out = tmp_path / "train"
    _train_and_save(tiny_prepared, out, (1,))
    (out / "checkpoints" / "step-000001" / COMPLETE).unlink()
    with pytest.raises(CheckpointError, match="no usable checkpoint .*step-000001.corrupt"):
        build_trainer(tiny_prepared, stage_dir(tiny_prepared, "tokenize"), out)


def test_keep_last_n_and_export_loads_the_newest(tiny_prepared, tmp_path):
    out = tmp_path / "train"
    trainer = _train_and_save(tiny_prepared, out, (1, 2, 3, 4))
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        "step-000002",
        "step-000003",
        "step-000004",
    ]
    model, meta = load_final_model(out)
    assert meta["step"] == 4 and meta["world_size"] == 1 and meta["optimizer"] is True
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_async_save_is_complete_only_after_wait(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    manager = CheckpointManager(tmp_path, keep=2, async_save=True)
    meta = {"step": 1, "world_size": 1}
    final = manager.save(1, model, optimizer, {"step": 1}, meta)
    manager.wait()
    assert (final / COMPLETE).exists() and not list(tmp_path.glob("*.partial"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = optimizer.state_dict()["state"][0]["exp_avg"].clone()
    fresh = torch.nn.Linear(8, 4)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters())
    path, state = CheckpointManager(tmp_path, keep=2).restore(fresh, fresh_optimizer)
    assert path == final and state == {"step": 1}
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"], moments)


def test_metrics_are_cut_back_to_the_resumed_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in range(1, 8)] + [
        '{"step": 8, "lo'
    ]  # killed mid-line
    path.write_text("\n".join(lines))
    log = MetricsLog(path)
    log.start(5)
    log.write({"step": 6, "loss": 2.0})
    log.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(path)] == [(s, 1.0) for s in range(1, 6)] + [
        (6, 2.0)
    ]
    fresh = MetricsLog(path)
    fresh.start(0)  # a run starting over keeps nothing of an attempt that never checkpointed
    fresh.close()
    assert read_metrics(path) == []


# ----------------------------------------------------------------------------------------------------
# kill -9 at each phase of a save


KILL_SCRIPT = textwrap.dedent("""
    import io, logging, os, signal, sys
    from pathlib import Path
    import torch.distributed.checkpoint.filesystem as fs
    from gecko.config import load_config
    from gecko.stages import stage_dir
    from gecko.train.trainer import build_trainer

    config, out, phase, *overrides = sys.argv[1:]
    cfg = load_config(config, overrides)
    victim = "step-000004"

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    class KillAt(logging.Handler):  # the checkpoint module logs each phase at DEBUG
        def emit(self, record):
            if victim in str(record.args) and phase in record.getMessage():
                die()

    ckpt_log = logging.getLogger("gecko.train.checkpoint")
    ckpt_log.setLevel(logging.DEBUG)
    ckpt_log.addHandler(KillAt())
    write_item, finish = fs._write_item, fs._FileSystemWriter.finish

    def write_half_then_die(*args, **kwargs):  # inside DCP: a shard cut short after its second tensor
        result = write_item(*args, **kwargs)  # (the arguments differ between torch versions)
        stream = next(a for a in args if isinstance(a, io.IOBase))
        if victim in str(stream.name) and result.storage_data.offset > 0:
            stream.flush()
            die()
        return result

    def die_before_metadata(self, *args, **kwargs):  # inside DCP: all shards written, no .metadata yet
        if victim in str(self.path):
            die()
        return finish(self, *args, **kwargs)

    if phase == "mid-shard":
        fs._write_item = write_half_then_die
    if phase == "before-metadata":
        fs._FileSystemWriter.finish = die_before_metadata
    build_trainer(cfg, stage_dir(cfg, "tokenize"), Path(out)).train()
""")

KILL_OVERRIDES = [
    "train.steps=6",
    "train.checkpoint_every=2",
    "train.eval_every=null",
    "train.log_every=1",
    "train.device=cpu",
    "eval.max_tokens_per_lang=300",
]
PHASES = [
    "state files written",
    "mid-shard",
    "before-metadata",
    "tensors written",
    "marker written",
    "renamed",
]


def _run(script: Path, config: Path, out: Path, phase: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(script), str(config), str(out), phase, *TINY_OVERRIDES, *KILL_OVERRIDES]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(tiny_prepared, tmp_path_factory) -> list[dict]:
    """The metrics of the same run, never killed."""
    cfg = load_config(Path(tiny_prepared.run_dir).parent / "tiny.yaml", [*TINY_OVERRIDES, *KILL_OVERRIDES])
    out = tmp_path_factory.mktemp("uninterrupted")
    build_trainer(cfg, stage_dir(cfg, "tokenize"), out).train()
    return read_metrics(out / "metrics.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
def test_kill_9_at_each_phase_of_a_save_resumes_from_the_last_complete_one(
    tiny_prepared, uninterrupted, tmp_path, phase
):
    config = Path(tiny_prepared.run_dir).parent / "tiny.yaml"
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    killed = _run(script, config, tmp_path / "run", phase)
    assert killed.returncode == -9, killed.stderr[-3000:]
    complete = [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert complete == (["step-000002", "step-000004"] if phase == "renamed" else ["step-000002"])
    resumed = _run(script, config, tmp_path / "run", "no kill")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]  # no step missing or twice
    assert [r["loss"] for r in records if "loss" in r] == [r["loss"] for r in uninterrupted if "loss" in r]
    assert [r["step"] for r in records] == [r["step"] for r in uninterrupted]  # the evaluations too
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-000002", "step-000004", "step-000006"]  # no .partial left behind


def test_a_stage_that_unfreezes_parameters_gets_fresh_staging_buffers(tmp_path):
    """train.stages: the optimizer state grows when a frozen stage ends; cached staging buffers (CUDA async
    saves) made for the smaller state would fail (CompanionMismatch, seen on an H200), so the writer is new."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    model[1].requires_grad_(False)  # stage 1: only the first layer trains
    optimizer = torch.optim.AdamW(model.parameters())
    manager = CheckpointManager(tmp_path, keep=3, async_save=True)

    def step_and_save(step: int) -> object:
        model(torch.randn(2, 8)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        manager.save(step, model, optimizer, {"step": step}, {"step": step, "world_size": 1})
        manager.wait()
        return manager._writer

    first = step_and_save(1)
    assert step_and_save(2) is first  # same layout: the buffers are reused
    model[1].requires_grad_(True)  # stage 2: everything trains, the second layer gets moments
    third = step_and_save(3)
    assert third is not first and step_and_save(4) is third
    fresh = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    fresh_optimizer = torch.optim.AdamW(fresh.parameters())
    path, _ = CheckpointManager(tmp_path, keep=3).restore(fresh, fresh_optimizer)
    assert path.name == "step-000004" and len(fresh_optimizer.state) == 4
