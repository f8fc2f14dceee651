"""The sandbox's kernel layers hold on their own: every escape runs with the audit hook left out (as if the
attacker had already switched it off, which the issue showed is possible), and each is judged from
outside — a canary file on the host, a listener in this process, a sentinel process, the process table,
this test process still alive. The tampering tests run with the hook on, switch it off from inside, and
then try the same escapes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from gecko.eval import sandbox
from gecko.eval.sandbox import SandboxLimits, SandboxResult, SandboxUnavailable, check_layers, run_sandboxed

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is built on Linux namespaces")

FAST = SandboxLimits(timeout_s=4.0, cpu_s=3, memory_mb=512, file_mb=1, disk_mb=8, output_bytes=1000)
SECRET = "gecko-secret-" + uuid.uuid4().hex


def attack(program: str, limits: SandboxLimits = FAST) -> SandboxResult:
    """Run with the kernel layers only."""
    return run_sandboxed(program, limits, audit_hook=False)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.fixture
def sentinel():
    """A host process the program must not be able to signal or trace."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _alive_and_untraced(proc: subprocess.Popen) -> bool:
    status = Path(f"/proc/{proc.pid}/status").read_text()
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    tracer = next(line for line in status.splitlines() if line.startswith("TracerPid:"))
    return proc.poll() is None and state.split()[1] in ("S", "R") and tracer.split()[1] == "0"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


LIBC = "import ctypes, ctypes.util\nlibc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)\n"


# ── the layers, and the ordinary programs still work ───────────────────────────────────────────────────


def test_every_required_layer_is_active_on_this_host():
    layers = check_layers()
    missing = [f"{layer.name}: {layer.detail}" for layer in layers if layer.required and not layer.active]
    assert not missing
    names = {layer.name for layer in layers}
    assert {"pid namespace", "network namespace", "seccomp filter", "no_new_privs"} <= names


def test_plain_program_passes_and_output_is_captured():
    result = run_sandboxed("import math\nprint(math.factorial(5))\nassert sum(range(4)) == 6\n", FAST)
    assert result.status == "passed" and result.stdout.strip() == "120"
    assert result.isolation.startswith("kernel")


def test_failing_assertion_is_a_failure():
    result = run_sandboxed("assert 1 + 1 == 3\n", FAST)
    assert result.status == "failed" and "AssertionError" in result.stderr


def test_files_in_its_own_directory_and_tmp_are_allowed():
    program = (
        "import tempfile\nopen('a.txt', 'w').write('hi')\nprint(open('a.txt').read())\n"
        "with tempfile.NamedTemporaryFile('w') as f:\n    f.write('x')\n"
    )
    result = run_sandboxed(program, FAST)
    assert result.status == "passed" and result.stdout.strip() == "hi"


def test_the_program_runs_as_nobody_seen_from_the_host():
    marker = "gecko-uid-" + uuid.uuid4().hex
    program = (
        "import os, sys, time\nos.execv(sys.executable, [sys.executable, '-c', "
        f"'import time; time.sleep(1.5)', {marker[:6]!r} + {marker[6:]!r}])\n"
    )  # not in the runner's argv
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from gecko.eval.sandbox import *; "
            "sys.exit(run_sandboxed(sys.argv[1], audit_hook=False).returncode)",
            program,
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as runner:
        deadline = time.monotonic() + 10
        while not (pids := _processes_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        uids = [Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4] for pid in pids]
        runner.wait()
    assert uids and all(u == ["65534"] * 4 for u in uids)


# ── files ─────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "route",
    [
        "open(P).read()",
        "os.read(os.open(P.lstrip('/'), os.O_RDONLY, dir_fd=os.open('/', os.O_RDONLY)), 999).decode()",
        "(os.symlink(P, 'link'), open('link').read())[1]",
        "(os.link(P, 'hard'), open('hard').read())[1]",
        "open('/proc/self/root' + P).read()",
        "open(f'/proc/{os.getpid()}/root' + P).read()",
        "_io.FileIO(P).read().decode()",
        "open(P.replace('/', '/./')).read()",
    ],
)
def test_reading_a_host_file_fails_by_every_route(secret: Path, route: str):
    def program(path: str) -> str:
        return f"import os, _io\nopen('/sandbox/inside.txt', 'w').write('INSIDE')\nP = {path!r}\nprint({route})\n"

    control = attack(program("/sandbox/inside.txt"))  # the route works: it reads a file of the sandbox
    assert control.status == "passed" and "INSIDE" in control.stdout, control.stderr
    result = attack(program(str(secret)))
    assert result.status == "failed" and SECRET not in result.stdout + result.stderr


def test_reading_a_host_file_through_libc_fails(secret: Path):
    program = LIBC + (
        f"fd = libc.open({str(secret).encode()!r}, 0)\nbuf = ctypes.create_string_buffer(200)\n"
        "n = libc.read(fd, buf, 200)\nprint(fd, n, buf.value)\nassert fd >= 0\n"
    )
    result = attack(program)
    assert result.status == "failed" and SECRET not in result.stdout + result.stderr


def test_host_environment_and_parent_are_out_of_reach(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GECKO_CANARY_ENV", SECRET)
    program = (
        "import os\nout = []\n"
        "for pid in (os.getppid(), 1, *[int(p) for p in os.listdir('/proc') if p.isdigit()]):\n"
        "    for name in ('environ', 'cmdline'):\n"
        "        try:\n            out.append(open(f'/proc/{pid}/{name}', 'rb').read())\n"
        "        except OSError as e:\n            out.append(repr(e).encode())\n"
        "print(os.environ)\nprint(b'\\n'.join(out))\n"
    )
    result = attack(program)
    assert SECRET not in result.stdout + result.stderr and "GECKO_CANARY_ENV" not in result.stdout


@pytest.mark.parametrize(
    "route",
    [
        "open(T, 'w').write('x')",
        "os.open(os.path.basename(T), os.O_WRONLY | os.O_CREAT, dir_fd=os.open(os.path.dirname(T), os.O_RDONLY))",
        "open('/proc/self/root' + T, 'w').write('x')",
        "os.symlink(T, 'l') or open('l', 'w').write('x')",
        "os.remove(K)",
        "os.rename(K, T)",
        "open(K, 'a').write('x')",
    ],
)
def test_writing_or_deleting_on_the_host_fails_by_every_route(tmp_path: Path, route: str):
    def program(target: str, keep: str) -> str:
        return (
            f"import os\nopen('/sandbox/keep.txt', 'w').write('keep')\nT = {target!r}\nK = {keep!r}\n{route}\n"
            "print(os.path.exists(T), open(K).read() if os.path.exists(K) else 'gone')\n"
        )

    control = attack(program("/sandbox/out.txt", "/sandbox/keep.txt"))  # the route works inside the sandbox
    assert control.status == "passed" and control.stdout.split() != ["False", "keep"], control.stderr
    target, keep = tmp_path / "pwned.txt", tmp_path / "keep.txt"
    keep.write_text("keep")
    result = attack(program(str(target), str(keep)))
    assert result.status == "failed"
    assert not target.exists() and keep.read_text() == "keep"


def test_writing_through_libc_fails(tmp_path: Path):
    target = tmp_path / "pwned.txt"
    result = attack(
        LIBC + f"fd = libc.creat({str(target).encode()!r}, 0o644)\nassert fd >= 0, ctypes.get_errno()\n"
    )
    assert result.status == "failed" and not target.exists()


def test_host_tmp_is_not_the_sandbox_tmp():
    name = "gecko-canary-" + uuid.uuid4().hex
    result = attack(f"open('/tmp/{name}', 'w').write('x')\nopen('/var/tmp/{name}', 'w').write('x')\n")
    assert not Path("/tmp", name).exists() and not Path("/var/tmp", name).exists()
    assert result.status == "failed"  # /tmp (in the sandbox) is writable, /var/tmp does not exist


# ── network ───────────────────────────────────────────────────────────────────────────────────────────


def test_tcp_and_udp_to_a_host_listener_fail():
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        udp.bind(("127.0.0.1", 0))
        program = (
            "import socket\n"
            f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'leak', ('127.0.0.1', {udp.getsockname()[1]}))\n"
            f"socket.create_connection(('127.0.0.1', {tcp.getsockname()[1]}), timeout=1).sendall(b'leak')\n"
        )
        result = attack(program)
        tcp.settimeout(0.2)
        udp.settimeout(0.2)
        with pytest.raises(TimeoutError):
            tcp.accept()
        with pytest.raises(TimeoutError):
            udp.recv(10)
    assert result.status == "failed"


def test_unix_and_abstract_sockets_of_the_host_are_unreachable(tmp_path: Path):
    path, abstract = str(tmp_path / "host.sock"), "\0gecko-test-" + uuid.uuid4().hex
    with socket.socket(socket.AF_UNIX) as named, socket.socket(socket.AF_UNIX) as hidden:
        named.bind(path)
        named.listen(1)
        hidden.bind(abstract)
        hidden.listen(1)
        for address in (path, abstract):
            program = (
                f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({address!r})\ns.sendall(b'x')\n"
            )
            assert attack(program).status == "failed"
        for server in (named, hidden):
            server.settimeout(0.2)
            with pytest.raises(TimeoutError):
                server.accept()


def test_raw_packet_netlink_vsock_and_other_socket_families_are_refused():
    program = (
        "import socket\nfor args in ((socket.AF_INET, socket.SOCK_RAW, 1), (socket.AF_PACKET, socket.SOCK_RAW, 0),"
        " (socket.AF_NETLINK, socket.SOCK_RAW, 0), (socket.AF_NETLINK, socket.SOCK_DGRAM, 0),"
        " (socket.AF_VSOCK, socket.SOCK_STREAM, 0), (socket.AF_ALG, socket.SOCK_SEQPACKET, 0)):\n"
        "    try:\n        socket.socket(*args)\n        print('opened', args)\n"
        "    except OSError as e:\n        print('refused', e.errno)\n"
    )
    result = attack(program)
    assert result.status == "passed" and "opened" not in result.stdout and result.stdout.count("refused") == 6


# ── processes, signals, tracing ───────────────────────────────────────────────────────────────────────

# The child proves it ran (in the sandbox's /sandbox), then tries the host canary.
CHILD = "import os; open('/sandbox/child-ran', 'w').close(); open({path!r}, 'w').write('x')"
FORK_EXEC = (
    "import _posixsubprocess\nr, w = os.pipe()\n"
    "head = [[sys.executable, '-c', CODE], [sys.executable.encode()], True, (), None, None,"
    " -1, -1, -1, -1, -1, -1, r, w, False, False]\n"
    "for tail in ([-1, None, None, -1, -1, None, False], [-1, None, None, -1, -1, None],"
    " [None, None, -1, -1, None, False], [None, None, -1, -1, None]):\n"  # 3.11+, 3.14, 3.10
    "    try:\n        pid = _posixsubprocess.fork_exec(*head, *tail)\n        break\n"
    "    except TypeError:\n        continue\nos.waitpid(pid, 0)\n"
)


@pytest.mark.parametrize(
    "route",
    [
        "pid = os.fork()\nif pid == 0:\n    try:\n        exec(CODE)\n    finally:\n        os._exit(0)\nos.waitpid(pid, 0)\n",
        FORK_EXEC,
        "pid = os.posix_spawn(sys.executable, [sys.executable, '-c', CODE], {})\nos.waitpid(pid, 0)\n",
        "import ctypes\nlibc = ctypes.CDLL(None)\nif libc.fork() == 0:\n    try:\n        exec(CODE)\n"
        "    finally:\n        os._exit(0)\nos.wait()\n",
    ],
)
def test_new_processes_stay_inside(tmp_path: Path, route: str):
    canary = str(tmp_path / "from-child.txt")
    program = f"import os, sys\nCODE = {CHILD.format(path=canary)!r}\n{route}print(os.path.exists('/sandbox/child-ran'))\n"
    result = attack(program)
    assert result.stdout.split() == ["True"], result.stderr  # the child ran
    assert not Path(canary).exists()


def test_no_host_binary_can_be_executed(tmp_path: Path):
    canary = tmp_path / "from-shell.txt"
    result = attack(f"import subprocess\nsubprocess.run(['/bin/sh', '-c', 'touch {canary}'])\n")
    assert result.status == "failed" and "No such file" in result.stderr and not canary.exists()


# A long-lived process that says it is up (in /sandbox), and the parent's wait for it.
UP = "UP = \"open('/sandbox/up', 'w').close(); import time; time.sleep(30)\"\n"
WAIT_UP = (
    "for _ in range(300):\n    if os.path.exists('/sandbox/up'):\n        print('daemon up', flush=True)\n"
    "        break\n    time.sleep(0.01)\n"
)


def test_a_daemon_does_not_survive_the_program():
    marker = "gecko-daemon-" + uuid.uuid4().hex
    program = (
        "import os, sys, time\n" + UP + "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', UP, {marker!r}])\n"
        "    os._exit(0)\n" + WAIT_UP + "print('parent returns')\n"
    )
    result = attack(program)
    assert result.status == "passed" and "daemon up" in result.stdout and "parent returns" in result.stdout
    time.sleep(0.2)
    assert _processes_with(marker) == []


def test_at_the_timeout_the_whole_namespace_dies():
    marker = "gecko-timeout-" + uuid.uuid4().hex
    program = (
        "import os, sys, time\n" + UP + "if os.fork() == 0:\n    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', UP, {marker!r}])\n"
        + WAIT_UP
        + "time.sleep(30)\n"
    )
    result = attack(program, SandboxLimits(timeout_s=2.0))
    assert result.status == "timeout" and "daemon up" in result.stdout
    time.sleep(0.2)
    assert _processes_with(marker) == []


def test_signals_reach_no_host_process(sentinel: subprocess.Popen):
    program = (
        "import os, signal\n"
        f"for target in ({sentinel.pid}, {os.getpid()}, os.getppid(), 1, -1):\n"
        "    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError as e:\n        print(target, e)\n"
        f"os.killpg({os.getpgid(0)}, signal.SIGKILL)\n"
    )
    attack(program)
    assert _alive_and_untraced(sentinel)
    os.kill(os.getpid(), 0)  # this test process is still here


def test_ptrace_is_refused(sentinel: subprocess.Popen):
    program = (
        "import os\n"
        + LIBC
        + (
            f"for pid in ({sentinel.pid}, 1, os.getppid()):\n"
            "    r = libc.ptrace(16, pid, 0, 0)\n    print(pid, r, ctypes.get_errno())\n"
            "    assert r == -1\n"
        )
    )
    result = attack(program)
    assert result.status == "passed" and _alive_and_untraced(sentinel)
    assert all(line.split()[2] in ("1", "3") for line in result.stdout.splitlines())  # EPERM, or ESRCH


def test_namespace_and_mount_calls_are_refused():
    program = LIBC + (
        "for name, args in (('unshare', (0x10000000,)), ('unshare', (0x00020000,)), ('setns', (0, 0)),"
        " ('mount', (b'none', b'/sandbox', b'tmpfs', 0, None)), ('umount2', (b'/proc', 2)),"
        " ('chroot', (b'/sandbox',)), ('keyctl', (0, 0)), ('bpf', (0, 0, 0))):\n"
        "    r = getattr(libc, name)(*args) if hasattr(libc, name) else libc.syscall({'bpf': 321, 'keyctl': 250}[name], *args)\n"
        "    print(name, r)\n    assert r == -1, name\n"
    )
    result = attack(program)
    assert result.status == "passed", result.stderr


# ── resources ─────────────────────────────────────────────────────────────────────────────────────────


def test_allocating_10_gb_fails():
    result = attack("x = bytearray(10 * 1024**3)\nprint('allocated')\n")
    assert result.status == "failed" and "MemoryError" in result.stderr


def test_memory_spread_over_processes_is_bounded():
    program = (
        "import os\nfor _ in range(6):\n    if os.fork() == 0:\n"
        "        x = bytearray(400 * 1024**2)\n        os._exit(0)\n"
        "codes = [os.wait()[1] for _ in range(6)]\nprint(codes)\nassert all(c == 0 for c in codes)\n"
    )
    t0 = time.monotonic()
    result = attack(program)
    assert time.monotonic() - t0 < FAST.timeout_s + 3
    if "+cgroup" in result.isolation:  # 6 × 400 MB cannot fit in the cgroup's 576 MB: the OOM killer acts
        assert result.status != "passed"


def test_filling_the_disk_stops_at_the_sandbox_tmpfs(tmp_path: Path):
    free_before = shutil.disk_usage(tmp_path).free
    program = "i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * 900_000)\n    i += 1\n"
    result = attack(program)
    assert result.status == "failed" and (
        "No space left" in result.stderr or "File too large" in result.stderr
    )
    assert free_before - shutil.disk_usage(tmp_path).free < 64 * 1024 * 1024  # noise from other processes


@pytest.mark.parametrize(
    "bomb",
    [
        "import os\nwhile True:\n    os.fork()\n",
        "import os, sys\nwhile True:\n    os.posix_spawn(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)'], {})\n",
    ],
)
def test_fork_bomb_is_contained(bomb: str, sentinel: subprocess.Popen):
    t0 = time.monotonic()
    result = attack(bomb)
    assert result.status in ("failed", "timeout") and time.monotonic() - t0 < FAST.timeout_s + 3
    assert _alive_and_untraced(sentinel)
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_cpu_loop_and_sleep_time_out():
    short = SandboxLimits(timeout_s=2.0, cpu_s=1)
    result = attack("while True:\n    pass\n", short)
    assert result.status in ("timeout", "failed") and result.seconds < short.timeout_s + 2
    result = attack("import time\ntime.sleep(60)\n", SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout" and result.seconds < 3


def test_output_is_capped():
    result = attack("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n")
    assert result.status == "failed"  # the file-size limit (SIGXFSZ), long before the timeout
    assert len(result.stdout) <= FAST.output_bytes + 30 and result.stdout.endswith("[output truncated]")


# ── the audit hook (second layer): refuses, and when tampered with the kernel still holds ────────────


def test_audit_hook_refuses_with_a_clear_error():
    result = run_sandboxed("import socket\nsocket.socket()\n", FAST)
    assert result.status == "failed" and "sandbox: socket.__new__ is not allowed" in result.stderr


DISARM = (
    "import sys\ng = sys.modules['__main__'].__dict__\n"
    "g['DENY'].clear(); g['PATH_EVENTS'].clear(); g['inside'] = lambda path, roots: True\n"
    "g['SELF'] = None\nprint('disarmed')\n"
)


def test_tampering_with_the_hook_leaves_the_kernel_layers(
    secret: Path, tmp_path: Path, sentinel: subprocess.Popen
):
    canary = tmp_path / "after-tamper.txt"
    program = DISARM + (
        "import os, socket\n"
        f"try:\n    print(open({str(secret)!r}).read())\nexcept OSError as e:\n    print(e)\n"
        f"try:\n    open({str(canary)!r}, 'w')\nexcept OSError as e:\n    print(e)\n"
        f"try:\n    os.kill({sentinel.pid}, 9)\nexcept OSError as e:\n    print(e)\n"
        "pid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('forked')\n"
    )
    result = run_sandboxed(program, FAST)
    assert "disarmed" in result.stdout and "forked" in result.stdout  # the hook is really off
    assert SECRET not in result.stdout and not canary.exists() and _alive_and_untraced(sentinel)


# ── fail closed ───────────────────────────────────────────────────────────────────────────────────────


def test_without_the_kernel_layers_model_code_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        sandbox, "check_layers", lambda: (sandbox.Layer("seccomp filter", False, "libseccomp missing"),)
    )
    with pytest.raises(SandboxUnavailable, match="seccomp filter.*--unsafe-no-sandbox"):
        run_sandboxed("print(1)", FAST)
    result = run_sandboxed("print(1)", FAST, unsafe_no_sandbox=True)
    assert result.status == "passed" and result.isolation.startswith("unsafe-no-sandbox")


def test_missing_bubblewrap_is_reported(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    sandbox._host.cache_clear()
    sandbox.check_layers.cache_clear()
    try:
        layers = sandbox.check_layers()
        assert not layers[0].active and "bubblewrap" in layers[0].detail
    finally:
        sandbox._host.cache_clear()
        sandbox.check_layers.cache_clear()


def test_a_sandbox_that_does_not_start_refuses_model_code(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sandbox, "_host", lambda: {"missing": None, "bwrap": "/bin/false", "unshare": None})
    sandbox.check_layers.cache_clear()
    try:
        layers = sandbox.check_layers()
        assert not layers[-1].active and "did not start" in layers[-1].detail
        with pytest.raises(SandboxUnavailable, match="refusing to run model-written code"):
            run_sandboxed("print(1)", FAST)
    finally:
        sandbox.check_layers.cache_clear()


# ── the command line ──────────────────────────────────────────────────────────────────────────────────


def test_gecko_sandbox_run_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from gecko.cli import main

    program = tmp_path / "prog.py"
    program.write_text("import os\nprint('uid', os.getuid())\nraise SystemExit(3)\n")
    assert main(["sandbox", "run", str(program), "--timeout", "5"]) == 3
    out, err = capsys.readouterr()
    assert "uid 65534" in out and "gecko sandbox: failed (exit 3" in err
    program.write_text("import time\ntime.sleep(30)\n")
    assert main(["sandbox", "run", str(program), "--timeout", "1"]) == 124
    assert main(["sandbox", "check"]) == 0
    assert "ok  seccomp filter" in capsys.readouterr().out
