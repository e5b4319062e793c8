"""Tests of the space-time hotspot detectors (appeals, ambulance calls) and the complaint surge.

Most tests feed small synthetic record sequences with exact expectations; the ``slow`` ones run
the offline simulator for part of a day with one scenario and score the detectors against the
planted ground truth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.citypack import load_pack
from core.geo import haversine_m
from workers.rules.base import ADVISORY, WARNING, Detector, Event, RuleContext, build_params
from workers.rules.hotspots import (
    AppealHotspot,
    CallCluster,
    ComplaintSurge,
    SpaceTimeScan,
    binom_sf,
    parse_groups,
    poisson_llr,
)

ALMATY = ZoneInfo("Asia/Almaty")
T0 = datetime(2026, 11, 16, 10, 0, tzinfo=ALMATY).astimezone(UTC)  # Monday 10:00 local
PLACE = (43.2380, 76.9450)  # Almaly, near the centre
M_PER_DEG = 111_195.0


@pytest.fixture(scope="module")
def ctx() -> RuleContext:
    return RuleContext(load_pack(None))


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


def appeal(n: int, t: datetime, category: str, lat: float, lon: float, status: str = "open",
           district: str | None = "almaly") -> dict[str, Any]:
    return {"kind": "requests", "request_id": f"ALA-{n:05d}", "status": status, "requested_at": iso(t),
            "updated_at": iso(t), "category": category, "district": district, "channel": "phone",
            "lat": lat, "lon": lon}


def call(n: int, t: datetime, complaint: str, lat: float, lon: float, category: int = 2) -> dict[str, Any]:
    return {"kind": "calls", "call_id": f"EMS-{n:05d}", "times": {"call_received": iso(t)}, "category": category,
            "status": "waiting", "lat": lat, "lon": lon, "district": "almaly", "complaint": complaint}


def call_update(n: int, t: datetime) -> dict[str, Any]:
    return {"kind": "calls", "call_id": f"EMS-{n:05d}", "times": {"unit_notified": iso(t)}, "status": "dispatched",
            "unit_id": "AMB-0101"}


def background(ctx: RuleContext, start: datetime, end: datetime, per_hour: float, kinds: Sequence[str],
               make: Any, seed: int = 7, first: int = 50_000) -> list[tuple[datetime, dict[str, Any]]]:
    """Scattered cases all over the city's districts (near their centroids), in time order."""
    rng = random.Random(seed)
    districts = ctx.pack.districts
    out = []
    t, n = start, first
    while True:
        t += timedelta(hours=rng.expovariate(per_hour))
        if t >= end:
            return out
        d = rng.choice(districts)
        lat, lon = offset(*d.centroid, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
        n += 1
        out.append((t, make(n, t, rng.choice(kinds), lat, lon)))


def run(detector: Detector, feed: str, timed: Iterable[tuple[datetime, dict[str, Any]]], until: datetime,
        ) -> list[Event]:
    """Feed ``(time, record)`` pairs one by one, ticking every minute in between, up to ``until``."""
    events: list[Event] = []
    items = sorted(timed, key=lambda p: p[0])
    clock = items[0][0] if items else until
    for t, record in items:
        while clock + timedelta(minutes=1) <= t:
            clock += timedelta(minutes=1)
            events += detector.tick(clock)
        events += detector.observe(feed, [record], t)
        clock = max(clock, t)
    while clock + timedelta(minutes=1) <= until:
        clock += timedelta(minutes=1)
        events += detector.tick(clock)
    return events


def burst(start: datetime, count: int, every_min: float, make: Any, group: str, radius_m: float,
          first: int = 1, seed: int = 3) -> list[tuple[datetime, dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        t = start + timedelta(minutes=every_min * (i + 1))
        r, a = radius_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        lat, lon = offset(*PLACE, r * math.cos(a), r * math.sin(a))
        out.append((t, make(first + i, t, group, lat, lon)))
    return out


# --- statistics -----------------------------------------------------------------------------------


def test_binomial_tail_matches_the_exact_sum() -> None:
    from fractions import Fraction

    def exact(y: int, n: int, p: float) -> float:  # P(Y >= y), in exact rational arithmetic
        q = Fraction(p)
        return float(sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(y, n + 1)))

    for y, n, p in [(5, 9, 0.01), (3, 4, 0.001), (40, 120, 0.2), (0, 5, 0.3), (6, 6, 0.5), (1, 1, 0.2)]:
        assert binom_sf(y, n, p) == pytest.approx(exact(y, n, p), rel=1e-9)
    assert binom_sf(7, 6, 0.5) == 0.0
    assert binom_sf(3, 10, 0.0) == 0.0


def test_llr_is_zero_unless_excess() -> None:
    assert poisson_llr(1, 10, 2.0) == 0.0
    assert poisson_llr(6, 9, 0.06) == pytest.approx(6 * math.log(6 / 0.06) + 3 * math.log(3 / 8.94))


def test_scan_threshold_is_bonferroni_over_tests_per_day(ctx: RuleContext) -> None:
    scan = SpaceTimeScan(ctx.pack, cell_m=250, radii_m=(1000,), windows_min=(60,), min_counts=(5,),
                         prior_weight=5, prior_days=14, alarms_per_day=0.1, groups=2, max_clusters=1)
    area = sum(d.area_m2 for d in ctx.pack.districts)
    tests = area / (math.pi * 1000 ** 2) * 24 * 2
    assert scan.threshold == pytest.approx(0.1 / tests)


def test_zone_share_starts_at_the_population_prior(ctx: RuleContext) -> None:
    scan = SpaceTimeScan(ctx.pack, cell_m=250, radii_m=(1000,), windows_min=(60,), min_counts=(5,),
                         prior_weight=5, prior_days=14, alarms_per_day=0.1, groups=2, max_clusters=1)
    cell = scan.cell_of(*PLACE)
    people = sum(d.population for d in ctx.pack.districts)
    expected = 0.0
    for dx, dy in scan.offsets[0]:  # each cell holds its district's people per m^2 times its area
        d = ctx.pack.district_at(*scan.cell_centre((cell[0] + dx, cell[1] + dy)))
        expected += d.population / people / d.area_m2 * 250 ** 2 if d else 0.0
    assert len(scan.offsets[0]) == 49  # cells of 250 m with centres within 1 km
    assert scan.share("water_supply", cell, 0) == pytest.approx(expected, rel=1e-9)
    # seen cases of other groups elsewhere lower it, cases of its own group do not
    for _ in range(50):
        scan.add("roads", 0.0, 43.35, 76.85, None, 0.0)
        scan.add("water_supply", 0.0, 43.35, 76.85, None, 0.0)
    scan._share_cache.clear()
    lower = scan.share("water_supply", cell, 0)
    assert lower < expected
    assert lower == pytest.approx(5 / (50 + 5 / expected))


def test_parse_groups() -> None:
    assert parse_groups(["respiratory", "cardio=cardiac+stroke"]) == {
        "respiratory": frozenset({"respiratory"}), "cardio": frozenset({"cardiac", "stroke"})}
    with pytest.raises(ValueError):
        parse_groups(["=x"])


# --- appeals --------------------------------------------------------------------------------------


def test_appeal_burst_raises_one_warning_with_evidence(ctx: RuleContext) -> None:
    det = AppealHotspot(AppealHotspot.Params(), ctx)
    start = T0 - timedelta(hours=3)
    records = background(ctx, start, T0 + timedelta(hours=1), 60, ["water_supply", "roads", "waste", "other"],
                         appeal)
    records += burst(T0, 7, 4, appeal, "water_supply", 600)
    events = run(det, "appeals", records, T0 + timedelta(hours=1))
    opened = [e for e in events if e.phase == "open"]
    assert len(opened) == 1
    e = opened[0]
    assert (e.detector, e.signal, e.severity) == ("appeal_hotspot", "appeals.burst", WARNING)
    assert e.key.startswith("water_supply@")
    assert e.district == "almaly"
    assert haversine_m(e.lat, e.lon, *PLACE) < 600
    assert e.detected_at == T0 + timedelta(minutes=20)  # the fifth appeal of the burst
    assert e.onset == T0 + timedelta(minutes=4)  # the first appeal of the zone
    ev = e.evidence
    assert ev["category"] == "water_supply" and ev["count"] >= 5 and ev["unit"] == "appeals"
    assert ev["p_value"] <= ev["p_threshold"] < 1e-6
    assert ev["expected"] < 1 and ev["llr"] > 0 and ev["radius_m"] == e.radius_m
    assert ev["window_min"] in (30.0, 60.0, 120.0)
    assert {"citywide_count", "zone_share", "centre", "window_start", "window_end", "first_case"} <= set(ev)


def test_appeal_updates_count_once(ctx: RuleContext) -> None:
    det = AppealHotspot(AppealHotspot.Params(), ctx)
    records = []
    for t, r in burst(T0, 4, 3, appeal, "water_supply", 300):
        records.append((t, r))
        for k in (1, 2):  # assigned, closed: the same appeal again
            records.append((t + timedelta(minutes=k), {**r, "status": "closed", "updated_at": iso(t)}))
    events = run(det, "appeals", records, T0 + timedelta(hours=1))
    assert events == []
    # a fifth distinct appeal makes it a cluster
    t5 = T0 + timedelta(minutes=16)
    lat, lon = offset(*PLACE, 50, 50)
    assert [e.phase for e in det.observe("appeals", [appeal(99, t5, "water_supply", lat, lon)], t5 +
                                                                      timedelta(minutes=45))] == []  # too late
    det2 = AppealHotspot(AppealHotspot.Params(), ctx)
    events = run(det2, "appeals", records + [(t5, appeal(99, t5, "water_supply", lat, lon))], t5)
    assert [e.phase for e in events] == ["open"]


def test_three_appeals_from_one_yard_are_ordinary(ctx: RuleContext) -> None:
    det = AppealHotspot(AppealHotspot.Params(), ctx)
    records = burst(T0, 4, 30, appeal, "waste", 150)  # ordinary_noise: 1.5/h within 200 m for 2 h
    assert run(det, "appeals", records, T0 + timedelta(hours=3)) == []


def test_appeal_episode_closes_after_the_burst(ctx: RuleContext) -> None:
    det = AppealHotspot(AppealHotspot.Params(), ctx)
    records = burst(T0, 8, 3, appeal, "water_supply", 400)
    events = run(det, "appeals", records, T0 + timedelta(hours=4))
    phases = [e.phase for e in events if e.phase != "update"]
    assert phases == ["open", "closed"]
    closed = events[-1]
    assert closed.ended_at is not None and closed.ended_at < closed.at
    assert closed.id == events[0].id


def test_appeal_hotspot_ignores_other_kinds_and_bad_records(ctx: RuleContext) -> None:
    det = AppealHotspot(AppealHotspot.Params(), ctx)
    junk = [{"kind": "units", "unit_id": "x"}, {"kind": "requests", "request_id": "A", "requested_at": iso(T0)},
            {"kind": "requests", "request_id": "B", "requested_at": "not a time", "lat": 43.2, "lon": 76.9},
            {"kind": "requests", "request_id": "C", "requested_at": iso(T0), "lat": "x", "lon": 76.9}]
    assert det.observe("appeals", junk, T0) == []
    assert det._seen == {}


def test_params_override_by_name() -> None:
    params = build_params(AppealHotspot, {"windows_min": [30, 60], "min_counts": [4, 5]})
    assert params.windows_min == (30, 60) and params.min_counts == (4, 5)


# --- ambulance calls ------------------------------------------------------------------------------


def test_road_trauma_calls_cluster(ctx: RuleContext) -> None:
    det = CallCluster(CallCluster.Params(), ctx)
    start = T0 - timedelta(hours=2)
    records = background(ctx, start, T0 + timedelta(hours=1), 110, ["pain", "fever", "cardiac", "respiratory",
                                                                    "fall", "road_trauma"], call)
    crash = burst(T0, 5, 4, call, "road_trauma", 250)
    records += crash
    records += [(t + timedelta(minutes=2), call_update(int(r["call_id"][4:]), t)) for t, r in crash]
    events = run(det, "ambulance", records, T0 + timedelta(hours=1))
    opened = [e for e in events if e.phase == "open"]
    assert len(opened) == 1
    e = opened[0]
    assert (e.detector, e.signal, e.severity) == ("call_cluster", "ambulance.calls", WARNING)
    assert e.evidence["complaint"] == "road_trauma" and e.evidence["unit"] == "calls"
    assert 3 <= e.evidence["count"] <= 5
    assert haversine_m(e.lat, e.lon, *PLACE) < 400
    assert e.detected_at <= T0 + timedelta(minutes=16)


def test_one_extra_call_is_not_a_cluster(ctx: RuleContext) -> None:
    det = CallCluster(CallCluster.Params(), ctx)
    records = burst(T0, 2, 10, call, "fall", 300)
    assert run(det, "ambulance", records, T0 + timedelta(hours=1)) == []


def test_call_updates_and_positions_are_ignored(ctx: RuleContext) -> None:
    det = CallCluster(CallCluster.Params(), ctx)
    records = [{"kind": "units", "unit_id": "AMB-1", "lat": 43.2, "lon": 76.9}, call_update(1, T0)]
    assert det.observe("ambulance", records, T0) == []
    assert det._seen == {}


# --- complaint surge ------------------------------------------------------------------------------


def steady_calls(start: datetime, end: datetime, per_hour: float, share: Any, seed: int = 11,
                 first: int = 1) -> list[tuple[datetime, dict[str, Any]]]:
    """Calls at a steady rate; ``share(t)`` of them respiratory."""
    rng = random.Random(seed)
    out, t, n = [], start, first
    while True:
        t += timedelta(hours=rng.expovariate(per_hour))
        if t >= end:
            return out
        n += 1
        complaint = "respiratory" if rng.random() < share(t) else rng.choice(["pain", "fever", "cardiac"])
        out.append((t, call(n, t, complaint, *PLACE)))


def test_respiratory_surge_raises_a_citywide_warning(ctx: RuleContext) -> None:
    det = ComplaintSurge(ComplaintSurge.Params(), ctx)
    surge = T0 + timedelta(hours=8)
    records = steady_calls(T0, surge + timedelta(hours=2), 80,
                           lambda t: 0.2 if t < surge else 0.45)
    events = run(det, "ambulance", records, surge + timedelta(hours=2))
    opened = [e for e in events if e.phase == "open"]
    assert len(opened) == 1
    e = opened[0]
    assert (e.detector, e.signal, e.key, e.severity) == ("complaint_surge", "ambulance.respiratory_calls",
                                                         "respiratory", WARNING)
    assert surge < e.detected_at <= surge + timedelta(minutes=60)
    ev = e.evidence
    assert ev["p_value"] <= ev["p_threshold"] and ev["ratio"] >= 1.3
    assert ev["baseline_share"] == pytest.approx(0.2, abs=0.03)
    assert e.onset == datetime.fromisoformat(ev["window_start"])


def test_steady_share_and_short_history_raise_nothing(ctx: RuleContext) -> None:
    det = ComplaintSurge(ComplaintSurge.Params(), ctx)
    records = steady_calls(T0, T0 + timedelta(hours=12), 80, lambda t: 0.2)
    assert [e for e in run(det, "ambulance", records, T0 + timedelta(hours=12)) if e.severity >= ADVISORY] == []
    # all respiratory from the start: no baseline yet, so no test
    det = ComplaintSurge(ComplaintSurge.Params(), ctx)
    records = steady_calls(T0, T0 + timedelta(hours=2), 80, lambda t: 0.9)
    assert run(det, "ambulance", records, T0 + timedelta(hours=2)) == []


def test_surge_bins_stay_out_of_the_baseline(ctx: RuleContext) -> None:
    """An eight-hour surge stays one open episode: its own calls do not become the baseline."""
    det = ComplaintSurge(ComplaintSurge.Params(), ctx)
    surge = T0 + timedelta(hours=8)
    end = surge + timedelta(hours=8)
    records = steady_calls(T0, end + timedelta(hours=3), 80, lambda t: 0.45 if surge <= t < end else 0.2)
    events = run(det, "ambulance", records, end + timedelta(hours=3))
    phases = [e.phase for e in events if e.phase != "update"]
    assert phases == ["open", "closed"]
    assert end - timedelta(minutes=30) <= events[-1].ended_at <= end + timedelta(hours=2)


def test_complaint_groups_get_their_own_signal(ctx: RuleContext) -> None:
    det = ComplaintSurge(build_params(ComplaintSurge, {"groups": ["respiratory", "cardio=cardiac+stroke"]}), ctx)
    assert set(det.episodes) == {"respiratory", "cardio"}
    assert det.episodes["cardio"].signal == "ambulance.cardio_calls"


# --- against the simulator ------------------------------------------------------------------------


def simulate(scenario: str | None, seed: int, start_local: datetime, hours: float,
             detectors: Sequence[Detector]) -> tuple[list[Event], Any]:
    """Run the offline simulator with one scenario (or none) and feed ``detectors``; return events and truth."""
    from simulator.driver import plan_run
    from simulator.offline import deliveries
    from simulator.scenarios import load_library

    pack = load_pack(None)
    scenarios = [load_library()[scenario]] if scenario else []
    start = start_local.astimezone(UTC)
    duration = timedelta(hours=hours)
    run_ = plan_run(pack, seed=seed, start=start, duration=duration, scenarios=scenarios)
    events: list[Event] = []
    clock = start
    for d in deliveries(pack, seed=seed, start=start, duration=duration, run=run_):
        while clock + timedelta(minutes=1) <= d.at:
            clock += timedelta(minutes=1)
            for det in detectors:
                events += det.tick(clock)
        for det in detectors:
            if d.feed in det.feeds:
                events += det.observe(d.feed, d.records, d.at)
    return events, run_.truth


def warnings(events: Iterable[Event]) -> dict[str, Event]:
    """The first WARNING-or-worse emission of each episode."""
    out: dict[str, Event] = {}
    for e in events:
        if e.severity >= WARNING and e.id not in out:
            out[e.id] = e
    return out


@pytest.mark.slow
def test_simulated_ordinary_noise_raises_nothing() -> None:
    ctx = RuleContext(load_pack(None))
    detectors = [AppealHotspot(AppealHotspot.Params(), ctx), CallCluster(CallCluster.Params(), ctx),
                 ComplaintSurge(ComplaintSurge.Params(), ctx)]
    events, truth = simulate("ordinary_noise", 2, datetime(2026, 11, 16, 4, 0, tzinfo=ALMATY), 12, detectors)
    assert truth and truth[0].scenario == "ordinary_noise"
    assert warnings(events) == {}


@pytest.mark.slow
def test_simulated_water_main_break_is_found() -> None:
    ctx = RuleContext(load_pack(None))
    det = AppealHotspot(AppealHotspot.Params(), ctx)
    events, truth = simulate("water_main_break", 1, datetime(2026, 11, 16, 4, 0, tzinfo=ALMATY), 10, [det])
    incident = truth[0]
    found = list(warnings(events).values())
    assert len(found) == 1
    e = found[0]
    assert e.evidence["category"] == "water_supply"
    assert haversine_m(e.lat, e.lon, incident.lat, incident.lon) < 1500
    assert e.district == incident.district
    assert timedelta(0) < e.at - incident.start <= timedelta(minutes=40)


@pytest.mark.slow
def test_simulated_crash_raises_call_cluster_and_appeal_burst() -> None:
    ctx = RuleContext(load_pack(None))
    appeals, calls = AppealHotspot(AppealHotspot.Params(), ctx), CallCluster(CallCluster.Params(), ctx)
    events, truth = simulate("multi_vehicle_crash", 2, datetime(2026, 11, 16, 6, 0, tzinfo=ALMATY), 14,
                             [appeals, calls])
    incident = truth[0]
    found = warnings(events).values()
    by = {det: [e for e in found if e.detector == det] for det in ("appeal_hotspot", "call_cluster")}
    assert len(by["call_cluster"]) == 1 and len(by["appeal_hotspot"]) == 1
    c, a = by["call_cluster"][0], by["appeal_hotspot"][0]
    assert c.evidence["complaint"] == "road_trauma" and a.evidence["category"] == "roads"
    for e in (c, a):
        assert haversine_m(e.lat, e.lon, incident.lat, incident.lon) < 1500
    assert c.at - incident.start <= timedelta(minutes=25)
    assert a.at - incident.start <= timedelta(minutes=75)


@pytest.mark.slow
def test_simulated_smog_raises_respiratory_surge() -> None:
    ctx = RuleContext(load_pack(None))
    det = ComplaintSurge(ComplaintSurge.Params(), ctx)
    events, truth = simulate("smog_episode", 2, datetime(2026, 11, 16, 8, 0, tzinfo=ALMATY), 22, [det])
    surge = truth[0].start + timedelta(minutes=180)  # the call surge begins 3 h into the smog
    found = list(warnings(events).values())
    assert len(found) == 1
    assert found[0].signal == "ambulance.respiratory_calls"
    assert surge < found[0].at <= surge + timedelta(minutes=120)
