"""Experiment trackers: the `logging:` section sends a stage's config, metrics, tables and files to
TensorBoard, Weights & Biases, MLflow, trackio and/or a JSON-lines event log.

Stages have one signature (`run(cfg, out)`), so `run_stage` opens a `Tracker` for the stage and makes it
the *current* one; the trainer's metrics log, the eval report and the stage's declared artifacts reach it
through `current()`, and code that runs outside a stage (tests, other ranks of a distributed run) gets a
tracker with no sinks. Every backend writes below the run folder unless told otherwise: wandb runs
offline into RUN/wandb (sync later with `wandb sync`), MLflow uses a SQLite store RUN/mlflow.db with
artifacts in RUN/mlartifacts, trackio writes to $TRACKIO_DIR (default ~/.cache/huggingface/trackio, where
`trackio show` looks), TensorBoard to RUN/STAGE/tensorboard and the event log to RUN/tracking.jsonl.
Nothing here opens a network connection unless `logging.wandb_mode=online` or a remote MLflow URI is set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

from gecko.config import GeckoConfig, LoggingConfig, missing_package, to_dict
from gecko.errors import ConfigError

log = logging.getLogger(__name__)

EVENT_LOG = "tracking.jsonl"


def scalars(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"loss_by_lang": {"ko": 2.1}, "step": 3} → {"loss_by_lang/ko": 2.1}: numbers only, step aside."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
            out[prefix + key] = float(value)
    return out


def flat_config(values: Any, prefix: str = "") -> dict[str, str]:
    """A config as `section.key` → value text: MLflow params and TensorBoard text are flat strings."""
    if isinstance(values, dict):
        out: dict[str, str] = {}
        for key, value in values.items():
            out.update(flat_config(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): json.dumps(values, ensure_ascii=False)}


class Sink(Protocol):
    """A backend; its constructor opens a run and records the resolved config."""

    def start(self, step: int) -> None:
        """Metrics from `step` on follow (a resumed run); what an interrupted attempt logged after it is
        stale."""

    def metrics(self, values: dict[str, float], step: int) -> None: ...

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None: ...

    def artifact(self, path: Path) -> None: ...

    def close(self, failed: bool = False) -> None:
        """End the run; `failed`: the stage raised (the backend records the run as failed)."""


class Tracker:
    """Fans every call out to the configured sinks; with none, every call is a no-op."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def start(self, step: int) -> None:
        for sink in self.sinks:
            sink.start(step)

    def metrics(self, record: dict[str, Any]) -> None:
        """One metrics record of the trainer (`step` plus nested numbers)."""
        values = scalars(record)
        if values:
            for sink in self.sinks:
                sink.metrics(values, int(record["step"]))

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        for sink in self.sinks:
            sink.table(name, columns, rows)

    def artifact(self, path: Path) -> None:
        if path.is_file():
            for sink in self.sinks:
                sink.artifact(path)

    def close(self, failed: bool = False) -> None:
        """End every sink's run. A sink that fails to end (a server gone) is a warning, not a failed stage:
        the stage's outputs are complete and must keep their marker."""
        for sink in self.sinks:
            try:
                sink.close(failed)
            except Exception as e:  # noqa: BLE001 (any backend error)
                log.warning(
                    "logging: %s could not end its run (%s: %s)", type(sink).__name__, type(e).__name__, e
                )


_current = Tracker([])


def current() -> Tracker:
    """The tracker of the stage now running (no sinks outside a stage)."""
    return _current


@contextlib.contextmanager
def session(cfg: GeckoConfig, stage: str) -> Iterator[Tracker]:
    """Open the configured sinks for one stage, log the resolved config, and make them current."""
    global _current
    tracker = Tracker([])
    try:
        for sink in cfg.logging.sinks:
            tracker.sinks.append(_open(sink, cfg, stage))
    except BaseException:
        tracker.close(failed=True)  # the runs already opened end; the stage does not start
        raise
    previous, _current = _current, tracker
    try:
        yield tracker
    except BaseException:
        tracker.close(failed=True)
        raise
    else:
        tracker.close()
    finally:
        _current = previous


def _run_name(cfg: GeckoConfig) -> str:
    return cfg.logging.run_name or Path(cfg.run_dir).resolve().name


def _open(sink: str, cfg: GeckoConfig, stage: str) -> Any:
    message = missing_package((sink,))
    if message:
        raise ConfigError(message)
    run, name, config = cfg.run_path, _run_name(cfg), to_dict(cfg)
    make = {
        "tensorboard": lambda: TensorBoardSink(run / stage / "tensorboard", config),
        "wandb": lambda: WandbSink(cfg.logging, run, name, stage, config),
        "mlflow": lambda: MlflowSink(cfg.logging, run, name, stage, config),
        "trackio": lambda: TrackioSink(cfg.logging, name, stage, config),
        "jsonl": lambda: JsonlSink(run / EVENT_LOG, name, stage, config),
    }[sink]
    try:
        return make()
    except Exception as e:  # not logged in, a server that does not answer, a bad URI: one line, no traceback
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ConfigError(
            f"logging.sinks: {sink} could not start a run for stage {stage} ({type(e).__name__}: {detail})"
        ) from None


class JsonlSink:
    """RUN/tracking.jsonl: one JSON object per event of every tracked stage, appended, for scripts and
    for trackers GECKO has no sink for."""

    def __init__(self, path: Path, run: str, stage: str, config: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")
        self.head = {"run": run, "stage": stage}
        self._write("config", config=config)

    def _write(self, kind: str, **fields: Any) -> None:
        self.file.write(
            json.dumps(
                {**self.head, "time": round(time.time(), 3), "kind": kind, **fields}, ensure_ascii=False
            )
            + "\n"
        )
        self.file.flush()

    def start(self, step: int) -> None:
        self._write("start", step=step)

    def metrics(self, values: dict[str, float], step: int) -> None:
        self._write("metrics", step=step, values=values)

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self._write("table", name=name, columns=columns, rows=rows)

    def artifact(self, path: Path) -> None:
        self._write("artifact", path=str(path))

    def close(self, failed: bool = False) -> None:
        self._write("end", failed=failed)
        self.file.close()


class TensorBoardSink:
    """Scalars per step; the config, tables and text reports as text; PNG plots as images."""

    def __init__(self, log_dir: Path, config: dict[str, Any]) -> None:
        self.log_dir, self.writer = log_dir, cast(Any, None)  # a SummaryWriter once start() or a log opens it
        self._pending: dict[str, Any] | None = config  # written once start() has set the purge step

    def _open(self, purge_step: int | None = None) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)
        return self.writer

    def start(self, step: int) -> None:
        # purge_step hides the events an interrupted attempt logged after the checkpoint it resumes from
        self._open(step + 1 if step else None)

    def _flush_config(self) -> None:
        if self._pending is not None:
            text = "\n".join(f"    {k}: {v}" for k, v in flat_config(self._pending).items())
            self._open().add_text("config", text)
            self._pending = None

    def metrics(self, values: dict[str, float], step: int) -> None:
        self._flush_config()
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self._flush_config()
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
        self.writer.add_text(name, "\n".join(lines))

    def artifact(self, path: Path) -> None:
        self._flush_config()
        if path.suffix == ".png":
            import matplotlib.image

            self.writer.add_image(path.name, matplotlib.image.imread(str(path))[..., :3], dataformats="HWC")
        elif path.suffix in (".md", ".txt"):
            self.writer.add_text(path.name, path.read_text(encoding="utf-8"))

    def close(self, failed: bool = False) -> None:
        self._flush_config()
        self.writer.close()


class WandbSink:
    """One W&B run per stage, grouped by run name; offline by default (files in RUN/wandb, `wandb sync`
    uploads them later)."""

    def __init__(
        self, cfg: LoggingConfig, run_dir: Path, name: str, stage: str, config: dict[str, Any]
    ) -> None:
        import wandb

        run_dir.mkdir(parents=True, exist_ok=True)
        self.wandb: Any = wandb
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.wandb_entity,
            name=f"{name}-{stage}",
            group=name,
            job_type=stage,
            dir=str(run_dir),
            mode=cfg.wandb_mode,
            reinit="create_new",
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
        )

    def start(self, step: int) -> None:
        pass  # a resumed stage is a new W&B run; its steps continue from the checkpoint's

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.run.log({name: self.wandb.Table(columns=columns, data=[[str(v) for v in row] for row in rows])})

    def artifact(self, path: Path) -> None:
        self.run.save(str(path), base_path=str(path.parent), policy="now")

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class MlflowSink:
    """One MLflow run per stage in experiment `logging.project`, tagged with the run name and stage; by
    default a local SQLite store (MLflow 3 refuses new file stores unless MLFLOW_ALLOW_FILE_STORE=true)."""

    def __init__(
        self, cfg: LoggingConfig, run_dir: Path, name: str, stage: str, config: dict[str, Any]
    ) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        run_dir.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(cfg.mlflow_uri or f"sqlite:///{run_dir.resolve()}/mlflow.db")
        exp = self.client.get_experiment_by_name(cfg.project)
        exp_id = (
            exp.experiment_id
            if exp
            else self.client.create_experiment(
                cfg.project, artifact_location=(run_dir.resolve() / "mlartifacts").as_uri()
            )
        )
        self.run_id = self.client.create_run(
            exp_id, run_name=f"{name}-{stage}", tags={"gecko.run": name, "gecko.stage": stage}
        ).info.run_id
        params = [Param(k, v[:6000]) for k, v in flat_config(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.pending: list[Any] = []
        """Asynchronous metric batches (mlflow's RunOperations), awaited before the run is ended."""

    def start(self, step: int) -> None:
        pass  # metric histories keep every value with its step; a resumed stage is a new run

    def metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k.replace("@", "_at_"), v, now, step) for k, v in values.items()]
        # asynchronous: a SQLite commit per record would cost the training loop tens of ms per logged step
        self.pending.append(self.client.log_batch(self.run_id, metrics=metrics, synchronous=False))

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        data = {c: [str(row[i]) for row in rows] for i, c in enumerate(columns)}
        self.client.log_table(self.run_id, data, f"{name}.json")

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool = False) -> None:
        for operation in self.pending:
            operation.wait()
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


class TrackioSink:
    """One trackio run per stage in project `logging.project` (local SQLite under $TRACKIO_DIR)."""

    def __init__(self, cfg: LoggingConfig, name: str, stage: str, config: dict[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        self.run = trackio.init(
            project=cfg.project,
            name=f"{name}-{stage}",
            group=name,
            embed=False,
            config=flat_config(config),
            auto_log_cpu=False,
            auto_log_gpu=False,
        )
        self.step = 0

    def start(self, step: int) -> None:
        self.step = step

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.step = step
        self.trackio.log(values, step=step)

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.trackio.log(
            {name: self.trackio.Table(columns=columns, data=[[str(v) for v in r] for r in rows])},
            step=self.step,
        )

    def artifact(self, path: Path) -> None:
        self.trackio.log_artifact(path, name=f"{self.run.name}-{path.stem}".replace(".", "-"), type="report")

    def close(self, failed: bool = False) -> None:
        self.trackio.finish()
