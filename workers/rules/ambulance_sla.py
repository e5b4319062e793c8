"""Ambulance response per district: a shortage of a district's own brigades, and late arrivals.

:class:`ResponseSla` (``ambulance.response_time``) reads both kinds of ``ambulance`` records:

* **calls** (folded by ``call_id``): each call is judged against its category's arrival norm
  (ҚР ДСМ-225/2020: 10 / 15 / 30 / 60 min, from the pack's norms; ``DOMAIN.md`` 4.2). Response =
  ``on_scene − call_received`` (the system response, as :func:`workers.kpi.ambulance.response`).
  A call is *decided* when its compliance became known: on time at its ``on_scene``; breached at
  its deadline (``call_received + norm``), whether the unit arrived later or has still not
  arrived. The window holds the calls decided in ``(now − window, now]``, plus every call still
  waiting past its deadline (up to ``max_wait_s`` beyond it: a call with no ``on_scene`` for
  hours more has most likely lost its updates). A call is *served* at its ``unit_notified``, by
  its ``unit_id``.
* **unit positions** (GTFS-rt, ``kind: units``): looked at sparsely, each unit at most once per
  ``sample_every_s`` (the other records cost one dict look-up). A unit *stopped with no trip*
  (no ``call_id``) is idle; where it stands idle most often is its **base**: the pack's
  substation within ``base_radius_m`` (whose district is the unit's home district), else that
  spot's district. Units are never configured: homes are learnt from the positions.

Why not breaches alone: a shortage in one district is mostly absorbed by its neighbours' brigades
(after a short wait the dispatcher sends any free brigade), so its breaches stay at 2–7 an hour,
while a foothill district like ``medeu`` is slow by geography and breaches 9 of 19 calls on an
ordinary busy evening. What does separate them is **who serves the district's calls**: under a
shortage most of them are served by brigades based in other districts while the district's own
out-of-service brigades stand at their base with no call; on a busy evening the outside help
comes because every own brigade is out on a call, none stands at base. See :class:`ResponseSla`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.schemas import CANCELLED, iso
from workers.kpi.ambulance import DEFAULT_ARRIVAL_MIN
from workers.rules.base import ADVISORY, CRITICAL, WARNING, Detector, Episodes, Event, RuleContext, parse_time

_M_PER_DEG = 111_195.0


@dataclass(slots=True)
class _Call:
    call_id: str
    times: dict[str, datetime] = field(default_factory=dict)
    category: int | None = None
    district: str | None = None
    unit_id: str | None = None
    learnt: bool = False
    standing: int | None = None  # own brigades of its district standing at base when it was served


@dataclass(slots=True)
class _Unit:
    """What the detector knows of one brigade from its sampled positions."""

    spots: Counter[str] = field(default_factory=Counter)  # idle samples per base (substation id or grid cell)
    home: str | None = None  # the base where it stood idle most often
    district: str | None = None  # the home base's district
    at_base_since: datetime | None = None  # idle at its home base continuously since (None: not now)
    last_seen: datetime | None = None  # time of the last sample


class ResponseSla(Detector):
    """A district whose own brigades are missing (shortage), or whose calls are late or stranded.

    Per district, over the last ``window_s``:

    * **coverage**: of the calls served (``unit_notified``) by a unit whose home is known, how many
      by the district's own brigades (*local*) and how many by brigades based elsewhere
      (*outside*); the *normal* outside share is learnt per district from the calls that have left
      the window (so a shortage never teaches itself), except during WARNING episodes, decayed with
      ``normal_half_life_s``, starting from ``normal_prior_share`` worth ``normal_prior_calls`` calls;
    * **brigades standing at base**: the district's own brigades idle at their base, continuously
      for at least ``stand_s`` (last sample at most ``stale_s`` old);
    * **breaches** of the arrival norm and the worst waits (as before), and **stranded** calls:
      past their deadline with no brigade notified at all.

    Severity:

    * WARNING, *shortage*: an outside share of at least ``max(min_outside_share, normal +
      share_margin)``, and at least ``min_outside`` calls served from outside while at least
      ``max(min_standing, min_standing_share × own brigades)`` own brigades were standing at base
      (counted when the call's unit was notified): the district's calls go to far brigades although
      its own ones do not move, so those are out of service. Also WARNING,
      *stranded*: at least ``min_stranded`` calls past their norm with no brigade sent. CRITICAL
      when either holds and the breaches reach ``critical_min_breaches`` with a share of at least
      ``critical_share``.
    * ADVISORY (shown, no incident): many breaches without a shortage (``min_breaches`` and
      ``warning_share``: a busy evening in a slow district), or the outside-coverage condition
      while the own brigades are all out on calls (a district running out of brigades at its peak).

    Calibration (simulator, 2026-11-16, 24 h): on quiet days (seeds 1–3) a district's calls are
    served from outside about 0–5 % of the time, and up to 7 of 14 (``nauryzbay``) or 7 of 16
    (``medeu``) at the evening peak, always with no own brigade at base (0–1 standing ≥ 20 min);
    no call is ever left past its norm without a brigade. Under ``ambulance_shortage`` (75 % of
    one district's brigades out for 4 h, seeds 1–5) 33–100 % of the district's calls are served
    from outside while 6–16 of its brigades stand at base: WARNING in the right district on 5 of
    5 seeds, 63–169 min after the onset (median 109; the remaining brigades serve the first calls),
    none on quiet days; ``min_outside`` 2 gives 58–143 min, still quiet, but 1 outside call
    (a border call at night) would not be.
    """

    name = "response_sla"
    feeds = frozenset({"ambulance"})
    signal = "ambulance.response_time"

    @dataclass(frozen=True)
    class Params:
        """Window, coverage, brigades-at-base and breach thresholds."""

        window_s: float = 3600.0
        # coverage: calls served from outside the district
        min_outside: int = 3
        min_outside_share: float = 0.3
        share_margin: float = 0.25
        normal_prior_share: float = 0.1
        normal_prior_calls: float = 20.0
        normal_half_life_s: float = 3 * 86400.0
        # the district's own brigades standing at base with no call
        stand_s: float = 1200.0
        min_standing: int = 3
        min_standing_share: float = 0.25
        sample_every_s: float = 120.0
        stale_s: float = 600.0
        base_radius_m: float = 300.0
        # calls past their norm with no brigade sent
        min_stranded: int = 3
        # breaches of the arrival norm
        min_breaches: int = 10
        warning_share: float = 0.4
        critical_share: float = 0.6
        critical_min_breaches: int = 12
        categories: tuple[int, ...] = (1, 2, 3, 4)
        max_wait_s: float = 3 * 3600.0
        clear_after_s: float = 1800.0
        update_every_s: float = 1800.0
        worst: int = 5

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        pack = ctx.pack
        norms = getattr(pack, "norms", None) if pack is not None else None
        minutes = dict(norms.ambulance_arrival_min) if norms is not None else dict(DEFAULT_ARRIVAL_MIN)
        self.norms = {int(c): timedelta(minutes=float(m)) for c, m in minutes.items()}
        self.bases = [(s.id, s.lat, s.lon, s.district_id) for s in getattr(pack, "substations", ()) or ()]
        self.calls: dict[str, _Call] = {}
        self.units: dict[str, _Unit] = {}
        self._next_sample: dict[str, float] = {}
        self._normal: dict[str, list[float]] = {}  # district -> [local weight, outside weight, at (POSIX s)]
        self._spot_district: dict[str, str | None] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(seconds=params.clear_after_s),
                                 update_every=timedelta(seconds=params.update_every_s))

    # -- input ------------------------------------------------------------------------------------

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        changed = False
        standing: dict[str, int] | None = None
        ts = now.timestamp()
        next_sample = self._next_sample
        for record in records:
            kind = record.get("kind", "calls")
            if kind == "units":
                unit_id = record.get("unit_id")
                if ts >= next_sample.get(unit_id, 0.0) and unit_id:
                    next_sample[unit_id] = ts + self.params.sample_every_s
                    self._sample(unit_id, record, now)
                continue
            if kind != "calls" or not record.get("call_id"):
                continue
            call = self.calls.get(record["call_id"])
            if call is None:
                call = self.calls[record["call_id"]] = _Call(record["call_id"])
            for name, value in (record.get("times") or {}).items():
                if value is not None:
                    call.times[name] = parse_time(value)
            if record.get("category") is not None:
                call.category = int(record["category"])
            if record.get("district"):
                call.district = str(record["district"])
            if record.get("unit_id"):
                call.unit_id = str(record["unit_id"])
            if call.standing is None and call.unit_id and call.district and "unit_notified" in call.times:
                if standing is None:
                    standing = self._standing(now)
                call.standing = standing.get(call.district, 0)
            changed = True
        return self.tick(now) if changed else []

    def _standing(self, now: datetime) -> dict[str, int]:
        """Per home district, the brigades standing idle at their base for at least ``stand_s`` now."""
        stand = timedelta(seconds=self.params.stand_s)
        stale = timedelta(seconds=self.params.stale_s)
        out: dict[str, int] = {}
        for unit in self.units.values():
            if (unit.district is not None and unit.at_base_since is not None and unit.last_seen is not None
                    and now - unit.last_seen <= stale and now - unit.at_base_since >= stand):
                out[unit.district] = out.get(unit.district, 0) + 1
        return out

    def _sample(self, unit_id: str, record: Mapping[str, Any], now: datetime) -> None:
        """One sparse look at a unit: if idle, where (its base); whether it is idle at its home base."""
        unit = self.units.get(unit_id)
        if unit is None:
            unit = self.units[unit_id] = _Unit()
        unit.last_seen = now
        status = record.get("status")
        idle = (not record.get("call_id") and status in ("stopped_at", None)
                and (status is not None or not record.get("speed_mps")))
        spot = self._spot(float(record["lat"]), float(record["lon"])) if idle else None
        if spot is None:
            unit.at_base_since = None
            return
        unit.spots[spot] += 1
        if spot != unit.home and unit.spots[spot] > unit.spots.get(unit.home or "", 0):
            unit.home, unit.district = spot, self._spot_district.get(spot)
            unit.at_base_since = None
        if spot == unit.home:
            unit.at_base_since = unit.at_base_since or now
        else:
            unit.at_base_since = None

    def _spot(self, lat: float, lon: float) -> str:
        """The base an idle unit stands at: the substation within ``base_radius_m``, else a ~200 m cell."""
        best, best_m = None, self.params.base_radius_m
        kx = math.cos(math.radians(lat))
        for sid, slat, slon, district in self.bases:
            d = math.hypot(lat - slat, (lon - slon) * kx) * _M_PER_DEG
            if d <= best_m:
                best, best_m = sid, d
                self._spot_district.setdefault(sid, district)
        if best is not None:
            return best
        cell = f"{round(lat * 500) / 500:.3f},{round(lon * 500) / 500:.3f}"
        if cell not in self._spot_district:
            district = None
            if self.ctx.pack is not None:
                try:
                    found = self.ctx.pack.district_at(lat, lon)
                    district = found.id if found is not None else None
                except AttributeError:
                    district = None
            self._spot_district[cell] = district
        return cell

    # -- judging ----------------------------------------------------------------------------------

    def _judge(self, call: _Call, now: datetime) -> tuple[datetime, bool, float] | None:
        """``(decided at, breached, wait in s)`` of a call as of ``now``, or None (undecided or not counted)."""
        received = call.times.get("call_received")
        norm = self.norms.get(call.category or 0)
        if received is None or norm is None or CANCELLED in call.times or received > now:
            return None
        deadline = received + norm
        on_scene = call.times.get("on_scene")
        if on_scene is not None and on_scene <= now:
            wait = (on_scene - received).total_seconds()
            return (on_scene, False, wait) if on_scene <= deadline else (deadline, True, wait)
        if now > deadline:
            return deadline, True, (now - received).total_seconds()
        return None

    def _normal_share(self, district: str, now: datetime) -> float:
        p = self.params
        local, outside, _ = self._decayed(district, now.timestamp())
        return (outside + p.normal_prior_share * p.normal_prior_calls) / (local + outside + p.normal_prior_calls)

    def _decayed(self, district: str, ts: float) -> list[float]:
        state = self._normal.get(district)
        if state is None:
            state = self._normal[district] = [0.0, 0.0, ts]
        elif ts > state[2]:
            f = 0.5 ** ((ts - state[2]) / self.params.normal_half_life_s)
            state[0] *= f
            state[1] *= f
            state[2] = ts
        return state

    def tick(self, now: datetime) -> list[Event]:
        p = self.params
        window = timedelta(seconds=p.window_s)
        max_norm = max(self.norms.values(), default=timedelta(hours=1))
        horizon = now - window - max_norm - timedelta(seconds=p.max_wait_s)
        for call_id in [c for c, call in self.calls.items()
                        if (call.times.get("call_received") or now) < horizon]:
            del self.calls[call_id]
        rows: dict[str, list[tuple[_Call, datetime, bool, float]]] = {}
        served: dict[str, list[tuple[_Call, datetime, str | None]]] = {}
        stranded: dict[str, int] = {}
        for call in self.calls.values():
            if call.district is None or call.category not in p.categories or CANCELLED in call.times:
                continue
            notified = call.times.get("unit_notified")
            if notified is not None and notified <= now and call.unit_id:
                home = self.units[call.unit_id].district if call.unit_id in self.units else None
                if now - window < notified:
                    served.setdefault(call.district, []).append((call, notified, home))
                if not call.learnt and home is not None and notified <= now - window:
                    call.learnt = True
                    active = self.episodes.active.get(call.district)
                    if active is None or active.severity < WARNING:
                        state = self._decayed(call.district, now.timestamp())
                        state[0 if home == call.district else 1] += 1.0
            judged = self._judge(call, now)
            if judged is None:
                continue
            decided, breached, wait = judged
            waiting = breached and "on_scene" not in call.times
            in_window = now - window < decided <= now
            if waiting:
                norm = self.norms[call.category or 0]
                in_window = in_window or wait - norm.total_seconds() <= p.max_wait_s
                if in_window and (notified is None or notified > now):
                    stranded[call.district] = stranded.get(call.district, 0) + 1
            if in_window:
                rows.setdefault(call.district, []).append((call, decided, breached, wait))
        brigades: dict[str, list[int]] = {}  # district -> [own, at base now, standing >= stand_s]
        stand = timedelta(seconds=p.stand_s)
        stale = timedelta(seconds=p.stale_s)
        for unit in self.units.values():
            if unit.district is None:
                continue
            counts = brigades.setdefault(unit.district, [0, 0, 0])
            counts[0] += 1
            fresh = unit.last_seen is not None and now - unit.last_seen <= stale
            if fresh and unit.at_base_since is not None:
                counts[1] += 1
                counts[2] += now - unit.at_base_since >= stand
        out = []
        for district in sorted(set(rows) | set(served) | set(stranded) | set(self.episodes.active)):
            event = self._evaluate(district, rows.get(district, []), served.get(district, []),
                                   stranded.get(district, 0), brigades.get(district, [0, 0, 0]), now)
            if event is not None:
                out.append(event)
        return out

    def _evaluate(self, district: str, rows: list[tuple[_Call, datetime, bool, float]],
                  served: list[tuple[_Call, datetime, str | None]], stranded: int, brigades: list[int],
                  now: datetime) -> Event | None:
        p = self.params
        total = len(rows)
        breaches = [r for r in rows if r[2]]
        share = len(breaches) / total if total else 0.0
        local = sum(1 for _, _, home in served if home == district)
        outside_calls = [(c, at, home) for c, at, home in served if home is not None and home != district]
        outside = len(outside_calls)
        known = local + outside
        outside_share = outside / known if known else 0.0
        normal = self._normal_share(district, now)
        share_needed = max(p.min_outside_share, normal + p.share_margin)
        own, at_base, standing = brigades
        standing_needed = max(p.min_standing, math.ceil(p.min_standing_share * own))
        covered = outside >= p.min_outside and outside_share >= share_needed
        passed_over = sum(1 for c, _, _ in outside_calls if (c.standing or 0) >= standing_needed)
        shortage = covered and passed_over >= p.min_outside
        is_stranded = stranded >= p.min_stranded
        slow = len(breaches) >= p.min_breaches and share >= p.warning_share
        severity = 0
        if shortage or is_stranded:
            severity = WARNING
            if len(breaches) >= p.critical_min_breaches and share >= p.critical_share:
                severity = CRITICAL
        elif slow or covered:
            severity = ADVISORY
        if not severity:
            return self.episodes.report(district, False, now)
        reasons = [name for name, on in (("shortage", shortage), ("stranded", is_stranded), ("slow", slow),
                                         ("covered_from_outside", covered and not shortage)) if on]
        per_category = {}
        for c in sorted(p.categories):
            in_cat = [r for r in rows if r[0].category == c]
            per_category[str(c)] = {"norm_min": self.norms[c].total_seconds() / 60 if c in self.norms else None,
                                    "calls": len(in_cat), "breaches": sum(1 for r in in_cat if r[2])}
        worst = sorted(breaches, key=lambda r: -r[3])[:p.worst]
        evidence = {
            "district": district, "reason": reasons, "window_s": p.window_s,
            "window_start": iso(now - timedelta(seconds=p.window_s)), "window_end": iso(now),
            "calls": total, "breaches": len(breaches), "share": round(share, 3),
            "arrived_late": sum(1 for r in breaches if "on_scene" in r[0].times),
            "still_waiting": sum(1 for r in breaches if "on_scene" not in r[0].times),
            "stranded": stranded,
            "served": len(served), "served_local": local, "served_outside": outside,
            "served_unknown": len(served) - known, "outside_share": round(outside_share, 3),
            "normal_outside_share": round(normal, 3), "outside_share_needed": round(share_needed, 3),
            "served_from": dict(sorted(Counter(home for _, _, home in outside_calls).items())),
            "served_outside_own_standing": passed_over,
            "own_brigades": own, "own_at_base": at_base, "own_standing": standing,
            "standing_needed": standing_needed,
            "per_category": per_category,
            "worst": [{"call_id": r[0].call_id, "category": r[0].category, "wait_min": round(r[3] / 60, 1),
                       "norm_min": self.norms[r[0].category or 0].total_seconds() / 60,
                       "arrived": "on_scene" in r[0].times} for r in worst],
            "thresholds": {"min_outside": p.min_outside, "min_outside_share": p.min_outside_share,
                           "share_margin": p.share_margin, "stand_min": p.stand_s / 60,
                           "min_standing": p.min_standing, "min_standing_share": p.min_standing_share,
                           "min_stranded": p.min_stranded, "min_breaches": p.min_breaches,
                           "warning_share": p.warning_share, "critical_share": p.critical_share,
                           "critical_min_breaches": p.critical_min_breaches},
        }
        starts = [at for _, at, _ in outside_calls] if covered else []
        starts += [r[1] for r in breaches]
        onset = min(starts, default=now)
        lat = lon = None
        if self.ctx.pack is not None:
            try:
                lat, lon = self.ctx.pack.district(district).centroid
            except (KeyError, AttributeError):
                pass
        return self.episodes.report(district, True, now, onset=onset, severity=severity, district=district,
                                    lat=lat, lon=lon, evidence=evidence)
