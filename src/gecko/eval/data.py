"""Readers for the benchmark files, as released (CSV, JSONL, JSONL.gz), with file:line errors.

Everything is read as text with the `csv` module, never through pandas type inference, so a choice such
as "0.10" or "None" reaches the prompt exactly as written. The lm-eval YAML tasks in eval_tasks/ load
their data through `read_rows` too, which is what makes the cross-check compare like with like.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gecko.errors import DataError
from gecko.io.jsonl import json_records

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class MCItem:
    question: str
    choices: tuple[str, ...]
    answer: int
    """Index of the correct choice."""
    subject: str
    where: str
    """file:line, for error messages and per-item records."""
    context: str = ""
    """A passage printed before the question (BoolQ's text)."""
    cloze: tuple[tuple[str, str], ...] = ()
    """(prefix, continuation) per choice where the cloze formulation is not "question → answer text":
    Winogrande's partial scoring, COPA's premise and connective."""


@dataclass(frozen=True)
class GenItem:
    """A generation problem: GSM8K (answer is the number) or code (tests run in the sandbox)."""

    id: str
    prompt: str
    answer: str
    reference: str
    """GSM8K: the worked solution (shown in few-shot examples); code: the tests appended to the completion."""


def read_rows(path: Path, columns: Sequence[str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line, row) for each record of a CSV (header, or `columns` if it has none), JSONL or JSONL.gz."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        for lineno, row in json_records(path):
            yield f"{path}:{lineno}", row
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if name.endswith(".csv"):
            reader = csv.DictReader(f, fieldnames=list(columns) if columns else None, strict=True)
            try:
                for row in reader:
                    yield f"{path}:{reader.line_num}", row
            except csv.Error as e:
                raise DataError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
        else:
            raise DataError(f"{path}: unsupported format (expected .csv, .jsonl or .jsonl.gz)")


def _field(row: dict[str, Any], key: str, where: str) -> Any:
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing field {key!r} (found {', '.join(map(str, row))})")
    return row[key]


def parse_answer(value: Any, n_choices: int, base: int | None, where: str) -> int:
    """A letter ("B"), or an integer counted from `base` (0 or 1), → choice index."""
    text = str(value).strip()
    if base is None:
        if len(text) != 1 or text.upper() not in LETTERS[:n_choices]:
            raise DataError(f"{where}: answer {text!r} must be a letter A–{LETTERS[n_choices - 1]}")
        return LETTERS.index(text.upper())
    if not text.lstrip("-").isdigit() or not 0 <= int(text) - base < n_choices:
        raise DataError(f"{where}: answer {text!r} must be an integer in {base}…{base + n_choices - 1}")
    return int(text) - base


def mc_items(
    path: Path,
    question: str,
    choices: Sequence[str],
    answer: str,
    answer_base: int | None,
    subject: str,
    columns: Sequence[str] | None = None,
) -> list[MCItem]:
    """Any local multiple-choice table: `choices` names one column per option."""
    items = []
    for where, row in read_rows(path, columns):
        opts = tuple(str(_field(row, c, where)) for c in choices)
        gold = parse_answer(_field(row, answer, where), len(opts), answer_base, where)
        items.append(MCItem(str(_field(row, question, where)), opts, gold, subject, where))
    return items


def _subject_files(folder: Path, pattern: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = {p.name[: -len(pattern) + 1]: p for p in sorted(folder.glob(pattern))}
    if not files:
        raise DataError(f"{folder}: no files matching {pattern}")
    return files


def kmmlu(folder: Path, split: str) -> dict[str, list[MCItem]]:
    """KMMLU as released: data/{Subject}-{split}.csv, header question,answer(1–4),A,B,C,D,…"""
    return {
        s: mc_items(p, "question", "ABCD", "answer", 1, s)
        for s, p in _subject_files(Path(folder), f"*-{split}.csv").items()
    }


MMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")


def mmlu(folder: Path, split: str) -> dict[str, list[MCItem]]:
    """MMLU as released: data/{split}/{subject}_{split}.csv without a header; answer is a letter."""
    return {
        s: mc_items(p, "question", "ABCD", "answer", None, s, MMLU_COLUMNS)
        for s, p in _subject_files(Path(folder) / split, f"*_{split}.csv").items()
    }


def gsm8k(path: Path) -> list[GenItem]:
    """GSM8K JSONL: the final answer follows '#### ' at the end of the worked solution."""
    items = []
    for where, row in read_rows(path):
        solution = str(_field(row, "answer", where))
        if "####" not in solution:
            raise DataError(f"{where}: answer has no '#### N' final line")
        reasoning, final = solution.rsplit("####", 1)
        items.append(GenItem(where, str(_field(row, "question", where)), final.strip(), reasoning.strip()))
    return items


def humaneval(path: Path) -> list[GenItem]:
    """HumanEval JSONL(.gz): the completion is appended to `prompt`, then `test` and check(entry_point)."""
    items = []
    for where, row in read_rows(path):
        tests = f"\n{_field(row, 'test', where)}\ncheck({_field(row, 'entry_point', where)})\n"
        task_id, prompt = str(_field(row, "task_id", where)), str(_field(row, "prompt", where))
        items.append(GenItem(task_id, prompt, "", tests))
    return items


def mbpp(path: Path, first_id: int = 11, last_id: int = 510) -> list[GenItem]:
    """MBPP (original format); the test split is task ids 11–510. The prompt is the description and
    the first test inside a docstring (the bigcode-evaluation-harness format)."""
    items = []
    for where, row in read_rows(path):
        task_id = int(_field(row, "task_id", where))
        if not first_id <= task_id <= last_id:
            continue
        asserts = [str(t) for t in _field(row, "test_list", where)]
        prompt = f'"""\n{_field(row, "text", where)}\n{asserts[0]}\n"""\n'
        tests = "\n" + str(row.get("test_setup_code") or "") + "\n" + "\n".join(asserts) + "\n"
        items.append(GenItem(f"mbpp/{task_id}", prompt, "", tests))
    return items
