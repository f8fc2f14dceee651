"""The generation task types: GSM8K chain-of-thought exact match, and code pass@k with the tests run in the
sandbox (multiple choice lives in gecko.eval.choice).

Each `evaluate_*` takes a `LanguageModel` and items, and returns (metrics, per-item records).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gecko.eval.data import GenItem
from gecko.eval.lm import LanguageModel
from gecko.eval.sandbox import SandboxLimits, require_kernel_sandbox, run_sandboxed

Records = list[dict[str, Any]]


# ── GSM8K ───────────────────────────────────────────────────────────────────────────────────────────────

GSM8K_COT_EXEMPLARS: tuple[tuple[str, str], ...] = (
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
        "there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
        "been 21 - 15 = 6. The answer is 6.",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
        "they had 74 - 35 = 39. The answer is 39.",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did "
        "Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. "
        "The answer is 8.",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have "
        "now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
        "5 + 4 = 9. The answer is 9.",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from monday to "
        "thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
        "computers were added. 9 + 20 is 29. The answer is 29.",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
        "balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, "
        "he had 35 - 2 = 33 golf balls. The answer is 33.",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 "
        "dollars left. 23 - 15 is 8. The answer is 8.",
    ),
)
"""(question, worked answer): the eight hand-written chain-of-thought exemplars of Wei et al. (2022), word for
word as in lm-eval's `gsm8k_cot` task (its fewshot_config samples)."""
GSM8K_STOP = ("Q:", "</s>", "<|im_end|>")
"""lm-eval gsm8k_cot's `until`: the model starts the next question."""
_CALC = re.compile(r"<<[^>]*>>")  # the dataset's calculator annotations, not part of the reasoning
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def gsm8k_question(question: str) -> str:
    return f"Q: {question}\nA:"


def train_exemplar(item: GenItem) -> tuple[str, str]:
    """A train-split solution as an exemplar: calculator annotations removed, ending "The answer is N."."""
    return item.prompt, f"{_CALC.sub('', item.reference)} The answer is {item.answer}."


def gsm8k_prompt(question: str, exemplars: Sequence[tuple[str, str]]) -> str:
    """lm-eval gsm8k_cot's layout: "Q: …\nA: {answer}" per exemplar (target delimiter " ", a blank line
    between examples), then the question."""
    return "".join(f"{gsm8k_question(q)} {a}\n\n" for q, a in exemplars) + gsm8k_question(question)


def extract_number(text: str) -> str | None:
    """The number after "The answer is", else the last number in the text; commas and a trailing .0 or
    period dropped so "1,000.00" and "1000" compare equal."""
    match = re.search(r"The answer is\s*\$?\s*(" + _NUMBER.pattern + ")", text)
    found = match.group(1) if match else (_NUMBER.findall(text) or [None])[-1]
    return normalize_number(found) if found is not None else None


def normalize_number(text: str) -> str:
    text = text.replace(",", "").rstrip(".")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def evaluate_gsm8k(
    lm: LanguageModel,
    test: list[GenItem],
    exemplars: Sequence[tuple[str, str]],
    limit: int | None,
    max_new_tokens: int,
) -> tuple[dict[str, Any], Records]:
    """Few-shot chain of thought, greedy, exact match of the extracted number."""
    items = test[:limit] if limit is not None else test
    prompts = [gsm8k_prompt(it.prompt, exemplars) for it in items]
    outputs = lm.generate(prompts, max_new_tokens, GSM8K_STOP)
    records = [
        {"id": it.id, "answer": normalize_number(it.answer), "pred": extract_number(out), "output": out}
        for it, out in zip(items, outputs, strict=True)
    ]
    correct = sum(r["pred"] == r["answer"] for r in records)
    return {
        "exact_match": correct / len(items) if items else math.nan,
        "n": len(items),
        "shots": len(exemplars),
        "chance": 0.0,
    }, records


# ── code ────────────────────────────────────────────────────────────────────────────────────────────────

HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "\n```")
MBPP_STOP = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of pass@k from n samples with c correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), as a stable product."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def evaluate_code(
    lm: LanguageModel,
    items: list[GenItem],
    limit: int | None,
    samples: int,
    ks: Sequence[int],
    temperature: float,
    max_new_tokens: int,
    stop: Sequence[str],
    program: Callable[[GenItem, str], str],
    limits: SandboxLimits,
    workers: int = 2,
    unsafe_no_sandbox: bool = False,
) -> tuple[dict[str, Any], Records]:
    """`samples` completions per problem (greedy when temperature is 0), each run with its tests in the
    sandbox; pass@k averaged over problems."""
    if not unsafe_no_sandbox:
        require_kernel_sandbox()  # refuse before generating, not after
    items = items[:limit] if limit is not None else items
    prompts = [it.prompt for it in items]
    # one seed per sample index: a rerun reproduces, and the samples of a problem differ
    outputs = [lm.generate(prompts, max_new_tokens, stop, temperature, seed=s) for s in range(samples)]
    completions = [[outputs[s][i] for s in range(samples)] for i in range(len(items))]
    programs = [program(it, c) for it, cs in zip(items, completions, strict=True) for c in cs]
    with ThreadPoolExecutor(workers) as pool:  # each sandbox is its own process; threads just wait
        results = list(pool.map(lambda p: run_sandboxed(p, limits, unsafe_no_sandbox), programs))
    records: Records = []
    for i, it in enumerate(items):
        runs = results[i * samples : (i + 1) * samples]
        records.append(
            {
                "id": it.id,
                "passed": [r.status == "passed" for r in runs],
                "status": [r.status for r in runs],
                "completions": completions[i],
                "stderr_tail": [r.stderr[-300:] for r in runs],
            }
        )
    metrics: dict[str, Any] = {
        "n": len(items),
        "samples": samples,
        "chance": 0.0,
        "isolation": results[0].isolation if results else None,
    }
    for k in ks:
        scores = [pass_at_k(samples, sum(r["passed"]), k) for r in records]
        metrics[f"pass@{k}"] = sum(scores) / len(scores) if scores else math.nan
    return metrics, records


def humaneval_program(item: GenItem, completion: str) -> str:
    return item.prompt + completion + "\n" + item.reference


def mbpp_program(item: GenItem, completion: str) -> str:
    return completion + "\n" + item.reference
