"""`data.engine: slurm`: the sbatch scripts and job chain gecko submits, the driver's failure handling (a
stand-in sbatch that never runs anything; no sbatch, no ray: one line), and the whole `gecko data run` on a
real Slurm when one answers (bench/slurm_local.sh starts a one-node Slurm), byte-identical to the local
executor."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from gecko.config import SlurmConfig
from gecko.data.engine.executor import Stage, execute_stages, shard_writer, slurm_executors
from gecko.data.phase import reader
from gecko.data.steps.dedup.planted import write_shards
from gecko.errors import DataError, GeckoError
from helpers import gecko_cli, scaleout_config, scaleout_outputs

SLURM = SlurmConfig(
    partition="cpu", time="2:00:00", cpus_per_task=2, mem_per_cpu_gb=3, sbatch_args={"account": "proj"}
)


def _stages(tmp_path: Path, n: int) -> list[Stage]:
    write_shards(
        [{"id": str(i), "text": f"doc {i} " * 20, "lang": "en", "source": "s"} for i in range(6)],
        tmp_path / "in",
        3,
    )
    return [
        Stage([reader(tmp_path / "in"), shard_writer(tmp_path / f"out{i}")], 3, tmp_path / f"s{i}", f"s{i}")
        for i in range(n)
    ]


def test_each_stage_is_a_job_array_with_the_configured_sbatch_lines(tmp_path):
    first, second = slurm_executors(_stages(tmp_path, 2), workers=2, slurm=SLURM)
    assert second.depends is first and first.depends is None
    assert first.job_name.rsplit("-", 1)[0] == second.job_name.rsplit("-", 1)[0]  # one run tag
    assert (first.tasks, first.tasks_per_job) == (3, 2)  # 2 array tasks of at most 2 ranks
    script = first.get_launch_file_contents(first.get_sbatch_args(2), "launch_pickled_pipeline x.pik")
    for line in (
        "#SBATCH --partition=cpu",
        "#SBATCH --time=2:00:00",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem-per-cpu=3G",
        "#SBATCH --account=proj",
        "#SBATCH --array=0-1%2",
        f"#SBATCH --output={tmp_path / 's0' / 'slurm_logs'}/%A_%a.out",
        f"export PATH={Path(sys.executable).parent}:$PATH",
    ):
        assert line in script.splitlines(), (line, script)
    assert "--qos" not in script  # clusters without QOS reject datatrove's default --qos=normal


def _stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_a_stage_whose_jobs_did_not_finish_stops_the_run_and_cancels_the_rest(tmp_path, monkeypatch):
    """sbatch accepts every job and nothing runs: the driver finds the first stage's ranks unfinished,
    raises one line naming the stage and its Slurm logs, and cancels this run's jobs by name."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    _stand_in(
        bin_dir, "sbatch", f'echo "sbatch $*" >> {calls}; n=$(wc -l < {calls}); echo "Submitted batch job $n"'
    )
    _stand_in(bin_dir, "squeue", "exit 0")  # the job has left the queue
    _stand_in(bin_dir, "scancel", f'echo "scancel $*" >> {calls}')
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    stages = _stages(tmp_path, 2)
    with pytest.raises(DataError, match=r"s0: 3 of 3 Slurm tasks did not finish .*s0/slurm_logs"):
        execute_stages(stages, workers=2, engine=SLURM)
    lines = calls.read_text().splitlines()
    sbatch = [line for line in lines if line.startswith("sbatch")]
    # each stage: its array, then datatrove's stats merge (afterok); the second array waits on the first
    assert len(sbatch) == 4 and "--dependency=afterok:1" in sbatch[2], sbatch
    cancelled = [line for line in lines if line.startswith("scancel")]
    assert len(cancelled) == 2 and all("--name=gecko-" in line for line in cancelled), lines


def test_jobs_of_a_killed_driver_are_cancelled_before_a_rerun_submits(tmp_path, monkeypatch):
    """A driver killed outright cannot cancel its jobs; the rerun cancels them (by the name recorded in each
    stage's logs folder) before submitting, so two jobs never write the same rank."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    _stand_in(bin_dir, "sbatch", f'echo "sbatch $*" >> {calls}; echo "Submitted batch job 7"')
    _stand_in(bin_dir, "squeue", "exit 0")
    _stand_in(bin_dir, "scancel", f'echo "scancel $*" >> {calls}')
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    stages = _stages(tmp_path, 2)
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "slurm_job_name").write_text("gecko-dead01-s1")
    with pytest.raises(DataError):
        execute_stages(stages, workers=2, engine=SLURM)
    lines = calls.read_text().splitlines()
    assert lines[0] == "scancel --name=gecko-dead01-s1" and lines[1].startswith("sbatch"), lines
    now = (tmp_path / "s1" / "slurm_job_name").read_text()
    assert now.startswith("gecko-") and now.endswith("-s1") and now != "gecko-dead01-s1"


def test_a_refused_submission_or_no_sbatch_is_one_line(tmp_path, monkeypatch):
    """sbatch refusing a job (an unknown partition, say) or missing: one GeckoError line, not a traceback;
    jobs of the chain already submitted are cancelled."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    _stand_in(bin_dir, "scancel", f'echo "scancel $*" >> {calls}')
    monkeypatch.setenv("PATH", str(bin_dir))  # the stand-ins use shell builtins only
    stages = _stages(tmp_path, 2)
    with pytest.raises(GeckoError, match="sbatch is not on PATH"):
        execute_stages(stages, workers=2, engine=SLURM)
    _stand_in(bin_dir, "sbatch", "echo 'sbatch: error: invalid partition specified: cpu' >&2; exit 1")
    with pytest.raises(GeckoError, match=r"sbatch refused a job \(exit 1"):
        execute_stages(stages, workers=2, engine=SLURM)
    assert calls.read_text().count("scancel --name=gecko-") == 2


def _partition_or_skip() -> str:
    """The default partition of a Slurm that answers on this machine, else skip."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        pytest.skip("no Slurm here (bench/slurm_local.sh starts a one-node one)")
    try:
        q = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer")
    up = [p.rstrip("*") for p, state in (line.split() for line in q.stdout.splitlines()) if state == "up"]
    default = [p.rstrip("*") for p, _ in (line.split() for line in q.stdout.splitlines()) if p.endswith("*")]
    if q.returncode != 0 or not up:
        pytest.skip(f"Slurm does not answer: {q.stderr.strip() or 'no partition up'}")
    return default[0] if default and default[0] in up else up[0]


@pytest.mark.slow
def test_data_run_on_slurm_equals_the_local_executor(tmp_path):
    """`gecko data run` with data.engine=slurm: every stage of the clean, dedup and decontam phases runs as a
    job array through sbatch/srun, and the corpus and every drop list are byte-identical to the local
    executor's. The run folder must be on a file system every node mounts (pytest --basetemp on a multi-node
    cluster)."""
    partition = _partition_or_skip()
    config = scaleout_config(tmp_path, REPO)
    gecko_cli(["data", "run", str(config), "run_dir=local"], cwd=tmp_path)
    gecko_cli(
        ["data", "run", str(config), "run_dir=slurm", "data.engine=slurm", f"data.slurm.partition={partition}",
         "data.slurm.mem_per_cpu_gb=1", "data.slurm.time='30:00'"],
        cwd=tmp_path,
    )  # fmt: skip
    local, slurm = (
        scaleout_outputs(tmp_path / "local" / "data"),
        scaleout_outputs(tmp_path / "slurm" / "data"),
    )
    assert local.keys() == slurm.keys() and "dedup.work/removed/00000.jsonl.zst" in local
    for name in local:
        assert slurm[name] == local[name], name
    logs = tmp_path / "slurm" / "data" / "logs"
    assert list((logs / "clean" / "slurm_logs").glob("*_0.out"))  # the clean phase ran as a job array
    assert list((tmp_path / "slurm" / "data" / "dedup.work" / "logs" / "filter" / "slurm_logs").glob("*.out"))
    assert list((tmp_path / "slurm" / "data" / "decontam.work" / "logs" / "slurm_logs").glob("*.out"))


def test_engine_ray_without_ray_is_one_line(tmp_path, monkeypatch):
    """Checked when a phase starts, not when the config loads: a training machine need not have Ray."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(GeckoError, match=r"ray package is not installed: pip install 'gecko-llm\[scale\]'"):
        execute_stages(_stages(tmp_path, 1), workers=2, engine="ray")
