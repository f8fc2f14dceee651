"""Data sources named the way users hold them (gecko.io.sources): local globs, fsspec URLs (memory://,
file://) and `hf://datasets/ORG/NAME[/SPLIT]` read from a locally built Hugging Face cache offline; the
readers' guarantees hold for all of them: every record accounted for, bad input quarantined under its
`file:line` (a URL for remote files), problems found before any work are one line."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from gecko.config import DataConfig, SourceConfig
from gecko.data.io.readers import check_source
from gecko.data.pipeline import run_clean
from gecko.errors import DataError
from gecko.eval.data import read_table
from gecko.eval.taskfile import load_task_file
from gecko.io import sources
from helpers import read_records

KO_DOC = "대한민국은 동아시아의 한반도에 위치한 민주공화국이다. 수도는 서울특별시이며 인구는 약 5천만 명이다."


def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


# ── local globs and file:// ─────────────────────────────────────────────────────────────────────────────


def test_glob_reads_matching_files_in_order_and_quarantines_by_file_and_line(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "part-1.jsonl").write_bytes(_jsonl([{"text": "one"}, "not an object"]))
    (tmp_path / "part-0.jsonl.gz").write_bytes(gzip.compress(_jsonl([{"text": "zero"}])))
    (tmp_path / "notes.txt").write_text("not matched")
    docs, dropped = read_records(SourceConfig("g", f"{tmp_path}/**/part-*.jsonl*", "ko"))
    assert [t for _, t in docs] == ["one", "zero"]  # sorted paths: a/part-1.jsonl before part-0.jsonl.gz
    assert dropped == [(f"{tmp_path}/a/part-1.jsonl:2", "not_an_object")]
    assert read_records(SourceConfig("u", f"file://{tmp_path}/a/part-1.jsonl", "ko"))[0][0][1] == "one"


def test_code_glob_keeps_paths_below_the_glob_base(tmp_path):
    (tmp_path / "pkg" / "vendor").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (tmp_path / "pkg" / "vendor" / "dep.py").write_text("x = 1\n")
    src = SourceConfig("c", f"{tmp_path}/pkg/**/*.py", "code", format="code")
    docs, dropped = read_records(src)
    assert [w for w, _ in docs] == [f"{tmp_path}/pkg/mod.py"]
    assert dropped == [(f"{tmp_path}/pkg/vendor/dep.py", "vendored")]  # vendor/ seen below the glob base


def test_a_glob_matching_nothing_is_one_line_before_any_work(tmp_path):
    cfg = DataConfig(sources=(SourceConfig("ko", f"{tmp_path}/*.jsonl", "ko"),), mix={"ko": 1.0})
    with pytest.raises(DataError, match=r"data.sources\[ko\]: .*\*.jsonl does not exist"):
        run_clean(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ── fsspec URLs ─────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def memfs():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = "/gecko-test-corpus"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_urls_read_like_local_files(memfs, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    fs, root = memfs
    fs.pipe(f"{root}/ko/a.jsonl", _jsonl([{"id": "x", "text": KO_DOC}, {"title": "no text"}]) + b"{broken\n")
    fs.pipe(f"{root}/ko/b.jsonl.gz", gzip.compress(_jsonl([{"text": "압축된 문서"}]))[:-8])  # cut short
    local = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["parquet row"], "id": ["p1"]}), local)
    fs.pipe(f"{root}/t.parquet", local.read_bytes())

    docs, dropped = read_records(SourceConfig("m", f"memory://{root}/ko", "ko"))
    assert [t for _, t in docs] == [KO_DOC, "압축된 문서"]
    assert dropped == [
        (f"memory://{root}/ko/a.jsonl:2", "missing_field_text"),
        (f"memory://{root}/ko/a.jsonl:3", "malformed_json"),
        (f"memory://{root}/ko/b.jsonl.gz:2", "truncated_file"),
    ]
    assert read_records(SourceConfig("g", f"memory://{root}/ko/*.jsonl", "ko"))[0] == [
        (f"memory://{root}/ko/a.jsonl:1", KO_DOC)
    ]
    assert read_records(SourceConfig("p", f"memory://{root}/t.parquet", "en", format="parquet"))[0] == [
        (f"memory://{root}/t.parquet:row 1", "parquet row")
    ]
    with pytest.raises(DataError, match="does not exist"):
        check_source(SourceConfig("n", f"memory://{root}/nothing/*.jsonl", "ko"))


def test_clean_phase_accounts_for_every_remote_record(memfs, tmp_path):
    fs, root = memfs
    fs.pipe(
        f"{root}/ko.jsonl", _jsonl([{"id": f"d{i}", "text": f"{KO_DOC} {i}번"} for i in range(4)] + [[1, 2]])
    )
    cfg = DataConfig(sources=(SourceConfig("ko", f"memory://{root}/ko.jsonl", "ko"),), mix={"ko": 1.0})
    run_clean(cfg, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "clean_stats.json").read_text())
    assert report["read_total"] == 5 == sum(report["kept"].values()) + report["dropped_total"]
    quarantined = [
        json.loads(line)
        for f in sorted((tmp_path / "out" / "quarantine").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert [(q["where"], q["reason"]) for q in quarantined] == [
        (f"memory://{root}/ko.jsonl:5", "not_an_object")
    ]
    before = sources.digest(f"memory://{root}/ko.jsonl")
    fs.pipe(f"{root}/ko.jsonl", _jsonl([{"text": KO_DOC}]))
    assert (
        sources.digest(f"memory://{root}/ko.jsonl") != before
    )  # an edited remote file invalidates the data stage


def test_a_url_without_its_filesystem_package_is_one_line():
    pytest.importorskip("fsspec")
    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    with pytest.raises(DataError, match=r"^s3://bucket/corpus/\*.jsonl: .*s3fs"):
        check_source(SourceConfig("s3", "s3://bucket/corpus/*.jsonl", "en"))


# ── hf://datasets/ORG/NAME[/SPLIT] ──────────────────────────────────────────────────────────────────────


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """`gecko-test/tiny-ko` in a private Hugging Face datasets cache, laid out as a download leaves it
    (ORG___NAME/CONFIG/VERSION/HASH/NAME-SPLIT.arrow), built from local JSON lines; offline mode on."""
    datasets = pytest.importorskip("datasets")
    from datasets.packaged_modules.json.json import Json

    rows = {
        "train": [
            {"id": "a", "text": KO_DOC},
            {"id": "b", "text": "두 번째 문서입니다."},
            {"id": "c", "text": None},
        ],
        "test": [{"id": "t", "text": "시험 분할"}],
    }
    files = {}
    for split, records in rows.items():
        files[split] = str(tmp_path / f"{split}.jsonl")
        Path(files[split]).write_bytes(_jsonl(records))
    cache = tmp_path / "hf-cache"
    builder = Json(
        cache_dir=str(cache / "build"),
        dataset_name="tiny-ko",
        config_name="default",
        hash="0123abcd",
        data_files=files,
    )
    builder.download_and_prepare()
    (cache / "gecko-test___tiny-ko").mkdir()
    shutil.move(
        next((cache / "build" / "tiny-ko").glob("default-*")), cache / "gecko-test___tiny-ko" / "default"
    )
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    sources.hf_dataset.cache_clear()
    yield cache
    sources.hf_dataset.cache_clear()


def test_hf_dataset_from_the_offline_cache(hf_cache):
    docs, dropped = read_records(SourceConfig("hf", "hf://datasets/gecko-test/tiny-ko", "ko"))
    assert docs == [
        ("hf://datasets/gecko-test/tiny-ko/train:row 1", KO_DOC),
        ("hf://datasets/gecko-test/tiny-ko/train:row 2", "두 번째 문서입니다."),
    ]
    assert dropped == [("hf://datasets/gecko-test/tiny-ko/train:row 3", "missing_field_text")]
    assert (
        read_records(SourceConfig("hf", "hf://datasets/gecko-test/tiny-ko/test", "ko"))[0][0][1]
        == "시험 분할"
    )
    digest = sources.digest("hf://datasets/gecko-test/tiny-ko")
    assert digest and all(str(hf_cache) in f for f, _ in digest)


def test_hf_source_through_the_clean_phase(hf_cache, tmp_path):
    cfg = DataConfig(sources=(SourceConfig("hf", "hf://datasets/gecko-test/tiny-ko", "ko"),), mix={"ko": 1.0})
    run_clean(cfg, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "clean_stats.json").read_text())
    assert report["read_total"] == 3 == sum(report["kept"].values()) + report["dropped_total"]


@pytest.mark.parametrize(
    "path, message",
    [
        ("hf://datasets/gecko-test/absent", r"hf://datasets/gecko-test/absent: cannot load the dataset: "),
        (
            "hf://datasets/gecko-test/tiny-ko/validation",
            r"tiny-ko/validation: cannot load the dataset: .*validation",
        ),
        ("hf://datasets/just-a-name", r"expected hf://datasets/ORG/NAME"),
    ],
)
def test_hf_problems_are_one_line_before_any_work(hf_cache, path, message):
    with pytest.raises(DataError, match=message) as e:
        check_source(SourceConfig("hf", path, "ko"))
    assert "\n" not in str(e.value)


def test_hf_file_paths_and_globs_go_through_fsspec(monkeypatch):
    """`hf://datasets/ORG/NAME/data/*.parquet` names files in the repository (huggingface_hub's HfFileSystem);
    offline, listing them is one line."""
    pytest.importorskip("huggingface_hub")
    assert sources.is_hf("hf://datasets/org/name/test") and not sources.is_remote(
        "hf://datasets/org/name/test"
    )
    path = "hf://datasets/gecko-test/tiny-ko/data/*.parquet"
    assert sources.is_remote(path) and not sources.is_hf(path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(
        DataError, match=r"^hf://datasets/gecko-test/tiny-ko/data/\*.parquet: cannot list: .*offline"
    ) as e:
        check_source(SourceConfig("h", path, "en", format="parquet"))
    assert "\n" not in str(e.value)


def test_hf_missing_text_column_is_named(hf_cache):
    with pytest.raises(
        DataError, match=r"no column 'body' in \['id', 'text'\] \(data.sources\[hf\].text_field\)"
    ):
        check_source(SourceConfig("hf", "hf://datasets/gecko-test/tiny-ko", "ko", text_field="body"))


# ── eval task files ─────────────────────────────────────────────────────────────────────────────────────

QUIZ = [
    {"question": "대한민국의 수도는?", "choices": ["서울", "부산"], "answer": 0},
    {"question": "2 + 2 = ?", "choices": ["3", "4"], "answer": 1},
]


def test_task_file_data_from_a_url_and_a_glob(memfs, tmp_path):
    fs, root = memfs
    fs.pipe(f"{root}/quiz/test.jsonl", _jsonl(QUIZ))
    task = tmp_path / "quiz.yaml"
    task.write_text(f"name: quiz\ndata: memory://{root}/quiz/test.jsonl\n", encoding="utf-8")
    spec = load_task_file(task).spec
    assert [it.answer for it in spec.test[""]] == [0, 1]
    assert spec.test[""][0].where == f"memory://{root}/quiz/test.jsonl:1"
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "part-0.jsonl").write_bytes(_jsonl(QUIZ[:1]))
    (tmp_path / "local" / "part-1.jsonl").write_bytes(_jsonl(QUIZ[1:]))
    assert [w for w, _ in read_table(f"{tmp_path}/local/part-*.jsonl")] == [
        f"{tmp_path}/local/part-0.jsonl:1",
        f"{tmp_path}/local/part-1.jsonl:1",
    ]


def test_task_file_data_from_an_hf_dataset(hf_cache, tmp_path):
    rows = read_table("hf://datasets/gecko-test/tiny-ko/test")
    assert rows == [("hf://datasets/gecko-test/tiny-ko/test:row 1", {"id": "t", "text": "시험 분할"})]
