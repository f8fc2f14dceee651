"""GECKO's exceptions: callers react by category, and the CLI prints them without a traceback."""


class GeckoError(Exception):
    """Base class for errors caused by the user's config, data or environment (not by a bug)."""


class ConfigError(GeckoError):
    """A config key is unknown, missing, of the wrong type or out of range."""


class DataError(GeckoError):
    """Input data cannot be read; the message names the file and, where known, the line."""


class CheckpointError(GeckoError):
    """A checkpoint is missing, corrupt or does not match the run it is loaded into."""


DIST = "gecko-llm"
"""The distribution name (`pip install gecko-llm`: `gecko` on PyPI is another project); the import name and
the command stay `gecko`."""


def pip_hint(extra: str) -> str:
    """The install command for an optional part, named the same way in every missing-package error."""
    return f"pip install '{DIST}[{extra}]'"
