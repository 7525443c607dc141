"""Helpers shared by the demo modules (imported relatively: `from . import _util`)."""

import math
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean."""
    return sum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    """The population standard deviation."""
    centre = mean(values)
    return math.sqrt(sum((x - centre) ** 2 for x in values) / len(values))
