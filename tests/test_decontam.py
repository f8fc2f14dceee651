"""Decontamination: planted benchmark text is found (Korean-aware), reported with its items, dropped or flagged."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest

from conftest import read_shards, shared_or_skip
from gecko.config import BenchmarkConfig, DecontamConfig
from gecko.data.steps.decontam import BenchmarkIndex, index_path, load_items, run_decontam
from gecko.data.steps.dedup.planted import write_shards
from gecko.data.text import overlap
from helpers import EN_ITEM, FILLER, KO_ITEM, contaminated_docs, decontam_benchmarks, shard_ids


def test_planted_contamination_is_dropped_and_reported(tmp_path):
    write_shards(contaminated_docs(), tmp_path / "in", 2)
    cfg = DecontamConfig(benchmarks=decontam_benchmarks(tmp_path / "bench"))
    result = run_decontam(tmp_path / "in", tmp_path / "out", cfg)
    assert shard_ids(tmp_path / "out") == {"clean_en", "clean_ko"}
    matches = {m["id"]: m for m in map(json.loads, (result.work_dir / "matches.jsonl").open())}
    assert matches["leak_ko"]["items"] == ["kmmlu:Accounting-test:0"]
    assert matches["leak_en"]["items"] == ["gsm8k:gsm:1"]
    report = (result.work_dir / "report.md").read_text()
    assert "`leak_ko`" in report and "1 items shorter" in report
    assert result.dropped == {("decontam", "contaminated", "en"): 1, ("decontam", "contaminated", "ko"): 1}


def test_flag_mode_keeps_documents_with_metadata(tmp_path):
    write_shards(contaminated_docs(), tmp_path / "in", 1)
    cfg = DecontamConfig(benchmarks=decontam_benchmarks(tmp_path / "bench"), action="flag")
    run_decontam(tmp_path / "in", tmp_path / "out", cfg)
    rows = {r["id"]: r for r in read_shards(tmp_path / "out")}
    assert len(rows) == 4 and rows["leak_en"]["metadata"]["contamination"] == ["gsm8k:gsm:1"]


def test_missing_benchmark_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="nowhere.csv"):
        load_items(BenchmarkConfig("mmlu", str(tmp_path / "nowhere.csv"), "mmlu"))


def test_real_benchmark_items_are_caught(tmp_path):
    gsm = shared_or_skip("eval", "gsm8k", "grade_school_math", "data", "test.jsonl")
    humaneval = shared_or_skip("eval", "humaneval", "data", "HumanEval.jsonl.gz")
    cfg = DecontamConfig(
        benchmarks=(
            BenchmarkConfig("gsm8k", str(gsm), "gsm8k"),
            BenchmarkConfig("humaneval", str(humaneval), "humaneval"),
        )
    )
    q = json.loads(gsm.open().readline())["question"]
    he = load_items(cfg.benchmarks[1])[0].text
    docs = [
        {"id": "gsm", "text": FILLER + q, "lang": "en", "source": "s"},
        {"id": "he", "text": "# utils.py\n" + he, "lang": "code", "source": "s"},
        {"id": "ok", "text": FILLER, "lang": "en", "source": "s"},
    ]
    write_shards(docs, tmp_path / "in", 1)
    run_decontam(tmp_path / "in", tmp_path / "out", cfg)
    assert shard_ids(tmp_path / "out") == {"ok"}


# --- normalization variants and planted real benchmark items -----------------------------------------------

FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}


def _full_width(text: str) -> str:
    return "".join(FULL_WIDTH.get(c, c) for c in text).replace(" ", "\u3000")


def _respace(text: str, rng: random.Random) -> str:
    """Spaces dropped, doubled or turned into line breaks at random, and spaces put around punctuation."""
    out = []
    for c in text:
        if c == " ":
            out.append(
                rng.choice(["", " ", "  ", "\n", " \t"])
                if _is_hangul_near(out)
                else rng.choice([" ", "  ", "\n"])
            )
        elif c in ",.?!:;()":
            out.append(f" {c} ")
        else:
            out.append(c)
    return "".join(out)


def _is_hangul_near(out: list[str]) -> bool:
    return bool(out) and "\uac00" <= out[-1][-1:] <= "\ud7a3"


VARIANTS = {
    "exact": lambda t, rng: t,
    "respaced": _respace,
    "full_width": lambda t, rng: _full_width(t),
    "upper": lambda t, rng: t.upper(),
    "nfkd": lambda t, rng: unicodedata.normalize("NFKD", t),  # decomposed Hangul jamo, compatibility forms
    "all": lambda t, rng: _full_width(_respace(t.upper(), rng)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_item_variants_give_the_same_windows(variant):
    rng = random.Random(0)
    for text in (KO_ITEM, EN_ITEM):
        assert (
            overlap.units([VARIANTS[variant](text, rng)]).hashes.tolist()
            == overlap.units([text]).hashes.tolist()
        )


def test_korean_particles_and_spacing_do_not_hide_a_copy():
    copy = KO_ITEM.replace("잔액시산표의 차변", "잔액시산표가차변").replace("합계액은", "합계액이")
    assert overlap.units([copy]).hashes.tolist() == overlap.units([KO_ITEM]).hashes.tolist()


def test_exam_layouts_of_an_item_are_found(tmp_path, monkeypatch):
    """Copies on exam sites number the question and label the choices (①–④, A., (B), 3)) between them."""
    monkeypatch.setenv("GECKO_CACHE_DIR", str(tmp_path / "cache"))
    ko_q = "피자식물의 소포자 형성에 관한 설명 중 맞는 것은?"
    ko = [
        "제2성숙분열기에서 염색체 2n이 n으로 된다.",
        "화분에는 2개의 정핵과 1개의 영양핵이 있다.",
        "제2성숙분열기에서 4분자 중 3개는 퇴화하고 1개만이 기능을 갖는다.",
        "제2성숙분열기에서 4분자는 3회의 동형분열을 하여 8개의 핵을 갖는다.",
    ]
    en_q = "Which of the following best describes the role of the mitochondria in a eukaryotic cell?"
    en = [
        "It stores the genetic information of the cell",
        "It produces most of the chemical energy as ATP",
        "It synthesizes proteins from amino acids",
        "It packages proteins for export out of the cell",
    ]
    (tmp_path / "kmmlu").mkdir()
    (tmp_path / "mmlu").mkdir()
    (tmp_path / "kmmlu" / "Biology-test.csv").write_text(
        "question,answer,A,B,C,D\n" + ",".join([ko_q, "3", *ko]) + "\n", encoding="utf-8"
    )
    (tmp_path / "mmlu" / "biology_test.csv").write_text(",".join([en_q, *en, "B"]) + "\n", encoding="utf-8")
    cfg = DecontamConfig(
        benchmarks=(
            BenchmarkConfig("kmmlu", str(tmp_path / "kmmlu"), "kmmlu"),
            BenchmarkConfig("mmlu", str(tmp_path / "mmlu"), "mmlu"),
        )
    )
    index = BenchmarkIndex(index_path(cfg))
    layouts = {
        "circled": f"문제 5. {ko_q}\n① {ko[0]}\n② {ko[1]}\n③ {ko[2]}\n④ {ko[3]}\n정답: ③",
        "letters": f"Q7) {ko_q}\nA. {ko[0]}\nB. {ko[1]}\nC. {ko[2]}\nD. {ko[3]}\n답: C",
        "parens": f"Question 12: {en_q}\n(A) {en[0]}\n(B) {en[1]}\n(C) {en[2]}\n(D) {en[3]}\nAnswer: (B)",
        "numbered": f"12. {en_q} 1) {en[0]} 2) {en[1]} 3) {en[2]} 4) {en[3]}",
    }
    found = index.match([FILLER + "\n" + text for text in layouts.values()] + [FILLER])
    assert [bool(f) for f in found] == [True] * len(layouts) + [False], dict(zip(layouts, found))


def test_units_never_span_two_texts():
    both = overlap.units(["alpha beta", "gamma"])
    assert both.text_of.tolist() == [0, 0, 1]
    assert (
        both.hashes.tolist()
        == overlap.units(["alpha beta"]).hashes.tolist() + overlap.units(["gamma"]).hashes.tolist()
    )


def _real_benchmarks() -> tuple[BenchmarkConfig, ...]:
    e = ("eval",)
    return (
        BenchmarkConfig("kmmlu", str(shared_or_skip(*e, "kmmlu", "data")), "kmmlu"),
        BenchmarkConfig("mmlu", str(shared_or_skip(*e, "mmlu", "data")), "mmlu"),
        BenchmarkConfig(
            "humaneval", str(shared_or_skip(*e, "humaneval", "data", "HumanEval.jsonl.gz")), "humaneval"
        ),
        BenchmarkConfig("mbpp", str(shared_or_skip(*e, "mbpp", "mbpp.jsonl")), "mbpp"),
        BenchmarkConfig(
            "gsm8k", str(shared_or_skip(*e, "gsm8k", "grade_school_math", "data", "test.jsonl")), "gsm8k"
        ),
    )


def _corpus(lang: str, n: int) -> list[str]:
    path = {
        "ko": ("corpus", "ko", "kowiki", "kowiki.jsonl"),
        "en": ("corpus", "en", "debian_docs", "debian_docs_en.jsonl"),
    }
    with shared_or_skip(*path[lang]).open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line, _ in zip(f, range(n))]


@pytest.mark.slow
def test_planted_real_items_are_found_and_clean_text_is_not(tmp_path):
    """Real items of all five benchmarks, changed by every variant, planted into real articles and manuals
    (code items into real stdlib modules): every checked item is found, and the untouched hosts are not."""
    cfg = DecontamConfig(benchmarks=_real_benchmarks())
    index = BenchmarkIndex(index_path(cfg))
    rng = random.Random(17)
    hosts = {
        "ko": _corpus("ko", 300),
        "en": _corpus("en", 300),
        "code": [
            p.read_text(encoding="utf-8")
            for p in sorted(Path(json.__file__).parent.parent.glob("*.py"))[:300]
        ],
    }
    assert not any(index.match(hosts["ko"] + hosts["en"] + hosts["code"])), "clean hosts flagged"
    planted, expected = [], []
    for bench in cfg.benchmarks:
        items = load_items(bench)
        weights = overlap.text_weights([it.text for it in items])
        items = [it for it, w in zip(items, weights) if w >= cfg.min_item_units * overlap.WORD_WEIGHT]
        lang = {"kmmlu": "ko", "humaneval": "code", "mbpp": "code"}.get(bench.name, "en")
        for item in rng.sample(items, 8):
            variant = rng.choice(sorted(VARIANTS))
            host = rng.choice(hosts[lang])
            cut = rng.randrange(len(host))
            planted.append(host[:cut] + "\n" + VARIANTS[variant](item.text, rng) + "\n" + host[cut:])
            expected.append((item.id, variant))
    found = index.match(planted)
    missed = [e for e, items in zip(expected, found) if e[0] not in items]
    assert not missed, missed
