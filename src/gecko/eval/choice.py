"""Multiple choice in the two formulations of OLMES (Gu et al., 2024), with chance and a 95% interval.

- **MC**: the options are printed lettered A, B, … and the model scores each answer letter after the cue;
  the prediction is the letter with the highest log-likelihood. Large models only; at proxy scale it sits
  at chance because a small model has not learnt the format.
- **Cloze** (OLMES's "RC"): no options are shown; each answer text is scored as the continuation of the
  question, and the prediction is the highest log-likelihood normalized three ways: raw (`acc`), per token
  of the continuation (`acc_per_token`) and per character of the answer text without the joining space
  (`acc_per_char`, lm-eval's `acc_norm`). This is where small models show signal.

An item can carry its own (prefix, continuation) per choice (`MCItem.cloze`): Winogrande scores the rest
of the sentence after each option filled in (partial scoring), COPA each alternative after the premise and
its connective. Few-shot examples are solved in the same formulation as the question.

Every accuracy carries a 95% percentile bootstrap interval over items (stratified by subject for the macro
average). Each item is right or wrong, so a resample's count of right answers is exactly a binomial draw
with the observed rate: the bootstrap is drawn that way, in microseconds even for KMMLU's 35,030 items.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gecko.eval.data import LETTERS, MCItem
from gecko.eval.lm import LanguageModel, Scored

Formulation = Literal["mc", "cloze", "both"]
Records = list[dict[str, Any]]
CLOZE_NORMS = ("acc", "acc_per_token", "acc_per_char")
"""Cloze accuracies, by how each choice's log-likelihood is normalized; the headline is acc_per_char."""
BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class MCFormat:
    answer_cue: str
    """Ends each question: "정답：" (KMMLU, full-width colon as in the paper's template) or "Answer:"."""
    description: str = ""
    """Printed once before the shots; "{subject}" is replaced by the subject name."""
    question_label: str = ""
    """Printed before the question ("Question: ", "질문: "); KMMLU and MMLU print none, as lm-eval."""


KMMLU_FORMAT = MCFormat("정답：")
MMLU_FORMAT = MCFormat(
    "Answer:", "The following are multiple choice questions (with answers) about {subject}.\n\n"
)
EN_FORMAT = MCFormat("Answer:", question_label="Question: ")
KO_FORMAT = MCFormat("답:", question_label="질문: ")


def formulations(f: Formulation) -> tuple[str, ...]:
    return ("mc", "cloze") if f == "both" else (f,)


# ── prompts ─────────────────────────────────────────────────────────────────────────────────────────────


def _stem(item: MCItem, fmt: MCFormat) -> str:
    passage = f"{item.context.strip()}\n" if item.context else ""
    return f"{passage}{fmt.question_label}{item.question.strip()}"


def mc_question(item: MCItem, fmt: MCFormat) -> str:
    options = "".join(f"\n{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
    return f"{_stem(item, fmt)}{options}\n{fmt.answer_cue}"


def cloze_pairs(item: MCItem, fmt: MCFormat) -> list[tuple[str, str]]:
    """(prefix, continuation) per choice: the item's own, or the question then " {answer text}"."""
    if item.cloze:
        return list(item.cloze)
    prefix = f"{_stem(item, fmt)}\n{fmt.answer_cue}"
    return [(prefix, f" {c.strip()}") for c in item.choices]


def solved(item: MCItem, fmt: MCFormat, formulation: str) -> str:
    """A few-shot example: the question in `formulation`, answered correctly."""
    if formulation == "mc":
        return f"{mc_question(item, fmt)} {LETTERS[item.answer]}"
    prefix, continuation = cloze_pairs(item, fmt)[item.answer]
    return prefix + continuation


def requests(item: MCItem, shots: Sequence[MCItem], fmt: MCFormat, formulation: str) -> list[tuple[str, str]]:
    """(context, continuation) per choice: description, the solved shots (a blank line between examples,
    lm-eval's layout), then the item."""
    head = fmt.description.format(subject=item.subject.replace("_", " "))
    head += "".join(solved(s, fmt, formulation) + "\n\n" for s in shots)
    if formulation == "mc":
        question = mc_question(item, fmt)
        return [(head + question, f" {LETTERS[j]}") for j in range(len(item.choices))]
    return [(head + prefix, continuation) for prefix, continuation in cloze_pairs(item, fmt)]


# ── scoring ─────────────────────────────────────────────────────────────────────────────────────────────


def argmax_first(values: Sequence[float]) -> int:
    """Index of the highest value; ties go to the first (lm-eval's np.argmax)."""
    return max(range(len(values)), key=lambda j: (values[j], -j))


def cloze_predictions(scored: Sequence[Scored], continuations: Sequence[str]) -> dict[str, int]:
    """{norm: predicted choice} for raw, per-token and per-character normalized log-likelihoods."""
    raw = [s.logprob for s in scored]
    per_token = [s.logprob / max(s.n_tokens, 1) for s in scored]
    per_char = [s.logprob / max(len(c.lstrip(" ")), 1) for s, c in zip(scored, continuations, strict=True)]
    return {
        "acc": argmax_first(raw),
        "acc_per_token": argmax_first(per_token),
        "acc_per_char": argmax_first(per_char),
    }


def bootstrap_ci(
    right: np.ndarray, groups: np.ndarray | None = None, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the mean of `right` (0/1 per item) over item resamples; with `groups`,
    of the mean of group means, resampling within each group (the macro average's interval)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.zeros(len(right), dtype=int)
    means = []
    for g in np.unique(groups):
        member = right[groups == g]
        means.append(rng.binomial(len(member), member.mean(), draws) / len(member))
    samples = np.mean(means, axis=0)
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


def _accuracies(right: dict[str, np.ndarray], subjects: np.ndarray) -> dict[str, Any]:
    """{metric: micro, metric_ci, and metric_macro(+_ci) where there are several subjects}."""
    out: dict[str, Any] = {}
    several = len(np.unique(subjects)) > 1
    for metric, r in right.items():
        out[metric], out[f"{metric}_ci"] = float(r.mean()), list(bootstrap_ci(r))
        if several:
            per_subject = [r[subjects == s].mean() for s in np.unique(subjects)]
            out[f"{metric}_macro"] = float(np.mean(per_subject))
            out[f"{metric}_macro_ci"] = list(bootstrap_ci(r, subjects))
    return out


def evaluate_choice(
    lm: LanguageModel,
    test: dict[str, list[MCItem]],
    shots: dict[str, list[MCItem]],
    n_shots: int,
    fmt: MCFormat,
    formulation: Formulation,
    limit: int | None,
) -> tuple[dict[str, Any], Records]:
    """Score every item in each formulation; returns (metrics, per-item records).

    `shots` maps a subject to its pool (the key "" serves every subject); the first `n_shots` are used.
    Metric keys are `{formulation}_{metric}` (`mc_acc`, `cloze_acc_per_char`, …), micro over items, with
    `_macro` over subjects where there are several, each beside its `_ci` (95% bootstrap interval)."""
    items = [it for subject_items in test.values() for it in subject_items[:limit]]
    forms = formulations(formulation)
    records: Records = [{"subject": it.subject, "where": it.where, "answer": it.answer} for it in items]
    flat: list[tuple[int, str, tuple[str, str]]] = []  # (record, formulation, request)
    for k, it in enumerate(items):
        pool = shots.get(it.subject, shots.get("", []))[:n_shots]
        if len(pool) < n_shots:
            raise ValueError(
                f"{it.subject or 'task'}: {n_shots}-shot needs {n_shots} examples, found {len(pool)}"
            )
        flat += [(k, f, req) for f in forms for req in requests(it, pool, fmt, f)]
    scores = iter(lm.score([req for _, _, req in flat]))
    grouped: dict[tuple[int, str], list[tuple[Scored, str]]] = defaultdict(list)
    for k, f, (_, continuation) in flat:
        grouped[k, f].append((next(scores), continuation))
    right: dict[str, list[bool]] = defaultdict(list)
    for (k, f), pairs in grouped.items():
        rec, scored = records[k], [s for s, _ in pairs]
        rec[f"{f}_loglik"] = [s.logprob for s in scored]
        preds = (
            {"acc": argmax_first([s.logprob for s in scored])}
            if f == "mc"
            else cloze_predictions(scored, [c for _, c in pairs])
        )
        for metric, pred in preds.items():
            rec[f"{f}_{metric}_pred"] = pred
            right[f"{f}_{metric}"].append(pred == rec["answer"])
    subjects = np.array([it.subject for it in items])
    n = len(items)
    names = list(dict.fromkeys(it.subject for it in items))
    metrics: dict[str, Any] = {
        "n": n,
        "shots": n_shots,
        "formulations": list(forms),
        "subjects": len(names),
        "chance": sum(1 / len(it.choices) for it in items) / n if n else math.nan,
        "majority": majority_baseline(records),
        **(_accuracies({m: np.array(v, dtype=float) for m, v in right.items()}, subjects) if n else {}),
        "per_subject": {
            s: {m: float(np.array(v, dtype=float)[subjects == s].mean()) for m, v in right.items()}
            for s in names
        },
    }
    return metrics, records


def majority_baseline(records: Records) -> float:
    """Macro accuracy of always answering the choice that is most often correct among the scored items.

    Uniform chance (1/choices) is not the bar when answers are unevenly spread: in the KMMLU test files
    only 10% of answers are A, so always answering D scores ~31%, not 25%."""
    if not records:
        return math.nan
    letter = Counter(r["answer"] for r in records).most_common(1)[0][0]
    by_subject: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by_subject[r.get("subject", "")].append(r["answer"] == letter)
    return sum(sum(v) / len(v) for v in by_subject.values()) / len(by_subject)


# ── LAMBADA: the last word, greedily ────────────────────────────────────────────────────────────────────


def evaluate_last_word(
    lm: LanguageModel, items: Sequence[tuple[str, str, str]], limit: int | None
) -> tuple[dict[str, Any], Records]:
    """(where, context, " target") items: accuracy = the target is the model's greedy continuation
    (lm-eval lambada_openai `acc`), and perplexity of the targets. Chance is 0."""
    items = list(items[:limit])
    scored = lm.score([(c, t) for _, c, t in items])
    right = np.array([s.greedy for s in scored], dtype=float)
    records = [
        {"where": w, "target": t, "loglik": s.logprob, "greedy": s.greedy}
        for (w, _, t), s in zip(items, scored, strict=True)
    ]
    n = len(items)
    metrics: dict[str, Any] = {"n": n, "shots": 0, "formulations": ["cloze"], "chance": 0.0}
    if n:
        metrics.update(
            {
                "cloze_acc": float(right.mean()),
                "cloze_acc_ci": list(bootstrap_ci(right)),
                "perplexity": math.exp(-sum(s.logprob for s in scored) / n),
            }
        )
    return metrics, records
