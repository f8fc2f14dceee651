"""GECKO's datatrove filters: each drop is recorded with (step, reason, lang) in the stage's accounting."""

from gecko.data.filters.base import GeckoFilter, GeckoStep
from gecko.data.filters.quality import QualityFilter

__all__ = ["GeckoFilter", "GeckoStep", "QualityFilter"]
