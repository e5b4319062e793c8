"""Simulated road traffic: the city's congestion score (Yandex, 2GIS) and the flow on the pack's road segments.

What it sends, like Almaty's real sources:

* ``score`` payloads: the Yandex score (integer 0–10, every 2 minutes, with trend and jam length) and the
  2GIS score (integer 1–10, every minute), area ``city``;
* one ``fiware`` payload every 5 minutes: an NGSI v2 keyValues array of ``TrafficFlowObserved`` entities,
  one per road segment of the pack, for the 5-minute window just ended.

The city's congestion is one latent level (0–10) per minute: a smooth daily profile by day type (our own
curve, shaped like the real Almaty week: weekday peaks near 7 at 08:00 and near 8 at 18:00, 5–5.5 at
midday, 0 from 01:00 to 05:00; weekend afternoons 3–5, no morning rush), times a day factor and shifted by
a few minutes per day (weather, events), times autocorrelated minute-to-minute noise. Segment speeds fall
with that level through a congestion curve (at level 8 an arterial runs at about 35–50 % of its free-flow
speed), with a fixed sensitivity per segment and autocorrelated noise per window.

Effects honoured: ``traffic_drop`` (see :meth:`TrafficModel._drop_factor` and :meth:`TrafficModel._score_boost`).

Deterministic and independent of the step size: every random draw happens on a fixed time grid (a minute,
a 5-minute window), so stepping by 5 s or by 5 minutes yields the same bytes.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from core.schemas import iso
from simulator.effects import Effect
from simulator.engine import Emission, SimContext

FEED = "traffic"
MINUTE = timedelta(minutes=1)
WINDOW = timedelta(minutes=5)

#: Latent congestion (0–10) by local hour for each day type: knots of a piecewise-linear curve.
#: Our own smooth profile, shaped after the real Almaty week (docs/feeds/traffic.md).
WEEKDAY: tuple[tuple[float, float], ...] = (
    (0.0, 0.7), (0.75, 0.15), (1.25, 0.0), (5.75, 0.0), (6.5, 0.35), (6.9, 1.8), (7.25, 4.6), (7.75, 6.6),
    (8.25, 7.5), (8.75, 7.2), (9.5, 6.3), (10.5, 5.4), (11.5, 4.8), (12.5, 5.0), (13.5, 5.5), (14.5, 5.4),
    (15.5, 5.4), (16.25, 6.1), (16.9, 6.9), (17.5, 7.6), (18.25, 8.1), (18.75, 7.7), (19.5, 6.4),
    (20.25, 4.3), (20.75, 3.0), (21.5, 1.8), (22.5, 1.15), (23.5, 0.8), (24.0, 0.7),
)
SATURDAY: tuple[tuple[float, float], ...] = (
    (0.0, 0.7), (0.75, 0.15), (1.25, 0.0), (7.5, 0.0), (8.25, 0.7), (9.0, 1.3), (10.0, 2.7), (11.0, 3.6),
    (12.0, 4.0), (13.0, 4.5), (14.5, 4.6), (15.5, 4.2), (16.5, 4.4), (17.5, 4.9), (18.3, 5.0), (19.0, 4.1),
    (20.0, 2.7), (21.0, 1.6), (22.0, 1.1), (23.0, 1.0), (24.0, 0.7),
)
SUNDAY: tuple[tuple[float, float], ...] = (
    (0.0, 0.7), (0.75, 0.15), (1.25, 0.0), (8.5, 0.0), (9.25, 0.5), (10.0, 1.0), (11.0, 1.6), (12.0, 2.1),
    (14.0, 2.2), (16.0, 2.3), (17.0, 2.9), (18.0, 3.9), (19.0, 3.6), (20.0, 2.1), (21.0, 1.2), (22.0, 1.0),
    (23.0, 1.2), (24.0, 0.7),
)
#: Added to the weekday curve on Fridays (a longer, heavier evening).
FRIDAY_EXTRA: tuple[tuple[float, float], ...] = ((0.0, 0.0), (12.0, 0.0), (15.0, 0.6), (19.5, 0.6), (22.5, 0.0),
                                                 (24.0, 0.0))

DAY_SD = 0.08          # log-sd of the day factor
DAY_SHIFT_MIN = 10.0   # the day's curve moves by up to this many minutes either way
NOISE_PHI = 0.96       # minute-to-minute autocorrelation of the city noise
NOISE_SD = 0.10        # its stationary log-sd
DGIS_SD = 0.06         # 2GIS's own reading of the city (log-sd, same autocorrelation)

#: Congestion curve: speed / free flow = r0 / (1 + A * sensitivity * (level / 10) ** B).
CURVE_A = 1.95
CURVE_B = 1.55
CLASS_SENSITIVITY = {"motorway": 0.8, "trunk": 1.0, "primary": 1.1, "secondary": 1.05}
#: Lane capacity, vehicles per hour, by road class.
LANE_CAPACITY = {"motorway": 1900, "trunk": 1700, "primary": 1500, "secondary": 1300, "tertiary": 1100}
DEFAULT_CAPACITY = 1000
EFFECTIVE_LENGTH_KM = 0.0065   # vehicle plus detector length: occupancy = density * this
SEGMENT_PHI = 0.8              # window-to-window autocorrelation of a segment's own noise
SEGMENT_SD = 0.15


def interpolate(knots: tuple[tuple[float, float], ...], x: float) -> float:
    """Piecewise-linear value of ``knots`` (ascending x) at ``x``, clamped at the ends."""
    if x <= knots[0][0]:
        return knots[0][1]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:], strict=False):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return knots[-1][1]


def profile_level(day: date, hour: float) -> float:
    """The typical latent congestion (0–10) of local ``day`` at local ``hour`` (0–24)."""
    weekday = day.weekday()
    if weekday == 5:
        return interpolate(SATURDAY, hour)
    if weekday == 6:
        return interpolate(SUNDAY, hour)
    level = interpolate(WEEKDAY, hour)
    if weekday == 4:
        level += interpolate(FRIDAY_EXTRA, hour)
    return level


def speed_ratio(level: float, sensitivity: float, free_ratio: float = 1.0) -> float:
    """Speed as a fraction of free flow at city congestion ``level`` (0–10) for a segment's ``sensitivity``."""
    return free_ratio / (1.0 + CURVE_A * sensitivity * (max(0.0, level) / 10.0) ** CURVE_B)


def _ceil_minute(t: datetime) -> datetime:
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + MINUTE


def _seg_distance_m(lat: float, lon: float, line: tuple[tuple[float, float], ...]) -> float:
    """Distance from a point to a polyline of ``(lon, lat)``, metres (local flat projection)."""
    kx = 111_320.0 * math.cos(math.radians(lat))
    ky = 110_574.0
    best = math.inf
    for (lon0, lat0), (lon1, lat1) in zip(line, line[1:], strict=False):
        ax, ay = (lon0 - lon) * kx, (lat0 - lat) * ky
        bx, by = (lon1 - lon) * kx, (lat1 - lat) * ky
        dx, dy = bx - ax, by - ay
        span = dx * dx + dy * dy
        t = 0.0 if span == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / span))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best


class _Segment:
    """A road segment with its fixed traits and its running noise."""

    __slots__ = ("road", "sensitivity", "free_ratio", "capacity_5min", "noise", "coords")

    def __init__(self, road: Any, rng: Any) -> None:
        self.road = road
        self.sensitivity = CLASS_SENSITIVITY.get(road.road_class, 1.0) * math.exp(rng.gauss(0.0, 0.22))
        self.free_ratio = rng.uniform(0.9, 1.02)
        self.capacity_5min = road.lanes * LANE_CAPACITY.get(road.road_class, DEFAULT_CAPACITY) / 12.0
        self.noise = rng.gauss(0.0, SEGMENT_SD)
        self.coords = [[lon, lat] for lon, lat in road.line]


class TrafficModel:
    """Traffic sources of the city: the two score providers and the segment flow broker.

    Args:
        ctx: the run's context; uses ``ctx.pack.roads``, ``ctx.pack.zone``, ``ctx.rng`` and ``ctx.effects``.
    """

    feed = FEED

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.zone = ctx.pack.zone
        self.rng = ctx.rng("traffic")
        self.seg_rng = ctx.rng("traffic.segments")
        static = ctx.rng("traffic.static")
        self.segments = [_Segment(road, static) for road in ctx.pack.roads]
        self.dgis_offset_s = static.randint(20, 35)
        self.yandex_offset_s = static.randint(25, 40)
        self.broker_delay_s = static.randint(15, 40)
        self.noise = self.rng.gauss(0.0, NOISE_SD)
        self.dgis_noise = self.rng.gauss(0.0, DGIS_SD)
        self.next_minute = _ceil_minute(ctx.start)
        self.history: deque[float] = deque(maxlen=16)
        self.window: list[float] = []
        self.pending: list[tuple[datetime, int, Emission]] = []
        self.sequence = 0
        self._days: dict[date, tuple[float, float]] = {}
        self._reach: dict[int, frozenset[str]] = {}

    # -- the step ------------------------------------------------------------------------------

    def step(self, now: datetime, dt: timedelta) -> list[Emission]:
        """Emissions sent in ``(now - dt, now]``, in time order.

        Works on a minute grid: every minute up to ``now`` is simulated once, in order, whatever ``dt`` is.
        """
        while self.next_minute <= now:
            self._minute(self.next_minute)
            self.next_minute += MINUTE
        out: list[Emission] = []
        while self.pending and self.pending[0][0] <= now:
            out.append(heapq.heappop(self.pending)[2])
        return out

    def _push(self, at: datetime, fmt: str, payload: bytes) -> None:
        self.sequence += 1
        heapq.heappush(self.pending, (at, self.sequence, Emission(at, FEED, fmt, payload)))

    def _minute(self, m: datetime) -> None:
        """Advance the city by one minute ending at ``m`` and queue what the sources send in it."""
        level = self.level_at(m)
        self.history.append(level)
        self.window.append(level)
        dgis_at = m + timedelta(seconds=self.dgis_offset_s + self.rng.randint(0, 2))
        self._push(dgis_at, "score", self._dgis_payload(level, dgis_at))
        if m.minute % 2 == 0:
            yandex_at = m + timedelta(seconds=self.yandex_offset_s + self.rng.randint(0, 3))
            self._push(yandex_at, "score", self._yandex_payload(level, yandex_at))
        if m.minute % 5 == 0:
            mean_level = sum(self.window) / len(self.window)
            self.window = []
            payload = self._segments_payload(m - WINDOW, m, mean_level)
            self._push(m + timedelta(seconds=self.broker_delay_s), "fiware", payload)

    # -- the city level ------------------------------------------------------------------------

    def _day(self, day: date) -> tuple[float, float]:
        """(factor, shift in minutes) of local ``day``, drawn from a generator of that date alone."""
        if day not in self._days:
            rng = self.ctx.rng(f"traffic.day:{day.isoformat()}")
            self._days = {d: v for d, v in self._days.items() if abs((d - day).days) <= 2}
            self._days[day] = (math.exp(rng.gauss(0.0, DAY_SD)), rng.uniform(-DAY_SHIFT_MIN, DAY_SHIFT_MIN))
        return self._days[day]

    def base_level(self, t: datetime) -> float:
        """Latent congestion at ``t`` without noise: the day's curve, scaled and shifted by the day's draw."""
        local = t.astimezone(self.zone)
        factor, shift = self._day(local.date())
        shifted = local - timedelta(minutes=shift)
        hour = shifted.hour + shifted.minute / 60.0 + shifted.second / 3600.0
        return factor * profile_level(shifted.date(), hour)

    def level_at(self, m: datetime) -> float:
        """Latent congestion of minute ``m``: advances the noise (call once per minute, in order)."""
        innovation = math.sqrt(1.0 - NOISE_PHI ** 2)
        self.noise = NOISE_PHI * self.noise + innovation * self.rng.gauss(0.0, NOISE_SD)
        self.dgis_noise = NOISE_PHI * self.dgis_noise + innovation * self.rng.gauss(0.0, DGIS_SD)
        return min(10.0, self.base_level(m) * math.exp(self.noise))

    def _score_boost(self, t: datetime) -> float:
        """What active ``traffic_drop`` effects add to the city score: ``city_score_delta`` x intensity."""
        return sum(float(e.param("city_score_delta", 0.0)) * e.intensity(t)
                   for e in self.ctx.effects.active("traffic_drop", t))

    def _trend(self, level: float) -> int:
        past = self.history[0]
        if level - past >= 0.75:
            return 1
        if past - level >= 0.75:
            return -1
        return 0

    def _yandex_payload(self, level: float, at: datetime) -> bytes:
        seen = min(10.0, level + self._score_boost(at))
        jam_km = (20.0 + 19.0 * seen) * math.exp(self.rng.gauss(0.0, 0.05))
        item = {"provider": "yandex", "area_id": "city", "score": int(seen + 0.5), "observed_at": iso(at),
                "trend": self._trend(level), "jam_km": round(jam_km, 1)}
        return orjson.dumps([item])

    def _dgis_payload(self, level: float, at: datetime) -> bytes:
        seen = level * (0.95 + 0.06 * max(0.0, level - 6.0)) * math.exp(self.dgis_noise) + self._score_boost(at)
        score = max(1, min(10, int(seen + 0.5)))
        return orjson.dumps([{"provider": "2gis", "area_id": "city", "score": score, "observed_at": iso(at)}])

    # -- segments ------------------------------------------------------------------------------

    def reached(self, effect: Effect) -> frozenset[str]:
        """Ids of the segments an effect acts on: its targets and those within ``radius_m`` of its place."""
        key = id(effect)
        if key not in self._reach:
            ids = set(effect.targets)
            if effect.lat is not None and effect.lon is not None and effect.radius_m:
                ids.update(s.road.id for s in self.segments
                           if _seg_distance_m(effect.lat, effect.lon, s.road.line) <= effect.radius_m)
            self._reach[key] = frozenset(ids)
        return self._reach[key]

    def _drop_factor(self, segment_id: str, effects: list[Effect], t: datetime) -> float:
        """Speed multiplier from ``traffic_drop`` effects: 1 - (1 - speed_factor) * intensity, per effect."""
        factor = 1.0
        for effect in effects:
            if segment_id in self.reached(effect):
                factor *= 1.0 - (1.0 - float(effect.param("speed_factor", 1.0))) * effect.intensity(t)
        return factor

    def _segments_payload(self, start: datetime, end: datetime, level: float) -> bytes:
        """NGSI v2 keyValues array of one window's observations, one entity per segment."""
        middle = start + WINDOW / 2
        effects = self.ctx.effects.active("traffic_drop", middle)
        demand = 0.06 + 0.84 * (1.0 - math.exp(-level / 2.5))
        innovation = math.sqrt(1.0 - SEGMENT_PHI ** 2)
        entities = []
        for seg in self.segments:
            seg.noise = SEGMENT_PHI * seg.noise + innovation * self.seg_rng.gauss(0.0, SEGMENT_SD)
            flow_noise = math.exp(self.seg_rng.gauss(0.0, 0.07))
            ratio = speed_ratio(level, seg.sensitivity * math.exp(seg.noise), seg.free_ratio)
            ratio *= self._drop_factor(seg.road.id, effects, middle) if effects else 1.0
            entities.append(self._entity(seg, start, end, ratio, demand * min(1.0, 0.55 + ratio) * flow_noise))
        return orjson.dumps(entities)

    def _entity(self, seg: _Segment, start: datetime, end: datetime, ratio: float, utilisation: float
                ) -> dict[str, Any]:
        road = seg.road
        speed = round(road.speed_kmh * ratio, 1)
        intensity = max(0, round(seg.capacity_5min * min(0.98, utilisation)))
        lane_flow_h = intensity * 12.0 / road.lanes
        occupancy = min(0.95, lane_flow_h / max(speed, 3.0) * EFFECTIVE_LENGTH_KM)
        return {
            "id": f"TrafficFlowObserved-{self.ctx.pack.id}-{road.id}", "type": "TrafficFlowObserved",
            "refRoadSegment": road.id, "name": road.names.en,
            "location": {"type": "LineString", "coordinates": seg.coords},
            "dateObserved": f"{iso(start)}/{iso(end)}", "dateObservedFrom": iso(start), "dateObservedTo": iso(end),
            "averageVehicleSpeed": speed, "intensity": intensity, "occupancy": round(occupancy, 3),
            "congested": speed < 0.5 * road.speed_kmh, "freeFlowSpeed": road.speed_kmh,
        }
