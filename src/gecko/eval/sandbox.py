"""Run untrusted, model-written Python in a separate, locked-down process.

human-eval's own guard says it is "not a security sandbox": it monkey-patches `os` in the same process,
which one `import importlib; importlib.reload(os)` undoes. Here the program runs in a child process that
the kernel constrains, with a Python audit hook as a second layer:

kernel (cannot be undone from inside the child)
  - its own session and process group; the whole group is killed at the wall-clock timeout
  - rlimits: CPU seconds, address space (memory), file size, open files, no core dumps, and processes
    (RLIMIT_NPROC; the kernel does not enforce it for root, where the audit hook's ban on process creation
    is what stops a fork bomb)
  - no network: a new network namespace (unshare(CLONE_NEWNET) as root; CLONE_NEWUSER|CLONE_NEWNET
    unprivileged). Where neither is allowed (some containers), the audit hook's socket ban is the fallback,
    and `SandboxResult.isolation` says which one applied
  - a private, empty temporary directory as cwd and $HOME/$TMPDIR, removed afterwards; a scrubbed
    environment; stdout and stderr go to files capped by RLIMIT_FSIZE and read back truncated
audit hook (PEP 578; installed before the program runs, and Python offers no way to remove one)
  - opening files outside the sandbox directory (reading is allowed only from Python's own library),
    deleting or renaming outside it, sockets, process creation (fork, exec, spawn, subprocess, system),
    signals to other processes, and ctypes/native library loading all raise PermissionError

The audit hook does not bind native code; that is why ctypes is refused and why the kernel layers carry
the guarantees that matter for the host (network, memory, CPU, time, disk, output).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MiB = 1024 * 1024

Status = Literal["passed", "failed", "timeout"]


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    """Wall-clock seconds before the whole process group is killed."""
    cpu_s: int = 10
    """CPU seconds (RLIMIT_CPU); SIGXCPU then SIGKILL."""
    memory_mb: int = 1024
    """Address space (RLIMIT_AS), in MiB."""
    file_mb: int = 16
    """Largest file the program may write (RLIMIT_FSIZE), stdout and stderr included, in MiB."""
    nproc: int = 16
    """RLIMIT_NPROC (not enforced by the kernel for root)."""
    nofile: int = 64
    """Open file descriptors (RLIMIT_NOFILE)."""
    output_bytes: int = 64 * 1024
    """stdout and stderr are each truncated to this many bytes in the result."""


@dataclass(frozen=True)
class SandboxResult:
    status: Status
    """passed: exit code 0 within the limits; failed: non-zero exit, a signal or a refused operation;
    timeout: killed at the wall-clock limit."""
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    isolation: str
    """How the network was cut: "netns", "userns+netns" or "audit-hook" (the fallback)."""


# The program below runs first in the child: it installs the audit hook, then executes the untrusted code
# from main.py as __main__. It is plain Python with no imports from GECKO, so the child never loads torch.
_BOOTSTRAP = r'''
import os, sys
ROOT = os.path.realpath(sys.argv[1])
LIBS = tuple({os.path.realpath(p) for p in sys.argv[2:]})
SELF = os.getpid()
DENY = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
        "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system", "subprocess.Popen",
        "os.chroot", "os.setuid", "mmap.__new__", "resource.setrlimit", "resource.prlimit"}
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
               "os.listdir", "os.scandir", "os.chdir"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def inside(path, roots):
    if isinstance(path, int):
        return True  # an already-open descriptor
    p = os.path.realpath(os.fsdecode(path))
    return any(p == r or p.startswith(r + os.sep) for r in roots)

def hook(event, args):
    if event in DENY or event.startswith("ctypes."):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "import" and args[0] in ("ctypes", "_ctypes"):
        raise PermissionError("sandbox: ctypes is not allowed")
    if event in ("os.kill", "os.killpg", "signal.pthread_kill") and args[0] not in (0, SELF):
        raise PermissionError(f"sandbox: {event} on another process is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = bool((flags or 0) & WRITE_FLAGS) or bool(set(mode or "") & set("wax+"))
        if path is not None and not inside(path, (ROOT,) if writing else (ROOT,) + LIBS):
            raise PermissionError(f"sandbox: open({path!r}, {mode or flags!r}) outside the sandbox directory")
    if event in PATH_EVENTS:
        roots = (ROOT,) + LIBS if event in ("os.listdir", "os.scandir") else (ROOT,)
        for path in args:
            if isinstance(path, (str, bytes, os.PathLike)) and not inside(path, roots):
                raise PermissionError(f"sandbox: {event}({path!r}) outside the sandbox directory")

sys.addaudithook(hook)
del hook
source = open(os.path.join(ROOT, "main.py"), encoding="utf-8").read()
sys.argv = ["main.py"]
exec(compile(source, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
'''


def _python_lib_dirs() -> list[str]:
    """Folders the child may read: the standard library and the interpreter's prefixes (for imports)."""
    paths = sysconfig.get_paths()
    dirs = {paths["stdlib"], paths["platstdlib"], sys.base_prefix, sys.base_exec_prefix}
    return sorted(d for d in dirs if d)


def _libc() -> ctypes.CDLL | None:
    """Loaded in the parent: the forked child should only call into it, not run the dynamic loader."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _unshare_network(libc: ctypes.CDLL | None) -> str:
    """In the child before exec: cut the network with a new namespace; return how."""
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc is not None and libc.unshare(flags) == 0:
        return "netns" if flags == CLONE_NEWNET else "userns+netns"
    return "audit-hook"


def _child_setup(limits: SandboxLimits, libc: ctypes.CDLL | None, report_fd: int) -> None:
    """preexec_fn: runs in the forked child, before exec."""
    how = _unshare_network(libc)
    os.write(report_fd, how.encode())
    os.close(report_fd)
    caps = [
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_AS, limits.memory_mb * MiB),
        (resource.RLIMIT_FSIZE, limits.file_mb * MiB),
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, limits.nproc),
    ]
    for which, value in caps:
        resource.setrlimit(which, (value, value))


def run_sandboxed(program: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `program` (Python source) in a fresh sandbox and report how it ended; never raises for
    anything the program does."""
    root = Path(tempfile.mkdtemp(prefix="gecko-sandbox-"))
    logs = Path(tempfile.mkdtemp(prefix="gecko-sandbox-out-"))  # outside the program's reach
    try:
        work = root / "work"
        work.mkdir()
        (work / "main.py").write_text(program, encoding="utf-8")
        (logs / "bootstrap.py").write_text(_BOOTSTRAP, encoding="utf-8")
        return _run(work, logs, limits)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


def _run(work: Path, logs: Path, limits: SandboxLimits) -> SandboxResult:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
           "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-I", "-S", str(logs / "bootstrap.py"), str(work), *_python_lib_dirs()]
    libc = _libc()
    read_fd, write_fd = os.pipe()
    t0 = time.monotonic()
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, pass_fds=(write_fd,), close_fds=True,
                                preexec_fn=lambda: _child_setup(limits, libc, write_fd))
        os.close(write_fd)
        timed_out = _wait(proc, limits.timeout_s)
    isolation = os.read(read_fd, 64).decode() or "audit-hook"
    os.close(read_fd)
    seconds = time.monotonic() - t0
    rc = proc.returncode
    status: Status = "timeout" if timed_out else "passed" if rc == 0 else "failed"
    return SandboxResult(status, rc, _head(logs / "stdout", limits.output_bytes),
                         _head(logs / "stderr", limits.output_bytes), round(seconds, 3), isolation)


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the child; at the deadline kill its whole process group. True if it timed out."""
    try:
        proc.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    try:  # also reaps anything the program left running in its group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return timed_out


def _head(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > limit else "")
