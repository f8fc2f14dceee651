"""The multiple-choice benchmarks as released, turned into `MCItem`s with their few-shot pools.

Test items come from the evaluated split and few-shot examples from train or dev only (never from the
split being scored): KoBEST test ← train, ARC dev ← train, Winogrande dev ← train_m, KMMLU/MMLU test ←
dev. PIQA has only its validation split here, so its first `shots` items are the pool and are not scored.
The parsing follows each folder's SOURCE.md: KoBEST TSVs are read with QUOTE_NONE (unbalanced quotes),
labels compared case-insensitively, COPA is 1-based, HellaSwag 0-based, SentiNeg's columns move between
splits; ARC labels are letters or digits and some questions have 3 or 5 choices.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gecko.config import EvalConfig
from gecko.errors import DataError
from gecko.eval import data
from gecko.eval.choice import EN_FORMAT, KMMLU_FORMAT, KO_FORMAT, MMLU_FORMAT, MCFormat
from gecko.eval.data import MCItem


@dataclass(frozen=True)
class ChoiceSpec:
    test: dict[str, list[MCItem]]
    """Subject → items scored (one subject "" for single-subject tasks)."""
    shots: dict[str, list[MCItem]]
    """Subject → few-shot pool, or "" → one pool for every subject."""
    fmt: MCFormat


def tsv_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(file:line, row) of a KoBEST TSV: header line, tab-separated, no quoting at all."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(f"{path}:{reader.line_num}", row) for row in reader]


def _bool(value: str, where: str) -> int:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DataError(f"{where}: label {value!r} must be True or False (any case)")
    return int(v == "true")


def _int(value: str, allowed: range, where: str) -> int:
    v = value.strip()
    if not v.lstrip("-").isdigit() or int(v) not in allowed:
        raise DataError(f"{where}: label {value!r} must be one of {list(allowed)}")
    return int(v)


_NO_YES = ("아니오", "예")


def kobest_boolq(path: Path) -> list[MCItem]:
    return [
        MCItem(r["Question"], _NO_YES, _bool(r["Answer"], w), "", w, context=r["Text"])
        for w, r in tsv_rows(path)
    ]


_COPA_ASK = {"원인": ("원인은?", "왜냐하면"), "결과": ("결과는?", "그래서")}


def kobest_copa(path: Path) -> list[MCItem]:
    """Cloze as lm-eval's kobest_copa: the premise without its final period, the connective (왜냐하면 for a
    cause, 그래서 for an effect), then each alternative."""
    items = []
    for w, r in tsv_rows(path):
        kind = r["question"].strip()  # 6 train rows carry a trailing space
        if kind not in _COPA_ASK:
            raise DataError(f"{w}: question {r['question']!r} must be 원인 or 결과")
        ask, connective = _COPA_ASK[kind]
        premise, alternatives = r["sentence"].strip(), (r["1"].strip(), r["2"].strip())
        prefix = f"{premise.removesuffix('.')} {connective}"
        items.append(
            MCItem(
                f"{premise} {ask}",
                alternatives,
                _int(r["Answer"], range(1, 3), w) - 1,
                "",
                w,
                cloze=tuple((prefix, f" {a}") for a in alternatives),
            )
        )
    return items


def kobest_hellaswag(path: Path) -> list[MCItem]:
    items = []
    for w, r in tsv_rows(path):
        endings = tuple(r[f"choice{i}"].strip() for i in range(1, 5))
        context = r["context"].strip()
        items.append(
            MCItem(
                context,
                endings,
                _int(r["label"], range(4), w),
                "",
                w,
                cloze=tuple((context, f" {e}") for e in endings),
            )
        )
    return items


def kobest_sentineg(path: Path) -> list[MCItem]:
    """Text and Label by name (their column order differs per split; test's are the negated rewrites)."""
    return [
        MCItem(
            "이 문장은 긍정인가요, 부정인가요?",
            ("부정", "긍정"),
            _int(r["Label"], range(2), w),
            "",
            w,
            context=r["Text"],
        )
        for w, r in tsv_rows(path)
    ]


def kobest_wic(path: Path) -> list[MCItem]:
    return [
        MCItem(
            f"두 문장에서 '{r['Target']}'(이)가 같은 뜻으로 쓰였나요?",
            _NO_YES,
            _bool(r["ANSWER"], w),
            "",
            w,
            context=f"문장1: {r['SENTENCE1']}\n문장2: {r['SENTENCE2']}",
        )
        for w, r in tsv_rows(path)
    ]


def arc(path: Path) -> list[MCItem]:
    """ARC JSONL: the answer key is one of the choice labels (letters, or digits on some questions)."""
    items = []
    for w, r in data.read_rows(path):
        try:
            labels = [c["label"] for c in r["question"]["choices"]]
            choices = tuple(str(c["text"]) for c in r["question"]["choices"])
            stem, key = str(r["question"]["stem"]), str(r["answerKey"])
        except (KeyError, TypeError) as e:
            raise DataError(f"{w}: not an ARC record (missing {e})") from None
        if key not in labels:
            raise DataError(f"{w}: answerKey {key!r} is not one of the labels {labels}")
        items.append(MCItem(stem, choices, labels.index(key), "", w))
    return items


def _labels(path: Path, n: int) -> list[str]:
    labels = path.read_text(encoding="utf-8").split()
    if len(labels) != n:
        raise DataError(f"{path}: {len(labels)} labels for {n} items")
    return labels


def piqa(path: Path) -> list[MCItem]:
    """valid.jsonl with valid-labels.lst beside it (0: sol1, 1: sol2), aligned by line."""
    rows = list(data.read_rows(path))
    labels = _labels(path.with_name(path.stem + "-labels.lst"), len(rows))
    return [
        MCItem(str(r["goal"]), (str(r["sol1"]), str(r["sol2"])), _int(y, range(2), w), "", w)
        for (w, r), y in zip(rows, labels, strict=True)
    ]


def winogrande(path: Path) -> list[MCItem]:
    """Cloze by partial scoring (lm-eval's winogrande): each option fills the blank, and the rest of the
    sentence is the continuation scored, so both choices are scored on the same words."""
    items = []
    for w, r in data.read_rows(path):
        sentence, options = str(r["sentence"]), (str(r["option1"]), str(r["option2"]))
        if sentence.count("_") != 1:
            raise DataError(f"{w}: sentence must hold exactly one '_' blank")
        before, after = sentence.split("_")
        items.append(
            MCItem(
                sentence,
                options,
                _int(str(r["answer"]), range(1, 3), w) - 1,
                "",
                w,
                cloze=tuple((before + o, f" {after.strip()}") for o in options),
            )
        )
    return items


def lambada(path: Path) -> list[tuple[str, str, str]]:
    """(where, context, " last word"): lm-eval's split of each text at its last space."""
    out = []
    for w, r in data.read_rows(path):
        context, _, target = str(r["text"]).rpartition(" ")
        out.append((w, context, f" {target}"))
    return out


KOBEST = {
    "kobest_boolq": ("BoolQ", kobest_boolq),
    "kobest_copa": ("COPA", kobest_copa),
    "kobest_hellaswag": ("HellaSwag", kobest_hellaswag),
    "kobest_sentineg": ("SentiNeg", kobest_sentineg),
    "kobest_wic": ("WiC", kobest_wic),
}
ARC = {"arc_easy": "ARC-Easy", "arc_challenge": "ARC-Challenge"}


def task_paths(name: str, e: EvalConfig) -> list[Path]:
    """Files or folders a suite task reads (checked before it runs)."""
    if name in KOBEST:
        folder = Path(e.kobest_dir) / KOBEST[name][0]
        return [folder / "test.tsv", folder / "train.tsv"]
    if name in ARC:
        folder = Path(e.arc_dir) / ARC[name]
        return [folder / f"{ARC[name]}-Dev.jsonl", folder / f"{ARC[name]}-Train.jsonl"]
    return {
        "piqa": [Path(e.piqa_dir) / "valid.jsonl", Path(e.piqa_dir) / "valid-labels.lst"],
        "winogrande": [Path(e.winogrande_dir) / "dev.jsonl", Path(e.winogrande_dir) / "train_m.jsonl"],
        "lambada": [Path(e.lambada_file)],
        "kmmlu": [Path(e.kmmlu_dir)],
        "mmlu": [Path(e.mmlu_dir)],
    }[name]


def _split_pair(load: Callable[[Path], list[MCItem]], test: Path, train: Path, fmt: MCFormat) -> ChoiceSpec:
    return ChoiceSpec({"": load(test)}, {"": load(train)}, fmt)


def choice_spec(name: str, e: EvalConfig) -> ChoiceSpec:
    """The scored items and few-shot pools of a built-in multiple-choice task."""
    if name == "kmmlu":
        return ChoiceSpec(
            data.kmmlu(Path(e.kmmlu_dir), "test"), data.kmmlu(Path(e.kmmlu_dir), "dev"), KMMLU_FORMAT
        )
    if name == "mmlu":
        return ChoiceSpec(
            data.mmlu(Path(e.mmlu_dir), "test"), data.mmlu(Path(e.mmlu_dir), "dev"), MMLU_FORMAT
        )
    if name == "piqa":
        items = piqa(task_paths(name, e)[0])
        return ChoiceSpec({"": items[e.mc_shots :]}, {"": items[: e.mc_shots]}, EN_FORMAT)
    test, train = task_paths(name, e)[:2]
    if name in KOBEST:
        return _split_pair(KOBEST[name][1], test, train, KO_FORMAT)
    return _split_pair(arc if name in ARC else winogrande, test, train, EN_FORMAT)


def is_choice_task(name: str) -> bool:
    return name in KOBEST or name in ARC or name in ("piqa", "winogrande", "kmmlu", "mmlu")
