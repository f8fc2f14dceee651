"""Every escape attempt the issue lists is contained, scored as a failure, and leaves the host unharmed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gecko.eval.sandbox import SandboxLimits, run_sandboxed

FAST = SandboxLimits(timeout_s=3.0, cpu_s=2, memory_mb=512, file_mb=1, output_bytes=1000)


def test_plain_program_passes_and_output_is_captured():
    result = run_sandboxed("import math\nprint(math.factorial(5))\nassert sum(range(4)) == 6\n", FAST)
    assert result.status == "passed" and result.stdout.strip() == "120"
    assert result.isolation in ("netns", "userns+netns", "audit-hook")


def test_failing_assertion_is_a_failure():
    result = run_sandboxed("assert 1 + 1 == 3\n", FAST)
    assert result.status == "failed" and "AssertionError" in result.stderr


def test_files_in_its_own_directory_are_allowed():
    result = run_sandboxed("open('a.txt', 'w').write('hi')\nprint(open('a.txt').read())\n", FAST)
    assert result.status == "passed" and result.stdout.strip() == "hi"


def test_reading_outside_its_directory_is_refused(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    for path in (secret, Path("/etc/passwd")):
        result = run_sandboxed(f"print(open({str(path)!r}).read())\n", FAST)
        assert result.status == "failed" and "password" not in result.stdout
        assert "PermissionError" in result.stderr


def test_writing_outside_its_directory_is_refused(tmp_path: Path):
    target = tmp_path / "pwned.txt"
    program = (f"import os\ntry:\n    open({str(target)!r}, 'w').write('x')\n"
               "except PermissionError:\n    pass\n"
               f"fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\n")
    result = run_sandboxed(program, FAST)
    assert result.status == "failed" and not target.exists()
    victim = tmp_path / "keep.txt"
    victim.write_text("keep")
    result = run_sandboxed(f"import os\nos.remove({str(victim)!r})\n", FAST)
    assert result.status == "failed" and victim.read_text() == "keep"


def test_sockets_are_refused():
    with socket.socket() as server:  # a listener on the host the program must not reach
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        program = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                   "print('connected')\n")
        result = run_sandboxed(program, FAST)
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    assert result.status == "failed" and "connected" not in result.stdout


def test_fork_bomb_is_contained():
    program = "import os\nwhile True:\n    os.fork()\n"
    result = run_sandboxed(program, FAST)
    assert result.status == "failed"
    result = run_sandboxed("import subprocess\nsubprocess.run(['sh', '-c', ':(){ :|:& };:'])\n", FAST)
    assert result.status == "failed"


def test_allocating_10_gb_fails():
    result = run_sandboxed("x = bytearray(10 * 1024**3)\nprint('allocated')\n", FAST)
    assert result.status == "failed" and "MemoryError" in result.stderr


def test_infinite_loop_times_out():
    result = run_sandboxed("while True:\n    pass\n", FAST)
    assert result.status in ("timeout", "failed")  # the CPU limit (2 s) or the wall clock (3 s), first wins
    assert result.seconds < FAST.timeout_s + 2
    result = run_sandboxed("import time\ntime.sleep(60)\n", SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout" and result.seconds < 3


def test_signalling_the_parent_is_refused():
    program = ("import os, signal\n"
               "for target in (os.getppid(), -1):\n"
               "    try:\n        os.kill(target, signal.SIGKILL)\n"
               "    except PermissionError:\n        pass\n"
               "os.killpg(os.getpgid(os.getppid()), signal.SIGTERM)\n")
    result = run_sandboxed(program, FAST)
    assert result.status == "failed" and "PermissionError" in result.stderr
    os.kill(os.getpid(), 0)  # we are still here


def test_ctypes_is_refused():
    result = run_sandboxed("import ctypes\nctypes.CDLL(None).kill(1, 9)\n", FAST)
    assert result.status == "failed"


def test_output_is_capped():
    result = run_sandboxed("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n", FAST)
    assert result.status == "failed"  # stopped by the file-size limit (SIGXFSZ) long before the timeout
    assert len(result.stdout) <= FAST.output_bytes + 30 and result.stdout.endswith("[output truncated]")
