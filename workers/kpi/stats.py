"""Statistics the KPI modules share."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile by linear interpolation between closest ranks.

    The method is Hyndman & Fan type 7, ``numpy.percentile(..., method="linear")``: sort the
    values, take the position ``h = (n − 1)·q/100`` and interpolate between the values at
    ``floor(h)`` and ``ceil(h)``. Used for every percentile and median of this module.

    Returns:
        The percentile, or None for no values.

    Raises:
        ValueError: ``q`` outside 0..100.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])
