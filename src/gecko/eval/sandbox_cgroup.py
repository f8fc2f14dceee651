"""Resource limits for one sandboxed program by cgroup: processes (pids), memory and CPU share.

rlimits bound each process; a cgroup bounds the whole tree, which is what stops a fork bomb whose
children each stay under their own limits, and counts tmpfs pages against the memory limit. Both cgroup
v2 (one unified tree; needs the pids, memory and cpu controllers delegated to our cgroup's children) and
v1 (one tree per controller, as on hosts in hybrid mode) are handled. Where neither can be written (an
unprivileged user without delegation, a read-only cgroupfs), `Cgroup.create` returns None and the sandbox
relies on rlimits, which `gecko sandbox check` reports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CPU_PERIOD_US = 100_000
CONTROLLERS = ("pids", "memory", "cpu")


@dataclass(frozen=True)
class CgroupLimits:
    pids: int
    memory_bytes: int
    cpus: float


def _mounts() -> dict[str, Path]:
    """{controller or "unified": mount point} from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, options = right.split()[:3]
            mount_point = Path(left.split()[4])
            if fstype == "cgroup2":
                found.setdefault("unified", mount_point)
            elif fstype == "cgroup":
                for opt in options.split(","):
                    if opt in CONTROLLERS:
                        found.setdefault(opt, mount_point)
    return found


def _own_paths() -> dict[str, str]:
    """{controller or "unified": our cgroup path} from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if names == "":
                paths["unified"] = path
            for name in names.split(","):
                paths.setdefault(name, path)
    return paths


def _v2_dirs(mounts: dict[str, Path], own: dict[str, str]) -> list[Path] | None:
    if "unified" not in mounts or "unified" not in own:
        return None
    parent = mounts["unified"] / own["unified"].lstrip("/")
    try:
        available = set((parent / "cgroup.controllers").read_text().split())
        if not set(CONTROLLERS) <= available:
            return None
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        missing = set(CONTROLLERS) - enabled
        if missing:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(missing)))
    except OSError:
        return None
    return [parent]


def _v1_dirs(mounts: dict[str, Path], own: dict[str, str]) -> list[Path] | None:
    if not all(c in mounts and c in own for c in CONTROLLERS):
        return None
    return [mounts[c] / own[c].lstrip("/") for c in CONTROLLERS]


class Cgroup:
    """One fresh cgroup (v2) or one per controller (v1), removed by `remove()`."""

    def __init__(self, dirs: list[Path], unified: bool):
        self.dirs = dirs
        self.unified = unified

    @classmethod
    def create(cls, limits: CgroupLimits) -> Cgroup | None:
        """A new cgroup under ours with the limits written, or None where the host does not let us."""
        mounts, own = _mounts(), _own_paths()
        name = f"gecko-sandbox-{uuid.uuid4().hex[:12]}"
        for unified, parents in ((True, _v2_dirs(mounts, own)), (False, _v1_dirs(mounts, own))):
            if parents is None:
                continue
            group = cls([p / name for p in parents], unified)
            try:
                for d in group.dirs:
                    d.mkdir()
                group._write_limits(limits)
                return group
            except OSError:
                group.remove()
        return None

    def _write_limits(self, limits: CgroupLimits) -> None:
        quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
        if self.unified:
            d = self.dirs[0]
            (d / "pids.max").write_text(str(limits.pids))
            (d / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # absent without swap accounting
                (d / "memory.swap.max").write_text("0")
            (d / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            return
        pids, memory, cpu = self.dirs
        (pids / "pids.max").write_text(str(limits.pids))
        (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        with contextlib.suppress(OSError):  # memsw exists only with swap accounting
            (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
        (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        """Move `pid` (not yet running the sandbox) in; everything it starts stays in."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(p) for p in (self.dirs[0] / "cgroup.procs").read_text().split()]
        return []

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, wait_s: float = 2.0) -> None:
        """Kill what is left and remove the directories (a cgroup with tasks cannot be removed)."""
        deadline = time.monotonic() + wait_s
        for d in reversed(self.dirs):
            while d.exists():
                try:
                    d.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    self.kill_all()
                    time.sleep(0.005)
