"""Run a list of datatrove steps on a datatrove executor: local processes or a Ray cluster.

Each call is one executor with its own logging folder, so finished ranks leave completion markers and a
rerun after a kill redoes only the ranks that had not finished. Slurm users build datatrove's
SlurmPipelineExecutor from the same step lists.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import zstandard
from datatrove.data import Document as DtDocument
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter
from loguru import logger

from gecko.io.atomic import write_text
from gecko.progress import Progress

Engine = Literal["local", "ray"]

log = logging.getLogger(__name__)
_fork_hook_registered = False


SHARD_ZSTD_LEVEL = 3
"""zstd's default level. fsspec's "zstd" writes level 10: 4x the CPU (4.1 against 1.0 CPU-s for a 196 MB
shard) for a 16 % smaller file that the next phase reads once."""


class ShardWriter(JsonlWriter):
    """datatrove's JsonlWriter, same JSON lines, at a fraction of its CPU: zstd at SHARD_ZSTD_LEVEL, and a
    document serialized as it is rather than through `dataclasses.asdict`, which deep-copies every metadata
    value first (a third of the writer's time on the data stage benchmark)."""

    def __init__(self, folder: Path, output_filename: str = "${rank}.jsonl") -> None:
        super().__init__(str(folder), output_filename=f"{output_filename}.zst", compression=None)
        self._streams: dict[str, zstandard.ZstdCompressionWriter] = {}

    def _default_adapter(self, document: DtDocument) -> dict:
        if document.media:  # datatrove's own handling of media bytes
            return super()._default_adapter(document)
        data = {"text": document.text, "id": document.id, "metadata": document.metadata}
        return {key: val for key, val in data.items() if val}  # what asdict gives, empty fields left out

    def _write(self, document: dict, file_handler: IO, _filename: str) -> None:
        stream = self._streams.get(_filename)
        if stream is None:
            compressor = zstandard.ZstdCompressor(level=SHARD_ZSTD_LEVEL)
            stream = self._streams[_filename] = compressor.stream_writer(file_handler, closefd=False)
        super()._write(document, stream, _filename)

    def close(self) -> None:
        for stream in self._streams.values():
            stream.flush(zstandard.FLUSH_FRAME)
        self._streams.clear()
        super().close()


def shard_writer(folder: Path, output_filename: str = "${rank}.jsonl") -> JsonlWriter:
    """The writer of every intermediate shard folder (clean/, dedup/, decontam/, drop lists): zstd, since
    JSONL text shrinks ~3.5× and the next phase reads it once (datatrove's readers infer it from `.zst`)."""
    return ShardWriter(folder, output_filename)


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


class ProgressProbe(PipelineStep):
    """Passes documents through, writing this rank's documents and text bytes to `folder/RANK.json` about
    once a second: ranks run in other processes (or on other Ray nodes), and the driver sums the files."""

    name = "📈 progress"
    type = "🔧 - UTIL"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = Path(self.folder) / f"{rank:05d}.json"
        docs = nbytes = 0
        last = time.monotonic()
        for doc in data:
            docs += 1
            nbytes += len(doc.text.encode("utf-8", "surrogatepass"))
            if time.monotonic() - last > 1.0:
                write_text(path, json.dumps([docs, nbytes]))
                last = time.monotonic()
            yield doc
        write_text(path, json.dumps([docs, nbytes]))


def _sum_counts(folder: Path) -> tuple[int, int]:
    docs = nbytes = 0
    for f in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            d, b = json.loads(f.read_text())
            docs, nbytes = docs + d, nbytes + b
    return docs, nbytes


@contextlib.contextmanager
def _progress(label: str, folder: Path, total_bytes: int | None) -> Iterator[None]:
    """A progress line fed by the ranks' count files while the executor runs."""
    for old in folder.glob("*.json"):
        old.unlink()  # counts of an earlier, interrupted run (its finished ranks are skipped now)
    done = threading.Event()
    with Progress(label, total_bytes) as bar:

        def poll() -> None:
            while not done.wait(0.5):
                bar.set(*_sum_counts(folder))

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            bar.set(*_sum_counts(folder))


@contextlib.contextmanager
def _datatrove_logs_to(path: Path) -> Iterator[None]:
    """datatrove's per-task logs and stat tables go to `path` instead of the terminal; `-v` (debug logging)
    keeps them on the terminal too. Worker processes are forked, so they inherit the redirected stderr."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f, contextlib.redirect_stderr(f):
        logger.remove()
        logger.add(f, level="INFO")
        try:
            yield
        finally:
            logger.remove()
            logger.add(sys.stderr, level="WARNING")


def execute(
    steps: list[PipelineStep],
    tasks: int,
    workers: int,
    logging_dir: Path,
    engine: Engine = "local",
    label: str | None = None,
    total_bytes: int | None = None,
) -> None:
    """Run `steps` for `tasks` ranks on at most `workers` parallel workers, with one progress line (`label`,
    default the logging folder's name) counting the documents that leave the reader."""
    workers = max(1, min(workers, tasks))
    counts = logging_dir / "progress"
    if "READER" in steps[0].type:
        steps = [steps[0], ProgressProbe(str(counts)), *steps[1:]]
    else:
        total_bytes = None  # nothing is read: the line gives the step's time only
    with (
        _progress(label or logging_dir.name, counts, total_bytes),
        _datatrove_logs_to(logging_dir / "datatrove.log"),
    ):
        _run(steps, tasks, workers, logging_dir, engine)


def _run(steps: list[PipelineStep], tasks: int, workers: int, logging_dir: Path, engine: Engine) -> None:
    if engine == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        # Several ranks per Ray task: a task costs seconds of scheduling, a rank of small data much less.
        RayPipelineExecutor(
            [RayForkGuard(), *steps],
            tasks=tasks,
            workers=workers,
            logging_dir=str(logging_dir),
            mem_per_cpu_gb=1,
            tasks_per_job=-(-tasks // workers),
        ).run()
        return
    from datatrove.executor.local import LocalPipelineExecutor

    # fork: spawn/forkserver re-import datatrove in every worker of every stage (3x slower on small inputs)
    LocalPipelineExecutor(
        steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir), start_method="fork"
    ).run()


def incomplete_ranks(logging_dir: Path, tasks: int) -> list[int]:
    """Ranks without a completion marker (a failed or killed rank is redone on the next run)."""
    return [r for r in range(tasks) if not (logging_dir / "completions" / f"{r:05d}").exists()]
