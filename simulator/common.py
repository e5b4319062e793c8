"""Helpers the simulator's models share: random draws, local time stamps, where people are."""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

M_PER_DEG = 111_195.08
#: How wintry each month is (January first): heating season, smog, respiratory illness.
WINTERNESS = (1.0, 0.9, 0.6, 0.3, 0.0, 0.0, 0.0, 0.0, 0.1, 0.4, 0.8, 1.0)


def winterness(month: int) -> float:
    """How wintry a month is, 0 (May–Aug) to 1 (Dec–Jan)."""
    return WINTERNESS[month - 1]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for small means, normal approximation above 50)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def weighted_choice(rng: random.Random, weights: Mapping[str, float]) -> str:
    """One key of ``weights`` drawn in proportion to its weight (insertion order decides ties)."""
    total = sum(weights.values())
    x = rng.random() * total
    for key, w in weights.items():
        x -= w
        if x < 0:
            return key
    return next(reversed(weights.keys()))


def local_iso(t: float, zone: Any) -> str:
    """ISO 8601 with the city's UTC offset, whole seconds (truncated, so order is kept)."""
    return datetime.fromtimestamp(math.floor(t), zone).isoformat()


# --- where people are ---------------------------------------------------------------------------


class CityPoints:
    """Random places where people live: a district by population, then a point inside it.

    Inside a district, points are not uniform over its area (a large part of Medeu and
    Bostandyk is mountains): the district is laid out in cells of ``cell_m`` whose weight
    falls with the distance to the nearest substation or hospital (``exp(-d / scale_m)``,
    never below ``floor``), a proxy for the built-up area. A point is drawn in a cell by weight,
    uniformly inside the cell, and kept only if it lies inside the district (rejection sampling
    with :meth:`core.citypack.District.contains`).

    Shared by the ambulance and appeals models.
    """

    def __init__(self, pack: Any, *, cell_m: float = 500.0, scale_m: float = 2500.0, floor: float = 0.02) -> None:
        self.pack = pack
        anchors = [(s.lat, s.lon) for s in pack.substations] + [(h.lat, h.lon) for h in pack.hospitals]
        self.districts = tuple(pack.districts)
        self._index = {d.id: i for i, d in enumerate(self.districts)}
        self._cells: list[tuple[list[tuple[float, float]], list[float]]] = []
        self._dlat = cell_m / M_PER_DEG
        self._dlon = cell_m / (M_PER_DEG * math.cos(math.radians(pack.center[0])))
        for district in self.districts:
            self._cells.append(self._layout(district, anchors, scale_m, floor))
        self._cum_pop = _cumulative(self._populations())

    def _layout(self, district: Any, anchors: Sequence[tuple[float, float]], scale_m: float,
                floor: float) -> tuple[list[tuple[float, float]], list[float]]:
        """The district's cells (south-west corners) and their cumulative weights."""
        west, south, east, north = district.bbox
        cells: list[tuple[float, float]] = []
        weights: list[float] = []
        lat = south
        while lat < north:
            lon = west
            while lon < east:
                clat, clon = lat + self._dlat / 2, lon + self._dlon / 2
                if district.contains(clat, clon):
                    d = min((_flat_m(clat, clon, a, b) for a, b in anchors), default=0.0)
                    cells.append((lat, lon))
                    weights.append(max(floor, math.exp(-d / scale_m)))
                lon += self._dlon
            lat += self._dlat
        if not cells:  # a sliver smaller than a cell: its centroid stands for it
            clat, clon = district.centroid
            cells, weights = [(clat - self._dlat / 2, clon - self._dlon / 2)], [1.0]
        return cells, _cumulative(weights)

    def _populations(self) -> list[float]:
        known = [d.population for d in self.districts if d.population]
        density = (sum(known) / sum(d.area_m2 for d in self.districts if d.population)) if known else 1.0
        return [float(d.population) if d.population else d.area_m2 * density for d in self.districts]

    def district(self, rng: random.Random) -> Any:
        """A district drawn in proportion to its population."""
        return self.districts[_draw(rng, self._cum_pop)]

    def inside(self, district: Any, rng: random.Random) -> tuple[float, float]:
        """A point ``(lat, lon)`` inside ``district``, near where its people live."""
        cells, cum = self._cells[self._index[district.id]]
        south, west = cells[0]
        for _ in range(30):
            south, west = cells[_draw(rng, cum)]
            lat = south + rng.random() * self._dlat
            lon = west + rng.random() * self._dlon
            if district.contains(lat, lon):
                return lat, lon
        return south + self._dlat / 2, west + self._dlon / 2  # a cell's centre is inside the district

    def anywhere(self, rng: random.Random) -> tuple[Any, float, float]:
        """A district by population and a point inside it: ``(district, lat, lon)``."""
        district = self.district(rng)
        lat, lon = self.inside(district, rng)
        return district, lat, lon

    def near(self, lat: float, lon: float, radius_m: float, rng: random.Random) -> tuple[float, float]:
        """A point uniform in the disc of ``radius_m`` around ``(lat, lon)``, inside the pack's bounds."""
        bounds = self.pack.bounds
        for _ in range(30):
            r = radius_m * math.sqrt(rng.random())
            a = rng.random() * 2 * math.pi
            plat = lat + r * math.cos(a) / M_PER_DEG
            plon = lon + r * math.sin(a) / (M_PER_DEG * math.cos(math.radians(lat)))
            if bounds.contains(plat, plon):
                return plat, plon
        return lat, lon

    def for_effect(self, effect: Any, rng: random.Random) -> tuple[Any, float, float]:
        """Where an extra event of ``effect`` happens: ``(district or None, lat, lon)``.

        Near the effect's place when it has one and a radius, else inside its district, else
        anywhere in the city by population.
        """
        if effect.lat is not None and effect.lon is not None and effect.radius_m:
            lat, lon = self.near(effect.lat, effect.lon, float(effect.radius_m), rng)
            return self.pack.district_at(lat, lon), lat, lon
        if effect.district:
            district = self.pack.district(effect.district)
            lat, lon = self.inside(district, rng)
            return district, lat, lon
        return self.anywhere(rng)

    def district_id(self, lat: float, lon: float) -> str | None:
        """Id of the district containing the point, or None."""
        district = self.pack.district_at(lat, lon)
        return district.id if district is not None else None


def _cumulative(weights: Iterable[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _draw(rng: random.Random, cum: Sequence[float]) -> int:
    return min(len(cum) - 1, bisect.bisect_right(cum, rng.random() * cum[-1]))


def _flat_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Straight distance in metres (equirectangular; exact enough within a city)."""
    dy = (lat2 - lat1) * M_PER_DEG
    dx = (lon2 - lon1) * M_PER_DEG * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)
