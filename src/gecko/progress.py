"""Progress lines with rate and ETA, readable in a terminal and in a log file.

On a terminal the line is a rich progress bar redrawn in place; otherwise (CI, `nohup`, a Slurm log) a plain
line is printed every `every_s` seconds and once at the end, so a log of a day-long run stays short
(`show=False`: nothing, as on ranks other than 0). Two kinds: `Progress` counts documents and bytes (`with Progress("decontam", total_bytes=n) as p:
p.update(docs=1, nbytes=len(b))`), `Steps` counts steps of a known total (`with Steps("train", 300) as s:
s.advance(note="loss 3.2")`). `update`/`advance` may be called from several threads; counts from other
processes are merged with `set`.

GECKO_PROGRESS_EVERY (seconds between plain lines; 0: no progress at all) is set by `gecko --quiet` and
`gecko --progress-every`, and read here so that worker processes inherit it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

EVERY_ENV = "GECKO_PROGRESS_EVERY"
DEFAULT_EVERY_S = 10.0


def every_s_default() -> float:
    """Seconds between plain progress lines: $GECKO_PROGRESS_EVERY, else 10 (0 turns progress off)."""
    try:
        return max(float(os.environ.get(EVERY_ENV, DEFAULT_EVERY_S)), 0.0)
    except ValueError:
        return DEFAULT_EVERY_S


def _duration(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f} d"


def _eta(done: float, total: float | None, elapsed: float) -> str:
    if not total or done <= 0 or done >= total:
        return "--"
    return _duration(elapsed * (total - done) / done)


_LiveT = TypeVar("_LiveT", bound="_Live")


class _Live:
    """A rich bar on a terminal, else a plain `line()` every `every_s` seconds and a final one; nothing when
    progress is off. Subclasses say what a line and the bar show."""

    def __init__(self, name: str, every_s: float | None, stream: IO[str] | None, show: bool) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        every = every_s_default() if every_s is None else every_s
        self.enabled = show and (every_s is not None or every > 0)
        self.every_s = every
        self.start = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._rich: RichProgress | None = None

    def __enter__(self: _LiveT) -> _LiveT:
        if self.enabled and self.stream.isatty():
            self._rich = RichProgress(
                TextColumn("{task.description}", style="bold", markup=False),
                BarColumn(),
                *self._columns(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.name, total=self._bar_total(), info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich:
            self._refresh()
            self._rich.stop()
        elif self.enabled:
            print(self.line(final=True), file=self.stream, flush=True)

    def line(self, final: bool = False) -> str:
        raise NotImplementedError

    def _columns(self) -> list[ProgressColumn]:
        return [TextColumn("{task.fields[info]}")]

    def _bar_total(self) -> float | None:
        raise NotImplementedError

    def _refresh(self) -> None:
        raise NotImplementedError

    def _tick(self) -> None:
        now = time.monotonic()
        if self._rich:
            if now - self.last >= 0.2:
                self.last = now
                self._refresh()
        elif self.enabled and now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=self.stream, flush=True)


class Progress(_Live):
    """Documents and bytes done of an optional byte total; `line()` is the plain-text form."""

    def __init__(
        self,
        name: str,
        total_bytes: int | None = None,
        every_s: float | None = None,
        stream: IO[str] | None = None,
        show: bool = True,
    ) -> None:
        super().__init__(name, every_s, stream, show)
        self.total = total_bytes
        self.docs = self.nbytes = 0

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

    def _bar_total(self) -> float | None:
        return self.total

    def _refresh(self) -> None:
        assert self._rich is not None
        docs_s, mb_s = self.rates()
        self._rich.update(
            self._task, completed=self.nbytes, info=f"{self.docs:,} docs {docs_s:,.0f}/s {mb_s:.1f} MB/s"
        )


class Steps(_Live):
    """`done` of `total` steps (training steps, eval tasks, shard chunks) with a short note such as the loss.

    The rate counts only the steps done in this process, so a resumed run's ETA is not flattered by the steps
    it loaded."""

    def __init__(
        self,
        name: str,
        total: int | None,
        done: int = 0,
        unit: str = "steps",
        every_s: float | None = None,
        stream: IO[str] | None = None,
        show: bool = True,
    ) -> None:
        super().__init__(name, every_s, stream, show)
        self.total, self.done, self.first, self.unit = total, done, done, unit
        self.note = ""

    def __enter__(self) -> Steps:
        super().__enter__()
        if self._rich:
            self._rich.update(self._task, completed=self.done)
        return self

    def advance(self, n: int = 1, note: str | None = None) -> None:
        with self._lock:
            self.done += n
            if note is not None:
                self.note = note
        self._tick()

    def describe(self, name: str) -> None:
        """Rename the line (e.g. to the eval task now running)."""
        self.name = name
        if self._rich:
            self._rich.update(self._task, description=name)

    def line(self, final: bool = False) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.first) / max(elapsed, 1e-9)
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
        parts = [count, f"{rate:,.2f} {self.unit}/s" if rate < 10 else f"{rate:,.0f} {self.unit}/s"]
        if self.note:
            parts.append(self.note)
        if final:
            parts.append(f"done in {elapsed:.0f} s")
        else:
            left = (
                (self.total - self.done) / rate
                if self.total and rate > 0 and self.done < self.total
                else None
            )
            parts.append(f"ETA {_duration(left) if left is not None else '--'}")
        return f"{self.name}: " + ", ".join(parts)

    def _bar_total(self) -> float | None:
        return self.total

    def _columns(self) -> list[ProgressColumn]:
        return [
            TextColumn("{task.completed:,.0f}" + ("/{task.total:,.0f}" if self.total else "")),
            TextColumn("{task.fields[info]}"),
        ]

    def _refresh(self) -> None:
        assert self._rich is not None
        self._rich.update(self._task, completed=self.done, info=self.note)
