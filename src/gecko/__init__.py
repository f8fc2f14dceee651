"""GECKO: build bilingual Korean·English LLMs that also code.

Installed as the distribution `gecko-llm` (the name `gecko` on PyPI belongs to another project); the import
name and the command are `gecko`.
"""

DIST = "gecko-llm"


def pip_hint(extra: str) -> str:
    """The install command for an optional part, named the same way in every message."""
    return f"pip install '{DIST}[{extra}]'"
