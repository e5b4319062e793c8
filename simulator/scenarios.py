"""Scenario library: planted incidents as data files, placed in time and space, with ground truth.

A scenario is one JSON file in ``simulator/scenarios/`` (the format is in ``docs/simulator.md``).
:func:`plant` places it for one run: a time inside its window and a place (a district, station
or road segment) drawn from the run's seed, and turns its effects into :class:`Effect` values.
The :class:`PlantedIncident` it returns is the ground truth the detectors are scored against.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import ConfigError
from core.schemas import iso
from simulator.effects import KINDS, Effect

LIBRARY = Path(__file__).resolve().parent / "scenarios"


@dataclass(frozen=True)
class Scenario:
    """A scenario file, validated."""

    id: str
    type: str
    title: Mapping[str, str]
    description: str
    expect_incident: bool
    signals: tuple[str, ...]
    window: tuple[time, time]
    duration: timedelta
    where: Mapping[str, Any]
    effects: tuple[Mapping[str, Any], ...]
    path: Path


@dataclass(frozen=True)
class PlantedIncident:
    """Ground truth of one planted incident (one line of the ground-truth file)."""

    id: str
    scenario: str
    type: str
    start: datetime
    end: datetime
    expect_incident: bool
    signals: tuple[str, ...]
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    targets: tuple[str, ...] = ()
    title: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (times ISO UTC)."""
        out = asdict(self)
        out["start"], out["end"] = iso(self.start), iso(self.end)
        out["signals"], out["targets"] = list(self.signals), list(self.targets)
        return out


def load_library(directory: Path = LIBRARY) -> dict[str, Scenario]:
    """Every scenario file in ``directory`` by id.

    Raises:
        ConfigError: a file is invalid; the message names the file and the field.
    """
    out: dict[str, Scenario] = {}
    for path in sorted(directory.glob("*.json")):
        scenario = load_scenario(path)
        if scenario.id in out:
            raise ConfigError(f"{path}: scenario id {scenario.id!r} is also used by {out[scenario.id].path}")
        out[scenario.id] = scenario
    return out


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        when = data["when"]
        effects = tuple(data["effects"])
        for i, effect in enumerate(effects):
            if effect.get("kind") not in KINDS:
                raise ValueError(f"effects[{i}].kind {effect.get('kind')!r} is not one of {sorted(KINDS)}")
        return Scenario(
            id=str(data["id"]), type=str(data["type"]), title=dict(data.get("title", {})),
            description=str(data.get("description", "")), expect_incident=bool(data["expect_incident"]),
            signals=tuple(data.get("signals", ())),
            window=(time.fromisoformat(when["window"][0]), time.fromisoformat(when["window"][1])),
            duration=timedelta(minutes=float(when["duration_min"])), where=dict(data.get("where", {})),
            effects=effects, path=path)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise ConfigError(f"scenario {path}: {type(err).__name__}: {err}") from err


def plant(scenario: Scenario, *, pack: Any, day: datetime, rng: random.Random, number: int = 1
          ) -> tuple[PlantedIncident, list[Effect]]:
    """Place ``scenario`` on the local ``day`` of the simulated run and build its effects.

    Args:
        scenario: what to plant.
        pack: the city pack (districts, stations, segments).
        day: any time on the local day to plant on (UTC-aware).
        rng: the run's scenario generator (so placement is reproducible per seed).
        number: a running number making the incident id unique within the run.
    """
    zone = ZoneInfo(pack.timezone)
    local_day = day.astimezone(zone).date()
    lo = datetime.combine(local_day, scenario.window[0], zone)
    hi = datetime.combine(local_day, scenario.window[1], zone)
    start = (lo + timedelta(seconds=rng.uniform(0, max(0.0, (hi - lo).total_seconds())))).astimezone(day.tzinfo)
    start = start.replace(microsecond=0)
    end = start + scenario.duration
    place = resolve_place(scenario.where, pack, rng)
    incident_id = f"{scenario.id}-{number:03d}"
    effects = [_effect(spec, incident_id, start, place) for spec in scenario.effects]
    truth = PlantedIncident(
        id=incident_id, scenario=scenario.id, type=scenario.type, start=start,
        end=max([end, *(e.end for e in effects)]), expect_incident=scenario.expect_incident,
        signals=scenario.signals, district=place.get("district"), lat=place.get("lat"), lon=place.get("lon"),
        targets=tuple(place.get("targets", ())), title=scenario.title)
    return truth, effects


def _effect(spec: Mapping[str, Any], incident_id: str, start: datetime, place: Mapping[str, Any]) -> Effect:
    begin = start + timedelta(minutes=float(spec.get("offset_min", 0)))
    return Effect(
        kind=spec["kind"], start=begin, end=begin + timedelta(minutes=float(spec["duration_min"])),
        incident_id=incident_id, district=place.get("district"), lat=place.get("lat"), lon=place.get("lon"),
        radius_m=spec.get("radius_m"), targets=tuple(spec.get("targets", place.get("targets", ()))),
        params=dict(spec.get("params", {})), ramp_s=60.0 * float(spec.get("ramp_min", 0)))


def resolve_place(where: Mapping[str, Any], pack: Any, rng: random.Random) -> dict[str, Any]:
    """Turn a scenario's ``where`` into a district, a point and targets, drawing from ``rng``.

    ``where`` forms: ``{"district": "random" | id}``, ``{"station": "random" | id}``,
    ``{"segment": "random" | id}``, ``{"feed": name}``, ``{"city": true}``.
    """
    if "feed" in where:
        return {"targets": (str(where["feed"]),)}
    if "station" in where:
        station = _pick(pack.stations, where["station"], rng, "station")
        district = pack.district_at(station.lat, station.lon)
        return {"lat": station.lat, "lon": station.lon, "targets": (station.id,),
                "district": district.id if district else None}
    if "segment" in where:
        segment = _pick(pack.roads, where["segment"], rng, "road segment")
        lat, lon = segment.point_at(0.5)
        district = pack.district_at(lat, lon)
        return {"lat": lat, "lon": lon, "targets": (segment.id,), "district": district.id if district else None}
    if "district" in where:
        district = _pick(pack.districts, where["district"], rng, "district")
        lat, lon = district.centroid
        return {"district": district.id, "lat": lat, "lon": lon}
    lat, lon = pack.center
    return {"lat": lat, "lon": lon}


def _pick(items: Iterable[Any], wanted: Any, rng: random.Random, what: str) -> Any:
    pool = list(items)
    if not pool:
        raise ConfigError(f"the city pack has no {what}s to place a scenario on")
    if wanted == "random":
        return rng.choice(pool)
    for item in pool:
        if item.id == wanted:
            return item
    raise ConfigError(f"the city pack has no {what} {wanted!r}")


def write_truth(path: Path, incidents: Iterable[PlantedIncident]) -> None:
    """Write the ground truth as JSON lines (one planted incident each)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for incident in incidents:
            fh.write(json.dumps(incident.to_json(), ensure_ascii=False) + "\n")
