"""Air and traffic KPI snapshots through a real Redis: records written with the real Store, refresh,
``sc:kpi:air`` / ``sc:kpi:traffic`` read back; the traffic baseline built from the stream, cached and
reused, with the real Almaty score CSV."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from core import keys
from core.citypack import load_pack
from core.schemas import AirReading, TrafficFlow, TrafficScore
from core.units import Pollutant
from feeds import get_feed
from tests.conftest import shared_path
from workers.snapshots import BASELINE_INFO, SEGMENTS, read_snapshot, refresh

pytestmark = pytest.mark.redis

PACK = load_pack()
ALMATY = ZoneInfo("Asia/Almaty")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STATION = {s.id: s for s in PACK.stations}
DOC_FIELDS = {"domain", "version", "computed_at", "window_s", "values"}


def _reading(station: str, pollutant: Pollutant, value: float, at: datetime) -> AirReading:
    s = STATION[station]
    unit = "ppb" if pollutant in (Pollutant.NO2, Pollutant.SO2) else "ug/m3"
    return AirReading(station_id=station, parameter=pollutant, value=value, unit=unit, observed_at=at, lat=s.lat,
                      lon=s.lon, station_name=s.names.en)


def _cells(redis) -> dict:
    return orjson.loads(redis.hget(keys.kpi_baseline_key("traffic"), "cells"))


# ---------------------------------------------------------------------------------------
# air


def test_air_snapshot_round_trip(store, redis):
    forum = [21, None, 35, 49.2, 48.6, 53.7, 66.2, 69.2, 64.9, 50, 43, 34.9]  # newest first: NowCast 28.4
    records = [_reading("ALM-01", Pollutant.PM25, v, NOW - timedelta(hours=i)) for i, v in enumerate(forum) if v]
    records += [_reading("ALM-08", Pollutant.PM25, v, NOW - timedelta(hours=i)) for i, v in enumerate((40, 40.5, 39.5))]
    records += [_reading("ALM-09", Pollutant.NO2, 400.0, NOW), _reading("ALM-09", Pollutant.NO2, 90.0,
                                                                       NOW - timedelta(hours=1))]
    # an entry that reached the stream more than 24 h before now is not read, whatever its observed_at
    late_ms = int((NOW - timedelta(hours=24, minutes=11)).timestamp() * 1000)
    redis.xadd(keys.feed_stream_key("air"), {"r": _reading("ALM-05", Pollutant.PM25, 500.0, NOW).to_json_bytes()},
               id=f"{late_ms}-0")
    store.append("air", records)
    versions = refresh(store, PACK, NOW)
    assert versions["air"] == int(NOW.timestamp() * 1000)

    doc = read_snapshot(redis, "air")
    assert set(doc) == DOC_FIELDS and doc["domain"] == "air" and doc["computed_at"].startswith("2026-11-22T12:00")
    values = doc["values"]
    city, turksib = values["city"], values["turksib"]
    # ALM-08 PM2.5 NowCast 40.0 -> 112; ALM-09 NO2 400 ppb -> 158: the district and the city take the worst
    assert (turksib["air.aqi"], turksib["air.aqi_dominant"], turksib["air.aqi_station"]) == (158, "no2", "ALM-09")
    assert (city["air.aqi"], city["air.aqi_category"]) == (158, "unhealthy")
    assert values["almaly"]["air.aqi"] == 87
    # NO2 ПДКм.р. 0.2 mg/m³ = 106.29 ppb: 400 ppb is one exceedance, СИ 3.76
    assert city["air.exceedances_by_pollutant"] == {"no2": 1, "pm25": 0}
    assert city["air.si"] == pytest.approx(400 / (200 * 24.45 / 46.0055))
    stations = {s["station_id"]: s for s in city["air.stations"]}
    assert set(stations) == set(STATION)
    alm1 = stations["ALM-01"]
    assert {k: alm1[k] for k in ("name", "lat", "lon", "aqi", "category", "dominant", "pm25", "pm10", "last_seen",
                                 "offline", "stuck")} == {
        "name": "Post ALM-01, City centre", "lat": 43.252, "lon": 76.928, "aqi": 87, "category": "moderate",
        "dominant": "pm25", "pm25": 28.4, "pm10": None, "last_seen": "2026-11-22T12:00:00Z", "offline": False,
        "stuck": False}
    assert stations["ALM-05"]["offline"] and stations["ALM-05"]["last_seen"] is None  # the late entry was not read
    assert (city["air.stations_reporting"], city["air.stations_offline"]) == (3, 8)


def test_air_values_are_reused_within_the_minute_until_an_entry_arrives(store, redis):
    # a time ahead of the stream's entry ids (which are the server's arrival time)
    t0 = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    store.append("air", [_reading("ALM-01", Pollutant.PM10, 100.0, t0 - timedelta(hours=h)) for h in range(3)])
    refresh(store, PACK, t0)
    first = read_snapshot(redis, "air")["values"]["city"]
    assert first["air.stations_reporting"] == 1

    # an entry older than the snapshot does not trigger a recomputation within the same minute ...
    store.append("air", [_reading("ALM-02", Pollutant.PM10, 400.0, t0)])
    refresh(store, PACK, t0 + timedelta(seconds=10))
    doc = read_snapshot(redis, "air")
    assert doc["computed_at"].endswith(":10Z") and doc["values"]["city"] == first
    # ... an entry newer than it does
    late_ms = int((t0 + timedelta(seconds=15)).timestamp() * 1000)
    redis.xadd(keys.feed_stream_key("air"), {"r": _reading("ALM-03", Pollutant.PM10, 50.0, t0).to_json_bytes()},
               id=f"{late_ms}-0")
    refresh(store, PACK, t0 + timedelta(seconds=20))
    assert read_snapshot(redis, "air")["values"]["city"]["air.stations_reporting"] == 3
    # and the next minute always recomputes (offline flags move with the clock)
    refresh(store, PACK, t0 + timedelta(hours=2, minutes=1))
    assert read_snapshot(redis, "air")["values"]["city"]["air.stations_reporting"] == 0


# ---------------------------------------------------------------------------------------
# traffic

THURSDAY = datetime(2026, 11, 19, 8, 5, tzinfo=ALMATY)  # local, the time of the snapshot


def _score(provider: str, value: float, local: datetime) -> TrafficScore:
    return TrafficScore(provider=provider, score=value, observed_at=local.astimezone(UTC))


def _segment(road_index: int, speed: float, at: datetime, **fields: object) -> TrafficFlow:
    road = PACK.roads[road_index]
    lat, lon = road.point_at(0.5)
    return TrafficFlow(segment_id=road.id, observed_at=at.astimezone(UTC), lat=lat, lon=lon, speed_kmh=speed,
                       free_flow_kmh=road.speed_kmh, **fields)


def test_traffic_snapshot_round_trip_with_baseline_and_segments(store, redis):
    day = timedelta(days=1)
    history = [_score("yandex", 4, THURSDAY - 3 * day), _score("yandex", 6, THURSDAY - 2 * day),
               _score("yandex", 5, THURSDAY - day + timedelta(minutes=5)),  # Mon, Tue, Wed 08:05-08:10
               _score("2gis", 3, THURSDAY - day)]  # one day only: no baseline for 2GIS yet
    today = [_score("yandex", 9, THURSDAY - timedelta(minutes=4)),  # today: never in the baseline
             _score("yandex", 8, THURSDAY - timedelta(minutes=2)), _score("2gis", 7, THURSDAY - timedelta(minutes=1))]
    road0, road1, road2 = PACK.roads[:3]
    segments = [_segment(0, road0.speed_kmh * 0.25, THURSDAY - timedelta(minutes=3)),  # red, congested
                _segment(1, road1.speed_kmh * 0.75, THURSDAY - timedelta(minutes=3)),  # yellow
                _segment(2, road2.speed_kmh * 0.1, THURSDAY - timedelta(minutes=20))]  # stale
    store.append("traffic", history + today + segments)
    refresh(store, PACK, THURSDAY.astimezone(UTC))

    doc = read_snapshot(redis, "traffic")
    assert set(doc) == DOC_FIELDS and doc["domain"] == "traffic"
    city = doc["values"]["city"]
    assert city["traffic.score"] == {"2gis": 7.0, "yandex": 8.0}
    assert city["traffic.score_baseline"] == {"2gis": None, "yandex": 5.0}  # median of 4, 6, 5
    assert city["traffic.score_vs_baseline"] == {"2gis": None, "yandex": 3.0}
    assert city["traffic.segments_congested"] == 1
    assert city["traffic.speed_ratio_median"] == pytest.approx(0.5)  # the two fresh ones: 0.25 and 0.75
    assert city["traffic.speed_bands"] == pytest.approx(
        {"red": 50.0, "orange": 0.0, "yellow": 50.0, "light_green": 0.0, "green": 0.0})
    details = {s["segment_id"]: s for s in city[SEGMENTS]}
    assert details[road0.id] | {"geometry": None} == {
        "segment_id": road0.id, "name": road0.names.en, "ratio": pytest.approx(0.25), "band": "red",
        "speed_kmh": pytest.approx(road0.speed_kmh * 0.25), "free_flow_kmh": road0.speed_kmh, "congested": True,
        "observed_at": (THURSDAY - timedelta(minutes=3)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "stale": False, "geometry": None}
    assert details[road0.id]["geometry"] == [list(p) for p in road0.line]  # from the pack when the record has none
    assert (details[road1.id]["band"], details[road1.id]["congested"]) == ("yellow", False)
    assert (details[road2.id]["stale"], details[road2.id]["band"]) == (True, "red")
    assert city[BASELINE_INFO] | {"built_at": None} == {"built_at": None, "days": 3, "samples": 4, "cells": 1,
                                                        "min_days": 2}


def test_traffic_without_history_says_no_baseline(store, redis):
    store.append("traffic", [_score("yandex", 6, THURSDAY - timedelta(minutes=1))])
    refresh(store, PACK, THURSDAY.astimezone(UTC))
    city = read_snapshot(redis, "traffic")["values"]["city"]
    assert (city["traffic.score"], city["traffic.score_baseline"], city["traffic.score_vs_baseline"]) == (
        {"yandex": 6.0}, {"yandex": None}, {"yandex": None})
    assert (city[SEGMENTS], city["traffic.segments_congested"], city["traffic.speed_bands"]) == ([], 0, None)


SCORES_CSV = "almaty/traffic_scores_2026-10-01_07.csv"
DAY_TYPES = ("weekday", "weekday", "weekday", "weekday", "weekday", "saturday", "sunday")


def _independent_baseline(path) -> dict[tuple[str, str, int], float]:
    """Median per (provider, day type, local 15-min slot) over cells with scores from ≥ 2 local days."""
    values: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    days: dict[tuple[str, str, int], set] = defaultdict(set)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            local = datetime.fromisoformat(row["ts_almaty"])
            for provider, column in (("yandex", "yandex_score"), ("2gis", "dgis_score")):
                if row[column]:
                    cell = (provider, DAY_TYPES[local.weekday()], (local.hour * 60 + local.minute) // 15)
                    values[cell].append(float(row[column]))
                    days[cell].add(local.date())
    return {cell: statistics.median(v) for cell, v in values.items() if len(days[cell]) >= 2}


@pytest.mark.shared_data
def test_real_almaty_baseline_from_the_stream_is_cached_and_reused(store, redis):
    path = shared_path(SCORES_CSV)
    records = get_feed("traffic").format("score-csv").parse(path.read_bytes()).records
    for i in range(0, len(records), 1000):
        assert store.append("traffic", records[i:i + 1000]) == []
    now = datetime(2026, 10, 8, 8, 5, tzinfo=ALMATY)  # the Thursday after the week of data
    store.append("traffic", [_score("yandex", 9, now - timedelta(minutes=1)), _score("2gis", 8, now)])
    refresh(store, PACK, now.astimezone(UTC))

    expected = _independent_baseline(path)
    cached = _cells(redis)
    assert {(p, d, s): m for p, d, s, m, _, _ in cached["cells"]} == pytest.approx(expected)
    assert {d for _, d, _ in expected} == {"weekday"}  # one Saturday and one Sunday: no weekend baseline
    slot = ("weekday", (8 * 60 + 5) // 15)
    city = read_snapshot(redis, "traffic")["values"]["city"]
    assert city["traffic.score_baseline"] == pytest.approx(
        {"yandex": expected[("yandex", *slot)], "2gis": expected[("2gis", *slot)]})
    assert city["traffic.score_vs_baseline"]["yandex"] == pytest.approx(9 - expected[("yandex", *slot)])
    assert city[BASELINE_INFO]["days"] == 7 and city[BASELINE_INFO]["samples"] == len(records)

    # within the hour the cached baseline is reused: a new record in the stream is not read yet
    late = _score("yandex", 10, datetime(2026, 10, 7, 8, 6, tzinfo=ALMATY))
    store.append("traffic", [late])
    n_before = next(n for p, d, s, _, _, n in cached["cells"] if (p, d, s) == ("yandex", *slot))
    refresh(store, PACK, (now + timedelta(minutes=50)).astimezone(UTC))
    assert _cells(redis)["built_at"] == cached["built_at"]
    assert read_snapshot(redis, "traffic")["values"]["city"][BASELINE_INFO] == city[BASELINE_INFO]

    # after an hour it is rebuilt, reading only what arrived since (the history is in the cache)
    redis.xtrim(keys.feed_stream_key("traffic"), maxlen=1)  # the stream forgot the week: the cache did not
    refresh(store, PACK, (now + timedelta(minutes=61)).astimezone(UTC))
    rebuilt = _cells(redis)
    assert rebuilt["built_at"] != cached["built_at"] and rebuilt["through"] > cached["through"]
    cells = {(p, d, s): (m, n) for p, d, s, m, _, n in rebuilt["cells"]}
    assert cells[("yandex", *slot)][1] == n_before + 1
    assert len(cells) == len(cached["cells"])
    # on a Saturday there is no baseline yet (one Saturday of history)
    saturday = datetime(2026, 10, 10, 12, 0, tzinfo=ALMATY)
    store.append("traffic", [_score("yandex", 4, saturday - timedelta(minutes=1))])
    refresh(store, PACK, saturday.astimezone(UTC))
    assert read_snapshot(redis, "traffic")["values"]["city"]["traffic.score_baseline"] == {"yandex": None}


def test_a_failing_domain_keeps_its_previous_snapshot_and_the_others_are_written(store, redis, caplog):
    store.append("air", [_reading("ALM-01", Pollutant.PM10, 100.0, NOW)])
    refresh(store, PACK, NOW)
    before = read_snapshot(redis, "air")
    # an entry no ingest would write (records are checked on ingest): the air computation raises
    redis.xadd(keys.feed_stream_key("air"), {"r": orjson.dumps({
        "kind": "readings", "station_id": "ALM-02", "parameter": "radon", "value": 1.0, "unit": "ug/m3",
        "observed_at": NOW.isoformat(), "lat": 43.2, "lon": 76.9})})
    later = NOW + timedelta(minutes=1)
    versions = refresh(store, PACK, later)
    assert set(versions) == {"ambulance", "appeals", "traffic"}
    assert read_snapshot(redis, "air") == before
    assert read_snapshot(redis, "traffic")["computed_at"].startswith("2026-11-22T12:01")
    assert "KPI snapshot of air failed" in caplog.text
