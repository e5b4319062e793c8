"""The scenario library: every file loads, plants reproducibly on the demo pack, and says what it expects."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.errors import ConfigError
from simulator.effects import KINDS
from simulator.scenarios import LIBRARY, load_library, load_scenario, plant, write_truth

PACK = load_pack()
DAY = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)

REQUIRED = {"water_main_break", "multi_vehicle_crash", "smog_episode", "ambulance_shortage", "silent_sensor",
            "stuck_sensor", "feed_outage", "ordinary_noise"}


def test_library_has_every_required_scenario_and_each_says_what_it_moves():
    library = load_library()
    assert REQUIRED <= set(library)
    for scenario in library.values():
        assert scenario.title.keys() >= {"en", "ru", "kk"}, scenario.id
        assert scenario.effects, scenario.id
        assert scenario.expect_incident == bool(scenario.signals), scenario.id
        assert all(e["kind"] in KINDS for e in scenario.effects)
    assert library["ordinary_noise"].expect_incident is False


@pytest.mark.parametrize("scenario_id", sorted(REQUIRED))
def test_planting_is_reproducible_and_lands_inside_the_city_and_window(scenario_id):
    scenario = load_library()[scenario_id]
    a = plant(scenario, pack=PACK, day=DAY, rng=random.Random("1:scenarios"))
    b = plant(scenario, pack=PACK, day=DAY, rng=random.Random("1:scenarios"))
    assert a == b
    truth, effects = a
    local_start = truth.start.astimezone(PACK.zone).time()
    assert scenario.window[0] <= local_start <= scenario.window[1]
    assert truth.end >= truth.start + scenario.duration - timedelta(seconds=1)
    assert len(effects) == len(scenario.effects)
    if truth.lat is not None:
        assert PACK.bounds.contains(truth.lat, truth.lon)
    if "district" in scenario.where:
        assert truth.district in {d.id for d in PACK.districts}
    line = json.dumps(truth.to_json())
    assert truth.id in line and truth.start.isoformat()[:16] in json.dumps(truth.to_json()).replace("Z", "+00:00")


def test_different_seeds_place_incidents_differently():
    scenario = load_library()["water_main_break"]
    places = {plant(scenario, pack=PACK, day=DAY, rng=random.Random(f"{seed}:scenarios"))[0].district
              for seed in range(12)}
    starts = {plant(scenario, pack=PACK, day=DAY, rng=random.Random(f"{seed}:scenarios"))[0].start
              for seed in range(12)}
    assert len(places) >= 3 and len(starts) >= 6


def test_truth_file_is_json_lines(tmp_path):
    truth, _ = plant(load_library()["smog_episode"], pack=PACK, day=DAY, rng=random.Random(3))
    path = tmp_path / "truth.jsonl"
    write_truth(path, [truth, truth])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["type"] == "smog" and rows[0]["signals"] == ["air.pm_rise",
                                                                                      "ambulance.respiratory_calls"]


def test_a_bad_scenario_file_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "type": "t", "expect_incident": True, "when": {"window": ["08:00"]},
                               "effects": []}))
    with pytest.raises(ConfigError, match="bad.json"):
        load_scenario(bad)
    bad.write_text(json.dumps({"id": "x", "type": "t", "expect_incident": True,
                               "when": {"window": ["08:00", "09:00"], "duration_min": 5},
                               "effects": [{"kind": "earthquake", "duration_min": 5}]}))
    with pytest.raises(ConfigError, match="earthquake"):
        load_scenario(bad)


def test_library_directory_is_the_packaged_one():
    assert LIBRARY.is_dir() and len(list(LIBRARY.glob("*.json"))) >= len(REQUIRED)


def test_a_whole_local_day_plants_every_scenario_once_and_the_truth_is_complete(tmp_path):
    from simulator.driver import plan_run, save_truth

    midnight = datetime(2026, 11, 3, tzinfo=PACK.zone).astimezone(UTC)
    run = plan_run(PACK, seed=5, start=midnight, duration=timedelta(days=1))
    assert sorted(t.scenario for t in run.truth) == sorted(load_library())
    path = tmp_path / "truth.jsonl"
    save_truth(run, path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len(load_library())
    for row in rows:
        assert {"id", "scenario", "type", "start", "end", "expect_incident", "signals", "district", "lat",
                "lon", "targets", "title"} <= set(row)
        assert row["start"] < row["end"]
        assert row["lat"] is not None or row["targets"], row  # a place, or the feed it silences
    effects = run.simulation.ctx.effects.all()
    assert {e.incident_id for e in effects} == {row["id"] for row in rows}


def test_a_long_run_plants_day_by_day_and_appends_the_truth(tmp_path):
    from simulator.driver import plan_run, save_truth

    start = datetime(2026, 11, 3, 8, 0, tzinfo=PACK.zone).astimezone(UTC)
    run = plan_run(PACK, seed=9, start=start, duration=timedelta(days=3650))
    first = len(run.truth)
    assert first <= 2 * len(load_library())  # today and tomorrow, not ten years
    path = tmp_path / "truth.jsonl"
    save_truth(run, path)
    run.plant_through(start + timedelta(days=1))  # one more local day becomes "tomorrow"
    assert len(run.truth) == first + len(load_library())
    assert len(path.read_text().splitlines()) == len(run.truth)
    # incidents of the start day before 08:00 are not planted; those of the next day are
    assert all(t.start >= start for t in run.truth)
    assert {t.start.astimezone(PACK.zone).date() for t in run.truth} >= {start.date() + timedelta(days=1)}
