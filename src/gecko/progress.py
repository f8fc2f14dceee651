"""One progress line per step: documents/s, MB/s and ETA, readable in a terminal and in a log file.

On a terminal the line is a rich progress bar redrawn in place; otherwise (CI, `nohup`, a Slurm log) a plain
line is printed every `every_s` seconds and once at the end, so a log of a day-long run stays short. Any
stage can use it: `with Progress("decontam", total_bytes=n) as p: p.update(docs=1, nbytes=len(b))`.
`update` may be called from several threads; counts from other processes are merged with `set`.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn


def _eta(done: float, total: float | None, elapsed: float) -> str:
    if not total or done <= 0 or done >= total:
        return "--"
    left = elapsed * (total - done) / done
    return time.strftime("%H:%M:%S", time.gmtime(left)) if left < 86400 else f"{left / 86400:.1f} d"


class Progress:
    """Documents and bytes done of an optional byte total; `line()` is the plain-text form."""

    def __init__(self, name: str, total_bytes: int | None = None, every_s: float = 10.0,
                 stream: IO[str] | None = None) -> None:
        self.name, self.total, self.every_s = name, total_bytes, every_s
        self.stream = stream or sys.stderr
        self.docs = self.nbytes = 0
        self.start = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._rich: RichProgress | None = None

    def __enter__(self) -> Progress:
        if self.stream.isatty():
            self._rich = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                      console=Console(file=self.stream), transient=False)
            self._rich.start()
            self._task = self._rich.add_task(self.name, total=self.total, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich:
            self._refresh()
            self._rich.stop()
        else:
            print(self.line(final=True), file=self.stream, flush=True)

    def update(self, docs: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.docs += docs
            self.nbytes += nbytes
        self._tick()

    def set(self, docs: int, nbytes: int) -> None:
        """Absolute counts (summed by the caller from several workers)."""
        with self._lock:
            self.docs, self.nbytes = docs, nbytes
        self._tick()

    def rates(self) -> tuple[float, float]:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return self.docs / elapsed, self.nbytes / 1e6 / elapsed

    def line(self, final: bool = False) -> str:
        docs_s, mb_s = self.rates()
        elapsed = time.monotonic() - self.start
        if not self.docs and not self.total:  # a step that counts nothing (a merge): its time only
            return f"{self.name}: {'done in' if final else 'running,'} {elapsed:.0f} s"
        done = f"{self.nbytes / 1e6:,.1f}" + (f"/{self.total / 1e6:,.1f}" if self.total else "") + " MB"
        tail = f"done in {elapsed:.0f} s" if final else f"ETA {_eta(self.nbytes, self.total, elapsed)}"
        return f"{self.name}: {self.docs:,} docs, {done}, {docs_s:,.0f} docs/s, {mb_s:.1f} MB/s, {tail}"

    def _tick(self) -> None:
        now = time.monotonic()
        if self._rich:
            if now - self.last >= 0.2:
                self.last = now
                self._refresh()
        elif now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def _refresh(self) -> None:
        assert self._rich is not None
        docs_s, mb_s = self.rates()
        self._rich.update(self._task, completed=self.nbytes, rate=f"{self.docs:,} docs {docs_s:,.0f}/s {mb_s:.1f} MB/s")
