"""The data phases on Ray give the same output as the local executor: each dedup and decontam stage on an
in-process Ray (2 CPUs, 2 workers), and the whole `gecko data run` on a cluster of two `ray start` nodes."""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, read_shards
from gecko.config import DecontamConfig, DedupConfig
from gecko.data.engine.executor import RayWorkerSetup
from gecko.data.steps.decontam import run_decontam
from gecko.data.steps.dedup.planted import write_shards
from gecko.data.steps.dedup.run import run_dedup
from helpers import (
    contaminated_docs,
    decontam_benchmarks,
    dedup_corpus,
    gecko_cli,
    random_words,
    scaleout_config,
    scaleout_outputs,
    shard_ids,
    shard_texts,
    write_docs,
)

pytestmark = pytest.mark.slow
FOOTER = "Copyright 2024 Example Corp. All rights reserved. Terms of use apply."


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One cluster for both tests: starting one costs 7–14 s on 2 shared cores."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _removed(work: Path) -> set[str]:
    return {r["id"] for r in read_shards(work / "removed")}


def _completed(work: Path, stage: str) -> int:
    return len(list((work / "logs" / stage / "completions").iterdir()))


def test_full_dedup_on_ray_equals_one_local_worker(tmp_path, ray_cluster):
    rng = random.Random(2)
    docs = (
        dedup_corpus()
        + [
            {"id": f"foot{i}", "text": f"{random_words(rng, 40)}\n{FOOTER}", "lang": "en", "source": "s"}
            for i in range(4)
        ]
        + [{"id": "only", "text": FOOTER, "lang": "en", "source": "s"}]
    )
    cfg = DedupConfig(boilerplate_min_docs=3)  # the footer is boilerplate: all six stages have work to do
    src = write_docs(docs, tmp_path / "in", shards=3)
    local = run_dedup(src, tmp_path / "local", cfg, workers=1)
    ray = run_dedup(src, tmp_path / "ray", cfg, workers=2, engine="ray", tasks=4)
    assert shard_texts(tmp_path / "ray") == shard_texts(tmp_path / "local")
    assert (ray.work_dir / "duplicates.jsonl").read_text() == (
        local.work_dir / "duplicates.jsonl"
    ).read_text()
    assert _removed(ray.work_dir) == _removed(local.work_dir) and len(_removed(ray.work_dir)) == 4
    assert (ray.kept, ray.dropped) == (local.kept, local.dropped) and ray.read == len(docs)
    assert ray.dropped[("boilerplate", "boilerplate_only", "en")] == 1
    assert not any(FOOTER in text for _, text in shard_texts(tmp_path / "ray"))
    for stage, ranks in {
        "signatures": 4,
        "merge": 1,
        "index": 4,
        "buckets": cfg.bands + 1,
        "clusters": 1,
        "filter": 4,
    }.items():
        assert _completed(ray.work_dir, stage) == ranks, stage


def test_decontam_on_ray_equals_local(tmp_path, ray_cluster):
    write_shards(contaminated_docs(), tmp_path / "in", 3)
    cfg = DecontamConfig(benchmarks=decontam_benchmarks(tmp_path / "bench"))
    run_decontam(tmp_path / "in", tmp_path / "local", cfg, workers=1)
    result = run_decontam(tmp_path / "in", tmp_path / "ray", cfg, workers=2, engine="ray")
    assert shard_ids(tmp_path / "ray") == shard_ids(tmp_path / "local") == {"clean_en", "clean_ko"}
    assert len(list((result.work_dir / "logs" / "completions").iterdir())) == 3


def test_forked_children_of_a_ray_worker_die_on_sigterm():
    """The guard against datatrove's Ray pool hang: once unpickled (as in a Ray worker), forked children get
    the default SIGTERM action back, so the pool's terminate() ends them."""
    code = """
import os, pickle, signal, time
from gecko.data.engine.executor import RayWorkerSetup
signal.signal(signal.SIGTERM, lambda *a: None)  # a handler that does not exit, like the Ray worker's
pickle.loads(pickle.dumps(RayWorkerSetup()))
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
time.sleep(0.2)
os.kill(pid, signal.SIGTERM)
_, status = os.waitpid(pid, 0)
print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_ray_workers_run_in_the_drivers_folder(tmp_path):
    """Configs name sources and the run folder relative to the driver's folder, but a Ray worker starts in
    its node's Ray folder: unpickling the setup step moves the worker to where the driver runs."""
    blob = pickle.dumps(RayWorkerSetup())
    code = "import os, pickle, sys; pickle.loads(sys.stdin.buffer.read()); print(os.getcwd())"
    done = subprocess.run(
        [sys.executable, "-c", code], input=blob, cwd=tmp_path, capture_output=True, timeout=60, check=True
    )
    assert done.stdout.decode().strip() == os.getcwd() != str(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_start(temp: Path, name: str, *args: str) -> subprocess.Popen:
    """`ray start --block` in its own session, so the teardown ends this node's processes and no others
    (`ray stop` would stop every Ray on the machine, other users' too)."""
    log = (temp / f"{name}.out").open("w")
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus=1", "--disable-usage-stats",
         f"--temp-dir={temp / name}", f"--dashboard-agent-listen-port={_free_port()}", *args],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _stop(node: subprocess.Popen) -> None:
    """SIGTERM lets `ray start --block` stop its node; whatever is left of the node's session is killed."""
    node.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)


@pytest.fixture
def two_node_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A Ray cluster as a real one is started: `ray start --head`, then `ray start --address=HEAD` for a
    second node, 1 CPU each, each node with its own temp folder (so each has its own worker logs) and free
    ports (parallel runs do not clash). Token auth off: Ray 2.60 enables it on the head when ~/.ray holds a
    token but a joining node does not send one. Yields (address, temp folder); both nodes stop after."""
    pytest.importorskip("ray")
    temp = Path(tempfile.mkdtemp(prefix="gray", dir="/tmp"))  # Ray's socket paths must stay under 107 bytes
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    address = f"127.0.0.1:{_free_port()}"
    nodes = [
        _ray_start(temp, "head", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false",
                   f"--ray-client-server-port={_free_port()}"),
    ]  # fmt: skip
    try:
        while not list((temp / "head").glob("session_*/logs/gcs_server.out")):
            assert nodes[0].poll() is None, (temp / "head.out").read_text()
            time.sleep(0.5)
        nodes.append(_ray_start(temp, "node", f"--address={address}"))
        deadline = time.monotonic() + 60
        while _alive_nodes(address) < 2:  # `ray status`: no ray.init here, the in-process Ray may be up
            assert time.monotonic() < deadline, (temp / "node.out").read_text()
            time.sleep(0.5)
        yield address, temp
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)


def _alive_nodes(address: str) -> int:
    status = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "status", f"--address={address}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return sum(line.strip().startswith("1 node_") for line in active.splitlines())


def _rank_workers_on(node_temp: Path) -> int:
    """How many of datatrove's RankWorker actors (each runs ranks of a stage) Ray placed on this node: each
    has a worker log in the node's own temp folder."""
    return sum(
        ":actor_name:RankWorker" in f.read_text(errors="replace")
        for f in node_temp.glob("session_*/logs/worker-*.err")
    )


def test_data_run_on_a_two_node_ray_cluster_equals_the_local_executor(tmp_path, two_node_ray):
    """`gecko data run` with data.engine=ray and RAY_ADDRESS naming a cluster of two `ray start` nodes:
    the clean, dedup and decontam phases run there, and the corpus and every drop list are byte-identical
    to the local executor's. Work lands on both nodes."""
    address, temp = two_node_ray
    config = scaleout_config(tmp_path, REPO)
    gecko_cli(["data", "run", str(config), "run_dir=local"], cwd=tmp_path)
    gecko_cli(["data", "run", str(config), "run_dir=ray", "data.engine=ray"], cwd=tmp_path,
              env={"RAY_ADDRESS": address})  # fmt: skip
    local, ray = scaleout_outputs(tmp_path / "local" / "data"), scaleout_outputs(tmp_path / "ray" / "data")
    assert local.keys() == ray.keys() and "dedup.work/removed/00000.jsonl.zst" in local
    for name in local:
        assert ray[name] == local[name], name
    assert b"contaminated" in local["stats.json"] and b"near_duplicate" in local["stats.json"]
    assert len(list((tmp_path / "ray" / "data" / "logs" / "clean" / "completions").iterdir())) == 2
    assert _rank_workers_on(temp / "head") > 0 and _rank_workers_on(temp / "node") > 0
