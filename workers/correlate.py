"""Correlation: join events that are close in space and time and plausibly linked into one situation.

Explainable by construction: a situation is joined only by a named :class:`Rule` (crash ↔ traffic
drop ↔ injured callers ↔ road appeals; smog ↔ respiratory calls; water outage ↔ more appeals
about water nearby; one condition recurring on one thing), and every join is recorded as a
:class:`Link` with the rule, its score, the distance and the time gap. No black box, no learned
weights: an operator reading the incident sees why each event is in it, and can merge or split
situations by hand (``workers.incidents``) when the rules were wrong.

Pure: :func:`decide` takes an event and the open situations and says where the event goes. The
I/O shells (the analytics job, the detection benchmark) keep the situations.

Scoring: for a rule that accepts both events' signals, ``score = weight × e^(−d/D) × e^(−Δt/T)``
with ``d`` the distance between the two places (0 for a citywide rule), ``Δt`` the gap between the
new event's onset and the other event's active interval (0 if they overlap), ``D`` and ``T`` the
rule's reach; beyond ``D`` or ``T`` the rule does not apply. The event joins the situation with the
best link if that score reaches ``min_score``; otherwise a WARNING or CRITICAL event starts a new
situation and an ADVISORY one stays a standalone advisory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.geo import haversine_m
from workers.rules.base import WARNING, Event


@dataclass(frozen=True)
class Rule:
    """One explainable way two events belong to the same situation.

    Attributes:
        name: shown in the link (``road_crash``, ``smog_health`` ...).
        type: situation type a join by this rule gives (``None``: keep the situation's type).
        signals: the signals it links; each may be narrowed by evidence (``appeals.burst`` only for
            some categories) with :attr:`evidence`.
        reach_m: how far apart the two places may be (``None``: anywhere in the city).
        gap: how long after the other event (or before it) the new one may begin.
        weight: the plausibility of the link (1 = certain if close).
        same_key: both events must be about the same thing (a condition recurring).
        distinct: the two events must have different signals (a cross-source link).
        evidence: signal -> evidence field -> accepted values.
    """

    name: str
    type: str | None
    signals: frozenset[str]
    reach_m: float | None
    gap: timedelta
    weight: float = 1.0
    same_key: bool = False
    distinct: bool = True
    evidence: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)

    def accepts(self, event: Event) -> bool:
        """Whether ``event`` is one this rule links."""
        if event.signal not in self.signals:
            return False
        for name, allowed in self.evidence.get(event.signal, {}).items():
            if str(event.evidence.get(name)) not in allowed:
                return False
        return True


#: Appeal categories that a road crash brings.
ROAD_CATEGORIES = frozenset({"roads", "traffic", "road_safety", "transport"})
#: Appeal categories that a utility outage brings.
WATER_CATEGORIES = frozenset({"water_supply", "sewerage"})

RULES: tuple[Rule, ...] = (
    Rule("road_crash", "road_crash", frozenset({"traffic.drop", "ambulance.calls", "appeals.burst"}),
         reach_m=2_000, gap=timedelta(minutes=90), evidence={"appeals.burst": {"category": ROAD_CATEGORIES}}),
    Rule("smog_health", "smog", frozenset({"air.pm_rise", "air.aqi", "ambulance.respiratory_calls"}),
         reach_m=None, gap=timedelta(hours=8)),
    Rule("utility_outage", "water_outage", frozenset({"appeals.burst"}), reach_m=2_500, gap=timedelta(hours=3),
         distinct=False, evidence={"appeals.burst": {"category": WATER_CATEGORIES}}),
    Rule("citywide_air", "smog", frozenset({"air.pm_rise", "air.aqi"}), reach_m=None, gap=timedelta(hours=3),
         weight=0.8, distinct=False),
    Rule("recurrence", None, frozenset({"*"}), reach_m=None, gap=timedelta(hours=2), same_key=True,
         distinct=False),
)

#: Situation type of a situation started by one event, by signal (appeal bursts by category).
SIGNAL_TYPES: Mapping[str, str] = {
    "traffic.drop": "traffic_incident",
    "ambulance.calls": "mass_casualty",
    "ambulance.respiratory_calls": "respiratory_surge",
    "ambulance.response_time": "ambulance_shortage",
    "air.aqi": "air_pollution",
    "air.pm_rise": "smog",
    "appeals.burst": "appeal_burst",
    "source.silent": "sensor_silent",
    "source.stuck": "sensor_stuck",
    "feed.outage": "feed_outage",
}
APPEAL_TYPES: Mapping[str, str] = {**{c: "water_outage" for c in WATER_CATEGORIES},
                                   **{c: "road_incident" for c in ROAD_CATEGORIES},
                                   "heating": "heating_outage", "electricity": "power_outage"}

MIN_SCORE = 0.25


@dataclass(frozen=True, slots=True)
class Link:
    """Why event ``b`` joined the situation that holds event ``a``."""

    a: str
    b: str
    rule: str
    score: float
    distance_m: float | None
    dt_s: float

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"a": self.a, "b": self.b, "rule": self.rule, "score": round(self.score, 3),
                "distance_m": None if self.distance_m is None else round(self.distance_m),
                "dt_s": round(self.dt_s)}


@dataclass(frozen=True, slots=True)
class SituationView:
    """What correlation needs to know of an open situation."""

    id: str
    type: str
    events: Sequence[Event]


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an event goes: into ``situation`` (with ``link``), a new situation of ``new_type``, or nowhere."""

    situation: str | None = None
    link: Link | None = None
    new_type: str | None = None
    retype: str | None = None
    """Type the joined situation takes now (a cross-source rule names what it is)."""


def type_of(event: Event) -> str:
    """Type of a situation started by ``event`` alone."""
    if event.signal == "appeals.burst":
        return APPEAL_TYPES.get(str(event.evidence.get("category")), "appeal_burst")
    return SIGNAL_TYPES.get(event.signal, event.signal.replace(".", "_"))


def decide(event: Event, situations: Iterable[SituationView], *, rules: Sequence[Rule] = RULES,
           min_score: float = MIN_SCORE) -> Decision:
    """Place a newly opened event: join the best-linked situation, start one, or neither (advisory)."""
    best: tuple[float, SituationView, Link, Rule] | None = None
    for situation in situations:
        for other in situation.events:
            for rule in rules:
                link = score(rule, other, event)
                if link is not None and (best is None or link.score > best[0]):
                    best = (link.score, situation, link, rule)
    if best is not None and best[0] >= min_score:
        _, situation, link, rule = best
        # a cross-source rule names what the situation is; a same-signal rule only renames a
        # situation still known by that signal alone (two air alerts -> citywide smog)
        retype = None
        if rule.type and rule.type != situation.type and (rule.distinct or situation.type == type_of(event)):
            retype = rule.type
        return Decision(situation=situation.id, link=link, retype=retype)
    if event.severity >= WARNING:
        return Decision(new_type=type_of(event))
    return Decision()


def score(rule: Rule, a: Event, b: Event) -> Link | None:
    """The link rule ``rule`` makes from event ``a`` (already in a situation) to ``b``, if any."""
    if rule.same_key:
        if a.key != b.key or a.detector != b.detector:
            return None
    else:
        if not (rule.accepts(a) and rule.accepts(b)):
            return None
        if rule.distinct and a.signal == b.signal:
            return None
    dt = gap_s(a, b)
    if dt > rule.gap.total_seconds():
        return None
    distance = None
    if rule.reach_m is not None:
        distance = distance_m(a, b)
        if distance is None or distance > rule.reach_m:
            return None
    value = rule.weight * math.exp(-dt / rule.gap.total_seconds())
    if distance is not None and rule.reach_m:
        value *= math.exp(-distance / rule.reach_m)
    return Link(a=a.id, b=b.id, rule=rule.name, score=value, distance_m=distance, dt_s=dt)


def gap_s(a: Event, b: Event) -> float:
    """Seconds between ``b``'s onset and ``a``'s active interval (0 if inside it). An event not yet
    closed is active up to now, whatever its last emission's time."""
    a_end = a.ended_at if a.ended_at is not None else max(a.at, b.onset)
    if b.onset < a.onset:
        return (a.onset - b.onset).total_seconds()
    if b.onset > a_end:
        return (b.onset - a_end).total_seconds()
    return 0.0


def distance_m(a: Event, b: Event) -> float | None:
    """Metres between two events' places (less each one's radius), or None if either has no place.

    Two events known only by district are 0 apart in the same district and unknown otherwise.
    """
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        d = haversine_m(a.lat, a.lon, b.lat, b.lon)
        return max(0.0, d - (a.radius_m or 0.0) - (b.radius_m or 0.0))
    if a.district is not None and a.district == b.district:
        return 0.0
    return None


def situation_place(events: Iterable[Event]) -> tuple[float | None, float | None, str | None]:
    """Centre (mean of the events' points) and the most common district of a situation."""
    points = [(e.lat, e.lon) for e in events if e.lat is not None and e.lon is not None]
    districts = [e.district for e in events if e.district]
    lat = sum(p[0] for p in points) / len(points) if points else None
    lon = sum(p[1] for p in points) / len(points) if points else None
    district = max(set(districts), key=districts.count) if districts else None
    return lat, lon, district



# ---------------------------------------------------------------------------------------
# applying decisions to a book of situations


class SituationBook:
    """Where situations live. :class:`MemoryBook` keeps them in memory (benchmarks, tests); the
    analytics job keeps them as incidents in Redis (``workers.incidents``)."""

    def situation_of(self, event_id: str) -> str | None:
        """The situation an event joined, if it joined one."""
        raise NotImplementedError

    def open_views(self, now: datetime) -> list[SituationView]:
        """The situations a new event may join (not resolved, active lately)."""
        raise NotImplementedError

    def create(self, type_: str, event: Event, now: datetime) -> str:
        """Start a situation of ``type_`` with ``event``; return its id."""
        raise NotImplementedError

    def join(self, situation: str, event: Event, link: Link, retype: str | None, now: datetime) -> None:
        """Add ``event`` to ``situation`` because of ``link`` (and rename it to ``retype`` if given)."""
        raise NotImplementedError

    def update(self, situation: str, event: Event, now: datetime) -> None:
        """A later phase (update, closed) of an event already in ``situation``."""
        raise NotImplementedError


def apply(events: Iterable[Event], book: SituationBook, now: datetime, *, rules: Sequence[Rule] = RULES,
          min_score: float = MIN_SCORE) -> list[tuple[Event, str | None]]:
    """Route each event into ``book``: later phases to their situation, new ones by :func:`decide`.

    Returns each event with the situation it went to (None: an advisory standing alone).
    """
    out: list[tuple[Event, str | None]] = []
    for event in events:
        situation = book.situation_of(event.id)
        if situation is not None:
            book.update(situation, event, now)
        elif event.phase == "closed":
            situation = None  # an advisory that ended without joining anything
        else:
            decision = decide(event, book.open_views(now), rules=rules, min_score=min_score)
            if decision.situation is not None and decision.link is not None:
                situation = decision.situation
                book.join(situation, event, decision.link, decision.retype, now)
            elif decision.new_type is not None:
                situation = book.create(decision.new_type, event, now)
        out.append((event, situation))
    return out


@dataclass
class MemorySituation:
    """A situation held in memory."""

    id: str
    type: str
    events: dict[str, Event]
    links: list[Link]
    created_at: datetime
    updated_at: datetime
    raised_at: datetime | None = None
    """When it first held a WARNING or CRITICAL event (an advisory that escalates counts from then)."""

    def note(self, event: Event, now: datetime) -> None:
        """Remember when the situation first became serious."""
        if self.raised_at is None and event.severity >= WARNING:
            self.raised_at = now

    @property
    def severity(self) -> int:
        """Highest severity of its events."""
        return max(e.severity for e in self.events.values())

    @property
    def detected_at(self) -> datetime:
        """When its first WARNING+ event was raised (or its first event, if none is)."""
        serious = [e.detected_at for e in self.events.values() if e.severity >= WARNING]
        return min(serious or [e.detected_at for e in self.events.values()])


class MemoryBook(SituationBook):
    """Situations in memory, for the detection benchmark and tests. ``idle``: how long a situation
    whose events have all ended still takes new ones."""

    def __init__(self, idle: timedelta = timedelta(hours=2)) -> None:
        self.situations: dict[str, MemorySituation] = {}
        self._by_event: dict[str, str] = {}
        self.idle = idle

    def situation_of(self, event_id: str) -> str | None:  # noqa: D102
        return self._by_event.get(event_id)

    def open_views(self, now: datetime) -> list[SituationView]:  # noqa: D102
        out = []
        for s in self.situations.values():
            active = any(e.phase != "closed" for e in s.events.values())
            if active or now - s.updated_at <= self.idle:
                out.append(SituationView(id=s.id, type=s.type, events=list(s.events.values())))
        return out

    def create(self, type_: str, event: Event, now: datetime) -> str:  # noqa: D102
        sid = f"S{len(self.situations) + 1:04d}"
        self.situations[sid] = MemorySituation(id=sid, type=type_, events={event.id: event}, links=[],
                                               created_at=now, updated_at=now)
        self.situations[sid].note(event, now)
        self._by_event[event.id] = sid
        return sid

    def join(self, situation: str, event: Event, link: Link, retype: str | None, now: datetime) -> None:  # noqa: D102
        s = self.situations[situation]
        s.events[event.id] = event
        s.links.append(link)
        s.type = retype or s.type
        s.updated_at = now
        s.note(event, now)
        self._by_event[event.id] = situation

    def update(self, situation: str, event: Event, now: datetime) -> None:  # noqa: D102
        s = self.situations[situation]
        s.events[event.id] = event
        s.updated_at = now
        s.note(event, now)
