"""The map builders (dashboards.maps): GeoJSON shapes, colours, and escaping of feed-supplied text."""

from __future__ import annotations

import html

import pytest

from core.citypack import load_pack
from dashboards import maps

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def pack():
    return load_pack(None)


def _props(collection):
    assert collection["type"] == "FeatureCollection"
    return [f["properties"] for f in collection["features"]]


def test_tip_escapes_every_line_and_bolds_the_first():
    text = maps.tip(XSS, "b&c", None, "")
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert text == "<b>&lt;img src=x onerror=alert(1)&gt;</b><br>b&amp;c"


def test_station_names_from_feeds_are_escaped_and_coloured_by_epa_category():
    stations = [
        {"station_id": "X1", "name": XSS, "names": None, "lat": 43.25, "lon": 76.93, "aqi": 270,
         "category": "very_unhealthy", "offline": False},
        {"station_id": "X2", "name": "Post 2", "names": {"kk": "Бекет 2", "ru": "Пост 2", "en": "Post 2"},
         "lat": 43.2, "lon": 76.9, "aqi": 40, "category": "good", "offline": False},
        {"station_id": "X3", "name": "Post 3", "lat": 43.3, "lon": 76.95, "aqi": None, "category": None,
         "offline": True},
        {"station_id": "X4", "name": "no place", "lat": None, "lon": None, "aqi": 10, "category": "good"},
    ]
    data = maps.station_data(stations, "ru")
    props = _props(data)
    assert [p["id"] for p in props] == ["X1", "X2", "X3"]  # no position: not drawn
    assert "<img" not in props[0]["tooltip"] and html.escape(XSS) in props[0]["tooltip"]
    assert props[0]["colour"] == "#8f3f97" and props[1]["colour"] == "#00e400"  # EPA very unhealthy, good
    assert props[2]["colour"] == maps.NO_DATA and "нет данных" in props[2]["tooltip"]
    assert "Пост 2" in props[1]["tooltip"] and "Хорошо" in props[1]["tooltip"]  # names and category in ru
    geometry = data["features"][0]["geometry"]
    assert geometry == {"type": "Point", "coordinates": [76.93, 43.25]}  # GeoJSON order: lon, lat
    layer = maps.station_layer(stations, "ru", id="s")
    assert layer.pointToLayer == {"variable": "scMaps.stationPoint"}


def test_appeal_categories_are_escaped_and_the_layer_clusters():
    appeals = [{"request_id": "A-1", "category": XSS, "lat": 43.25, "lon": 76.9},
               {"request_id": "A-2", "category": "water_supply", "lat": 43.26, "lon": 76.91},
               {"request_id": "A-3", "category": "roads", "lat": None, "lon": None}]
    props = _props(maps.appeal_data(appeals, "en"))
    assert [p["id"] for p in props] == ["A-1", "A-2"]
    assert "<img" not in props[0]["tooltip"] and html.escape(XSS) in props[0]["tooltip"]
    assert props[1]["tooltip"].startswith("<b>Water supply</b>")
    layer = maps.appeal_cluster_layer(appeals, "en", id="a")
    assert layer.cluster is True and layer.clusterToLayer == {"variable": "scMaps.appealCluster"}


def test_segments_are_lines_coloured_by_speed_band(pack):
    segments = [
        {"segment_id": "S1", "name": XSS, "band": "red", "ratio": 0.3, "speed_kmh": 15.0, "free_flow_kmh": 50.0,
         "stale": False, "geometry": [[76.8, 43.24], [76.838, 43.24]]},
        {"segment_id": "S2", "name": "B", "band": "green", "ratio": 0.95, "speed_kmh": 57.0, "free_flow_kmh": 60.0,
         "stale": True, "geometry": [[76.8, 43.25], [76.85, 43.25], [76.9, 43.26]]},
        {"segment_id": "S3", "name": "C", "band": "green", "geometry": None},
    ]
    data = maps.segment_data(segments, "en")
    props = _props(data)
    assert [p["id"] for p in props] == ["S1", "S2"]
    assert data["features"][0]["geometry"] == {"type": "LineString", "coordinates": [[76.8, 43.24], [76.838, 43.24]]}
    assert props[0]["colour"] == maps.BAND_COLOURS["red"] and props[1]["colour"] == maps.NO_DATA  # stale: grey
    assert html.escape(XSS) in props[0]["tooltip"] and "15 / 50 km/h" in props[0]["tooltip"]


def test_units_are_coloured_by_status_group():
    units = [{"unit_id": "U1", "status": "available", "lat": 43.2, "lon": 76.9},
             {"unit_id": "U2", "status": "in_transit_to", "call_id": "C1", "lat": 43.2, "lon": 76.9},
             {"unit_id": "U3", "status": "stopped_at", "lat": 43.2, "lon": 76.9},
             {"unit_id": "U4", "status": "handover", "lat": 43.2, "lon": 76.9, "label": XSS}]
    props = _props(maps.unit_data(units, "en"))
    assert [p["group"] for p in props] == ["available", "on_call", "available", "at_hospital"]
    assert [p["colour"] for p in props] == [maps.UNIT_COLOURS[g] for g in ("available", "on_call", "available",
                                                                           "at_hospital")]
    assert "<img" not in props[3]["tooltip"]


def test_incidents_with_a_place_carry_severity_and_sla_breach(pack):
    base = {"type": "water_outage", "title": XSS, "district": "turksib", "lat": 43.34, "lon": 76.99,
            "status": "open", "acknowledged_at": None, "resolved_at": None}
    incidents = [
        {**base, "id": "INC-1", "severity": 3, "sla": {"ack_due": "2026-01-01T10:05:00Z",
                                                       "resolve_due": "2026-01-01T14:00:00Z"}},
        {**base, "id": "INC-2", "severity": 1, "sla": {"ack_due": "2026-01-01T11:00:00Z",
                                                       "resolve_due": "2026-01-04T10:00:00Z"}},
        {**base, "id": "INC-3", "lat": None, "lon": None, "severity": 2, "sla": {}},
    ]
    now = 1767261900.0  # 2026-01-01T10:05:00Z + 1 min
    props = _props(maps.incident_data(incidents, "ru", now=now + 60, pack=pack))
    assert [p["id"] for p in props] == ["INC-1", "INC-2"]
    assert [p["severity"] for p in props] == [3, 1] and props[0]["overdue"] and not props[1]["overdue"]
    assert props[0]["colour"] == maps.SEVERITY_COLOURS[3]
    assert "Перебои с водой" in props[0]["tooltip"] and "Турксибский район" in props[0]["tooltip"]
    assert "<img" not in props[0]["tooltip"]


def test_district_choropleth_has_every_district_with_names_values_and_scale_colours(pack):
    values = {"almaly": 270, "medeu": 40, "auezov": None}
    data = maps.district_data(values, lang="kk", scale=maps.AQI_SCALE, label="AQI", pack=pack)
    props = {p["id"]: p for p in _props(data)}
    assert set(props) == {d.id for d in pack.districts}
    assert props["almaly"]["colour"] == maps.AQI_COLOURS["very_unhealthy"]
    assert props["medeu"]["colour"] == maps.AQI_COLOURS["good"]
    assert props["auezov"]["colour"] == maps.NO_DATA and props["alatau"]["value"] is None
    assert props["almaly"]["tooltip"] == f"<b>{html.escape(pack.district('almaly').names.kk)}</b><br>AQI: 270"
    shapes = {f["geometry"]["type"] for f in data["features"]}
    assert shapes == {"MultiPolygon"}
    ring = data["features"][0]["geometry"]["coordinates"][0][0]
    assert ring[0] == ring[-1] and 76 < ring[0][0] < 78 and 42 < ring[0][1] < 44  # closed, lon first
    layer = maps.district_layer(values, lang="kk", id="d", scale=maps.AQI_SCALE, pack=pack)
    assert layer.style == {"variable": "scMaps.districtStyle"}
    assert layer.hideout == {"breaks": [51, 101, 151, 201, 301], "colours": list(maps.AQI_COLOURS.values()),
                             "none": maps.NO_DATA, "opacity": 0.55}


def test_scales_classify_like_the_browser_and_reject_bad_tables():
    scale = maps.count_scale(10, 25, 50)
    assert [scale.colour(v) for v in (0, 9.9, 10, 49, 50, 1e6)] == [
        scale.colours[0], scale.colours[0], scale.colours[1], scale.colours[2], scale.colours[3], scale.colours[3]]
    assert maps.RATIO_SCALE.colour(0.59) == maps.BAND_COLOURS["red"]
    assert maps.RATIO_SCALE.colour(0.9) == maps.BAND_COLOURS["green"]
    with pytest.raises(ValueError):
        maps.Scale(breaks=(1, 2), colours=("#000",))
    with pytest.raises(ValueError):
        maps.Scale(breaks=(2, 1), colours=("#000", "#111", "#222"))


def test_base_map_keeps_the_pack_tiles_and_bounds_and_fits_the_city(pack):
    layer = maps.district_layer({}, lang="en", id="d", scale=maps.AQI_SCALE, pack=pack)
    m = maps.base_map("m", "en", [layer], pack=pack)
    tiles = m.children[0]
    assert tiles.url == pack.map.tile_url and tiles.attribution == pack.map.attribution
    assert m.children[1] is layer
    b = pack.bounds
    assert m.maxBounds == [[b.south, b.west], [b.north, b.east]]
    assert "sc-map-dark" in m.className
    assert m.viewport["bounds"] == maps.city_bounds(pack)
    fixed = maps.base_map("m2", "en", [], zoom=14, center=(43.25, 76.95), dark=False, pack=pack)
    assert fixed.zoom == 14 and fixed.center == [43.25, 76.95] and "sc-map-dark" not in fixed.className
    assert getattr(fixed, "viewport", None) is None
    assert maps.view_of("almaly", pack)["transition"] == "flyToBounds"
