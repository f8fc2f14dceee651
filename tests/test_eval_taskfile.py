"""`gecko eval --task TASK.yaml`: the loader on the shapes real task files come in (a list field or one column
per option; answers as text, letters, 0- or 1-based indices, ①; UTF-8 with a BOM or CP949; JSONL, CSV,
Parquet, folders), its one-line errors naming file and row, and a task scored end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gecko.config import EvalConfig
from gecko.errors import DataError
from gecko.eval.harness import evaluate_tasks
from gecko.eval.lm import GeckoLM
from gecko.eval.taskfile import load_task_file
from gecko.tokens import load_tokenizer
from helpers import make_model, make_tokenizer

KO = [
    ("대한민국의 수도는?", ["부산", "서울", "대구", "광주"], 1),
    ("한글을 만든 왕은?", ["세종", "태조", "정조", "영조"], 0),
    ("1 + 2 = ?", ["12", "2", "3", "21"], 2),
    ("가장 긴 강은?", ["한강", "금강", "영산강", "낙동강"], 3),
]


def task(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def answers(path: Path) -> list[int]:
    return [it.answer for it in load_task_file(path).spec.test[""]]


def test_list_field_with_text_answers(tmp_path: Path):
    write_jsonl(tmp_path / "d.jsonl", [{"질문": q, "보기": c, "정답": c[a]} for q, c, a in KO])
    t = load_task_file(
        task(tmp_path, "name: ko_quiz\ndata: d.jsonl\nquestion: 질문\nchoices: 보기\nanswer: 정답\n")
    )
    items = t.spec.test[""]
    assert [it.answer for it in items] == [1, 0, 2, 3] and items[0].choices == (
        "부산",
        "서울",
        "대구",
        "광주",
    )
    assert (t.name, t.shots, t.formulation) == ("ko_quiz", 0, None)
    assert t.spec.fmt.answer_cue == "답:"  # Korean questions get Korean labels


@pytest.mark.parametrize("base, values", [(1, lambda a: a + 1), (0, lambda a: a)])
def test_columns_a_to_d_with_a_stated_base(tmp_path: Path, base: int, values):
    write_csv(
        tmp_path / "d.csv", ["question", "A", "B", "C", "D", "answer"], [[q, *c, values(a)] for q, c, a in KO]
    )
    path = task(tmp_path, f"name: t\ndata: d.csv\nchoices: [A, B, C, D]\nanswer_base: {base}\n")
    assert answers(path) == [1, 0, 2, 3]


def test_stated_base_wins_over_a_choice_text_equal_to_the_answer(tmp_path: Path):
    write_csv(
        tmp_path / "d.csv", ["question", "A", "B", "C", "D", "answer"], [["2 - 1 = ?", "0", "1", "2", "3", 2]]
    )
    assert answers(task(tmp_path, "name: t\ndata: d.csv\nanswer_base: 1\n")) == [1]  # the 2nd choice, "1"
    assert answers(task(tmp_path, "name: t\ndata: d.csv\n", "guess.yaml")) == [2]  # unstated: the text "2"


def test_base_is_inferred_and_an_ambiguous_file_is_read_1_based_with_a_warning(tmp_path: Path, caplog):
    write_csv(
        tmp_path / "one.csv", ["question", "A", "B", "C", "D", "answer"], [[q, *c, a + 1] for q, c, a in KO]
    )  # answers 2, 1, 3, 4: a 4 with 4 choices means 1-based
    assert answers(task(tmp_path, "name: t\ndata: one.csv\n")) == [1, 0, 2, 3]
    write_csv(
        tmp_path / "zero.csv", ["question", "A", "B", "C", "D", "answer"], [[q, *c, a] for q, c, a in KO]
    )  # a 0 means 0-based
    assert answers(task(tmp_path, "name: t\ndata: zero.csv\n")) == [1, 0, 2, 3]
    write_csv(
        tmp_path / "amb.csv", ["question", "A", "B", "C", "D", "answer"], [[q, *c, 2] for q, c, _ in KO]
    )
    assert answers(task(tmp_path, "name: t\ndata: amb.csv\n")) == [1, 1, 1, 1]
    assert (
        "amb.csv: integer answers (2…2) read as 1-based (no answer is 0); set answer_base: 0" in caplog.text
    )


def test_choices_as_a_python_list_literal_in_a_cell(tmp_path: Path):
    """HAE-RAE ships `options` as Python's repr of a list (single quotes), not JSON; code is never run."""
    (tmp_path / "h.jsonl").write_text(
        json.dumps(
            {"query": "수도는?", "options": "['서울', '부산', \"대구's\"]", "answer": "(B)"},
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    spec = "question: query\nchoices: options\n"
    assert answers(task(tmp_path, f"name: t\ndata: h.jsonl\n{spec}")) == [1]
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"query": "q", "options": "[__import__('os')]", "answer": "A"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"bad.jsonl:1: choices .* is not a list \(JSON or Python literal\)"):
        load_task_file(task(tmp_path, f"name: t\ndata: bad.jsonl\n{spec}"))


def test_bom_cp949_letters_circled_and_korean_labels(tmp_path: Path):
    rows = [[q, *c, "ABCD"[a]] for q, c, a in KO]
    write_csv(tmp_path / "bom.csv", ["question", "A", "B", "C", "D", "answer"], rows, encoding="utf-8-sig")
    assert answers(task(tmp_path, "name: t\ndata: bom.csv\n")) == [1, 0, 2, 3]  # "question" despite the BOM
    write_csv(
        tmp_path / "euckr.csv",
        ["문제", "A", "B", "C", "D", "정답"],
        [[q, *c, "①②③④"[a]] for q, c, a in KO],
        encoding="cp949",
    )
    path = task(tmp_path, "name: t\ndata: euckr.csv\n", "cp.yaml")  # fields found by their Korean names
    assert (
        answers(path) == [1, 0, 2, 3]
        and load_task_file(path).spec.test[""][0].question == "대한민국의 수도는?"
    )
    write_jsonl(
        tmp_path / "l.jsonl",
        [{"question": q, "choices": c, "answer": f"({'abcd'[a]})"} for q, c, a in KO]
        + [{"question": "x?", "choices": ["p", "q", "r"], "answer": "다"}],
    )
    assert answers(task(tmp_path, "name: t\ndata: l.jsonl\n", "l.yaml")) == [1, 0, 2, 3, 2]


def test_labelled_choices_parquet_folders_subjects_and_shots(tmp_path: Path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [
        {
            "q": {"stem": q},
            "opts": [{"label": str(i + 1), "text": t} for i, t in enumerate(c)],
            "key": str(a + 1),
            "cat": "geo" if i % 2 else "misc",
        }
        for i, (q, c, a) in enumerate(KO)
    ]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:2]), tmp_path / "data" / "a.parquet")
    write_jsonl(tmp_path / "data" / "b.jsonl", rows[2:])
    write_jsonl(
        tmp_path / "dev.jsonl",
        [{"q": {"stem": "예시?"}, "opts": {"1": "가", "2": "나"}, "key": "2", "cat": "misc"}] * 2,
    )
    t = load_task_file(
        task(
            tmp_path,
            "name: t\ndata: data\nquestion: q.stem\nchoices: opts\nanswer: key\n"
            "subject: cat\nfew_shot_data: dev.jsonl\nshots: 2\nformulation: cloze\n",
        )
    )
    assert {s: [it.answer for it in v] for s, v in t.spec.test.items()} == {"misc": [1, 2], "geo": [0, 3]}
    assert t.shots == 2 and t.formulation == "cloze" and [it.answer for it in t.spec.shots[""]] == [1, 1]
    assert t.spec.test["misc"][0].where.endswith("a.parquet:row 1")


@pytest.mark.parametrize(
    "yaml_text, data, message",
    [
        ("data: d.jsonl\n", None, r"task.yaml: missing required key 'name'"),
        ("name: t\ndata: d.jsonl\nanwser: gold\n", None, r"task.yaml: unknown key 'anwser'"),
        ("name: t\ndata: absent.jsonl\n", None, r"absent.jsonl: file not found"),
        ("name: t\ndata: d.jsonl\nformulation: rc\n", None, r"formulation 'rc' must be mc, cloze or both"),
        (
            "name: t\ndata: d.jsonl\nquestion: query\n",
            [{"question": "q", "choices": ["a", "b"], "answer": 0}],
            r"d.jsonl:1: no question field 'query' \(fields: question, choices, answer\)",
        ),
        (
            "name: t\ndata: d.jsonl\n",
            [
                {"question": "q", "choices": ["a", "b"], "answer": 0},
                {"question": "q", "choices": ["a", "b"], "answer": "maybe"},
            ],
            r"d.jsonl:2: answer 'maybe' is none of the 2 choices, not a letter A–B and not an index",
        ),
        (
            "name: t\ndata: d.jsonl\nanswer_base: 0\n",
            [{"question": "q", "choices": ["a", "b"], "answer": 2}],
            r"d.jsonl:1: answer 2 is out of range for 2 choices counted from 0",
        ),
        (
            "name: t\ndata: d.jsonl\n",
            [{"question": "q", "choices": ["a"], "answer": 0}],
            r"d.jsonl:1: 1 choice\(s\); a multiple-choice item needs at least 2",
        ),
        (
            "name: t\ndata: d.jsonl\n",
            [{"question": "q", "choices": ["a", "b"]}],
            r"d.jsonl:1: no answer field found",
        ),
        (
            "name: t\ndata: d.jsonl\nshots: 3\n",
            [{"question": "q", "choices": ["a", "b"], "answer": 0}],
            r"shots=3 needs few_shot_data",
        ),
        (
            "name: t\ndata: d.jsonl\n",
            [{"question": "q", "choices": ["a", "", "c"], "answer": 0}],
            r"d.jsonl:1: choice B is empty",
        ),
        ("name: [t\n", None, r"task.yaml: not valid YAML"),
    ],
)
def test_errors_name_the_file_and_row(tmp_path: Path, yaml_text: str, data: list | None, message: str):
    if data is not None:
        write_jsonl(tmp_path / "d.jsonl", data)
    with pytest.raises(DataError, match=message):
        load_task_file(task(tmp_path, yaml_text))


def test_broken_jsonl_and_csv_rows(tmp_path: Path):
    (tmp_path / "d.jsonl").write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n{oops\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: malformed JSON"):
        load_task_file(task(tmp_path, "name: t\ndata: d.jsonl\n"))
    write_csv(
        tmp_path / "d.csv", ["question", "A", "B", "answer"], [["q", "a", "b", "A"], ["q2", "a", "b", "Z"]]
    )
    with pytest.raises(DataError, match=r"d.csv:3: answer 'Z'"):
        load_task_file(task(tmp_path, "name: t\ndata: d.csv\n", "c.yaml"))


def test_a_task_file_is_scored_end_to_end_in_both_formulations(tmp_path: Path):
    write_jsonl(tmp_path / "test.jsonl", [{"question": q, "choices": c, "answer": a} for q, c, a in KO])
    write_jsonl(tmp_path / "dev.jsonl", [{"question": q, "choices": c, "answer": a} for q, c, a in KO[:2]])
    path = task(tmp_path, "name: ko_quiz\ndata: test.jsonl\nfew_shot_data: dev.jsonl\nanswer_base: 0\n")
    tok = load_tokenizer(make_tokenizer(tmp_path / "tok"))
    lm = GeckoLM(make_model(tok.get_vocab_size()), tok, batch_size=4)
    e = EvalConfig(task_files=(str(path),), mc_shots=2)
    r = evaluate_tasks(lm, e, ("ko_quiz",), tmp_path / "out")["ko_quiz"]
    assert (r["n"], r["shots"], r["chance"], r["formulations"]) == (4, 2, 0.25, ["mc", "cloze"])
    for key in ("mc_acc", "cloze_acc", "cloze_acc_per_token", "cloze_acc_per_char"):
        assert 0 <= r[f"{key}_ci"][0] <= r[key] <= r[f"{key}_ci"][1] <= 1
    assert r["task_file"] == str(path)
    assert len((tmp_path / "out/samples/ko_quiz.jsonl").read_text().splitlines()) == 4


def test_a_task_file_limit_overrides_eval_limit(tmp_path: Path):
    """A bundled sample keeps its 100 items under the demo's eval.limit=1 (meant for the full benchmarks)."""
    write_jsonl(tmp_path / "test.jsonl", [{"question": q, "choices": c, "answer": a} for q, c, a in KO])
    tok = load_tokenizer(make_tokenizer(tmp_path / "tok"))
    lm = GeckoLM(make_model(tok.get_vocab_size()), tok, batch_size=4)
    for limit_line, n in (("limit: 3\n", 3), ("", 1)):
        path = task(tmp_path, f"name: ko_quiz\ndata: test.jsonl\nanswer_base: 0\n{limit_line}")
        e = EvalConfig(task_files=(str(path),), limit=1, formulation="mc")
        assert evaluate_tasks(lm, e, ("ko_quiz",), tmp_path / "out")["ko_quiz"]["n"] == n
    with pytest.raises(DataError, match=r"task.yaml: limit 0 must be an integer ≥ 1"):
        load_task_file(task(tmp_path, "name: t\ndata: test.jsonl\nlimit: 0\n"))


def test_cli_task_flag_sets_the_task_files_and_only_runs_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from gecko.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("run_dir: x\neval:\n  tasks: [bpb, kmmlu]\n")
    assert main(["eval", str(config), "--task", "a.yaml", "--task", "b.yaml", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)["eval"]
    assert resolved["task_files"] == [str(Path("a.yaml").resolve()), str(Path("b.yaml").resolve())]
    assert resolved["tasks"] == []


def test_shipped_sample_task_files_load():
    root = Path(__file__).parent.parent / "eval_tasks" / "samples"
    copa = load_task_file(root / "kobest_copa.yaml")
    arc = load_task_file(root / "arc_easy.yaml")
    assert (
        len(copa.spec.test[""]) == 100 and len(copa.spec.shots[""]) == 5 and copa.spec.fmt.answer_cue == "답:"
    )
    assert len(arc.spec.test[""]) == 100 and all(0 <= it.answer < len(it.choices) for it in arc.spec.test[""])
    assert copa.limit == arc.limit == 100  # scored whole under the demo's eval.limit: 1
