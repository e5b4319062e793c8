"""Data-quality detectors: a silent station, a whole feed gone quiet, a station stuck on one value.

These say nothing about the city and everything about whether the other detectors can be
trusted: a smog episode is invisible through a dead station, a traffic drop through a dead feed.

* :class:`SilentSource` (``source.silent``): an air station that reported before has sent nothing
  for longer than ``factor`` times its own cadence (learnt per station).
* :class:`FeedOutage` (``feed.outage``): a feed that delivered before has delivered nothing for
  ``max(min_silence, factor × its cadence)``.
* :class:`StuckSource` (``source.stuck``): a station repeats exactly the same value of a pollutant
  for ``min_repeats`` readings in a row.

All three are WARNING: an operator must get the source fixed. They close as soon as the
condition is gone (data comes back, the value moves).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.schemas import iso
from workers.rules.base import WARNING, Detector, Episodes, Event, RuleContext, parse_time

#: The feeds of the app (FeedOutage watches them all unless told otherwise).
ALL_FEEDS = ("air", "traffic", "ambulance", "appeals")


class Cadence:
    """The usual gap between successive arrivals of one source, learnt from the last gaps seen.

    ``estimate`` is the ``quantile`` of the last ``history`` gaps (0.5: the median, robust to the
    one long gap of an outage once it is over), floored at ``floor_s``; ``default_s`` until
    ``min_gaps`` gaps have been seen over at least ``learn_s`` since the first arrival (a feed
    of bursts, like eleven air posts reporting within minutes every 20 minutes, shows only its
    short in-burst gaps at first). Gaps of zero (several records of one delivery) are ignored.
    """

    def __init__(self, *, history: int, min_gaps: int, default_s: float, floor_s: float,
                 quantile: float = 0.5, learn_s: float = 0.0) -> None:
        self.gaps: deque[float] = deque(maxlen=history)
        self.min_gaps = min_gaps
        self.default_s = default_s
        self.floor_s = floor_s
        self.quantile = quantile
        self.learn_s = learn_s
        self.first: datetime | None = None
        self.last: datetime | None = None

    def add(self, t: datetime) -> None:
        """Note an arrival at ``t`` (times not after the last one add no gap)."""
        if self.first is None:
            self.first = t
        if self.last is not None and t > self.last:
            self.gaps.append((t - self.last).total_seconds())
        if self.last is None or t > self.last:
            self.last = t

    @property
    def learnt(self) -> bool:
        """True once enough gaps have been seen to trust :attr:`estimate`."""
        if len(self.gaps) < self.min_gaps or self.first is None or self.last is None:
            return False
        return (self.last - self.first).total_seconds() >= self.learn_s

    @property
    def estimate(self) -> float:
        """The cadence in seconds."""
        if not self.learnt:
            return self.default_s
        ordered = sorted(self.gaps)
        if self.quantile == 0.5:
            value = statistics.median(ordered)
        else:
            value = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]
        return max(self.floor_s, value)


# ---------------------------------------------------------------------------------------
# a silent station


@dataclass(slots=True)
class _Station:
    cadence: Cadence
    last_seen: datetime
    last_observed: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    district: str | None = None


class SilentSource(Detector):
    """An air station that reported before and has been silent for ``factor`` × its own cadence.

    The cadence is learnt per station from the gaps between its successive ``observed_at``
    values (the source's own clock, so a worker reading the stream in batches does not
    distort it): the median of the last ``history`` gaps, floored at ``min_cadence_s``,
    ``default_cadence_s`` until ``min_gaps`` gaps are known. Silence is measured from the
    last time the station's records *arrived* (``now`` of that :meth:`observe`) to ``now``.
    The event is keyed by the station id, opens when the silence exceeds
    ``max(min_silence_s, factor × cadence)`` (onset = the last arrival) and closes when the
    station's data comes back. Evaluated on :meth:`tick` and :meth:`observe`.

    Default: ``factor`` 3 (the simulator's 20-minute posts: silent after 60 min, i.e. about
    two missed windows beyond the usual delivery jitter of a few minutes).
    """

    name = "source_silent"
    feeds = frozenset({"air"})
    signal = "source.silent"

    @dataclass(frozen=True)
    class Params:
        """Silence threshold: ``max(min_silence_s, factor × cadence)``."""

        factor: float = 3.0
        min_silence_s: float = 1200.0
        default_cadence_s: float = 3600.0
        min_cadence_s: float = 60.0
        min_gaps: int = 3
        history: int = 24

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        self.stations: dict[str, _Station] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(0))
        pack_stations = getattr(ctx.pack, "stations", ()) if ctx.pack is not None else ()
        self._district_of = {s.id: s.district_id for s in pack_stations}

    def _district(self, station_id: str, lat: float | None, lon: float | None) -> str | None:
        if self._district_of.get(station_id):
            return self._district_of[station_id]
        if lat is not None and lon is not None and self.ctx.pack is not None:
            district = self.ctx.pack.district_at(lat, lon)
            return district.id if district else None
        return None

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        p = self.params
        for record in records:
            station_id = record.get("station_id")
            if not station_id:
                continue
            st = self.stations.get(station_id)
            if st is None:
                st = _Station(Cadence(history=p.history, min_gaps=p.min_gaps, default_s=p.default_cadence_s,
                                      floor_s=p.min_cadence_s), last_seen=now)
                self.stations[station_id] = st
                st.district = self._district(station_id, record.get("lat"), record.get("lon"))
            st.last_seen = max(st.last_seen, now)
            observed = parse_time(record["observed_at"]) if record.get("observed_at") else now
            st.cadence.add(observed)
            st.last_observed = st.cadence.last
            if record.get("lat") is not None:
                st.lat, st.lon = record.get("lat"), record.get("lon")
        return self.tick(now)

    def tick(self, now: datetime) -> list[Event]:
        p = self.params
        out = []
        for station_id, st in self.stations.items():
            cadence = st.cadence.estimate
            threshold = max(p.min_silence_s, p.factor * cadence)
            silent_for = (now - st.last_seen).total_seconds()
            evidence = {
                "last_seen": iso(st.last_seen),
                "last_observed": iso(st.last_observed) if st.last_observed else None,
                "expected_cadence_s": round(cadence, 1), "cadence_learnt": st.cadence.learnt,
                "silent_for_s": round(silent_for, 1), "threshold_s": round(threshold, 1),
                "factor": p.factor,
            }
            event = self.episodes.report(station_id, silent_for > threshold, now, onset=st.last_seen,
                                         severity=WARNING, district=st.district, lat=st.lat, lon=st.lon,
                                         evidence=evidence)
            if event is not None:
                out.append(event)
        return out


# ---------------------------------------------------------------------------------------
# a whole feed gone quiet


class FeedOutage(Detector):
    """A feed that delivered before and has delivered nothing for ``max(min_silence_s, factor × cadence)``.

    A delivery is an :meth:`observe` call with at least one record; its ``now`` is the arrival.
    The cadence is a high ``quantile`` (default the 95th percentile) of the last ``history``
    gaps between arrivals, not the median: a feed's gaps are far from regular (the appeals
    feed sends one payload per moment something happens, a few a minute by day, minutes
    apart at night), and the silence that matters is one longer than the feed's *long* normal
    gaps. ``min_silence_s`` (15 min) keeps the fast feeds (ambulance positions every 10 s,
    traffic scores every minute) from alarming on a short hiccup of the transport. Until a feed
    has been watched for ``learn_s`` (2 h) its cadence is ``default_cadence_s`` (10 min, so
    30 min of silence).

    ``sparse_feeds`` get ``sparse_min_silence_s`` (default 2 h) instead: the appeals feed
    delivers nothing for long stretches of a normal night (few requests 01–06 local), and a
    threshold learnt from the day's gaps would cry wolf every night; an outage of appeals is
    also the least urgent to notice. Set ``sparse_feeds`` to ``()`` to treat every feed alike,
    or leave a feed out of ``watched`` to ignore it.
    """

    name = "feed_outage"
    feeds = frozenset(ALL_FEEDS)
    signal = "feed.outage"

    @dataclass(frozen=True)
    class Params:
        """Outage threshold: ``max(min_silence_s, factor × quantile of the gaps)``."""

        factor: float = 3.0
        quantile: float = 0.95
        min_silence_s: float = 900.0
        default_cadence_s: float = 600.0
        min_gaps: int = 10
        learn_s: float = 7200.0
        history: int = 500
        watched: tuple[str, ...] = ALL_FEEDS
        sparse_feeds: tuple[str, ...] = ("appeals",)
        sparse_min_silence_s: float = 7200.0

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        self.cadences: dict[str, Cadence] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(0))

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        p = self.params
        if records and feed in p.watched:
            cadence = self.cadences.get(feed)
            if cadence is None:
                cadence = self.cadences[feed] = Cadence(
                    history=p.history, min_gaps=p.min_gaps, default_s=p.default_cadence_s,
                    floor_s=1.0, quantile=p.quantile, learn_s=p.learn_s)
            cadence.add(now)
        return self.tick(now)

    def tick(self, now: datetime) -> list[Event]:
        p = self.params
        out = []
        for feed, cadence in self.cadences.items():
            assert cadence.last is not None
            floor = p.sparse_min_silence_s if feed in p.sparse_feeds else p.min_silence_s
            threshold = max(floor, p.factor * cadence.estimate)
            silent_for = (now - cadence.last).total_seconds()
            evidence = {"feed": feed, "last_delivery": iso(cadence.last),
                        "expected_gap_s": round(cadence.estimate, 1), "gap_quantile": p.quantile,
                        "cadence_learnt": cadence.learnt, "silent_for_s": round(silent_for, 1),
                        "threshold_s": round(threshold, 1)}
            event = self.episodes.report(feed, silent_for > threshold, now, onset=cadence.last,
                                         severity=WARNING, evidence=evidence)
            if event is not None:
                out.append(event)
        return out


# ---------------------------------------------------------------------------------------
# a stuck station


@dataclass(slots=True)
class _Run:
    value: float | None = None
    count: int = 0
    since: datetime | None = None
    last_observed: datetime | None = None
    unit: str | None = None


@dataclass(slots=True)
class _StuckStation:
    runs: dict[str, _Run] = field(default_factory=dict)
    last_seen: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    district: str | None = None


class StuckSource(Detector):
    """A station repeating exactly the same value of a pollutant for ``min_repeats`` readings in a row.

    Readings of one (station, parameter) are taken in ``observed_at`` order; a resent reading
    (same or older ``observed_at``) is ignored. Values at or below ``floor`` (default 0) never
    count: below the detection limit an analyser legitimately reports 0 (or its limit) reading
    after reading, so a run of zeros says nothing about a frozen instrument. The event is keyed
    by the station (one frozen analyser usually freezes several channels; its evidence lists
    each stuck parameter with its value, count and first time), onset = the first reading of
    the longest run, and closes when no parameter is stuck any more. A stuck station that then
    stops reporting for ``forget_after_s`` is closed here (:class:`SilentSource` takes over).

    Default ``min_repeats`` 6: at the simulator's 20-minute cadence, two hours of identical
    values; with the posts' resolution (0.1 µg/m³ on tens of µg/m³, 4 decimals in mg/m³ on
    gases) and 10 % reading noise, six equal values in a row by chance are practically
    impossible, while coarse hourly instruments would need a higher count (a parameter).
    """

    name = "source_stuck"
    feeds = frozenset({"air"})
    signal = "source.stuck"

    @dataclass(frozen=True)
    class Params:
        """Stuck when ``min_repeats`` consecutive readings are equal and above ``floor``."""

        min_repeats: int = 6
        floor: float = 0.0
        forget_after_s: float = 6 * 3600.0

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        self.stations: dict[str, _StuckStation] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(0))
        pack_stations = getattr(ctx.pack, "stations", ()) if ctx.pack is not None else ()
        self._district_of = {s.id: s.district_id for s in pack_stations}

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        touched: set[str] = set()
        for record in records:
            station_id, parameter, value = record.get("station_id"), record.get("parameter"), record.get("value")
            if not station_id or not parameter or value is None:
                continue
            st = self.stations.setdefault(station_id, _StuckStation())
            st.last_seen = now
            if record.get("lat") is not None:
                st.lat, st.lon = record["lat"], record["lon"]
            if st.district is None:
                st.district = self._district_of.get(station_id)
                if st.district is None and st.lat is not None and self.ctx.pack is not None:
                    d = self.ctx.pack.district_at(st.lat, st.lon)
                    st.district = d.id if d else None
            observed = parse_time(record["observed_at"]) if record.get("observed_at") else now
            run = st.runs.setdefault(str(parameter), _Run())
            if run.last_observed is not None and observed <= run.last_observed:
                continue
            run.last_observed = observed
            value = float(value)
            if value <= self.params.floor:
                run.value, run.count, run.since = None, 0, None
            elif run.value is not None and value == run.value:
                run.count += 1
            else:
                run.value, run.count, run.since, run.unit = value, 1, observed, record.get("unit")
            touched.add(station_id)
        out = [e for sid in sorted(touched) if (e := self._evaluate(sid, now)) is not None]
        return out + self.tick(now, skip=touched)

    def _evaluate(self, station_id: str, now: datetime) -> Event | None:
        st = self.stations[station_id]
        stuck = {p: r for p, r in st.runs.items() if r.count >= self.params.min_repeats}
        if not stuck:
            return self.episodes.report(station_id, False, now)
        longest_param, longest = max(stuck.items(), key=lambda item: (item[1].count, item[0]))
        assert longest.since is not None
        evidence = {
            "parameter": longest_param, "value": longest.value, "unit": longest.unit, "count": longest.count,
            "since": iso(longest.since), "min_repeats": self.params.min_repeats, "floor": self.params.floor,
            "parameters": {p: {"value": r.value, "unit": r.unit, "count": r.count,
                               "since": iso(r.since) if r.since else None} for p, r in sorted(stuck.items())},
        }
        return self.episodes.report(station_id, True, now, onset=longest.since, severity=WARNING,
                                    district=st.district, lat=st.lat, lon=st.lon, evidence=evidence)

    def tick(self, now: datetime, skip: set[str] | None = None) -> list[Event]:
        out = []
        horizon = timedelta(seconds=self.params.forget_after_s)
        for station_id in list(self.episodes.active):
            st = self.stations.get(station_id)
            if (skip and station_id in skip) or st is None or st.last_seen is None:
                continue
            if now - st.last_seen >= horizon:
                event = self.episodes.report(station_id, False, now)
                if event is not None:
                    out.append(event)
                st.runs.clear()
        return out
