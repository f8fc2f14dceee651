"""Source formats the tokenizer config needs: JSON arrays (KoSBi, SQuARe), headerless `text|label` lines, and
`{stdlib}` paths that resolve to the running Python's standard library instead of one machine's install."""

import json
import sysconfig
from pathlib import Path

import pytest

from gecko.config import SourceConfig, load_config
from gecko.data.readers import Quarantine, iter_records
from gecko.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]


def read_all(src: SourceConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(where, text) of decoded records and (where, reason) of quarantined ones."""
    docs, dropped = [], []
    for where, decode in iter_records(src, 1 << 20):
        try:
            docs.append((where, decode()[1]))
        except Quarantine as q:
            dropped.append((where, q.reason))
    return docs, dropped


def test_json_array_one_document_per_object(tmp_path):
    f = tmp_path / "kosbi.json"
    f.write_text(json.dumps([{"context": "요즘 취업하기가 너무 힘들다.", "sentence": "a"}, "not an object",
                             {"sentence": "b"}], ensure_ascii=False, indent=4), encoding="utf-8")
    docs, dropped = read_all(SourceConfig("kosbi", str(f), "ko", format="json", text_field="context"))
    assert docs == [(f"{f}:item 0", "요즘 취업하기가 너무 힘들다.")]
    assert dropped == [(f"{f}:item 1", "not_an_object"), (f"{f}:item 2", "missing_field_context")]


def test_malformed_json_array_keeps_items_before_the_fault_at_its_line(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('[\n  {"text": "ok"},\n  {"text": \n]\n', encoding="utf-8")
    docs, dropped = read_all(SourceConfig("bad", str(tmp_path), "ko", format="json"))
    assert docs == [(f"{f}:item 0", "ok")]  # the items before the fault are kept
    assert dropped == [(f"{f}:4", "malformed_json")]


def test_headerless_pipe_lines_with_column_names(tmp_path):
    f = tmp_path / "dataset.txt"
    f.write_text('집에 롱 패딩만 "세 개"다 ㅋㅋ|0\r\n기사 제목 | 신문사|1\n좌배 까는건 ㅇㅂ|1\n', encoding="utf-8")
    src = SourceConfig("community", str(f), "ko", format="tsv", delimiter="|", columns=("text", "label"))
    docs, dropped = read_all(src)
    assert [t for _, t in docs] == ['집에 롱 패딩만 "세 개"다 ㅋㅋ', "좌배 까는건 ㅇㅂ"]  # tsv: quotes are text
    assert dropped == [(f"{f}:2", "extra_columns")]  # the delimiter inside the text: counted, not guessed


def test_bad_delimiter_is_a_clear_error(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("text\na\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.sources\[x\]: delimiter must be one character"):
        read_all(SourceConfig("x", str(f), "ko", format="tsv", delimiter="||"))


def test_stdlib_placeholder_resolves_to_this_python():
    src = SourceConfig("stdlib", "{stdlib}", "code", format="code")
    assert src.path == sysconfig.get_paths()["stdlib"]
    assert (Path(src.path) / "os.py").is_file()


def test_unknown_placeholder_names_config_and_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  sources:\n    - {name: s, path: '{stdlibb}/x', lang: code, format: code}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: data\.sources\[0\].*unknown placeholder \{stdlibb\}"):
        load_config(cfg)


def test_tokenizer_config_has_no_machine_specific_path():
    cfg = load_config(REPO / "configs" / "tokenizer.yaml")
    (stdlib,) = [s for s in cfg.data.sources if s.name == "stdlib"]
    assert stdlib.path == sysconfig.get_paths()["stdlib"]
    assert "{stdlib}" in (REPO / "configs" / "tokenizer.yaml").read_text()
