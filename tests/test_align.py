"""Alignment documents: pairs read, checked, deduplicated, templated in both directions."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, shared_or_skip
from gecko.config import AlignConfig, ParallelSourceConfig
from gecko.data.steps.align import TEMPLATES, AlignStats, check_pair, clean_pairs, read_pairs, run_align
from gecko.errors import DataError


def _tarball(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bad_pairs_are_dropped_with_a_reason():
    cfg = AlignConfig()
    assert check_pair("Hello there, friend.", "안녕하세요, 친구.", cfg) is None
    assert check_pair("Hello there, my dear old friend from school.", "안녕.", cfg) == "length_ratio"
    assert check_pair("Hello there.", "Hello there.", cfg) == "ko_not_korean"
    assert check_pair("안녕하세요 friend.", "안녕하세요 친구.", cfg) == "en_not_english"


def test_tsv_with_and_without_header_and_pair_dedup(tmp_path):
    (tmp_path / "a.tsv").write_text(
        "en\tko\tattribution\nI am hungry.\t배고파요.\tx\nI am hungry.\t배고파요.\tx\n"
        "Good night.\t잘 자.\tx\n",
        encoding="utf-8",
    )
    (tmp_path / "b.tsv").write_text(
        "Good  night.\t잘 자.\tx\nIt is raining.\t비가 와요.\tx\nNo Korean\there\tx\n", encoding="utf-8"
    )
    cfg = AlignConfig(
        sources=(
            ParallelSourceConfig("a", str(tmp_path / "a.tsv")),
            ParallelSourceConfig("b", str(tmp_path / "b.tsv")),
        )
    )
    stats = AlignStats()
    pairs = clean_pairs(cfg, stats)
    assert pairs == {
        "a": [("I am hungry.", "배고파요."), ("Good night.", "잘 자.")],
        "b": [("It is raining.", "비가 와요.")],
    }
    assert stats.dropped == {
        ("a", "duplicate_pair"): 1,
        ("b", "duplicate_pair"): 1,
        ("b", "ko_not_korean"): 1,
    }


def test_tarball_of_line_aligned_members_is_read_without_extracting(tmp_path):
    ko = "서울은 한국의 수도이다.\n비가 온다.\nHello\n서울은 한국의 수도이다.\n"
    en = "Seoul is the capital of Korea.\nIt is raining.\nHello\nSeoul is the capital of Korea.\n"
    tar = _tarball(tmp_path / "news.dev.tar.gz", {"news.dev.ko": ko, "news.dev.en": en, "README": "x"})
    cfg = AlignConfig(sources=(ParallelSourceConfig("news", str(tar), "tar"),))
    stats = AlignStats()
    assert clean_pairs(cfg, stats) == {
        "news": [
            ("Seoul is the capital of Korea.", "서울은 한국의 수도이다."),
            ("It is raining.", "비가 온다."),
        ]
    }
    assert stats.read["news"] == 4
    assert stats.dropped == {("news", "ko_not_korean"): 1, ("news", "duplicate_pair"): 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["news.dev.tar.gz"]  # nothing extracted


@pytest.mark.parametrize(
    "members, message",
    [
        ({"a.ko": "가\n나\n", "a.en": "A\n"}, "a.ko: Korean and English sides differ in length after line 1"),
        ({"a.ko": "가\n"}, "member a.ko has no English side a.en"),
        ({"a.en": "A\n"}, "no \\*.ko member"),
    ],
)
def test_bad_tarball_is_an_error_naming_the_member(tmp_path, members, message):
    tar = _tarball(tmp_path / "bad.tar.gz", members)
    with pytest.raises(DataError, match=message):
        list(read_pairs(ParallelSourceConfig("bad", str(tar), "tar")))
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="junk.tar.gz: not a readable tar archive"):
        list(read_pairs(ParallelSourceConfig("junk", str(tmp_path / "junk.tar.gz"), "tar")))


def test_documents_cover_both_directions_with_templates(tmp_path):
    cfg = AlignConfig(
        sources=(ParallelSourceConfig("tatoeba", str(REPO / "data/sample/parallel/tatoeba_ko_en.tsv")),),
        pairs_per_doc=4,
    )
    stats = run_align(cfg, tmp_path / "align", seed=1)
    docs = [json.loads(line) for line in (tmp_path / "align" / "00000.jsonl").open(encoding="utf-8")]
    assert {d["metadata"]["direction"] for d in docs} == {"en-ko", "ko-en"}
    assert sum(d["metadata"]["pairs"] for d in docs) == stats.kept["tatoeba"] > 500
    used = {t for d in docs for t in TEMPLATES[d["metadata"]["direction"]] if t.split("{")[0] in d["text"]}
    assert len(used) >= 4
    assert all(d["metadata"]["lang"] == "ko" and d["metadata"]["source"] == "align/tatoeba" for d in docs)
    again = run_align(cfg, tmp_path / "again", seed=1)
    assert again.to_dict() == stats.to_dict()
    assert (tmp_path / "align" / "00000.jsonl").read_bytes() == (
        tmp_path / "again" / "00000.jsonl"
    ).read_bytes()


def test_shared_parallel_corpora(tmp_path):
    lo = shared_or_skip("parallel", "libreoffice_help", "lo_help_ko_en_pairs.jsonl")
    kpc = shared_or_skip("parallel", "korean_parallel_corpora")
    news = [
        ParallelSourceConfig(
            f"news_{split}", str(kpc / f"korean-english-news-v1/korean-english-park.{split}.tar.gz"), "tar"
        )
        for split in ("dev", "test")
    ]
    jhe = kpc / "korean-english-jhe" / "jhe-koen-dev.ko"
    cfg = AlignConfig(
        sources=(
            ParallelSourceConfig("libreoffice", str(lo), "jsonl"),
            *news,
            ParallelSourceConfig("jhe", str(jhe), "lines", en_path=str(jhe.with_suffix(".en"))),
        )
    )
    stats = AlignStats()
    pairs = clean_pairs(cfg, stats)
    assert len(pairs["libreoffice"]) > 10_000 and len(pairs["jhe"]) > 500
    assert len(pairs["news_dev"]) > 900 and len(pairs["news_test"]) > 1800
    assert stats.dropped[("libreoffice", "duplicate_pair")] > 0  # help pages repeat headings
