"""Write lm-evaluation-harness task YAML files for KMMLU and MMLU that read the local CSV files.

One task per subject (few-shot examples come from that subject's dev split, in file order, as GECKO takes
them) and one group per benchmark that averages over items (`weight_by_size`), which is GECKO's
`acc_micro`. The YAML prompt templates are GECKO's `mc_question` written in Jinja, and the data come
through `gecko.eval.data`, so both harnesses see identical strings. Regenerate with your own paths:

    python -m gecko.eval.lm_eval_tasks eval_tasks --kmmlu ../shared/data/eval/kmmlu/data \
        --mmlu ../shared/data/eval/mmlu/data
    lm_eval --model hf --model_args pretrained=runs/demo/export/hf,add_bos_token=True \
        --include_path eval_tasks --tasks gecko_kmmlu,gecko_mmlu --limit 5
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gecko.eval import data
from gecko.io.atomic import write_text

TEMPLATE = "{{question.strip()}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\n"
CUES = {"kmmlu": "정답：", "mmlu": "Answer:"}
MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"

# The loader lm-eval imports from each task folder (`!function utils.load`): paths in the YAML files are
# relative to that folder, so the tasks work from any working directory.
UTILS = '''"""Loader for lm-eval's `custom_dataset`; written by gecko.eval.lm_eval_tasks."""
from pathlib import Path

from gecko.eval.lm_eval_tasks import load_split_files

HERE = Path(__file__).parent


def load(benchmark, dev, test, **_metadata):
    return load_split_files(benchmark, HERE / dev, HERE / test)
'''


class _Function(str):
    """Dumped as the `!function` tag lm-eval resolves to a Python callable."""


yaml.SafeDumper.add_representer(_Function, lambda d, v: d.represent_scalar("!function", str(v)))
# Prompt templates with newlines read best double-quoted on one line, as lm-eval's own YAML files write them.
yaml.SafeDumper.add_representer(
    str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style='"' if "\n" in v else None)
)


def load_split_files(benchmark: str, dev: Path, test: Path) -> Any:
    """DatasetDict with dev and test rows {question, A, B, C, D, answer (index 0–3)}."""
    from datasets import Dataset, DatasetDict

    def rows(path: Path) -> list[dict[str, Any]]:
        items = (
            data.mc_items(path, "question", "ABCD", "answer", 1, path.stem)
            if benchmark == "kmmlu"
            else data.mc_items(path, "question", "ABCD", "answer", None, path.stem, data.MMLU_COLUMNS)
        )
        return [
            {"question": it.question, **dict(zip("ABCD", it.choices, strict=True)), "answer": it.answer}
            for it in items
        ]

    return DatasetDict({"dev": Dataset.from_list(rows(dev)), "test": Dataset.from_list(rows(test))})


def task_name(benchmark: str, subject: str) -> str:
    return f"gecko_{benchmark}_" + re.sub(r"[^a-z0-9]+", "_", subject.lower()).strip("_")


def _split_files(benchmark: str, folder: Path) -> dict[str, tuple[Path, Path]]:
    """{subject: (dev file, test file)} laid out as each benchmark is released."""
    if benchmark == "kmmlu":
        tests = sorted(folder.glob("*-test.csv"))
        return {
            p.name[: -len("-test.csv")]: (folder / p.name.replace("-test.csv", "-dev.csv"), p) for p in tests
        }
    tests = sorted((folder / "test").glob("*_test.csv"))
    return {
        p.name[: -len("_test.csv")]: (folder / "dev" / p.name.replace("_test.csv", "_dev.csv"), p)
        for p in tests
    }


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())


def write_tasks(
    out_dir: Path, benchmark: str, folder: Path, shots: int = 5, subjects: Sequence[str] | None = None
) -> list[str]:
    """Write {out_dir}/{benchmark}/*.yaml and utils.py; return the task names (group: gecko_{benchmark})."""
    task_dir = Path(out_dir) / benchmark
    task_dir.mkdir(parents=True, exist_ok=True)
    write_text(task_dir / "utils.py", UTILS)
    files = _split_files(benchmark, Path(folder))
    names = []
    for subject, (dev, test) in files.items():
        if subjects is not None and subject not in subjects:
            continue
        name = task_name(benchmark, subject)
        spec = {
            "task": name,
            "custom_dataset": _Function("utils.load"),
            "dataset_kwargs": {
                "benchmark": benchmark,
                "dev": _relative(dev, task_dir),
                "test": _relative(test, task_dir),
            },
            "output_type": "multiple_choice",
            "test_split": "test",
            "fewshot_split": "dev",
            "num_fewshot": shots,
            "fewshot_config": {"sampler": "first_n"},
            "description": MMLU_DESCRIPTION.format(subject=subject.replace("_", " "))
            if benchmark == "mmlu"
            else "",
            "doc_to_text": TEMPLATE + CUES[benchmark],
            "doc_to_choice": ["A", "B", "C", "D"],
            "doc_to_target": "{{answer}}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0},
        }
        write_text(task_dir / f"{name}.yaml", yaml.safe_dump(spec, allow_unicode=True, sort_keys=False))
        names.append(name)
    group = {
        "group": f"gecko_{benchmark}",
        "task": names,
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}],
        "metadata": {"version": 1.0},
    }
    write_text(task_dir / f"_gecko_{benchmark}.yaml", yaml.safe_dump(group, sort_keys=False))
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write lm-eval YAML tasks for local KMMLU/MMLU files.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--kmmlu", type=Path, help="KMMLU data folder ({Subject}-dev.csv, -test.csv)")
    parser.add_argument("--mmlu", type=Path, help="MMLU data folder (dev/, test/)")
    parser.add_argument("--shots", type=int, default=5)
    args = parser.parse_args(argv)
    for benchmark, folder in (("kmmlu", args.kmmlu), ("mmlu", args.mmlu)):
        if folder is not None:
            print(f"{benchmark}: {len(write_tasks(args.out_dir, benchmark, folder, args.shots))} tasks")


if __name__ == "__main__":
    main()
