"""Ambulance response against the arrival norms, per district, over a sliding window.

:class:`ResponseSla` (``ambulance.response_time``) folds the call updates by ``call_id`` and
judges each call against its category's arrival norm (ҚР ДСМ-225/2020: 10 / 15 / 30 / 60 min,
taken from the pack's norms; ``DOMAIN.md`` 4.2). Response = ``on_scene − call_received`` (the
system response, as :func:`workers.kpi.ambulance.response`). A call is *decided* at the moment
its compliance became known: on time at its ``on_scene``; breached at its deadline
(``call_received + norm``), whether the unit arrived later or has still not arrived. The window
holds the calls decided in ``(now − window, now]``, plus every call still waiting past its
deadline (up to ``max_wait_s`` beyond it: a call with no ``on_scene`` for hours more has most
likely lost its updates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.schemas import CANCELLED, iso
from workers.kpi.ambulance import DEFAULT_ARRIVAL_MIN
from workers.rules.base import CRITICAL, WARNING, Detector, Episodes, Event, RuleContext, parse_time


@dataclass(slots=True)
class _Call:
    call_id: str
    times: dict[str, datetime] = field(default_factory=dict)
    category: int | None = None
    district: str | None = None


class ResponseSla(Detector):
    """A district where too many calls breach their arrival norm within the window.

    Per district, over the calls decided in the last ``window_s`` (see the module doc): WARNING
    when at least ``min_breaches`` breached and the breach share is at least ``warning_share``;
    CRITICAL when the share is at least ``critical_share`` with at least ``critical_min_breaches``.
    Only ``categories`` count (default all four). Evaluated every :meth:`tick` and on new calls;
    an episode closes ``clear_after_s`` after the condition ended.

    Calibration (simulator, 2026-11-16, seeds 1–3): on quiet days a district decides about
    5–25 calls an hour; most districts breach at most 3 of them, but the foothill district
    ``medeu`` reaches 5/14 and 9/19 at the evening peak (seeds 3 and 2), hence the defaults
    (10 breaches and 40 %). The ``ambulance_shortage`` scenario gives its district at most
    2–7 breaches an hour (alatau, nauryzbay, alatau for seeds 1, 2, 3: neighbouring brigades
    cover most calls), below what a quiet ``medeu`` does, so no breach threshold both stays
    quiet and finds it; it is not found with these defaults.
    """

    name = "response_sla"
    feeds = frozenset({"ambulance"})
    signal = "ambulance.response_time"

    @dataclass(frozen=True)
    class Params:
        """Breach count and share thresholds over a sliding window."""

        window_s: float = 3600.0
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
        norms = getattr(ctx.pack, "norms", None) if ctx.pack is not None else None
        minutes = dict(norms.ambulance_arrival_min) if norms is not None else dict(DEFAULT_ARRIVAL_MIN)
        self.norms = {int(c): timedelta(minutes=float(m)) for c, m in minutes.items()}
        self.calls: dict[str, _Call] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(seconds=params.clear_after_s),
                                 update_every=timedelta(seconds=params.update_every_s))

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        changed = False
        for record in records:
            if record.get("kind", "calls") != "calls" or not record.get("call_id"):
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
            changed = True
        return self.tick(now) if changed else []

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

    def tick(self, now: datetime) -> list[Event]:
        p = self.params
        window = timedelta(seconds=p.window_s)
        max_norm = max(self.norms.values(), default=timedelta(hours=1))
        horizon = now - window - max_norm - timedelta(seconds=p.max_wait_s)
        for call_id in [c for c, call in self.calls.items()
                        if (call.times.get("call_received") or now) < horizon]:
            del self.calls[call_id]
        per_district: dict[str, list[tuple[_Call, datetime, bool, float]]] = {}
        for call in self.calls.values():
            if call.district is None or call.category not in p.categories:
                continue
            judged = self._judge(call, now)
            if judged is None:
                continue
            decided, breached, wait = judged
            waiting = breached and "on_scene" not in call.times
            in_window = now - window < decided <= now
            if waiting:
                norm = self.norms[call.category or 0]
                in_window = in_window or wait - norm.total_seconds() <= p.max_wait_s
            if in_window:
                per_district.setdefault(call.district, []).append((call, decided, breached, wait))
        out = []
        for district in sorted(set(per_district) | set(self.episodes.active)):
            event = self._evaluate(district, per_district.get(district, []), now)
            if event is not None:
                out.append(event)
        return out

    def _evaluate(self, district: str, rows: list[tuple[_Call, datetime, bool, float]], now: datetime
                  ) -> Event | None:
        p = self.params
        total = len(rows)
        breaches = [r for r in rows if r[2]]
        share = len(breaches) / total if total else 0.0
        severity = 0
        if len(breaches) >= p.min_breaches and share >= p.warning_share:
            severity = WARNING
            if len(breaches) >= p.critical_min_breaches and share >= p.critical_share:
                severity = CRITICAL
        if not severity:
            return self.episodes.report(district, False, now)
        per_category = {}
        for c in sorted(p.categories):
            in_cat = [r for r in rows if r[0].category == c]
            per_category[str(c)] = {"norm_min": self.norms[c].total_seconds() / 60 if c in self.norms else None,
                                    "calls": len(in_cat), "breaches": sum(1 for r in in_cat if r[2])}
        worst = sorted(breaches, key=lambda r: -r[3])[:p.worst]
        evidence = {
            "district": district, "window_s": p.window_s, "window_start": iso(now - timedelta(seconds=p.window_s)),
            "window_end": iso(now), "calls": total, "breaches": len(breaches), "share": round(share, 3),
            "arrived_late": sum(1 for r in breaches if "on_scene" in r[0].times),
            "still_waiting": sum(1 for r in breaches if "on_scene" not in r[0].times),
            "per_category": per_category,
            "worst": [{"call_id": r[0].call_id, "category": r[0].category, "wait_min": round(r[3] / 60, 1),
                       "norm_min": self.norms[r[0].category or 0].total_seconds() / 60,
                       "arrived": "on_scene" in r[0].times} for r in worst],
            "thresholds": {"min_breaches": p.min_breaches, "warning_share": p.warning_share,
                           "critical_share": p.critical_share, "critical_min_breaches": p.critical_min_breaches},
        }
        onset = min(r[1] for r in breaches)
        lat = lon = None
        if self.ctx.pack is not None:
            try:
                lat, lon = self.ctx.pack.district(district).centroid
            except (KeyError, AttributeError):
                pass
        return self.episodes.report(district, True, now, onset=onset, severity=severity, district=district,
                                    lat=lat, lon=lon, evidence=evidence)
