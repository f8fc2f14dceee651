"""The data phases on a local Ray cluster (2 CPUs, 2 workers) give the same output as the local executor."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import read_shards
from gecko.config import DecontamConfig, DedupConfig
from gecko.data.steps.decontam import run_decontam
from gecko.data.steps.dedup.planted import write_shards
from gecko.data.steps.dedup.run import run_dedup
from helpers import (
    contaminated_docs,
    decontam_benchmarks,
    dedup_corpus,
    random_words,
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
        "lines": 4,
        "merge": 1,
        "signatures": 4,
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
from gecko.data.engine.executor import RayForkGuard
signal.signal(signal.SIGTERM, lambda *a: None)  # a handler that does not exit, like the Ray worker's
pickle.loads(pickle.dumps(RayForkGuard()))
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
