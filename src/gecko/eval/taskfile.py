"""A multiple-choice task described by a YAML file: `gecko eval CONFIG --task TASK.yaml`.

    name: haerae_vocab                 # required: the task's name in results
    data: data/haerae/test.csv         # required: .jsonl, .json, .csv, .tsv, .parquet, or a folder of them
    question: query                    # field with the question        (default: question, 질문, 문제, …)
    choices: options                   # one field holding a list/dict  (default: choices, options, or
    # choices: [A, B, C, D]            #   one column per option          columns A, B, C, … when present)
    answer: gold                       # index, letter or answer text   (default: answer, label, 정답, …)
    answer_base: 1                     # integer answers counted from 0 or 1 (default: inferred, see below)
    context: passage                   # optional passage printed before the question
    subject: category                  # optional: per-subject and macro accuracy
    few_shot_data: data/haerae/dev.csv # optional: the few-shot pool (a train or dev split, never the test)
    shots: 5                           # optional (default: eval.mc_shots with few_shot_data, else 0)
    formulation: both                  # mc | cloze | both (default: eval.formulation)
    limit: 100                         # optional: items scored, per subject (default: eval.limit)

`data` and `few_shot_data` may also be globs (`data/test-*.jsonl`), fsspec URLs (`s3://bucket/task/test.csv`,
with the `sources` extra) or Hugging Face datasets (`hf://datasets/ORG/NAME/SPLIT`, read through the local
`datasets` cache; gecko.io.sources). Relative paths are relative to the YAML file's folder. Field names may be dotted for nested JSON
(`question.stem`). An answer is matched, in order, against the choice texts, the choices' own labels
(ARC-style `[{label, text}]` or a `{label: text}` mapping), letters (A, (b), C.), circled numbers (①) and
Korean letter labels (가, 나, …), then read as an integer index. Integer indices without `answer_base` are
0-based if any answer is 0, and otherwise 1-based (exams number their options from 1: KMMLU, KorMedMCQA,
수능; a 0-based file shows a 0 within a few rows), with a warning when no answer equals its item's number
of choices either. Integer answers are read as indices unless every one of them equals its
item's answer text (numeric choices), and always when `answer_base` is given. Every problem is one line
naming the file and row.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gecko.errors import DataError
from gecko.eval.choice import EN_FORMAT, KO_FORMAT, Formulation, MCFormat
from gecko.eval.data import LETTERS, MCItem, Row, read_table
from gecko.eval.suite import ChoiceSpec
from gecko.io import sources

log = logging.getLogger(__name__)

KEYS = {
    "name",
    "limit",
    "data",
    "question",
    "choices",
    "answer",
    "answer_base",
    "context",
    "subject",
    "few_shot_data",
    "shots",
    "formulation",
    "question_label",
    "answer_cue",
    "description",
}
QUESTION_FIELDS = ("question", "query", "prompt", "질문", "문제", "goal", "sentence", "text")
ANSWER_FIELDS = ("answer", "label", "gold", "정답", "answerKey", "answer_idx", "target")
CHOICE_LIST_FIELDS = ("choices", "options", "선택지", "endings")
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"
HANGUL_LABELS = "가나다라마바사아자차"
_LETTER = re.compile(r"^\(?([A-Ja-j])[).:]?$")


@dataclass(frozen=True)
class TaskFile:
    name: str
    spec: ChoiceSpec
    shots: int | None
    """None: eval.mc_shots when there is a few-shot pool, else 0."""
    formulation: Formulation | None
    """None: eval.formulation."""
    source: str
    limit: int | None = None
    """Items scored (per subject); None: eval.limit. A bundled sample sets it so that a run whose eval.limit
    keeps the full benchmarks short still scores the whole sample."""


# ── fields ──────────────────────────────────────────────────────────────────────────────────────────────


def _get(row: dict[str, Any], key: str) -> Any:
    """row[key], a dotted path into nested objects, or a case-insensitive match; None when absent."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        if part not in value:
            part = next((k for k in value if str(k).strip().lower() == part.lower()), part)
        value = value.get(part)
    return value


def _pick_field(
    row: dict[str, Any], given: str | None, defaults: Sequence[str], what: str, where: str
) -> str:
    if given is not None:
        if _get(row, given) is None:
            raise DataError(f"{where}: no {what} field {given!r} (fields: {', '.join(map(str, row))})")
        return given
    found = next((k for k in defaults if _get(row, k) is not None), None)
    if found is None:
        raise DataError(
            f"{where}: no {what} field found (tried {', '.join(defaults)}; fields: "
            f"{', '.join(map(str, row))}); name it with `{what}:` in the task file"
        )
    return found


def _choice_columns(row: dict[str, Any]) -> list[str] | None:
    """Columns A, B, C, … (or choice1…, option1…) when the row has at least two of them."""
    for pattern in (
        "{L}",
        "{l}",
        "choice{i}",
        "option{i}",
        "ending{i}",
        "choice{z}",
        "option{z}",
        "ending{z}",
    ):
        cols = [pattern.format(L=L, l=L.lower(), i=i + 1, z=i) for i, L in enumerate(LETTERS)]
        present = [c for c in cols if c in row]
        if len(present) >= 2 and present == cols[: len(present)]:
            return present
    return None


def _choices(row: dict[str, Any], spec: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(texts, labels): from one field (list, list of {label, text}, {label: text}, or a JSON list in a
    table cell) or from one column per option. Empty trailing options (a 5-column file with 4-option
    questions) are dropped; labels are empty strings where the data gives none."""
    if isinstance(spec, list):
        missing = [c for c in spec if _get(row, str(c)) is None]
        if missing:
            raise DataError(f"{where}: no choice column {missing[0]!r} (fields: {', '.join(map(str, row))})")
        # the column names are the labels: an answer "B" or "2" names the column B or 2 (KoBEST COPA)
        values: Any = [{"label": str(c), "text": _get(row, str(c))} for c in spec]
    else:
        field = (
            spec
            if spec is not None
            else next((f for f in CHOICE_LIST_FIELDS if _get(row, f) is not None), None)
        )
        if field is None:
            cols = _choice_columns(row)
            if cols is None:
                raise DataError(
                    f"{where}: no choices found (tried fields {', '.join(CHOICE_LIST_FIELDS)} and "
                    f"columns A, B, …); name them with `choices:` in the task file"
                )
            return _choices(row, cols, where)
        values = _get(row, field)
        if values is None:
            raise DataError(f"{where}: no choices field {field!r} (fields: {', '.join(map(str, row))})")
    if isinstance(values, str) and values.strip().startswith("["):
        values = _list_literal(values, where)
    if isinstance(values, dict):
        values = [{"label": k, "text": v} for k, v in values.items()]
    if not isinstance(values, list | tuple):
        raise DataError(
            f"{where}: choices must be a list, a mapping or one column per option, found "
            f"{type(values).__name__}"
        )
    texts, labels = [], []
    for v in values:
        if isinstance(v, dict):
            text, label = v.get("text", v.get("content")), str(v.get("label", v.get("key", "")))
        else:
            text, label = v, ""
        texts.append("" if text is None else str(text).strip())
        labels.append(label.strip())
    while texts and not texts[-1]:
        del texts[-1], labels[-1]
    if len(texts) < 2:
        raise DataError(f"{where}: {len(texts)} choice(s); a multiple-choice item needs at least 2")
    if "" in texts:
        raise DataError(f"{where}: choice {LETTERS[texts.index('')]} is empty")
    return tuple(texts), tuple(labels)


# ── answers ─────────────────────────────────────────────────────────────────────────────────────────────


def _list_literal(text: str, where: str) -> Any:
    """A list written into a table cell: JSON, or Python's repr (HAE-RAE's `options` column), read with
    `ast.literal_eval`, which evaluates literals only, never code."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataError(f"{where}: choices {text[:60]!r} is not a list (JSON or Python literal)") from None


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.0+)?", text):
        return int(float(text))
    return None


def _symbolic(value: Any, texts: Sequence[str], labels: Sequence[str]) -> int | None:
    """Answer as a choice text, a label of the data, a letter, a circled number or 가/나/다; else None."""
    text = _nfc(str(value))
    for candidates in ([_nfc(t) for t in texts], [_nfc(lb) for lb in labels]):
        if text and text in candidates:
            return candidates.index(text)
    if _as_int(value) is not None:
        return None
    letter = _LETTER.match(text)
    if letter and LETTERS.index(letter.group(1).upper()) < len(texts):
        return LETTERS.index(letter.group(1).upper())
    for alphabet in (CIRCLED, HANGUL_LABELS):
        if len(text) == 1 and text in alphabet and alphabet.index(text) < len(texts):
            return alphabet.index(text)
    return None


@dataclass
class _Raw:
    where: str
    question: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    answer: Any
    context: str
    subject: str


def _label(r: _Raw) -> int | None:
    """The choice whose own label (ARC's "1"…"4", a column name) is the answer."""
    labels = [_nfc(lb) for lb in r.labels]
    text = _nfc(str(r.answer))
    return labels.index(text) if text and text in labels else None


def integers_are_indices(raws: Sequence[_Raw]) -> bool:
    """Integer answers are indices unless every one of them is also its item's answer text (a file of
    numeric answers such as "3" among choices "1"…"4"); one file, one reading, never row by row."""
    numeric = [r for r in raws if _as_int(r.answer) is not None and _label(r) is None]
    return any(_nfc(str(r.answer)) not in [_nfc(t) for t in r.texts] for r in numeric)


def infer_base(raws: Sequence[_Raw], source: str) -> int:
    """0 if any integer answer is 0, else 1, said in a warning unless some answer equals its item's number
    of choices. Ambiguity is not an error: a file without a 0 among n uniformly placed 0-based answers has
    probability (1 - 1/k)^n, while exams in the wild (KMMLU, KorMedMCQA) count from 1."""
    ints = [(v, len(r.texts)) for r in raws if (v := _as_int(r.answer)) is not None and _label(r) is None]
    if not ints or any(v == 0 for v, _ in ints):
        return 0
    if not any(v == n for v, n in ints):
        log.warning(
            "%s: integer answers (%d…%d) read as 1-based (no answer is 0); set answer_base: 0 in the "
            "task file if they count from 0",
            source,
            min(v for v, _ in ints),
            max(v for v, _ in ints),
        )
    return 1


def resolve_answer(r: _Raw, base: int, indices: bool) -> int:
    """With `indices`, an integer answer is an index counted from `base`; anything else is matched first."""
    number = _as_int(r.answer)
    index = _label(r) if indices and number is not None else _symbolic(r.answer, r.texts, r.labels)
    if index is not None:
        return index
    if number is None:
        raise DataError(
            f"{r.where}: answer {str(r.answer)[:60]!r} is none of the {len(r.texts)} choices, not a "
            f"letter A–{LETTERS[len(r.texts) - 1]} and not an index"
        )
    if not 0 <= number - base < len(r.texts):
        raise DataError(
            f"{r.where}: answer {number} is out of range for {len(r.texts)} choices counted from "
            f"{base} ({base}…{base + len(r.texts) - 1})"
        )
    return number - base


# ── the task ────────────────────────────────────────────────────────────────────────────────────────────


def _raw_items(rows: list[Row], task: dict[str, Any], source: str) -> list[_Raw]:
    if not rows:
        raise DataError(f"{source}: no records")
    first_where, first = rows[0]
    q_field = _pick_field(first, task.get("question"), QUESTION_FIELDS, "question", first_where)
    a_field = _pick_field(first, task.get("answer"), ANSWER_FIELDS, "answer", first_where)
    raws = []
    for where, row in rows:
        question, answer = _get(row, q_field), _get(row, a_field)
        if question is None or not str(question).strip():
            raise DataError(f"{where}: question field {q_field!r} is missing or empty")
        if answer is None or str(answer).strip() == "":
            raise DataError(f"{where}: answer field {a_field!r} is missing or empty")
        texts, labels = _choices(row, task.get("choices"), where)
        context = _optional(row, task.get("context"), where)
        raws.append(
            _Raw(
                where,
                str(question),
                texts,
                labels,
                answer,
                context,
                _optional(row, task.get("subject"), where),
            )
        )
    return raws


def _optional(row: dict[str, Any], field: str | None, where: str) -> str:
    if field is None:
        return ""
    value = _get(row, field)
    if value is None:
        raise DataError(f"{where}: no field {field!r} (fields: {', '.join(map(str, row))})")
    return str(value)


def _items(path: str, task: dict[str, Any]) -> list[MCItem]:
    raws = _raw_items(read_table(path), task, str(path))
    stated = task.get("answer_base") is not None
    indices = stated or integers_are_indices(raws)
    base = task["answer_base"] if stated else infer_base(raws, str(path)) if indices else 0
    return [
        MCItem(r.question, r.texts, resolve_answer(r, base, indices), r.subject, r.where, context=r.context)
        for r in raws
    ]


def _path(value: Any, key: str, yaml_path: Path) -> str:
    """Relative to the task file's folder; a path that exists only from the working directory is kept; URLs
    and hf:// datasets as written."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{yaml_path}: {key} must be a path")
    if sources.local_path(value) is None:
        return value
    p = Path(value).expanduser()
    beside = str(yaml_path.parent / p)
    if p.is_absolute() or sources.exists(beside) or not sources.exists(str(p)):
        return beside if not p.is_absolute() else str(p)
    return str(p)


def _check_keys(task: Any, yaml_path: Path) -> dict[str, Any]:
    if not isinstance(task, dict):
        raise DataError(f"{yaml_path}: a task file is a mapping (name:, data:, …)")
    unknown = sorted(set(task) - KEYS)
    if unknown:
        raise DataError(f"{yaml_path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    for key in ("name", "data"):
        if not task.get(key):
            raise DataError(f"{yaml_path}: missing required key {key!r}")
    if not re.fullmatch(r"[\w.-]+", str(task["name"])):
        raise DataError(f"{yaml_path}: name {task['name']!r} must be letters, digits, '_', '-' or '.'")
    if task.get("formulation") not in (None, "mc", "cloze", "both"):
        raise DataError(f"{yaml_path}: formulation {task['formulation']!r} must be mc, cloze or both")
    if task.get("answer_base") not in (None, 0, 1):
        raise DataError(f"{yaml_path}: answer_base {task['answer_base']!r} must be 0 or 1")
    if task.get("limit") is not None and not (isinstance(task["limit"], int) and task["limit"] >= 1):
        raise DataError(f"{yaml_path}: limit {task['limit']!r} must be an integer ≥ 1")
    if task.get("shots") is not None and not (isinstance(task["shots"], int) and task["shots"] >= 0):
        raise DataError(f"{yaml_path}: shots {task['shots']!r} must be an integer ≥ 0")
    if isinstance(task.get("choices"), str) and "," in task["choices"]:
        task = {**task, "choices": [c.strip() for c in task["choices"].split(",")]}
    return task


def _format(task: dict[str, Any], items: Sequence[MCItem]) -> MCFormat:
    """Korean labels (질문/답) when the questions are Korean, else English; each can be set in the file."""
    korean = any("\uac00" <= ch <= "\ud7a3" for it in items[:20] for ch in it.question + it.context)
    base = KO_FORMAT if korean else EN_FORMAT
    return MCFormat(
        task.get("answer_cue", base.answer_cue),
        task.get("description", ""),
        task.get("question_label", base.question_label),
    )


def load_task_file(path: str | Path) -> TaskFile:
    yaml_path = Path(path)
    try:
        task = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{yaml_path}: cannot read the task file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise DataError(f"{yaml_path}: not valid YAML ({str(e).splitlines()[0]})") from None
    task = _check_keys(task, yaml_path)
    test = _items(_path(task["data"], "data", yaml_path), task)
    pool = (
        _items(_path(task["few_shot_data"], "few_shot_data", yaml_path), task)
        if task.get("few_shot_data")
        else []
    )
    if task.get("shots") and not pool:
        raise DataError(f"{yaml_path}: shots={task['shots']} needs few_shot_data (a train or dev split)")
    if task.get("shots") and len(pool) < task["shots"]:
        raise DataError(
            f"{yaml_path}: shots={task['shots']} needs a few_shot_data file with at least that "
            f"many records (found {len(pool)})"
        )
    by_subject: dict[str, list[MCItem]] = {}
    for it in test:
        by_subject.setdefault(it.subject, []).append(it)
    shots = task.get("shots") if pool else 0
    return TaskFile(
        str(task["name"]),
        ChoiceSpec(by_subject, {"": pool}, _format(task, test)),
        shots,
        task.get("formulation"),
        str(yaml_path),
        task.get("limit"),
    )
