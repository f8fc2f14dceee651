"""Mixing by estimated tokens: target shares within 1 point, source weights, capped repeats, determinism."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest

from gecko.config import AlignConfig, DataConfig, ParallelSourceConfig
from gecko.data import corpus
from gecko.data.corpus import CorpusRecord
from gecko.data.stats import DataStats
from gecko.data.steps import mix
from gecko.data.steps.mix import MixReport, estimate_tokens
from gecko.errors import DataError


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


def mix_documents(
    cfg: DataConfig, docs: list[CorpusRecord], stats: DataStats, seed: int, out: Path | None = None
) -> tuple[list[CorpusRecord], MixReport]:
    """The mix over an in-memory list, its corpus read back."""
    out = out or Path(tempfile.mkdtemp()) / "corpus.jsonl"
    report = mix.mix_documents(cfg, lambda: docs, out, stats, seed)
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


def test_many_scratch_buckets_give_the_same_corpus_and_ledger(tmp_path, monkeypatch):
    """The external sort: a corpus written through many small buckets (each flushed in several zstd frames)
    equals the one-bucket corpus, and the scratch folder is gone afterwards."""
    docs = _docs()
    docs += [CorpusRecord("docs/same", f"text {i} " * 40, "en", "docs") for i in range(6)]  # one shared key
    one_stats, many_stats = DataStats(), DataStats()
    one, one_report = mix_documents(_cfg(max_repeat=1.0), docs, one_stats, seed=3, out=tmp_path / "a.jsonl")
    monkeypatch.setattr(mix, "BUCKET_BYTES", 20_000)
    monkeypatch.setattr(mix, "FLUSH_BYTES", 5_000)
    many, many_report = mix_documents(
        _cfg(max_repeat=1.0), docs, many_stats, seed=3, out=tmp_path / "b.jsonl"
    )
    assert [d.to_json() for d in one] == [d.to_json() for d in many]
    assert one_report == many_report and one_stats.to_dict() == many_stats.to_dict()
    assert not (tmp_path / "mix.work").exists()


def test_the_mix_reads_its_input_twice_and_holds_no_text(tmp_path):
    """Two passes over the input, whatever its size: the first keeps arrays, the second writes."""
    docs = _docs()
    passes = []

    def documents():
        passes.append(1)
        return iter(docs)

    mix.mix_documents(_cfg(), documents, tmp_path / "corpus.jsonl", DataStats(), seed=1)
    assert len(passes) == 2
