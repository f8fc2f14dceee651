"""Run a list of datatrove steps on a datatrove executor: local processes or a Ray cluster.

Each call is one executor with its own logging folder, so finished ranks leave completion markers and a
rerun after a kill redoes only the ranks that had not finished. Slurm users build datatrove's
SlurmPipelineExecutor from the same step lists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from datatrove.pipeline.base import PipelineStep

Engine = Literal["local", "ray"]

log = logging.getLogger(__name__)


def execute(steps: list[PipelineStep], tasks: int, workers: int, logging_dir: Path,
            engine: Engine = "local") -> None:
    """Run `steps` for `tasks` ranks on at most `workers` parallel workers."""
    workers = max(1, min(workers, tasks))
    if engine == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        # Several ranks per Ray task: a task costs seconds of scheduling, a rank of small data much less.
        RayPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir), mem_per_cpu_gb=1,
                            tasks_per_job=-(-tasks // workers)).run()
        return
    from datatrove.executor.local import LocalPipelineExecutor

    # fork: spawn/forkserver re-import datatrove in every worker of every stage (3x slower on small inputs)
    LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                          start_method="fork").run()


def incomplete_ranks(logging_dir: Path, tasks: int) -> list[int]:
    """Ranks without a completion marker (a failed or killed rank is redone on the next run)."""
    return [r for r in range(tasks) if not (logging_dir / "completions" / f"{r:05d}").exists()]
