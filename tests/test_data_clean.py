"""The clean phase: readers and bad input, normalization, language ID, quality rules, PII, toxicity, the
datatrove engine (1 vs N workers, resuming) and the per-step CLI."""

import gzip
import json
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from conftest import CODE, EN, KO, read_shards, shared_or_skip
from gecko.cli import main
from gecko.config import CleanConfig, DataConfig, EnQualityConfig, SourceConfig
from gecko.data.io.readers import SourceReader
from gecko.data.pipeline import run_clean
from gecko.data.stats import DataStats
from gecko.data.steps.langid import detect
from gecko.data.steps.normalize import normalize_text
from gecko.data.steps.quality import check
from gecko.data.steps.toxicity import MODEL_PATH, score, score_batch
from gecko.errors import DataError

KO_DOC = "대한민국은 동아시아의 한반도에 위치한 민주공화국이다. 수도는 서울특별시이며 인구는 약 5천만 명이다."


def _read(tmp_path: Path, src: SourceConfig, max_doc_bytes: int = 10_000_000) -> tuple[list, DataStats]:
    """Run the reader step alone; returns its documents and its ledger."""
    ledger = tmp_path / "ledger"
    docs = list(SourceReader((src,), max_doc_bytes, str(ledger)).run())
    return docs, DataStats.load_ledgers(ledger)


def _jsonl(lines: list[str]) -> bytes:
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines).encode()


# ---- readers and bad input ------------------------------------------------------------------------------


def test_gzip_and_zstd_jsonl(tmp_path):
    zstd = pytest.importorskip("zstandard")
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(_jsonl(KO[:2])))
    (tmp_path / "b.jsonl.zst").write_bytes(zstd.ZstdCompressor().compress(_jsonl(KO[2:])))
    docs, stats = _read(tmp_path, SourceConfig("ko", str(tmp_path), "ko"))
    assert [d.text for d in docs] == KO
    assert stats.read["ko"] == 4 and not stats.dropped


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_compressed_file_is_quarantined_with_its_line(tmp_path, suffix):
    if suffix.endswith("zst"):
        data = pytest.importorskip("zstandard").ZstdCompressor().compress(_jsonl(KO * 50))
    else:
        data = gzip.compress(_jsonl(KO * 50))
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(data[: len(data) // 2])
    docs, stats = _read(tmp_path, SourceConfig("ko", str(path), "ko"))
    assert stats.dropped == {("read", "truncated_file", "ko"): 1}
    where = stats.examples["read/truncated_file/ko"][0]
    assert where == f"{path}:{len(docs) + 1}"  # the line the stream broke on
    assert stats.read["ko"] == len(docs) + 1


def test_nul_bytes_are_removed_not_fatal(tmp_path):
    path = tmp_path / "nul.jsonl"
    path.write_bytes(b'{"text": "\xea\xb0\x80\x00\xeb\x82\x98"}\n' + _jsonl(["\u0000다라"]))
    docs, stats = _read(tmp_path, SourceConfig("ko", str(path), "ko"))
    assert [normalize_text(d.text, is_code=False) for d in docs] == ["가나", "다라"]
    assert not stats.dropped


def test_huge_document_is_quarantined_before_decoding(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        f.write(_jsonl([KO[0]]))
        f.write(b'{"text": "' + b"a" * 100_000_000 + b'"}\n')
        f.write(_jsonl([KO[1]]))
    docs, stats = _read(tmp_path, SourceConfig("ko", str(path), "ko"))
    assert [d.text for d in docs] == KO[:2]
    assert stats.dropped == {("read", "too_large", "ko"): 1}
    assert stats.examples["read/too_large/ko"] == [f"{path}:2"]


def test_empty_files_are_counted(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty.txt").write_bytes(b"")
    for fmt in ("jsonl", "text"):
        _, stats = _read(
            tmp_path / fmt,
            SourceConfig("e", str(tmp_path / f"empty.{'txt' if fmt == 'text' else fmt}"), "ko", format=fmt),
        )
        assert stats.dropped == {("read", "empty_file", "ko"): 1}


def test_csv_column_mapping_and_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    (tmp_path / "t.csv").write_text('doc_id,body\n7,"첫째, 문서"\n8,둘째 문서\n', encoding="utf-8")
    docs, _ = _read(
        tmp_path,
        SourceConfig("c", str(tmp_path / "t.csv"), "ko", format="csv", text_field="body", id_field="doc_id"),
    )
    assert [(d.id, d.text) for d in docs] == [("c/7", "첫째, 문서"), ("c/8", "둘째 문서")]
    pq.write_table(pa.table({"content": ["하나", None, "셋"]}), tmp_path / "t.parquet")
    docs, stats = _read(
        tmp_path, SourceConfig("p", str(tmp_path / "t.parquet"), "ko", format="parquet", text_field="content")
    )
    assert [d.text for d in docs] == ["하나", "셋"]
    assert stats.dropped == {("read", "missing_field_content", "ko"): 1}


def test_code_tree_skips_vendored_generated_minified_binary(tmp_path):
    root = tmp_path / "repo"
    for rel, data in {
        "pkg/a.py": CODE[0].encode(),
        "pkg/b.js": b"function f() {\n  return 1;\n}\n",
        "node_modules/x/index.js": b"module.exports = 1;\n",
        "pkg/api_pb2.py": b"x = 1\n",
        "static/app.min.js": b"var a=1;",
        "pkg/blob.py": b"\x00\x01binary",
        "pkg/long.js": b"x" * 5000,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    docs, stats = _read(
        tmp_path, SourceConfig("code", str(root), "code", format="code", extensions=(".py", ".js"))
    )
    assert {d.metadata["path"]: d.metadata["code_lang"] for d in docs} == {
        "pkg/a.py": "python",
        "pkg/b.js": "javascript",
    }
    assert docs[0].text == CODE[0]  # byte-exact
    reasons = {r: n for (_, r, _), n in stats.dropped.items()}
    assert reasons == {"vendored": 1, "generated": 1, "minified": 2, "binary_file": 1}


# ---- normalization and language ID ----------------------------------------------------------------------


def test_normalize_keeps_markdown_tables_and_latex():
    text = "| 이름 | 값 |\n|---|---:|\n| a  | $\\frac{1}{2}$ |\n\n$$\\sum_{i=1}^{n} x_i$$"
    assert normalize_text(text, is_code=False) == text
    assert normalize_text("가\u00a0나\u2003다", is_code=False) == "가 나 다"
    assert unicodedata.is_normalized("NFC", normalize_text(unicodedata.normalize("NFD", KO[0]), False))


def test_langid_routes_mixed_korean_english_to_ko():
    mixed = "Python의 list comprehension은 [x for x in range(10)]처럼 쓴다. 이 방법은 for loop보다 빠르다."
    assert detect(mixed, 0.15, 0.5)[0] == "ko"
    assert detect(EN[0], 0.15, 0.5)[0] == "en"
    assert detect("Le chat est sur la table et il dort depuis ce matin.", 0.15, 0.5)[0] == "other"


def test_langid_on_shared_corpus():
    path = shared_or_skip("corpus", "ko", "kowiki", "kowiki.jsonl")
    with path.open(encoding="utf-8") as f:
        texts = [json.loads(next(f))["text"] for _ in range(50)]
    assert sum(detect(t, 0.15, 0.5)[0] == "ko" for t in texts) >= 49


# ---- quality rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,lang,reason",
    [
        ("ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ 진짜 웃기다 ㅠㅠㅠㅠㅠㅠ ㅋㅋㅋㅋㅋㅋㅋ", "ko", "ko_jamo_runs"),
        ("와" + "아" * 30 + " 이 영화 최고다 정말로", "ko", "ko_char_run"),
        ("\n".join(["오늘의 특가 상품을 확인하세요"] * 6 + [KO_DOC]), "ko", "ko_dup_lines"),
        ("1234 5678 9012 3456 7890 1234 5678 가나 " * 3, "ko", "ko_hangul_ratio"),
        ("Lorem ipsum dolor sit amet, " + EN[0] + " " + EN[1] + " " + EN[2], "en", "c4_lorem_ipsum"),
        (
            "Cars trucks planes boats trains bikes scooters buses ferries rockets. " * 3,
            "en",
            "gopher_stop_words",
        ),
        (
            "# Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n" + CODE[0],
            "code",
            "code_autogenerated",
        ),
        ("DATA = '" + "QUJDRA" * 200 + "'\n", "code", "code_max_line_len"),
        (
            "x = 1\n" + "BLOB = (\n" + "\n".join("    '" + "QUJDRA" * 12 + "'" for _ in range(20)) + ")\n",
            "code",
            "code_data_blob",
        ),
        ("가나", "ko", "too_short"),
    ],
)
def test_each_rule_names_its_reason(text, lang, reason):
    assert check(text, lang, CleanConfig(), 20) == reason


@pytest.mark.parametrize("text,lang", [(KO_DOC, "ko"), (" ".join(EN), "en"), (CODE[1], "code")])
def test_good_text_passes(text, lang):
    assert check(text, lang, CleanConfig(en=EnQualityConfig(min_words=5)), 20) is None


# ---- toxicity ---------------------------------------------------------------------------------------------


def test_toxicity_model_is_shipped_small_and_separates():
    assert MODEL_PATH.stat().st_size < 2_000_000
    toxic = "개소리야 니가 빨갱이를 옹호하고 드루킹을 말못해서 삐진거야 빨갱아 병신"
    assert score(toxic) > 0.7 > 0.3 > score(KO_DOC)
    assert score_batch([toxic, KO_DOC]) == pytest.approx([score(toxic), score(KO_DOC)])


# ---- the engine: accounting, 1 vs N workers, resuming, dropped dump ---------------------------------------


def _clean_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(
        sources=(
            SourceConfig("ko", str(root / "ko.jsonl"), "ko"),
            SourceConfig("en", str(root / "en.tsv"), "en", format="tsv"),
            SourceConfig("code", str(root / "code"), "code", format="code"),
        ),
        clean=CleanConfig(en=EnQualityConfig(min_words=5), dump_dropped=True),
        **kw,
    )


def _docs(clean_dir: Path) -> list[dict]:
    """All shards' documents in their global (source, record) order."""
    rows = read_shards(clean_dir)
    return sorted(rows, key=lambda r: r["metadata"]["order"])


def test_output_identical_for_1_and_2_workers(raw_sources, tmp_path):
    with (raw_sources / "ko.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "junk", "text": "ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ"}) + "\n")
    one = run_clean(_clean_cfg(raw_sources, workers=1), tmp_path / "one")
    two = run_clean(_clean_cfg(raw_sources, workers=2), tmp_path / "two")
    assert len(list((tmp_path / "two" / "clean").glob("*.jsonl.zst"))) == 2
    assert _docs(tmp_path / "one" / "clean") == _docs(tmp_path / "two" / "clean")
    assert one.to_dict()["dropped"] == two.to_dict()["dropped"]
    html = (tmp_path / "two" / "clean_report.html").read_text(encoding="utf-8")
    assert "ko_jamo_runs" in html and "ㅋㅋㅋ" in html
    report = json.loads((tmp_path / "two" / "clean_stats.json").read_text())
    assert report["read_total"] == sum(report["kept"].values()) + report["dropped_total"] == 12 + 1 + 3 + 2
    dumped = [r for p in sorted((tmp_path / "two" / "dropped").iterdir()) for r in read_shards(p)]
    reasons = Counter(d["metadata"]["filter_reason"] for d in dumped)
    assert reasons == {r: n for (_, r, _), n in two.dropped.items()} and reasons["ko_jamo_runs"] == 1


def test_clean_resumes_finished_ranks_and_restarts_on_new_config(raw_sources, tmp_path):
    out = tmp_path / "run"
    run_clean(_clean_cfg(raw_sources), out)
    shard = out / "clean" / "00000.jsonl.zst"
    first = shard.stat().st_mtime_ns
    run_clean(_clean_cfg(raw_sources), out)  # complete: datatrove skips the rank
    assert shard.stat().st_mtime_ns == first
    stats = run_clean(_clean_cfg(raw_sources, min_chars=45), out)  # new config: redone from scratch
    assert shard.stat().st_mtime_ns != first
    assert sum(n for (_, r, _), n in stats.dropped.items() if r == "too_short") > 0


def test_missing_source_fails_before_running(tmp_path):
    cfg = DataConfig(sources=(SourceConfig("ko", str(tmp_path / "nope.jsonl"), "ko"),), mix={"ko": 1.0})
    with pytest.raises(DataError, match="nope.jsonl does not exist"):
        run_clean(cfg, tmp_path / "out")


# ---- each step alone on a JSONL file ----------------------------------------------------------------------


def test_step_commands_on_a_jsonl_file(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": 1, "body": "연락처 010-1234-5678, " + KO_DOC}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": 2, "body": "ㅋㅋㅋ"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    for step in ("langid", "pii", "toxicity", "quality", "normalize"):
        assert (
            main(
                [
                    "data",
                    step,
                    "--in",
                    str(src),
                    "--out",
                    str(tmp_path / f"{step}.jsonl"),
                    "--text-field",
                    "body",
                ]
            )
            == 0
        )
    rows = {
        s: [json.loads(x) for x in (tmp_path / f"{s}.jsonl").open()]
        for s in ("langid", "pii", "toxicity", "quality")
    }
    assert rows["langid"][0]["lang"] == "ko" and rows["langid"][0]["lid_score"] > 0.5
    assert "<PHONE>" in rows["pii"][0]["body"] and rows["pii"][0]["pii"] == {"phone": 1}
    assert all(0 <= r["toxicity"] <= 1 for r in rows["toxicity"])
    assert [r["id"] for r in rows["quality"]] == [1]
    assert '"dropped_too_short": 1' in capsys.readouterr().out


def test_step_command_names_file_and_line_of_bad_json(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "좋은 문장입니다"}\n{broken\n', encoding="utf-8")
    assert main(["data", "pii", "--in", str(src), "--out", str(tmp_path / "out.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"{src}:2: " in err and "quarantined_malformed_json: 1 in all" in err and "Traceback" not in err
    (row,) = [json.loads(x) for x in (tmp_path / "out.quarantine.jsonl").open()]
    assert row["reason"] == "malformed_json" and row["where"] == f"{src}:2"


def test_html_report_counts_per_step_reason_lang_and_escapes_examples():
    stats = DataStats()
    stats.read["web"] = 6
    stats.kept["ko"], stats.kept_bytes["ko"] = 2, 3_000_000
    stats.drop("quality", "ko_jamo_runs", "ko", "d1: ㅋㅋㅋㅋ")
    stats.drop("quality", "gopher_stop_words", "en", 'd2: <script>alert("x")</script> & | `')
    stats.drop("quality", "gopher_stop_words", "en", "d3: <b>bold</b>")
    stats.drop("toxicity", "toxic", "ko", "d4: 욕설")
    html = stats.report_html({})
    assert "<script>" not in html and "<b>bold" not in html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; |" in html
        and "&lt;b&gt;bold&lt;/b&gt;" in html
    )
    assert '<td>quality</td><td class="n">3</td>' in html and '<td>toxicity</td><td class="n">1</td>' in html
    # per-language columns (en, ko) then the total: the Gopher row has 2 English drops and none in Korean
    assert (
        '<td>quality</td><td>gopher_stop_words</td>\n<td class="n">2</td><td class="n">0</td>'
        '<td class="n">2</td>'
    ) in html
    assert "6 documents read: 2 kept,\n4 dropped." in html
    md = stats.report({})
    assert '`d2: <script>alert("x")</script> & \\| \'`' in md  # a | in an example does not split the md table


def test_top_bigram_bound_never_changes_a_decision():
    import random

    from gecko.data.steps.quality import top_bigram_frac

    rng = random.Random(0)
    vocab = ["그", "영화", "정말", "재밌다", "the", "a", "of", "ㅋㅋ", "좋아요"]
    for _ in range(2000):
        words = [rng.choice(vocab[: rng.randint(2, len(vocab))]) for _ in range(rng.randint(0, 40))]
        exact = top_bigram_frac(words)
        for limit in (0.1, 0.2, 0.25, 0.5):
            bounded = top_bigram_frac(words, limit)
            assert (bounded > limit) == (exact > limit)
            assert bounded == exact or bounded <= limit


def test_top_bigram_frac_is_exact_on_either_side_of_the_unique_word_check():
    """Texts up to UNIQUE_CHECK_MAX words are screened by a set, longer ones go straight to the Counter: both
    paths give 0 without a repeated word and the top 2-gram's exact share with one."""
    from collections import Counter

    from gecko.data.steps.quality import UNIQUE_CHECK_MAX, top_bigram_frac

    for n in (UNIQUE_CHECK_MAX - 1, UNIQUE_CHECK_MAX, UNIQUE_CHECK_MAX + 1, 3 * UNIQUE_CHECK_MAX):
        unique = [f"단어{i}" for i in range(n)]
        assert top_bigram_frac(unique) == 0.0 and top_bigram_frac(unique, 0.2) == 0.0
        repeated = unique[: n - 2] + unique[:2]  # the 2-gram (단어0, 단어1) twice
        (a, b), count = Counter(zip(repeated, repeated[1:])).most_common(1)[0]
        assert count == 2
        assert top_bigram_frac(repeated) == 2 * (len(a) + len(b)) / sum(map(len, repeated))


def test_batched_stats_equal_datatrove_per_document_stats():
    """GeckoFilter updates datatrove's counters once per batch; totals must equal BaseFilter's per-doc run."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import BaseFilter

    from gecko.data.steps.quality import QualityFilter

    cfg = CleanConfig()

    class PerDoc(BaseFilter):
        def filter(self, doc):
            reason = check(doc.text, doc.metadata["lang"], cfg, 20)
            return (False, reason) if reason else True

    texts = [KO_DOC, "ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ", "짧다", KO_DOC + " 추가 문장입니다."] * 150
    docs = lambda: [Document(t, str(i), metadata={"lang": "ko"}) for i, t in enumerate(texts)]  # noqa: E731
    ours, theirs = QualityFilter(cfg, 20), PerDoc()
    kept = [d.id for d in ours.run(iter(docs()))]
    assert kept == [d.id for d in theirs.run(iter(docs()))]
    for label in ("total", "forwarded", "dropped", "dropped_too_short", "dropped_ko_jamo_runs", "doc_len"):
        a, b = ours.stats[label], theirs.stats[label]
        assert (a.total, a.n, a.min, a.max) == (b.total, b.n, b.min, b.max), label
        assert a.mean == pytest.approx(b.mean) and a.variance == pytest.approx(b.variance), label


# ---- batched shortcuts equal the per-document definitions they replace ------------------------------------

# spaces (incl. \x1c, \x85, U+3000), letters, digits (², ٣), _, Hangul syllables and jamo (ㅋ, ᄀ, unassigned
# U+3130), symbols (☺, ─, 😀), prose punctuation, NUL and a lone surrogate
_TRICKY = list("aZé_9²٣Ⅳ 　\t\n\x1c\x85\xa0가힣ㅋᄀ\u3130ㆎ☺─😀.,!?-–…「\x00\ud800") + [
    "한국어",
    "word",
    "  ",
]


def _tricky_texts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [""] + ["".join(rng.choice(_TRICKY) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def test_char_class_counts_equal_their_regex_definitions():
    import re

    from gecko.data.text.charclass import (
        ALNUM,
        CHAR_RUN,
        HANGUL,
        JAMO,
        JAMO_RUNS,
        LETTER,
        SPACE,
        SYLLABLE,
        SYMBOL,
        class_counts,
        letter_words,
    )

    symbol_free = re.compile(r"[\w\s.,!?;:'\"()\[\]{}<>\-–—…·~%/&@#*+=^`|“”‘’「」『』《》〈〉]+")
    # runs of one repeated character and of jamo, also across the joins of the batch
    texts = _tricky_texts(400) + [
        "ㅋㅋ",
        "ㅋ",
        "ㅋㅋ",
        "가ㅋ",
        "ㅋ가",
        "aaa",
        "aa",
        "a",
        "",
        "a",
        "aa",
        "___",
        "²²²",
    ]
    counts = class_counts(texts, char_run=3)
    for text, row in zip(texts, counts.tolist()):
        letters = re.sub(r"[\W\d_]+", "", text)
        assert row[LETTER] == len(letters)
        assert row[SPACE] == len(text) - sum(map(len, text.split()))
        assert row[SYMBOL] == len(symbol_free.sub("", text))
        assert row[HANGUL] == len(re.sub("[^\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+", "", letters))
        assert row[SYLLABLE] == len(re.findall("[\uac00-\ud7a3]", text))
        assert row[JAMO] == len(re.findall("[\u3131-\u318e\u1100-\u11ff]", text))
        assert row[ALNUM] == len(re.findall(r"[^\W_]", text))
        assert row[JAMO_RUNS] == sum(map(len, re.findall("[\u3131-\u318e\u1100-\u11ff]{2,}", text)))
        assert row[CHAR_RUN] == (re.search(r"([^\W_])\1{2,}", text) is not None)
        assert letter_words(text) == re.subn(r"\S*[^\W\d_]\S*", "", text)[1]
    for n in (1, 2, 20):  # the run column for other lengths; only the requested class columns are counted
        some = class_counts(texts, char_run=n, classes=(SPACE,))
        run = re.compile(rf"([^\W_])\1{{{n - 1},}}")
        assert some[:, CHAR_RUN].tolist() == [run.search(t) is not None for t in texts]
        assert (some[:, SPACE] == counts[:, SPACE]).all() and not some[:, [LETTER, SYMBOL, ALNUM]].any()


def test_batched_langid_and_quality_features_equal_per_document_ones():
    from gecko.data.steps.langid import hangul_shares
    from gecko.data.steps.quality import KO_CLASSES, dup_line_frac, ko_features
    from gecko.data.text.charclass import class_counts

    texts = _tricky_texts(300, seed=1) + [KO_DOC, "ㅋㅋ 웃겨 ㅠㅠ", "a\n\nb\na\n  \n  \nb"]
    # a batch gives each text the same features as the text alone
    assert hangul_shares(texts) == [hangul_shares([t])[0] for t in texts]
    rows = class_counts(texts, 20, KO_CLASSES).tolist()
    assert [ko_features(t, 0.2, row) for t, row in zip(texts, rows)] == [ko_features(t, 0.2) for t in texts]

    def dup_loop(lines: list[str]) -> float:  # the definition: a non-blank line seen before is a duplicate
        seen, dup = set(), 0
        for line in lines:
            dup += len(line) if line.strip() and line in seen else 0
            seen.add(line)
        return dup / (sum(map(len, lines)) or 1)

    for text in texts:
        lines = text.replace("\x1c", "\n").split("\n")
        assert dup_line_frac(lines) == dup_loop(lines)


def test_toxicity_window_counts_match_a_direct_count():
    """score_batch derives each window's n-gram count from its bounds; check it against counting n-grams."""
    import numpy as np

    from gecko.data.steps.toxicity import NGRAMS, WINDOW, load_model, ngram_buckets, prepare

    weights, bias = load_model()
    texts = ["", "a", "가나", "욕" * (WINDOW - 3), KO_DOC * 9, "x" * (WINDOW - 2) + " 병신"]
    for text, got in zip(texts, score_batch(texts)):
        p = prepare(text)
        sums, counts = np.zeros(-(-len(p) // WINDOW)), np.zeros(-(-len(p) // WINDOW))
        for _n, buckets in ngram_buckets(p):
            for pos, b in enumerate(buckets):
                sums[pos // WINDOW] += weights[b]
                counts[pos // WINDOW] += 1
        assert counts.sum() == sum(max(len(p) - n + 1, 0) for n in range(1, NGRAMS + 1))
        probs = 1 / (1 + np.exp(-(bias + sums / np.sqrt(np.maximum(counts, 1)))))
        assert got == pytest.approx(float((probs * counts).sum() / counts.sum()), rel=1e-9)


def test_toxicity_prepare_equals_split_and_join():
    """prepare() keeps a printable single-spaced text as it is: same as collapsing its whitespace always."""
    import random

    from gecko.data.steps.toxicity import prepare

    assert all(not c.isprintable() for c in map(chr, range(0x110000)) if c.isspace() and c != " ")
    rng = random.Random(0)
    pieces = ["a", "B", "가", "ΑΣ", "İ", " ", "  ", "\t", "\n", "\x1c", "\x85", "\u2028", "\u3000", "\u00a0"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    for text in [*texts, "", " ", KO_DOC, *EN]:
        assert prepare(text) == " " + " ".join(text.lower().split()) + " "


def test_toxicity_scores_equal_a_bincount_per_ngram_length():
    """score_batch adds the n-grams' weights per position and sums windows with reduceat; the sums are exact,
    so it must give bit for bit what a weighted bincount per n-gram length (the earlier code) gives."""
    import numpy as np

    from gecko.data.steps.toxicity import WINDOW, load_model, ngram_buckets, prepare

    def reference(texts: list[str]) -> list[float]:
        weights, bias = load_model()
        prepared = [prepare(t) for t in texts]
        lengths = np.array([len(t) for t in prepared])
        ends = np.cumsum(lengths)
        per_doc = (lengths + WINDOW - 1) // WINDOW
        window_doc = np.repeat(np.arange(len(texts)), per_doc)
        first = np.concatenate([[0], np.cumsum(per_doc)[:-1]])
        start = (np.arange(len(window_doc)) - np.repeat(first, per_doc)) * WINDOW
        opens = np.zeros(ends[-1], dtype=np.int64)
        opens[(ends - lengths)[window_doc] + start] = 1
        window = np.cumsum(opens) - 1
        end = np.minimum(start + WINDOW, lengths[window_doc])
        sums, counts = np.zeros(len(window_doc)), np.zeros(len(window_doc))
        for n, buckets in ngram_buckets("".join(prepared)):
            w = weights[buckets]
            cross = (ends[:, None] - np.arange(1, n)[None, :]).ravel()
            w[cross[(cross >= 0) & (cross < len(buckets))]] = 0.0
            sums += np.bincount(window[: len(buckets)], weights=w, minlength=len(sums))
            counts += np.maximum(np.minimum(end, lengths[window_doc] - n + 1) - start, 0)
        probs = 1.0 / (1.0 + np.exp(-(bias + sums / np.sqrt(np.maximum(counts, 1)))))
        num = np.bincount(window_doc, weights=probs * counts, minlength=len(texts))
        den = np.bincount(window_doc, weights=counts, minlength=len(texts))
        return [float(x) for x in np.where(den > 0, num / np.maximum(den, 1), 0.0)]

    texts = ["", "a", "가", "욕" * (WINDOW - 2), "x" * (WINDOW - 2) + " 병신", KO_DOC * 9, *EN, *CODE]
    texts += _korean_like_texts(300)
    for batch in (texts, texts[::-1], texts[:1], texts[3:5]):
        assert score_batch(batch) == reference(batch)


def _korean_like_texts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    pieces = [
        "ㅋㅋ",
        "ㅠ",
        "가",
        "아아아",
        "영화",
        "정말",
        "재밌다",
        "정말 재밌다",
        "\n",
        "\n" + KO_DOC[:20] + "\n",
        " ",
        "  ",
        "aaa",
        "a",
        "!!",
        "☺",
        "1",
        "11",
        "_",
        "Σ",
    ] + KO_DOC.split()
    return [KO_DOC] + ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def test_korean_rules_equal_their_regex_definitions():
    """ko_check (batched class counts, costly rules only when needed) against the rules as first written:
    every feature by regex, then the first failing rule."""
    import re

    from gecko.config import KoQualityConfig
    from gecko.data.steps.quality import KO_CLASSES, dup_line_frac, ko_check, top_bigram_frac
    from gecko.data.text.charclass import class_counts

    symbol_free = re.compile(r"[\w\s.,!?;:'\"()\[\]{}<>\-–—…·~%/&@#*+=^`|“”‘’「」『』《》〈〉]+")

    def definition(text: str, cfg: KoQualityConfig) -> str | None:
        nonspace = sum(map(len, text.split())) or 1
        rules = [
            (
                "ko_jamo_runs",
                sum(map(len, re.findall("[\u3131-\u318e\u1100-\u11ff]{2,}", text))) / nonspace
                > cfg.max_jamo_ratio,
            ),
            ("ko_hangul_ratio", len(re.findall("[\uac00-\ud7a3]", text)) / nonspace < cfg.min_hangul_ratio),
            ("ko_char_run", re.search(rf"([^\W_])\1{{{cfg.max_char_run - 1},}}", text) is not None),
            ("ko_dup_lines", dup_line_frac(text.split("\n")) > cfg.max_dup_line_frac),
            ("ko_top_ngram", top_bigram_frac(text.split()) > cfg.max_top_ngram_frac),
            ("ko_symbol_ratio", len(symbol_free.sub("", text)) / nonspace > cfg.max_symbol_ratio),
        ]
        return next((name for name, failed in rules if failed), None)

    texts = _korean_like_texts(600) + _tricky_texts(200, seed=2)
    reasons = set()
    for cfg in (
        KoQualityConfig(),
        KoQualityConfig(
            max_char_run=3,
            max_jamo_ratio=0.3,
            min_hangul_ratio=0.1,
            max_dup_line_frac=0.1,
            max_top_ngram_frac=0.15,
        ),
    ):
        expected = [definition(t, cfg) for t in texts]
        reasons.update(expected)
        rows = class_counts(texts, cfg.max_char_run, KO_CLASSES).tolist()
        assert [ko_check(t, cfg, row) for t, row in zip(texts, rows)] == expected
        assert [ko_check(t, cfg) for t in texts[:50]] == expected[:50]
    assert len(reasons) == 7  # every rule fires somewhere in the sample, and some texts pass


def test_english_shortcuts_equal_their_definitions():
    """Stop words counted over the distinct words, and the top 2-gram given the word Counter and the words'
    characters."""
    from gecko.data.steps.quality import STOP_WORDS, en_features, top_bigram_frac
    from gecko.data.text.charclass import all_characters

    # lower() never turns whitespace into something else or puts whitespace into a lowered character, so
    # text.lower().split() has the words of text.split(), each lowered
    # and only ASCII letters lower to a stop word's letters (STOP_WORD_CASES holds their two cases)
    stop_letters = set("".join(STOP_WORDS))
    for c in all_characters():
        assert c.lower() == c if c.isspace() else not any(x.isspace() for x in c.lower())
        assert c.isascii() or c.lower() not in stop_letters
    texts = [" ".join(EN), "The THE tHe ΣTHE THEΣ the\u2028and ΣΣ σ ς Σ. İ the\x1cwith \u212a ANDΣ"]
    texts.append("wItH HAVE tO oF Be bE aNd THAT tHaT thatt hav wİth \u212aand")
    texts += _tricky_texts(200)
    texts += [t.replace("한국어", "The").replace("word", "AND") for t in _tricky_texts(200, seed=3)]
    for text in texts:
        features, words = en_features(text), text.split()
        assert features["stop_words"] == sum(map(STOP_WORDS.__contains__, text.lower().split()))
        assert features["mean_word_len"] == sum(map(len, words)) / (len(words) or 1)
        assert features["top_ngram_frac"] == top_bigram_frac(words)
        for limit in (-1.0, 0.1, 0.5):
            assert top_bigram_frac(words, limit, Counter(words)) == top_bigram_frac(words, limit)


def test_normalize_shortcuts_equal_every_substitution():
    """normalize_text skips a substitution when a cheaper test says it cannot match: same output as always
    running each one."""
    import random
    import re

    from gecko.data.steps import normalize as nz

    def definition(text: str, is_code: bool) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = nz._CONTROL.sub("", unicodedata.normalize("NFC", text))
        if is_code:
            return text
        text = re.sub(r"[ \t\u3000]+$", "", nz._SPACES.sub(" ", text), flags=re.MULTILINE)
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    rng = random.Random(0)
    pieces = list("ab 가\t\n\r\x00\x0c\x1f\x7f\x85\u200b\ufeff\u00a0\u2003\u3000")
    pieces += ["\r\n", "\u1100\u1161", "e\u0301"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    for text in texts + [KO_DOC, *EN, *CODE]:
        for is_code in (False, True):
            assert normalize_text(text, is_code) == definition(text, is_code)


def test_ngram_buckets_equal_a_direct_hash():
    from gecko.data.steps.toxicity import BITS, NGRAMS, ngram_buckets

    text = " 가나다 abc ㅅㅂ 😀 "
    for n, buckets in ngram_buckets(text):
        for pos, bucket in enumerate(buckets.tolist()):
            h = 0
            for c in text[pos : pos + n]:
                h = (h * 1_000_003 + ord(c)) % 2**64
            assert bucket == ((h + n) * 0x9E3779B97F4A7C15 % 2**64) >> (64 - BITS)
    assert [n for n, _ in ngram_buckets(text)] == list(range(1, NGRAMS + 1))


def test_full_width_english_is_english():
    """Korean input methods type full-width Latin; fastText knows only the ASCII forms, so it reads NFKC."""
    text = "This guide shows how to configure the network interfaces of a Debian system with ifupdown."
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    assert detect(full_width, 0.15, 0.5)[0] == detect(text, 0.15, 0.5)[0] == "en"


def test_code_counts_of_a_batch_equal_the_regex_definitions():
    """Blob characters are those of `[A-Za-z0-9+/=]{64,}` matches (runs of 63, 64 and 65, a run cut by a
    text's end, full-width look-alikes that are not blob characters) and the letter-digit count `[^\\W_]`."""
    import re

    from gecko.data.steps.quality import code_counts

    texts = _tricky_texts(200, seed=2) + [
        "x = '" + "A" * 63 + "'",
        "b" * 64,
        "",
        "c" * 65 + "\n" + "Ａ" * 70 + "+/=" * 30,
        "d" * 40,  # with the next text's 40 it would make a run of 80
        "e" * 40,
    ]
    blob = re.compile(r"[A-Za-z0-9+/=]{64,}")
    expected = [[len(re.findall(r"[^\W_]", t)), sum(map(len, blob.findall(t)))] for t in texts]
    assert code_counts(texts) == expected
    assert [code_counts([t])[0] for t in texts] == expected
