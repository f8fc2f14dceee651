"""What the code sandbox costs per program, and HumanEval's 164 canonical solutions with N workers.

Per program (a trivial `print` and one HumanEval solution), in the same run:
  baseline    the same interpreter started plainly (`python -I -S -B bootstrap`, no isolation at all)
  unsafe      `run_sandboxed(..., unsafe_no_sandbox=True)`: launcher, rlimits, audit hook
  sandbox     `run_sandboxed(...)`: bubblewrap namespaces, read-only root, seccomp, cgroup, rlimits
Reported: median wall ms per program, and CPU ms per program (this process and its children, from
getrusage), so a busy machine inflates the wall figure but not the CPU one.

    PYTHONPATH=src python bench/sandbox_overhead.py [--repeats 30] [--workers 1,2,4] [--humaneval PATH]
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gecko.eval import data
from gecko.eval.sandbox import _BOOTSTRAP, SandboxLimits, check_layers, run_sandboxed
from gecko.eval.tasks import humaneval_program

HUMANEVAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eval" / "humaneval" / "data" / "HumanEval.jsonl.gz"


def _cpuacct() -> Path | None:
    """A cgroup-v1 cpuacct group holding this process: it counts the CPU of every descendant, also those
    in other PID namespaces that this process never reaps (getrusage misses those)."""
    mount = next((line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if " - cgroup " in line and "cpuacct" in line.split(" - ")[1].split()[2].split(",")), None)
    if mount is None:
        return None
    group = Path(mount) / f"gecko-bench-{os.getpid()}"
    try:
        group.mkdir(exist_ok=True)
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return None
    atexit.register(_leave, group)
    return group


def _leave(group: Path) -> None:
    (group.parent / "cgroup.procs").write_text(str(os.getpid()))
    group.rmdir()


CPUACCT = _cpuacct()


def _cpu_s() -> float:
    if CPUACCT is not None:
        return int((CPUACCT / "cpuacct.usage").read_text()) / 1e9
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _baseline(program: str) -> None:
    """The interpreter and bootstrap with no isolation: what any process-per-program evaluator pays."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "main.py").write_text(program)
        Path(work, "bootstrap.py").write_text(_BOOTSTRAP)
        subprocess.run([sys.executable, "-I", "-S", "-B", f"{work}/bootstrap.py", work, "no-audit", "as-is", "16"],
                       cwd=work, capture_output=True, check=True)


def _measure(run, program: str, repeats: int) -> tuple[float, float]:
    """(median wall ms, mean CPU ms) per program."""
    walls = []
    cpu0 = _cpu_s()
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(program)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls) * 1e3, (_cpu_s() - cpu0) / repeats * 1e3


def _humaneval_programs(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        canonical = {row["task_id"]: row["canonical_solution"] for row in map(json.loads, f)}
    return [humaneval_program(it, canonical[it.id]) for it in data.humaneval(path)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--humaneval", type=Path, default=HUMANEVAL)
    args = ap.parse_args()
    print(f"# {os.uname().nodename}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, uid {os.geteuid()}")
    print(f"# CPU counted by {'cgroup cpuacct' if CPUACCT else 'getrusage (misses processes in other PID namespaces)'}")
    print("# layers: " + ", ".join(layer.name for layer in check_layers() if layer.active))
    programs = _humaneval_programs(args.humaneval) if args.humaneval.exists() else []
    runners = {"baseline": _baseline,
               "unsafe": lambda p: run_sandboxed(p, unsafe_no_sandbox=True),
               "sandbox": lambda p: run_sandboxed(p)}
    print("| program | runner | wall ms (median) | CPU ms (mean) |\n|---|---|---|---|")
    for name, program in [("print(1)", "print(1)\n"), ("HumanEval/0", programs[0] if programs else None)]:
        if program is None:
            continue
        for runner, run in runners.items():
            wall, cpu = _measure(run, program, args.repeats)
            print(f"| {name} | {runner} | {wall:.1f} | {cpu:.1f} |")
    if not programs:
        return
    print("\n| HumanEval canonical (164) | workers | wall s | all passed |\n|---|---|---|---|")
    limits = SandboxLimits(timeout_s=30.0, cpu_s=30)
    for workers in (int(w) for w in args.workers.split(",")):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda p: run_sandboxed(p, limits), programs))
        wall = time.perf_counter() - t0
        print(f"| sandbox | {workers} | {wall:.1f} | {all(r.status == 'passed' for r in results)} |")


if __name__ == "__main__":
    main()
