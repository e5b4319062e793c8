"""Checks of a record against its context: the city's bounds and the clock.

Pure: the caller passes ``now``. Schema checks (types, ranges) happen when a record is
built; these are the checks that need to know where and when we are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import SchemaError
from core.schemas import Record, iso


@dataclass(frozen=True, slots=True)
class Bounds:
    """A WGS84 bounding box: west, south, east, north (degrees)."""

    west: float
    south: float
    east: float
    north: float

    def contains(self, lat: float, lon: float) -> bool:
        """True if the point is inside (edges included)."""
        return self.south <= lat <= self.north and self.west <= lon <= self.east

    def __str__(self) -> str:
        return f"lon {self.west}..{self.east}, lat {self.south}..{self.north}"


def validate(record: Record, *, bounds: Bounds | None, now: datetime, max_future_s: float) -> None:
    """Raise :class:`SchemaError` if ``record`` lies outside ``bounds`` or too far in the future."""
    if bounds is not None:
        for lat, lon in record.points():
            if not bounds.contains(lat, lon):
                raise SchemaError(f"position ({lat:.5f}, {lon:.5f}) is outside the city ({bounds})",
                                  code="out_of_bounds")
    limit = now + timedelta(seconds=max_future_s)
    for when in record.all_times():
        if when > limit:
            raise SchemaError(f"time {iso(when)} is {(when - now).total_seconds():.0f} s in the future "
                              f"(allowed: {max_future_s:.0f} s)", code="future_time")
