"""Run datatrove step lists on a datatrove executor: local processes, a Ray cluster or Slurm job arrays.

Each stage is one executor with its own logging folder, so finished ranks leave completion markers and a
rerun after a kill redoes only the ranks that had not finished. The stages of a phase run one after the other;
on Slurm they are submitted at once, each job array depending on the one before, and the driver waits.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from string import Template
from typing import IO, Any, Literal

import orjson
import zstandard
from datatrove.data import Document as DtDocument
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.writers.jsonl import _json_default
from datatrove.utils.typeshelper import StatHints
from loguru import logger

from gecko.config import DataConfig, SlurmConfig
from gecko.data.engine.progress import ProgressProbe, ReadingStep, clear_counts, progress_line, utf8_len
from gecko.data.engine.step import BATCH, batch_stats, batched
from gecko.errors import DataError, GeckoError, pip_hint
from gecko.io.atomic import write_text

Engine = Literal["local", "ray"] | SlurmConfig
"""Where stages run: local processes, a Ray cluster, or Slurm with these sbatch settings."""

log = logging.getLogger(__name__)
_fork_hook_registered = False


SHARD_ZSTD_LEVEL = 1
"""zstd's fastest standard level: on the 202 MB clean shard of the data stage benchmark 0.60 CPU-s and 57 MB,
against 1.05 CPU-s and 50 MB at level 3 (zstd's default; fsspec's "zstd" writes level 10, 4x level 3's CPU)
and 0.60 CPU-s but 68 MB at level -1. A shard is read once or twice by the next phase, then removed; the
few MB more per shard folder keep the stage's disk peak under 1.5x its input."""


TEXT_BYTES = ".text_bytes"
"""A phase output's `FOLDER/.text_bytes/SHARD.bytes`: the UTF-8 bytes of text the shard holds, so the next
phase's progress line has an exact total in the unit it counts (zstd shards are ~3.5x smaller than their
text). Hidden, and a suffix no reader takes, so a folder of shards still reads as one."""


class _Blocks:
    """A zstd stream fed in blocks: lines are gathered up to `size` bytes, then compressed in one call
    (one call per line cost a fifth more than the compression itself)."""

    def __init__(self, stream: zstandard.ZstdCompressionWriter, size: int = 1 << 20) -> None:
        self.stream, self.size = stream, size
        self.lines: list[bytes] = []
        self.held = 0

    def write(self, line: bytes) -> int:
        self.lines.append(line)
        self.held += len(line)
        if self.held >= self.size:
            self.flush()
        return len(line)

    def flush(self) -> None:
        self.stream.write(b"".join(self.lines))
        self.lines, self.held = [], 0

    def close(self) -> None:
        """Compress what is held and end the zstd frame (the file itself is closed by its owner)."""
        self.flush()
        self.stream.flush(zstandard.FLUSH_FRAME)


class ShardWriter(JsonlWriter):
    """datatrove's JsonlWriter, same JSON lines, at a fraction of its CPU: zstd at SHARD_ZSTD_LEVEL, and a
    document serialized as it is rather than through `dataclasses.asdict`, which deep-copies every metadata
    value first (a third of the writer's time on the data stage benchmark); lines reach zstd in blocks
    (_Blocks). `text_bytes`: also write each shard's text size under TEXT_BYTES when it closes."""

    def __init__(
        self, folder: Path, output_filename: str = "${rank}.jsonl", text_bytes: bool = False
    ) -> None:
        super().__init__(str(folder), output_filename=f"{output_filename}.zst", compression=None)
        self._streams: dict[str, _Blocks] = {}
        self._text_bytes: dict[str, int] | None = {} if text_bytes else None
        self._names: dict[int, str] = {}
        self._stat_label = self.output_filename.safe_substitute(rank="XXXXX")
        self._rank_only = _names_only_rank(self.output_filename)

    def _default_adapter(self, document: DtDocument) -> dict:
        if document.media:  # datatrove's own handling of media bytes
            return super()._default_adapter(document)
        return _record(document)

    def write(self, document: DtDocument, rank: int = 0, **kwargs: Any) -> None:
        """DiskWriter.write, with the same output and counters, for a filename template naming only the rank
        (every shard folder's): the name is worked out once per rank, where DiskWriter substitutes the
        template over a copy of the metadata twice per document (a fifth of the writer's CPU)."""
        if kwargs or self.max_file_size > 0 or not self._rank_only:
            super().write(document, rank, **kwargs)
            return
        name = self._rank_name(rank)
        self._write(self.adapter(document), self._get_output_file_with_retry(name), name)
        self.stat_update(self._stat_label, StatHints.total)
        self.update_doc_stats(document)

    def _rank_name(self, rank: int) -> str:
        """The shard of `rank` under a rank-only template (write_line's too), worked out once."""
        name = self._names.get(rank)
        if name is None:
            name = self._names[rank] = self.output_filename.substitute(rank=str(rank).zfill(5))
        return name

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """DiskWriter.run timed per batch of BATCH documents instead of per document; under a rank-only
        template the counters too are updated once per batch (step.batch_stats: the same totals, counts and
        lengths as write's per document, which cost a sixth of the writer)."""
        with self:
            for batch in batched(data, BATCH):
                with self.track_time("batch"):
                    if self._rank_only and self.max_file_size <= 0:
                        self._write_batch(batch, rank)
                    else:
                        for document in batch:
                            self.write(document, rank)
                yield from batch

    def _write_batch(self, batch: list[DtDocument], rank: int) -> None:
        """write() for each document, in one loop: a document without media is its `shard_line` (what the
        adapter and JsonlWriter._write give), appended to the stream directly."""
        name = self._rank_name(rank)
        file = self._get_output_file_with_retry(name)
        stream, text_bytes = self._stream(file, name), 0
        for document in batch:
            if document.media:
                self._write(self.adapter(document), file, name)
                continue
            stream.write(shard_line(document))
            text_bytes += utf8_len(document.text)
        self._count(name, text_bytes)
        batch_stats(self, Counter({self._stat_label: len(batch), StatHints.total: len(batch)}), batch)

    def _write(self, document: dict, file_handler: IO, _filename: str) -> None:
        super()._write(document, self._stream(file_handler, _filename), _filename)
        self._count(_filename, utf8_len(document.get("text", "")))

    def write_line(self, line: bytes, text_bytes: int, rank: int = 0) -> None:
        """Append `line`, a document exactly as `shard_line` gives it, holding `text_bytes` bytes of text: a
        step that has the line already (read from a shard and unchanged) need not decode and encode it."""
        name = self._rank_name(rank)
        stream = self._streams.get(name)  # the file is looked up (through datatrove's retry) once
        if stream is None:
            stream = self._stream(self._get_output_file_with_retry(name), name)
        stream.write(line)
        self._count(name, text_bytes)
        self.stat_update(StatHints.total)

    def _stream(self, file_handler: IO, filename: str) -> _Blocks:
        stream = self._streams.get(filename)
        if stream is None:
            compressor = zstandard.ZstdCompressor(level=SHARD_ZSTD_LEVEL)
            stream = self._streams[filename] = _Blocks(compressor.stream_writer(file_handler, closefd=False))
        return stream

    def _count(self, filename: str, text_bytes: int) -> None:
        if self._text_bytes is not None:
            self._text_bytes[filename] = self._text_bytes.get(filename, 0) + text_bytes

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        super().close()
        for name, n in (self._text_bytes or {}).items():
            with self.output_folder.open(f"{TEXT_BYTES}/{name}.bytes", "w") as f:
                f.write(str(n))


def _record(document: DtDocument) -> dict:
    data = {"text": document.text, "id": document.id, "metadata": document.metadata}
    return {key: val for key, val in data.items() if val}  # what asdict gives, empty fields left out


def shard_line(document: DtDocument) -> bytes:
    """The line ShardWriter writes for `document` (one without media), newline included."""
    return orjson.dumps(_record(document), option=orjson.OPT_APPEND_NEWLINE, default=_json_default)


def _names_only_rank(template: Template) -> bool:
    """Whether a filename template holds no placeholder but the rank (substitution fails on any other)."""
    try:
        template.substitute(rank="00000")
    except KeyError:
        return False
    return True


def shard_writer(
    folder: Path, output_filename: str = "${rank}.jsonl", text_bytes: bool = False
) -> ShardWriter:
    """The writer of every intermediate shard folder (clean/, dedup/, decontam/, drop lists): zstd, since
    JSONL text shrinks ~3.5× and the next phase reads it once (datatrove's readers infer it from `.zst`).
    `text_bytes` for a phase's output: the next phase's progress total (TEXT_BYTES)."""
    return ShardWriter(folder, output_filename, text_bytes)


def written_text_bytes(files: list[Path]) -> int | None:
    """The text size ShardWriter recorded for `files`, or None when one has no record (not a phase's output,
    or written before records existed, or its rank was killed before closing it)."""
    total = 0
    for f in files:
        record = f.parent / TEXT_BYTES / f"{f.name}.bytes"
        if not record.exists():
            return None
        total += int(record.read_text())
    return total


class RayWorkerSetup(PipelineStep):
    """First step of every pipeline sent to Ray; passes documents through unchanged. Unpickled in the Ray
    worker before any rank runs, it sets the worker up as the driver's local processes are:

    - the driver's working folder: configs name sources, benchmarks and the run folder relative to it, and a
      Ray worker starts in its node's Ray folder (on every node the same path must be mounted).
    - forked children get the default SIGTERM action: datatrove's Ray worker runs its ranks in a forked
      `multiprocess` Pool and ends it with SIGTERM, but a child keeps the Ray worker's handler, which does
      not exit, so a pool process still idle then outlives `terminate()` and the stage hangs (seen on 2
      loaded cores).
    """

    name = "ray worker setup"
    type = "🔧 - UTIL"

    def __init__(self) -> None:
        super().__init__()
        self.cwd = os.getcwd()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        os.chdir(self.cwd)
        global _fork_hook_registered
        if not _fork_hook_registered:
            os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
            _fork_hook_registered = True

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data


def engine_of(cfg: DataConfig) -> Engine:
    """The executor `data.engine` names, with its settings."""
    return cfg.slurm if cfg.engine == "slurm" else cfg.engine


@dataclass(frozen=True)
class Stage:
    """One executor: `steps` on `tasks` ranks, its logs and completion markers in `logging_dir`."""

    steps: list[PipelineStep]
    tasks: int
    logging_dir: Path
    label: str


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


def _probed(stage: Stage) -> Stage:
    """The stage with a ProgressProbe after its reader, or its ReadingStep counting (a stage that reads
    nothing shows its time only)."""
    folder = stage.logging_dir / "progress"
    if isinstance(stage.steps[0], ReadingStep):
        stage.steps[0].progress_dir = str(folder)
        clear_counts(folder)
        return stage
    if "READER" not in stage.steps[0].type:
        return stage
    clear_counts(folder)
    return replace(stage, steps=[stage.steps[0], ProgressProbe(str(folder)), *stage.steps[1:]])


@contextlib.contextmanager
def _watch(stage: Stage, total_bytes: int | None) -> Iterator[None]:
    """One progress line for the stage, datatrove's output in its datatrove.log."""
    counted = any(isinstance(step, (ProgressProbe, ReadingStep)) for step in stage.steps)
    with (
        progress_line(stage.label, stage.logging_dir / "progress", total_bytes if counted else None),
        _datatrove_logs_to(stage.logging_dir / "datatrove.log"),
    ):
        yield


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
    execute_stages(
        [Stage(steps, tasks, logging_dir, label or logging_dir.name)], workers, engine, total_bytes
    )


def execute_stages(
    stages: list[Stage], workers: int, engine: Engine = "local", total_bytes: int | None = None
) -> None:
    """Run `stages` in order, each on at most `workers` parallel workers, with a progress line each
    (`total_bytes`: what a stage's reader reads in all, for its MB/s and ETA)."""
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        raise GeckoError(f"data.engine=ray but the ray package is not installed: {pip_hint('scale')}")
    probed = [_probed(s) for s in stages]
    if isinstance(engine, SlurmConfig):
        _run_slurm(probed, workers, engine, total_bytes)
        return
    for stage in probed:
        with _watch(stage, total_bytes):
            _run(stage, max(1, min(workers, stage.tasks)), engine)


def _run(stage: Stage, workers: int, engine: Literal["local", "ray"]) -> None:
    steps, tasks, logging_dir = stage.steps, stage.tasks, str(stage.logging_dir)
    if engine == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        # Several ranks per Ray task: a task costs seconds of scheduling, a rank of small data much less.
        RayPipelineExecutor(
            [RayWorkerSetup(), *steps],
            tasks=tasks,
            workers=workers,
            logging_dir=logging_dir,
            mem_per_cpu_gb=1,
            tasks_per_job=-(-tasks // workers),
        ).run()
        return
    from datatrove.executor.local import LocalPipelineExecutor

    # fork: spawn/forkserver re-import datatrove in every worker of every stage (3x slower on small inputs)
    LocalPipelineExecutor(
        steps, tasks=tasks, workers=workers, logging_dir=logging_dir, start_method="fork"
    ).run()


def slurm_executors(stages: list[Stage], workers: int, slurm: SlurmConfig) -> list[Any]:
    """datatrove SlurmPipelineExecutors for `stages`, each depending on the one before; job names share a
    random run tag (`gecko-TAG-STAGE`), so this run's jobs can be found and cancelled by name."""
    from datatrove.executor.slurm import SlurmPipelineExecutor

    tag = secrets.token_hex(3)
    env = slurm.env_command or f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH"
    executors: list[Any] = []
    for stage in stages:
        parallel = max(1, min(workers, stage.tasks))
        executors.append(
            SlurmPipelineExecutor(
                stage.steps,
                tasks=stage.tasks,
                # Several ranks per array task, as on Ray: a task pays a Python start (~3 s), a rank less.
                tasks_per_job=-(-stage.tasks // parallel),
                workers=parallel,
                time=slurm.time,
                partition=slurm.partition,
                cpus_per_task=slurm.cpus_per_task,
                mem_per_cpu_gb=slurm.mem_per_cpu_gb,
                job_name=f"gecko-{tag}-{stage.logging_dir.name}",
                qos="",  # only when sbatch_args names one: clusters without QOS reject --qos=normal
                env_command=env,
                sbatch_args=dict(slurm.sbatch_args),
                logging_dir=str(stage.logging_dir),
                depends=executors[-1] if executors else None,
            )
        )
    return executors


def _run_slurm(stages: list[Stage], workers: int, slurm: SlurmConfig, total_bytes: int | None) -> None:
    """Submit every stage at once (job arrays chained by afterok), then wait for each in turn and check that
    all its ranks finished; on any failure or interrupt, cancel this run's remaining jobs."""
    if shutil.which("sbatch") is None:
        raise GeckoError("data.engine=slurm: sbatch is not on PATH (run gecko where jobs can be submitted)")
    executors = slurm_executors(stages, workers, slurm)
    records = [stage.logging_dir / SLURM_JOB_NAME for stage in stages]
    # A driver killed outright (a closed login session) leaves its jobs queued or running; they would write
    # the same ranks as the jobs submitted now, so they go first. The run lock rules out a live driver.
    _cancel([r.read_text() for r in records if r.exists()])
    for record, executor in zip(records, executors, strict=True):
        write_text(record, executor.job_name)
    try:
        with _datatrove_logs_to(stages[0].logging_dir / "datatrove.log"):
            try:
                executors[-1].launch_job()  # launches the ones it depends on first
            except subprocess.CalledProcessError as e:
                raise GeckoError(
                    f"data.engine=slurm: sbatch refused a job (exit {e.returncode}, its message is above); "
                    f"each stage's script is its logs folder's launch_script.slurm, e.g. {stages[0].logging_dir}"
                ) from None
        for stage, executor in zip(stages, executors, strict=True):
            with _watch(stage, total_bytes):
                _wait_for_job(executor.job_id)
            missing = incomplete_ranks(stage.logging_dir, stage.tasks)
            if missing:
                raise DataError(
                    f"{stage.label}: {len(missing)} of {stage.tasks} Slurm tasks did not finish (rank "
                    f"{missing[0]} first); their logs are in {stage.logging_dir / 'slurm_logs'}"
                )
    except BaseException:
        _cancel([executor.job_name for executor in executors])
        raise


SLURM_JOB_NAME = "slurm_job_name"
"""A stage's logs folder's record of the name its Slurm jobs were last submitted under."""


def _cancel(job_names: list[str]) -> None:
    for name in job_names:
        subprocess.run(["scancel", f"--name={name}"], capture_output=True, check=False)


SLURM_ENDED = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
}
"""Job states after which a job array task runs no more (PREEMPTED tasks are requeued: datatrove sets --requeue)."""
SLURM_POLL_S = (1, 15)
"""squeue polling interval while a job array runs: from 1 s, doubling, up to 15 s."""


def _wait_for_job(job_id: Any) -> None:
    """Return when Slurm job `job_id` (all its array tasks) has left the queue; -1 or None: nothing was
    submitted, every rank had finished before."""
    if job_id in (-1, None):
        return
    delay = SLURM_POLL_S[0]
    while True:
        q = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
        if q.returncode == 0 and set(q.stdout.split()) <= SLURM_ENDED:
            return
        if q.returncode != 0 and "Invalid job id" in q.stderr:
            return  # finished and already purged from the controller's memory
        time.sleep(delay)
        delay = min(2 * delay, SLURM_POLL_S[1])


def incomplete_ranks(logging_dir: Path, tasks: int) -> list[int]:
    """Ranks without a completion marker (a failed or killed rank is redone on the next run)."""
    return [r for r in range(tasks) if not (logging_dir / "completions" / f"{r:05d}").exists()]
