import json
import unicodedata

import pytest

from gecko.config import DataConfig, SourceConfig
from gecko.data.corpus import read_jsonl
from gecko.data.pipeline import run_data
from gecko.data.steps.mix.choice import plan_mix
from gecko.data.steps.normalize import normalize_text
from gecko.errors import DataError
from gecko.io import jsonl
from gecko.io.jsonl import json_records
from helpers import raw_sources_config


def test_nfc_and_control_characters():
    decomposed = unicodedata.normalize("NFD", "한국어")
    assert normalize_text(decomposed + "\x00\x07", is_code=False) == "한국어"


def test_code_whitespace_is_kept_exactly():
    code = "def f():\n\tif x:  \n        return 1\n\n\n\n"
    assert normalize_text(code, is_code=True) == code


def test_prose_whitespace_is_tidied():
    assert normalize_text("가나다   \n\n\n\n라마\r\n", is_code=False) == "가나다\n\n라마"


def test_every_document_is_accounted_for(raw_sources, tmp_path):
    out = tmp_path / "out"
    stats = run_data(raw_sources_config(raw_sources, max_repeat=0.0), out, seed=1)
    s = json.loads((out / "stats.json").read_text())
    assert s["read_total"] == 12 + 3 + 2
    dupes = sum(d["count"] for d in s["dropped"] if d["reason"] == "duplicate")
    assert dupes == 8  # each of the 4 Korean texts appears 3 times
    docs = list(read_jsonl(out / "corpus.jsonl"))
    assert len(docs) == sum(stats.kept.values())
    assert s["read_total"] == len(docs) - sum(s["repeated"].values()) + s["dropped_total"]
    assert "Dropped" in (out / "report.md").read_text()


def test_mix_hits_target_shares(raw_sources, tmp_path):
    out = tmp_path / "out"
    run_data(raw_sources_config(raw_sources, max_repeat=3.0), out, seed=1)
    docs = list(read_jsonl(out / "corpus.jsonl"))
    size = {lang: sum(len(d.text.encode()) for d in docs if d.lang == lang) for lang in ("ko", "en", "code")}
    total = sum(size.values())
    for lang, target in {"ko": 0.35, "en": 0.28, "code": 0.37}.items():
        assert abs(size[lang] / total - target) < 0.06  # documents are few and large here
    assert all(unicodedata.is_normalized("NFC", d.text) for d in docs)


def test_mix_is_deterministic(raw_sources, tmp_path):
    run_data(raw_sources_config(raw_sources), tmp_path / "a", seed=3)
    run_data(raw_sources_config(raw_sources), tmp_path / "b", seed=3)
    assert (tmp_path / "a" / "corpus.jsonl").read_bytes() == (tmp_path / "b" / "corpus.jsonl").read_bytes()


def test_plan_mix_scarcest_language_sets_the_size():
    plan = plan_mix(
        {"ko": 100, "en": 1000, "code": 1000}, {"ko": 0.5, "en": 0.25, "code": 0.25}, max_repeat=0
    )
    assert plan.budget == {"ko": 100, "en": 50, "code": 50}


def test_bad_lines_are_quarantined_with_file_and_line(raw_sources, tmp_path):
    bad = raw_sources / "ko.jsonl"
    with bad.open("ab") as f:
        f.write(
            b'{"id": "x", "text": "'
            + "옛 인코딩으로 저장된 문장".encode("cp949")
            + b'"}\n{not json}\n{"id": "y"}\n'
        )
        f.write(
            b'{"id": "z", "text": "' + "한글은 세종대왕이 창제한 문자이다".encode() + b'\xff."}\n'
        )  # mended, kept
    run_data(raw_sources_config(raw_sources), tmp_path / "out", seed=1)
    s = json.loads((tmp_path / "out" / "stats.json").read_text())
    reasons = {d["reason"]: d["count"] for d in s["dropped"] if d["step"] == "read"}
    assert reasons == {"invalid_utf8": 1, "malformed_json": 1, "missing_field_text": 1}
    assert any(e.endswith("ko.jsonl:13") for e in s["examples"]["read/invalid_utf8/ko"])
    assert s["repaired"] == {"read/invalid_utf8": 1}


def test_missing_source_is_a_clear_error(tmp_path):
    cfg = DataConfig(sources=(SourceConfig("ko", str(tmp_path / "nope.jsonl"), "ko"),), mix={"ko": 1.0})
    with pytest.raises(DataError, match="nope.jsonl does not exist"):
        run_data(cfg, tmp_path / "out", seed=1)


def test_missing_column_names_the_file(raw_sources, tmp_path):
    cfg = DataConfig(
        sources=(SourceConfig("en", str(raw_sources / "en.tsv"), "en", format="tsv", text_field="body"),),
        mix={"en": 1.0},
    )
    with pytest.raises(DataError, match=r"en.tsv:1: no column 'body'"):
        run_data(cfg, tmp_path / "out", seed=1)


def test_json_records_name_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    for body, error in (
        (b'{"a": 1}\n\n[1]\n', r"r.jsonl:3: expected a JSON object, found list"),
        (b'{"a": 1}\n{"a": \n', r"r.jsonl:2: malformed JSON: Expecting value"),
        (b'{"a": 1}\n{"a": "\xff"}\n', r"r.jsonl:2: not UTF-8"),
    ):
        path.write_bytes(body)
        with pytest.raises(DataError, match=error):
            list(json_records(path))
    path.write_bytes(b'{"a": 1}\n\n{"b": "\xea\xb0\x80"}\n')
    assert list(json_records(path)) == [(1, {"a": 1}), (3, {"b": "가"})]
    with pytest.raises(DataError, match=r"r.jsonl:1: not a GECKO corpus record \(no field 'id'\)"):
        list(read_jsonl(path))
    with pytest.raises(DataError, match="nope.jsonl: cannot read"):
        list(json_records(tmp_path / "nope.jsonl"))


JSON_EDGES = [
    b'{"a": 1, "b": 2, "a": 3}',  # duplicate key: the last value, at the first key's place
    b'{"n": 123456789012345678901234567890, "m": -9223372036854775809, "u": 18446744073709551616}',
    b'{"n": 18446744073709551615, "m": -9223372036854775808, "z": -0, "f": -0.0}',
    b'{"f": [0.1, 1e-400, 2.5e-324, 1.7976931348623157e-308, 9.2e18, -9.2e18, 1E2, 0.8922]}',
    b'{"f": 9.3e18}',  # a float as large as a 64-bit integer's: left to json
    b'{"x": NaN, "y": -Infinity}',
    b'{"x": 1e400}',  # json: inf; orjson refuses
    b'{"s": "\\ud800 lone surrogate", "t": "\\ud83d\\ude00"}',
    b'{"s": "raw\tcontrol"}',
    b'\xef\xbb\xbf{"bom": 1}',
    b'{"a": 1} \r',
    b"[1, 2]",
    b'"just a string"',
    b"null",
    b'{"deep": ' + b"[" * 100 + b"]" * 100 + b"}",
    b'{"a": 1,}',
    b'{"a": "\xff"}',
    b"   ",
]


def _json_reading(raw: bytes) -> object:
    """What json.loads gives for `raw`, or its error's type and message."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return type(e).__name__, str(e)


@pytest.mark.parametrize("raw", JSON_EDGES)
def test_fast_json_reads_as_json_or_refuses(raw):
    """jsonl.loads (orjson) either gives json's value, with json's types (a big int stays an int), or raises
    ValueError so that the caller falls back to json."""
    expected = _json_reading(raw)
    try:
        value = jsonl.loads(raw)
    except ValueError:
        return
    assert repr(value) == repr(expected)
    assert json.dumps(value) == json.dumps(expected)


def test_fast_json_leaves_numbers_beyond_64_bits_and_deep_nesting_to_json():
    for raw in JSON_EDGES[1], JSON_EDGES[4], JSON_EDGES[14]:
        with pytest.raises(ValueError):
            jsonl.loads(raw)
    assert jsonl.loads(JSON_EDGES[2]) == json.loads(JSON_EDGES[2])  # 64-bit limits are orjson's
    assert jsonl.loads(JSON_EDGES[3]) == json.loads(JSON_EDGES[3])


def test_json_records_reads_edge_lines_as_json_does(tmp_path):
    path = tmp_path / "e.jsonl"
    objects = [raw for raw in JSON_EDGES if isinstance(_json_reading(raw), dict)]
    path.write_bytes(b"\n".join(objects) + b"\n")
    records = [r for _, r in json_records(path)]
    assert repr(records) == repr([json.loads(raw) for raw in objects])
