"""One writer per run folder: a second writer is refused at once, naming the holder; a holder killed with
SIGKILL leaves a lock file that blocks nobody."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_OVERRIDES
from gecko.cli import main
from gecko.runlock import LOCK, RunLockedError, holder, run_lock

HOLD = """
import sys, time
from gecko.runlock import run_lock
with run_lock(sys.argv[1], "gecko train some.yaml"):
    print("held", flush=True)
    time.sleep(120)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _hold(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_within_a_second_naming_the_holder(tiny_config, tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = _hold(run_dir)
    try:
        started = time.monotonic()
        assert main(["data", "run", str(tiny_config)]) == 2
        assert time.monotonic() - started < 1.0
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and f"{run_dir} is in use by pid {proc.pid} on {socket.gethostname()}" in err
        )
        assert "'gecko train some.yaml'" in err
        assert not (run_dir / "data").exists()  # refused before any work
        assert holder(run_dir)["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_left_by_a_killed_process_never_blocks(tmp_path):
    run_dir = tmp_path / "run"
    proc = _hold(run_dir)
    with pytest.raises(RunLockedError), run_lock(run_dir):
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run_dir / LOCK).exists() and holder(
        run_dir
    ) is None  # the file names the dead pid; the kernel freed it
    with run_lock(run_dir, "gecko run next.yaml"):
        assert holder(run_dir)["command"] == "gecko run next.yaml"
    assert holder(run_dir) is None


def test_read_only_commands_do_not_take_the_lock(tiny_config, tmp_path, capsys):
    proc = _hold(tmp_path / "run")
    try:
        assert main(["train", str(tiny_config), "--dry-run"]) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_kill_9_of_a_training_run_then_a_second_writer(tiny_prepared, tmp_path):
    """A real `gecko train` holds the lock while it trains; killed with SIGKILL mid-run, the next one starts."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_prepared.run_path, run_dir)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        (tiny_prepared.run_path.parent / "tiny.yaml")
        .read_text()
        .replace(str(tiny_prepared.run_path), str(run_dir))
    )
    argv = [
        sys.executable,
        "-m",
        "gecko",
        "train",
        str(config),
        *TINY_OVERRIDES,
        "train.steps=100000",
        "train.eval_every=null",
        "train.checkpoint_every=null",
    ]
    first = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "train" / "metrics.jsonl").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.2)
        second = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=30)
        assert second.returncode == 2 and f"is in use by pid {first.pid}" in second.stderr
        assert second.stderr.count("\n") == 1, second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert holder(run_dir) is None
    with run_lock(run_dir):
        pass
