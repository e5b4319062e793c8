"""The traffic model: scores and segment flows, parsed by the real adapter, shaped like the real Almaty week."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from core.citypack import load_pack
from core.validate import validate
from feeds import get_feed
from simulator.effects import Effect, Effects
from simulator.engine import TICK, Emission, SimContext
from simulator.models.traffic import TrafficModel, profile_level, speed_ratio
from tests.conftest import shared_path
from tests.simulator._helpers import step_model

PACK = load_pack()
ZONE = PACK.zone
#: Monday 2026-11-02 00:00 local time.
MONDAY = datetime(2026, 11, 2, 0, 0, tzinfo=ZONE).astimezone(UTC)
ADAPTER = get_feed("traffic")


def _model(seed: int = 1, start: datetime = MONDAY, effects: list[Effect] | None = None) -> TrafficModel:
    return TrafficModel(SimContext(pack=PACK, seed=seed, start=start, effects=Effects(effects or [])))


def _run(model: TrafficModel, hours: float, dt: timedelta = timedelta(minutes=5)) -> list[Emission]:
    return step_model(model, hours, dt)


def _scores(emissions: list[Emission], provider: str) -> list[dict]:
    return [item for e in emissions if e.format == "score" for item in orjson.loads(e.payload)
            if item["provider"] == provider]


def _flows(emissions: list[Emission]) -> list[tuple[Emission, list[dict]]]:
    return [(e, orjson.loads(e.payload)) for e in emissions if e.format == "fiware"]


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(ZONE)


def _by_segment(emissions: list[Emission]) -> dict[tuple[str, str], dict]:
    return {(ent["refRoadSegment"], ent["dateObservedTo"]): ent for _, ents in _flows(emissions) for ent in ents}


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different():
    a = [(e.at, e.format, e.payload) for e in _run(_model(seed=7), 3)]
    b = [(e.at, e.format, e.payload) for e in _run(_model(seed=7), 3)]
    c = [(e.at, e.format, e.payload) for e in _run(_model(seed=8), 3)]
    assert a == b
    assert a != c


def test_output_does_not_depend_on_the_step_size():
    start = MONDAY + timedelta(hours=7, seconds=13)
    fine = _run(_model(start=start), 1.5, dt=TICK)
    coarse = _run(_model(start=start), 1.5, dt=timedelta(minutes=7))
    until = start + timedelta(hours=1.5)
    assert len(fine) > 100
    assert [(e.at, e.payload) for e in fine] == [(e.at, e.payload) for e in coarse if e.at <= until]


# --- volumes, formats, adapter ------------------------------------------------------------------


def test_cadence_of_each_source():
    emissions = _run(_model(), 2)
    yandex, dgis, flows = _scores(emissions, "yandex"), _scores(emissions, "2gis"), _flows(emissions)
    assert len(yandex) == 60 and len(dgis) == 120 and len(flows) == 24
    for items, seconds in ((yandex, 120), (dgis, 60)):
        times = [_local(i["observed_at"]) for i in items]
        gaps = {round((b - a).total_seconds() / seconds) for a, b in zip(times, times[1:], strict=False)}
        assert gaps == {1}
    for emission, entities in flows:
        assert len(entities) == len(PACK.roads)
        assert {e["refRoadSegment"] for e in entities} == {r.id for r in PACK.roads}
        window_end = _local(entities[0]["dateObservedTo"])
        assert window_end.minute % 5 == 0 and window_end <= emission.at
        assert _local(entities[0]["dateObservedTo"]) - _local(entities[0]["dateObservedFrom"]) == timedelta(minutes=5)
    assert all(0 <= i["score"] <= 10 and isinstance(i["score"], int) for i in yandex + dgis)
    assert all(i["area_id"] == "city" and i["trend"] in (-1, 0, 1) and i["jam_km"] >= 0 for i in yandex)


def test_every_payload_parses_without_rejection_inside_the_city_and_not_from_the_future():
    emissions = _run(_model(seed=3), 24)
    kinds: dict[str, int] = defaultdict(int)
    for emission in emissions:
        parsed = ADAPTER.format(emission.format).parse(emission.payload)
        assert not parsed.rejected, parsed.rejected[:1]
        assert parsed.records
        for record in parsed.records:
            validate(record, bounds=PACK.bounds, now=emission.at, max_future_s=0)
            kinds[type(record).__name__] += 1
    assert kinds["TrafficScore"] == 24 * 90
    assert kinds["TrafficFlow"] == 24 * 12 * len(PACK.roads)


def test_flow_entities_are_plausible():
    emissions = _run(_model(seed=4), 24)
    roads = {r.id: r for r in PACK.roads}
    for _, entities in _flows(emissions):
        for ent in entities:
            road = roads[ent["refRoadSegment"]]
            assert ent["freeFlowSpeed"] == road.speed_kmh
            assert ent["location"]["coordinates"] == [list(p) for p in road.line]
            assert 0 < ent["averageVehicleSpeed"] <= 1.05 * road.speed_kmh
            assert 0 <= ent["occupancy"] <= 0.95
            # at most the lanes' capacity (2,000 vehicles per lane per hour) in 5 minutes
            assert 0 <= ent["intensity"] <= road.lanes * 2000 / 12
            assert ent["congested"] == (ent["averageVehicleSpeed"] < 0.5 * road.speed_kmh)


# --- shape ------------------------------------------------------------------------------------


def test_profile_curve_shape():
    monday, saturday = MONDAY.astimezone(ZONE).date(), (MONDAY + timedelta(days=5)).astimezone(ZONE).date()
    assert all(profile_level(monday, h) == 0 for h in (1.5, 2, 3, 4, 5))
    assert 6.5 <= profile_level(monday, 8.25) <= 8 and 7.5 <= profile_level(monday, 18.25) <= 8.5
    assert 4.5 <= profile_level(monday, 12.5) <= 5.5
    assert profile_level(saturday, 8) < 1.0 and 3 <= max(profile_level(saturday, h / 4) for h in range(96)) <= 5.2


def test_speeds_fall_with_the_city_score():
    emissions = _run(_model(seed=5), 7 * 24, dt=timedelta(minutes=30))
    yandex = {_local(i["observed_at"]).replace(second=0): i["score"] for i in _scores(emissions, "yandex")}
    roads = {r.id: r for r in PACK.roads}
    ratios: dict[str, list[float]] = defaultdict(list)
    for _, entities in _flows(emissions):
        end = _local(entities[0]["dateObservedTo"])
        score = yandex.get(end)
        if score is None:
            continue
        band = "jam" if score >= 8 else "night" if score == 0 and end.hour in (2, 3, 4) else None
        if band:
            ratios[band] += [e["averageVehicleSpeed"] / e["freeFlowSpeed"] for e in entities
                             if roads[e["refRoadSegment"]].road_class in ("trunk", "primary")]
    assert len(ratios["jam"]) > 200 and len(ratios["night"]) > 200
    assert 0.35 <= statistics.median(ratios["jam"]) <= 0.5
    assert statistics.median(ratios["night"]) > 0.85
    assert speed_ratio(8, 1.0) == pytest.approx(0.415, abs=0.01)


# --- effects ------------------------------------------------------------------------------------


def _crash(start: datetime, **kw) -> Effect:
    road = PACK.roads[10]
    lat, lon = road.point_at(0.5)
    args = {"kind": "traffic_drop", "start": start, "end": start + timedelta(minutes=100), "incident_id": "crash-1",
            "lat": lat, "lon": lon, "radius_m": 1500, "targets": (road.id,), "ramp_s": 180,
            "params": {"speed_factor": 0.25, "city_score_delta": 1.5}}
    args.update(kw)
    return Effect(**args)


def test_traffic_drop_slows_the_segments_near_the_place_and_raises_the_city_score():
    start = MONDAY + timedelta(hours=10)  # 15:00 local
    effect = _crash(start)
    base = _run(_model(seed=9, start=start - timedelta(hours=1)), 4)
    hit = _run(_model(seed=9, start=start - timedelta(hours=1), effects=[effect]), 4)
    model = _model(effects=[effect])
    reached = model.reached(effect)
    assert PACK.roads[10].id in reached and 1 < len(reached) < len(PACK.roads)
    # nothing differs before the effect or after it
    assert [e.payload for e in base if e.at < start] == [e.payload for e in hit if e.at < start]
    assert [e.payload for e in base if e.at > effect.end + timedelta(minutes=6)] == \
           [e.payload for e in hit if e.at > effect.end + timedelta(minutes=6)]
    b, h = _by_segment(base), _by_segment(hit)
    plateau = [k for k in b if start + timedelta(minutes=10) <= _local(k[1]) <= effect.end - timedelta(minutes=5)]
    assert len(plateau) >= 15 * len(PACK.roads)
    for key in plateau:
        if key[0] in reached:
            assert h[key]["averageVehicleSpeed"] == pytest.approx(0.25 * b[key]["averageVehicleSpeed"], abs=0.1)
            assert h[key]["occupancy"] > b[key]["occupancy"] or h[key]["occupancy"] == 0.95
            assert h[key]["congested"] == (h[key]["averageVehicleSpeed"] < 0.5 * h[key]["freeFlowSpeed"])
        else:
            assert h[key] == b[key]
    assert any(h[k]["congested"] and not b[k]["congested"] for k in plateau)
    during = [(x["score"], y["score"]) for x, y in zip(_scores(base, "yandex"), _scores(hit, "yandex"), strict=True)
              if start + timedelta(minutes=5) <= _local(x["observed_at"]) < effect.end]
    assert all(y >= x and y <= 10 for x, y in during)
    assert 1.0 <= statistics.mean(y - x for x, y in during) <= 2.0


def test_traffic_drop_by_targets_alone_and_score_capped_at_ten():
    start = MONDAY + timedelta(hours=12, minutes=30)  # 17:30 local, evening rush
    targets = (PACK.roads[0].id, PACK.roads[40].id)
    effect = _crash(start, lat=None, lon=None, radius_m=None, targets=targets, ramp_s=0,
                    params={"speed_factor": 0.5, "city_score_delta": 6})
    hit = _run(_model(seed=2, start=start, effects=[effect]), 1)
    base = _run(_model(seed=2, start=start), 1)
    b, h = _by_segment(base), _by_segment(hit)
    changed = {k[0] for k in b if h[k] != b[k]}
    assert changed == set(targets)
    scores = [i["score"] for i in _scores(hit, "yandex") + _scores(hit, "2gis")]
    assert max(scores) == 10 and all(s <= 10 for s in scores)


# --- the real Almaty week ------------------------------------------------------------------------


def _hourly(pairs: list[tuple[datetime, float]]) -> dict[bool, list[float]]:
    """Mean per local hour, split into weekdays (True) and weekend (False)."""
    groups: dict[bool, dict[int, list[float]]] = {True: defaultdict(list), False: defaultdict(list)}
    for when, value in pairs:
        groups[when.weekday() < 5][when.hour].append(value)
    return {k: [statistics.mean(v[h]) for h in range(24)] for k, v in groups.items()}


def _peak(values: list[float], hours: range) -> int:
    return max(hours, key=lambda h: values[h])


@pytest.mark.shared_data
def test_simulated_week_matches_the_real_almaty_week():
    with shared_path("almaty/traffic_scores_2026-10-01_07.csv").open(encoding="utf-8", newline="") as fh:
        real = _hourly([(datetime.fromisoformat(r["ts_almaty"]), float(r["yandex_score"]))
                        for r in csv.DictReader(fh) if r["yandex_score"]])
    emissions = _run(_model(seed=11), 7 * 24)
    sim = _hourly([(_local(i["observed_at"]), i["score"]) for i in _scores(emissions, "yandex")])
    for weekday in (True, False):
        assert statistics.correlation(sim[weekday], real[weekday]) >= 0.9, weekday
        assert all(sim[weekday][h] < 0.2 for h in range(1, 6)), sim[weekday][1:6]
    for hours in (range(5, 12), range(12, 24)):
        assert abs(_peak(sim[True], hours) - _peak(real[True], hours)) <= 1
    assert abs(_peak(sim[False], range(24)) - _peak(real[False], range(24))) <= 1
    assert 6.3 <= max(sim[True][5:12]) <= 8.5 and 7 <= max(sim[True][12:24]) <= 9
    assert 3 <= max(sim[False]) <= 5.2
