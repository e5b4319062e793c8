"""Geometry on WGS84 coordinates, in pure Python: point in polygon, distances, areas, lines.

Conventions:

- Functions take a point as ``lat, lon`` (the order used everywhere else in the project),
  while geometry is stored in GeoJSON order, ``(lon, lat)`` pairs.
- A *ring* is a sequence of ``(lon, lat)`` positions, closed (first == last) as GeoJSON
  requires; a *polygon* is a sequence of rings (the outer ring, then holes); a *multipolygon*
  is a sequence of polygons. Ring orientation does not matter anywhere here.
- Inside tests use the even-odd rule over every ring of the shape, so holes and the parts of
  a MultiPolygon need no special case (GeoJSON forbids overlapping parts). A point exactly on
  an edge may be reported on either side.

:func:`district_at` is called once per record by the KPI code, so it does not scan polygons:
:class:`AreaIndex` lays a grid over the districts and answers most points from the grid cell
alone (cells wholly inside one district), testing only the few districts whose border
crosses the cell, and then only the edges in the point's latitude band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from core.citypack import CityPack, District

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

Position = tuple[float, float]
"""``(lon, lat)`` in degrees, GeoJSON order."""
Ring = Sequence[Position]
Polygon = Sequence[Ring]
MultiPolygon = Sequence[Polygon]
BBox = tuple[float, float, float, float]
"""``(west, south, east, north)`` in degrees."""


# --- distances and lines ------------------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points, metres (spherical Earth, error < 0.5 %)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def line_length_m(line: Sequence[Position]) -> float:
    """Length of a polyline of ``(lon, lat)`` positions, metres."""
    return sum(haversine_m(a[1], a[0], b[1], b[0]) for a, b in zip(line, line[1:], strict=False))


def point_along(line: Sequence[Position], fraction: float) -> tuple[float, float]:
    """The point at ``fraction`` (0..1, clamped) of a polyline's length, as ``(lat, lon)``.

    Distances are measured along the line in metres; within one vertex-to-vertex piece the
    point is interpolated linearly in degrees (pieces are short, so the difference from the
    great circle is negligible).

    Raises:
        ValueError: the line has no positions.
    """
    if not line:
        raise ValueError("point_along needs at least one position")
    if fraction >= 1.0:
        return (line[-1][1], line[-1][0])  # exactly the end, not a rounded sum of pieces
    fraction = max(0.0, fraction)
    pieces = [haversine_m(a[1], a[0], b[1], b[0]) for a, b in zip(line, line[1:], strict=False)]
    target = fraction * sum(pieces)
    for (a, b), length in zip(zip(line, line[1:], strict=False), pieces, strict=True):
        if target <= length and length > 0:
            t = target / length
            return (a[1] + (b[1] - a[1]) * t, a[0] + (b[0] - a[0]) * t)
        target -= length
    return (line[-1][1], line[-1][0])


# --- areas and centroids ------------------------------------------------------------------


def ring_area_m2(ring: Ring) -> float:
    """Unsigned area of one ring on the sphere, m² (Chamberlain and Duquette, JPL 2007)."""
    total = 0.0
    for (lon1, lat1), (lon2, lat2) in zip(ring, ring[1:], strict=False):
        total += math.radians(lon2 - lon1) * (2 + math.sin(math.radians(lat1)) + math.sin(math.radians(lat2)))
    return abs(total) * EARTH_RADIUS_M**2 / 2


def polygon_area_m2(polygon: Polygon) -> float:
    """Area of a polygon (outer ring minus its holes), m²."""
    if not polygon:
        return 0.0
    return max(0.0, ring_area_m2(polygon[0]) - sum(ring_area_m2(hole) for hole in polygon[1:]))


def multipolygon_area_m2(polygons: MultiPolygon) -> float:
    """Area of a multipolygon (sum of its parts), m²."""
    return sum(polygon_area_m2(p) for p in polygons)


def _ring_moments(ring: Ring, lon0: float, lat0: float, kx: float) -> tuple[float, float, float]:
    """Signed planar area and first moments of a ring in a local equirectangular frame."""
    a = cx = cy = 0.0
    for (lon1, lat1), (lon2, lat2) in zip(ring, ring[1:], strict=False):
        x1, y1 = (lon1 - lon0) * kx, lat1 - lat0
        x2, y2 = (lon2 - lon0) * kx, lat2 - lat0
        cross = x1 * y2 - x2 * y1
        a += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    return a / 2, cx / 6, cy / 6


def centroid(polygons: MultiPolygon) -> tuple[float, float]:
    """Area-weighted centroid of a multipolygon (or ``[polygon]``), as ``(lat, lon)``.

    Computed in a local equirectangular frame (exact enough for city-sized shapes); holes
    are subtracted whatever their orientation.

    Raises:
        ValueError: the shape has no area.
    """
    rings = [ring for polygon in polygons for ring in polygon]
    if not rings or not rings[0]:
        raise ValueError("centroid of an empty shape")
    lon0, lat0 = rings[0][0]
    kx = math.cos(math.radians(lat0))
    total = mx = my = 0.0
    for polygon in polygons:
        for i, ring in enumerate(polygon):
            a, cx, cy = _ring_moments(ring, lon0, lat0, kx)
            sign = (1.0 if a >= 0 else -1.0) * (1.0 if i == 0 else -1.0)  # outer adds, holes subtract
            total += sign * a
            mx += sign * cx
            my += sign * cy
    if total == 0:
        raise ValueError("centroid of a shape with no area")
    return (lat0 + my / total, lon0 + mx / total / kx)


def polygon_centroid(polygon: Polygon) -> tuple[float, float]:
    """Area-weighted centroid of one polygon with its holes, as ``(lat, lon)``."""
    return centroid([polygon])


def bbox_of(polygons: MultiPolygon) -> BBox:
    """``(west, south, east, north)`` of a multipolygon's outer rings."""
    lons = [p[0] for polygon in polygons for p in polygon[0]]
    lats = [p[1] for polygon in polygons for p in polygon[0]]
    return (min(lons), min(lats), max(lons), max(lats))


# --- point in polygon ---------------------------------------------------------------------


def point_in_ring(lat: float, lon: float, ring: Ring) -> bool:
    """Even-odd test of one ring (a horizontal ray to the east, half-open in latitude)."""
    inside = False
    x1, y1 = ring[-1]
    for x2, y2 in ring:
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
        x1, y1 = x2, y2
    return inside


def point_in_polygon(lat: float, lon: float, polygon: Polygon) -> bool:
    """True if the point is inside the outer ring and outside every hole."""
    if not polygon or not point_in_ring(lat, lon, polygon[0]):
        return False
    return not any(point_in_ring(lat, lon, hole) for hole in polygon[1:])


def point_in_multipolygon(lat: float, lon: float, polygons: MultiPolygon) -> bool:
    """True if the point is inside any part of a multipolygon."""
    return any(point_in_polygon(lat, lon, p) for p in polygons)


class _Shape(Protocol):
    @property
    def geometry(self) -> MultiPolygon: ...

    @property
    def bbox(self) -> BBox: ...


S = TypeVar("S", bound=_Shape)
_Entry = tuple[S, "PreparedShape | None"]


class PreparedShape:
    """A multipolygon's edges bucketed by latitude band, for fast repeated inside tests.

    Even-odd over every edge of every ring equals the per-polygon rule with holes, because
    GeoJSON parts and holes do not overlap. Only the edges of the point's band are tested
    (about 1/``bands`` of them on a shape whose edges are short).
    """

    __slots__ = ("west", "south", "east", "north", "_band_h", "_bands")

    def __init__(self, polygons: MultiPolygon, *, bands: int = 64) -> None:
        self.west, self.south, self.east, self.north = bbox_of(polygons)
        self._band_h = (self.north - self.south) / bands or 1.0
        self._bands: list[list[tuple[float, float, float, float]]] = [[] for _ in range(bands)]
        for polygon in polygons:
            for ring in polygon:
                for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
                    if y1 == y2:
                        continue  # a horizontal edge never crosses a horizontal ray
                    lo = self._band(min(y1, y2))
                    hi = self._band(max(y1, y2))
                    edge = (x1, y1, x2, y2)
                    for b in range(lo, hi + 1):
                        self._bands[b].append(edge)

    def _band(self, lat: float) -> int:
        return min(len(self._bands) - 1, max(0, int((lat - self.south) / self._band_h)))

    def contains(self, lat: float, lon: float) -> bool:
        """Even-odd inside test (points outside the bounding box are outside)."""
        if not (self.south <= lat <= self.north and self.west <= lon <= self.east):
            return False
        inside = False
        for x1, y1, x2, y2 in self._bands[self._band(lat)]:
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside


class AreaIndex(Generic[S]):
    """Which of several non-overlapping areas (districts) contains a point.

    Built once per pack; a lookup costs one grid-cell fetch and, near borders, an even-odd
    test over the edges of one latitude band of one to three areas. When areas overlap
    (bad data), the first in layer order wins, as a linear scan would answer.
    """

    def __init__(self, shapes: Sequence[S], *, cells: int = 64) -> None:
        self._shapes = tuple(shapes)
        self._prepared = tuple(PreparedShape(s.geometry) for s in self._shapes)
        if not self._shapes:
            self._grid: list[tuple[_Entry[S], ...]] = []
            self.west = self.south = self.east = self.north = 0.0
            self._nx = self._ny = 0
            self._cw = self._ch = 1.0
            return
        self.west = min(s.bbox[0] for s in self._shapes)
        self.south = min(s.bbox[1] for s in self._shapes)
        self.east = max(s.bbox[2] for s in self._shapes)
        self.north = max(s.bbox[3] for s in self._shapes)
        self._nx = self._ny = cells
        self._cw = (self.east - self.west) / cells or 1.0
        self._ch = (self.north - self.south) / cells or 1.0
        touched = self._touched_cells()
        self._grid = [self._build_cell(ix, iy, touched[iy * self._nx + ix])
                      for iy in range(self._ny) for ix in range(self._nx)]

    def _touched_cells(self) -> list[set[int]]:
        """For each cell, the shapes (by position) with an edge passing through it.

        Each edge is walked in steps of at most half a cell, and the cells under each step's
        bounding box are marked: a superset of the cells the edge crosses, never a subset.
        """
        touched: list[set[int]] = [set() for _ in range(self._nx * self._ny)]
        for k, shape in enumerate(self._shapes):
            for polygon in shape.geometry:
                for ring in polygon:
                    for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
                        steps = max(1, math.ceil(2 * max(abs(x2 - x1) / self._cw, abs(y2 - y1) / self._ch)))
                        for i in range(steps):
                            ax, ay = x1 + (x2 - x1) * i / steps, y1 + (y2 - y1) * i / steps
                            bx, by = x1 + (x2 - x1) * (i + 1) / steps, y1 + (y2 - y1) * (i + 1) / steps
                            for iy in range(self._row(min(ay, by)), self._row(max(ay, by)) + 1):
                                for ix in range(self._col(min(ax, bx)), self._col(max(ax, bx)) + 1):
                                    touched[iy * self._nx + ix].add(k)
        return touched

    def _col(self, lon: float) -> int:
        return min(self._nx - 1, max(0, int((lon - self.west) / self._cw)))

    def _row(self, lat: float) -> int:
        return min(self._ny - 1, max(0, int((lat - self.south) / self._ch)))

    def _build_cell(self, ix: int, iy: int, touched: set[int]) -> tuple[_Entry[S], ...]:
        """A cell's entries, in layer order: ``(shape, None)`` when the cell lies wholly inside
        the shape (nothing after it can matter), ``(shape, prepared)`` when the point must be tested.
        """
        w = self.west + ix * self._cw
        s = self.south + iy * self._ch
        e, n = w + self._cw, s + self._ch
        entries: list[_Entry[S]] = []
        for k, (shape, prepared) in enumerate(zip(self._shapes, self._prepared, strict=True)):
            bw, bs, be, bn = shape.bbox
            if be < w or bw > e or bn < s or bs > n:
                continue
            if k in touched:
                entries.append((shape, prepared))
            elif prepared.contains((s + n) / 2, (w + e) / 2):
                # no edge passes through the cell, so all of it is on the centre's side
                entries.append((shape, None))
                break  # later shapes cannot win any point of this cell
        return tuple(entries)

    def indexes(self, shapes: Sequence[S]) -> bool:
        """True if this index was built from exactly these shapes, in this order."""
        return len(shapes) == len(self._shapes) and all(a is b for a, b in zip(shapes, self._shapes, strict=True))

    def locate(self, lat: float, lon: float) -> S | None:
        """The first area containing the point, or None."""
        if not (self.west <= lon <= self.east and self.south <= lat <= self.north):
            return None  # also NaN
        ix = min(self._nx - 1, int((lon - self.west) / self._cw))
        iy = min(self._ny - 1, int((lat - self.south) / self._ch))
        for shape, prepared in self._grid[iy * self._nx + ix]:
            if prepared is None or prepared.contains(lat, lon):
                return shape
        return None


def district_at(pack: CityPack, lat: float, lon: float) -> District | None:
    """The district of ``pack`` containing the point, or None outside every district."""
    return pack.district_index.locate(lat, lon)
