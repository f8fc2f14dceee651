"""Typed config fields: the literal types shared by several sections, and `ranged`, a field with the
bounds its values must lie in (checked by gecko.config.load)."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Lang = Literal["ko", "en", "code"]
SourceFormat = Literal["jsonl", "json", "parquet", "text", "tsv", "csv", "code"]
LANGS: tuple[str, ...] = typing.get_args(Lang)
Preset = Literal["tiny", "small", "125m", "350m", "1b", "gecko-7b"]
"""Model shapes defined in gecko.model.presets (a test keeps the two lists equal)."""


@dataclass(frozen=True)
class Range:
    """Bounds a numeric field must satisfy; None is allowed only where the field's type admits it."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def admits(self, value: float) -> bool:
        """NaN and infinities fail: comparisons with NaN are false, and no field means ±inf."""
        return (
            math.isfinite(value)
            and (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def __str__(self) -> str:
        bounds = [
            f"{op} {bound:g}"
            for op, bound in (("≥", self.ge), (">", self.gt), ("≤", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(bounds)


def ranged(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A field with a default and the range its values must lie in, checked when a config is loaded."""
    return field(default=default, metadata={"range": Range(ge, gt, le, lt)})
