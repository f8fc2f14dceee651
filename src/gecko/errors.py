"""GECKO's exceptions: callers react by category, and the CLI prints them without a traceback."""


class GeckoError(Exception):
    """Base class for errors caused by the user's config, data or environment (not by a bug)."""


class ConfigError(GeckoError):
    """A config key is unknown, missing, of the wrong type or out of range."""


class DataError(GeckoError):
    """Input data cannot be read; the message names the file and, where known, the line."""


class CheckpointError(GeckoError):
    """A checkpoint is missing, corrupt or does not match the run it is loaded into."""
