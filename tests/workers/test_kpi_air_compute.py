"""Tests of the air KPI snapshot computation (``workers.kpi.air.compute``): hand-computed NowCast,
AQI, district worst station, СИ/НП, daily multiples, offline and stuck flags; and the real Almaty
Kazhydromet data against a direct pandas count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from core.citypack import load_pack
from feeds.air import parse_kgmt_csv
from tests.conftest import shared_path
from workers.kpi import air
from workers.kpi.air import KPIS, STATIONS, compute

PACK = load_pack()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
#: Pack stations: ALM-01 (almaly), ALM-08 and ALM-09 (both turksib); positions from the pack.
POS = {s.id: (s.lat, s.lon) for s in PACK.stations}
UNIT = {"pm25": "ug/m3", "pm10": "ug/m3", "no2": "ppb", "so2": "ppb", "co": "ppm", "o3": "ppm"}


def reading(station: str, parameter: str, value: float, at: datetime, averaging_s: int = 3600,
            **fields: object) -> dict[str, object]:
    lat, lon = POS.get(station, (43.25, 76.95))
    return {"kind": "readings", "station_id": station, "parameter": parameter, "value": value,
            "unit": UNIT[parameter], "observed_at": at.isoformat(), "averaging_s": averaging_s, "lat": lat,
            "lon": lon, **fields}


def hourly(station: str, parameter: str, newest_first: list[float | None], now: datetime = NOW) -> list[dict]:
    """One hourly reading per value, the first ending at ``now`` (hour 1), None = missing hour."""
    return [reading(station, parameter, v, now - timedelta(hours=i)) for i, v in enumerate(newest_first)
            if v is not None]


def station(result: dict, station_id: str) -> dict:
    return next(s for s in result["city"][STATIONS] if s["station_id"] == station_id)


# ---------------------------------------------------------------------------------------
# the table and empty input


def test_kpi_table_is_complete_and_matches_compute():
    keys = [k.key for k in KPIS]
    assert len(keys) == len(set(keys))
    assert all(k.domain == "air" and set(k.names) == {"en", "ru", "kk"} and all(k.names.values()) for k in KPIS)
    out = compute(hourly("ALM-01", "pm25", [10.0, 11.0]), now=NOW, pack=PACK)
    assert set(out["city"]) == set(keys) | {STATIONS}
    assert set(out["almaly"]) == set(keys) | {STATIONS}
    aqi = next(k for k in KPIS if k.key == "air.aqi")
    assert (aqi.meets(100), aqi.meets(101)) == (True, False)


def test_no_readings_lists_the_pack_stations_offline():
    out = compute([], now=NOW, pack=PACK)
    city = out["city"]
    assert (city["air.aqi"], city["air.si"], city["air.np"], city["air.pollution_level"]) == (None, None, None, None)
    assert (city["air.stations_reporting"], city["air.stations_offline"], city["air.exceedances"]) == (0, 11, 0)
    assert all(s["offline"] and s["last_seen"] is None and s["aqi"] is None for s in city[STATIONS])
    assert set(out) == {"city"} | {s.district_id for s in PACK.stations}
    assert compute([], now=NOW) == {"city": compute([], now=NOW)["city"]}  # no pack: no station at all
    assert compute([], now=NOW)["city"][STATIONS] == []


# ---------------------------------------------------------------------------------------
# NowCast and AQI


def test_twelve_hourly_pm25_values_give_the_nowcast_and_aqi():
    # The AirNow forum example (DOMAIN 1.3), newest first, hour 2 missing. Weight: 21 / 69.2 = 0.30,
    # floored to 0.5. NowCast = Σ cᵢ·0.5^i / Σ 0.5^i over the present hours i = 0, 2, 3, ..., 11
    # (the missing hour keeps its place in the exponents): 42.60083 / 1.49951 = 28.4098 -> 28.4.
    values = [21, None, 35, 49.2, 48.6, 53.7, 66.2, 69.2, 64.9, 50, 43, 34.9]
    present = [(i, c) for i, c in enumerate(values) if c is not None]
    by_hand = sum(c * 0.5**i for i, c in present) / sum(0.5**i for i, _ in present)
    assert by_hand == pytest.approx(28.4098, abs=1e-4)
    out = compute(hourly("ALM-01", "pm25", values), now=NOW, pack=PACK)
    st = station(out, "ALM-01")
    # AQI = (100 − 51) / (35.4 − 9.1) · (28.4 − 9.1) + 51 = 86.958 -> 87 (2024 table; DOMAIN 1.5)
    assert (st["pm25"], st["aqi"], st["category"], st["dominant"]) == (28.4, 87, "moderate", "pm25")
    assert (out["almaly"]["air.aqi"], out["almaly"]["air.aqi_dominant"], out["almaly"]["air.aqi_station"]) == (
        87, "pm25", "ALM-01")


def test_hourly_means_of_20_minute_readings_and_the_latest_complete_hour():
    now = NOW + timedelta(minutes=10)  # hour 1 is 11:00-12:00; the 12:00-12:20 reading is not in yet
    readings = []
    for hour in range(3):  # 10, 20, 30 in each of the last three hours -> hourly means 20
        end = NOW - timedelta(hours=hour)
        readings += [reading("ALM-01", "pm25", v, end - timedelta(minutes=m), averaging_s=1200)
                     for v, m in ((10.0, 40), (20.0, 20), (30.0, 0))]
    readings.append(reading("ALM-01", "pm25", 500.0, NOW + timedelta(minutes=5), averaging_s=300))  # partial hour
    st = station(compute(readings, now=now, pack=PACK), "ALM-01")
    # NowCast of 20, 20, 20 is 20.0; AQI = 49 / 26.3 · (20.0 − 9.1) + 51 = 71.31 -> 71
    assert (st["pm25"], st["aqi"]) == (20.0, 71)


def test_nowcast_needs_two_of_the_three_latest_hours():
    assert station(compute(hourly("ALM-01", "pm10", [None, None, 80, 80, 80]), now=NOW, pack=PACK),
                   "ALM-01")["aqi"] is None
    # PM10 NowCast 80 -> (100 − 51) / (154 − 55) · (80 − 55) + 51 = 63.37 -> 63
    st = station(compute(hourly("ALM-01", "pm10", [None, 80, 80]), now=NOW, pack=PACK), "ALM-01")
    assert (st["pm10"], st["aqi"]) == (80.0, 63)


def test_eight_hour_co_needs_six_of_eight_hours_and_one_hour_no2_tolerates_one_late_hour():
    co = [5.0, 5.2, 4.8, 5.0, 5.1, 4.9, 5.0, None]  # 7 of 8, mean 5.0
    no2 = [None, 120.0]  # hour 1 late: hour 2 is used
    st = station(compute(hourly("ALM-01", "co", co) + hourly("ALM-01", "no2", no2), now=NOW, pack=PACK), "ALM-01")
    # CO 8-h 5.0 ppm: 49 / 4.9 · (5.0 − 4.5) + 51 = 56; NO2 1-h 120 ppb: 49 / 259 · 19 + 101 = 104.59 -> 105
    assert (st["aqi"], st["dominant"]) == (105, "no2")
    only_co = station(compute(hourly("ALM-01", "co", co), now=NOW, pack=PACK), "ALM-01")
    assert (only_co["aqi"], only_co["dominant"]) == (56, "co")
    five = [5.0, None, 5.0, None, 5.0, None, 5.0, 5.0]
    assert station(compute(hourly("ALM-01", "co", five), now=NOW, pack=PACK), "ALM-01")["aqi"] is None


def test_district_and_city_take_the_worst_station():
    readings = hourly("ALM-08", "pm25", [40.0, 40.5, 39.5])  # NowCast 40.0 -> 49 / 19.9 · 4.5 + 101 = 112.08
    readings += hourly("ALM-09", "pm25", [5.0, 6.0, 7.0])  # NowCast ~5.3 -> 29
    readings += hourly("ALM-09", "no2", [400.0])  # 49 / 288 · 39 + 151 = 157.64 -> 158
    readings += hourly("ALM-01", "pm25", [20.0, 21.0, 22.0])
    out = compute(readings, now=NOW, pack=PACK)
    assert (station(out, "ALM-08")["aqi"], station(out, "ALM-09")["aqi"]) == (112, 158)
    turksib = out["turksib"]
    # the worst of the two, not their mean (135)
    assert (turksib["air.aqi"], turksib["air.aqi_dominant"], turksib["air.aqi_station"],
            turksib["air.aqi_category"]) == (158, "no2", "ALM-09", "unhealthy")
    assert [s["station_id"] for s in turksib[STATIONS]] == ["ALM-08", "ALM-09"]
    assert out["city"]["air.aqi"] == 158 and out["almaly"]["air.aqi"] < 100
    assert out["city"]["air.stations_by_category"] == {"good": 0, "moderate": 1, "usg": 1, "unhealthy": 1,
                                                       "very_unhealthy": 0, "hazardous": 0}


# ---------------------------------------------------------------------------------------
# Kazakh limits


def _every_20_min(station_id: str, parameter: str, values: list[float]) -> list[dict]:
    return [reading(station_id, parameter, v, NOW - timedelta(minutes=20 * i), averaging_s=1200)
            for i, v in enumerate(values)]


def test_standard_index_repeatability_level_and_exceedances():
    # PM10 ПДКм.р. 0.3 mg/m³ = 300 µg/m³. Post A: 310 and 600 above (2 of 4, 50 %), СИ 600/300 = 2.0;
    # post B: 320 above (1 of 3, 33.3 %). NO2 ПДКм.р. 0.2 mg/m³ = 200·24.45/46.0055 = 106.29 ppb: none above.
    readings = _every_20_min("ALM-08", "pm10", [100.0, 310.0, 600.0, 250.0])
    readings += _every_20_min("ALM-09", "pm10", [200.0, 210.0, 320.0])
    readings += _every_20_min("ALM-08", "no2", [40.0, 50.0, 60.0, 45.0])
    city = compute(readings, now=NOW, pack=PACK)["city"]
    assert city["air.si_by_pollutant"] == pytest.approx({"pm10": 2.0, "no2": 60 / (200 * 24.45 / 46.0055)})
    assert city["air.np_by_pollutant"] == pytest.approx({"pm10": 50.0, "no2": 0.0})
    assert (city["air.si"], city["air.np"]) == (pytest.approx(2.0), pytest.approx(50.0))
    # СИ 2 alone is level II (elevated), НП 50 % is level IV (very high): the higher wins
    assert city["air.pollution_level"] == 4
    assert (city["air.exceedances"], city["air.exceedances_by_pollutant"]) == (3, {"no2": 0, "pm10": 3})
    details = {s["station_id"]: s for s in city[STATIONS]}
    assert details["ALM-08"]["exceedances"] == {"pm10": 2, "no2": 0}
    assert details["ALM-09"]["exceedances"] == {"pm10": 1}
    assert details["ALM-08"]["limit_multiple"]["pm10"] == pytest.approx(2.0)
    one_post = compute(_every_20_min("ALM-09", "pm10", [200.0, 210.0, 320.0]), now=NOW, pack=PACK)["city"]
    assert (one_post["air.si"], one_post["air.np"], one_post["air.pollution_level"]) == (
        pytest.approx(320 / 300), pytest.approx(100 / 3), 3)  # НП 33 % is level III


def test_daily_multiple_needs_18_of_24_hourly_means():
    day = [80.0 if i % 2 else 100.0 for i in range(24)]  # 24-h mean 90 µg/m³; ПДКс.с. PM10 0.06 mg/m³ = 60
    city = compute(hourly("ALM-01", "pm10", day), now=NOW, pack=PACK)["city"]
    assert city["air.daily_multiple"] == pytest.approx(1.5)
    assert city["air.daily_multiple_by_pollutant"] == pytest.approx({"pm10": 1.5})
    short = day[:17] + [None] * 7  # 17 of 24
    assert compute(hourly("ALM-01", "pm10", short), now=NOW, pack=PACK)["city"]["air.daily_multiple"] is None


# ---------------------------------------------------------------------------------------
# offline, stuck, window


def test_offline_after_two_hours_and_stuck_after_four_equal_readings():
    readings = [reading("ALM-01", "pm25", 10.0, NOW - timedelta(hours=2, minutes=1))]  # offline
    readings += _every_20_min("ALM-02", "pm10", [55.0, 55.0, 55.0, 55.0, 60.0])  # the latest 4 equal: stuck
    readings += _every_20_min("ALM-02", "pm25", [20.0, 20.0, 20.0, 21.0])  # only 3 equal
    readings += [reading("ALM-03", "pm25", 10.0, NOW - timedelta(hours=1, minutes=59))]  # still reporting
    readings += [reading("X-99", "pm25", 10.0, NOW, lat=43.25, lon=76.93)]  # not in the pack
    out = compute(readings, now=NOW, pack=PACK)
    city = out["city"]
    alm1, alm2, alm3, alm4, x99 = (station(out, s) for s in ("ALM-01", "ALM-02", "ALM-03", "ALM-04", "X-99"))
    assert (alm1["offline"], alm1["last_seen"]) == (True, "2026-11-22T09:59:00Z")
    assert (alm2["offline"], alm2["stuck"], alm2["stuck_pollutants"]) == (False, True, ["pm10"])
    assert (alm3["offline"], alm3["stuck"]) == (False, False)
    assert (alm4["offline"], alm4["last_seen"], alm4["aqi"]) == (True, None, None)  # never seen
    assert x99["district"] == PACK.district_at(43.25, 76.93).id and x99["name"] is None
    assert (city["air.stations_reporting"], city["air.stations_offline"], city["air.stations_stuck"]) == (3, 9, 1)
    assert len(city[STATIONS]) == 12
    # a stuck series still counts: the flag is for the operator
    assert alm2["aqi"] is not None


def test_readings_outside_the_window_and_long_averages_are_left_out():
    readings = [reading("ALM-01", "pm10", 900.0, NOW - timedelta(hours=24)),  # at the window's start: out
                reading("ALM-01", "pm10", 900.0, NOW + timedelta(minutes=1)),  # after now: out
                reading("ALM-01", "pm10", 900.0, NOW, averaging_s=86_400),  # a daily mean: not a single
                reading("ALM-01", "pm10", 100.0, NOW - timedelta(hours=1))]
    st = station(compute(readings, now=NOW, pack=PACK), "ALM-01")
    assert st["exceedances"] == {"pm10": 0} and st["limit_multiple"] == {"pm10": pytest.approx(100 / 300)}
    assert st["last_seen"] == "2026-11-22T12:00:00Z"  # the daily mean marks the station seen


def test_the_pack_limits_are_used_and_can_be_replaced():
    from core.citypack import AirLimit
    from core.units import Pollutant

    readings = _every_20_min("ALM-01", "pm10", [150.0, 160.0])
    assert compute(readings, now=NOW, pack=PACK)["city"]["air.exceedances"] == 0
    strict = {Pollutant.PM10: AirLimit(0.1, 0.05)}
    assert compute(readings, now=NOW, pack=PACK, limits=strict)["city"]["air.exceedances"] == 2


# ---------------------------------------------------------------------------------------
# the real Almaty data (Kazhydromet automatic posts, Dec 2024 – Jan 2025)

KGMT_FILE = "almaty/air_kgmt_hourly_2024-12_2025-01.csv.gz"
#: ПДКм.р., mg/m³, written here independently of the module (DOMAIN 1.4)
SINGLE_LIMIT_MG_M3 = {"pm10": 0.3, "no2": 0.2, "so2": 0.5, "co": 5.0}


@pytest.fixture(scope="module")
def kgmt():
    """(the file as a pandas frame, the readings as the air feed parses them, as stream dicts)."""
    path = shared_path(KGMT_FILE)
    frame = pd.read_csv(path, compression="gzip")
    frame["t"] = pd.to_datetime(frame["datetime_utc"], utc=True)
    return frame, [r.to_dict() for r in parse_kgmt_csv(path.read_bytes()).records]


def _pandas_counts(frame: pd.DataFrame) -> dict[tuple[str, str], int]:
    limit = frame["parameter"].map(SINGLE_LIMIT_MG_M3)
    above = frame[frame["raw_value"] > limit]
    return {k: int(v) for k, v in above.groupby(["station_id", "parameter"]).size().items()}


def _compute_counts(out: dict) -> dict[tuple[str, str], int]:
    return {(s["station_id"], p): n for s in out["city"][STATIONS] for p, n in s["exceedances"].items() if n}


@pytest.mark.shared_data
def test_real_exceedances_per_station_over_the_whole_file(kgmt):
    frame, readings = kgmt
    now = frame["t"].max().to_pydatetime()
    window = now - frame["t"].min().to_pydatetime() + timedelta(hours=1)
    out = compute(readings, now=now, pack=PACK, window=window)
    expected = _pandas_counts(frame)
    assert _compute_counts(out) == expected
    assert sum(n for (_, p), n in expected.items() if p == "no2") == 1253  # as test_kpi_air counts them
    assert out["city"]["air.exceedances_by_pollutant"]["pm10"] == 271
    assert out["city"]["air.exceedances"] == sum(expected.values())
    assert len(out["city"][STATIONS]) == 11 + len(PACK.stations)  # the 11 posts and the pack's (silent) ones


@pytest.mark.shared_data
def test_real_exceedances_si_and_daily_means_over_one_day(kgmt):
    frame, readings = kgmt
    now = datetime(2025, 1, 15, 19, 0, tzinfo=UTC)  # midnight in Almaty
    out = compute(readings, now=now, pack=PACK)
    day = frame[(frame["t"] > now - timedelta(hours=24)) & (frame["t"] <= now)]
    assert len(day) > 500
    assert _compute_counts(out) == _pandas_counts(day)
    city = out["city"]
    limit = day["parameter"].map(SINGLE_LIMIT_MG_M3)
    si = (day["raw_value"] / limit).groupby(day["parameter"]).max()
    assert city["air.si_by_pollutant"] == pytest.approx(si.to_dict(), rel=1e-9)
    share = (day["raw_value"] > limit).groupby([day["parameter"], day["station_id"]]).mean() * 100
    assert city["air.np_by_pollutant"] == pytest.approx(share.groupby(level=0).max().to_dict(), rel=1e-9)
    # 24-h means of posts with at least 18 hourly values, against ПДКс.с. (mg/m³: PM10 0.06, NO2 0.04,
    # SO2 0.05, CO 3.0); the file is hourly, so each value is one hourly mean
    daily_limit = {"pm10": 0.06, "no2": 0.04, "so2": 0.05, "co": 3.0}
    groups = day.groupby(["parameter", "station_id"])["raw_value"]
    means = groups.mean()[groups.count() >= 18]
    multiple = (means / means.index.get_level_values(0).map(daily_limit)).groupby(level=0).max()
    assert city["air.daily_multiple_by_pollutant"] == pytest.approx(multiple.to_dict(), rel=1e-9)
    reporting = day[day["t"] > now - timedelta(hours=2)]["station_id"].nunique()
    assert city["air.stations_reporting"] == reporting


def test_module_constants_match_the_docstring():
    assert (air.WINDOW, air.OFFLINE_AFTER, air.STUCK_REPEATS) == (timedelta(hours=24), timedelta(hours=2), 4)
