"""The command line itself: overrides anywhere, no abbreviated flags, --version."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from gecko.cli import build_parser, main


def test_overrides_may_come_before_between_and_after_flags(tiny_config, capsys):
    argv = [
        "generate",
        str(tiny_config),
        "generate.top_k=3",
        "--stream",
        "generate.seed=7",
        "--prompts-file",
        "p.txt",
        "generate.max_new_tokens=5",
        "--dry-run",
    ]
    assert main(argv) == 0
    g = json.loads(capsys.readouterr().out)["generate"]
    assert (g["top_k"], g["stream"], g["seed"], g["prompts_file"], g["max_new_tokens"]) == (
        3,
        True,
        7,
        "p.txt",
        5,
    )


def test_nested_subcommands_take_overrides_anywhere(tiny_config, capsys):
    assert (
        main(["data", "run", "--dry-run", str(tiny_config), "data.min_chars=5", "--dry-run", "seed=9"]) == 0
    )
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["data"]["min_chars"] == 5 and cfg["seed"] == 9


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "CONFIG", "--prompts", "x"],  # not --prompts-file
        ["eval", "CONFIG", "--lim", "3"],  # not --limit (--task is a flag of its own)
        ["run", "CONFIG", "--forc"],  # not --force
        ["--verb", "run", "CONFIG"],  # not --verbose
        ["tokenizer", "compare", "CONFIG", "--ou", "x"],  # not --out
    ],
)
def test_abbreviated_flags_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"gecko {version('gecko-llm')}"
