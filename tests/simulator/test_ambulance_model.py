"""The ambulance model: demand, brigades and their NEMSIS times, positions, effects, and SF reality.

Runs use the real demo pack; a whole simulated day is run once per module and shared.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.transit import gtfs_realtime_pb2

from core.citypack import load_pack
from core.geo import haversine_m
from core.schemas import TIME_ORDER, UnitPosition
from feeds import get_feed
from simulator.effects import Effect, Effects
from simulator.engine import Emission, SimContext, Simulation
from simulator.models.ambulance import (
    CATEGORY_SHARES,
    COMPLAINTS,
    AmbulanceModel,
    call_rate_per_s,
    complaint_share,
)
from tests.conftest import shared_path

PACK = load_pack()
ZONE = PACK.zone
#: Local midnight starting Tuesday 3 November 2026.
DAY = datetime(2026, 11, 3, tzinfo=ZONE).astimezone(UTC)
NORMS = {1: 10, 2: 15, 3: 30, 4: 60}
ADAPTER = get_feed("ambulance")
UNITS = sum(s.units or 0 for s in PACK.substations)


def run(*, hours: float, effects: Sequence[Effect] = (), seed: int = 2, start: datetime = DAY) -> list[Emission]:
    """Every emission of the ambulance model alone over ``hours`` from ``start``."""
    ctx = SimContext(pack=PACK, seed=seed, start=start, effects=Effects(list(effects)))
    return list(Simulation(ctx, [AmbulanceModel(ctx)]).run(start + timedelta(hours=hours)))


def merge_calls(emissions: Sequence[Emission]) -> dict[str, dict[str, Any]]:
    """Calls merged from their records and updates: fields of the latest, the union of times."""
    calls: dict[str, dict[str, Any]] = {}
    for emission in emissions:
        if emission.format != "calls":
            continue
        for item in json.loads(emission.payload):
            call = calls.setdefault(item["call_id"], {"times": {}})
            for key, value in item.items():
                if key == "times":
                    call["times"].update({k: datetime.fromisoformat(v) for k, v in value.items()})
                else:
                    call[key] = value
    return calls


def response_min(call: dict[str, Any]) -> float:
    """Call received to unit on scene, minutes."""
    return (call["times"]["on_scene"] - call["times"]["call_received"]).total_seconds() / 60


def positions(emissions: Sequence[Emission], since: datetime, until: datetime) -> list[gtfs_realtime_pb2.FeedMessage]:
    """The GTFS-realtime messages sent in ``[since, until)``, decoded."""
    out = []
    for emission in emissions:
        if emission.format == "gtfs-rt" and since <= emission.at < until:
            message = gtfs_realtime_pb2.FeedMessage()
            message.ParseFromString(emission.payload)
            out.append(message)
    return out


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (linear interpolation, as numpy's default)."""
    ordered = sorted(values)
    x = (len(ordered) - 1) * q
    lo = math.floor(x)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (x - lo)


def in_window(call: dict[str, Any], start: datetime, end: datetime) -> bool:
    return start <= call["times"]["call_received"] < end


@pytest.fixture(scope="module")
def normal_day() -> list[Emission]:
    """An ordinary Tuesday in November, plus two hours for the last calls to finish."""
    return run(hours=26)


@pytest.fixture(scope="module")
def day_calls(normal_day: list[Emission]) -> list[dict[str, Any]]:
    """The calls received during the 24 hours of the normal day."""
    calls = merge_calls(normal_day).values()
    return [c for c in calls if in_window(c, DAY, DAY + timedelta(hours=24))]


# --- determinism and the real adapter -----------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = run(hours=1, seed=5)
    b = run(hours=1, seed=5)
    c = run(hours=1, seed=6)
    assert [(e.at, e.format, e.payload) for e in a] == [(e.at, e.format, e.payload) for e in b]
    assert [e.payload for e in a if e.format == "calls"] != [e.payload for e in c if e.format == "calls"]


def test_every_payload_parses_with_no_rejection_inside_the_city_and_not_in_the_future(normal_day):
    gtfs = ADAPTER.format("gtfs-rt")
    calls = ADAPTER.format("calls")
    checked = 0
    for i, emission in enumerate(normal_day):
        assert DAY < emission.at <= DAY + timedelta(hours=26)
        if emission.format == "gtfs-rt" and i % 7:
            continue  # every 7th position message: the others are built by the same code
        parsed = (gtfs if emission.format == "gtfs-rt" else calls).parse(emission.payload)
        assert parsed.rejected == [], parsed.rejected[:3]
        for record in parsed.records:
            for lat, lon in record.points():
                assert PACK.bounds.contains(lat, lon)
            assert all(t <= emission.at for t in record.all_times())
            checked += 1
    assert checked > 100_000


# --- demand -------------------------------------------------------------------------------------


def test_daily_volume_and_shape(day_calls):
    assert 1650 <= len(day_calls) <= 2150
    by_hour = Counter(c["times"]["call_received"].astimezone(ZONE).hour for c in day_calls)
    night = statistics.mean(by_hour[h] for h in (3, 4, 5))
    morning = statistics.mean(by_hour[h] for h in (9, 10, 11))
    evening = statistics.mean(by_hour[h] for h in (18, 19, 20, 21))
    assert night < 0.6 * morning
    assert morning < evening
    assert max(by_hour, key=lambda h: by_hour[h]) in range(17, 23)


def test_mondays_and_winter_bring_a_little_more():
    tuesday = datetime(2026, 11, 3, 12, tzinfo=ZONE)
    monday = datetime(2026, 11, 2, 12, tzinfo=ZONE)
    assert 1.02 < call_rate_per_s(monday) / call_rate_per_s(tuesday) < 1.12
    january, july = datetime(2026, 1, 13, 12, tzinfo=ZONE), datetime(2026, 7, 14, 12, tzinfo=ZONE)
    assert 1.02 < call_rate_per_s(january) / call_rate_per_s(july) < 1.12


def test_categories_complaints_and_districts(day_calls):
    n = len(day_calls)
    shares = Counter(c["category"] for c in day_calls)
    for category, share in CATEGORY_SHARES.items():
        assert abs(shares[category] / n - share) < max(0.025, share * 0.3), (category, shares[category] / n)
    known = {k for table in COMPLAINTS.values() for k in table}
    assert {c["complaint"] for c in day_calls} <= known
    by_district = Counter(c["district"] for c in day_calls)
    population = {d.id: d.population for d in PACK.districts}
    total = sum(population.values())
    for district, count in by_district.items():
        assert abs(count / n - population[district] / total) < 0.035, district
    for call in day_calls:
        assert PACK.district(call["district"]).contains(call["lat"], call["lon"])


def test_respiratory_share_is_higher_in_winter(day_calls):
    assert complaint_share("respiratory", 1) > 1.4 * complaint_share("respiratory", 7)
    july = run(hours=8, start=datetime(2026, 7, 14, 9, tzinfo=ZONE).astimezone(UTC), seed=3)
    summer = [c["complaint"] == "respiratory" for c in merge_calls(july).values()]
    winter = [c["complaint"] == "respiratory" for c in day_calls]
    assert sum(winter) / len(winter) > 1.2 * sum(summer) / len(summer)


# --- brigades and their times -------------------------------------------------------------------


def test_nemsis_times_in_order_and_every_brigade_back_in_service(day_calls):
    hospitals = {h.names.ru for h in PACK.hospitals}
    transported = 0
    for call in day_calls:
        times = call["times"]
        ordered = sorted(times, key=TIME_ORDER.__getitem__)
        assert [times[n] for n in ordered] == sorted(times[n] for n in ordered), call["call_id"]
        assert "unit_notified" in times and "back_in_service" in times, call["call_id"]
        assert {"en_route", "on_scene", "left_scene"} <= times.keys()
        if "at_destination" in times:
            transported += 1
            assert "transfer_of_care" in times and call["destination"] in hospitals
    assert 0.5 <= transported / len(day_calls) <= 0.7
    used = {c["unit_id"] for c in day_calls}
    brigades = {u for u in used if u.startswith("AMB-")}
    assert len(brigades) > 0.9 * UNITS
    assert used - brigades and all(u.startswith("PMSP-") for u in used - brigades)


def test_category_4_goes_to_polyclinics_on_weekday_daytime_only(day_calls):
    for call in (c for c in day_calls if c["category"] == 4):
        local = call["times"]["unit_notified"].astimezone(ZONE)
        if call["unit_id"].startswith("PMSP-"):
            assert 8 <= call["times"]["call_received"].astimezone(ZONE).hour < 18
            assert "at_destination" not in call["times"]
        elif 10 <= local.hour < 17:
            pytest.fail(f"category-4 call {call['call_id']} served by a brigade at {local}")


def test_response_times_meet_the_norms_on_a_normal_day(day_calls):
    for category, least in ((1, 0.70), (2, 0.80), (3, 0.90), (4, 0.90)):
        minutes = [response_min(c) for c in day_calls if c["category"] == category]
        within = sum(m <= NORMS[category] for m in minutes) / len(minutes)
        assert within >= least, (category, within)
    dispatch = [(c["times"]["unit_notified"] - c["times"]["call_received"]).total_seconds()
                for c in day_calls if c["category"] == 1]
    assert 25 <= statistics.median(dispatch) <= 180


def test_units_move_plausibly_and_return_home(normal_day):
    since, until = DAY + timedelta(hours=17), DAY + timedelta(hours=21)  # the evening peak
    messages = positions(normal_day, since, until)
    assert len(messages) == 4 * 360
    calls = merge_calls(normal_day)
    homes = {}
    for n, station in enumerate(PACK.substations, start=1):
        for k in range(1, station.units + 1):
            homes[f"AMB-{n:02d}{k:02d}"] = (station.lat, station.lon)
    previous: dict[str, tuple[int, float, float]] = {}
    came_home, on_scene = set(), set()
    for message in messages:
        assert message.header.gtfs_realtime_version == "2.0"
        assert message.header.incrementality == gtfs_realtime_pb2.FeedHeader.FULL_DATASET
        assert [e.vehicle.vehicle.id for e in message.entity] == sorted(homes)
        for entity in message.entity:
            v = entity.vehicle
            lat, lon, trip = v.position.latitude, v.position.longitude, v.trip.trip_id
            assert 0 <= v.position.speed <= 25
            stopped = v.current_status == gtfs_realtime_pb2.VehiclePosition.STOPPED_AT
            assert stopped == (v.position.speed == 0)
            if v.vehicle.id in previous:
                t0, lat0, lon0 = previous[v.vehicle.id]
                assert v.timestamp - t0 == 10
                assert haversine_m(lat0, lon0, lat, lon) <= 300, v.vehicle.id  # no teleporting
            previous[v.vehicle.id] = (v.timestamp, lat, lon)
            if trip:
                call = calls[trip]
                assert call["unit_id"] == v.vehicle.id
                if stopped and haversine_m(lat, lon, call["lat"], call["lon"]) < 20:
                    on_scene.add(trip)
            elif stopped and haversine_m(lat, lon, *homes[v.vehicle.id]) < 5:
                came_home.add(v.vehicle.id)
    assert len(on_scene) > 200
    assert len(came_home) > 0.8 * UNITS


# --- effects ------------------------------------------------------------------------------------


def _crash(start: datetime) -> Effect:
    segment = PACK.roads[3]
    lat, lon = segment.point_at(0.5)
    return Effect(kind="call_surge", start=start, end=start + timedelta(minutes=30), incident_id="crash-1",
                  lat=lat, lon=lon, radius_m=300,
                  params={"complaint": "road_trauma", "calls": 7, "categories": [1, 2]})


def test_call_surge_of_fixed_calls_lands_where_and_when_it_says():
    start = DAY + timedelta(hours=10)
    effect = _crash(start)
    calls = merge_calls(run(hours=12, effects=[effect])).values()
    near = [c for c in calls if haversine_m(c["lat"], c["lon"], effect.lat, effect.lon) <= 300
            and c["complaint"] == "road_trauma"]
    during = [c for c in near if in_window(c, effect.start, effect.end)]
    assert len(during) == 7 and len(near) == 7
    assert {c["category"] for c in during} <= {1, 2}


def test_call_surge_rate_multiplier_citywide_and_in_a_district():
    start, hours = DAY + timedelta(hours=9), 7
    window = (start, start + timedelta(hours=hours))

    def count(effects: list[Effect]) -> Counter[tuple[str, bool]]:
        emissions = run(hours=hours + 0.5, effects=effects, start=window[0] - timedelta(minutes=30))
        calls = merge_calls(emissions).values()
        return Counter((c.get("district"), c["complaint"] == "respiratory") for c in calls if in_window(c, *window))

    citywide = Effect(kind="call_surge", start=window[0], end=window[1], incident_id="smog-1",
                      lat=PACK.center[0], lon=PACK.center[1],
                      params={"complaint": "respiratory", "rate_multiplier": 2.2, "categories": [2, 3]})
    local = Effect(kind="call_surge", start=window[0], end=window[1], incident_id="smog-2", district="alatau",
                   params={"complaint": "respiratory", "rate_multiplier": 4.0})
    base, city, district = count([]), count([citywide]), count([local])

    def resp(c: Counter, inside: bool | None = None) -> int:
        return sum(v for (d, r), v in c.items() if r and (inside is None or (d == "alatau") == inside))

    def other(c: Counter) -> int:
        return sum(v for (_, r), v in c.items() if not r)

    assert 1.7 < resp(city) / resp(base) < 2.8
    assert 0.85 < other(city) / other(base) < 1.15
    assert 2.8 < resp(district, True) / resp(base, True) < 5.5
    assert 0.75 < resp(district, False) / resp(base, False) < 1.3


def test_effects_of_other_kinds_change_nothing_and_a_surge_changes_nothing_before_it_starts():
    base = run(hours=3)
    unrelated = [Effect(kind="appeal_burst", start=DAY, end=DAY + timedelta(hours=3), incident_id="w",
                        lat=43.25, lon=76.9, radius_m=900, params={"category": "water_supply", "rate_per_hour": 30}),
                 Effect(kind="traffic_drop", start=DAY, end=DAY + timedelta(hours=3), incident_id="t",
                        lat=43.25, lon=76.9, radius_m=900, params={"speed_factor": 0.2})]
    assert [e.payload for e in run(hours=3, effects=unrelated)] == [e.payload for e in base]
    later = run(hours=3, effects=[_crash(DAY + timedelta(hours=2))])
    cut = DAY + timedelta(hours=2)
    assert [e.payload for e in later if e.at < cut] == [e.payload for e in base if e.at < cut]
    assert [e.payload for e in later] != [e.payload for e in base]


@pytest.fixture(scope="module")
def shortage_runs(normal_day) -> dict[str, Any]:
    """Turksib (far from other bases) with 75 % of its brigades out from 07:00 to 23:00, two seeds."""
    effect = Effect(kind="unit_shortage", start=DAY + timedelta(hours=7), end=DAY + timedelta(hours=23),
                    incident_id="short-1", district="turksib", ramp_s=900,
                    params={"fraction_out": 0.75, "handover_delay_min": 35})
    return {"effect": effect,
            "normal": [normal_day, run(hours=24, seed=3)],
            "short": [run(hours=24, effects=[effect], seed=2), run(hours=24, effects=[effect], seed=3)]}


def _district_calls(runs: list[list[Emission]], effect: Effect) -> list[dict[str, Any]]:
    since = effect.start + timedelta(minutes=45)
    return [c for emissions in runs for c in merge_calls(emissions).values()
            if c.get("district") == effect.district and in_window(c, since, effect.end)
            and "on_scene" in c["times"] and not c["unit_id"].startswith("PMSP-")]


def test_unit_shortage_makes_responses_in_the_district_climb(shortage_runs):
    effect = shortage_runs["effect"]
    normal = _district_calls(shortage_runs["normal"], effect)
    short = _district_calls(shortage_runs["short"], effect)

    def within_10(calls: list[dict[str, Any]]) -> float:
        first = [response_min(c) <= 10 for c in calls if c["category"] == 1]
        assert len(first) >= 10
        return sum(first) / len(first)

    assert within_10(normal) >= 0.7
    assert within_10(short) <= within_10(normal) - 0.25
    assert statistics.median(map(response_min, short)) >= 1.6 * statistics.median(map(response_min, normal))

    def handover(calls: list[dict[str, Any]]) -> float:
        return statistics.mean((c["times"]["transfer_of_care"] - c["times"]["at_destination"]).total_seconds() / 60
                               for c in calls if "transfer_of_care" in c["times"])

    assert handover(short) >= handover(normal) + 25


def test_unit_shortage_takes_the_district_brigades_out_of_service(shortage_runs):
    effect = shortage_runs["effect"]
    at = effect.start + timedelta(hours=3)
    message = positions(shortage_runs["short"][0], at, at + timedelta(seconds=10))[0]
    bases = {f"{n:02d}": s for n, s in enumerate(PACK.substations, start=1) if s.district_id == effect.district}
    own = [e.vehicle for e in message.entity if e.vehicle.vehicle.id[4:6] in bases]
    assert len(own) == sum(s.units for s in bases.values())
    idle_home = [v for v in own if not v.trip.trip_id and v.position.speed == 0
                 and haversine_m(v.position.latitude, v.position.longitude, bases[v.vehicle.id[4:6]].lat,
                                 bases[v.vehicle.id[4:6]].lon) < 5]
    assert len(idle_home) >= 0.7 * len(own)
    calls = [c for c in merge_calls(shortage_runs["short"][0]).values() if in_window(c, at, effect.end)]
    sent = Counter(c["unit_id"][4:6] for c in calls if c["unit_id"].startswith("AMB-"))
    assert sum(sent[b] for b in bases) <= 0.12 * sum(sent.values())


# --- reality check ------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_response_minutes_are_of_the_same_order_as_san_francisco_medic_units(day_calls, capsys):
    """Almaty is not San Francisco: SF's ``Delay`` of emergency MEDIC responses is the yardstick of scale only.

    Urgent here = categories 1 and 2 (call received to on scene); there = SF priority E/3, which
    the sf-csv adapter maps to category 1.
    """
    with shared_path("ems/sf_fire_calls_sample.csv").open(newline="", encoding="utf-8") as fh:
        delays = [float(r["Delay"]) for r in csv.DictReader(fh)
                  if r["UnitType"] == "MEDIC" and r["Priority"] in ("E", "3") and r["Delay"] not in ("", "null")]
    simulated = [response_min(c) for c in day_calls if c["category"] in (1, 2)]
    sf = (statistics.median(delays), quantile(delays, 0.9))
    sim = (statistics.median(simulated), quantile(simulated, 0.9))
    with capsys.disabled():
        print(f"\nresponse minutes, urgent: simulated p50 {sim[0]:.2f} p90 {sim[1]:.2f} (n={len(simulated)}); "
              f"SF MEDIC E/3 Delay p50 {sf[0]:.2f} p90 {sf[1]:.2f} (n={len(delays)})")
    assert len(delays) > 200
    for ours, theirs in zip(sim, sf, strict=True):
        assert theirs / 2.5 <= ours <= theirs * 2.5


def test_unit_positions_parse_as_records(normal_day):
    message = next(e for e in normal_day if e.format == "gtfs-rt")
    parsed = ADAPTER.format("gtfs-rt").parse(message.payload)
    assert len(parsed.records) == UNITS
    assert all(isinstance(r, UnitPosition) and r.status == "stopped_at" for r in parsed.records)


def test_fixed_count_surges_happen_also_for_scenarios_planted_after_the_model_was_built():
    """Scenarios are planted a day ahead as a run goes on, after the models exist: the crash's
    seven injured callers must still call (they once never did)."""
    from datetime import UTC, datetime, timedelta

    from core.citypack import load_pack
    from simulator.driver import plan_run
    from simulator.offline import deliveries
    from simulator.scenarios import load_library

    pack = load_pack(None)
    start = datetime(2026, 11, 15, 19, 0, tzinfo=UTC)  # 00:00 in Almaty
    run = plan_run(pack, seed=2, start=start, duration=timedelta(hours=24),
                   scenarios=[load_library()["multi_vehicle_crash"]])
    from core.geo import haversine_m

    [crash] = run.truth
    near = set()
    for d in deliveries(pack, seed=2, start=start, duration=timedelta(hours=24), run=run):
        for r in d.records:
            received = r.get("times", {}).get("call_received") if r.get("kind") == "calls" else None
            if (received and r.get("complaint") == "road_trauma" and r.get("lat") is not None
                    and crash.start <= datetime.fromisoformat(received) <= crash.start + timedelta(minutes=31)
                    and haversine_m(r["lat"], r["lon"], crash.lat, crash.lon) <= 500):
                near.add(r["call_id"])
    # seven planted within 300 m; ordinary trauma calls near one spot in half an hour are rare
    assert 7 <= len(near) <= 8, f"{len(near)} road-trauma calls near {crash.id}"
