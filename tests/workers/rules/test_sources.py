"""Data-quality detectors: silent station, feed outage, stuck station."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.schemas import iso
from workers.rules.base import WARNING, RuleContext, build_params
from workers.rules.sources import Cadence, FeedOutage, SilentSource, StuckSource

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture(scope="module")
def ctx() -> RuleContext:
    return RuleContext(load_pack(None))


def reading(station: str, at: datetime, value: float = 40.0, parameter: str = "pm25") -> dict:
    return {"kind": "readings", "station_id": station, "parameter": parameter, "value": value, "unit": "ug/m3",
            "observed_at": iso(at), "lat": 43.25, "lon": 76.9, "averaging_s": 1200}


def feed_station(det, station: str, start: datetime, count: int, every: timedelta = 20 * MIN,
                 delay: timedelta = 2 * MIN) -> list:
    events = []
    for i in range(count):
        t = start + i * every
        events += det.observe("air", [reading(station, t)], t + delay)
    return events


# --- Cadence -------------------------------------------------------------------------------------


def test_cadence_median_default_and_floor():
    c = Cadence(history=5, min_gaps=3, default_s=3600, floor_s=60)
    assert c.estimate == 3600 and not c.learnt
    for s in (0, 1200, 2400, 2400, 3600, 4800):  # the duplicate adds no gap
        c.add(T0 + timedelta(seconds=s))
    assert c.learnt and c.estimate == 1200
    c.add(T0 + timedelta(seconds=4800 + 6 * 3600))  # one long outage gap does not move the median
    assert c.estimate == 1200
    fast = Cadence(history=5, min_gaps=1, default_s=3600, floor_s=60)
    for s in (0, 5, 10):
        fast.add(T0 + timedelta(seconds=s))
    assert fast.estimate == 60


def test_cadence_quantile():
    c = Cadence(history=100, min_gaps=1, default_s=1, floor_s=1, quantile=0.95)
    t = T0
    for gap in [10] * 90 + [100] * 10:
        t += timedelta(seconds=gap)
        c.add(t)
    assert c.estimate == 100


# --- SilentSource --------------------------------------------------------------------------------


def test_silent_station_opens_after_factor_times_cadence_and_closes_on_return(ctx):
    det = SilentSource(SilentSource.Params(), ctx)
    assert feed_station(det, "ALM-01", T0, 6) == []  # 00:00 .. 01:40, arrivals 2 min later
    last_seen = T0 + 100 * MIN + 2 * MIN
    assert det.tick(last_seen + 60 * MIN) == []  # exactly 3 x 20 min: not yet
    events = det.tick(last_seen + 61 * MIN)
    assert len(events) == 1
    e = events[0]
    assert (e.phase, e.signal, e.key, e.severity, e.district) == ("open", "source.silent", "ALM-01", WARNING, "almaly")
    assert e.onset == last_seen and e.detected_at == last_seen + 61 * MIN
    assert e.evidence["expected_cadence_s"] == 1200 and e.evidence["cadence_learnt"] is True
    assert e.evidence["silent_for_s"] == 3660 and e.evidence["threshold_s"] == 3600
    assert e.evidence["last_seen"] == iso(last_seen)
    assert det.tick(last_seen + 90 * MIN) == []  # no repeated opens
    back = T0 + 5 * 60 * MIN
    closed = det.observe("air", [reading("ALM-01", back)], back + MIN)
    assert [(x.phase, x.key, x.id) for x in closed] == [("closed", "ALM-01", e.id)]
    assert closed[0].ended_at == last_seen + 90 * MIN


def test_silent_uses_default_cadence_until_learnt(ctx):
    det = SilentSource(SilentSource.Params(), ctx)
    det.observe("air", [reading("ALM-02", T0)], T0)
    assert det.tick(T0 + 61 * MIN) == []  # 20-min cadence unknown yet: default 1 h x 3
    events = det.tick(T0 + 3 * 60 * MIN + MIN)
    assert [e.key for e in events] == ["ALM-02"] and events[0].evidence["cadence_learnt"] is False


def test_silent_only_the_silent_station(ctx):
    det = SilentSource(SilentSource.Params(), ctx)
    events = []
    for i in range(12):
        t = T0 + i * 20 * MIN
        recs = [reading("ALM-01", t)] + ([reading("ALM-03", t)] if i < 4 else [])
        events += det.observe("air", recs, t + MIN)
    assert {e.key for e in events} == {"ALM-03"}
    assert det.stations["ALM-01"].cadence.estimate == 1200


def test_silent_min_silence_floor(ctx):
    det = SilentSource(dataclasses.replace(SilentSource.Params(), min_cadence_s=1), ctx)
    feed_station(det, "ALM-01", T0, 10, every=timedelta(seconds=10), delay=timedelta(0))
    last = T0 + timedelta(seconds=90)
    assert det.tick(last + 19 * MIN) == []  # 3 x 10 s long passed, but the floor is 20 min
    assert len(det.tick(last + 21 * MIN)) == 1


# --- FeedOutage ----------------------------------------------------------------------------------


def test_feed_outage_fast_feed_uses_min_silence(ctx):
    det = FeedOutage(FeedOutage.Params(), ctx)
    for i in range(150):  # the cadence counts once the feed has been watched for 2 h
        det.observe("traffic", [{"kind": "scores"}], T0 + i * MIN)
    last = T0 + 149 * MIN
    assert det.tick(last + 15 * MIN) == []
    events = det.tick(last + 15 * MIN + timedelta(seconds=1))
    assert len(events) == 1
    e = events[0]
    assert (e.phase, e.signal, e.key, e.severity) == ("open", "feed.outage", "traffic", WARNING)
    assert e.onset == last and e.evidence["expected_gap_s"] == 60 and e.evidence["threshold_s"] == 900
    closed = det.observe("traffic", [{"kind": "scores"}], last + 40 * MIN)
    assert [x.phase for x in closed] == ["closed"] and closed[0].id == e.id


def test_feed_outage_slow_feed_uses_its_cadence(ctx):
    det = FeedOutage(FeedOutage.Params(), ctx)
    for i in range(20):
        det.observe("air", [{"kind": "readings"}], T0 + i * 20 * MIN)
    last = T0 + 19 * 20 * MIN
    assert det.tick(last + 60 * MIN) == []
    assert [e.key for e in det.tick(last + 61 * MIN)] == ["air"]


def test_feed_outage_empty_delivery_and_sparse_feed(ctx):
    det = FeedOutage(FeedOutage.Params(), ctx)
    for i in range(20):
        det.observe("appeals", [{"kind": "requests"}], T0 + i * MIN)
    last = T0 + 19 * MIN
    det.observe("appeals", [], last + 30 * MIN)  # an empty batch is no delivery
    assert det.tick(last + 119 * MIN) == []  # a quiet night: sparse feeds wait 2 h
    events = det.tick(last + 121 * MIN)
    assert [e.key for e in events] == ["appeals"] and events[0].evidence["threshold_s"] == 7200


def test_feed_outage_bursty_feed_not_learnt_from_its_first_burst(ctx):
    det = FeedOutage(FeedOutage.Params(), ctx)
    for i in range(11):  # eleven posts within two minutes, then the usual 18-minute pause
        det.observe("air", [{"kind": "readings"}], T0 + i * timedelta(seconds=10))
    assert det.tick(T0 + 20 * MIN) == []
    assert det.cadences["air"].estimate == 600 and not det.cadences["air"].learnt


def test_feed_outage_unwatched_and_never_seen_feeds(ctx):
    det = FeedOutage(build_params(FeedOutage, {"watched": ["traffic"]}), ctx)
    for i in range(20):
        det.observe("ambulance", [{"kind": "units"}], T0 + i * MIN)
    assert det.tick(T0 + 10 * 60 * MIN) == []


# --- StuckSource ---------------------------------------------------------------------------------


def test_stuck_opens_at_min_repeats_and_closes_when_value_moves(ctx):
    det = StuckSource(StuckSource.Params(), ctx)
    events = []
    values = [40.1, 41.0, 55.5, 55.5, 55.5, 55.5, 55.5]
    for i, v in enumerate(values):
        t = T0 + i * 20 * MIN
        events += det.observe("air", [reading("ALM-04", t, v), reading("ALM-04", t, 30 + i, "pm10")], t + MIN)
    assert events == []
    t6 = T0 + 7 * 20 * MIN
    events = det.observe("air", [reading("ALM-04", t6, 55.5)], t6 + MIN)  # sixth equal reading
    assert len(events) == 1
    e = events[0]
    assert (e.phase, e.signal, e.key, e.severity, e.district) == ("open", "source.stuck", "ALM-04", WARNING, "auezov")
    assert e.onset == T0 + 2 * 20 * MIN
    assert e.evidence["parameter"] == "pm25" and e.evidence["value"] == 55.5 and e.evidence["count"] == 6
    assert e.evidence["since"] == iso(T0 + 40 * MIN) and set(e.evidence["parameters"]) == {"pm25"}
    t7 = t6 + 20 * MIN
    closed = det.observe("air", [reading("ALM-04", t7, 56.0)], t7 + MIN)
    assert [(x.phase, x.id) for x in closed] == [("closed", e.id)]


def test_stuck_ignores_zero_floor_and_resent_readings(ctx):
    det = StuckSource(StuckSource.Params(), ctx)
    events = []
    for i in range(10):
        t = T0 + i * 20 * MIN
        events += det.observe("air", [reading("ALM-05", t, 0.0)], t + MIN)
    assert events == []
    t = T0 + 300 * MIN
    for _ in range(8):  # the same reading delivered again and again is one reading
        events += det.observe("air", [reading("ALM-05", t, 12.3)], t + MIN)
    assert events == []


def test_stuck_several_parameters_in_evidence(ctx):
    det = StuckSource(StuckSource.Params(min_repeats=3), ctx)
    events = []
    for i in range(4):
        t = T0 + i * 20 * MIN
        events += det.observe("air", [reading("ALM-06", t, 20.0), reading("ALM-06", t, 33.0, "pm10")], t + MIN)
    opened = [e for e in events if e.phase == "open"]
    assert len(opened) == 1 and set(opened[0].evidence["parameters"]) == {"pm25", "pm10"}


def test_stuck_station_gone_silent_is_closed_after_forget(ctx):
    det = StuckSource(StuckSource.Params(min_repeats=2), ctx)
    for i in range(2):
        det.observe("air", [reading("ALM-07", T0 + i * 20 * MIN, 9.9)], T0 + i * 20 * MIN)
    assert "ALM-07" in det.episodes.active
    assert det.tick(T0 + 5 * 60 * MIN) == []
    closed = det.tick(T0 + 20 * MIN + 6 * 60 * MIN)
    assert [e.phase for e in closed] == ["closed"]


# --- against the simulator -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["silent_sensor", "stuck_sensor", "feed_outage"])
def test_simulated_source_incidents_found(scenario, sim_day):
    truth, events = sim_day(scenario)
    incident = truth[0]
    signal = {"silent_sensor": "source.silent", "stuck_sensor": "source.stuck", "feed_outage": "feed.outage"}[scenario]
    opened = [e for e in events if e.phase == "open"]
    assert all(e.signal == signal for e in opened), [(e.signal, e.key) for e in opened]
    hits = [e for e in opened if e.key == incident.targets[0] and incident.start <= e.detected_at <= incident.end]
    assert len(hits) == 1 and len(opened) == 1
    delay = hits[0].detected_at - incident.start
    assert delay <= {"silent_sensor": timedelta(minutes=70), "stuck_sensor": timedelta(minutes=130),
                     "feed_outage": timedelta(minutes=20)}[scenario]


@pytest.fixture(scope="module")
def sim_day(ctx):
    """Run one simulated day (seed 1) with one scenario through the three detectors."""
    from simulator.driver import plan_run
    from simulator.offline import deliveries
    from simulator.scenarios import load_library

    def run(scenario: str):
        start = datetime(2026, 11, 15, 19, 0, tzinfo=UTC)  # 2026-11-16 00:00 Asia/Almaty
        pack = ctx.pack
        plan = plan_run(pack, seed=1, start=start, duration=timedelta(hours=24),
                        scenarios=[load_library()[scenario]])
        detectors = [cls(cls.Params(), ctx) for cls in (SilentSource, FeedOutage, StuckSource)]
        events, next_tick = [], start + MIN
        for d in deliveries(pack, seed=1, start=start, duration=timedelta(hours=24), run=plan):
            while next_tick <= d.at:
                for det in detectors:
                    events += det.tick(next_tick)
                next_tick += MIN
            for det in detectors:
                if d.feed in det.feeds:
                    events += det.observe(d.feed, d.records, d.at)
        return plan.truth, events

    return run
