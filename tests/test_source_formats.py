"""Source formats the tokenizer config needs: JSON arrays (KoSBi, SQuARe), headerless `text|label` lines, and
`{stdlib}` paths that resolve to the running Python's standard library instead of one machine's install."""

import json
import sysconfig
from pathlib import Path

import pytest

from gecko.config import SourceConfig, load_config
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import iter_records
from gecko.errors import ConfigError, DataError
from helpers import read_records

REPO = Path(__file__).resolve().parents[1]


def test_json_array_one_document_per_object(tmp_path):
    f = tmp_path / "kosbi.json"
    f.write_text(
        json.dumps(
            [
                {"context": "요즘 취업하기가 너무 힘들다.", "sentence": "a"},
                "not an object",
                {"sentence": "b"},
            ],
            ensure_ascii=False,
            indent=4,
        ),
        encoding="utf-8",
    )
    docs, dropped = read_records(SourceConfig("kosbi", str(f), "ko", format="json", text_field="context"))
    assert docs == [(f"{f}:item 0", "요즘 취업하기가 너무 힘들다.")]
    assert dropped == [(f"{f}:item 1", "not_an_object"), (f"{f}:item 2", "missing_field_context")]


def test_jsonl_lines_read_as_json_reads_them(tmp_path):
    """Lines orjson refuses or could read otherwise (an id beyond 64 bits, NaN, a lone surrogate escape, raw
    control characters, invalid bytes) come out as json gives them, mended and quarantined the same way."""
    f = tmp_path / "edge.jsonl"
    f.write_bytes(
        b'{"id": 123456789012345678901234567890, "text": "big"}\n'
        b'{"id": 7, "text": "nan", "score": NaN}\n'
        b'{"id": "s", "text": "lone \\ud800"}\n'
        b'{"id": 1.5, "text": "raw\tcontrol"}\n'
        b'{"id": "r", "text": "bad \xff byte"}\n'
        b'{"id": "m", "text": }\n'
        b'{"id": "t", "text": 1e400}\n'
    )
    src = SourceConfig("edge", str(f), "ko")
    decoded = []
    for where, decode in iter_records(src, 1 << 20):
        try:
            doc_id, text, meta = decode()
            decoded.append((doc_id, text, meta.get("repaired")))
        except Quarantine as q:
            decoded.append((where, q.reason, q.detail))
    assert decoded == [
        ("123456789012345678901234567890", "big", None),
        ("7", "nan", None),
        ("s", "lone \ud800", None),
        ("1.5", "raw\tcontrol", None),
        ("r", "bad \ufffd byte", {"invalid_utf8": 1}),
        (f"{f}:6", "malformed_json", "Expecting value at column 21"),
        (f"{f}:7", "missing_field_text", "'text': a float; fields ['id', 'text']"),
    ]


def test_malformed_json_array_keeps_items_before_the_fault_at_its_line(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('[\n  {"text": "ok"},\n  {"text": \n]\n', encoding="utf-8")
    docs, dropped = read_records(SourceConfig("bad", str(tmp_path), "ko", format="json"))
    assert docs == [(f"{f}:item 0", "ok")]  # the items before the fault are kept
    assert dropped == [(f"{f}:4", "malformed_json")]


def test_headerless_pipe_lines_with_column_names(tmp_path):
    f = tmp_path / "dataset.txt"
    f.write_text(
        '집에 롱 패딩만 "세 개"다 ㅋㅋ|0\r\n기사 제목 | 신문사|1\n좌배 까는건 ㅇㅂ|1\n', encoding="utf-8"
    )
    src = SourceConfig("community", str(f), "ko", format="tsv", delimiter="|", columns=("text", "label"))
    docs, dropped = read_records(src)
    assert [t for _, t in docs] == [
        '집에 롱 패딩만 "세 개"다 ㅋㅋ',
        "좌배 까는건 ㅇㅂ",
    ]  # tsv: quotes are text
    assert dropped == [(f"{f}:2", "extra_columns")]  # the delimiter inside the text: counted, not guessed


def test_bad_delimiter_is_a_clear_error(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("text\na\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.sources\[x\]: delimiter must be one character"):
        read_records(SourceConfig("x", str(f), "ko", format="tsv", delimiter="||"))


def test_stdlib_placeholder_resolves_to_this_python():
    src = SourceConfig("stdlib", "{stdlib}", "code", format="code")
    assert src.path == sysconfig.get_paths()["stdlib"]
    assert (Path(src.path) / "os.py").is_file()


def test_unknown_placeholder_names_config_and_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  sources:\n    - {name: s, path: '{stdlibb}/x', lang: code, format: code}\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml:\d+: data\.sources\[0\].*unknown placeholder \{stdlibb\}"
    ):
        load_config(cfg)


def test_tokenizer_config_has_no_machine_specific_path():
    cfg = load_config(REPO / "configs" / "tokenizer.yaml")
    (stdlib,) = [s for s in cfg.data.sources if s.name == "stdlib"]
    assert stdlib.path == sysconfig.get_paths()["stdlib"]
    assert "{stdlib}" in (REPO / "configs" / "tokenizer.yaml").read_text()


def test_code_tarball_reads_like_the_unpacked_tree_and_a_cut_archive_keeps_what_came_before(tmp_path):
    import tarfile

    tree = tmp_path / "tree"
    files = {
        "a.py": "x = 1\n" * 400,
        "pkg/b.py": "def f():\n    return 2\n" * 400,
        "vendor/c.py": "y = 3\n",
        "notes.txt": "not code\n",
        "pkg/z.py": "".join(f"z{i} = {i * 7919 % 10007}\n" for i in range(4000)),
    }
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text, encoding="utf-8")
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(files):
            tar.add(tree / name, arcname=name)
    unpacked = read_records(SourceConfig("t", str(tree), "code", format="code"))
    packed = read_records(SourceConfig("t", str(archive), "code", format="code"))
    assert [w.split(":")[-1] for w, _ in packed[0]] == ["a.py", "pkg/b.py", "pkg/z.py"]
    assert [t for _, t in packed[0]] == [t for _, t in unpacked[0]]
    assert [r for _, r in packed[1]] == [r for _, r in unpacked[1]] == ["vendored"]

    archive.write_bytes(archive.read_bytes()[:-3000])  # cut inside pkg/z.py, the last and least compressible
    docs, dropped = read_records(SourceConfig("t", str(archive), "code", format="code"))
    assert [w.split(":")[-1] for w, _ in docs] == ["a.py", "pkg/b.py"]
    assert dropped[-1] == (str(archive), "unreadable_file")


def test_bundled_code_sample_is_an_archive_not_python_files_in_the_tree():
    assert (REPO / "data/sample/code/python.tar.gz").is_file()
    assert not list((REPO / "data").rglob("*.py"))  # linters, grep and IDE indexes must not walk it
