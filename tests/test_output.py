"""What gecko prints: model text verbatim, progress lines off a terminal, -q/-v, one-line errors, --help."""

from __future__ import annotations

import argparse
import io
import logging

import pytest

from gecko.cli import build_parser, main
from gecko.progress import EVERY_ENV, Progress, Steps
from gecko.terminal import NORMAL, QUIET, VERBOSE, setup_output, styled, text_console

MARKUP = "x = [/] [i]italic?[/i] [bold red]not styled[/] :smile: 3.14"


def test_text_prints_verbatim_never_as_markup():
    out = io.StringIO()
    console = text_console(out)
    console.print(styled(MARKUP, "bold"), MARKUP, sep="|")
    console.print("a" * 300)  # no re-wrapping at the console width
    assert out.getvalue() == f"{MARKUP}|{MARKUP}\n" + "a" * 300 + "\n"


def test_steps_print_rate_and_eta_lines_off_a_terminal():
    out = io.StringIO()
    with Steps("train", 4, done=1, every_s=0.0, stream=out) as s:
        s.advance(note="loss 3.100")
        s.advance(note="loss 2.900")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("train: 2/4 steps, ") and "steps/s, loss 3.100, ETA " in lines[0]
    assert lines[-1].startswith("train: 3/4 steps, ") and "loss 2.900, done in" in lines[-1]


def test_quiet_turns_progress_and_info_off(monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "10")  # restored after the test: setup_output writes the variable
    err = io.StringIO()
    setup_output(QUIET, stream=err)
    try:
        assert logging.getLogger().level == logging.WARNING
        out = io.StringIO()
        with Progress("clean", stream=out) as p:
            p.update(docs=1, nbytes=10)
        with Steps("eval", 3, stream=out) as s:
            s.advance()
        assert out.getvalue() == ""
        logging.getLogger("gecko.x").info("hidden")
        logging.getLogger("gecko.x").warning("shown")
        assert err.getvalue() == "gecko: warning: shown\n"  # off a terminal: one plain line, like errors
    finally:
        setup_output(NORMAL)


def test_progress_every_reaches_worker_processes_through_the_environment(monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "10")  # restored after the test: setup_output writes the variable
    setup_output(VERBOSE, progress_every_s=2.5, stream=io.StringIO())
    try:
        assert logging.getLogger().level == logging.DEBUG
        assert Steps("x", 1).every_s == 2.5
    finally:
        setup_output(NORMAL)


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gecko: error: ") and "missing.yaml" in err
    with pytest.raises(SystemExit) as exit_:
        main(["train"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("gecko train: error: ")
    assert main(["chat"]) == 2 and "give a config" in capsys.readouterr().err


def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    def fail(*_: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr("gecko.cli._dispatch", fail)
    assert main(["status", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"gecko: error: [Errno 13] Permission denied: '{tmp_path / 'out'}'\n"


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_every_command_help_says_what_it_reads_writes_and_shows_an_example():
    leaves = list(_leaves(build_parser()))
    assert len(leaves) > 20
    for path, parser in leaves:
        text = parser.format_help()
        assert "reads:" in text and "writes:" in text, path
        example = text.split("example:\n", 1)[1].strip()
        assert example.startswith("gecko " + " ".join(path)), (path, example)
