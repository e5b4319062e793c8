"""Air detectors: station AQI / ПДК multiples, and the city-wide particulate episode."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.schemas import iso
from workers.kpi import air as kpi
from workers.rules.air import AirEpisode, AirQuality
from workers.rules.base import ADVISORY, CRITICAL, WARNING, RuleContext

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
STATIONS = [f"ALM-{i:02d}" for i in range(1, 12)]


@pytest.fixture(scope="module")
def ctx() -> RuleContext:
    return RuleContext(load_pack(None))


def reading(station: str, at: datetime, parameter: str, value: float) -> dict:
    unit = {"pm25": "ug/m3", "pm10": "ug/m3", "no2": "ppb", "so2": "ppb", "co": "ppm", "o3": "ppm"}[parameter]
    return {"kind": "readings", "station_id": station, "parameter": parameter, "value": value, "unit": unit,
            "observed_at": iso(at), "lat": 43.25, "lon": 76.95, "averaging_s": 1200}


# --- AirQuality ----------------------------------------------------------------------------------


def test_aqi_advisory_with_evidence_matches_kpi(ctx):
    det = AirQuality(AirQuality.Params(), ctx)
    events = []
    for i in range(9):  # three hours of 20-minute readings at 80 µg/m³ PM2.5
        t = T0 + (i + 1) * 20 * MIN
        events += det.observe("air", [reading("ALM-01", t, "pm25", 80.0), reading("ALM-01", t, "no2", 40.0)],
                              t + 2 * MIN)
    opened = [e for e in events if e.phase == "open"]
    assert len(opened) == 1
    e = opened[0]
    assert (e.signal, e.key, e.severity, e.district) == ("air.aqi", "ALM-01", ADVISORY, "almaly")
    ev = e.evidence
    # opened at the first valid NowCast (2 of the 3 latest hours present): hours 00 and 01
    assert e.at == T0 + 80 * MIN + 2 * MIN  # the 01:20 reading is the first of hour 01
    assert ev["aqi"] == kpi.nowcast_aqi([80.0, 80.0], pollutant="pm25") == 168
    assert ev["dominant"] == "pm25" and ev["averaging"] == "24h" and ev["concentration"] == 80.0
    assert ev["category"] == "unhealthy" and ev["unit"] == "ug/m3"
    assert ev["pdk_multiple"] == round(kpi.limit_multiple("pm25", 80.0), 3) == 0.5
    assert ev["limit_multiples"]["no2"] == round(kpi.limit_multiple("no2", 40.0), 3)
    assert ev["si_pollutant"] == "pm25" and ev["pollution_level"] == "low"
    assert ev["sub_indices"]["pm25/24h"] == 168


def test_aqi_below_threshold_is_quiet_and_episode_closes_with_hysteresis(ctx):
    det = AirQuality(AirQuality.Params(), ctx)
    events = []
    t = T0
    for value in [80.0] * 3 + [52.0] * 3:  # NowCast falls to AQI 145: within the hysteresis band
        t += 20 * MIN
        events += det.observe("air", [reading("ALM-02", t, "pm25", value)], t)
    assert [e.phase for e in events] == ["open"]
    for _ in range(12):  # then clean air for 4 h: closes one hour after the last active evaluation
        t += 20 * MIN
        events += det.observe("air", [reading("ALM-02", t, "pm25", 5.0)], t)
    assert [e.phase for e in events] == ["open", "closed"]
    assert det.assess("ALM-02")["aqi"] < 141


def test_aqi_alone_never_warns_by_default_but_can(ctx):
    det = AirQuality(AirQuality.Params(), ctx)
    strict = AirQuality(dataclasses.replace(AirQuality.Params(), warning_aqi=301), ctx)
    events, warned = [], []
    for t in (T0 + 40 * MIN, T0 + 80 * MIN):  # two hours: a valid NowCast
        events += det.observe("air", [reading("ALM-03", t, "pm25", 400.0)], t)
        warned += strict.observe("air", [reading("ALM-03", t, "pm25", 400.0)], t)
    assert events[0].evidence["aqi"] > 500 and [e.severity for e in events] == [ADVISORY]
    assert [e.severity for e in warned] == [WARNING]


@pytest.mark.parametrize(("multiple", "severity"), [(3.9, None), (4.5, ADVISORY), (10.5, WARNING),
                                                    (20.5, CRITICAL)])
def test_kazakh_standard_index_severity(ctx, multiple, severity):
    det = AirQuality(AirQuality.Params(), ctx)
    co = multiple * kpi.limit("co")  # one CO reading: no 8-hour AQI yet, only the ПДК multiple
    t = T0 + 20 * MIN
    events = det.observe("air", [reading("ALM-04", t, "co", co)], t)
    if severity is None:
        assert events == []
        return
    assert len(events) == 1 and events[0].severity == severity
    assert events[0].evidence["si_pollutant"] == "co" and events[0].evidence["si"] == pytest.approx(multiple)
    assert events[0].evidence["aqi"] is None


def test_severity_rise_is_an_update_and_stale_station_closes(ctx):
    det = AirQuality(AirQuality.Params(), ctx)
    t = T0 + 20 * MIN
    first = det.observe("air", [reading("ALM-05", t, "co", 5 * kpi.limit("co"))], t)
    t2 = t + 20 * MIN
    second = det.observe("air", [reading("ALM-05", t2, "co", 12 * kpi.limit("co"))], t2)
    assert [(e.phase, e.severity) for e in first + second] == [("open", ADVISORY), ("update", WARNING)]
    assert det.tick(t2 + 2 * 60 * MIN) == []
    closed = det.tick(t2 + 3 * 60 * MIN)
    assert [(e.phase, e.severity) for e in closed] == [("closed", WARNING)]


def test_gas_averaging_periods(ctx):
    det = AirQuality(AirQuality.Params(), ctx)
    t = T0
    for _ in range(3 * 5):  # five hours of CO: too few hours for the 8-hour mean
        t += 20 * MIN
        det.observe("air", [reading("ALM-06", t, "co", 20.0)], t)
    assert det.assess("ALM-06")["aqi"] is None
    for _ in range(3):
        t += 20 * MIN
        det.observe("air", [reading("ALM-06", t, "co", 20.0)], t)
    ev = det.assess("ALM-06")
    assert ev["dominant"] == "co" and ev["averaging"] == "8h" and ev["aqi"] == kpi.sub_index("co", 20.0, averaging="8h")


# --- AirEpisode ----------------------------------------------------------------------------------


def city_day(factor_at, hours: float = 12, start: datetime = T0, det=None, ctx=None):
    """Feed every station PM2.5 = base x factor_at(minutes since start), one reading per 20 min."""
    det = det or AirEpisode(AirEpisode.Params(), ctx)
    events = []
    for i in range(int(hours * 3)):
        t = start + (i + 1) * 20 * MIN
        minutes = (t - start).total_seconds() / 60
        for k, station in enumerate(STATIONS):
            value = (20 + 5 * k) * factor_at(minutes) * (1 + 0.03 * ((i + k) % 3 - 1))
            events += det.observe("air", [reading(station, t, "pm25", round(value, 1))], t + MIN)
    return det, events


def test_episode_quiet_on_flat_and_slow_days(ctx):
    _, flat = city_day(lambda m: 1.0, ctx=ctx)
    _, slow = city_day(lambda m: 1 + 0.5 * m / 720, ctx=ctx)  # ×1.5 over 12 h
    assert flat == [] and slow == []


def test_episode_opens_on_a_city_wide_jump_and_closes_after(ctx):
    def smog(m: float) -> float:
        if m < 300:
            return 1.0
        if m < 450:
            return 1 + 2.2 * (m - 300) / 150
        return 3.2 if m < 600 else 1.0

    _, events = city_day(smog, ctx=ctx, hours=16)
    phases = [(e.phase, e.key, e.severity) for e in events if e.phase != "update"]
    assert phases == [("open", "city", WARNING), ("closed", "city", WARNING)]
    opened = events[0]
    assert opened.signal == "air.pm_rise"
    assert T0 + 300 * MIN < opened.detected_at <= T0 + 450 * MIN
    assert opened.onset == opened.detected_at - MIN - timedelta(hours=3)
    ev = opened.evidence
    assert ev["rise"] >= 2.0 and ev["stations"] == 11 and ev["stations_rising"] >= 6
    assert ev["median_level"] > ev["median_reference"]
    closed = events[-1]
    assert closed.ended_at is not None and T0 + 600 * MIN <= closed.at <= T0 + 700 * MIN


def test_episode_needs_most_stations(ctx):
    det = AirEpisode(AirEpisode.Params(), ctx)
    events = []
    for i in range(36):
        t = T0 + (i + 1) * 20 * MIN
        for k, station in enumerate(STATIONS):
            boost = 4.0 if k < 3 and i > 18 else 1.0  # three stations only
            events += det.observe("air", [reading(station, t, "pm25", 30.0 * boost)], t)
    assert events == []


def test_episode_profile_corrects_the_daily_cycle(ctx):
    """A regular evening doubling is learnt after a few days and then expected, not alarmed."""

    def evening(m: float) -> float:
        hour = (m / 60) % 24
        return 2.2 if 14 <= hour < 20 else 1.0

    det, first_days = city_day(evening, hours=24 * 4, ctx=ctx)
    assert any(e.phase == "open" for e in first_days)  # before the profile is learnt, it looks like an episode
    start = T0 + timedelta(days=4)
    _, later = city_day(evening, hours=24, start=start, det=det)
    assert [e for e in later if e.phase == "open"] == []


# --- against the simulator -----------------------------------------------------------------------


@pytest.mark.slow
def test_simulated_smog_found_and_station_aqi_advisory_only(ctx):
    from simulator.driver import plan_run
    from simulator.offline import deliveries
    from simulator.scenarios import load_library

    start = datetime(2026, 11, 15, 19, 0, tzinfo=UTC)  # local midnight
    plan = plan_run(ctx.pack, seed=1, start=start, duration=timedelta(hours=24),
                    scenarios=[load_library()["smog_episode"]])
    detectors = [AirQuality(AirQuality.Params(), ctx), AirEpisode(AirEpisode.Params(), ctx)]
    events = []
    for d in deliveries(ctx.pack, seed=1, start=start, duration=timedelta(hours=24), run=plan):
        if d.feed == "air":
            for det in detectors:
                events += det.observe("air", d.records, d.at)
    incident = plan.truth[0]
    episodes = [e for e in events if e.detector == "air_episode" and e.phase == "open"]
    assert len(episodes) == 1 and episodes[0].key == "city"
    assert incident.start < episodes[0].detected_at <= incident.start + timedelta(minutes=150)
    assert max(e.severity for e in events if e.detector == "air_quality") == ADVISORY
