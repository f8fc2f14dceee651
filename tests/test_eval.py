"""The eval suite: exact scores from a scripted model on every task type, pass@k, the GECKO model adapter,
the data readers (on the real benchmark files where present) and the report."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from conftest import shared_or_skip
from gecko.config import EvalConfig, MCSetConfig, load_config
from gecko.errors import ConfigError, DataError
from gecko.eval import data
from gecko.eval.harness import evaluate_tasks
from gecko.eval.lm import GeckoLM, Scored
from gecko.eval.report import markdown_report
from gecko.eval.tasks import GSM8K_COT_EXEMPLARS, GSM8K_STOP, extract_number, pass_at_k
from gecko.infer.generate import GREEDY, generate_batch
from gecko.tokens import load_tokenizer
from helpers import make_model, make_tokenizer

# ── a model whose answers are known ─────────────────────────────────────────────────────────────────────


class ScriptedLM:
    """Answers multiple choice by the letter scripted for the asked question (found in the prompt's last
    block) and generates the scripted text for a prompt ending in a known key, one per sample seed."""

    def __init__(self, letters: dict[str, str], outputs: dict[str, list[str]]):
        self.letters, self.outputs = letters, outputs

    def score(self, requests: Sequence[tuple[str, str]]) -> list[Scored]:
        out = []
        for context, continuation in requests:
            question = context.rsplit("\n\n", 1)[-1].split("\n", 1)[0]
            out.append(Scored(0.0 if continuation == f" {self.letters[question]}" else -1.0, 1, False))
        return out

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Sequence[str],
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        return [next(v[seed] for k, v in self.outputs.items() if p.endswith(k)) for p in prompts]


def write_csv(path: Path, rows: list[list[object]], header: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def write_jsonl(path: Path, rows: list[dict[str, object]], gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())


def kmmlu_files(root: Path) -> dict[str, str]:
    """Two subjects of 4 and 2 questions; returns {question: correct letter}."""
    header = ["question", "answer", "A", "B", "C", "D", "Category", "Human Accuracy"]
    answers = {}
    for subject, n in (("Alpha", 4), ("Beta", 2)):
        write_csv(
            root / f"{subject}-dev.csv",
            [[f"{subject} 예제 {i}?", 1, "가", "나", "다", "라", subject, 0.5] for i in range(5)],
            header,
        )
        rows = [
            [f"{subject} 문제 {i}?", i % 4 + 1, "0.10", "None", "True", "1,000", subject, 0.5]
            for i in range(n)
        ]
        write_csv(root / f"{subject}-test.csv", rows, header)
        answers.update({r[0]: "ABCD"[r[1] - 1] for r in rows})
    return answers


def test_scripted_model_scores_exactly_on_every_task(tmp_path: Path):
    gold = kmmlu_files(tmp_path / "kmmlu")
    # Alpha: 3 of 4 right; Beta: 0 of 2 → micro 3/6, macro (3/4 + 0)/2.
    wrong = {"Alpha 문제 3?", "Beta 문제 0?", "Beta 문제 1?"}
    letters = {q: ("B" if a == "A" else "A") if q in wrong else a for q, a in gold.items()}

    write_csv(
        tmp_path / "mmlu/dev/algebra_dev.csv", [[f"dev {i}", "1", "2", "3", "4", "A"] for i in range(5)]
    )
    mmlu_rows = [[f"What is {i}?", "0", "1", "2", "3", "ABCD"[i]] for i in range(4)]
    write_csv(tmp_path / "mmlu/test/algebra_test.csv", mmlu_rows)
    letters.update({"What is 0?": "A", "What is 1?": "B", "What is 2?": "A", "What is 3?": "A"})  # 2 of 4

    write_jsonl(
        tmp_path / "local.jsonl",
        [{"q": f"local {i}", "o1": "x", "o2": "y", "o3": "z", "gold": i % 3} for i in range(3)],
    )
    letters.update({"local 0": "A", "local 1": "B", "local 2": "A"})  # 2 of 3 (answer_base 0: gold 0, 1, 2)

    gsm = tmp_path / "gsm8k"  # no train.jsonl: the standard exemplars are built in
    write_jsonl(
        gsm / "test.jsonl",
        [
            {"question": "q1", "answer": "so\n#### 18"},
            {"question": "q2", "answer": "so\n#### 1000"},
            {"question": "q3", "answer": "so\n#### 6"},
        ],
    )
    outputs = {
        "Q: q1\nA:": [" 9 * 2 = 18. The answer is 18."],
        "Q: q2\nA:": [" They have 1,000 apples"],
        "Q: q3\nA:": [" The answer is 5. Not 6"],
    }  # 2 of 3

    he = [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f"def f{i}(x):\n",
            "entry_point": f"f{i}",
            "test": f"def check(fn):\n    assert fn(2) == {i + 5}\n",
        }
        for i in range(2)
    ]
    write_jsonl(tmp_path / "HumanEval.jsonl.gz", he, gz=True)
    outputs["def f0(x):\n"] = [
        "    return x + 3\n",
        "    return x\n",
        "    return open('/etc/passwd').read()\n",
    ]
    outputs["def f1(x):\n"] = ["    return x + 4\n", "    return 6\n", "    while True:\n        pass\n"]
    # c = 1 and 2 of n = 3: pass@1 = (1/3 + 2/3)/2; pass@2 = ((1 - C(2,2)/C(3,2)) + 1)/2 = 5/6

    write_jsonl(
        tmp_path / "mbpp.jsonl",
        [
            {
                "task_id": 1,
                "text": "not in the test split",
                "test_list": ["assert False"],
                "test_setup_code": "",
            },
            {
                "task_id": 11,
                "text": "Double a number.",
                "test_setup_code": "import math",
                "test_list": ["assert double(2) == 4", "assert double(0) == 0"],
            },
        ],
    )
    mbpp_prompt = '"""\nDouble a number.\nassert double(2) == 4\n"""\n'
    outputs[mbpp_prompt] = ["def double(x):\n    return 2 * x\n"] * 3

    local = MCSetConfig("local", str(tmp_path / "local.jsonl"), "q", ("o1", "o2", "o3"), "gold", 0)
    e = EvalConfig(
        kmmlu_dir=str(tmp_path / "kmmlu"),
        mmlu_dir=str(tmp_path / "mmlu"),
        gsm8k_dir=str(gsm),
        humaneval_file=str(tmp_path / "HumanEval.jsonl.gz"),
        mbpp_file=str(tmp_path / "mbpp.jsonl"),
        code_samples=3,
        code_pass_k=(1, 2),
        sandbox_timeout_s=2.0,
        mc_sets=(local,),
        formulation="mc",
    )
    lm = ScriptedLM(letters, outputs)
    tasks = ("kmmlu", "mmlu", "gsm8k", "humaneval", "mbpp", "local")
    r = evaluate_tasks(lm, e, tasks, tmp_path / "out")

    assert r["kmmlu"]["mc_acc"] == 3 / 6 and r["kmmlu"]["mc_acc_macro"] == (3 / 4 + 0) / 2
    assert r["kmmlu"]["per_subject"] == {"Alpha": {"mc_acc": 0.75}, "Beta": {"mc_acc": 0.0}}
    assert r["kmmlu"]["chance"] == 0.25 and r["kmmlu"]["formulations"] == ["mc"]
    assert r["mmlu"]["mc_acc"] == 0.5
    assert r["local"]["mc_acc"] == 2 / 3 and r["local"]["chance"] == 1 / 3
    assert r["gsm8k"]["exact_match"] == 2 / 3
    assert r["humaneval"]["pass@1"] == pytest.approx(0.5, abs=1e-12)
    assert r["humaneval"]["pass@2"] == pytest.approx(5 / 6, abs=1e-12)
    assert r["mbpp"] == {**r["mbpp"], "n": 1, "pass@1": 1.0, "pass@2": 1.0}
    records = [json.loads(x) for x in (tmp_path / "out/samples/humaneval.jsonl").read_text().splitlines()]
    assert records[0]["passed"] == [True, False, False] and records[1]["status"][2] in ("timeout", "failed")

    # --limit counts per subject, as lm-eval's does: one question of each KMMLU subject.
    limited = evaluate_tasks(lm, dataclasses.replace(e, limit=1), ("kmmlu",))["kmmlu"]
    assert (limited["n"], limited["mc_acc"], limited["mc_acc_macro"]) == (2, 0.5, 0.5)


def test_pass_at_k_matches_counting_subsets():
    for n, c, k in itertools.product(range(1, 7), range(0, 7), range(1, 7)):
        if c > n or k > n:
            continue
        subsets = list(itertools.combinations([True] * c + [False] * (n - c), k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets), abs=1e-12)
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(3, 1, 5)


class PromptRecorder:
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Sequence[str],
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        self.prompts += prompts
        self.stop = tuple(stop)
        return ["The answer is 7."] * len(prompts)


def test_gsm8k_uses_the_standard_exemplars_of_lm_eval_gsm8k_cot(tmp_path):
    yaml = pytest.importorskip("yaml")
    lm_eval = pytest.importorskip("lm_eval")
    spec = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/gsm8k/gsm8k-cot.yaml").read_text())
    assert [(s["question"], s["target"]) for s in spec["fewshot_config"]["samples"]] == list(
        GSM8K_COT_EXEMPLARS
    )
    assert (
        spec["doc_to_text"] == "Q: {{question}}\nA:"
        and tuple(spec["generation_kwargs"]["until"]) == GSM8K_STOP
    )

    write_jsonl(
        tmp_path / "test.jsonl",
        [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4\n#### 7"}],
    )
    lm = PromptRecorder()
    metrics = evaluate_tasks(lm, EvalConfig(gsm8k_dir=str(tmp_path)), ("gsm8k",))["gsm8k"]
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in GSM8K_COT_EXEMPLARS)  # lm-eval: " " then a blank line
    assert lm.prompts == [shots + "Q: Tom has 3 apples and buys 4. How many?\nA:"] and lm.stop == GSM8K_STOP
    assert (metrics["exact_match"], metrics["shots"]) == (1.0, 8)


def test_gsm8k_train_split_exemplars_are_an_option(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [{"question": "q", "answer": "so\n#### 7"}])
    with pytest.raises(DataError, match="train.jsonl"):
        evaluate_tasks(
            PromptRecorder(), EvalConfig(gsm8k_dir=str(tmp_path), gsm8k_fewshot="train"), ("gsm8k",)
        )
    write_jsonl(
        tmp_path / "train.jsonl",
        [{"question": f"t{i}", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"} for i in range(3)],
    )
    lm = PromptRecorder()
    e = EvalConfig(gsm8k_dir=str(tmp_path), gsm8k_fewshot="train", gsm8k_shots=2)
    evaluate_tasks(lm, e, ("gsm8k",))
    shot = "A: 1 + 1 = 2 The answer is 2.\n\n"
    assert lm.prompts == [f"Q: t0\n{shot}Q: t1\n{shot}Q: q\nA:"]
    with pytest.raises(ConfigError, match="eval.gsm8k_shots=9: the standard exemplars are 8"):
        load_config(None, ["eval.gsm8k_shots=9"])


def test_gsm8k_answer_extraction():
    assert extract_number("so 3 + 4 = 7. The answer is 1,234.") == "1234"
    assert extract_number("we get $12.50 and then 18.0") == "18"
    assert extract_number("The answer is $-3.") == "-3"
    assert extract_number("no digits") is None


# ── the GECKO model behind the interface ────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def gecko_lm(tmp_path_factory: pytest.TempPathFactory) -> GeckoLM:
    tok = load_tokenizer(make_tokenizer(tmp_path_factory.mktemp("tok")))
    return GeckoLM(make_model(tok.get_vocab_size()), tok, batch_size=3)


def test_loglikelihood_equals_a_direct_forward(gecko_lm: GeckoLM):
    requests = [
        ("대한민국의 수도는", " 서울"),
        ("Answer:", " A"),
        ("Answer:", " B"),
        ("x = ", "42"),
        ("긴 문맥 " * 80, " A"),
    ]  # the last is longer than the 128-token window
    got = gecko_lm.score(requests)
    for (context, continuation), (value, n_tokens, greedy) in zip(requests, got, strict=True):
        ctx, cont = gecko_lm.encode_pair(context, continuation)
        seq = torch.tensor((ctx + cont)[-129:])
        with torch.no_grad():
            logp = torch.log_softmax(gecko_lm.model(seq[None, :-1])[0], dim=-1)
        rows = [len(seq) - 1 - len(cont) + j for j in range(len(cont))]
        expected = sum(float(logp[r, t]) for r, t in zip(rows, cont, strict=True))
        assert value == pytest.approx(expected, abs=1e-4) and n_tokens == len(cont)
        assert greedy == all(int(logp[r].argmax()) == t for r, t in zip(rows, cont, strict=True))
    # trailing spaces move to the continuation, as lm-eval does
    assert gecko_lm.encode_pair("x = ", "42") == gecko_lm.encode_pair("x =", " 42")
    assert gecko_lm.truncated >= 1


def test_greedy_generation_is_the_batched_decoder_cut_at_stop(gecko_lm: GeckoLM):
    prompts = ["대한민국의 수도는", "def add(a, b):"]
    got = gecko_lm.generate(prompts, 12, stop=())
    ids = [gecko_lm.tokenizer.encode(p).ids for p in prompts]
    expected = generate_batch(gecko_lm.model, ids, 12, GREEDY, eos_id=gecko_lm.eos_id)
    assert got == [gecko_lm.tokenizer.decode(r) for r in expected]
    cut = gecko_lm.generate(prompts, 12, stop=[got[0][2:4]] if len(got[0]) > 4 else ["\n"])
    assert len(cut[0]) <= len(got[0])


# ── data readers, errors and the report ─────────────────────────────────────────────────────────────────


def test_bad_rows_name_file_and_line(tmp_path: Path):
    header = ["question", "answer", "A", "B", "C", "D"]
    rows = [["ok?", 2, "a", "b", "c", "d"], ["bad?", 7, "a", "b", "c", "d"]]
    write_csv(tmp_path / "X-test.csv", rows, header)
    with pytest.raises(DataError, match=r"X-test.csv:3: answer '7' must be an integer in 1…4"):
        data.kmmlu(tmp_path, "test")
    (tmp_path / "g.jsonl").write_text('{"question": "q", "answer": "no final line"}\n{oops\n')
    with pytest.raises(DataError, match=r"g.jsonl:1: answer has no '#### N'"):
        data.gsm8k(tmp_path / "g.jsonl")
    with pytest.raises(DataError, match="test: folder not found"):
        data.mmlu(tmp_path, "test")
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match=r"no files matching \*_test.csv"):
        data.mmlu(tmp_path, "test")


def test_missing_data_is_an_error_or_a_recorded_skip(tmp_path: Path):
    e = EvalConfig(kmmlu_dir=str(tmp_path / "absent"))
    with pytest.raises(DataError, match="eval kmmlu: data not found"):
        evaluate_tasks(ScriptedLM({}, {}), e, ("kmmlu",))
    skipped = evaluate_tasks(ScriptedLM({}, {}), dataclasses.replace(e, missing_data="skip"), ("kmmlu",))
    assert "absent" in skipped["kmmlu"]["skipped"]


def test_eval_config_is_checked():
    with pytest.raises(ConfigError, match="unknown task 'kmmluu'"):
        load_config(None, ["eval.tasks=[kmmluu]"])
    with pytest.raises(ConfigError, match="pass@k needs"):
        load_config(None, ["eval.code_pass_k=[1,10]", "eval.code_samples=5"])


def test_cli_tasks_and_limit_become_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from gecko.cli import main

    assert main(["eval", str(tmp_path / "none.yaml"), "--tasks", "kmmlu", "--dry-run"]) == 2  # no such file
    config = tmp_path / "c.yaml"
    config.write_text("run_dir: x\n")
    assert main(["eval", str(config), "--tasks", "kmmlu,gsm8k", "--limit", "3", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)["eval"]
    assert resolved["tasks"] == ["kmmlu", "gsm8k"] and resolved["limit"] == 3


def test_report_puts_chance_beside_each_score():
    results = {
        "step": 10,
        "val_bpb": {"ko": 2.0},
        "val_bpb_step0": {"ko": 8.0},
        "truncated_inputs": 0,
        "tasks": {
            "kmmlu": {
                "mc_acc_macro": 0.3,
                "mc_acc_macro_ci": [0.25, 0.35],
                "mc_acc": 0.31,
                "mc_acc_ci": [0.28, 0.34],
                "cloze_acc_per_char": 0.4,
                "cloze_acc_per_char_ci": [0.36, 0.44],
                "cloze_acc_per_token": 0.38,
                "cloze_acc_per_token_ci": [0.3, 0.4],
                "cloze_acc": 0.33,
                "cloze_acc_ci": [0.3, 0.36],
                "formulations": ["mc", "cloze"],
                "chance": 0.25,
                "majority": 0.32,
                "n": 90,
                "shots": 5,
            },
            "humaneval": {"pass@1": 0.0, "chance": 0.0, "n": 2},
            "mmlu": {"skipped": "data not found: /x"},
        },
    }
    md = markdown_report(results)
    assert "| ko | 8.000 | 2.000 | -6.000 |" in md
    assert "| kmmlu | mc | acc_macro | 0.300 | 0.250–0.350 | 0.250 | 0.320 | 90 | 5 |" in md
    assert "| kmmlu | mc | acc | 0.310 | 0.280–0.340 | 0.250 | 0.320 | 90 | 5 |" in md
    assert "| kmmlu | cloze | acc_per_char | 0.400 | 0.360–0.440 | 0.250 | 0.320 | 90 | 5 |" in md
    assert "| kmmlu | cloze | acc_per_token | 0.380 |" in md and "| kmmlu | cloze | acc | 0.330 |" in md
    assert "| humaneval | generate | pass@1 | 0.000 | – | 0.000 | – | 2 | 0 |" in md
    assert "| mmlu | – | – | skipped | – | – | – | – | data not found: /x |" in md


def test_majority_baseline_is_the_best_constant_letter_macro_averaged():
    from gecko.eval.choice import majority_baseline

    records = [
        {"subject": "a", "answer": 3},
        {"subject": "a", "answer": 3},
        {"subject": "a", "answer": 0},
        {"subject": "b", "answer": 1},
        {"subject": "b", "answer": 3},
    ]
    assert majority_baseline(records) == (2 / 3 + 1 / 2) / 2


# ── the released benchmark files, where present ─────────────────────────────────────────────────────────


def test_real_benchmark_files_parse_completely():
    root = shared_or_skip("eval")
    test = data.kmmlu(root / "kmmlu/data", "test")
    dev = data.kmmlu(root / "kmmlu/data", "dev")
    assert len(test) == 45 and sum(map(len, test.values())) == 35030
    assert all(len(dev[s]) == 5 for s in test)
    mmlu = data.mmlu(root / "mmlu/data", "test")
    assert len(mmlu) == 57 and sum(map(len, mmlu.values())) == 14079
    assert len(data.gsm8k(root / "gsm8k/grade_school_math/data/test.jsonl")) == 1319
    assert len(data.humaneval(root / "humaneval/data/HumanEval.jsonl.gz")) == 164
    assert len(data.mbpp(root / "mbpp/mbpp.jsonl")) == 500
    first = test["Accounting"][0]  # answer column 2 (1-based), choices as written
    assert first.answer == 1 and first.choices == ("10 60", "10 120", "25 60", "25 120")
    assert first.where.endswith("Accounting-test.csv:2")
