"""The sandbox takes nothing away from honest code: every canonical HumanEval and MBPP solution, run as
code evaluation runs it (the same program builders, N workers), passes."""

from __future__ import annotations

import gzip
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gecko.eval import data
from gecko.eval.sandbox import SandboxLimits, run_sandboxed
from gecko.eval.tasks import humaneval_program, mbpp_program

EVAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eval"
HUMANEVAL = EVAL / "humaneval" / "data" / "HumanEval.jsonl.gz"
MBPP = EVAL / "mbpp" / "mbpp.jsonl"
LIMITS = SandboxLimits(timeout_s=20.0, cpu_s=20)  # generous: the machine running the tests may be busy

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="Linux namespaces")]


def _failures(programs: dict[str, str]) -> dict[str, str]:
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(programs, pool.map(lambda p: run_sandboxed(p, LIMITS), programs.values())))
    return {k: f"{r.status}: {r.stderr[-300:]}" for k, r in results.items() if r.status != "passed"}


@pytest.mark.skipif(not HUMANEVAL.exists(), reason=f"{HUMANEVAL} absent")
def test_every_canonical_humaneval_solution_passes():
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        canonical = {row["task_id"]: row["canonical_solution"] for row in map(json.loads, f)}
    items = data.humaneval(HUMANEVAL)
    assert len(items) == 164
    assert _failures({it.id: humaneval_program(it, canonical[it.id]) for it in items}) == {}


@pytest.mark.skipif(not MBPP.exists(), reason=f"{MBPP} absent")
def test_every_canonical_mbpp_solution_passes():
    with open(MBPP, encoding="utf-8") as f:
        canonical = {f"mbpp/{row['task_id']}": row["code"] for row in map(json.loads, f)}
    items = data.mbpp(MBPP)
    assert len(items) == 500
    assert _failures({it.id: mbpp_program(it, canonical[it.id]) for it in items}) == {}
