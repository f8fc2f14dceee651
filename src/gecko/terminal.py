"""What gecko prints and how: model and user text verbatim, log lines one per message, quiet or verbose.

Model output is data, not markup: `[i]` must print as `[i]` and `x = [/]` must not raise rich's MarkupError,
so text goes through a console with markup, emoji codes and highlighting off, and is never re-wrapped.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from gecko.progress import EVERY_ENV

QUIET, NORMAL, VERBOSE = -1, 0, 1


def text_console(file: IO[str] | None = None) -> Console:
    """A console that prints strings exactly as given (styles only through `styled`)."""
    return Console(file=file, markup=False, emoji=False, highlight=False, soft_wrap=True)


def styled(text: str, style: str) -> Text:
    """`text` shown in `style` on a terminal, verbatim (a Text object is never parsed for markup)."""
    return Text(text, style=style)


class _LineFormatter(logging.Formatter):
    """Off a terminal: INFO as the bare message, WARNING and above as `gecko: warning: …`, like errors."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return (
            message if record.levelno < logging.WARNING else f"gecko: {record.levelname.lower()}: {message}"
        )


def setup_output(
    verbosity: int, progress_every_s: float | None = None, stream: IO[str] | None = None
) -> None:
    """Logging and progress for one command: QUIET shows warnings and errors only (no progress lines),
    VERBOSE adds debug lines. Progress settings go through the environment so worker processes inherit them."""
    stream = stream or sys.stderr
    level = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}[verbosity]
    if stream.isatty():
        handler: logging.Handler = RichHandler(
            console=Console(file=stream), show_path=False, show_time=False, markup=False
        )
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_LineFormatter("%(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "gecko", False)]:  # an earlier main() in this process
        root.removeHandler(old)
    handler.gecko = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    if verbosity == QUIET:
        os.environ[EVERY_ENV] = "0"
    elif progress_every_s is not None:
        os.environ[EVERY_ENV] = str(progress_every_s)
