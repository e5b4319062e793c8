"""Tests of :class:`workers.rules.traffic.SegmentDrop`: synthetic 5-minute windows with exact
expectations, and one simulated day with a planted crash and one with ordinary noise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.citypack import load_pack
from core.geo import haversine_m
from workers.rules.base import ADVISORY, WARNING, Event, RuleContext, build_params
from workers.rules.traffic import SegmentDrop

ALMATY = ZoneInfo("Asia/Almaty")
T0 = datetime(2026, 11, 16, 10, 0, tzinfo=ALMATY).astimezone(UTC)
STEP = timedelta(minutes=5)
N = 20


@pytest.fixture(scope="module")
def ctx() -> RuleContext:
    return RuleContext(load_pack(None))


def geometry(i: int) -> list[list[float]]:
    """Segment ``i``: an east-west line of about 800 m; rows 3 km apart, neighbours 1 km apart in a row."""
    lat = 43.20 + 0.027 * (i // 5)
    lon = 76.85 + 0.0125 * (i % 5)
    return [[lon, lat], [lon + 0.0098, lat]]


def window(k: int, speeds: dict[int, float]) -> list[dict[str, Any]]:
    """The records of the ``k``-th window (all ``N`` segments, speed 50 unless given)."""
    end = T0 + k * STEP
    return [{"kind": "segments", "segment_id": f"S{i:02d}", "observed_at": end.isoformat(),
             "observed_from": (end - STEP).isoformat(), "lat": geometry(i)[1][1], "lon": geometry(i)[1][0],
             "speed_kmh": speeds.get(i, 50.0) * (1 + 0.02 * ((i * 7 + k) % 3 - 1)), "free_flow_kmh": 60.0,
             "name": f"Street {i}", "geometry": geometry(i)} for i in range(N)]


def feed(det: SegmentDrop, plan: list[dict[int, float]], factor: Any = None) -> list[Event]:
    """Deliver windows 1.. of ``plan`` 30 s after each window's end; ``factor(k)`` scales every speed."""
    events: list[Event] = []
    for k, speeds in enumerate(plan, start=1):
        f = factor(k) if factor else 1.0
        records = window(k, {i: speeds.get(i, 50.0) * f for i in range(N)})
        events += det.observe("traffic", records, T0 + k * STEP + timedelta(seconds=30))
        events += det.tick(T0 + k * STEP + timedelta(minutes=3))
    return events


def params(**kw: Any) -> Any:
    return build_params(SegmentDrop, kw)


def test_rush_hour_slowing_every_segment_is_not_a_drop(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    # the whole city slows to a third within 20 minutes, stays there, recovers
    ramp = [1, 1, 1, 1, 1, 0.8, 0.6, 0.45, 0.33, 0.33, 0.33, 0.33, 0.5, 0.8, 1, 1]
    assert feed(det, [{}] * len(ramp), factor=lambda k: ramp[k - 1]) == []


def test_collapse_of_one_segment_is_a_warning_at_once(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    plan = [{}] * 6 + [{7: 12.5}] * 3
    events = feed(det, plan)
    assert [e.phase for e in events] == ["open"]
    e = events[0]
    assert (e.detector, e.signal, e.key, e.severity) == ("segment_drop", "traffic.drop", "S07", WARNING)
    assert e.detected_at == T0 + 7 * STEP + timedelta(seconds=30)
    assert e.onset == T0 + 6 * STEP  # the start of the first window that dropped
    lon0, lat0 = geometry(7)[0]
    lon1, lat1 = geometry(7)[1]
    assert e.lat == pytest.approx(lat0) and e.lon == pytest.approx((lon0 + lon1) / 2, abs=1e-4)
    ev = e.evidence
    assert ev["segment_id"] == "S07" and ev["free_flow_kmh"] == 60.0 and ev["unit"] == "km/h"
    assert ev["speed_kmh"] == pytest.approx(12.5, rel=0.03)
    assert ev["baseline_kmh"] == pytest.approx(50, rel=0.03)
    assert ev["own_ratio"] == pytest.approx(0.25, rel=0.06) and ev["rel_ratio"] == pytest.approx(0.25, rel=0.06)
    assert ev["city_ratio"] == pytest.approx(1.0, abs=0.03)
    assert ev["window_start"] == (T0 + 6 * STEP).isoformat().replace("+00:00", "Z")
    assert [s["segment_id"] for s in ev["segments"]] == ["S07"]


def test_short_mild_slowdown_raises_nothing(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    plan = [{}] * 6 + [{3: 40.0}] * 2 + [{}] * 4  # ordinary_noise: 0.8 for 10 minutes
    assert feed(det, plan) == []


def test_lone_moderate_drop_is_advisory_then_warning(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    plan = [{}] * 6 + [{3: 26.0}] * 4  # about 0.52: dropping but not a collapse
    events = feed(det, plan)
    assert [(e.phase, e.severity) for e in events] == [("open", ADVISORY), ("update", WARNING)]
    assert events[1].at == T0 + 9 * STEP + timedelta(seconds=30)  # the third window in a row
    assert events[1].evidence["windows"] == 3


def test_neighbouring_segments_dropping_together_are_one_warning(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    plan = [{}] * 6 + [{6: 27.0, 7: 26.0, 8: 28.0, 16: 27.0}] * 2
    events = feed(det, plan)
    opened = [e for e in events if e.phase == "open"]
    assert [(e.key, e.severity) for e in opened] == [("S07", WARNING), ("S16", ADVISORY)]
    cluster = opened[0]
    assert [s["segment_id"] for s in cluster.evidence["segments"]] == ["S07", "S06", "S08"]
    # the cluster's place: on the middle segment, within reach of all three
    assert haversine_m(cluster.lat, cluster.lon, 43.227, 76.8799) < 600
    assert cluster.radius_m is not None and cluster.radius_m <= 1500


def test_long_drop_stays_one_episode_and_closes(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    plan = [{}] * 6 + [{7: 12.5}] * 20 + [{}] * 6  # 100 minutes, as the simulated crash
    events = feed(det, plan)
    phases = [e.phase for e in events if e.phase != "update"]
    assert phases == ["open", "closed"]
    closed = events[-1]
    assert closed.ended_at == T0 + 26 * STEP + timedelta(seconds=30)
    assert closed.at - closed.ended_at >= timedelta(minutes=15)


def test_windows_split_over_deliveries_and_late_records(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    events: list[Event] = []
    for k in range(1, 9):
        records = window(k, {7: 12.5} if k >= 7 else {})
        at = T0 + k * STEP + timedelta(seconds=30)
        events += det.observe("traffic", records[:10], at)
        events += det.observe("traffic", records[10:], at + timedelta(seconds=5))
    assert [(e.phase, e.key) for e in events] == [("open", "S07")]
    # a record of a window already judged is ignored
    late = window(3, {})[:1]
    assert det.observe("traffic", late, T0 + 9 * STEP) == []


def test_incomplete_window_is_judged_after_settling(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    feed(det, [{}] * 6)
    records = [r for r in window(7, {7: 12.5}) if r["segment_id"] != "S19"]
    at = T0 + 7 * STEP + timedelta(seconds=30)
    assert det.observe("traffic", records, at) == []
    assert det.tick(at + timedelta(seconds=60)) == []
    assert [e.key for e in det.tick(at + timedelta(seconds=90))] == ["S07"]


def test_other_kinds_and_bad_records_are_ignored(ctx: RuleContext) -> None:
    det = SegmentDrop(params(), ctx)
    junk = [{"kind": "scores", "provider": "2gis", "score": 9}, {"kind": "segments", "segment_id": "x"},
            {"kind": "segments", "segment_id": "y", "observed_at": "bad", "speed_kmh": 3.0},
            {"kind": "segments", "segment_id": "z", "observed_at": T0.isoformat(), "speed_kmh": float("nan")}]
    assert det.observe("traffic", junk, T0) == []
    assert det.pending == {}


# --- against the simulator ------------------------------------------------------------------------


def simulate(scenario: str, seed: int, start_local: datetime, hours: float) -> tuple[list[Event], Any]:
    from simulator.driver import plan_run
    from simulator.offline import deliveries
    from simulator.scenarios import load_library

    pack = load_pack(None)
    start = start_local.astimezone(UTC)
    run = plan_run(pack, seed=seed, start=start, duration=timedelta(hours=hours),
                   scenarios=[load_library()[scenario]])
    det = SegmentDrop(SegmentDrop.Params(), RuleContext(pack))
    events: list[Event] = []
    clock = start
    for d in deliveries(pack, seed=seed, start=start, duration=timedelta(hours=hours), run=run):
        while clock + timedelta(minutes=1) <= d.at:
            clock += timedelta(minutes=1)
            events += det.tick(clock)
        if d.feed == "traffic":
            events += det.observe(d.feed, d.records, d.at)
    return events, run.truth


@pytest.mark.slow
def test_simulated_crash_is_found_and_noise_is_not() -> None:
    events, truth = simulate("multi_vehicle_crash", 3, datetime(2026, 11, 16, 6, 0, tzinfo=ALMATY), 6)
    incident = truth[0]
    warned = {e.id: e for e in events if e.severity >= WARNING}
    assert len(warned) == 1
    e = next(iter(warned.values()))
    assert haversine_m(e.lat, e.lon, incident.lat, incident.lon) < 1500
    assert e.district == incident.district
    first = min(x.at for x in events if x.severity >= WARNING)
    assert timedelta(0) < first - incident.start <= timedelta(minutes=15)
    events, truth = simulate("ordinary_noise", 2, datetime(2026, 11, 16, 6, 0, tzinfo=ALMATY), 8)
    assert truth and [e for e in events if e.severity >= WARNING] == []
