"""Cross-check with lm-evaluation-harness: on the same exported model and the same KMMLU and MMLU items,
lm-eval (through the eval_tasks/ YAML files, model `hf`) and GECKO build the same prompts, compute the same
log-likelihoods up to float noise, and choose the same answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_or_skip
from gecko.eval import data
from gecko.eval.choice import KMMLU_FORMAT, MMLU_FORMAT, evaluate_choice, requests
from gecko.eval.lm import GeckoLM
from gecko.eval.lm_eval_tasks import task_name, write_tasks
from gecko.model.hf import export_hf, load_hf
from gecko.tokens import load_tokenizer
from helpers import make_model, make_tokenizer

SUBJECTS = {"kmmlu": ("Accounting", "Biology"), "mmlu": ("anatomy", "high_school_computer_science")}
LIMIT = 3


def lm_eval_samples(export: Path, task_dir: Path, tasks: list[str]) -> dict[str, list[dict]]:
    lm_eval = pytest.importorskip("lm_eval", reason="the eval extra (lm-eval) is not installed")
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={export},add_bos_token=True,dtype=float32",
        tasks=tasks,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        limit=LIMIT,
        log_samples=True,
        batch_size=8,
        device="cpu",
    )
    return {t: sorted(out["samples"][t], key=lambda s: s["doc_id"]) for t in tasks}


@pytest.mark.slow
def test_per_item_choices_and_accuracy_equal_lm_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = shared_or_skip("eval")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folders = {"kmmlu": root / "kmmlu/data", "mmlu": root / "mmlu/data"}
    loaders = {"kmmlu": data.kmmlu, "mmlu": data.mmlu}
    formats = {"kmmlu": KMMLU_FORMAT, "mmlu": MMLU_FORMAT}

    tokenizer_dir = make_tokenizer(tmp_path / "tok")
    tokenizer = load_tokenizer(tokenizer_dir)
    # init_std 0.5: a random model whose answers vary with the question, not one letter throughout
    random_model = make_model(tokenizer.get_vocab_size(), max_seq_len=4096, init_std=0.5)
    export = export_hf(random_model, tokenizer_dir, tmp_path / "hf")
    model, _ = load_hf(export)  # both harnesses score the exported folder
    lm = GeckoLM(model, tokenizer, batch_size=8)

    names = []
    for bench, subjects in SUBJECTS.items():
        names += write_tasks(tmp_path / "tasks", bench, folders[bench], subjects=subjects)
    theirs = lm_eval_samples(export, tmp_path / "tasks", names)

    for bench, subjects in SUBJECTS.items():
        test = {s: loaders[bench](folders[bench], "test")[s] for s in subjects}
        dev = {s: loaders[bench](folders[bench], "dev")[s] for s in subjects}
        metrics, records = evaluate_choice(lm, test, dev, 5, formats[bench], "mc", LIMIT)
        ours_by_subject = {s: [r for r in records if r["subject"] == s] for s in subjects}
        agree = 0
        for subject in subjects:
            samples = theirs[task_name(bench, subject)]
            assert len(samples) == LIMIT
            for item, sample, ours in zip(test[subject], samples, ours_by_subject[subject], strict=False):
                context = (
                    sample["arguments"][0][0]
                    if isinstance(sample["arguments"][0], list | tuple)
                    else sample["arguments"]["gen_args_0"]["arg_0"]
                )
                assert (
                    context == requests(item, dev[subject][:5], formats[bench], "mc")[0][0]
                )  # the same prompt
                their_ll = [float(r[0]) for r in sample["filtered_resps"]]
                assert their_ll == pytest.approx(ours["mc_loglik"], abs=2e-3)
                their_pred = max(range(4), key=lambda j: (their_ll[j], -j))
                assert sample["target"] == ours["answer"]
                agree += their_pred == ours["mc_acc_pred"]
        assert (
            agree == len(records) and len({r["mc_acc_pred"] for r in records}) > 1
        )  # not one letter throughout
        their_samples = [s for subject in subjects for s in theirs[task_name(bench, subject)]]
        their_acc = sum(s["acc"] for s in their_samples) / len(records)
        assert their_acc == metrics["mc_acc"]
