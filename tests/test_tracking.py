"""Experiment trackers (`logging.sinks`): a real train and eval stage log the config, training metrics, the
eval tables and the loss plot and reports to every sink whose package is installed, offline, and each
backend's own files are read back. A sink whose package is missing stops the command before any work."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from gecko import cli, tracking
from gecko.config import SINK_PACKAGES, LoggingConfig, load_config
from gecko.errors import ConfigError
from gecko.runner import run_stage
from gecko.stages import BY_NAME
from gecko.train.metrics import read_metrics

ALL = ("tensorboard", "wandb", "mlflow", "trackio", "jsonl")


def _installed(sink: str) -> bool:
    package = SINK_PACKAGES[sink]
    return package is None or importlib.util.find_spec(package[0]) is not None


@pytest.fixture(scope="module")
def tracked_run(tiny_prepared, tmp_path_factory):
    """A copy of the prepared tiny run, trained and evaluated with every installed sink."""
    tmp = tmp_path_factory.mktemp("tracked")
    run = tmp / "run"
    shutil.copytree(tiny_prepared.run_path, run)
    sinks = tuple(s for s in ALL if _installed(s))
    project = f"gecko-test-{os.getpid()}-{tmp.name}"
    cfg = dataclasses.replace(
        tiny_prepared, run_dir=str(run), logging=LoggingConfig(sinks=sinks, project=project)
    )
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, steps=4, eval_every=None, checkpoint_every=None, log_every=1),
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.setenv("TRACKIO_DIR", str(tmp / "trackio"))  # read once, when trackio is first imported
        for stage in ("train", "eval"):
            run_stage(cfg, BY_NAME[stage])
    return cfg


def test_jsonl_event_log(tracked_run):
    events = read_metrics(tracked_run.run_path / tracking.EVENT_LOG)
    train = [e for e in events if e["stage"] == "train"]
    assert train[0]["kind"] == "config" and train[0]["config"]["train"]["steps"] == 4
    assert [e["step"] for e in train if e["kind"] == "metrics" and "loss" in e["values"]] == [1, 2, 3, 4]
    assert [Path(e["path"]).name for e in events if e["kind"] == "artifact"] == [
        "loss.png",
        "results.md",
        "results.json",
    ]
    bpb = next(e for e in events if e["kind"] == "table" and e["name"] == "eval/bpb")
    results = json.loads((tracked_run.run_path / "eval" / "results.json").read_text())
    assert {row[0] for row in bpb["rows"]} == set(results["val_bpb"]) and bpb["columns"][0] == "lang"


def test_declared_artifacts_are_what_the_stages_write(tracked_run):
    """A misspelt name in a stage's `artifacts` would be skipped silently by Tracker.artifact."""
    for name in ("data", "train", "eval"):
        stage = BY_NAME[name]
        assert stage.artifacts and all(
            (tracked_run.run_path / stage.folder / a).is_file() for a in stage.artifacts
        )


def test_tensorboard(tracked_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(str(tracked_run.run_path / "train" / "tensorboard")).Reload()
    assert [e.step for e in train.Scalars("loss")] == [1, 2, 3, 4]
    assert {"val_bpb/ko", "val_bpb/en", "val_bpb/code"} <= set(train.Tags()["scalars"])
    assert train.Tags()["images"] == ["loss.png"]
    evals = EventAccumulator(str(tracked_run.run_path / "eval" / "tensorboard")).Reload()
    assert {"config/text_summary", "eval/bpb/text_summary", "results.md/text_summary"} <= set(
        evals.Tags()["tensors"]
    )


def test_wandb_offline(tracked_run):
    pytest.importorskip("wandb")
    runs = sorted((tracked_run.run_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # one per tracked stage: train, eval
    train, evals = runs
    assert (train / "files" / "loss.png").read_bytes() == (
        tracked_run.run_path / "train" / "loss.png"
    ).read_bytes()
    assert (evals / "files" / "results.md").is_file()
    table = json.loads(
        next((evals / "files" / "media" / "table" / "eval").glob("bpb*.table.json")).read_text()
    )
    results = json.loads((tracked_run.run_path / "eval" / "results.json").read_text())
    assert table["columns"][0] == "lang" and [row[0] for row in table["data"]] == list(results["val_bpb"])
    records = next(train.glob("run-*.wandb")).read_bytes()  # protobuf records: keys stored as plain text
    assert b"loss_by_lang/ko" in records and b"tokens_per_s" in records


def test_mlflow_sqlite_store(tracked_run):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked_run.run_path.resolve()}/mlflow.db")
    exp = client.get_experiment_by_name(tracked_run.logging.project)
    runs = {r.data.tags["gecko.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"train", "eval"} and all(r.info.status == "FINISHED" for r in runs.values())
    train = runs["train"]
    assert [m.step for m in client.get_metric_history(train.info.run_id, "loss")] == [1, 2, 3, 4]
    assert train.data.params["train.steps"] == "4" and train.data.params["logging.project"]
    assert [a.path for a in client.list_artifacts(train.info.run_id)] == ["loss.png"]
    eval_files = {a.path for a in client.list_artifacts(runs["eval"].info.run_id)}
    assert {"results.md", "results.json", "eval"} <= eval_files


def test_mlflow_file_store_when_allowed(tmp_path, monkeypatch):
    """A `file://RUN/mlruns` store still works where the user opts in (MLflow 3 refuses it otherwise)."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    cfg = load_config(None, [f"run_dir={tmp_path}", "logging.sinks=[mlflow]", f"logging.mlflow_uri={uri}"])
    with tracking.session(cfg, "train") as tracker:
        tracker.start(0)
        tracker.metrics({"step": 3, "loss": 1.5, "val_bpb": {"ko": 2.0}})
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("gecko").experiment_id])[0]
    assert (
        run.data.metrics == {"loss": 1.5, "val_bpb/ko": 2.0}
        and run.data.params["logging.mlflow_uri"] == f'"{uri}"'
    )


def test_a_sink_that_cannot_start_is_one_line_and_closes_the_others(tmp_path):
    pytest.importorskip("mlflow")
    cfg = load_config(
        None, [f"run_dir={tmp_path}", "logging.sinks=[jsonl, mlflow]", "logging.mlflow_uri=bogus://x"]
    )
    with (
        pytest.raises(
            ConfigError, match=r"^logging.sinks: mlflow could not start a run for stage eval \("
        ) as e,
        tracking.session(cfg, "eval"),
    ):
        pytest.fail("the stage must not start")
    assert "\n" not in str(e.value)
    events = read_metrics(tmp_path / tracking.EVENT_LOG)  # jsonl was opened first, and closed as failed
    assert [(e["kind"], e.get("failed")) for e in events] == [("config", None), ("end", True)]


def test_a_failing_stage_ends_its_runs_as_failed(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    cfg = load_config(
        None, [f"run_dir={tmp_path}", "logging.sinks=[jsonl, mlflow]", f"logging.mlflow_uri={uri}"]
    )
    with pytest.raises(KeyboardInterrupt), tracking.session(cfg, "train"):
        raise KeyboardInterrupt
    client = MlflowClient(uri)
    assert (
        client.search_runs([client.get_experiment_by_name("gecko").experiment_id])[0].info.status == "FAILED"
    )
    assert read_metrics(tmp_path / tracking.EVENT_LOG)[-1] == {
        **read_metrics(tmp_path / tracking.EVENT_LOG)[-1],
        "kind": "end",
        "failed": True,
    }
    assert tracking.current().sinks == []  # outside a stage again


def test_a_sink_that_cannot_end_its_run_is_a_warning(tmp_path, caplog):
    """The stage's outputs are complete by then: a tracker server gone must not cost the stage its marker."""

    class Gone:
        def close(self, failed: bool = False) -> None:
            raise ConnectionError("server went away")

    cfg = load_config(None, [f"run_dir={tmp_path}", "logging.sinks=[jsonl]"])
    with tracking.session(cfg, "eval") as tracker:
        tracker.sinks.insert(0, Gone())
    assert "Gone could not end its run (ConnectionError: server went away)" in caplog.text
    assert read_metrics(tmp_path / tracking.EVENT_LOG)[-1]["kind"] == "end"  # the other sinks still end


def test_trackio_local(tracked_run):
    trackio = pytest.importorskip("trackio")
    db = sqlite3.connect(trackio.utils.TRACKIO_DIR / f"{tracked_run.logging.project}.db")
    rows = db.execute("select run_name, step, metrics from metrics order by id").fetchall()
    name = f"{tracked_run.run_path.name}-train"
    losses = [(step, json.loads(m)) for run, step, m in rows if run == name and "loss" in json.loads(m)]
    assert [step for step, _ in losses] == [1, 2, 3, 4]
    tables = [json.loads(m) for run, _, m in rows if run.endswith("-eval")]
    assert any("eval/bpb" in t for t in tables)
    config = json.loads(db.execute("select config from configs where run_name = ?", (name,)).fetchone()[0])
    assert config["train.steps"] == "4"


def test_logging_fields_are_validated():
    with pytest.raises(ConfigError, match="logging.sinks lists jsonl twice"):
        load_config(None, ["logging.sinks=[jsonl, jsonl]"])
    with pytest.raises(ConfigError, match=r"logging.sinks\[0\]='neptune' must be one of 'tensorboard'"):
        load_config(None, ["logging.sinks=[neptune]"])
    with pytest.raises(ConfigError, match="logging.wandb_mode='shared' must be one of"):
        load_config(None, ["logging.wandb_mode=shared"])


def test_missing_tracker_package_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    config = tmp_path / "c.yaml"
    config.write_text(f"run_dir: {tmp_path / 'run'}\nlogging:\n  sinks: [jsonl, mlflow]\n")
    assert cli.main(["train", str(config), *TINY_OVERRIDES]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{config}:3:" in err
    assert "the mlflow package is not installed: pip install 'gecko-llm[trackers]'" in err
    assert not (tmp_path / "run").exists()
