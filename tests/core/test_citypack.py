"""City packs: the bundled demo pack, the real OSM districts as a pack, and every way a pack can be wrong."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core import geo
from core.citypack import DEMO_PACK, CityPack, District, load_pack
from core.errors import ConfigError
from core.units import Pollutant
from core.validate import Bounds
from tests.conftest import shared_path

# the generator script is not a package module; load it from its file
_spec = importlib.util.spec_from_file_location("make_almaty_demo", DEMO_PACK.parent / "make_almaty_demo.py")
assert _spec and _spec.loader
make_demo = importlib.util.module_from_spec(_spec)
sys.modules["make_almaty_demo"] = make_demo
_spec.loader.exec_module(make_demo)

#: demo id -> the English name in the real OSM layer
OSM_NAME = {"alatau": "Alatau", "almaly": "Almaly", "auezov": "Auezov", "bostandyk": "Bostandyq",
            "zhetysu": "Zhetysu", "medeu": "Medeu", "nauryzbay": "Nauryzbay", "turksib": "Turksib"}


@pytest.fixture(scope="module")
def demo() -> CityPack:
    return load_pack()


def demo_manifest() -> dict[str, Any]:
    """The demo pack.json with every path made absolute, so it works from any directory."""
    data = json.loads((DEMO_PACK / "pack.json").read_text("utf-8"))
    for ref in [*data["layers"].values(), data["norms"], data["population"]]:
        ref["path"] = str(DEMO_PACK / ref["path"])
    return data


def write_pack(root: Path, manifest: dict[str, Any], **files: Any) -> Path:
    """A pack directory: ``pack.json`` plus extra files (dicts are written as JSON)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        (root / name.replace("__", ".")).write_text(text, "utf-8")
    return root


@pytest.fixture(scope="module")
def osm(tmp_path_factory: pytest.TempPathFactory) -> CityPack:
    """The real OpenStreetMap districts as a pack, as a city would point at its own GIS layer."""
    manifest = demo_manifest()
    manifest["id"] = "almaty_osm"
    manifest["layers"]["districts"] = {
        "path": str(shared_path("almaty/districts.geojson")),
        "id_property": "osm-relation-id",
        "name_properties": {"en": "name", "ru": "nameRu"},
    }
    del manifest["population"]  # keyed by the demo's ids; the OSM layer has its own
    return load_pack(write_pack(tmp_path_factory.mktemp("osm"), manifest))


# --- the demo pack ------------------------------------------------------------------------


def test_demo_pack_keeps_the_fields_the_ingest_path_uses(demo):
    assert load_pack(None) == demo and load_pack("") == demo and load_pack(DEMO_PACK) == demo
    assert demo.id == "almaty_demo" and demo.path == DEMO_PACK
    assert demo.timezone == "Asia/Almaty" and demo.zone.key == "Asia/Almaty"
    assert demo.bounds == Bounds(76.60, 42.95, 77.35, 43.50)
    assert demo.center == (43.2380, 76.9450)
    assert demo.name == {"kk": "Алматы (демо)", "ru": "Алматы (демо)", "en": "Almaty (demo)"}


def test_demo_pack_map_is_openstreetmap_with_attribution(demo):
    assert demo.map.tile_url == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert "OpenStreetMap" in demo.map.attribution and "openstreetmap.org/copyright" in demo.map.attribution
    assert demo.map.min_zoom <= demo.map.default_zoom <= demo.map.max_zoom == 19


def test_demo_pack_has_the_eight_districts_with_three_languages(demo):
    names = {d.id: d.names.as_dict() for d in demo.districts}
    assert names == {
        "alatau": {"kk": "Алатау ауданы", "ru": "Алатауский район", "en": "Alatau District"},
        "almaly": {"kk": "Алмалы ауданы", "ru": "Алмалинский район", "en": "Almaly District"},
        "auezov": {"kk": "Әуезов ауданы", "ru": "Ауэзовский район", "en": "Auezov District"},
        "bostandyk": {"kk": "Бостандық ауданы", "ru": "Бостандыкский район", "en": "Bostandyk District"},
        "zhetysu": {"kk": "Жетісу ауданы", "ru": "Жетысуский район", "en": "Zhetysu District"},
        "medeu": {"kk": "Медеу ауданы", "ru": "Медеуский район", "en": "Medeu District"},
        "nauryzbay": {"kk": "Наурызбай ауданы", "ru": "Наурызбайский район", "en": "Nauryzbay District"},
        "turksib": {"kk": "Түрксіб ауданы", "ru": "Турксибский район", "en": "Turksib District"},
    }
    assert demo.district("medeu").names["kk"] == "Медеу ауданы"
    with pytest.raises(KeyError):
        demo.district("nowhere")


def test_demo_population_is_about_two_point_three_million(demo):
    populations = [d.population for d in demo.districts]
    assert all(p is not None and 150_000 < p < 500_000 for p in populations)
    assert 2_200_000 <= sum(p for p in populations if p) <= 2_400_000


def test_demo_districts_tile_the_outline_without_gaps_or_overlaps(demo):
    outline = make_demo.OUTLINE + (make_demo.OUTLINE[0],)
    outline_area = geo.ring_area_m2(outline)
    assert sum(d.area_m2 for d in demo.districts) == pytest.approx(outline_area, rel=1e-4)
    rnd = random.Random(3)
    for _ in range(4000):
        lat, lon = rnd.uniform(43.02, 43.41), rnd.uniform(76.73, 77.18)
        holders = [d.id for d in demo.districts if d.contains(lat, lon)]
        assert len(holders) == int(geo.point_in_ring(lat, lon, outline)), (lat, lon, holders)


def test_demo_districts_lie_where_the_city_has_them(demo):
    c = {d.id: d.centroid for d in demo.districts}  # (lat, lon)
    assert c["turksib"][0] > c["zhetysu"][0] > c["almaly"][0] > c["bostandyk"][0]  # north to south
    assert c["medeu"][1] == max(lon for _, lon in c.values())  # the east
    assert c["medeu"][0] < c["almaly"][0]  # into the southern foothills
    assert c["nauryzbay"][1] < c["auezov"][1] < c["almaly"][1]  # the west
    assert c["alatau"][1] < c["zhetysu"][1] and c["alatau"][0] > c["auezov"][0]  # north-west
    assert c["nauryzbay"][0] < c["alatau"][0]  # south-west
    for lat, lon in c.values():
        assert 43.03 <= lat <= 43.40 and 76.74 <= lon <= 77.17
    # each centre given to the generator lies in its own cell
    for key, (centre, _, _) in make_demo.DISTRICTS.items():
        assert demo.district_at(*centre).id == key


def test_demo_points_spread_over_the_districts(demo):
    assert len(demo.stations) == 11 and [s.id for s in demo.stations] == [f"ALM-{i:02d}" for i in range(1, 12)]
    assert len(demo.hospitals) == 10 and len(demo.substations) == 12
    for point in (*demo.stations, *demo.hospitals, *demo.substations):
        assert point.district_id is not None, point
        assert demo.district_at(point.lat, point.lon).id == point.district_id
    every = {d.id for d in demo.districts}
    assert {s.district_id for s in demo.stations} == every
    assert {s.district_id for s in demo.substations} == every
    assert all(Pollutant.PM25 in s.pollutants and Pollutant.PM10 in s.pollutants for s in demo.stations)
    assert all(h.beds and h.beds > 0 for h in demo.hospitals)
    assert 100 <= sum(s.units or 0 for s in demo.substations) <= 300
    assert demo.substations[2].names.en == "Substation No. 3"


def test_demo_roads_form_one_connected_arterial_grid(demo):
    roads = demo.roads
    assert 40 <= len(roads) <= 80
    assert len({r.id for r in roads}) == len(roads)
    streets = {r.names.en for r in roads}
    for street in ("Al-Farabi Avenue", "Abay Avenue", "Tole bi Street", "Raiymbek Avenue", "Sain Street",
                   "Rozybakiev Street", "Seifullin Avenue", "Dostyk Avenue", "Furmanov Street", "Suyunbay Avenue",
                   "Eastern Bypass (VOAD)", "Kuldzha Highway", "Ryskulov Avenue", "Big Almaty Ring Road (BAKAD)"):
        assert street in streets
    for r in roads:
        assert 20 <= r.speed_kmh <= 110 and 2 <= r.lanes <= 8 and r.road_class
        assert 300 < r.length_m < 12_000, r.id
        assert r.free_flow_s == pytest.approx(r.length_m / (r.speed_kmh / 3.6))
        assert r.point_at(0) == (r.line[0][1], r.line[0][0])
    # every segment is reachable from every other through shared end points
    adjacency: dict[tuple[float, float], set[tuple[float, float]]] = {}
    for r in roads:
        a, b = r.line[0], r.line[-1]
        adjacency.setdefault(a, set()).add(b)
        adjacency.setdefault(b, set()).add(a)
    seen, todo = set(), [roads[0].line[0]]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(adjacency[node] - seen)
    assert seen == set(adjacency)


def test_demo_norms(demo):
    norms = demo.norms
    assert norms is not None
    limits = norms.air_limits
    pm25, pm10, no2 = limits[Pollutant.PM25], limits[Pollutant.PM10], limits[Pollutant.NO2]
    assert (pm25.single_mg_m3, pm25.daily_mg_m3) == (0.16, 0.035)
    assert (pm10.single_mg_m3, pm10.daily_mg_m3) == (0.3, 0.06)
    assert (no2.single_mg_m3, no2.daily_mg_m3, no2.hazard_class) == (0.2, 0.04, 2)
    assert set(norms.air_limits) == set(Pollutant)
    assert dict(norms.ambulance_arrival_min) == {1: 10, 2: 15, 3: 30, 4: 60}
    assert norms.arrival_norm(1) == timedelta(minutes=10)
    assert set(norms.appeal_deadline_h) == {"water_supply", "heating", "electricity", "roads", "waste", "lighting",
                                            "public_transport", "noise", "other"}
    assert norms.appeal_deadline("heating") == timedelta(hours=24)
    assert norms.appeal_deadline("parking") == norms.appeal_deadline(None) == timedelta(hours=360)


def test_demo_pack_files_are_the_generator_output():
    built = make_demo.build()
    on_disk = {p.name: p.read_text("utf-8") for p in DEMO_PACK.iterdir() if p.is_file()}
    assert on_disk == built  # run `python core/packs/make_almaty_demo.py` after editing the generator
    assert make_demo.build() == built  # deterministic
    assert "coarse approximation" in json.loads(built["pack.json"])["note"]


# --- the real OSM districts as a pack -----------------------------------------------------


@pytest.mark.shared_data
def test_osm_districts_load_as_a_pack(osm):
    assert len(osm.districts) == 8
    by_name = {d.names.en: d for d in osm.districts}
    assert set(by_name) == set(OSM_NAME.values())
    medeu = by_name["Medeu"]
    assert medeu.id == "3072217" and medeu.names.ru == "Медеуский район"
    assert medeu.names.kk == medeu.names.ru  # no Kazakh names in the layer: Russian stands in
    assert len(medeu.geometry) == 2  # a MultiPolygon of two parts
    assert all(d.population is None for d in osm.districts)
    total_km2 = sum(d.area_m2 for d in osm.districts) / 1e6
    assert 650 < total_km2 < 750  # the 2017 polygons add up to about 700 km²


def brute_district(pack: CityPack, lat: float, lon: float) -> District | None:
    """The district by a plain scan of the file's own polygons."""
    return next((d for d in pack.districts if geo.point_in_multipolygon(lat, lon, d.geometry)), None)


@pytest.mark.shared_data
def test_osm_district_at_known_places(osm):
    hotel = geo.district_at(osm, 43.2435, 76.9573)  # the Kazakhstan Hotel on Dostyk
    assert hotel is brute_district(osm, 43.2435, 76.9573)
    assert hotel is not None and hotel.names.en in ("Medeu", "Almaly")
    assert hotel.names.en == "Medeu"  # as the file's 2017 polygons have it
    station = geo.district_at(osm, 43.3393, 76.9464)  # Almaty-1 railway station
    assert station is not None and station.names.en == "Turksib"
    assert station is brute_district(osm, 43.3393, 76.9464)
    assert geo.district_at(osm, 43.2520, 76.9280).names.en == "Almaly"  # Tole bi, the centre
    assert geo.district_at(osm, 43.2380, 76.9300).names.en == "Bostandyq"  # just south of Abay Avenue
    assert geo.district_at(osm, 43.45, 76.65) is None


@pytest.mark.shared_data
def test_osm_district_at_agrees_with_a_linear_scan(osm):
    rnd = random.Random(11)
    for _ in range(3000):
        lat, lon = rnd.uniform(43.02, 43.41), rnd.uniform(76.73, 77.18)
        assert geo.district_at(osm, lat, lon) is brute_district(osm, lat, lon), (lat, lon)


@pytest.mark.shared_data
def test_osm_district_at_is_fast(osm):
    rnd = random.Random(5)
    points = [(rnd.uniform(43.03, 43.40), rnd.uniform(76.74, 77.17)) for _ in range(20_000)]
    start = time.perf_counter()
    for lat, lon in points:
        geo.district_at(osm, lat, lon)
    per_call_us = (time.perf_counter() - start) / len(points) * 1e6
    start = time.perf_counter()
    for lat, lon in points[:2000]:
        next((d for d in osm.districts if d.contains(lat, lon)), None)  # bounding boxes, then polygons
    scan_us = (time.perf_counter() - start) / 2000 * 1e6
    print(f"district_at on the OSM districts: {per_call_us:.2f} µs per call; scan with bbox prefilter {scan_us:.1f} µs")
    assert per_call_us < 20  # about 1 µs here; generous for slow CI machines
    assert per_call_us < scan_us


@pytest.mark.shared_data
def test_demo_districts_contain_the_real_district_centroids(demo, osm):
    """Each demo cell contains the centroid of the real district of the same name.

    True for all eight with the centres in the generator (chosen from public knowledge, not
    from the OSM file). The cells are still coarse: their borders are straight bisectors, so
    they disagree with the real borders near the edges (see docs/citypack.md).
    """
    by_name = {d.names.en: d for d in osm.districts}
    for demo_id, osm_name in OSM_NAME.items():
        lat, lon = by_name[osm_name].centroid
        found = demo.district_at(lat, lon)
        assert found is not None and found.id == demo_id, (osm_name, found)


@pytest.mark.shared_data
def test_demo_points_mostly_lie_in_the_real_district_of_the_same_name(demo, osm):
    """The demo's posts, hospitals and substations fall in the same district under the real borders.

    Not all: points near a border can fall on the other side of a coarse cell border
    (City Clinical Hospital No. 3 is in the demo's Auezov and the real Almaly).
    """
    osm_id_to_demo = {d.id: next(k for k, v in OSM_NAME.items() if v == d.names.en) for d in osm.districts}
    points = [*demo.stations, *demo.hospitals, *demo.substations]
    agree = [p.id for p in points if (real := osm.district_at(p.lat, p.lon)) and osm_id_to_demo[real.id] ==
             p.district_id]
    assert len(agree) >= 0.9 * len(points)
    assert {s.id for s in demo.stations} <= set(agree)


# --- invalid packs ------------------------------------------------------------------------


def expect_error(root: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_pack(root)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_pack_and_pack_json(tmp_path):
    expect_error(tmp_path / "nowhere", "has no pack.json")
    tmp_path.joinpath("empty").mkdir()
    expect_error(tmp_path / "empty", "has no pack.json")


def test_pack_json_that_is_not_json(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "pack.json").write_text("{not json", "utf-8")
    expect_error(root, "pack.json", "cannot be read as JSON")
    (root / "pack.json").write_text("[1, 2]", "utf-8")
    expect_error(root, "pack.json", "must be an object")


@pytest.mark.parametrize(("field", "value", "fragments"), [
    ("timezone", "Asia/Atlantis", ("pack.json", "timezone", "Asia/Atlantis", "IANA")),
    ("timezone", "", ("pack.json", "timezone")),
    ("bounds", {"west": 77.35, "south": 42.95, "east": 76.60, "north": 43.50}, ("pack.json", "bounds", "inverted")),
    ("bounds", {"west": 76.6, "south": 43.5, "east": 77.35, "north": 42.95}, ("pack.json", "bounds", "inverted")),
    ("bounds", {"west": 76.6, "south": 42.95, "east": 77.35}, ("pack.json", "bounds.north", "missing")),
    ("bounds", {"west": "x", "south": 42.95, "east": 77.35, "north": 43.5}, ("bounds.west", "number")),
    ("center", {"lat": 45.0, "lon": 76.9}, ("pack.json", "center", "outside the bounds")),
    ("id", None, ("pack.json", "id", "missing")),
    ("name", {"de": "Almaty"}, ("pack.json", "name", "no name")),
    ("format", 2, ("pack.json", "format", "not supported")),
    ("colour", "red", ("pack.json", "unknown field", "colour")),
    ("map", {"tile_url": "https://tiles.example/{z}/{x}.png"}, ("pack.json", "map.tile_url", "{y}")),
    ("map", {"min_zoom": 14, "default_zoom": 12}, ("pack.json", "map", "min_zoom <= default_zoom")),
    ("map", {"max_zoom": 30}, ("pack.json", "map.max_zoom")),
    ("norms", None, ("pack.json", "norms", "missing")),
])
def test_invalid_pack_json_fields(tmp_path, field, value, fragments):
    manifest = demo_manifest()
    if value is None:
        del manifest[field]
    else:
        manifest[field] = value
    expect_error(write_pack(tmp_path / "p", manifest), *fragments)


def test_layer_path_that_does_not_exist(tmp_path):
    manifest = demo_manifest()
    manifest["layers"]["hospitals"]["path"] = "gis/hospitals.geojson"
    root = write_pack(tmp_path / "p", manifest)
    expect_error(root, "pack.json", "layers.hospitals.path", str(root / "gis" / "hospitals.geojson"), "does not exist")
    manifest["layers"]["hospitals"]["path"] = str(tmp_path)
    expect_error(write_pack(tmp_path / "p", manifest), "layers.hospitals.path", "not a file")
    manifest["norms"]["path"] = "missing-norms.json"
    del manifest["layers"]["hospitals"]
    expect_error(write_pack(tmp_path / "p", manifest), "norms.path", "does not exist")


def test_layer_paths_are_relative_to_the_pack_directory(tmp_path):
    manifest = demo_manifest()
    manifest["layers"]["stations"]["path"] = "layers/air.geojson"
    root = write_pack(tmp_path / "p", manifest)
    (root / "layers").mkdir()
    (root / "layers" / "air.geojson").write_text((DEMO_PACK / "stations.geojson").read_text("utf-8"), "utf-8")
    assert len(load_pack(root).stations) == 11


def test_layer_reference_problems(tmp_path):
    manifest = demo_manifest()
    manifest["layers"]["parks"] = manifest["layers"]["hospitals"]
    expect_error(write_pack(tmp_path / "a", manifest), "layers", "unknown layer", "parks")
    manifest = demo_manifest()
    del manifest["layers"]["districts"]
    expect_error(write_pack(tmp_path / "b", manifest), "layers.districts", "missing")
    manifest = demo_manifest()
    manifest["layers"]["districts"]["name_properties"] = {"fr": "nom"}
    expect_error(write_pack(tmp_path / "c", manifest), "layers.districts.name_properties", "fr")
    manifest = demo_manifest()
    manifest["layers"]["roads"]["properties"] = {"width": "w"}
    expect_error(write_pack(tmp_path / "d", manifest), "layers.roads.properties", "width")


def test_optional_point_and_road_layers_may_be_left_out(tmp_path):
    manifest = demo_manifest()
    for kind in ("stations", "hospitals", "substations", "roads"):
        del manifest["layers"][kind]
    del manifest["map"]
    pack = load_pack(write_pack(tmp_path / "p", manifest))
    assert pack.stations == pack.hospitals == pack.substations == pack.roads == ()
    assert len(pack.districts) == 8 and pack.map.tile_url.startswith("https://tile.openstreetmap.org/")


def district_feature(geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"id": "d1", "name_en": "One", **props}, "geometry": geometry}


def pack_with_districts(tmp_path: Path, features: list[dict[str, Any]] | dict[str, Any], *,
                        name_properties: dict[str, str] | None = None) -> Path:
    manifest = demo_manifest()
    manifest["layers"] = {"districts": {"path": "d.geojson", "id_property": "id",
                                        "name_properties": name_properties or {"en": "name_en"}}}
    del manifest["population"]
    collection = features if isinstance(features, dict) else {"type": "FeatureCollection", "features": features}
    return write_pack(tmp_path / "p", manifest, d__geojson=collection)


SQUARE = [[76.9, 43.2], [77.0, 43.2], [77.0, 43.3], [76.9, 43.3], [76.9, 43.2]]


def test_a_minimal_district_layer_loads(tmp_path):
    pack = load_pack(pack_with_districts(tmp_path, [district_feature({"type": "Polygon", "coordinates": [SQUARE]})]))
    (d,) = pack.districts
    assert d.names.as_dict() == {"kk": "One", "ru": "One", "en": "One"}
    assert d.geometry == ((tuple(tuple(p) for p in SQUARE),),)
    assert d.bbox == (76.9, 43.2, 77.0, 43.3)
    assert pack.district_at(43.25, 76.95) is d


@pytest.mark.parametrize(("geometry", "fragments"), [
    ({"type": "Point", "coordinates": [76.9, 43.2]}, ("geometry.type", "Polygon or MultiPolygon", "Point")),
    ({"type": "Polygon", "coordinates": [SQUARE[:3]]}, ("coordinates[0]", "at least 4 positions")),
    ({"type": "Polygon", "coordinates": [SQUARE[:4] + [[76.95, 43.25]]]}, ("coordinates[0]", "not closed")),
    ({"type": "Polygon", "coordinates": [[[76.9, 43.2], [77.0, 43.2], [76.95, 43.2], [76.9, 43.2]]]},
     ("no area",)),
    ({"type": "Polygon", "coordinates": [[["76.9x", 43.2], *SQUARE[1:]]]}, ("coordinates[0][0][0] (lon)", "number")),
    ({"type": "Polygon", "coordinates": [[[8560000.0, 5350000.0], *SQUARE[1:]]]}, ("projected",)),
    ({"type": "Polygon", "coordinates": [[[p[1], p[0]] for p in SQUARE]]},
     ("outside the pack bounds", "lon/lat order")),
    ({"type": "Polygon", "coordinates": []}, ("coordinates", "outer ring")),
    ({"type": "MultiPolygon", "coordinates": []}, ("coordinates", "at least one polygon")),
    ({"type": "MultiPolygon", "coordinates": [[]]}, ("coordinates[0]", "outer ring")),
    ({"type": "Polygon", "coordinates": [[[76.9], *SQUARE[1:]]]}, ("[lon, lat]",)),
    (None, ("geometry", "must be an object")),
])
def test_bad_district_geometry(tmp_path, geometry, fragments):
    root = pack_with_districts(tmp_path, [district_feature(geometry)])
    message = expect_error(root, "features[0] (id 'd1')", *fragments)
    assert message.startswith(f"{root / 'd.geojson'}: ")


def test_bad_district_features(tmp_path):
    polygon = {"type": "Polygon", "coordinates": [SQUARE]}
    expect_error(pack_with_districts(tmp_path, [district_feature(polygon), district_feature(polygon)]),
                 "d.geojson", "features[1] (id 'd1')", "duplicate id")
    expect_error(pack_with_districts(tmp_path, [district_feature(polygon, id=None)]),
                 "d.geojson", "features[0].properties.id", "id_property")
    expect_error(pack_with_districts(tmp_path, [district_feature(polygon, name_en="  ")]),
                 "d.geojson", "features[0] (id 'd1')", "no name")
    expect_error(pack_with_districts(tmp_path, []), "d.geojson", "no features")
    expect_error(pack_with_districts(tmp_path, {"type": "Feature", "geometry": polygon}), "d.geojson",
                 "FeatureCollection")
    collection = {"type": "FeatureCollection", "features": [district_feature(polygon)],
                  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}}
    expect_error(pack_with_districts(tmp_path, collection), "d.geojson", "crs", "EPSG:4326")
    collection["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    assert len(load_pack(pack_with_districts(tmp_path, collection)).districts) == 1
    root = pack_with_districts(tmp_path, [])
    (root / "d.geojson").write_text("{", "utf-8")
    expect_error(root, "d.geojson", "cannot be read as JSON")


def test_names_fall_back_between_languages(tmp_path):
    polygon = {"type": "Polygon", "coordinates": [SQUARE]}
    feature = district_feature(polygon, name_kk="Бір", name_ru="Один")
    pack = load_pack(pack_with_districts(tmp_path, [feature],
                                         name_properties={"kk": "name_kk", "ru": "name_ru", "en": "name_en2"}))
    assert pack.districts[0].names.as_dict() == {"kk": "Бір", "ru": "Один", "en": "Один"}
    feature = district_feature(polygon, name_kk="Бір")
    pack = load_pack(pack_with_districts(tmp_path, [feature], name_properties={"kk": "name_kk", "ru": "name_ru"}))
    assert pack.districts[0].names.as_dict() == {"kk": "Бір", "ru": "Бір", "en": "Бір"}


def test_multipolygon_with_a_hole(tmp_path):
    hole = [[76.94, 43.24], [76.94, 43.26], [76.96, 43.26], [76.96, 43.24], [76.94, 43.24]]
    island = [[77.05, 43.2], [77.1, 43.2], [77.1, 43.25], [77.05, 43.2]]
    geometry = {"type": "MultiPolygon", "coordinates": [[SQUARE, hole], [island]]}
    pack = load_pack(pack_with_districts(tmp_path, [district_feature(geometry)]))
    (d,) = pack.districts
    assert len(d.geometry) == 2 and len(d.geometry[0]) == 2
    assert pack.district_at(43.21, 76.91) is d
    assert pack.district_at(43.25, 76.95) is None  # in the hole
    assert pack.district_at(43.21, 77.09) is d  # in the island
    assert d.area_m2 == pytest.approx(geo.multipolygon_area_m2(d.geometry))


def test_point_layer_problems(tmp_path):
    stations = json.loads((DEMO_PACK / "stations.geojson").read_text("utf-8"))
    manifest = demo_manifest()
    manifest["layers"]["stations"]["path"] = "s.geojson"
    stations["features"][2]["properties"]["pollutants"] = ["pm25", "radon"]
    expect_error(write_pack(tmp_path / "a", manifest, s__geojson=stations), "s.geojson",
                 "features[2] (id 'ALM-03').properties.pollutants", "radon")
    stations["features"][2]["properties"]["pollutants"] = "pm25, pm10"
    pack = load_pack(write_pack(tmp_path / "a", manifest, s__geojson=stations))
    assert pack.stations[2].pollutants == (Pollutant.PM25, Pollutant.PM10)
    stations["features"][4]["geometry"] = {"type": "LineString", "coordinates": [[76.9, 43.2], [77.0, 43.3]]}
    expect_error(write_pack(tmp_path / "a", manifest, s__geojson=stations), "s.geojson",
                 "features[4] (id 'ALM-05').geometry.type", "Point")
    stations["features"][4]["geometry"] = {"type": "Point", "coordinates": [80.0, 43.2]}
    expect_error(write_pack(tmp_path / "a", manifest, s__geojson=stations), "features[4]", "outside the pack bounds")
    hospitals = json.loads((DEMO_PACK / "hospitals.geojson").read_text("utf-8"))
    hospitals["features"][0]["properties"]["beds"] = 12.5
    manifest["layers"]["stations"]["path"] = str(DEMO_PACK / "stations.geojson")
    manifest["layers"]["hospitals"]["path"] = "h.geojson"
    expect_error(write_pack(tmp_path / "b", manifest, h__geojson=hospitals), "h.geojson",
                 "features[0] (id 'H01').properties.beds", "whole number")


def test_points_outside_every_district_have_no_district(tmp_path):
    substations = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "far", "name_en": "Far"},
         "geometry": {"type": "Point", "coordinates": [76.65, 43.45]}}]}
    manifest = demo_manifest()
    manifest["layers"]["substations"] = {"path": "sub.geojson", "id_property": "id",
                                         "name_properties": {"en": "name_en"}}
    (sub,) = load_pack(write_pack(tmp_path / "p", manifest, sub__geojson=substations)).substations
    assert sub.district_id is None and sub.units is None


def test_road_layer_with_its_own_property_names(tmp_path):
    """A city's road export keeps its own names (OSM-style ``highway``, ``maxspeed`` as text)."""
    roads = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"osm_id": 42, "name": "Abay", "highway": "primary", "maxspeed": "60",
                                           "lanes": "4"},
         "geometry": {"type": "LineString", "coordinates": [[76.90, 43.24], [76.92, 43.24], [76.95, 43.241]]}}]}
    manifest = demo_manifest()
    manifest["layers"]["roads"] = {"path": "roads.geojson", "id_property": "osm_id", "name_properties": {"ru": "name"},
                                   "properties": {"road_class": "highway", "speed_kmh": "maxspeed", "lanes": "lanes"}}
    root = write_pack(tmp_path / "p", manifest, roads__geojson=roads)
    (road,) = load_pack(root).roads
    assert (road.id, road.names.en, road.road_class, road.speed_kmh, road.lanes) == ("42", "Abay", "primary", 60.0, 4)
    assert road.length_m == pytest.approx(geo.line_length_m(road.line))
    roads["features"][0]["properties"]["maxspeed"] = "fast"
    write_pack(root, manifest, roads__geojson=roads)
    expect_error(root, "roads.geojson", "features[0] (id '42').properties.maxspeed", "number")
    del roads["features"][0]["properties"]["lanes"]
    write_pack(root, manifest, roads__geojson=roads)
    expect_error(root, "roads.geojson", "properties.lanes", "missing")
    roads["features"][0]["geometry"]["coordinates"] = [[76.9, 43.24]]
    write_pack(root, manifest, roads__geojson=roads)
    expect_error(root, "roads.geojson", "at least 2 positions")


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda n: n["ambulance_arrival_min"].pop("4"), ("ambulance_arrival_min", "categories")),
    (lambda n: n["ambulance_arrival_min"].update({"2": -5}), ("ambulance_arrival_min.2", "> 0")),
    (lambda n: n["air_limits_mg_m3"].update({"radon": {"single": 1, "daily": 1}}), ("air_limits_mg_m3.radon",)),
    (lambda n: n["air_limits_mg_m3"]["pm10"].update({"daily": 0.5}), ("air_limits_mg_m3.pm10", "exceeds")),
    (lambda n: n["air_limits_mg_m3"]["co"].pop("single"), ("air_limits_mg_m3.co.single", "missing")),
    (lambda n: n["appeal_deadline_h"].pop("other"), ("appeal_deadline_h.other", "missing")),
    (lambda n: n["appeal_deadline_h"].update({"heating": "soon"}), ("appeal_deadline_h.heating", "number")),
    (lambda n: n.pop("air_limits_mg_m3"), ("air_limits_mg_m3", "missing")),
])
def test_invalid_norms(tmp_path, change, fragments):
    norms = json.loads((DEMO_PACK / "norms.json").read_text("utf-8"))
    change(norms)
    manifest = demo_manifest()
    manifest["norms"] = {"path": "norms.json"}
    root = write_pack(tmp_path / "p", manifest, norms__json=norms)
    expect_error(root, str(root / "norms.json"), *fragments)


def test_invalid_population(tmp_path):
    manifest = demo_manifest()
    manifest["population"] = {"path": "population.json"}
    root = write_pack(tmp_path / "p", manifest, population__json={"districts": {"almaly": 240000, "atlantis": 5}})
    expect_error(root, "pack.json", "population", "atlantis")
    write_pack(root, manifest, population__json={"districts": {"almaly": -3}})
    expect_error(root, "population.json", "districts.almaly")
    write_pack(root, manifest, population__json={"districts": {"almaly": 240000}})
    pack = load_pack(root)
    assert pack.district("almaly").population == 240000 and pack.district("medeu").population is None
