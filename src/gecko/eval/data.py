"""Readers for the benchmark files, as released (CSV, JSONL, JSONL.gz), with file:line errors; and
`read_table`, the rows of a task file's data (CSV/TSV in UTF-8 or CP949, JSON, JSONL(.gz), Parquet, folders
and globs of them, Hugging Face dataset splits).

Everything is read as text with the `csv` module, never through pandas type inference, so a choice such
as "0.10" or "None" reaches the prompt exactly as written. The lm-eval YAML tasks in eval_tasks/ load
their data through `read_rows` too, which is what makes the cross-check compare like with like.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gecko.errors import DataError, pip_hint
from gecko.io import rawio, sources
from gecko.io.jsonl import json_records
from gecko.io.sources import SourceFile

LETTERS = "ABCDEFGHIJ"
SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".jsonl.gz")
"""What `read_table` reads (a folder or glob: every file with one of these endings)."""
Row = tuple[str, dict[str, Any]]
"""(file:line, record)."""


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


def _read_bytes(path: SourceFile) -> bytes:
    with rawio.open_raw(path) as f:
        return f.read()


def _decode(path: SourceFile) -> str:
    """UTF-8 (a BOM dropped), else CP949, the encoding Korean Excel writes."""
    raw = _read_bytes(path)
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: neither UTF-8 nor CP949 text")


def _table_rows(path: SourceFile, delimiter: str) -> list[Row]:
    reader = csv.DictReader(
        io.StringIO(_decode(path), newline=""),
        delimiter=delimiter,
        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL,
    )
    try:
        return [(f"{path}:{reader.line_num}", row) for row in reader]
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed table: {e}") from None


def _json_rows(path: SourceFile) -> list[Row]:
    text = (
        gzip.decompress(_read_bytes(path)).decode("utf-8-sig") if path.name.endswith(".gz") else _decode(path)
    )
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: malformed JSON: {e.msg}") from None
        records = doc.get("data", doc.get("test")) if isinstance(doc, dict) else doc
        if not isinstance(records, list):
            raise DataError(f'{path}: expected a list of objects (or {{"data": [...]}})')
        rows = [(f"{path}:record {i}", r) for i, r in enumerate(records, 1)]
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{lineno}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: malformed JSON: {e.msg} (column {e.colno})") from None
    for where, r in rows:
        if not isinstance(r, dict):
            raise DataError(f"{where}: expected a JSON object, found {type(r).__name__}")
    return rows


def _parquet_rows(path: SourceFile) -> list[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow ({pip_hint('data')})") from None
    try:
        with rawio.open_raw(path) as f:
            table = pq.read_table(f)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    return [(f"{path}:row {i}", r) for i, r in enumerate(table.to_pylist(), 1)]


def read_table(path: str | Path) -> list[Row]:
    """(file:line, record) of every record in a file, in every supported file of a folder or glob (sorted),
    or of a Hugging Face dataset split (`hf://datasets/ORG/NAME/SPLIT:row N`)."""
    path = str(path)
    if sources.is_hf(path):
        return list(sources.hf_rows(path, None, None))
    if not sources.exists(path):
        raise DataError(f"{path}: file not found")
    found = sources.files(path, tuple(s.removesuffix(".gz") for s in SUFFIXES))
    if sources.is_file(path):
        return _file_rows(found[0])
    found = [f for f in found if f.name.lower().endswith(SUFFIXES)]
    if not found:
        raise DataError(f"{path}: no {', '.join(SUFFIXES)} files here")
    return [row for f in found for row in _file_rows(f)]


def _file_rows(path: SourceFile) -> list[Row]:
    name = path.name.lower()
    if name.endswith((".jsonl", ".json", ".jsonl.gz")):
        return _json_rows(path)
    if name.endswith((".csv", ".tsv")):
        return _table_rows(path, "\t" if name.endswith(".tsv") else ",")
    if name.endswith(".parquet"):
        return _parquet_rows(path)
    raise DataError(f"{path}: unsupported format (expected {', '.join(SUFFIXES)})")
