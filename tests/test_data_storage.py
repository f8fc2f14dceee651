"""The data stage's storage: intermediates compressed and removed once consumed, drop lists kept, and a run
killed at any point (or rerun with another config) ends with the same corpus as one uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gecko.config import DecontamConfig, DedupConfig
from gecko.data import pipeline
from gecko.data.pipeline import run_data
from gecko.data.steps.dedup.run import SCRATCH
from helpers import decontam_benchmarks, raw_sources_config


def _snapshot(out: Path) -> tuple[bytes, str]:
    return (out / "corpus.jsonl").read_bytes(), (out / "stats.json").read_text()


def _assert_consumed(out: Path) -> None:
    assert not (out / "clean").exists() and not (out / "decontam").exists()
    assert not any((out / "dedup.work" / name).exists() for name in SCRATCH)
    assert list((out / "dedup").glob("*.jsonl.zst")), "the dedup output is kept, compressed"
    assert (out / "dedup.work" / "duplicates.jsonl").exists() and list(
        (out / "dedup.work" / "removed").glob("*.zst")
    )
    assert (out / "dedup.work" / "bands").is_dir() and (out / "dedup.work" / "clusters").is_dir()


def test_intermediates_are_removed_and_drop_lists_kept(raw_sources, tmp_path):
    out = tmp_path / "out"
    run_data(raw_sources_config(raw_sources), out, seed=1)
    _assert_consumed(out)
    first = _snapshot(out)
    run_data(raw_sources_config(raw_sources), out, seed=1)  # finished: nothing is redone, nothing comes back
    assert _snapshot(out) == first
    _assert_consumed(out)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise runs, no `except Exception` catches it."""


KILL_POINTS = [
    "run_dedup",
    "_consume#1",
    "remove_scratch",
    "run_decontam",
    "run_mix",
    "write_text",
    "_consume#2",
]
"""Functions of gecko.data.pipeline, killed when called (`#n`: at the n-th call): before each phase, while
the clean shards are removed, before the stage's DONE marker, and while decontam/ is removed after it."""


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_any_phase_boundary_resumes_to_the_same_corpus(raw_sources, tmp_path, monkeypatch, point):
    cfg = raw_sources_config(
        raw_sources, decontam=DecontamConfig(benchmarks=decontam_benchmarks(tmp_path / "bench"))
    )
    run_data(cfg, tmp_path / "ref", seed=1)
    name, _, nth = point.partition("#")
    real, calls = getattr(pipeline, name), []

    def kill(*args, **kwargs):
        if name == "write_text" and Path(args[0]).name != pipeline.DONE:  # only the DONE marker
            return real(*args, **kwargs)
        calls.append(1)
        if len(calls) >= int(nth or 1):
            raise Killed(point)
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(pipeline, name, kill)
        with pytest.raises(Killed):
            run_data(cfg, tmp_path / "out", seed=1)
    run_data(cfg, tmp_path / "out", seed=1)
    assert _snapshot(tmp_path / "out") == _snapshot(tmp_path / "ref")
    _assert_consumed(tmp_path / "out")


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_to_the_same_corpus(raw_sources, tmp_path):
    """A real `kill -9` of `run_data` in a child process, at several moments, then a rerun."""
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from pathlib import Path\nfrom helpers import raw_sources_config\nfrom gecko.data.pipeline import run_data\n"
        f"run_data(raw_sources_config(Path({str(raw_sources)!r})), Path(sys.argv[1]), seed=1)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ref")], env=env, check=True, capture_output=True
    )
    full = time.monotonic() - t0
    for k, fraction in enumerate((0.2, 0.45, 0.7, 0.9)):
        out = tmp_path / f"run{k}"
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(out)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(full * fraction)
        os.killpg(child.pid, signal.SIGKILL)  # the run and its datatrove workers
        child.wait()
        subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True, capture_output=True)
        assert _snapshot(out) == _snapshot(tmp_path / "ref"), fraction
        _assert_consumed(out)


@pytest.mark.slow
def test_a_changed_phase_config_reruns_from_the_right_place(raw_sources, tmp_path):
    """New benchmarks rerun decontamination from the kept dedup/ output; a new dedup setting needs the removed
    clean shards, so the clean phase is redone. Both end like a fresh run with the new config."""
    out = tmp_path / "out"
    run_data(raw_sources_config(raw_sources), out, seed=1)
    dedup_mtime = min(p.stat().st_mtime_ns for p in (out / "dedup").iterdir())
    with_bench = raw_sources_config(
        raw_sources, decontam=DecontamConfig(benchmarks=decontam_benchmarks(tmp_path / "bench"))
    )
    run_data(with_bench, out, seed=1)
    assert min(p.stat().st_mtime_ns for p in (out / "dedup").iterdir()) == dedup_mtime
    run_data(with_bench, tmp_path / "fresh", seed=1)
    assert _snapshot(out) == _snapshot(tmp_path / "fresh")
    other = raw_sources_config(raw_sources, dedup=DedupConfig(threshold=0.7), decontam=with_bench.decontam)
    run_data(other, out, seed=1)
    shutil.rmtree(tmp_path / "fresh")
    run_data(other, tmp_path / "fresh", seed=1)
    assert _snapshot(out) == _snapshot(tmp_path / "fresh")
    _assert_consumed(out)


def test_shard_writer_writes_the_json_lines_of_datatrove_writer(tmp_path):
    """ShardWriter skips asdict and fsspec's zstd level: the decompressed lines must stay datatrove's."""
    import zstandard
    from datatrove.data import Document
    from datatrove.pipeline.writers import JsonlWriter

    from gecko.data.engine.executor import ShardWriter

    docs = [
        Document("가나다 text", "a", metadata={"lang": "ko", "pii": [{"type": "email", "span": (1, 4)}]}),
        Document("", "b"),
        Document("x\ny", "c", metadata={"lang": "code", "nested": {"k": [1, 2.5, None, True]}}),
    ]
    out = {}
    for name, writer in (
        ("ours", ShardWriter(tmp_path / "ours")),
        ("datatrove", JsonlWriter(str(tmp_path / "dt"), output_filename="${rank}.jsonl", compression="zstd")),
    ):
        with writer:
            for doc in docs:
                writer.write(doc, rank=3)
        (path,) = (tmp_path / ("ours" if name == "ours" else "dt")).glob("*")
        assert path.name == "00003.jsonl.zst"
        out[name] = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()
    assert out["ours"] == out["datatrove"]
    assert out["ours"].count(b"\n") == 3


@pytest.mark.parametrize("template", ["${rank}.jsonl", "${lang}/${rank}.jsonl"])
def test_shard_writer_run_gives_datatrove_writers_files_and_counters(tmp_path, template):
    """ShardWriter names a rank-only shard once per rank and times batches; the files and the counters
    (documents per file, total, doc_len) must stay those of datatrove's writer, and a template naming
    metadata must still route each document by it."""
    import zstandard
    from datatrove.data import Document
    from datatrove.pipeline.writers import JsonlWriter

    from gecko.data.engine.executor import ShardWriter

    def docs():
        return [Document(f"text {i}", str(i), metadata={"lang": ("ko", "en")[i % 2]}) for i in range(600)]

    ours = ShardWriter(tmp_path / "ours", output_filename=template)
    theirs = JsonlWriter(str(tmp_path / "dt"), output_filename=template, compression="zstd")
    assert [d.id for d in ours.run(docs(), rank=2)] == [d.id for d in theirs.run(docs(), rank=2)]
    files = {}
    for name in ("ours", "dt"):
        found = sorted((tmp_path / name).rglob("*.zst"))
        files[name] = {
            str(p.relative_to(tmp_path / name)): zstandard.ZstdDecompressor()
            .stream_reader(p.open("rb"))
            .read()
            for p in found
        }
    assert files["ours"] == files["dt"] and len(files["ours"]) == (1 if template == "${rank}.jsonl" else 2)

    def counters(step):
        return {k: (v.total, v.n, v.min, v.max) for k, v in step.stats.stats.items()}

    assert counters(ours) == counters(theirs)
