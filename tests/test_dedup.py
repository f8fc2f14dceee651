"""Dedup: exact + MinHash near duplicates + boilerplate, as datatrove stages; sharding, resume, planted set."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash

from conftest import shared_or_skip
from gecko.cli import main
from gecko.config import DedupConfig
from gecko.data.phase import work_dir_for
from gecko.data.steps.dedup import filter as dedup_filter
from gecko.data.steps.dedup import minhash, shingles
from gecko.data.steps.dedup.planted import make_planted, score, write_shards
from gecko.data.steps.dedup.run import run_dedup
from gecko.data.steps.dedup.shingles import code_units, ngrams, prose_units, shingle_hashes
from helpers import WORDS, dedup_corpus, random_words, shard_texts, write_docs

SIZES = {"ko": 5, "en": 5, "code": 5}


def _bench_module(name: str):
    """bench/NAME.py, a script folder rather than a package (its own folder goes on sys.path for its imports)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_shingles_ignore_spacing_and_case_but_not_content():
    a = shingle_hashes("Hello   World\nagain", "ko", SIZES)
    assert np.array_equal(a, shingle_hashes("hello world again", "ko", SIZES))
    assert not np.array_equal(a, shingle_hashes("hello word again", "ko", SIZES))
    assert len(ngrams(prose_units("짧다"), 5)) == 1  # a text shorter than n is one shingle


def _chains(n_chains: int = 20, length: int = 8) -> list[dict]:
    """Documents each a small edit of the one before: neighbours are near-duplicates, distant ones are not."""
    rng = random.Random(0)
    docs = []
    for c in range(n_chains):
        words = [rng.choice(WORDS) + str(rng.randrange(100)) for _ in range(300)]
        for k in range(length):
            docs.append({"id": f"c{c}-{k}", "text": " ".join(words), "lang": "en", "source": "s"})
            for _ in range(6):
                words[rng.randrange(len(words))] = rng.choice(WORDS) + str(rng.randrange(100))
    return docs


def test_chains_of_near_copies_cluster_the_same_whatever_the_sharding(tmp_path):
    """A~B and B~C pass the threshold where A~C does not: which pairs a bucket checks must not depend on which
    document was read first (it did: 110 drops in one file, 108 in three files read in reverse order)."""
    docs = _chains()
    one = run_dedup(write_docs(docs, tmp_path / "a", shards=1), tmp_path / "a_out", DedupConfig())
    three = run_dedup(write_docs(docs[::-1], tmp_path / "b", shards=3), tmp_path / "b_out", DedupConfig())
    rows = (one.work_dir / "duplicates.jsonl").read_text()
    assert rows == (three.work_dir / "duplicates.jsonl").read_text()
    assert 60 < len(rows.splitlines()) < len(docs) - 20  # chains are partly joined: the case that differed


def test_korean_shingles_ignore_spacing_particles_punctuation_nfd_and_full_width():
    """What re-typing changes in Korean text is not content: each variant has the original's shingles."""
    import unicodedata

    text = "서울은 한국의 수도이며, 인구는 약 천만 명이다. 2024년 기준 GDP는 높다."
    variants = [
        "서울은 한국의 수도 이며 인구는 약 천만명 이다。 2024년기준 GDP는 높다!",  # spacing, punctuation
        "서울이 한국 수도이며, 인구가 약 천만 명이다. 2024년 기준 GDP가 높다.",  # particles
        unicodedata.normalize("NFD", text),  # conjoining jamo
        text.replace("2024", "２０２４").replace("GDP", "ＧＤＰ").replace(",", "，"),
    ]  # full-width
    for variant in variants:
        assert np.array_equal(shingle_hashes(variant, "ko", SIZES), shingle_hashes(text, "ko", SIZES)), (
            variant
        )
    assert not np.array_equal(
        shingle_hashes(text.replace("서울", "부산"), "ko", SIZES), shingle_hashes(text, "ko", SIZES)
    )


def _xxh3_of_each(tokens: list[str]) -> list[int]:
    return [xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in tokens]


def test_code_tokens_are_whitespace_split_words_with_each_punctuation_mark_apart():
    """Code units: the xxh3 of each token of splitting on every character str.split() splits on, each ASCII
    punctuation mark its own token (the numpy tokenizer and hash must give exactly these), whatever the
    token's length or script, and whichever group of texts it is hashed with."""
    spaced = str.maketrans({c: f" {c} " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"})
    text = "def f(x):\n\treturn x[0]+1  # 한글_id\x1c\x85\u3000y==z\u2028é!=ｑ \ud800 😀x " + "".join(
        map(chr, range(0x2100))
    )
    words = " ".join("abcdefghijklmnopqrstuvwxyz0123456789한글"[:n] for n in range(1, 40))
    ascii_only = "".join(map(chr, range(128))) * 2 + " ".join(
        "abcdefghijklmnopqrstuvwxyz0123456789_"[:n] for n in range(1, 38)
    )
    for t in (text, words, ascii_only, "", "a", "a.b(c)"):
        assert code_units(t).tolist() == _xxh3_of_each(t.translate(spaced).split())
    assert len(code_units("a.b(c)")) == 6
    for batch in ([text, "", words, "x"], [ascii_only, "", "x", ascii_only[::-1]]):  # ASCII only: bytes
        assert [u.tolist() for u in shingles.code_units_batch(batch)] == [
            code_units(t).tolist() for t in batch
        ]


def test_code_token_whitespace_is_str_split_whitespace_up_to_the_last_one():
    """The tokenizer's table stops at _LAST_SPACE: no codepoint above it may be whitespace."""
    assert not any(chr(c).isspace() for c in range(shingles._LAST_SPACE + 1, 0x110000))
    assert chr(shingles._LAST_SPACE).isspace()


def test_shingles_of_a_batch_are_each_texts_own(monkeypatch):
    """MinhashSignatures cuts prose into units a group of texts at a time: a text's shingles must not depend
    on its neighbours, on where a group ends, or on a text larger than a group."""
    texts = ["서울은 크다", "", "a\0b 같은 줄", "^^;;", "x" * 100, "Hello world, hello again " * 5, "짧다"]
    langs = ["ko", "en", "en", "ko", "en", "en", "code"]
    alone = [shingle_hashes(t, lang, SIZES).tolist() for t, lang in zip(texts, langs)]
    for group_chars in (40, 1 << 16):  # groups of one to three texts; all in one group
        monkeypatch.setattr(shingles, "GROUP_CHARS", group_chars)
        flat, offsets = shingles.shingle_flat(texts, langs, SIZES)
        bounds = offsets.tolist()
        assert [flat[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])] == alone


def test_ngrams_of_a_batch_are_each_texts_windows():
    """ngrams_flat hashes every text of a window size in one pass and puts each text's windows at its own
    offsets: the same as each text's windows alone (a text shorter than n: one window of all its units;
    an empty one: none), whatever the mix of sizes and lengths."""
    rng = np.random.default_rng(1)
    units = [rng.integers(0, 1 << 63, int(k), dtype=np.uint64) for k in rng.integers(0, 12, 300)]
    ns = rng.choice([3, 5], len(units)).tolist()
    flat, offsets = shingles.ngrams_flat(units, ns)
    for i, (u, n) in enumerate(zip(units, ns)):
        alone = shingles._windows(u, min(n, len(u))) if len(u) else u
        assert flat[offsets[i] : offsets[i + 1]].tolist() == alone.tolist(), i


def test_signatures_of_flat_shingles_are_rensas_rows_and_an_empty_text_is_the_shingle_0():
    """signatures pads the empty sets of a batch with a 0 in one pass: each row is rensa's of that set
    alone (the set {0} where it is empty)."""
    import rensa

    cfg = DedupConfig()
    rng = np.random.default_rng(2)
    sets = [rng.integers(0, 1 << 63, int(k), dtype=np.uint64) for k in [0, 3, 0, 0, 7, 1, 0]]
    offsets = np.concatenate(([0], np.cumsum([len(h) for h in sets])))
    got = minhash.signatures((np.concatenate(sets), offsets), cfg)
    for h, row in zip(sets, got):
        alone = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            h if len(h) else np.zeros(1, dtype=np.uint64),
            np.array([0, max(len(h), 1)], dtype=np.uint64),
            cfg.bands * cfg.rows,
            cfg.seed,
        ).to_rows()[0]
        assert row.tolist() == alone


def test_texts_without_letters_or_digits_keep_their_own_shingles():
    """Prose units ignore symbols; a comment of only symbols or emoji must not share every other one's shingles."""
    for lang in ("ko", "en"):
        assert not np.array_equal(shingle_hashes("^^;;", lang, SIZES), shingle_hashes("😀😀 !!", lang, SIZES))
        assert len(shingle_hashes("😀😀 !!", lang, SIZES))


def test_english_shingles_ignore_punctuation_and_full_width():
    text = 'Install the package, then run `make test`. It prints "ok" when every test passes!'
    variants = [
        "Install the package then run make test. It prints 'ok' when every test passes.",
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text),
    ]
    for variant in variants:
        assert np.array_equal(shingle_hashes(variant, "en", SIZES), shingle_hashes(text, "en", SIZES)), (
            variant
        )
    assert not np.array_equal(
        shingle_hashes(text.replace("passes", "fails"), "en", SIZES), shingle_hashes(text, "en", SIZES)
    )


def test_korean_near_copies_from_a_separate_generator_are_found_without_false_positives():
    """bench/ko_neardup_gen.py (imports nothing from gecko) makes near-copies of real Korean documents; a
    fresh seed (docs use 7) must find every re-spaced, particle-changed, re-punctuated, NFD, full-width and
    re-wrapped copy, 90 % of all copies, and drop no document as a copy of a different one."""
    shared_or_skip("corpus", "ko", "kowiki")
    ev = _bench_module("ko_dedup_eval")
    records, kinds = ev.build(per_source=20, seed=11)
    report = ev.evaluate(records, kinds, DedupConfig())
    for kind in ("respace", "particle", "punct", "nfd", "fullwidth", "rewrap"):
        assert report["recall"][kind][2] == 1.0, (kind, report["recall"][kind])
    assert report["recall_overall"] >= 0.9, report["recall"]
    assert report["false_positive_rate"] == 0.0, report["cross_family_drops"]


def test_exact_and_near_duplicates_are_dropped_with_their_survivor(tmp_path):
    docs = dedup_corpus()
    result = run_dedup(write_docs(docs, tmp_path / "in"), tmp_path / "out", DedupConfig())
    dups = {r["id"]: r for r in map(json.loads, (result.work_dir / "duplicates.jsonl").open())}
    # The longer document of a cluster survives: the upper-cased copy has two extra newlines.
    assert dups["en00"] == {"id": "en00", "lang": "en", "duplicate_of": "exact", "kind": "exact"}
    assert dups["near"]["duplicate_of"] == "en01" and dups["near"]["kind"] == "near"
    assert dups["ko_a"]["duplicate_of"] == "ko_b" and dups["ko_a"]["lang"] == "ko"
    # the report's examples sit under each duplicate's own language
    assert set(result.examples) == {
        "exact_dedup/duplicate/en",
        "minhash_dedup/near_duplicate/en",
        "minhash_dedup/near_duplicate/ko",
    }
    assert len(dups) == 3
    kept = {i for i, _ in shard_texts(tmp_path / "out")}
    assert kept == {d["id"] for d in docs} - set(dups)
    assert result.read == len(docs)  # every document is kept or dropped with a reason
    assert result.dropped[("exact_dedup", "duplicate", "en")] == 1
    assert result.dropped[("minhash_dedup", "near_duplicate", "en")] == 1


def test_dissimilar_documents_survive_a_low_threshold(tmp_path):
    docs = dedup_corpus()[:30]
    result = run_dedup(write_docs(docs, tmp_path / "in"), tmp_path / "out", DedupConfig(threshold=0.5))
    assert sum(result.dropped.values()) == 0


def test_boilerplate_lines_are_removed(tmp_path):
    rng = random.Random(1)
    footer = "Copyright 2024 Example Corp. All rights reserved. Terms of use apply."
    docs = [
        {"id": f"d{i}", "text": f"{random_words(rng, 40)}\n{footer}", "lang": "en", "source": "s"}
        for i in range(25)
    ]
    docs.append({"id": "only", "text": footer, "lang": "en", "source": "s"})
    result = run_dedup(write_docs(docs, tmp_path / "in"), tmp_path / "out", DedupConfig())
    out = dict(shard_texts(tmp_path / "out"))
    assert len(out) == 25 and all(footer not in t for t in out.values())
    assert result.dropped[("boilerplate", "boilerplate_only", "en")] == 1


def _footer_docs() -> list[dict]:
    """Near-duplicate chains where every document also ends with one boilerplate footer."""
    footer = "Copyright 2024 Example Corp. All rights reserved. Terms of use apply."
    return [{**d, "text": f"{d['text']}\n{footer}"} for d in dedup_corpus()]


def test_a_kill_inside_the_index_stage_resumes_to_the_same_output(tmp_path, monkeypatch):
    """The index stage rewrites signatures/ and docs/ in place for stripped documents: killed after the
    first rewrite, a rerun must redo the rank to the same files as an uninterrupted run."""
    docs = _footer_docs()
    fresh = run_dedup(write_docs(docs, tmp_path / "in1", shards=2), tmp_path / "fresh", DedupConfig())
    src = write_docs(docs, tmp_path / "in2", shards=2)

    def killed(self, rank, indices, metas):
        raise KeyboardInterrupt("killed")  # signatures/RANK.npy is rewritten already, docs/RANK.jsonl not yet

    monkeypatch.setattr(minhash.MinhashIndex, "_patch_docs", killed)
    with pytest.raises(KeyboardInterrupt):
        run_dedup(src, tmp_path / "out", DedupConfig())
    monkeypatch.undo()
    again = run_dedup(src, tmp_path / "out", DedupConfig())
    assert shard_texts(tmp_path / "out") == shard_texts(tmp_path / "fresh")
    for name in ("duplicates.jsonl", "docs/00000.jsonl", "docs/00001.jsonl", "bands/exact/00000.npy"):
        assert (again.work_dir / name).read_bytes() == (fresh.work_dir / name).read_bytes(), name
    assert (again.kept, again.dropped) == (fresh.kept, fresh.dropped) and sum(fresh.dropped.values()) > 0
    assert len(np.load(fresh.work_dir / "cuts" / "00000.npy")) > 0  # documents were stripped


def test_output_is_identical_whatever_the_sharding(tmp_path):
    docs = dedup_corpus()
    one = run_dedup(write_docs(docs, tmp_path / "a", shards=1), tmp_path / "out1", DedupConfig(), workers=1)
    three = run_dedup(
        write_docs(docs, tmp_path / "b", shards=3), tmp_path / "out3", DedupConfig(), workers=2, tasks=4
    )
    assert shard_texts(tmp_path / "out1") == shard_texts(tmp_path / "out3")
    assert (one.work_dir / "duplicates.jsonl").read_text() == (
        three.work_dir / "duplicates.jsonl"
    ).read_text()


def test_rerun_after_a_failed_rank_resumes(tmp_path, monkeypatch):
    docs = dedup_corpus()
    src = write_docs(docs, tmp_path / "in")
    original = dedup_filter.documents_again

    def crash_in_rank_1(reader, rank, world_size, records):
        for n, item in enumerate(original(reader, rank, world_size, records)):
            if rank == 1 and n == 2:
                raise KeyboardInterrupt("killed")  # as if the worker died mid-rank
            yield item

    monkeypatch.setattr(dedup_filter, "documents_again", crash_in_rank_1)
    with pytest.raises(KeyboardInterrupt):
        run_dedup(src, tmp_path / "out", DedupConfig())
    work = work_dir_for(tmp_path / "out")
    done = sorted(p.name for p in (work / "logs" / "filter" / "completions").iterdir())
    assert "00001" not in done and "00000" in done
    sig_mtime = (work / "signatures" / "00000.npy").stat().st_mtime_ns
    monkeypatch.setattr(dedup_filter, "documents_again", original)
    run_dedup(src, tmp_path / "out", DedupConfig())
    assert (work / "signatures" / "00000.npy").stat().st_mtime_ns == sig_mtime  # finished stages not redone
    fresh = run_dedup(write_docs(docs, tmp_path / "in2"), tmp_path / "fresh", DedupConfig())
    assert shard_texts(tmp_path / "out") == shard_texts(tmp_path / "fresh") and fresh.read == len(docs)


def test_boilerplate_lines_keyed_from_the_folded_text_are_keyed_as_line_by_line():
    """The tally keys lines of the whole text case-folded at once; where folding changes a length (ß → ss,
    İ → i̇) it must fall back to folding line by line, or a line's length test would change."""
    from gecko.data.steps.dedup.boilerplate import _candidate_lines, line_key

    for text in (
        "Copyright (C) the authors, all rights reserved\nshort\n  Indented   LINE with   spaces, long enough  ",
        "Die Straße ist lang, sehr lang und noch länger\nSTRASSE"
        + " x" * 12
        + "\nİstanbul"
        + " y" * 11
        + "\nßßßßßß",
        "한국어 문장은 이렇게 길게 이어지는 한 줄입니다 서른 글자 이상\r\n\u2028다음 줄",
    ):
        for min_chars in (5, 10, 25, 30):  # "ßßßßßß": 6 characters, 12 folded
            lines = text.splitlines()
            at = [i for i, ln in enumerate(lines) if len(ln.strip()) >= min_chars]
            got_at, keys, normalized = _candidate_lines(text, text.casefold(), min_chars)
            assert (got_at, keys) == (at, [line_key(lines[i]) for i in at]), (text, min_chars)
            assert normalized in (None, " ".join(text.casefold().split())), text


def test_the_tally_normalizes_a_text_as_the_exact_key_does():
    """The exact key's normalization comes from the tally's per-line normalization joined (instead of a
    second split of the whole text): equal to `" ".join(folded.split())` with every whitespace character,
    line breaks included, anywhere in a line or between lines."""
    from gecko.data.steps.dedup.boilerplate import _candidate_lines

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    for c in spaces:
        for text in (f"{c}Ab{c}{c}cd{c}", f"x{c}\r\n{c}y z\n\n{c}", f"{c}{c}", f"한국{c}어\u2028{c}END {c}"):
            _, _, normalized = _candidate_lines(text, text.casefold(), 3)
            assert normalized == " ".join(text.casefold().split()), repr(text)
    assert _candidate_lines("Straße", "strasse", 3)[2] is None  # folded line by line: no normalization


def test_line_counts_count_documents_not_lines():
    """LineMerge's input: per key, the documents that have it, a line repeated in a document once."""
    from collections import Counter

    from gecko.data.steps.dedup.boilerplate import DOC_LINE, line_counts

    rng = np.random.default_rng(0)
    for n in (0, 1, 50, 5000):
        rows = np.zeros(n, dtype=DOC_LINE)
        rows["doc"] = np.sort(rng.integers(0, max(n // 5, 1), n))
        rows["line"] = rng.integers(0, 9, n)
        rows["hash"] = rng.integers(0, 40, n).astype(np.uint64) << np.uint64(58)  # few keys, high bits set
        expected = Counter(h for h, _ in set(zip(rows["hash"].tolist(), rows["doc"].tolist())))
        got = line_counts(rows)
        assert got["hash"].tolist() == sorted(expected)
        assert got["docs"].tolist() == [expected[h] for h in sorted(expected)]


def test_doc_lines_are_what_json_dumps_writes():
    """docs/RANK.jsonl rows are formatted directly, as json.dumps(ensure_ascii=False) writes them: quotes,
    backslashes, control characters, lone surrogates and line separators in an id; a non-string id or
    language goes through json itself."""
    rng = random.Random(0)
    chars = [chr(c) for c in [*range(0x250), 0x2028, 0x2029, 0xD800, 0xDFFF, 0xFEFF, 0x1F600]]
    for _ in range(3000):
        meta = {
            "id": "".join(rng.choices(chars, k=rng.randint(0, 12))),
            "lang": rng.choice(["ko", "en", 'x"\\y', None]),
            "len": rng.randint(0, 10**9),
            "key": rng.getrandbits(64),
        }
        assert minhash.doc_line(meta) == json.dumps(meta, ensure_ascii=False) + "\n", meta
    assert (
        minhash.doc_line({"id": 7, "lang": "ko", "len": 1, "key": 2})
        == '{"id": 7, "lang": "ko", "len": 1, "key": 2}\n'
    )


def test_lines_not_in_shard_writer_form_and_bad_lines_keep_the_filter_aligned(tmp_path):
    """The filter copies a line whose hash is the one the signature pass recorded; a line in another form is
    decoded, and one that does not decode is skipped in every pass: the documents after them must get
    their own decisions (the exact duplicate dropped, the others kept)."""
    from datatrove.data import Document

    from gecko.data.engine.executor import shard_line

    text = "a document long enough to be kept after stripping, twice in the shard"
    lines = [
        shard_line(Document(text=text, id="a", metadata={"lang": "en"})),
        b'{"text": "another one, written by another tool in another key order", "id": "b", "lang": "en"}\n',
        b"{not json\n",
        shard_line(Document(text=text, id="c", metadata={"lang": "en"})),
        shard_line(
            Document(text="a third document with its own words in it", id="d", metadata={"lang": "en"})
        ),
    ]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "00000.jsonl").write_bytes(b"".join(lines))
    result = run_dedup(tmp_path / "in", tmp_path / "out", DedupConfig())
    assert [i for i, _ in shard_texts(tmp_path / "out")] == ["a", "b", "d"]
    duplicates = (result.work_dir / "duplicates.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["id"] for line in duplicates.splitlines()] == ["c"]


def test_languages_outside_the_record_codes_come_from_the_docs_rows(tmp_path):
    """The filter counts kept documents per language from reread.RECORD codes; a language without a code
    (a label langid may add one day) must come from docs/RANK.jsonl, not be miscounted."""
    from gecko.data.steps.dedup.reread import RECORD, lang_code

    langs = ["ko", "ja", "code", "other", "en"]
    records = np.zeros(len(langs), dtype=RECORD)
    records["lang"] = [lang_code(lang) for lang in langs]
    rows = [
        minhash.doc_line({"id": f"d{i}", "lang": lang, "len": 1, "key": 0}) for i, lang in enumerate(langs)
    ]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "00000.jsonl").write_text("".join(rows), encoding="utf-8")
    assert minhash.doc_langs(tmp_path, 0, records) == langs


def test_the_reading_stages_count_their_progress(tmp_path):
    """Progress lines: the signature pass (after its reader) and the filter (which reads its shard itself)
    count every document and its text bytes."""
    docs = dedup_corpus()
    result = run_dedup(write_docs(docs, tmp_path / "in", shards=2), tmp_path / "out", DedupConfig())
    text_bytes = sum(len(d["text"].encode()) for d in docs)
    for stage in ("signatures", "filter"):
        counts = [
            json.loads(f.read_text()) for f in (result.work_dir / "logs" / stage / "progress").iterdir()
        ]
        assert [sum(c[0] for c in counts), sum(c[1] for c in counts)] == [len(docs), text_bytes], stage


def test_cli_dedup_writes_the_duplicate_map(tmp_path, capsys):
    src = write_docs(dedup_corpus(), tmp_path / "in")
    # the records carry lang; random words would be "other" to --lang auto (the default)
    assert main(["data", "dedup", "--in", str(src), "--out", str(tmp_path / "out"), "--lang", "field"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dropped"]["exact_dedup/duplicate/en"] == 1
    assert Path(summary["duplicates"]).exists()


def test_planted_near_copies_are_found_on_real_text(tmp_path):
    path = shared_or_skip("corpus", "ko", "kowiki", "kowiki.jsonl")
    with path.open(encoding="utf-8") as f:
        originals = [
            {"id": f"kw{i}", "text": json.loads(line)["text"][:3000], "lang": "ko", "source": "kowiki"}
            for i, line in zip(range(80), f)
        ]
    cfg = DedupConfig(boilerplate_min_docs=0)
    planted = make_planted(originals, 1, [0.02, 0.05, 0.3], seed=0, cfg=cfg)
    write_shards(planted.docs, tmp_path / "in", 2)
    result = run_dedup(tmp_path / "in", tmp_path / "out", cfg)
    rows = [json.loads(line) for line in (result.work_dir / "duplicates.jsonl").open()]
    s = score(planted, rows, cfg.threshold, cfg)
    assert s["positives"] >= 20 and s["recall"] >= 0.9 and s["precision"] >= 0.9
