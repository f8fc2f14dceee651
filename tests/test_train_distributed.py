"""FSDP2 across two CPU processes (gloo), launched by torchrun as on a GPU cluster: the ranks share the
global batch, each writes its own shard of a checkpoint, and a killed run resumes with bitwise-equal losses on
two ranks, and on one rank with the losses of an unsharded single-process run. One rank killed with SIGKILL
mid-step or mid-save fails the whole job at once, and a relaunch resumes from the last complete checkpoint."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES
from gecko.config import load_config
from gecko.stages import stage_dir
from gecko.train.checkpoint import list_checkpoints, load_final_model
from gecko.train.trainer import build_trainer

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from gecko.config import load_config
    from gecko.stages import stage_dir
    from gecko.train.distributed import close_distributed
    from gecko.train.trainer import build_trainer

    config, out, mode, *overrides = sys.argv[1:]
    cfg = load_config(config, overrides)
    shards = stage_dir(cfg, "tokenize")
    if mode == "resume":
        build_trainer(cfg, shards, Path(out) / "resumed").train()
    else:  # one launch: a straight run, then a run that "dies" after a checkpoint at step 2
        build_trainer(cfg, shards, Path(out) / "reference").save()  # the initial weights, for a 1-process run
        trainer = build_trainer(cfg, shards, Path(out) / "straight")
        assert trainer.dist.world_size == 2 and trainer.dist.mesh is not None
        trainer.train()
        trainer = build_trainer(cfg, shards, Path(out) / "resumed")
        while trainer.step < 2:
            record = trainer.train_step()
            trainer.step += 1
            trainer.metrics.write(record | {"step": trainer.step})
        trainer.save()
        trainer.metrics.close()
    close_distributed()
""")

OVERRIDES = [
    *TINY_OVERRIDES,
    "train.steps=4",
    "train.batch_size=2",
    "train.checkpoint_every=2",
    "train.eval_every=null",
    "train.device=cpu",
    "eval.max_tokens_per_lang=500",
]


def _two_ranks(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`torchrun --standalone --nproc-per-node 2 ARGS…` on CPU (gloo), with its wall time."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    start = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - start


def _torchrun(tmp_path: Path, config: Path, mode: str) -> None:
    script = tmp_path / "fsdp_train.py"
    script.write_text(SCRIPT)
    done, _ = _two_ranks(str(script), str(config), str(tmp_path), mode, *OVERRIDES)
    assert done.returncode == 0, done.stderr[-3000:]


def _losses(out: Path) -> list[float]:
    return [
        r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]


@pytest.mark.slow
def test_fsdp_two_processes_train_and_resume_on_two_or_one(tiny_prepared, tmp_path):
    config = Path(tiny_prepared.run_dir).parent / "tiny.yaml"
    _torchrun(tmp_path, config, "straight-and-die")
    shutil.copytree(
        tmp_path / "resumed", tmp_path / "on_one"
    )  # the same step-2 checkpoint, written by 2 ranks
    _torchrun(tmp_path, config, "resume")  # a fresh launch, as after a crash
    straight = _losses(tmp_path / "straight")
    assert len(straight) == 4 and straight[-1] < straight[0]
    assert straight == _losses(tmp_path / "resumed")
    shards = list((tmp_path / "straight" / "checkpoints" / "step-000004" / "dcp").glob("*.distcp"))
    assert len(shards) == 2  # one shard file per rank
    model, meta = load_final_model(tmp_path / "straight")  # resharded into one plain CPU model
    assert meta["world_size"] == 2 and meta["step"] == 4
    assert [p.name for p in list_checkpoints(tmp_path / "straight" / "checkpoints")] == [
        "step-000002",
        "step-000004",
    ]

    # one process, the same global batch (4 = 2 ranks × 2): an unsharded reference run from the 2-rank run's
    # initial weights (step 0), and the 2-rank run's step-2 checkpoint resumed
    one = load_config(config, [*OVERRIDES, "train.batch_size=4"])
    build_trainer(one, stage_dir(one, "tokenize"), tmp_path / "reference").train()
    resumed = build_trainer(one, stage_dir(one, "tokenize"), tmp_path / "on_one")
    assert resumed.step == 2
    resumed.train()
    reference = torch.tensor(_losses(tmp_path / "reference"))
    for run in ("straight", "resumed", "on_one"):  # sharded sums differ from one process's in the last bits
        torch.testing.assert_close(torch.tensor(_losses(tmp_path / run)), reference, rtol=1e-5, atol=0)


@pytest.mark.slow
def test_gecko_train_under_torchrun_keeps_stage_books_on_rank_zero(tiny_prepared, tmp_path):
    """`torchrun -m gecko train`: every rank trains, rank 0 alone clears the stage folder and writes markers."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_prepared.run_dir, run_dir, ignore=shutil.ignore_patterns("train"))
    config = Path(tiny_prepared.run_dir).parent / "tiny.yaml"
    done, _ = _two_ranks("-m", "gecko", "train", str(config), *OVERRIDES, f"run_dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    marker = json.loads((run_dir / "train" / "_COMPLETE.json").read_text())
    assert marker["stage"] == "train" and marker["summary"]["checkpoint"].endswith("step-000004")
    assert len(_losses(run_dir / "train")) == 4


# ----------------------------------------------------------------------------------------------------
# one rank killed with SIGKILL mid-step or mid-save: the job fails fast, a relaunch resumes from the last
# complete checkpoint and trains on as if never stopped

RANK_KILL_SCRIPT = textwrap.dedent("""
    import io, logging, os, signal, sys
    from pathlib import Path
    import torch.distributed.checkpoint.filesystem as fs
    from gecko.config import load_config
    from gecko.stages import stage_dir
    from gecko.train.distributed import close_distributed
    from gecko.train.trainer import build_trainer

    config, out, phase, *overrides = sys.argv[1:]
    cfg = load_config(config, overrides)
    victim = int(os.environ["RANK"]) == 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    trainer = build_trainer(cfg, stage_dir(cfg, "tokenize"), Path(out))
    if phase == "mid-step" and victim:  # inside the forward of step 3, while rank 0 waits on a collective
        def hook(module, args):
            if trainer.step == 2:
                die()
        trainer.model.layers["1"].register_forward_pre_hook(hook)
    if phase == "mid-save" and victim:  # inside DCP: rank 1's shard of step 4 cut short after a tensor
        write_item = fs._write_item

        def write_half_then_die(*args, **kwargs):
            result = write_item(*args, **kwargs)
            stream = next(a for a in args if isinstance(a, io.IOBase))
            if "step-000004" in str(stream.name) and result.storage_data.offset > 0:
                stream.flush()
                die()
            return result
        fs._write_item = write_half_then_die
    trainer.train()
    close_distributed()
""")

RANK_KILL_OVERRIDES = [*OVERRIDES, "train.steps=6", "train.log_every=1"]


def _launch(script: Path, config: Path, out: Path, phase: str) -> tuple[subprocess.CompletedProcess, float]:
    return _two_ranks("--max-restarts", "0", str(script), str(config), str(out), phase, *RANK_KILL_OVERRIDES)


@pytest.mark.slow
def test_a_rank_killed_mid_step_or_mid_save_fails_the_job_fast_and_a_relaunch_resumes(
    tiny_prepared, tmp_path
):
    config = Path(tiny_prepared.run_dir).parent / "tiny.yaml"
    script = tmp_path / "rank_kill.py"
    script.write_text(RANK_KILL_SCRIPT)
    reference, _ = _launch(script, config, tmp_path / "reference", "no kill")
    assert reference.returncode == 0, reference.stderr[-3000:]
    for phase in ("mid-step", "mid-save"):
        run = tmp_path / phase
        killed, seconds = _launch(script, config, run, phase)
        assert killed.returncode != 0 and "SIGKILL" in killed.stderr, killed.stderr[-3000:]
        assert seconds < 120  # torchrun stops the survivor; no wait for gloo's 30-minute collective timeout
        # the step-4 save never began (mid-step) or never completed (mid-save)
        assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-000002"]
        resumed, _ = _launch(script, config, run, "no kill")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resumed from {run}/checkpoints/step-000002 at step 2" in resumed.stderr
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]  # no step missing or twice
        assert _losses(run) == _losses(tmp_path / "reference")
        assert not list((run / "checkpoints").glob("*.partial"))
