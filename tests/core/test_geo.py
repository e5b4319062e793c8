"""Geometry helpers: distances, areas, centroids, point in polygon, and the district index."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import geo
from core.citypack import DEMO_PACK, load_pack

R = geo.EARTH_RADIUS_M


def square(west: float, south: float, size: float) -> tuple[tuple[float, float], ...]:
    """A closed counter-clockwise square ring."""
    e, n = west + size, south + size
    return ((west, south), (e, south), (e, n), (west, n), (west, south))


@dataclass(frozen=True)
class Shape:
    """Anything with geometry and bbox is indexable (like a District)."""

    name: str
    geometry: tuple
    bbox: tuple[float, float, float, float]


def shape(name: str, polygons) -> Shape:
    return Shape(name, polygons, geo.bbox_of(polygons))


# --- distances and lines ------------------------------------------------------------------


def test_haversine_one_degree_of_latitude_and_longitude():
    assert geo.haversine_m(0, 0, 1, 0) == pytest.approx(R * math.pi / 180, rel=1e-12)
    # a degree of longitude shrinks with cos(lat)
    assert geo.haversine_m(43.25, 76.9, 43.25, 77.9) == pytest.approx(R * math.pi / 180 * math.cos(math.radians(43.25)),
                                                                     rel=1e-3)
    assert geo.haversine_m(43.2, 76.9, 43.2, 76.9) == 0.0


def test_haversine_known_almaty_distance_and_symmetry():
    # Republic Square to the airport terminal: about 15 km as the crow flies
    d = geo.haversine_m(43.2380, 76.9458, 43.3521, 77.0405)
    assert 14_000 < d < 16_000
    assert d == geo.haversine_m(43.3521, 77.0405, 43.2380, 76.9458)


def test_haversine_antipodes_do_not_fail():
    assert geo.haversine_m(0, 0, 0, 180) == pytest.approx(math.pi * R)


def test_point_along_a_polyline_by_length():
    # two pieces along the equator: 1 degree then 3 degrees
    line = ((0.0, 0.0), (1.0, 0.0), (4.0, 0.0))
    assert geo.line_length_m(line) == pytest.approx(4 * R * math.pi / 180)
    assert geo.point_along(line, 0) == (0.0, 0.0)
    assert geo.point_along(line, 1) == (0.0, 4.0)
    lat, lon = geo.point_along(line, 0.5)
    assert lat == 0 and lon == pytest.approx(2.0)
    assert geo.point_along(line, 0.125)[1] == pytest.approx(0.5)
    # clamped outside 0..1
    assert geo.point_along(line, -3) == (0.0, 0.0)
    assert geo.point_along(line, 7) == (0.0, 4.0)


def test_point_along_degenerate_lines():
    assert geo.point_along(((76.9, 43.2),), 0.5) == (43.2, 76.9)
    assert geo.point_along(((76.9, 43.2), (76.9, 43.2)), 0.5) == (43.2, 76.9)
    with pytest.raises(ValueError):
        geo.point_along((), 0.5)


# --- areas and centroids ------------------------------------------------------------------


def test_area_of_a_lat_lon_rectangle_is_exact():
    ring = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0))
    exact = R**2 * math.radians(1) * (math.sin(math.radians(1)) - math.sin(0))
    assert geo.ring_area_m2(ring) == pytest.approx(exact, rel=1e-12)
    assert geo.ring_area_m2(tuple(reversed(ring))) == pytest.approx(exact, rel=1e-12)  # orientation-free


def test_area_of_a_polygon_with_a_hole_and_of_a_multipolygon():
    outer = square(76.9, 43.2, 0.1)
    hole = square(76.92, 43.22, 0.02)
    a_outer, a_hole = geo.ring_area_m2(outer), geo.ring_area_m2(hole)
    assert a_outer == pytest.approx(0.1 * 111_195 * 0.1 * 111_195 * math.cos(math.radians(43.25)), rel=1e-3)
    assert geo.polygon_area_m2((outer, hole)) == pytest.approx(a_outer - a_hole)
    assert geo.multipolygon_area_m2([(outer, hole), (square(77.0, 43.2, 0.02),)]) == pytest.approx(
        a_outer - a_hole + geo.ring_area_m2(square(77.0, 43.2, 0.02)))
    assert geo.polygon_area_m2(()) == 0.0


def test_centroid_of_squares_holes_and_parts():
    lat, lon = geo.polygon_centroid((square(76.9, 43.2, 0.1),))
    assert (lat, lon) == (pytest.approx(43.25), pytest.approx(76.95))
    # a hole in the east half pulls the centroid west
    lat, lon = geo.polygon_centroid((square(76.9, 43.2, 0.1), square(76.96, 43.24, 0.02)))
    assert lon < 76.95 and lat == pytest.approx(43.25)
    # hole orientation does not matter
    reversed_hole = tuple(reversed(square(76.96, 43.24, 0.02)))
    assert geo.polygon_centroid((square(76.9, 43.2, 0.1), reversed_hole)) == pytest.approx((lat, lon))
    # two equal parts: the midpoint
    lat, lon = geo.centroid([(square(76.9, 43.2, 0.02),), (square(77.0, 43.2, 0.02),)])
    assert (lat, lon) == (pytest.approx(43.21), pytest.approx(76.96))
    with pytest.raises(ValueError):
        geo.centroid([])


# --- point in polygon ---------------------------------------------------------------------


def test_point_in_polygon_with_hole_and_multipolygon():
    outer, hole = square(0, 0, 10), square(4, 4, 2)
    assert geo.point_in_polygon(1, 1, (outer, hole))
    assert not geo.point_in_polygon(5, 5, (outer, hole))  # in the hole
    assert not geo.point_in_polygon(11, 5, (outer, hole))
    assert not geo.point_in_polygon(5, -0.5, (outer,))
    parts = [(outer, hole), (square(20, 20, 2),), (square(4.5, 4.5, 1),)]  # an island inside the hole
    assert geo.point_in_multipolygon(21, 21, parts)
    assert geo.point_in_multipolygon(5, 5, parts)
    assert not geo.point_in_multipolygon(4.2, 4.2, parts)
    assert not geo.point_in_multipolygon(15, 15, parts)


def test_point_in_ring_when_the_ray_passes_through_vertices():
    diamond = ((0, -1), (1, 0), (0, 1), (-1, 0), (0, -1))  # (lon, lat)
    assert geo.point_in_ring(0, 0, diamond)  # the ray hits the vertex (1, 0)
    assert geo.point_in_ring(0, -0.5, diamond)
    assert not geo.point_in_ring(0, 2, diamond)
    assert not geo.point_in_ring(0, -2, diamond)
    assert not geo.point_in_ring(1, 0, diamond)  # level with the top vertex, outside
    # a ring with a horizontal edge level with the point
    notch = ((0, 0), (4, 0), (4, 2), (3, 2), (3, 1), (1, 1), (1, 2), (0, 2), (0, 0))
    assert geo.point_in_ring(1, 0.5, notch)  # lat 1 == the notch floor
    assert geo.point_in_ring(1.5, 3.5, notch)
    assert not geo.point_in_ring(1.5, 2, notch)


def star(cx: float, cy: float, points: int, r_in: float, r_out: float) -> tuple[tuple[float, float], ...]:
    ring = []
    for i in range(points * 2):
        r = r_out if i % 2 == 0 else r_in
        a = math.pi * i / points
        ring.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return (*ring, ring[0])


STAR = (star(76.95, 43.25, 17, 0.03, 0.1), square(76.94, 43.24, 0.02))


@settings(max_examples=400, deadline=None)
@given(lat=st.floats(43.1, 43.4), lon=st.floats(76.8, 77.1))
def test_prepared_shape_agrees_with_the_plain_test(lat, lon):
    prepared = geo.PreparedShape([STAR], bands=16)
    assert prepared.contains(lat, lon) == geo.point_in_polygon(lat, lon, STAR)


# --- the area index -----------------------------------------------------------------------


def test_area_index_agrees_with_a_linear_scan():
    shapes = [shape("a", [STAR]), shape("b", [(square(76.7, 43.1, 0.2),)]),
              shape("c", [(star(77.0, 43.3, 5, 0.01, 0.05),), (square(76.75, 43.35, 0.05),)])]
    index = geo.AreaIndex(shapes, cells=16)
    rnd = random.Random(7)
    for _ in range(5000):
        lat, lon = rnd.uniform(43.0, 43.5), rnd.uniform(76.6, 77.2)
        expected = next((s for s in shapes if geo.point_in_multipolygon(lat, lon, s.geometry)), None)
        assert index.locate(lat, lon) is expected, (lat, lon)


def test_area_index_overlaps_first_wins_and_edges():
    big = shape("big", [(square(0, 0, 10),)])
    small = shape("small", [(square(2, 2, 2),)])
    assert geo.AreaIndex([small, big], cells=4).locate(3, 3) is small
    assert geo.AreaIndex([big, small], cells=4).locate(3, 3) is big
    index = geo.AreaIndex([big], cells=4)
    assert index.locate(-1, 5) is None and index.locate(5, 10.5) is None
    assert index.locate(float("nan"), 5) is None
    assert index.locate(9.999, 9.999) is big
    assert geo.AreaIndex([]).locate(1, 1) is None


def test_area_index_knows_what_it_indexes():
    shapes = [shape("a", [(square(0, 0, 1),)])]
    index = geo.AreaIndex(shapes)
    assert index.indexes(shapes) and index.indexes(tuple(shapes))
    assert not index.indexes([shape("a", [(square(0, 0, 1),)])])  # equal but not the same objects


def test_district_at_on_the_demo_pack():
    pack = load_pack(DEMO_PACK)
    places = {
        (43.3521, 77.0405): "turksib",  # the airport
        (43.1570, 77.0580): "medeu",  # the Medeu skating rink
        (43.2380, 76.9300): "almaly",  # the centre, west of Dostyk
        (43.2220, 76.9200): "bostandyk",  # Al-Farabi, the university
        (43.2250, 76.8500): "auezov",  # the microdistricts
        (43.3000, 76.9200): "zhetysu",
        (43.2950, 76.8100): "alatau",
        (43.1900, 76.7900): "nauryzbay",
    }
    for (lat, lon), district in places.items():
        found = geo.district_at(pack, lat, lon)
        assert found is not None and found.id == district, (lat, lon, found)
    assert geo.district_at(pack, 43.45, 76.65) is None  # inside the bounds, outside the city
    assert geo.district_at(pack, 10.0, 10.0) is None
