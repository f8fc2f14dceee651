"""Multiple choice in both formulations against a hand computation, the bootstrap interval, LAMBADA's greedy
accuracy, and the early-suite readers on the released files (where ../shared is present)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from conftest import shared_or_skip
from gecko.config import EvalConfig, expand_tasks, load_config
from gecko.errors import ConfigError
from gecko.eval import suite
from gecko.eval.choice import EN_FORMAT, bootstrap_ci, evaluate_choice, evaluate_last_word
from gecko.eval.data import MCItem
from gecko.eval.lm import Scored


class TableLM:
    """Scores looked up by (the question of the context's last block, continuation); records every request."""

    def __init__(self, table: dict[tuple[str, str], tuple[float, int]]):
        self.table, self.requests = table, []

    def score(self, requests: Sequence[tuple[str, str]]) -> list[Scored]:
        self.requests += list(requests)
        out = []
        for context, continuation in requests:
            block = context.rsplit("\n\n", 1)[-1]
            question = next(q for q, c in self.table if q in block and c == continuation)
            logprob, n_tokens = self.table[question, continuation]
            out.append(Scored(logprob, n_tokens, False))
        return out


SHOT = MCItem("S?", ("x", "y"), 0, "", "shots:1")
ITEMS = [MCItem("Q?", ("ab", "abcdef", "abc"), 1, "", "t:1"), MCItem("R?", ("no", "yes"), 0, "", "t:2")]
TABLE = {
    # Q?: raw picks "ab" (-3), per token "abc" (-4/4 = -1), per char "abcdef" (-6/6 = -1): only per char is right
    ("Q?", " ab"): (-3.0, 1),
    ("Q?", " abcdef"): (-6.0, 3),
    ("Q?", " abc"): (-4.0, 4),
    ("Q?", " A"): (-1.2, 1),
    ("Q?", " B"): (-0.7, 1),
    ("Q?", " C"): (-2.0, 1),  # MC: B, right
    # R?: raw and per token pick "no" (right); per char "yes" (-2.5/3 > -2/2): wrong
    ("R?", " no"): (-2.0, 1),
    ("R?", " yes"): (-2.5, 1),
    ("R?", " A"): (-3.0, 1),
    ("R?", " B"): (-1.0, 1),  # MC: B, wrong
}


def test_both_formulations_match_a_hand_computation():
    lm = TableLM(TABLE)
    metrics, records = evaluate_choice(lm, {"": ITEMS}, {"": [SHOT]}, 1, EN_FORMAT, "both", None)
    assert [
        (r["mc_acc_pred"], r["cloze_acc_pred"], r["cloze_acc_per_token_pred"], r["cloze_acc_per_char_pred"])
        for r in records
    ] == [(1, 0, 2, 1), (1, 0, 0, 1)]
    assert (
        metrics["mc_acc"],
        metrics["cloze_acc"],
        metrics["cloze_acc_per_token"],
        metrics["cloze_acc_per_char"],
    ) == (0.5, 0.5, 0.5, 0.5)
    assert metrics["chance"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert (metrics["n"], metrics["shots"], metrics["formulations"]) == (2, 1, ["mc", "cloze"])
    assert "mc_acc_macro" not in metrics  # one subject: no macro average
    # The prompts, character for character: the shot is solved in the same formulation as the question.
    mc_context = "Question: S?\nA. x\nB. y\nAnswer: A\n\nQuestion: Q?\nA. ab\nB. abcdef\nC. abc\nAnswer:"
    cloze_context = "Question: S?\nAnswer: x\n\nQuestion: Q?\nAnswer:"
    assert (mc_context, " B") in lm.requests and (cloze_context, " abcdef") in lm.requests
    only_cloze, _ = evaluate_choice(TableLM(TABLE), {"": ITEMS}, {}, 0, EN_FORMAT, "cloze", None)
    assert "mc_acc" not in only_cloze and only_cloze["cloze_acc_per_char"] == 0.5


def test_item_specific_cloze_pairs_and_ties_to_the_first_choice():
    """Winogrande-style: each option fills the blank and the same rest of the sentence is scored."""
    item = MCItem("A _ b", ("x", "y"), 1, "", "w:1", cloze=(("A x", " b"), ("A y", " b")))
    lm = TableLM(
        {
            ("A x", " b"): (-1.0, 1),
            ("A y", " b"): (-1.0, 1),
            ("A _ b", " A"): (-1.0, 1),
            ("A _ b", " B"): (-1.0, 1),
        }
    )
    metrics, records = evaluate_choice(lm, {"": [item]}, {}, 0, EN_FORMAT, "both", None)
    assert ("A x", " b") in lm.requests and ("A y", " b") in lm.requests
    assert records[0]["cloze_acc_pred"] == 0 and records[0]["mc_acc_pred"] == 0  # ties: the first choice
    assert metrics["cloze_acc"] == 0.0


def test_macro_and_micro_over_subjects_with_intervals():
    items = {
        "a": [MCItem(f"a{i}?", ("p", "q"), 0, "a", f"a:{i}") for i in range(3)],
        "b": [MCItem("b0?", ("p", "q"), 1, "b", "b:0")],
    }
    table = {(f"a{i}?", " A"): (0.0, 1) for i in range(3)} | {(f"a{i}?", " B"): (-1.0, 1) for i in range(3)}
    table |= {("b0?", " A"): (0.0, 1), ("b0?", " B"): (-1.0, 1)}
    metrics, _ = evaluate_choice(TableLM(table), items, {}, 0, EN_FORMAT, "mc", None)
    assert metrics["mc_acc"] == 3 / 4 and metrics["mc_acc_macro"] == (1 + 0) / 2
    assert metrics["per_subject"] == {"a": {"mc_acc": 1.0}, "b": {"mc_acc": 0.0}}
    assert metrics["mc_acc_macro_ci"] == [0.5, 0.5]  # no spread within either subject


def test_bootstrap_interval_agrees_with_resampling_items():
    rng = np.random.default_rng(1)
    right = (rng.random(400) < 0.3).astype(float)
    lo, hi = bootstrap_ci(right)
    resampled = right[rng.integers(0, len(right), (4000, len(right)))].mean(axis=1)
    assert lo == pytest.approx(np.percentile(resampled, 2.5), abs=0.01)
    assert hi == pytest.approx(np.percentile(resampled, 97.5), abs=0.01)
    assert lo < right.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * (0.3 * 0.7 / 400) ** 0.5, abs=0.015)


def test_lambada_counts_greedy_last_words():
    class Greedy:
        def score(self, requests):
            return [Scored(-1.0, 1, c == " yes") for _, c in requests]

    metrics, records = evaluate_last_word(Greedy(), [("l:1", "a", " yes"), ("l:2", "b", " no")], None)
    assert metrics["cloze_acc"] == 0.5 and metrics["chance"] == 0.0 and metrics["n"] == 2
    assert metrics["perplexity"] == pytest.approx(np.e) and records[0]["greedy"] is True


def test_suite_names_expand_and_are_checked():
    assert expand_tasks(("bpb", "early"))[:3] == ("bpb", "kobest_boolq", "kobest_copa")
    assert expand_tasks((), "early") == expand_tasks(("early",))
    cfg = load_config(None, ["eval.suite=early", "train.eval_tasks=[early]"])
    assert cfg.eval.suite == "early"
    with pytest.raises(ConfigError, match="eval.suite"):
        load_config(None, ["eval.suite=late"])


# ── the released files ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "name, n_test, n_pool, n_choices",
    [
        ("kobest_boolq", 1404, 3665, 2),
        ("kobest_copa", 1000, 3076, 2),
        ("kobest_hellaswag", 500, 2029, 4),
        ("kobest_sentineg", 397, 3649, 2),
        ("kobest_wic", 1260, 3318, 2),
        ("arc_easy", 570, 2251, None),
        ("arc_challenge", 299, 1119, None),
        ("piqa", 1833, 5, 2),
        ("winogrande", 1267, 2558, 2),
    ],
)
def test_suite_readers_parse_the_released_files(name: str, n_test: int, n_pool: int, n_choices: int | None):
    root = shared_or_skip("eval")
    e = EvalConfig(
        kobest_dir=str(root / "kobest/v1.0"),
        arc_dir=str(root / "arc"),
        piqa_dir=str(root / "piqa"),
        winogrande_dir=str(root / "winogrande"),
    )
    spec = suite.choice_spec(name, e)
    test, pool = spec.test[""], spec.shots[""]
    assert (len(test), len(pool)) == (n_test, n_pool)
    assert all(0 <= it.answer < len(it.choices) for it in test + pool)
    if n_choices:
        assert {len(it.choices) for it in test} == {n_choices}
    labels = np.bincount([it.answer for it in test])
    assert labels.min() > 0  # every answer position occurs: no label read as a constant
    if name == "winogrande":
        assert labels.tolist() == [628, 639]  # SOURCE.md
    if name == "kobest_sentineg":
        assert test[0].context and "Label" not in test[0].context


def test_lambada_reader_splits_at_the_last_space():
    root = shared_or_skip("eval")
    items = suite.lambada(root / "lambada_openai/lambada_test.jsonl")
    assert len(items) == 5153 and items[0][2] == " signs"
    assert all(t.startswith(" ") and " " not in t[1:] for _, _, t in items)


def test_piqa_shots_are_never_scored():
    root = shared_or_skip("eval")
    spec = suite.choice_spec("piqa", dataclasses.replace(EvalConfig(piqa_dir=str(root / "piqa")), mc_shots=3))
    assert {it.where for it in spec.shots[""]}.isdisjoint({it.where for it in spec.test[""]})
    assert len(spec.test[""]) == 1838 - 3


# ── decontamination sources ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.slow  # indexes 50k released items
def test_suite_benchmarks_are_decontamination_sources(tmp_path, monkeypatch):
    from gecko.config import BenchmarkConfig, DecontamConfig
    from gecko.data.steps.decontam import BenchmarkIndex, index_path, load_items

    root = shared_or_skip("eval")
    sets = {
        "kobest": (
            root / "kobest/v1.0",
            3665 + 700 + 1404 + 3076 + 500 + 1000 + 2029 + 500 + 500 + 3649 + 400 + 397 + 3318 + 610 + 1260,
        ),
        "arc": (root / "arc", 2251 + 570 + 1119 + 299),
        "piqa": (root / "piqa/valid.jsonl", 1838),
        "winogrande": (root / "winogrande", 1267 + 2558),
        "lambada": (root / "lambada_openai/lambada_test.jsonl", 5153),
    }
    for fmt, (path, n) in sets.items():
        items = load_items(BenchmarkConfig(fmt, str(path), fmt))
        assert len(items) == n, fmt
    arc_item = next(
        i for i in load_items(BenchmarkConfig("arc", str(root / "arc"), "arc")) if len(i.text) > 200
    )
    assert "{" not in arc_item.text  # nested fields are text, not a dict's repr
    cfg = DecontamConfig(benchmarks=tuple(BenchmarkConfig(f, str(p), f) for f, (p, _) in sets.items()))
    monkeypatch.setenv("GECKO_CACHE_DIR", str(tmp_path))
    index = BenchmarkIndex(index_path(cfg))
    copa = (root / "kobest/v1.0/COPA/test.tsv").read_text(encoding="utf-8").splitlines()[1].split("\t")
    planted = f"오늘의 일기. {copa[1]} {copa[3]} {copa[4]} 그리고 하루가 끝났다."
    assert index.match([planted])[0]


def test_tables_off_a_terminal_keep_names_and_intervals_whole(capsys):
    """CI logs and nohup files are not terminals: rich would cut the table to 80 columns with `…`."""
    from gecko.eval.report import print_tables

    results = {
        "step": 7,
        "val_bpb": {},
        "tasks": {
            "haerae_general_knowledge": {
                "n": 176,
                "shots": 5,
                "formulations": ["mc"],
                "chance": 0.2,
                "majority": 0.24,
                "mc_acc": 0.3125,
                "mc_acc_ci": [0.2443, 0.3807],
            }
        },
    }
    print_tables(results)
    out = capsys.readouterr().out
    assert "haerae_general_knowledge" in out and "0.244–0.381" in out and "…" not in out
