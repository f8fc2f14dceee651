"""Mixing by estimated tokens: target shares within 1 point, source weights, capped repeats, determinism."""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zstandard

from gecko import cli
from gecko.config import AlignConfig, DataConfig, ParallelSourceConfig
from gecko.data import corpus
from gecko.data.corpus import CorpusRecord
from gecko.data.stats import DataStats
from gecko.data.steps.mix import choice, ranks
from gecko.data.steps.mix import run as mix_run
from gecko.data.steps.mix.choice import MixReport, estimate_tokens
from gecko.errors import DataError
from gecko.io.jsonl import json_records


def _docs(seed: int = 0) -> list[CorpusRecord]:
    rng = random.Random(seed)
    out = []
    for lang, source, n, size in [
        ("ko", "kowiki", 400, 900),
        ("ko", "nsmc", 600, 120),
        ("en", "docs", 500, 1500),
        ("code", "stdlib", 300, 2500),
        ("ko", "align/tatoeba", 80, 400),
    ]:
        for i in range(n):
            out.append(
                CorpusRecord(
                    f"{source}/{i}",
                    "가" * rng.randrange(size // 2, size)
                    if lang == "ko"
                    else "x" * rng.randrange(size // 2, size),
                    lang,
                    source,
                )
            )
    return out


def _shards(docs: list[CorpusRecord], folder: Path, files: int = 1) -> Path:
    """`docs` as a datatrove shard folder (what decontamination leaves), split into `files` files in order."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(docs) // files)
    for k in range(files):
        lines = [
            json.dumps(
                {"text": d.text, "id": d.id, "metadata": {"lang": d.lang, "source": d.source, **d.meta}}
            )
            for d in docs[k * size : (k + 1) * size]
        ]
        (folder / f"{k:05d}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


def mix_documents(
    cfg: DataConfig,
    docs: list[CorpusRecord],
    stats: DataStats,
    seed: int,
    out: Path | None = None,
    files: int = 1,
) -> tuple[list[CorpusRecord], MixReport]:
    """The mix over `docs` written to `files` shards, its corpus read back."""
    out = out or Path(tempfile.mkdtemp()) / "corpus.jsonl"
    folder = _shards(docs, out.parent / f"{out.stem}-input", files)
    report = mix_run.run_mix([folder], out, cfg, seed, stats)
    return list(corpus.read_jsonl(out)), report


def _cfg(**kw) -> DataConfig:
    align = AlignConfig(sources=(ParallelSourceConfig("tatoeba", "unused.tsv"),), share=0.05)
    return DataConfig(align=align, **kw)


def test_shares_are_within_one_point_of_target():
    docs = _docs()
    stats = DataStats()
    mixed, report = mix_documents(_cfg(max_repeat=1.0), docs, stats, seed=1)
    for group, target in report.target.items():
        assert abs(report.achieved[group] - target) < 0.01, (group, report.achieved, report.target)
    assert report.target["align"] == 0.05 and abs(report.target["ko"] - 0.35 * 0.95) < 1e-9
    # Accounting: every document is in the mix (maybe repeated) or dropped as mix_downsample.
    unique = len({d.id for d in mixed})
    assert unique + sum(stats.dropped.values()) == len(docs)
    assert sum(stats.kept.values()) - sum(stats.repeated.values()) == unique


def test_repeats_are_capped_and_weights_shift_sources():
    docs = _docs()
    _, plain = mix_documents(_cfg(max_repeat=0.5), docs, DataStats(), seed=1)
    assert max(plain.epochs.values()) <= 1.5 + 1e-9
    cfg = _cfg(max_repeat=0.5, source_weights={"nsmc": 0.25})
    _, weighted = mix_documents(cfg, docs, DataStats(), seed=1)
    assert (
        weighted.epochs["nsmc"] < plain.epochs["nsmc"] and weighted.epochs["kowiki"] > plain.epochs["kowiki"]
    )
    assert abs(weighted.achieved["ko"] - weighted.target["ko"]) < 0.01


def test_mix_is_deterministic_and_independent_of_input_order():
    docs = _docs()
    a, _ = mix_documents(_cfg(), docs, DataStats(), seed=7)
    b, _ = mix_documents(_cfg(), list(reversed(docs)), DataStats(), seed=7)
    c, _ = mix_documents(_cfg(), docs, DataStats(), seed=8)
    assert [d.id for d in a] == [d.id for d in b] != [d.id for d in c]


def test_token_estimate_is_per_language():
    cfg = DataConfig()
    assert estimate_tokens("가" * 100, "ko", cfg.bytes_per_token) == round(300 / cfg.bytes_per_token["ko"])
    assert estimate_tokens("x", "other", {}) == 1


def test_a_group_with_no_documents_is_an_error():
    docs = [d for d in _docs() if d.lang != "code"]
    with pytest.raises(DataError, match="code"):
        mix_documents(_cfg(), docs, DataStats(), seed=1)


def test_a_source_in_two_languages_is_mixed_per_language_and_ids_need_not_be_unique():
    """NSMC holds English reviews too: English being repeated must not repeat its Korean reviews. Two
    documents sharing an id (one manual ships two files under one name) are two documents."""
    docs = _docs()
    docs += [CorpusRecord(f"nsmc/en{i}", "x" * 300, "en", "nsmc") for i in range(50)]
    docs += [
        CorpusRecord("docs/same", "first " * 50, "en", "docs"),
        CorpusRecord("docs/same", "second " * 50, "en", "docs"),
    ]
    stats = DataStats()
    mixed, report = mix_documents(_cfg(max_repeat=2.0), docs, stats, seed=1)
    assert (
        report.epochs["nsmc (en)"]
        == report.epochs["docs"]
        > report.epochs["nsmc (ko)"]
        == report.epochs["kowiki"]
    )
    for group, target in report.target.items():
        assert abs(report.achieved[group] - target) < 0.01, (group, report.achieved)
    assert sum(stats.kept.values()) - sum(stats.repeated.values()) + sum(stats.dropped.values()) == len(docs)
    assert {d.text[:6] for d in mixed if d.id == "docs/same"} == {"first ", "second"}


def test_workers_files_and_buckets_do_not_change_the_corpus(tmp_path, monkeypatch):
    """The mix on 3 files and 2 workers, through many small buckets each written in several zstd frames,
    equals the one-file, one-worker, one-bucket mix: corpus, report and ledger; no scratch is left."""
    docs = _docs()
    docs += [CorpusRecord("docs/same", f"text {i} " * 40, "en", "docs") for i in range(6)]  # one shared key
    one_stats, many_stats = DataStats(), DataStats()
    one, one_report = mix_documents(_cfg(max_repeat=1.0), docs, one_stats, seed=3, out=tmp_path / "a.jsonl")
    monkeypatch.setattr(mix_run, "BUCKET_BYTES", 20_000)
    monkeypatch.setattr(ranks, "FLUSH_BYTES", 5_000)
    many, many_report = mix_documents(
        _cfg(max_repeat=1.0, workers=2), docs, many_stats, seed=3, out=tmp_path / "b.jsonl", files=3
    )
    assert [d.to_json() for d in one] == [d.to_json() for d in many]
    assert one_report == many_report and one_stats.to_dict() == many_stats.to_dict()
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert [p.name for p in (tmp_path / "mix.work").iterdir()] == ["logs"] and not list(
        tmp_path.glob("*.tmp")
    )


def test_the_mix_reads_its_input_twice_and_holds_no_text(tmp_path, monkeypatch):
    """Two passes over each input file, whatever its size: the first keeps arrays, the second writes."""
    docs = _docs()
    passes: list[tuple[str, int | None]] = []
    real = ranks.read_datatrove_file

    def reading(path, wanted=None):
        passes.append((path.name, None if wanted is None else len(wanted)))
        return real(path, wanted)

    monkeypatch.setattr(ranks, "read_datatrove_file", reading)
    mix_run.run_mix([_shards(docs, tmp_path / "in", 2)], tmp_path / "corpus.jsonl", _cfg(), 1, DataStats())
    half = len(docs) // 2
    assert passes == [
        ("00000.jsonl", None),
        ("00001.jsonl", None),
        ("00000.jsonl", half),
        ("00001.jsonl", half),
    ]


def test_gecko_data_mix_runs_on_the_workers_it_is_given(tmp_path):
    """`gecko data mix --workers 2` sorts on two ranks (one log each) into the corpus one worker writes."""
    folder = _shards(_docs(), tmp_path / "in", 2)
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}" / "corpus.jsonl"
        assert cli.main(["data", "mix", "--in", str(folder), "--out", str(out), "--workers", workers]) == 0
        logs = sorted(p.name for p in (out.parent / "mix.work" / "logs" / "sort" / "logs").iterdir())
        assert logs == [f"task_{r:05d}.log" for r in range(int(workers))]
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise runs."""


def test_a_killed_mix_reruns_to_the_same_corpus_and_retried_ranks_write_once(tmp_path, monkeypatch):
    """Killed while sorting (some buckets written into the corpus and their scratch removed), the mix reruns
    from its input to the same corpus. A rank the executor runs again (Ray retries a failed task) neither
    adds records twice nor loses the buckets an earlier attempt wrote."""
    docs = _docs()
    cfg = _cfg(max_repeat=1.0)
    ref, ref_report = mix_documents(cfg, docs, DataStats(), seed=5, out=tmp_path / "ref" / "corpus.jsonl")
    monkeypatch.setattr(mix_run, "BUCKET_BYTES", 30_000)
    folder = _shards(docs, tmp_path / "in")
    out = tmp_path / "out" / "corpus.jsonl"
    real_write, writes = ranks._write_at, []

    def killed_on_third_write(*args):
        writes.append(1)
        if len(writes) == 3:
            raise Killed
        return real_write(*args)

    with monkeypatch.context() as m:
        m.setattr(ranks, "_write_at", killed_on_third_write)
        with pytest.raises(Killed):
            mix_run.run_mix([folder], out, cfg, 5, DataStats())
    assert (out.parent / "mix.work").exists() and not out.exists()
    for step in (ranks.MixBuckets, ranks.MixSort):  # every rank runs twice
        real_run = step.run

        def twice(self, data, rank=0, world_size=1, real_run=real_run):
            list(real_run(self, data, rank, world_size))
            return real_run(self, data, rank, world_size)

        monkeypatch.setattr(step, "run", twice)
    report = mix_run.run_mix([folder], out, cfg, 5, DataStats())
    assert out.read_bytes() == (tmp_path / "ref" / "corpus.jsonl").read_bytes() and report == ref_report
    assert [p.name for p in (out.parent / "mix.work").iterdir()] == ["logs"]
    assert not (out.parent / "corpus.jsonl.tmp").exists()


def test_token_counts_are_the_per_document_estimate():
    """The scan's vectorized estimate rounds as estimate_tokens does, halves to even included."""
    cfg = DataConfig()
    nbytes = np.array([1, 2, 6, 10, 14, 300, 1_000_003, 7])
    lang = np.array([0, 2, 2, 2, 2, 0, 1, 1])
    langs = ["ko", "en", "other"]
    expected = [choice.tokens_of(int(n), langs[g], cfg.bytes_per_token) for n, g in zip(nbytes, lang)]
    assert choice.token_counts(nbytes, lang, langs, cfg.bytes_per_token).tolist() == expected


def test_corpus_lines_as_bytes_are_json_dumps_for_every_character():
    """to_json_bytes (orjson's strings) is json.dumps(ensure_ascii=False): all of Unicode but surrogates,
    meta with floats and nesting, no meta, and a record whose fields are not strings."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000]
    texts = ["".join(chars[i : i + 4096]) for i in range(0, len(chars), 4096)]
    meta = {"where": 'a"b', "order": [0, 12], "score": 0.1 + 0.2, "big": 1e300, "n": None, "ok": True}
    records = [CorpusRecord(f"id{i}", t, "ko", "src\n", meta if i % 2 else {}) for i, t in enumerate(texts)]
    records.append(CorpusRecord(7, "text", "en", "src", {"x": [1.5, {"y": "é"}]}))  # type: ignore[arg-type]
    for r in records:
        record = {"id": r.id, "text": r.text, "lang": r.lang, "source": r.source} | (
            {"meta": r.meta} if r.meta else {}
        )
        assert r.to_json_bytes() == json.dumps(record, ensure_ascii=False).encode("utf-8")


def _shard(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    return path


def _line(i: int, **meta: object) -> bytes:
    record = {"text": f'text {i}\n"q"', "id": f"d/{i}", "metadata": {"lang": "en", "source": "d", **meta}}
    return json.dumps(record).encode()


def test_datatrove_reading_is_json_records_and_skips_what_is_not_wanted(tmp_path):
    """orjson where it agrees with json; json_records from the first line it cannot vouch for (an integer
    past 64 bits, NaN, a blank line), so those read as before; unwanted documents come as None."""
    plain = [_line(i, score=0.5, order=[0, i]) for i in range(6)]
    _shard(tmp_path / "a" / "00000.jsonl.zst", plain)
    _shard(
        tmp_path / "a" / "00001.jsonl.zst",
        [*plain[:2], _line(9, big=2**70), b"", plain[3], _line(10, x=float("nan"))],
    )
    _shard(tmp_path / "b" / "00000.jsonl.zst", [_line(11, neg=-(2**64)), *plain[:2]])
    folders = [tmp_path / "a", tmp_path / "b"]
    expected = [
        CorpusRecord(
            r["id"], r["text"], r["metadata"].pop("lang"), r["metadata"].pop("source"), r["metadata"]
        )
        for folder in folders
        for path in sorted(folder.glob("*.jsonl*"))
        for _, r in json_records(path)
    ]
    files = corpus.datatrove_files([*folders, tmp_path / "missing"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a/00000.jsonl.zst",
        "a/00001.jsonl.zst",
        "b/00000.jsonl.zst",
    ]
    got = [d for f in files for d in corpus.read_datatrove_file(f)]
    assert [d.to_json() for d in got] == [d.to_json() for d in expected]  # type: ignore[union-attr]
    assert got[8].meta["big"] == 2**70 and type(got[11].meta["neg"]) is int  # type: ignore[union-attr]
    wanted = np.arange(len(expected)) % 3 == 0
    some = [
        d for f, part in zip(files, np.split(wanted, [6, 12])) for d in corpus.read_datatrove_file(f, part)
    ]
    assert len(some) == len(expected) and some[1] is None  # a shard read by orjson skips what is not wanted
    for want, doc, full in zip(wanted, some, got):
        assert (doc is None and not want) or doc.to_json() == full.to_json()  # type: ignore[union-attr]


def test_a_broken_shard_fails_as_json_records_does(tmp_path):
    path = _shard(tmp_path / "a" / "00000.jsonl.zst", [_line(i) for i in range(50)])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError) as expected:
        list(json_records(path))
    with pytest.raises(DataError) as got:
        list(corpus.read_datatrove_file(path))
    assert str(got.value) == str(expected.value)
