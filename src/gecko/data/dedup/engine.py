"""Run a list of datatrove steps on a datatrove executor: local processes or a Ray cluster.

Each call is one executor with its own logging folder, so finished ranks leave completion markers and a
rerun after a kill redoes only the ranks that had not finished. Slurm users build datatrove's
SlurmPipelineExecutor from the same step lists.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any, Literal

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

Engine = Literal["local", "ray"]

log = logging.getLogger(__name__)
_fork_hook_registered = False


class RayForkGuard(PipelineStep):
    """First step of every pipeline sent to Ray; passes documents through unchanged.

    datatrove's Ray worker runs its ranks in a forked `multiprocess` Pool and ends the Pool with SIGTERM. A
    forked child keeps the Ray worker's SIGTERM handler, which does not exit, so a pool process that is still
    idle at that moment outlives `terminate()` and the stage hangs forever (seen on 2 loaded cores). This step
    is unpickled in the Ray worker before the Pool forks and gives forked children the default SIGTERM action.
    """

    name = "ray fork guard"
    type = "🔧 - UTIL"

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        global _fork_hook_registered
        if not _fork_hook_registered:
            os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
            _fork_hook_registered = True

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data


def execute(steps: list[PipelineStep], tasks: int, workers: int, logging_dir: Path,
            engine: Engine = "local") -> None:
    """Run `steps` for `tasks` ranks on at most `workers` parallel workers."""
    workers = max(1, min(workers, tasks))
    if engine == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        # Several ranks per Ray task: a task costs seconds of scheduling, a rank of small data much less.
        RayPipelineExecutor([RayForkGuard(), *steps], tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                            mem_per_cpu_gb=1, tasks_per_job=-(-tasks // workers)).run()
        return
    from datatrove.executor.local import LocalPipelineExecutor

    # fork: spawn/forkserver re-import datatrove in every worker of every stage (3x slower on small inputs)
    LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                          start_method="fork").run()


def incomplete_ranks(logging_dir: Path, tasks: int) -> list[int]:
    """Ranks without a completion marker (a failed or killed rank is redone on the next run)."""
    return [r for r in range(tasks) if not (logging_dir / "completions" / f"{r:05d}").exists()]
