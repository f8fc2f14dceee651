"""Progress of a stage whose ranks run in other processes (or on other Ray nodes, or Slurm jobs): each rank
writes its count of documents and text bytes to a file of the stage's `progress/` folder (a ProgressProbe
after the stage's reader, or a ReadingStep that reads by itself), and the driver sums the files into one
progress line while the stage runs."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gecko.io.atomic import write_text
from gecko.progress import Progress


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8 (a lone surrogate: 3), without encoding an ASCII text (isascii is a flag)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class ProgressFile:
    """A rank's documents and text bytes so far, written to `folder/RANK.json` about once a second: ranks
    run in other processes (or on other Ray nodes), and the driver sums the files."""

    def __init__(self, folder: str, rank: int) -> None:
        self.path = Path(folder) / f"{rank:05d}.json"
        self.docs = self.nbytes = 0
        self.last = time.monotonic()

    def add(self, nbytes: int) -> None:
        self.docs += 1
        self.nbytes += nbytes
        if time.monotonic() - self.last > 1.0:
            self.save()

    def save(self) -> None:
        write_text(self.path, json.dumps([self.docs, self.nbytes]))
        self.last = time.monotonic()


class ProgressProbe(PipelineStep):
    """Passes documents through, counting them and their text bytes in a ProgressFile."""

    name = "📈 progress"
    type = "🔧 - UTIL"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        progress = ProgressFile(self.folder, rank)
        for doc in data:
            progress.add(utf8_len(doc.text))
            yield doc
        progress.save()


class ReadingStep(PipelineStep):
    """A step that reads its rank's documents itself, without a reader step before it to put a ProgressProbe
    after: it counts each document it reads in a ProgressFile in `progress_dir`, which the executor sets."""

    progress_dir: str | None = None

    def progress(self, rank: int) -> ProgressFile | None:
        return ProgressFile(self.progress_dir, rank) if self.progress_dir else None


def sum_counts(folder: Path) -> tuple[int, int]:
    docs = nbytes = 0
    for f in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            d, b = json.loads(f.read_text())
            docs, nbytes = docs + d, nbytes + b
    return docs, nbytes


def clear_counts(folder: Path) -> None:
    """Counts of an earlier, interrupted run go (its finished ranks are skipped now)."""
    for old in folder.glob("*.json"):
        old.unlink()


@contextlib.contextmanager
def progress_line(label: str, folder: Path, total_bytes: int | None) -> Iterator[None]:
    """A progress line fed by the ranks' count files while the stage runs."""
    done = threading.Event()
    with Progress(label, total_bytes) as bar:

        def poll() -> None:
            while not done.wait(0.5):
                bar.set(*sum_counts(folder))

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            bar.set(*sum_counts(folder))
