"""The package as users install it: `make demo` installs the core alone (pyproject.toml's dependencies, no
extra), so every module the demo's stages import must come from the core's dependency closure."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gecko.errors import DIST

DEMO_MODULES = [  # what stages.py's stage functions import for `gecko run configs/demo.yaml`
    "gecko.cli",
    "gecko.data.pipeline",
    "gecko.tokenizer.train",
    "gecko.tokenizer.pretokenize",
    "gecko.train.trainer",
    "gecko.eval.report",
    "gecko.export.card",
    "gecko.model.hf",
    "gecko.train.checkpoint",
    "gecko.infer.generate",
    "matplotlib.figure",
]


def core_closure() -> set[str]:
    """Distributions installed by `pip install gecko-llm` with no extra: the dependencies, transitively."""
    seen: set[str] = set()
    todo = [DIST]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:  # excluded by a platform marker here
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_demo_stages_import_with_every_non_core_package_blocked():
    """As in a venv holding the core alone: each package outside the closure is made unimportable (optional
    imports of it, inside `except ImportError`, still pass; an unconditional one fails here, as `regex`,
    imported by datatrove's filters and once brought by transformers, did)."""
    try:
        distribution(DIST)
    except PackageNotFoundError:
        pytest.skip(f"{DIST} is not installed (pip install -e .)")
    core = core_closure()
    blocked = sorted(
        m
        for m, owners in packages_distributions().items()
        if not {canonicalize_name(d) for d in owners} & core
    )
    code = (
        f"import importlib, sys; sys.modules.update(dict.fromkeys({blocked!r})); "
        f"[importlib.import_module(m) for m in {DEMO_MODULES!r}]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
