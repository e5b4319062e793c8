"""The topic pages' pure builders (``dashboards/topic.py``): tiles, history figures and their live
extends, replay frames, tables, catalogs — on small fixture documents, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dash import html

from core.citypack import load_pack
from dashboards import topic
from dashboards.i18n import LANGS, catalog, number, t

ZONE = ZoneInfo("Asia/Almaty")
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture(scope="module")
def pack():
    return load_pack(None)


def texts(component) -> list[str]:
    """Every text child of a component tree."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, str | int | float):
            out.append(str(node))
        elif isinstance(node, list | tuple):
            for child in node:
                walk(child)
        elif node is not None and hasattr(node, "children"):
            walk(node.children)

    walk(component)
    return out


def find(component, id_):
    if getattr(component, "id", None) == id_:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float) and (hit := find(child, id_)) is not None:
            return hit
    return None


def entry(minute: int, values: dict) -> dict:
    return {"version": NOW_MS - minute * 60_000 + 1234, "values": values}


# --- catalogs and definitions ------------------------------------------------------------------


def test_every_topic_label_has_kk_ru_en():
    keys = [k for k in catalog() if k.startswith("topics.")]
    assert len(keys) > 60
    for key in keys:
        assert all(catalog()[key][lang] for lang in LANGS)


def test_kpi_names_and_units_come_from_the_definitions():
    from workers.kpi import air

    row = next(r for r in air.KPIS if r.key == "air.si")
    for lang in LANGS:
        assert topic.kpi_name("air.si", lang) == row.names[lang]
    assert topic.fmt(4.699, "×ПДК", "ru") == "4,7 × ПДК"
    assert topic.fmt(4.699, "×ПДК", "kk") == "4,7 × ШЖК"
    assert topic.fmt(0.7233, "ratio", "en") == "72 %"
    assert topic.fmt(None, "%", "en") == "—"
    assert topic.fmt(12345, "count", "ru") == number(12345, "ru")


# --- tiles --------------------------------------------------------------------------------------


def test_a_tile_shows_value_target_direction_and_age():
    tile = topic.tile("air", "air.aqi", 163, "ru", age_ts=NOW.timestamp() - 180, now=NOW.timestamp())
    shown = texts(tile)
    assert "163" in shown and "AQI" in shown
    assert t("wall.target_le", "ru", v="100 AQI") in shown
    assert t("topics.good.down", "ru") in shown
    assert t("age.minutes", "ru", n=3) in shown
    value = find(tile, "air-v-aqi")
    assert value.className == "value bad"  # 163 > target 100
    age = next(c for c in tile.children[-1].children if getattr(c, "className", "") == "sc-age")
    assert getattr(age, "data-ts") == str(int((NOW.timestamp() - 180) * 1000))


def test_a_tile_meeting_its_target_is_ok_and_a_missing_value_is_a_dash():
    ok = topic.tile("ambulance", "ambulance.within_norm_pct", 93.44, "en")
    assert find(ok, "ambulance-v-within_norm_pct").children == "93.4"
    assert find(ok, "ambulance-v-within_norm_pct").className == "value ok"
    missing = topic.tile("ambulance", "ambulance.within_norm_pct", None, "en")
    assert find(missing, "ambulance-v-within_norm_pct").children == "—"
    assert find(missing, "ambulance-v-within_norm_pct").className == "value"


def test_a_per_provider_kpi_lists_the_providers_and_a_replay_tile_shows_its_minute():
    tile = topic.tile("traffic", "traffic.score", {"yandex": 4.0, "2gis": 3.0}, "en", replay_at="10:42")
    assert find(tile, "traffic-v-score").children == "3.0 / 4.0"
    assert "2gis / yandex" in texts(tile)
    assert t("topics.at", "en", t="10:42") in texts(tile)
    assert "replay" in tile.className and "sc-age" not in str(tile)


def test_stale_data_hatches_the_tile():
    topics = {"kpi:air": topic_doc({"computed_at": "2026-03-02T07:00:00Z"}),
              "health": topic_doc({"feeds": {"air": {"status": "stale", "last_event_at": "2026-03-02T06:00:00Z",
                                                     "expected_cadence_s": 3600}}})}
    ts, stale, after = topic.freshness(topics, "air", NOW.timestamp())
    assert stale and after == 7200 and ts == datetime(2026, 3, 2, 6, tzinfo=UTC).timestamp()
    tile = topic.tile("air", "air.aqi", 50, "en", age_ts=ts, stale=stale)
    assert "stale" in tile.className.split()


def topic_doc(doc):
    from dashboards.live import Topic

    return Topic(version=1, doc=doc, loaded_at=0)


# --- history charts -----------------------------------------------------------------------------

HISTORY = [entry(m, {"city": {"ambulance.within_norm_pct": v, "ambulance.response_p50": 7.0 + m / 10},
                     "almaly": {"ambulance.within_norm_pct": v - 10}})
           for m, v in ((3, 95.0), (2, 91.0), (1, 88.5))]


def test_history_figure_has_the_kpi_the_target_line_and_the_range_in_city_time():
    fig = topic.history_figure(("ambulance.within_norm_pct",), HISTORY, "city", "ru", end_ms=NOW_MS, hours=3,
                               zone=ZONE)
    line, target = fig["data"]
    assert line["name"] == topic.kpi_name("ambulance.within_norm_pct", "ru")
    assert line["y"] == [95.0, 91.0, 88.5]
    assert line["x"][0] == "2026-03-02T12:57:00"  # 07:57 UTC in Almaty (UTC+5), the minute of the entry
    assert target["y"] == [90.0, 90.0] and target["line"]["dash"] == "dash" and target["name"] == t("target", "ru")
    assert fig["layout"]["xaxis"]["range"] == ["2026-03-02T10:00:00", "2026-03-02T13:00:00"]
    assert fig["layout"]["title"]["text"].startswith(topic.kpi_name("ambulance.within_norm_pct", "ru"))
    assert fig["layout"]["template"] == "plotly_dark" and fig["layout"]["font"]["size"] >= 14
    district = topic.history_figure(("ambulance.within_norm_pct",), HISTORY, "almaly", "ru", end_ms=NOW_MS,
                                    hours=3, zone=ZONE)
    assert district["data"][0]["y"] == [85.0, 81.0, 78.5]


def test_a_per_provider_kpi_gives_a_line_per_provider_and_gaps_stay_gaps():
    entries = [entry(2, {"city": {"traffic.score": {"yandex": 3.0, "2gis": 2.0}}}),
               entry(1, {"city": {"traffic.score": {"yandex": 4.0}}}),
               entry(0, {"city": {}})]
    fig = topic.history_figure(("traffic.score",), entries, "city", "en", end_ms=NOW_MS, hours=1, zone=ZONE)
    assert [d["name"] for d in fig["data"]] == ["2gis", "yandex"]
    assert fig["data"][0]["y"] == [2.0, None, None] and fig["data"][1]["y"] == [3.0, 4.0, None]
    ratio = topic.history_figure(("traffic.speed_ratio_median",), [entry(0, {"city": {"traffic.speed_ratio_median":
                                                                                     0.72}})],
                                 "city", "en", end_ms=NOW_MS, hours=1, zone=ZONE)
    assert ratio["data"][0]["y"] == [72.0]  # ratios are drawn as %


def test_a_new_minute_extends_the_chart_with_a_patch():
    traces = topic.trace_names(("ambulance.response_p50", "ambulance.response_p90"), HISTORY, "city")
    new = {"version": NOW_MS + 61_000, "values": {"city": {"ambulance.response_p50": 8.5,
                                                           "ambulance.response_p90": 14.0}}}
    patch = topic.extend_patch(("ambulance.response_p50", "ambulance.response_p90"), traces, new, "city", hours=1,
                               zone=ZONE)
    ops = patch.to_plotly_json()["operations"]
    appended = [(op["location"], op["params"]["value"]) for op in ops if op["operation"] == "Append"]
    assert (["data", 0, "y"], 8.5) in appended and (["data", 1, "y"], 14.0) in appended
    assert (["data", 0, "x"], "2026-03-02T13:01:00") in appended
    ranges = [op["params"]["value"] for op in ops if op["location"] == ["layout", "xaxis", "range"]]
    assert ranges == [["2026-03-02T12:01:00", "2026-03-02T13:01:00"]]


# --- replay -------------------------------------------------------------------------------------


def test_replay_frames_are_the_minutes_with_history_and_the_slider_picks_one():
    frames = topic.frames_of(HISTORY)
    assert frames == [NOW_MS - 180_000, NOW_MS - 120_000, NOW_MS - 60_000]
    assert topic.frame_at(frames, 1) == NOW_MS - 120_000
    assert topic.frame_at(frames, 99) == frames[-1] and topic.frame_at(frames, -5) == frames[0]
    assert topic.frame_at(frames, None) == frames[-1]
    assert topic.frame_at([], 0) is None
    assert topic.step(0, 1, 2) == (1, False)
    assert topic.step(1, 5, 2) == (2, True)
    marks = topic.slider_marks(frames, ZONE, "en")
    assert marks[0] == "12:57" and marks[2] == "12:59"


def test_the_districts_of_a_minute_feed_the_choropleth():
    assert topic.district_values(HISTORY[0], "ambulance.within_norm_pct") == {"almaly": 85.0}
    assert topic.scope_values(HISTORY[2], "city")["ambulance.within_norm_pct"] == 88.5


# --- tables -------------------------------------------------------------------------------------


def test_table_cells_are_text_never_html():
    evil = "<img src=x onerror=alert(1)>"
    grid = topic.table([("Segment", "name"), ("Ratio", "num")], [[evil, "60 %"]], empty="none")
    cell = grid.children[1].children[0].children[0]
    assert cell.children == evil  # a text child: React escapes it
    assert topic.table([("a", "")], [], empty="nothing").children == "nothing"


def test_worst_segments_slowest_first_stale_last_and_by_district(pack):
    segs = [
        {"segment_id": "A", "name": "A", "ratio": 0.8, "stale": False, "geometry": [[76.95, 43.25], [76.951, 43.251]]},
        {"segment_id": "B", "name": "B", "ratio": 0.4, "stale": False, "geometry": [[76.95, 43.25], [76.951, 43.251]]},
        {"segment_id": "C", "name": "C", "ratio": 0.1, "stale": True, "geometry": [[76.95, 43.25], [76.951, 43.251]]},
    ]
    rows = topic.worst_segments(segs, pack=pack)
    assert [r["segment_id"] for r in rows] == ["B", "A", "C"]
    district = rows[0]["district"]
    assert district is not None
    assert topic.worst_segments(segs, district="nowhere", pack=pack) == []
    assert len(topic.worst_segments(segs, district=district, pack=pack)) == 3


def test_district_segment_kpis_use_the_traffic_formulas():
    stamp = (NOW - timedelta(minutes=2)).isoformat()
    segs = [{"segment_id": i, "speed_kmh": s, "free_flow_kmh": 50.0, "observed_at": stamp, "congested": False}
            for i, s in (("a", 20.0), ("b", 40.0), ("c", 45.0))]
    values = topic.traffic_values(segs, NOW)
    assert values["traffic.segments_congested"] == 1  # 20/50 < 0.5
    assert values["traffic.speed_ratio_median"] == pytest.approx(0.8)


def test_waiting_calls_and_slowest_responses_carry_no_patient_data(pack):
    now = NOW.timestamp()
    calls = [
        {"call_id": "EMS-1", "category": 1, "district": "almaly", "lat": 43.25, "lon": 76.93, "complaint": "cardiac",
         "times": {"call_received": (NOW - timedelta(minutes=6)).isoformat()}},
        {"call_id": "EMS-2", "category": 2, "district": "medeu", "complaint": "fall", "unit_id": "AMB-1",
         "times": {"call_received": (NOW - timedelta(minutes=40)).isoformat(),
                   "on_scene": (NOW - timedelta(minutes=10)).isoformat()}},
        {"call_id": "EMS-3", "category": 3, "district": "almaly", "unit_id": "AMB-2",
         "times": {"call_received": (NOW - timedelta(minutes=50)).isoformat(),
                   "on_scene": (NOW - timedelta(minutes=45)).isoformat()}},
    ]
    waiting = topic.waiting_calls(calls, now)
    assert len(waiting) == 1 and waiting[0]["category"] == 1 and waiting[0]["waiting_min"] == pytest.approx(6)
    assert "complaint" not in waiting[0] and "call_id" not in waiting[0]
    assert topic.waiting_calls(calls, now, district="medeu") == []
    slow = topic.slow_responses(calls, pack.norms, now)
    assert [r["category"] for r in slow] == [2, 3]  # 30 min against 15 first
    assert slow[0]["response_min"] == pytest.approx(30) and slow[0]["over_min"] == pytest.approx(30 - 15)
    assert all("complaint" not in r for r in slow)


def test_station_rows_worst_first_with_limit_multiple_and_flags():
    stations = [
        {"station_id": "S1", "names": {"en": "Centre", "ru": "Центр", "kk": "Орталық"}, "aqi": 80,
         "category": "moderate", "dominant": "pm25", "limit_multiple": {"no2": 1.4, "pm25": 0.9}, "district": "almaly"},
        {"station_id": "S2", "name": "<b>Hill</b>", "aqi": 190, "category": "unhealthy", "dominant": "pm10",
         "limit_multiple": {}, "stuck": True, "stuck_pollutants": ["co"], "district": "medeu"},
        {"station_id": "S3", "name": "Off", "aqi": None, "offline": True, "district": "almaly"},
    ]
    rows = topic.station_rows(stations, "kk")
    assert [r["station_id"] for r in rows] == ["S2", "S1", "S3"]
    assert rows[1]["name"] == "Орталық" and rows[1]["multiple"] == 1.4 and rows[1]["multiple_pollutant"] == "no2"
    assert rows[0]["stuck"] and rows[0]["stuck_pollutants"] == ["co"] and rows[2]["offline"]
    assert [r["station_id"] for r in topic.station_rows(stations, "en", district="almaly")] == ["S1", "S3"]
    assert topic.pollutant("pm25") == "PM2.5"


def test_appeal_categories_and_channels_by_the_appeals_rules(pack):
    def appeal(i, category, status, hours_ago, channel, closed_h=None, district="almaly"):
        return {"request_id": f"A{i}", "category": category, "status": status, "channel": channel,
                "district": district, "requested_at": (NOW - timedelta(hours=hours_ago)).isoformat(),
                "closed_at": None if closed_h is None else (NOW - timedelta(hours=closed_h)).isoformat()}

    appeals = [appeal(1, "roads", "open", 1, "phone"), appeal(2, "roads", "open", 1000, "web"),
               appeal(3, "roads", "closed", 5, "phone", closed_h=2), appeal(4, "heating", "open", 2, "phone",
                                                                           district="medeu")]
    cats = topic.appeal_categories(appeals, pack.norms, NOW)
    roads = next(c for c in cats if c["category"] == "roads")
    assert roads["open"] == 2 and roads["overdue"] == 1 and roads["median_h"] == pytest.approx(3.0)
    assert roads["requested"] == 2  # the 1000-h-old one is outside 24 h
    assert cats[0]["category"] == "roads"  # overdue first
    assert [c["category"] for c in topic.appeal_categories(appeals, pack.norms, NOW, district="medeu")] == ["heating"]
    chans = topic.appeal_channels(appeals, NOW)
    assert chans[0] == {"channel": "phone", "requested": 3, "open": 2}
    assert topic.channel_label("phone", "ru") == t("topics.channel.phone", "ru")
    assert topic.channel_label("<pigeon>", "ru") == "<pigeon>"
    assert topic.category_label("roads", "kk") == t("wall.category.roads", "kk")


def test_district_options_list_every_district_by_name(pack):
    from dashboards.i18n import names

    for lang in LANGS:
        options = topic.district_options(lang, pack)
        assert options[0] == {"label": t("district.all", lang), "value": "city"}
        assert {o["value"] for o in options[1:]} == {d.id for d in pack.districts}
        assert {o["label"] for o in options[1:]} == {names(d.names.as_dict(), lang) for d in pack.districts}
    assert topic.district_name("almaly", "ru", pack) == names(pack.district("almaly").names.as_dict(), "ru")


def test_tiles_follow_the_spec_order():
    from dashboards import maps

    spec = topic.TopicSpec(key="appeals", tiles=("appeals.open", "appeals.overdue"), charts=(("appeals.open",),),
                           choro_kpi="appeals.overdue", scale=maps.count_scale(1, 5),
                           choro_label="topics.choro.appeals")
    out = topic.tiles(spec, {"appeals.open": 209, "appeals.overdue": 3}, "en")
    assert [getattr(o, "data-kpi") for o in out] == ["appeals.open", "appeals.overdue"]
    assert isinstance(out[0], html.Div) and find(out[1], "appeals-v-overdue").children == "3"
