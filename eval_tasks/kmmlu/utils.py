"""Loader for lm-eval's `custom_dataset`; written by gecko.eval.lm_eval_tasks."""
from pathlib import Path

from gecko.eval.lm_eval_tasks import load_split_files

HERE = Path(__file__).parent


def load(benchmark, dev, test, **_metadata):
    return load_split_files(benchmark, HERE / dev, HERE / test)
