"""One writer per run folder: an OS lock (flock) on RUN/.gecko.lock, held by every command that writes RUN.

The kernel releases a flock when its holder exits in any way (kill -9 included), so a stale lock never
blocks; the file's JSON (pid, host, command, start time) only names the holder in the refusal message.
Under torchrun, rank 0 alone takes the lock: the other ranks write what rank 0 tells them to.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gecko.errors import GeckoError

LOCK = ".gecko.lock"


class RunLockedError(GeckoError):
    """Another process is writing this run folder."""


def holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds RUN's lock now, or None when nobody does (a lock file left by a dead process included)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def run_lock(run_dir: Path, command: str | None = None) -> Iterator[None]:
    """Hold RUN's writer lock for the block, or raise RunLockedError at once naming the holder."""
    if os.environ.get("TORCHELASTIC_RUN_ID") and os.environ.get("RANK", "0") != "0":
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"{run_dir} is in use by {describe(_read(path))}; wait for it to finish "
                "or stop it (one writer per run folder)"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(["gecko", *sys.argv[1:]]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays, naming the last holder, and blocks nobody


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (its lock record is unreadable)"
    return (
        f"pid {info.get('pid')} on {info.get('host')} ({info.get('command')!r}, since {info.get('started')})"
    )


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
