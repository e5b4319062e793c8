"""Ambulance model: emergency calls of a city of about 2.3 million and the brigades that serve them.

Demand is a non-homogeneous Poisson process: about 1,800–2,000 calls a day with a daily shape
(lowest 03–06, rising through the morning, highest 18–22 local time), a little more on Mondays
and in winter. Calls fall in districts by population, at points near where people live
(:class:`CityPoints`). Each call has an urgency category (Kazakhstan 1–4, ``DOMAIN.md`` 4.2)
and a complaint; respiratory complaints rise in winter.

Brigades are based at the pack's substations. A call waits for the dispatcher (processing
delay), then the nearest free brigade is notified; without one the call queues, most urgent
first. A brigade's task follows the NEMSIS times (``DOMAIN.md`` 4.3): notified, en route after
the turnout, on scene after driving an L-shaped street path at 30–45 km/h (faster with lights
and siren), left scene, and for about 60 % of patients at the nearest hospital, transfer of
care, back in service, then it drives home and can be sent again on the way. Category-4 calls
on weekday daytime go to polyclinic emergency units (no AVL positions).

Emissions:
    ``calls`` (JSON array): a new call when received, then one update per call and tick carrying
        the NEMSIS times reached in that tick, the unit and the destination.
    ``gtfs-rt`` (protobuf ``FeedMessage``, FULL_DATASET) every 10 s: one ``VehiclePosition``
        per brigade.

Effects: ``call_surge`` (``calls`` extra calls near a place, or ``rate_multiplier`` on one
complaint's rate citywide or in a district) and ``unit_shortage`` (part of a district's brigades
out of service, slower hospital handovers there).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.transit import gtfs_realtime_pb2

from simulator.common import (
    M_PER_DEG,
    CityPoints,
    _flat_m,
    local_iso,
    poisson,
    weighted_choice,
    winterness,
)
from simulator.effects import Effect
from simulator.engine import Emission, SimContext

FEED = "ambulance"

#: Metres per degree of latitude (spherical Earth, as ``core.geo``).

# --- demand -----------------------------------------------------------------------------------

#: Calls on an ordinary summer Tuesday; the weekday and season factors below scale it.
DAILY_CALLS = 1830.0
#: Relative call rate by local hour (0–23): low 03–06, rising through the morning, peak 18–22.
HOUR_SHAPE = (3.4, 2.9, 2.4, 2.0, 1.8, 1.9, 2.4, 3.3, 4.3, 4.9, 5.1, 5.1,
              5.0, 4.9, 4.8, 4.8, 5.0, 5.4, 5.9, 6.3, 6.4, 6.1, 5.3, 4.3)
_HOUR_MEAN = sum(HOUR_SHAPE) / 24
#: Demand factor by local weekday, Monday first.
WEEKDAY_FACTOR = (1.06, 1.0, 1.0, 1.0, 1.0, 0.98, 0.97)
#: How wintry each month is (January first), 0..1: drives volume and respiratory complaints.
WINTER_VOLUME = 0.06
WINTER_RESPIRATORY = 0.8

CATEGORY_SHARES: Mapping[int, float] = {1: 0.05, 2: 0.20, 3: 0.45, 4: 0.30}
#: Complaint weights by category (respiratory is raised in winter).
COMPLAINTS: Mapping[int, Mapping[str, float]] = {
    1: {"cardiac": 34, "stroke": 20, "road_trauma": 12, "respiratory": 10, "obstetric": 5,
        "intoxication": 5, "fall": 6, "other": 8},
    2: {"cardiac": 18, "stroke": 8, "respiratory": 15, "road_trauma": 8, "fall": 10, "obstetric": 7,
        "intoxication": 7, "pain": 15, "psychiatric": 6, "other": 6},
    3: {"fever": 20, "pain": 25, "respiratory": 12, "fall": 12, "cardiac": 8, "psychiatric": 6,
        "intoxication": 5, "obstetric": 2, "other": 10},
    4: {"fever": 30, "pain": 30, "respiratory": 12, "fall": 5, "psychiatric": 5, "other": 18},
}

# --- dispatch and task times (seconds) --------------------------------------------------------

#: Call processing (call received -> unit notified) when a unit is free, by category.
PROCESSING_S: Mapping[int, tuple[float, float]] = {1: (30, 90), 2: (30, 120), 3: (60, 180), 4: (60, 180)}
TURNOUT_S = (30.0, 90.0)
TURNOUT_URGENT_S = (30.0, 60.0)
TURNOUT_ON_THE_ROAD_S = (5.0, 20.0)
ON_SCENE_S = (10 * 60.0, 30 * 60.0)
TRANSFER_S = (10 * 60.0, 30 * 60.0)
CLEAR_HOSPITAL_S = (60.0, 300.0)
CLEAR_SCENE_S = (30.0, 180.0)
#: How long a waiting call waits for a brigade of its own district before any brigade is sent, by category.
BORROW_AFTER_S: Mapping[int, float] = {1: 0.0, 2: 120.0, 3: 600.0, 4: 1200.0}
#: Share of patients taken to hospital, by category (about 60 % overall).
P_TRANSPORT: Mapping[int, float] = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.4}
#: Speed factor with lights and siren, by category.
SIREN: Mapping[int, float] = {1: 1.25, 2: 1.12, 3: 1.0, 4: 1.0}
#: Brigades when the pack does not say how many a substation has.
DEFAULT_UNITS = 130
POSITION_EVERY_S = 10

# --- polyclinic emergency units (category 4, weekday daytime) ---------------------------------

POLY_NOTIFY_S = (2 * 60.0, 10 * 60.0)
POLY_TURNOUT_S = (5 * 60.0, 15 * 60.0)
POLY_TRAVEL_S = (10 * 60.0, 30 * 60.0)
POLY_VISIT_S = (15 * 60.0, 30 * 60.0)


def hour_shape(local: datetime) -> float:
    """Relative rate at a local time (mean 1 over the day), interpolated between hour centres."""
    x = local.hour + local.minute / 60 + local.second / 3600 - 0.5
    i = math.floor(x)
    f = x - i
    return (HOUR_SHAPE[i % 24] * (1 - f) + HOUR_SHAPE[(i + 1) % 24] * f) / _HOUR_MEAN


def call_rate_per_s(local: datetime) -> float:
    """Baseline calls per second at a local time (all categories and complaints)."""
    factor = WEEKDAY_FACTOR[local.weekday()] * (1 + WINTER_VOLUME * winterness(local.month))
    return DAILY_CALLS * factor * hour_shape(local) / 86_400


def complaint_weights(category: int, month: int) -> dict[str, float]:
    """Complaint probabilities of a category in a month (respiratory raised in winter); sums to 1."""
    raw = dict(COMPLAINTS[category])
    if "respiratory" in raw:
        raw["respiratory"] *= 1 + WINTER_RESPIRATORY * winterness(month)
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def complaint_share(complaint: str, month: int) -> float:
    """Share of all calls with this complaint in a month."""
    return sum(p * complaint_weights(c, month).get(complaint, 0.0) for c, p in CATEGORY_SHARES.items())


def traffic_speed_kmh(local_hour: int) -> float:
    """Typical ambulance speed without siren at a local hour: 30 in rush hours to 45 at night."""
    if local_hour < 6 or local_hour >= 23:
        return 45.0
    if 7 <= local_hour < 10 or 17 <= local_hour < 20:
        return 30.0
    if local_hour < 7 or local_hour >= 21:
        return 40.0
    return 34.0


def street_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Length of the L-shaped street path between two points, metres (Manhattan distance)."""
    kx = math.cos(math.radians((a[0] + b[0]) / 2))
    return (abs(b[0] - a[0]) + abs(b[1] - a[1]) * kx) * M_PER_DEG


# --- units and their movements ------------------------------------------------------------------


@dataclass(slots=True)
class Leg:
    """One piece of a unit's plan: standing at a point, or driving a path, from ``t0`` to ``t1``.

    Attributes:
        t0, t1: POSIX seconds.
        points: ``(lat, lon)`` of the path (one point when standing).
        trip: the call id served, or None (returning home, idle).
        cum: cumulative length at each point, metres.
        bearings: bearing of each piece, degrees clockwise from north.
    """

    t0: float
    t1: float
    points: list[tuple[float, float]]
    trip: str | None
    cum: list[float] = field(default_factory=lambda: [0.0])
    bearings: list[float] = field(default_factory=list)

    @classmethod
    def stand(cls, t0: float, t1: float, point: tuple[float, float], trip: str | None) -> Leg:
        """Standing still at ``point``."""
        return cls(t0, t1, [point], trip)

    @classmethod
    def drive(cls, t0: float, a: tuple[float, float], b: tuple[float, float], speed_mps: float,
              trip: str | None, rng: random.Random) -> Leg:
        """Driving an L-shaped street path from ``a`` to ``b`` at ``speed_mps``, starting at ``t0``."""
        corner = (a[0], b[1]) if rng.random() < 0.5 else (b[0], a[1])
        points = [p for i, p in enumerate((a, corner, b)) if i == 0 or p != (a, corner, b)[i - 1]]
        cum, bearings = [0.0], []
        for (la1, lo1), (la2, lo2) in zip(points, points[1:], strict=False):
            dy = (la2 - la1) * M_PER_DEG
            dx = (lo2 - lo1) * M_PER_DEG * math.cos(math.radians((la1 + la2) / 2))
            cum.append(cum[-1] + math.hypot(dx, dy))
            bearings.append(math.degrees(math.atan2(dx, dy)) % 360.0)
        duration = max(1.0, cum[-1] / speed_mps)
        return cls(t0, t0 + duration, points, trip, cum, bearings)

    @property
    def end(self) -> tuple[float, float]:
        """Where the leg ends."""
        return self.points[-1]

    def at(self, t: float) -> tuple[float, float, float | None, float]:
        """``(lat, lon, bearing or None, speed m/s)`` at time ``t`` (clamped to the leg)."""
        if len(self.points) == 1 or t >= self.t1:
            return (*self.points[-1], self.bearings[-1] if self.bearings else None, 0.0)
        if t <= self.t0:
            return (*self.points[0], self.bearings[0], 0.0)
        length = self.cum[-1]
        target = length * (t - self.t0) / (self.t1 - self.t0)
        i = min(len(self.bearings) - 1, max(0, bisect.bisect_right(self.cum, target) - 1))
        piece = self.cum[i + 1] - self.cum[i]
        f = (target - self.cum[i]) / piece if piece > 0 else 1.0
        (la1, lo1), (la2, lo2) = self.points[i], self.points[i + 1]
        return la1 + (la2 - la1) * f, lo1 + (lo2 - lo1) * f, self.bearings[i], length / (self.t1 - self.t0)


@dataclass(eq=False, slots=True)
class Unit:
    """An ambulance brigade: where it is based and what it is doing.

    ``plan`` is a list of legs covering the current task; after the last leg ends the unit
    stands where that leg ended (at home after the drive back).
    """

    id: str
    label: str
    home: tuple[float, float]
    district: str | None
    plan: list[Leg]
    busy: bool = False
    bearing: float = 0.0

    def state(self, t: float) -> tuple[float, float, float, float, str | None, bool]:
        """``(lat, lon, bearing, speed m/s, trip, moving)`` at ``t``; ``t`` never decreases between calls."""
        plan = self.plan
        while len(plan) > 1 and plan[0].t1 <= t:
            plan.pop(0)
        leg = plan[0]
        lat, lon, bearing, speed = leg.at(t)
        if bearing is not None:
            self.bearing = bearing
        done = t >= leg.t1
        trip = None if done and len(plan) == 1 else leg.trip
        return lat, lon, self.bearing, speed, trip, speed > 0 and not done

    def at_home(self, t: float) -> bool:
        """True when idle at its substation."""
        leg = self.plan[-1]
        return not self.busy and t >= leg.t1 and leg.end == self.home


@dataclass(eq=False, slots=True)
class Call:
    """One emergency call as the model knows it."""

    id: str
    category: int
    complaint: str
    lat: float
    lon: float
    district: str | None
    received: float
    ready: float = 0.0
    seq: int = 0


# --- the model ----------------------------------------------------------------------------------


class AmbulanceModel:
    """Emergency calls and brigades of the city; see the module docstring.

    Args:
        ctx: the run's context (pack, seed, start, effects).
        position_every_s: seconds between two GTFS-realtime messages (default 10, as AVL servers
            send). Each message holds every brigade, so at 10 s a day is about 1.27 million
            position records; evaluation runs that do not look at positions may send fewer.

    Attributes:
        feed: ``"ambulance"``.
        units: the brigades, by id order.
    """

    feed = FEED

    def __init__(self, ctx: SimContext, *, position_every_s: float = POSITION_EVERY_S) -> None:
        if position_every_s <= 0:
            raise ValueError(f"position_every_s must be > 0, got {position_every_s}")
        self.position_every_s = position_every_s
        self.ctx = ctx
        self.pack = ctx.pack
        self.zone = ctx.pack.zone
        self.rng = ctx.rng(FEED)
        self.points = CityPoints(ctx.pack)
        self.units = self._make_units()
        self._local = self._local_districts()
        self.hospitals = [((h.lat, h.lon), h.names.ru) for h in ctx.pack.hospitals]
        self._events: list[tuple[float, int, str, Call, tuple[str, ...]]] = []
        self._queue: list[tuple[int, float, int, Call]] = []
        self._seq = 0
        self._day_counts: dict[str, int] = {}
        self._items: dict[str, dict[str, Any]] = {}
        self._out: set[str] = set()
        self._effect_rngs: dict[tuple[str, str, datetime], random.Random] = {}
        self._planned: list[tuple[float, int, Effect]] = []
        self._planned_effects: set[tuple[str, str, datetime]] = set()
        self._plan_new_surges(ctx.start.timestamp())

    # -- set-up ---------------------------------------------------------------------------------

    def _make_units(self) -> list[Unit]:
        stations = list(self.pack.substations)
        if not stations:
            lat, lon = self.pack.center
            return [Unit(f"AMB-00{k:02d}", f"Brigade {k}", (lat, lon), None, [Leg.stand(0, 0, (lat, lon), None)])
                    for k in range(1, DEFAULT_UNITS + 1)]
        default = max(1, round(DEFAULT_UNITS / len(stations)))
        units = []
        for n, station in enumerate(stations, start=1):
            home = (station.lat, station.lon)
            district = station.district_id or self.points.district_id(*home)
            for k in range(1, (station.units or default) + 1):
                units.append(Unit(f"AMB-{n:02d}{k:02d}", f"Brigade {k}, {station.names.en}", home, district,
                                  [Leg.stand(0, 0, home, None)]))
        return units

    def _local_districts(self) -> dict[str | None, set[str | None]]:
        """For each district, the districts whose brigades are its own (the nearest base's if it has none)."""
        based = {u.district for u in self.units}
        out: dict[str | None, set[str | None]] = {}
        for district in self.pack.districts:
            if district.id in based:
                out[district.id] = {district.id}
            else:
                nearest = min(self.units, key=lambda u: _flat_m(*district.centroid, *u.home))
                out[district.id] = {nearest.district}
        return out

    def _effect_rng(self, effect: Effect) -> random.Random:
        key = (effect.incident_id, effect.kind, effect.start)
        rng = self._effect_rngs.get(key)
        if rng is None:
            rng = self._effect_rngs[key] = self.ctx.rng(f"{FEED}:{effect.incident_id}:{effect.kind}:"
                                                         f"{effect.start.isoformat()}")
        return rng

    def _plan_new_surges(self, start: float) -> None:
        """Plan the fixed-count surges of effects planted since the last look (scenarios are planted a
        day ahead as the run goes on, after this model was built)."""
        new = [e for e in self.ctx.effects.all() if e.kind == "call_surge" and e.param("calls") is not None
               and (e.incident_id, e.kind, e.start) not in self._planned_effects]
        if not new:
            return
        self._planned_effects.update((e.incident_id, e.kind, e.start) for e in new)
        self._planned = sorted(self._planned + self._plan_fixed_surges(new, start), key=lambda p: (p[0], p[1]))

    def _plan_fixed_surges(self, effects: Iterable[Effect], start: float) -> list[tuple[float, int, Effect]]:
        """Times of the extra calls of every ``call_surge`` with ``calls``, drawn once (intensity-weighted)."""
        planned: list[tuple[float, int, Effect]] = []
        chosen = [e for e in effects if e.kind == "call_surge" and e.param("calls") is not None]
        for effect in sorted(chosen, key=lambda e: (e.start, e.incident_id)):
            rng = self._effect_rng(effect)
            t0, t1 = effect.start.timestamp(), effect.end.timestamp()
            for _ in range(round(float(effect.param("calls")))):
                for _ in range(200):
                    t = t0 + rng.random() * (t1 - t0)
                    if rng.random() < effect.intensity(datetime.fromtimestamp(t, UTC)):
                        break
                if t > start:
                    self._seq += 1
                    planned.append((t, self._seq, effect))
        planned.sort(key=lambda p: (p[0], p[1]))
        return planned

    # -- stepping -------------------------------------------------------------------------------

    def step(self, now: datetime, dt: timedelta) -> list[Emission]:
        """Advance from ``now - dt`` to ``now``; return the call updates and unit positions sent."""
        t1 = now.timestamp()
        t0 = t1 - dt.total_seconds()
        self._plan_new_surges(t0)
        self._update_shortage(now, t0)
        for t, call_spec in self._arrivals(now, t0, t1):
            self._push(t, "arrive", call_spec)
        out: list[Emission] = []
        every = self.position_every_s
        k = math.floor(t0 / every) + 1
        while k * every <= t1:
            b = k * every
            self._advance(b)
            out.append(Emission(datetime.fromtimestamp(b, UTC), FEED, "gtfs-rt", self._positions(b)))
            k += 1
        self._advance(t1)
        if self._items:
            payload = json.dumps(list(self._items.values()), ensure_ascii=False, separators=(",", ":"))
            out.append(Emission(now, FEED, "calls", payload.encode()))
            self._items = {}
        return out

    def _push(self, t: float, kind: str, call: Call, info: tuple[str, ...] = ()) -> None:
        """Schedule an event: ``arrive``, ``ready`` or ``time`` (info: NEMSIS name, unit id[, destination])."""
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, call, info))

    def _advance(self, until: float) -> None:
        """Process every event due by ``until``, in time order."""
        events = self._events
        while events and events[0][0] <= until:
            t, _, kind, call, info = heapq.heappop(events)
            if kind == "arrive":
                self._receive(call, t)
            elif kind == "ready":
                self._ready(call, t)
            elif kind == "recheck":
                self._serve_queue(t)
            else:
                self._stamp(call, info, t)

    # -- demand ---------------------------------------------------------------------------------

    def _arrivals(self, now: datetime, t0: float, t1: float) -> list[tuple[float, Call]]:
        """Calls received in ``(t0, t1]``: the baseline, the rate surges and the planned surges."""
        dt = t1 - t0
        local = now.astimezone(self.zone)
        rng = self.rng
        out = [(t1 - rng.random() * dt, self._baseline_call(rng, local))
               for _ in range(poisson(rng, call_rate_per_s(local) * dt))]
        for effect in self.ctx.effects.active("call_surge", now):
            if effect.param("rate_multiplier") is not None:
                out.extend(self._rate_surge(effect, now, local, t0, t1))
        while self._planned and self._planned[0][0] <= t1:
            t, _, effect = self._planned.pop(0)
            if t > t0:
                erng = self._effect_rng(effect)
                out.append((t, self._surge_call(effect, erng, self._surge_category(effect, erng, local))))
        out.sort(key=lambda p: p[0])
        return out

    def _baseline_call(self, rng: random.Random, local: datetime) -> Call:
        category = int(weighted_choice(rng, {str(c): p for c, p in CATEGORY_SHARES.items()}))
        complaint = weighted_choice(rng, complaint_weights(category, local.month))
        district, lat, lon = self.points.anywhere(rng)
        return Call("", category, complaint, lat, lon, district.id, 0.0)

    def _rate_surge(self, effect: Effect, now: datetime, local: datetime, t0: float, t1: float
                    ) -> list[tuple[float, Call]]:
        """Extra calls of one complaint: its baseline rate times ``(m - 1) * intensity``."""
        rng = self._effect_rng(effect)
        complaint = str(effect.param("complaint", "other"))
        m = float(effect.param("rate_multiplier", 1.0))
        rate = call_rate_per_s(local) * complaint_share(complaint, local.month) * (m - 1) * effect.intensity(now)
        if effect.district and not effect.radius_m:
            rate *= self._population_share(effect.district)
        out = []
        for _ in range(poisson(rng, max(0.0, rate) * (t1 - t0))):
            category = self._surge_category(effect, rng, local)
            out.append((t1 - rng.random() * (t1 - t0), self._surge_call(effect, rng, category, complaint)))
        return out

    def _surge_category(self, effect: Effect, rng: random.Random, local: datetime) -> int:
        complaint = str(effect.param("complaint", "other"))
        allowed = [int(c) for c in effect.param("categories", None) or CATEGORY_SHARES]
        weights = {str(c): CATEGORY_SHARES.get(c, 0.0) * complaint_weights(c, local.month).get(complaint, 0.0)
                   for c in allowed if c in CATEGORY_SHARES}
        if not weights or sum(weights.values()) <= 0:
            return rng.choice(allowed)
        return int(weighted_choice(rng, weights))

    def _surge_call(self, effect: Effect, rng: random.Random, category: int, complaint: str | None = None) -> Call:
        """An extra call of a surge: near its place, else in its district, else anywhere."""
        complaint = complaint or str(effect.param("complaint", "other"))
        district, lat, lon = self.points.for_effect(effect, rng)
        district_id = district.id if district is not None else None
        return Call("", category, complaint, lat, lon, district_id, 0.0)

    def _population_share(self, district_id: str) -> float:
        total = sum(d.population or 0 for d in self.pack.districts)
        district = self.pack.district(district_id)
        return (district.population or 0) / total if total else 1 / max(1, len(self.pack.districts))

    # -- call life ------------------------------------------------------------------------------

    def _receive(self, call: Call, t: float) -> None:
        """A call is received: give it an id, publish it, hand it to the dispatcher."""
        day = datetime.fromtimestamp(t, self.zone).strftime("%Y%m%d")
        n = self._day_counts[day] = self._day_counts.get(day, 0) + 1
        call.id, call.received = f"EMS-{day}-{n:05d}", t
        item: dict[str, Any] = {"call_id": call.id, "category": call.category, "complaint": call.complaint,
                                "lat": round(call.lat, 6), "lon": round(call.lon, 6)}
        if call.district:
            item["district"] = call.district
        item["times"] = {"call_received": local_iso(t, self.zone)}
        self._items[call.id] = item
        lo, hi = PROCESSING_S[call.category]
        self._push(t + self.rng.uniform(lo, hi), "ready", call)

    def _ready(self, call: Call, t: float) -> None:
        """The dispatcher has the call: polyclinic, a free brigade, or the queue."""
        call.ready = t
        if call.category == 4 and self._polyclinic_hours(t):
            self._polyclinic(call, t)
            return
        self._seq += 1
        call.seq = self._seq
        bisect.insort(self._queue, (call.category, t, call.seq, call), key=lambda e: e[:3])
        self._serve_queue(t)
        if BORROW_AFTER_S[call.category] > 0 and call in (e[3] for e in self._queue):
            self._push(t + BORROW_AFTER_S[call.category], "recheck", call)

    def _polyclinic_hours(self, t: float) -> bool:
        """Weekdays 08–18 and Saturday 08–12, local: category 4 goes to polyclinic units."""
        local = datetime.fromtimestamp(t, self.zone)
        if local.weekday() < 5:
            return 8 <= local.hour < 18
        return local.weekday() == 5 and 8 <= local.hour < 12

    def _polyclinic(self, call: Call, t: float) -> None:
        """A polyclinic emergency unit serves the call (no transport, no AVL position)."""
        rng = self.rng
        unit = f"PMSP-{call.district or 'city'}"
        t3 = t + rng.uniform(*POLY_NOTIFY_S)
        t5 = t3 + rng.uniform(*POLY_TURNOUT_S)
        t6 = t5 + rng.uniform(*POLY_TRAVEL_S)
        t9 = t6 + rng.uniform(*POLY_VISIT_S)
        for name, when in (("unit_notified", t3), ("en_route", t5), ("on_scene", t6), ("left_scene", t9),
                           ("back_in_service", t9)):
            self._push(when, "time", call, (name, unit))

    def _free_units(self) -> list[Unit]:
        return [u for u in self.units if not u.busy and u.id not in self._out]

    def _serve_queue(self, t: float) -> None:
        """Give waiting calls, most urgent first, the nearest eligible free brigade.

        A call first waits for a brigade of its own district; after ``BORROW_AFTER_S`` of its
        category any free brigade of the city may be sent.
        """
        while self._queue:
            free = self._free_units()
            if not free:
                return
            for index, (_, _, _, call) in enumerate(self._queue):
                eligible = free
                if t - call.ready < BORROW_AFTER_S[call.category]:
                    local = self._local.get(call.district)
                    eligible = [u for u in free if local is None or u.district in local]
                if eligible:
                    del self._queue[index]
                    self._dispatch(call, self._nearest(eligible, call, t), t)
                    break
            else:
                return

    def _nearest(self, units: Sequence[Unit], call: Call, t: float) -> Unit:
        """The brigade that would reach the call first (street distance; a standing unit needs a turnout)."""
        scene = (call.lat, call.lon)

        def cost(unit: Unit) -> float:
            lat, lon = unit.state(t)[:2]
            return street_m((lat, lon), scene) + (500.0 if unit.at_home(t) else 100.0)

        return min(units, key=cost)

    def _dispatch(self, call: Call, unit: Unit, t: float) -> None:
        """Plan the brigade's whole task and schedule the call's NEMSIS times."""
        rng = self.rng
        lat, lon = unit.state(t)[:2]
        start = (lat, lon)
        turnout = TURNOUT_URGENT_S if call.category == 1 else TURNOUT_S
        t5 = t + rng.uniform(*(turnout if unit.at_home(t) else TURNOUT_ON_THE_ROAD_S))
        scene = (call.lat, call.lon)
        unit.busy = True
        go = Leg.drive(t5, start, scene, self._speed(t5, SIREN[call.category]), call.id, rng)
        t6 = go.t1
        t9 = t6 + rng.uniform(*ON_SCENE_S)
        legs = [Leg.stand(t, t5, start, call.id), go, Leg.stand(t6, t9, scene, call.id)]
        times = [("unit_notified", t), ("en_route", t5), ("on_scene", t6), ("left_scene", t9)]
        destination = None
        if rng.random() < P_TRANSPORT[call.category]:
            point, destination = min(self.hospitals, key=lambda h: _flat_m(*scene, *h[0]))
            siren = 1.1 if call.category <= 2 else 1.0
            carry = Leg.drive(t9, scene, point, self._speed(t9, siren), call.id, rng)
            t11 = carry.t1
            t12 = t11 + rng.uniform(*TRANSFER_S) + self._handover_delay_s(call, t11)
            t13 = t12 + rng.uniform(*CLEAR_HOSPITAL_S)
            legs += [carry, Leg.stand(t11, t13, point, call.id)]
            times += [("at_destination", t11), ("transfer_of_care", t12)]
        else:
            point = scene
            t13 = t9 + rng.uniform(*CLEAR_SCENE_S)
            legs.append(Leg.stand(t9, t13, scene, call.id))
        times.append(("back_in_service", t13))
        legs.append(Leg.drive(t13, point, unit.home, self._speed(t13, 1.0), None, rng))
        unit.plan = legs
        for name, when in times:
            carrying = destination is not None and name in ("left_scene", "at_destination", "transfer_of_care")
            self._push(when, "time", call, (name, unit.id, destination) if carrying else (name, unit.id))

    def _speed(self, t: float, factor: float) -> float:
        """Driving speed in m/s at ``t`` (traffic by local hour, times the siren factor, ±10 %)."""
        hour = datetime.fromtimestamp(t, self.zone).hour
        return traffic_speed_kmh(hour) * factor * self.rng.uniform(0.9, 1.1) / 3.6

    def _handover_delay_s(self, call: Call, t: float) -> float:
        """Extra transfer-of-care time of ``unit_shortage`` effects in the call's district."""
        when = datetime.fromtimestamp(t, UTC)
        return sum(60.0 * float(e.param("handover_delay_min", 0)) * e.intensity(when)
                   for e in self.ctx.effects.active("unit_shortage", when)
                   if e.district is not None and e.district == call.district)

    def _stamp(self, call: Call, info: tuple[str, ...], t: float) -> None:
        """Publish one NEMSIS time of a call; a brigade back in service takes the next waiting call."""
        name, unit_id, *rest = info
        item = self._items.setdefault(call.id, {"call_id": call.id})
        item["unit_id"] = unit_id
        if rest:
            item["destination"] = rest[0]
        item.setdefault("times", {})[name] = local_iso(t, self.zone)
        if name == "back_in_service" and not unit_id.startswith("PMSP-"):
            unit = self._unit(unit_id)
            unit.busy = False
            self._serve_queue(t)

    def _unit(self, unit_id: str) -> Unit:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(unit_id)

    # -- shortage -------------------------------------------------------------------------------

    def _update_shortage(self, now: datetime, t: float) -> None:
        """Mark the brigades out of service under ``unit_shortage`` (busy ones finish their call first)."""
        out: set[str] = set()
        for effect in self.ctx.effects.active("unit_shortage", now):
            pool = [u for u in self.units if effect.district is None or u.district == effect.district]
            count = round(float(effect.param("fraction_out", 0.0)) * effect.intensity(now) * len(pool))
            out.update(u.id for u in pool[:count])
        released = bool(self._out - out)
        self._out = out
        if released:
            self._serve_queue(t)

    # -- positions ------------------------------------------------------------------------------

    def _positions(self, t: float) -> bytes:
        """A GTFS-realtime FeedMessage (FULL_DATASET) with every brigade's position at ``t``."""
        message = gtfs_realtime_pb2.FeedMessage()
        header = message.header
        header.gtfs_realtime_version = "2.0"
        header.incrementality = gtfs_realtime_pb2.FeedHeader.FULL_DATASET
        stamp = int(t)
        header.timestamp = stamp
        stopped, moving = gtfs_realtime_pb2.VehiclePosition.STOPPED_AT, gtfs_realtime_pb2.VehiclePosition.IN_TRANSIT_TO
        for unit in self.units:
            lat, lon, bearing, speed, trip, in_motion = unit.state(t)
            entity = message.entity.add()
            entity.id = unit.id
            vehicle = entity.vehicle
            vehicle.vehicle.id = unit.id
            vehicle.vehicle.label = unit.label
            if trip:
                vehicle.trip.trip_id = trip
            position = vehicle.position
            position.latitude = lat
            position.longitude = lon
            position.bearing = bearing
            position.speed = speed if in_motion else 0.0
            vehicle.current_status = moving if in_motion else stopped
            vehicle.timestamp = stamp
        return message.SerializeToString()
