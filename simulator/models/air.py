"""Simulated air quality: every monitoring post of the pack reports its pollutants every 20 minutes.

Each post sends one ``flat`` payload per 20-minute window (a JSON array, one reading per pollutant it
measures, ``averaging_s`` 1200, ``observed_at`` the end of the window) a minute or few after the window
closes. Units are the ones Kazhydromet posts report: PM2.5 and PM10 in µg/m³, gases in mg/m³ (the adapter
converts gases to ppb/ppm).

A concentration is the product of:

* a winter level per pollutant (mg/m³, the mean over the pack's posts), encoded from the real Almaty
  Kazhydromet winter 2024/25 (Dec–Jan; see ``tests/simulator/test_air_model.py`` for the comparison);
* a station factor: higher in the basin and the dense, road-heavy centre, lower on the foothills. The
  pack has no elevation, so the model assumes the foothills lie on the south side of the pack (as in
  Almaty) and grades stations by their position between the southernmost and northernmost post;
  density comes from the district's population per km² and the road length near the post;
* a daily profile by local hour (our own smoothing of the real hourly means: PM10 lowest about 08:00 and
  highest about 22:00; SO2 peaking at midday; O3, which the real data lacks, peaking mid-afternoon),
  flatter outside the heating season;
* a seasonal factor by month (heating-season smog: summer PM about half of winter);
* weather: a city-wide AR(1) "stagnation" factor with a day-and-a-half memory (some days clean, some bad,
  a log-sd of 0.5), a smaller per-station AR(1), and reading noise;
* PM2.5 is PM10 times a per-station ratio of 0.5–0.7.

Effects honoured: ``air_episode``, ``sensor_silent``, ``sensor_stuck`` (see :meth:`AirModel._window`).

Deterministic and independent of the step size: draws happen on the 20-minute grid, in station order,
for every pollutant, whether or not an effect hides or freezes the result.
"""

from __future__ import annotations

import heapq
import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from core.geo import haversine_m
from core.schemas import iso
from core.units import Pollutant, pollutant
from simulator.engine import Emission, SimContext

FEED = "air"
PERIOD = timedelta(minutes=20)
AVERAGING_S = 1200

PM25, PM10, NO2, SO2, CO, O3 = (Pollutant.PM25, Pollutant.PM10, Pollutant.NO2, Pollutant.SO2, Pollutant.CO,
                                Pollutant.O3)
#: Order in which values are drawn for a station (fixed, whatever the station measures).
DRAW_ORDER = (PM10, PM25, NO2, SO2, CO, O3)

#: Mid-winter level over the pack's posts, mg/m³ (the seasonal factor averages about 0.96 over Dec–Jan, so
#: the Dec–Jan mean comes out about 4 % lower). Real Almaty Dec 2024–Jan 2025, posts with live series:
#: PM10 0.093, NO2 about 0.18, SO2 about 0.035, CO about 1.07. O3 is not in the real data: a typical winter
#: urban background.
LEVEL_MG: dict[Pollutant, float] = {PM10: 0.096, NO2: 0.145, SO2: 0.031, CO: 0.98, O3: 0.035}

#: Relative level by local hour (value at hh:30), normalised to mean 1 below.
_DIURNAL_RAW: dict[Pollutant, tuple[float, ...]] = {
    PM10: (1.21, 1.19, 1.15, 1.08, 1.00, 0.92, 0.85, 0.79, 0.76, 0.78, 0.82, 0.86,
           0.89, 0.93, 0.95, 0.93, 0.91, 0.93, 0.97, 1.05, 1.13, 1.21, 1.26, 1.25),
    NO2: (1.14, 1.13, 1.12, 1.10, 1.08, 1.04, 1.00, 0.98, 1.00, 1.03, 1.03, 0.97,
          0.91, 0.85, 0.82, 0.82, 0.85, 0.90, 0.93, 0.96, 1.01, 1.06, 1.10, 1.13),
    SO2: (0.89, 0.88, 0.87, 0.87, 0.87, 0.87, 0.86, 0.85, 0.86, 0.90, 0.98, 1.13,
          1.30, 1.44, 1.42, 1.31, 1.16, 1.00, 0.94, 0.93, 0.92, 0.91, 0.90, 0.89),
    CO: (1.26, 1.17, 1.08, 0.99, 0.90, 0.82, 0.77, 0.80, 0.89, 0.96, 0.96, 0.90,
         0.84, 0.80, 0.79, 0.81, 0.84, 0.92, 1.04, 1.15, 1.25, 1.30, 1.31, 1.30),
    O3: (0.70, 0.66, 0.63, 0.61, 0.60, 0.60, 0.62, 0.68, 0.80, 0.96, 1.14, 1.32,
         1.46, 1.55, 1.57, 1.50, 1.36, 1.18, 1.00, 0.88, 0.80, 0.76, 0.73, 0.71),
}
DIURNAL: dict[Pollutant, tuple[float, ...]] = {
    p: tuple(v * 24 / sum(values) for v in values) for p, values in _DIURNAL_RAW.items()}

#: Factor by month (Jan..Dec), relative to Dec–Jan.
SEASON: dict[Pollutant, tuple[float, ...]] = {
    PM10: (1.0, 0.85, 0.65, 0.55, 0.5, 0.45, 0.45, 0.5, 0.5, 0.6, 0.8, 1.0),
    NO2: (1.0, 0.95, 0.85, 0.75, 0.7, 0.65, 0.65, 0.7, 0.75, 0.85, 0.95, 1.0),
    SO2: (1.0, 0.9, 0.7, 0.5, 0.4, 0.35, 0.35, 0.35, 0.4, 0.55, 0.8, 1.0),
    CO: (1.0, 0.9, 0.7, 0.5, 0.4, 0.35, 0.35, 0.35, 0.4, 0.55, 0.8, 1.0),
    O3: (1.0, 1.2, 1.5, 1.8, 2.1, 2.3, 2.4, 2.2, 1.8, 1.4, 1.1, 1.0),
}

#: How strongly each pollutant follows the weather's stagnation (O3 is titrated away in stagnant smog).
SENSITIVITY: dict[Pollutant, float] = {PM10: 1.0, NO2: 0.7, SO2: 0.4, CO: 0.6, O3: -0.3}
#: Station factor before normalisation: floor + basin * b + urban * u (b, u in 0..1).
EXPOSURE: dict[Pollutant, tuple[float, float, float]] = {
    PM10: (0.15, 1.0, 0.35), NO2: (0.25, 0.5, 0.8), SO2: (0.2, 0.9, 0.2), CO: (0.2, 0.7, 0.6),
    O3: (1.3, -0.4, -0.4),
}

STAGNATION_SD = 0.5
STAGNATION_PHI = 0.5 ** (1 / 72)   # lag-one-day autocorrelation 0.5 (real PM10 daily means: 0.48)
STATION_SD = 0.2
STATION_PHI = 0.97
READING_SD = 0.1
PM25_RATIO = (0.5, 0.7)
#: Half the log-variance of each pollutant's noise, taken off so that the noise keeps the mean level.
MEAN_CORRECTION: dict[Pollutant, float] = {
    p: ((k * STAGNATION_SD) ** 2 + (k * STATION_SD) ** 2 + READING_SD ** 2) / 2 for p, k in SENSITIVITY.items()}
UNIT_PM, UNIT_GAS = "µg/m³", "mg/m³"
DECIMALS_MG = {NO2: 4, SO2: 4, O3: 4, CO: 3}


def _ceil_period(t: datetime) -> datetime:
    floor = t.replace(minute=t.minute - t.minute % 20, second=0, microsecond=0)
    return floor if floor == t else floor + PERIOD


def _smoothstep(lo: float, hi: float, x: float) -> float:
    t = max(0.0, min(1.0, (x - lo) / (hi - lo)))
    return t * t * (3 - 2 * t)


def diurnal(pollutant: Pollutant, hour: float, amplitude: float = 1.0) -> float:
    """Relative level of ``pollutant`` at local ``hour`` (0–24, fractional), flattened by ``amplitude``."""
    table = DIURNAL[pollutant]
    x = (hour - 0.5) % 24
    i = int(x)
    value = table[i] + (table[(i + 1) % 24] - table[i]) * (x - i)
    return 1.0 + (value - 1.0) * amplitude


def season(pollutant: Pollutant, local: datetime) -> float:
    """Seasonal factor at a local time, interpolated between mid-month values."""
    table = SEASON[pollutant]
    x = local.month - 1 + (local.day - 1) / 31.0 - 0.5
    i = math.floor(x)
    return table[i % 12] + (table[(i + 1) % 12] - table[i % 12]) * (x - i)


def station_traits(pack: Any) -> dict[str, tuple[float, float]]:
    """``station id -> (basin, urban)``, each 0..1, from the pack alone.

    basin: position between the southernmost and northernmost post (the foothills are assumed on the
    south side), eased so that everything from the centre northwards counts as basin.
    urban: half the district's population density, half the road length within 2.5 km, each relative
    to the densest station.
    """
    stations = list(pack.stations)
    lats = [s.lat for s in stations]
    span = max(lats) - min(lats)
    density = {d.id: (d.population or 0) / max(d.area_m2 / 1e6, 1e-6) for d in pack.districts}
    roads = {s.id: _road_km_near(pack, s.lat, s.lon, 2500.0) for s in stations}
    dens = {s.id: density.get(s.district_id or "", 0.0) for s in stations}
    top_roads, top_dens = max(roads.values(), default=0.0) or 1.0, max(dens.values(), default=0.0) or 1.0
    out = {}
    for s in stations:
        basin = 1.0 if span == 0 else _smoothstep(0.08, 0.45, (s.lat - min(lats)) / span)
        out[s.id] = (basin, 0.5 * roads[s.id] / top_roads + 0.5 * dens[s.id] / top_dens)
    return out


def _road_km_near(pack: Any, lat: float, lon: float, radius_m: float) -> float:
    total = 0.0
    for road in pack.roads:
        pieces = 10
        for k in range(pieces):
            plat, plon = road.point_at((k + 0.5) / pieces)
            if haversine_m(lat, lon, plat, plon) <= radius_m:
                total += road.length_m / pieces / 1000.0
    return total


class _Station:
    """A post with its fixed traits and its running local weather."""

    __slots__ = ("station", "factors", "pm25_ratio", "delay_s", "local", "measures")

    def __init__(self, station: Any, factors: dict[Pollutant, float], rng: Any) -> None:
        self.station = station
        self.factors = factors
        self.pm25_ratio = rng.uniform(0.55, 0.66)
        self.delay_s = rng.randint(40, 240)
        self.local = rng.gauss(0.0, STATION_SD)
        self.measures = tuple(p for p in DRAW_ORDER if p in station.pollutants)


class AirModel:
    """The air monitoring posts of the city.

    Args:
        ctx: the run's context; uses ``ctx.pack.stations`` (with their pollutants), districts, roads and
            zone, ``ctx.rng`` and ``ctx.effects``.
    """

    feed = FEED

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.zone = ctx.pack.zone
        self.rng = ctx.rng("air")
        static = ctx.rng("air.static")
        self.stations = self._build_stations(ctx.pack, static)
        self.stagnation = self.rng.gauss(0.0, STAGNATION_SD)
        self.next_window = _ceil_period(ctx.start)
        self.pending: list[tuple[datetime, int, Emission]] = []
        self.sequence = 0
        self.last: dict[tuple[str, Pollutant], float] = {}
        self.frozen: dict[tuple[int, str, Pollutant], float] = {}

    @staticmethod
    def _build_stations(pack: Any, rng: Any) -> list[_Station]:
        traits = station_traits(pack)
        raw: dict[str, dict[Pollutant, float]] = {}
        for s in pack.stations:
            basin, urban = traits[s.id]
            raw[s.id] = {p: max(0.05, floor + wb * basin + wu * urban) * math.exp(rng.gauss(0.0, 0.12))
                         for p, (floor, wb, wu) in EXPOSURE.items()}
        means = {p: sum(r[p] for r in raw.values()) / max(1, len(raw)) for p in EXPOSURE}
        return [_Station(s, {p: raw[s.id][p] / means[p] for p in EXPOSURE}, rng) for s in pack.stations]

    # -- the step ------------------------------------------------------------------------------

    def step(self, now: datetime, dt: timedelta) -> list[Emission]:
        """Emissions sent in ``(now - dt, now]``, in time order (every 20-minute window is simulated once)."""
        while self.next_window <= now:
            self._window(self.next_window)
            self.next_window += PERIOD
        out: list[Emission] = []
        while self.pending and self.pending[0][0] <= now:
            out.append(heapq.heappop(self.pending)[2])
        return out

    def _window(self, end: datetime) -> None:
        """Simulate the window ending at ``end`` and queue each post's payload.

        Effects, judged at the window's end (``air_episode`` at its middle):
            air_episode: listed pollutants (all stations if no targets) x ``1 + (factor - 1) * intensity``;
            sensor_silent: the target posts send nothing;
            sensor_stuck: the target posts repeat, for ``params.pollutants``, the last value they sent
                before the effect began; their other pollutants stay live.
        """
        innovation = math.sqrt(1.0 - STAGNATION_PHI ** 2)
        self.stagnation = STAGNATION_PHI * self.stagnation + innovation * self.rng.gauss(0.0, STAGNATION_SD)
        middle = end - PERIOD / 2
        local = middle.astimezone(self.zone)
        hour = local.hour + local.minute / 60.0
        base = {p: LEVEL_MG[p] * season(p, local) * diurnal(p, hour, self._amplitude(local)) for p in LEVEL_MG}
        effects = self.ctx.effects
        silent = {t for e in effects.active("sensor_silent", end) for t in e.targets}
        episodes = effects.active("air_episode", middle)
        stuck = effects.active("sensor_stuck", end)
        for st in self.stations:
            values = self._values(st, base)
            at = end + timedelta(seconds=st.delay_s + self.rng.randint(0, 20))
            if st.station.id in silent:
                continue
            _apply_episodes(st.station.id, values, episodes, middle)
            self._emit(st, end, at, self._readings(st, values, stuck))

    def _amplitude(self, local: datetime) -> float:
        """Diurnal amplitude: 1 in the heating season, about 0.4 in summer (weaker inversions)."""
        return max(0.4, min(1.0, 0.4 + 0.6 * (season(PM10, local) - 0.45) / 0.55))

    def _values(self, st: _Station, base: dict[Pollutant, float]) -> dict[Pollutant, float]:
        """This window's concentrations at a post, mg/m³, for every pollutant (draws a fixed number)."""
        st.local = STATION_PHI * st.local + math.sqrt(1.0 - STATION_PHI ** 2) * self.rng.gauss(0.0, STATION_SD)
        weather = self.stagnation + st.local
        noise = {p: self.rng.gauss(0.0, READING_SD) for p in DRAW_ORDER}
        values = {p: base[p] * st.factors[p] * math.exp(k * weather + noise[p] - MEAN_CORRECTION[p])
                  for p, k in SENSITIVITY.items()}
        ratio = min(PM25_RATIO[1], max(PM25_RATIO[0], st.pm25_ratio * math.exp(0.4 * noise[PM25])))
        values[PM25] = values[PM10] * ratio
        return values

    def _readings(self, st: _Station, values: dict[Pollutant, float], stuck: list[Any]) -> dict[Pollutant, float]:
        """The values a post sends (its units), with stuck pollutants frozen at their last sent value."""
        sid = st.station.id
        out: dict[Pollutant, float] = {}
        for p in st.measures:
            value = _in_unit(p, values[p])
            for e in stuck:
                if sid in e.targets and p in _listed(e):
                    key = (id(e), sid, p)
                    value = self.frozen.setdefault(key, self.last.get((sid, p), value))
                    break
            else:
                self.last[(sid, p)] = value
            out[p] = value
        return out

    def _emit(self, st: _Station, end: datetime, at: datetime, readings: dict[Pollutant, float]) -> None:
        if not readings:
            return
        s = st.station
        items = [{"station_id": s.id, "station_name": s.names.en, "lat": s.lat, "lon": s.lon, "parameter": p.value,
                  "value": v, "unit": UNIT_PM if p in (PM25, PM10) else UNIT_GAS, "observed_at": iso(end),
                  "averaging_s": AVERAGING_S} for p, v in readings.items()]
        self.sequence += 1
        heapq.heappush(self.pending, (at, self.sequence, Emission(at, FEED, "flat", orjson.dumps(items))))


def _apply_episodes(station_id: str, values: dict[Pollutant, float], episodes: list[Any], t: datetime) -> None:
    """Multiply, in place, the pollutants each ``air_episode`` lists by ``1 + (factor - 1) * intensity``.

    An episode without targets acts on every station; with targets, on those station ids only.
    """
    for e in episodes:
        if not e.targets or station_id in e.targets:
            boost = 1.0 + (float(e.param("factor", 1.0)) - 1.0) * e.intensity(t)
            for p in _listed(e) & values.keys():
                values[p] *= boost


def _listed(effect: Any) -> set[Pollutant]:
    """The pollutants named in an effect's ``params.pollutants`` (any spelling the adapters accept)."""
    return {pollutant(name) for name in effect.param("pollutants", ())}


def _in_unit(pollutant: Pollutant, mg_m3: float) -> float:
    """A concentration rounded as the posts report it: PM in µg/m³ (0.1), gases in mg/m³."""
    if pollutant in (PM25, PM10):
        return round(mg_m3 * 1000.0, 1)
    return round(mg_m3, DECIMALS_MG[pollutant])
