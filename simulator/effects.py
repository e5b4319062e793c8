"""Effects: what a planted incident does to the simulated city, as data the models query.

A scenario (``simulator/scenarios/*.json``) becomes a few :class:`Effect` values placed in time
and space; each model asks :meth:`Effects.active` for the kinds it understands and bends its
normal behaviour accordingly. Models never know which scenario they are playing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Effect kinds and the model that honours each.
KINDS = {
    "appeal_burst": "appeals",      # extra appeals of a category around a place
    "traffic_drop": "traffic",      # segment speeds fall near a place; the city score rises
    "call_surge": "ambulance",      # extra ambulance calls of a complaint near a place / in a district
    "unit_shortage": "ambulance",   # part of a district's units out of service; responses slow
    "air_episode": "air",           # concentrations rise at stations (smog, inversion)
    "sensor_silent": "air",         # a station stops reporting
    "sensor_stuck": "air",          # a station repeats one value
    "feed_outage": "engine",        # a whole feed delivers nothing
}


@dataclass(frozen=True, slots=True)
class Effect:
    """One effect of one planted incident.

    Attributes:
        kind: one of :data:`KINDS`.
        start, end: when it acts (UTC); ``ramp_s`` at each end it fades in and out.
        incident_id: the ground-truth id it belongs to.
        district: district id it is centred on, if any.
        lat, lon, radius_m: a place and reach, if any.
        targets: station ids, segment ids or feed names it acts on, if any.
        params: kind-specific numbers and names (``rate_per_hour``, ``speed_factor``, ...).
    """

    kind: str
    start: datetime
    end: datetime
    incident_id: str
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    targets: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    ramp_s: float = 0.0

    def intensity(self, t: datetime) -> float:
        """0 outside the effect, 1 in its plateau, linear in the ramps."""
        if t < self.start or t >= self.end:
            return 0.0
        if self.ramp_s <= 0:
            return 1.0
        rise = (t - self.start).total_seconds() / self.ramp_s
        fall = (self.end - t).total_seconds() / self.ramp_s
        return max(0.0, min(1.0, rise, fall))

    def param(self, name: str, default: Any = None) -> Any:
        """A parameter of the effect."""
        return self.params.get(name, default)


class Effects:
    """The effects of every planted incident of one simulation run."""

    def __init__(self, effects: list[Effect] | None = None) -> None:
        self._by_kind: dict[str, list[Effect]] = {}
        self.add(effects or [])

    def add(self, effects: list[Effect]) -> None:
        """Add the effects of newly planted incidents.

        Raises:
            ValueError: an effect kind no model knows.
        """
        for effect in effects:
            if effect.kind not in KINDS:
                raise ValueError(f"unknown effect kind {effect.kind!r}; kinds: {sorted(KINDS)}")
            self._by_kind.setdefault(effect.kind, []).append(effect)

    def prune(self, before: datetime) -> None:
        """Forget effects that ended before ``before`` (a long live run plants every day)."""
        for kind, effects in self._by_kind.items():
            self._by_kind[kind] = [e for e in effects if e.end >= before]

    def active(self, kind: str, t: datetime) -> list[Effect]:
        """The effects of ``kind`` acting at ``t``."""
        return [e for e in self._by_kind.get(kind, ()) if e.start <= t < e.end]

    def all(self) -> list[Effect]:
        """Every effect, in no particular order."""
        return [e for effects in self._by_kind.values() for e in effects]
