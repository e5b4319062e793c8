"""What every detector shares: the event it raises, its episodes, its parameters, its context.

A detector is a pure stateful rule: records (the JSON dicts the feed streams hold) and the clock
go in, :class:`Event` values come out. No I/O, no wall clock: ``now`` is always passed in, so the
same detector runs live (``now`` = wall time), in the simulator benchmark (``now`` = simulated
time) and in ``sitcen backtest`` (``now`` = the row's time) and gives the same answers.

An *event* is one episode of one condition on one thing (a station, a road segment, a district,
a cell of the city, a feed): it opens when the condition starts, may be updated while it lasts
(its severity rose, its evidence changed), and closes when the condition has been gone for a
while. Each emitted :class:`Event` carries the episode's id, so consumers fold the open / update /
close values of one id into one thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from core.schemas import iso

#: Severity levels, lowest first. ADVISORY events are shown (a station's AQI is unhealthy, a district
#: is busier than usual) but open no incident; WARNING and CRITICAL events open or join one (an
#: operator must act; CRITICAL has the short SLA). An incident's severity is its events' highest.
ADVISORY, WARNING, CRITICAL = 1, 2, 3
SEVERITY_NAMES = {ADVISORY: "advisory", WARNING: "warning", CRITICAL: "critical"}

Phase = Literal["open", "update", "closed"]


@dataclass(frozen=True, slots=True)
class Event:
    """One episode of a detected condition, as of one moment.

    Attributes:
        id: ``<detector>:<key>:<onset epoch s>``, stable for the whole episode.
        detector: registered name of the detector that raised it.
        signal: what kind of thing happened, from a small shared vocabulary (``appeals.burst``,
            ``traffic.drop``, ``ambulance.calls``, ``ambulance.respiratory_calls``,
            ``ambulance.response_time``, ``air.pm_rise``, ``air.aqi``, ``source.silent``,
            ``source.stuck``, ``feed.outage`` ...); correlation rules and the simulator's ground
            truth speak this vocabulary.
        key: the thing it is about (station id, segment id, district id, grid cell, feed name).
        phase: ``open`` (first emission), ``update`` or ``closed``.
        onset: when the condition began (start of the evidence window), UTC.
        detected_at: when the detector first raised it (``now`` at opening), UTC.
        at: the moment of this emission (``now``), UTC.
        severity: :data:`ADVISORY`, :data:`WARNING` or :data:`CRITICAL`.
        district: district id of the place, if known.
        lat, lon: the place (a station, a segment's middle, a cluster's centre), if any.
        radius_m: the reach of the place (a cluster's radius), if any.
        evidence: JSON-ready numbers behind the decision: value(s), baseline, threshold, unit,
            window start/end, counts, the test statistic. Enough for an operator to check it.
        ended_at: when the condition ended (``closed`` events only).
    """

    id: str
    detector: str
    signal: str
    key: str
    phase: Phase
    onset: datetime
    detected_at: datetime
    at: datetime
    severity: int
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    ended_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (times ISO UTC)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("onset", "detected_at", "at", "ended_at"):
            if out[name] is not None:
                out[name] = iso(out[name])
        out["evidence"] = dict(self.evidence)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """Inverse of :meth:`to_json`."""
        kwargs = dict(data)
        for name in ("onset", "detected_at", "at", "ended_at"):
            if kwargs.get(name) is not None:
                kwargs[name] = datetime.fromisoformat(kwargs[name])
        return cls(**kwargs)


@dataclass(slots=True)
class _Episode:
    onset: datetime
    detected_at: datetime
    severity: int
    last_true: datetime
    fields: dict[str, Any]


class Episodes:
    """Turns a per-key condition evaluated over time into open / update / closed events.

    Call :meth:`report` with the condition's value each time it is evaluated. An episode opens
    when the condition becomes true, emits an update when its severity rises (or, if
    ``update_every`` is set, at most that often with fresh evidence), and closes once the
    condition has been false for ``clear_after``: hysteresis, so a value flickering around a
    threshold is one episode, not ten.
    """

    def __init__(self, detector: str, signal: str, *, clear_after: timedelta,
                 update_every: timedelta | None = None) -> None:
        self.detector = detector
        self.signal = signal
        self.clear_after = clear_after
        self.update_every = update_every
        self.active: dict[str, _Episode] = {}
        self._last_update: dict[str, datetime] = {}

    def report(self, key: str, active: bool, now: datetime, *, onset: datetime | None = None,
               severity: int = WARNING, district: str | None = None, lat: float | None = None,
               lon: float | None = None, radius_m: float | None = None,
               evidence: Mapping[str, Any] | None = None) -> Event | None:
        """Record the condition of ``key`` at ``now``; return the event to emit, if any."""
        episode = self.active.get(key)
        if active:
            fields = {"district": district, "lat": lat, "lon": lon, "radius_m": radius_m,
                      "evidence": dict(evidence or {})}
            if episode is None:
                episode = _Episode(onset=min(onset or now, now), detected_at=now, severity=severity,
                                   last_true=now, fields=fields)
                self.active[key] = episode
                self._last_update[key] = now
                return self._event(key, episode, "open", now)
            episode.last_true = now
            raised = severity > episode.severity
            episode.severity = max(episode.severity, severity)
            episode.fields = fields
            due = self.update_every is not None and now - self._last_update[key] >= self.update_every
            if raised or due:
                self._last_update[key] = now
                return self._event(key, episode, "update", now)
            return None
        if episode is not None and now - episode.last_true >= self.clear_after:
            del self.active[key]
            self._last_update.pop(key, None)
            return self._event(key, episode, "closed", now, ended_at=episode.last_true)
        return None

    def close_stale(self, now: datetime, seen: set[str]) -> list[Event]:
        """Report ``False`` for every active key not in ``seen`` (things that stopped reporting)."""
        out = []
        for key in [k for k in self.active if k not in seen]:
            event = self.report(key, False, now)
            if event is not None:
                out.append(event)
        return out

    def _event(self, key: str, episode: _Episode, phase: Phase, now: datetime,
               ended_at: datetime | None = None) -> Event:
        return Event(id=f"{self.detector}:{key}:{int(episode.onset.timestamp())}", detector=self.detector,
                     signal=self.signal, key=key, phase=phase, onset=episode.onset,
                     detected_at=episode.detected_at, at=now, severity=episode.severity,
                     ended_at=ended_at, **episode.fields)


@dataclass(frozen=True)
class RuleContext:
    """What detectors may know about the city: the pack (districts, stations, roads, norms, zone)."""

    pack: Any


class Detector:
    """Base of every detector. Subclasses set the class attributes and implement :meth:`observe`.

    Attributes:
        name: registry name (``air_quality``, ``appeal_hotspot`` ...), also the config section.
        feeds: feeds whose records :meth:`observe` wants; others are never passed.
        Params: a frozen dataclass of the detector's parameters with their defaults; the
            configuration (``SC_RULES_FILE``) overrides them by name.
    """

    name: ClassVar[str] = ""
    feeds: ClassVar[frozenset[str]] = frozenset()

    @dataclass(frozen=True)
    class Params:
        """No parameters."""

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        self.params = params
        self.ctx = ctx

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        """Take the new records of ``feed`` (stream dicts, in arrival order) seen up to ``now``."""
        return []

    def tick(self, now: datetime) -> list[Event]:
        """Let time pass to ``now`` with no new records (silence, episodes ending)."""
        return []


def build_params(cls: type[Detector], overrides: Mapping[str, Any] | None) -> Any:
    """``cls.Params`` with ``overrides`` applied; unknown names are an error naming them.

    Raises:
        ValueError: a parameter the detector does not have, or a value of the wrong type.
    """
    overrides = dict(overrides or {})
    overrides.pop("enabled", None)
    known = {f.name: f for f in dataclasses.fields(cls.Params)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"detector {cls.name!r} has no parameter(s) {unknown}; it has {sorted(known)}")
    defaults = cls.Params()
    for key, value in overrides.items():
        default = getattr(defaults, key)
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))):
            raise ValueError(f"detector {cls.name!r} parameter {key!r}: {value!r} is not like {default!r}")
        if isinstance(default, tuple) and isinstance(value, list):
            overrides[key] = tuple(value)
    return dataclasses.replace(defaults, **overrides)


def parse_time(value: Any) -> datetime:
    """A record's ISO time string (or datetime) as an aware datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
