"""Road traffic detectors: a segment (or a group of neighbouring segments) whose speed collapses.

:class:`SegmentDrop` works on the 5-minute segment observations (``segments`` records) and
evaluates one observation window (all segments with the same ``observed_at``) at a time:

* own level: each segment's *baseline* is the median of its last ``baseline_windows`` speeds
  that were not themselves a drop (a drop is kept out of the baseline, for at most
  ``max_freeze_windows``, so a long collapse does not become its own baseline);
* ``own_ratio`` = speed / baseline; the city's ratio is the median ``own_ratio`` over all
  segments of the window; ``rel_ratio`` = own_ratio / city ratio. Rush hour slows every segment
  together: the city ratio falls with it and ``rel_ratio`` stays near 1;
* a segment *drops* when ``own_ratio <= own_ratio_max`` AND ``rel_ratio <= rel_ratio_max``;
* dropping segments whose lines come within ``group_m`` of each other form one cluster. A
  cluster of at least ``group_min`` segments is a WARNING at once; a lone segment is an ADVISORY
  unless it collapses below ``strong_ratio_max`` of the city, and a WARNING once it has dropped
  ``persist_windows`` windows in a row.

An episode is keyed by the worst segment of the cluster that opened it and continues while any
of its segments still drops. Its place is the segment's middle for a lone segment; for a cluster,
the point of the members' lines nearest to all of them (where they meet: a crash slows every
segment passing near it, and long segments' middles can be kilometres away from it), with
``radius_m`` its largest distance to a member; the worst segment's middle is in the evidence.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from core.geo import point_along
from workers.rules.base import ADVISORY, WARNING, Detector, Episodes, Event, RuleContext, parse_time

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0


class _Segment:
    """What the detector keeps about one road segment."""

    __slots__ = ("id", "speeds", "frozen", "drop_since", "drop_windows", "lat", "lon", "points", "free_flow",
                 "name")

    def __init__(self, segment_id: str, maxlen: int) -> None:
        self.id = segment_id
        self.speeds: deque[float] = deque(maxlen=maxlen)
        self.frozen = 0
        self.drop_since: datetime | None = None
        self.drop_windows = 0
        self.lat: float | None = None
        self.lon: float | None = None
        self.points: list[tuple[float, float]] = []
        self.free_flow: float | None = None
        self.name: str | None = None


@dataclass(slots=True)
class _Window:
    observed_at: datetime
    observed_from: datetime | None
    last_arrival: datetime
    speeds: dict[str, float]


class SegmentDrop(Detector):
    """A road segment whose speed collapses against its own recent level and against the city.

    Evidence: the segments (speed, baseline, ratios, free flow), the worst one's numbers, the
    city-wide ratio, the thresholds and the observation window.
    """

    name = "segment_drop"
    feeds = frozenset({"traffic"})

    @dataclass(frozen=True)
    class Params:
        """Parameters of :class:`SegmentDrop` (defaults calibrated on the simulator)."""

        baseline_windows: int = 12
        """A segment's own level: median of this many recent (non-drop) 5-minute speeds."""
        min_baseline: int = 3
        """Windows of history a segment needs before it is judged."""
        own_ratio_max: float = 0.6
        """Drop: speed at most this fraction of the segment's own baseline ..."""
        rel_ratio_max: float = 0.6
        """... and its own ratio at most this fraction of the city's median own ratio."""
        min_segments: int = 10
        """Segments needed in a window for a city-wide ratio."""
        strong_ratio_max: float = 0.45
        """A lone segment with ``rel_ratio`` at most this is a WARNING at once (quiet days reach about 0.7)."""
        persist_windows: int = 3
        """A lone dropping segment is a WARNING after this many windows in a row (ADVISORY before)."""
        group_m: float = 1500.0
        """Dropping segments whose lines come this close form one cluster."""
        group_min: int = 2
        """A cluster of at least this many dropping segments is a WARNING at once."""
        max_freeze_windows: int = 36
        """A drop stays out of its segment's baseline for at most this many windows."""
        settle_s: float = 90.0
        """An incomplete window is evaluated this long after its last record."""
        clear_after_min: float = 15.0
        """An episode closes after this long without a drop."""
        update_every_min: float = 15.0
        """Fresh evidence of an active episode at most this often."""

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        self.pack = ctx.pack if ctx is not None else None
        self.segments: dict[str, _Segment] = {}
        self.pending: dict[str, _Window] = {}
        self.expected = 0
        self.last_evaluated: datetime | None = None
        self.episodes = Episodes(self.name, "traffic.drop", clear_after=timedelta(minutes=params.clear_after_min),
                                 update_every=timedelta(minutes=params.update_every_min))
        self._members: dict[str, set[str]] = {}  # episode key -> its segments
        self._near: dict[tuple[str, str], bool] = {}
        self._centres: dict[frozenset[str], tuple[float | None, float | None, float]] = {}

    # -- input -----------------------------------------------------------------------------------

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        out: list[Event] = []
        pending = self.pending
        for record in records:
            if record.get("kind") != "segments":
                continue
            segment_id, stamp, speed = record.get("segment_id"), record.get("observed_at"), record.get("speed_kmh")
            if segment_id is None or not stamp or not isinstance(speed, (int, float)) or isinstance(speed, bool) \
                    or not math.isfinite(speed) or speed < 0:
                continue
            window = pending.get(stamp)
            if window is None:
                try:
                    observed_at = parse_time(stamp)
                except (TypeError, ValueError):
                    continue
                if self.last_evaluated is not None and observed_at <= self.last_evaluated:
                    continue  # late record of a window already judged
                start = record.get("observed_from")
                try:
                    observed_from = parse_time(start) if start else None
                except (TypeError, ValueError):
                    observed_from = None
                window = pending[stamp] = _Window(observed_at, observed_from, now, {})
            window.speeds[str(segment_id)] = float(speed)
            window.last_arrival = now
            segment = self.segments.get(str(segment_id))
            if segment is None:
                segment = self.segments[str(segment_id)] = _Segment(str(segment_id), self.params.baseline_windows)
            if segment.lat is None:
                self._place(segment, record)
        out.extend(self._flush(now))
        return out

    def tick(self, now: datetime) -> list[Event]:
        return self._flush(now)

    def _place(self, segment: _Segment, record: Mapping[str, Any]) -> None:
        """The segment's middle, its points (for nearness) and its free-flow speed."""
        geometry = record.get("geometry")
        line = None
        if isinstance(geometry, Mapping):
            geometry = geometry.get("coordinates")
        if isinstance(geometry, Sequence) and len(geometry) >= 2:
            try:
                line = [(float(p[0]), float(p[1])) for p in geometry]
            except (TypeError, ValueError, IndexError):
                line = None
        if line:
            segment.lat, segment.lon = point_along(line, 0.5)
            n = max(2, min(40, int(_line_m(line) / 250.0) + 2))
            segment.points = [point_along(line, i / (n - 1)) for i in range(n)]
        elif isinstance(record.get("lat"), (int, float)) and isinstance(record.get("lon"), (int, float)):
            segment.lat, segment.lon = float(record["lat"]), float(record["lon"])
            segment.points = [(segment.lat, segment.lon)]
        free = record.get("free_flow_kmh")
        if isinstance(free, (int, float)) and not isinstance(free, bool) and free > 0:
            segment.free_flow = float(free)
        segment.name = record.get("name")

    # -- windows ---------------------------------------------------------------------------------

    def _flush(self, now: datetime) -> list[Event]:
        """Evaluate the pending windows that are complete, superseded or settled, oldest first."""
        out: list[Event] = []
        settle = timedelta(seconds=self.params.settle_s)
        while self.pending:
            stamp, window = min(self.pending.items(), key=lambda kv: kv[1].observed_at)
            newer = len(self.pending) > 1
            complete = self.expected > 0 and len(window.speeds) >= self.expected
            settled = now - window.last_arrival >= settle
            if not (newer or complete or settled):
                break
            del self.pending[stamp]
            out.extend(self._evaluate(window, now))
        if not self.pending:
            out.extend(self._idle(now))
        return out

    def _idle(self, now: datetime) -> list[Event]:
        """Let active episodes run out when no data comes at all."""
        if self.last_evaluated is None or now - self.last_evaluated < timedelta(minutes=10):
            return []
        out = []
        for key in list(self.episodes.active):
            event = self.episodes.report(key, False, now)
            if event is not None:
                out.append(event)
                self._members.pop(key, None)
        return out

    def _evaluate(self, window: _Window, now: datetime) -> list[Event]:
        p = self.params
        self.last_evaluated = window.observed_at
        self.expected = max(self.expected, len(window.speeds)) if self.expected else len(window.speeds)
        ratios: dict[str, tuple[float, float]] = {}
        for segment_id, speed in window.speeds.items():
            segment = self.segments[segment_id]
            if len(segment.speeds) >= p.min_baseline:
                base = median(segment.speeds)
                if base > 0:
                    ratios[segment_id] = (speed / base, base)
        city = median(r for r, _ in ratios.values()) if len(ratios) >= p.min_segments else None
        dropping: dict[str, dict[str, Any]] = {}
        for segment_id, speed in window.speeds.items():
            segment = self.segments[segment_id]
            judged = ratios.get(segment_id)
            drop = False
            if judged is not None and city is not None and city > 0:
                own, base = judged
                rel = own / city
                drop = own <= p.own_ratio_max and rel <= p.rel_ratio_max
                if drop:
                    if segment.drop_windows == 0:
                        segment.drop_since = window.observed_from or window.observed_at
                    segment.drop_windows += 1
                    dropping[segment_id] = {"segment_id": segment_id, "speed_kmh": speed,
                                            "baseline_kmh": round(base, 1), "own_ratio": round(own, 3),
                                            "rel_ratio": round(rel, 3), "free_flow_kmh": segment.free_flow,
                                            "windows": segment.drop_windows}
            if not drop:
                segment.drop_windows = 0
                segment.drop_since = None
            if drop and segment.frozen < p.max_freeze_windows:
                segment.frozen += 1
            else:
                segment.frozen = 0 if not drop else segment.frozen
                segment.speeds.append(speed)
        return self._report(self._clusters(dropping), dropping, city, window, now)

    # -- clusters and episodes -------------------------------------------------------------------

    def _clusters(self, dropping: Mapping[str, Any]) -> list[list[str]]:
        """Connected groups of dropping segments (lines within ``group_m``), worst first inside."""
        ids = sorted(dropping, key=lambda s: dropping[s]["rel_ratio"])
        groups: list[list[str]] = []
        for segment_id in ids:
            joined = [g for g in groups if any(self._close(segment_id, other) for other in g)]
            merged = [segment_id]
            for g in joined:
                merged.extend(g)
                groups.remove(g)
            groups.append(sorted(merged, key=lambda s: dropping[s]["rel_ratio"]))
        return groups

    def _close(self, a: str, b: str) -> bool:
        key = (a, b) if a < b else (b, a)
        value = self._near.get(key)
        if value is None:
            pa, pb = self.segments[a].points, self.segments[b].points
            value = bool(pa and pb) and min(
                _flat_m(x[0], x[1], y[0], y[1]) for x in pa for y in pb) <= self.params.group_m
            self._near[key] = value
        return value

    def _centre(self, members: list[str]) -> tuple[float | None, float | None, float]:
        """Place of a cluster: a lone segment's middle; for several, the point of their lines nearest
        to all of them (where they meet, as a crash slowing them all), and its reach."""
        key = frozenset(members)
        cached = self._centres.get(key)
        if cached is not None:
            return cached
        worst = self.segments[members[0]]
        found: tuple[float | None, float | None, float] = (worst.lat, worst.lon, 0.0)
        lines = [self.segments[m].points for m in members if self.segments[m].points]
        if len(lines) >= 2:
            best = math.inf
            for line in lines:
                for lat, lon in line:
                    reach = max(min(_flat_m(lat, lon, a, b) for a, b in other) for other in lines)
                    if reach < best:
                        best, found = reach, (lat, lon, reach)
        if len(self._centres) > 1000:
            self._centres.clear()
        self._centres[key] = found
        return found

    def _report(self, clusters: list[list[str]], dropping: Mapping[str, dict[str, Any]], city: float | None,
                window: _Window, now: datetime) -> list[Event]:
        p = self.params
        out: list[Event] = []
        seen: set[str] = set()
        for members in clusters:
            worst = self.segments[members[0]]
            key = None
            for k, had in self._members.items():
                if k not in seen and had.intersection(members):
                    key = k
                    break
            key = key or members[0]
            seen.add(key)
            self._members[key] = set(members)
            persistent = max(dropping[m]["windows"] for m in members) >= p.persist_windows
            strong = dropping[members[0]]["rel_ratio"] <= p.strong_ratio_max
            severity = WARNING if len(members) >= p.group_min or persistent or strong else ADVISORY
            onset = min(self.segments[m].drop_since or window.observed_at for m in members)
            lat, lon, radius = self._centre(members)
            w = dropping[members[0]]
            evidence = {
                "segment_id": worst.id, "segment_name": worst.name, "segments": [dropping[m] for m in members],
                "speed_kmh": w["speed_kmh"], "baseline_kmh": w["baseline_kmh"], "own_ratio": w["own_ratio"],
                "city_ratio": round(city, 3) if city is not None else None, "rel_ratio": w["rel_ratio"],
                "free_flow_kmh": worst.free_flow, "own_ratio_max": p.own_ratio_max,
                "rel_ratio_max": p.rel_ratio_max, "windows": w["windows"], "unit": "km/h",
                "window_start": _iso(window.observed_from or window.observed_at),
                "window_end": _iso(window.observed_at),
                "segment_middle": [round(worst.lat, 6), round(worst.lon, 6)] if worst.lat is not None else None,
            }
            district = None
            if self.pack is not None and lat is not None:
                found = self.pack.district_at(lat, lon)
                district = found.id if found is not None else None
            event = self.episodes.report(
                key, True, now, onset=onset, severity=severity, district=district,
                lat=round(lat, 6) if lat is not None else None, lon=round(lon, 6) if lon is not None else None,
                radius_m=round(radius) if radius else None, evidence=evidence)
            if event is not None:
                out.append(event)
        for key in [k for k in self.episodes.active if k not in seen]:
            event = self.episodes.report(key, False, now)
            if event is not None:
                out.append(event)
            if key not in self.episodes.active:
                self._members.pop(key, None)
        return out


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _flat_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    kx = M_PER_DEG_LON_EQ * math.cos(math.radians(lat1))
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * M_PER_DEG_LAT)


def _line_m(line: Sequence[tuple[float, float]]) -> float:
    return sum(_flat_m(a[1], a[0], b[1], b[0]) for a, b in zip(line, line[1:], strict=False))
