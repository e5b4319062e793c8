"""Ambulance KPIs: calls waiting, units by status, response against the Kazakh arrival norms.

Pure functions on the merged latest records (what ``sc:latest:{ambulance}:calls`` and
``...:units`` hold, as dicts): no I/O, no clock (``now`` is passed in). The norms and the
NEMSIS intervals are in the shared ``DOMAIN.md``, section 4.

Definitions used throughout:

* **Response** is the system response, arrival on scene − call received (eTimes.06 − 01), the
  interval the Kazakh norm (ҚР ДСМ-225/2020) measures. A call without both times falls back
  to the source's ``response_s`` (the SF ``Delay``), if any.
* **Completion** of a response is its ``on_scene`` time; for a ``response_s`` fallback it is
  ``call_received + response_s``, or without ``call_received`` the call's latest time (an
  upper bound: the SF rows only carry the unit's release time).
* **Window**: a response or interval counts when it completed in ``(now − window, now]``.
  Intervals complete at their later time (travel at ``on_scene``, hand-over at
  ``transfer_of_care``).
* **Scopes**: ``"city"`` (every record) and each ``district`` id present on a call (or on a
  unit record that carries one).
* **Missing data is None, never 0**: a percentile or share with no values, a count with no
  records of its kind in the scope. Durations are in minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from core.citypack import Norms
from core.schemas import CANCELLED, call_status
from workers.kpi.definitions import KpiDefinition, define
from workers.kpi.stats import percentile

CATEGORIES = (1, 2, 3, 4)
#: ҚР ДСМ-225/2020 arrival norms, minutes: the KPI table's targets; compute() uses the pack's.
DEFAULT_ARRIVAL_MIN: Mapping[int, float] = {1: 10.0, 2: 15.0, 3: 30.0, 4: 60.0}
#: Target share of calls reached within the norm, %.
WITHIN_NORM_TARGET = 90.0

#: Derived NEMSIS intervals (DOMAIN 4.3): key -> (start time, end time, p90 target in min, names).
INTERVALS: Mapping[str, tuple[str, str, float | None, Mapping[str, str]]] = {
    "processing": ("call_received", "unit_notified", 64 / 60,  # NFPA 1710 alarm processing
                   {"en": "Call processing", "ru": "Обработка вызова", "kk": "Шақыруды өңдеу"}),
    "turnout": ("unit_notified", "en_route", 1.0,  # NFPA 1710 EMS turnout
                {"en": "Turnout", "ru": "Выезд бригады", "kk": "Бригаданың шығуы"}),
    "travel": ("en_route", "on_scene", 8.0,  # NFPA 1710 ALS travel
               {"en": "Travel", "ru": "Доезд", "kk": "Жол жүру"}),
    "on_scene": ("on_scene", "left_scene", None,
                 {"en": "On-scene time", "ru": "Время на месте", "kk": "Оқиға орнындағы уақыт"}),
    "handover": ("at_destination", "transfer_of_care", None,
                 {"en": "Hospital hand-over", "ru": "Передача в стационаре", "kk": "Ауруханада тапсыру"}),
}

#: Unit status groups. A unit's own ``status`` decides when it names a group; otherwise the
#: status of the call it serves (``call_id``); a unit with neither is available.
UNIT_GROUPS: Mapping[str, frozenset[str]] = {
    "available": frozenset({"available", "closed", "cancelled", "free", "idle", "in_service"}),
    "on_call": frozenset({"on_call", "busy", "dispatched", "en_route", "on_scene", "transporting"}),
    "at_hospital": frozenset({"at_hospital", "handover"}),
}
_GROUP_OF = {status: group for group, statuses in UNIT_GROUPS.items() for status in statuses}


_kpi = partial(define, "ambulance")


def _definitions(arrival_min: Mapping[int, float]) -> tuple[KpiDefinition, ...]:
    rows = [
        _kpi("calls_waiting", "count", "calls with call_received only: no unit notified, not cancelled",
             None, "down", "Calls waiting", "Вызовы в ожидании", "Күтудегі шақырулар"),
        _kpi("units_available", "count", "units free (own status, or their call closed)", None, "up",
             "Units available", "Свободные бригады", "Бос бригадалар"),
        _kpi("units_on_call", "count", "units dispatched, en route, on scene or transporting", None, "down",
             "Units on a call", "Бригады на вызове", "Шақырудағы бригадалар"),
        _kpi("units_at_hospital", "count", "units at the destination or handing over", None, "down",
             "Units at hospital", "Бригады в стационаре", "Ауруханадағы бригадалар"),
        _kpi("within_norm_pct", "%", "100 × calls with response ≤ their category's norm / calls with "
             "response and category, in the window", WITHIN_NORM_TARGET, "up", "Within arrival norm",
             "В пределах норматива доезда", "Жету нормативы шегінде"),
        _kpi("response_p50", "min", "median of on_scene − call_received (else response_s), in the window",
             None, "down", "Median response", "Медиана времени доезда", "Жету уақытының медианасы"),
        _kpi("response_p90", "min", "90th percentile of on_scene − call_received (else response_s)", None,
             "down", "Response, 90th percentile", "Время доезда, 90-й процентиль", "Жету уақыты, 90-процентиль"),
    ]
    for c in CATEGORIES:
        norm = arrival_min[c]
        rows += [
            _kpi(f"within_norm_pct_c{c}", "%", f"100 × category-{c} calls with response ≤ {norm:g} min / "
                 f"category-{c} calls with response, in the window", WITHIN_NORM_TARGET, "up",
                 f"Within norm, category {c}", f"В нормативе, категория {c}", f"Нормативте, {c}-санат"),
            _kpi(f"response_p50_c{c}", "min", f"median response of category-{c} calls", None, "down",
                 f"Median response, category {c}", f"Медиана доезда, категория {c}",
                 f"Жетудің медианасы, {c}-санат"),
            _kpi(f"response_p90_c{c}", "min", f"90th percentile response of category-{c} calls", norm, "down",
                 f"Response p90, category {c}", f"Доезд p90, категория {c}", f"Жету p90, {c}-санат"),
        ]
    for key, (start, end, target, names) in INTERVALS.items():
        for q, label in ((50, "median"), (90, "90th percentile")):
            rows.append(_kpi(f"{key}_p{q}", "min", f"{label} of {end} − {start}", target if q == 90 else None,
                             "down", f"{names['en']}, p{q}", f"{names['ru']}, p{q}", f"{names['kk']}, p{q}"))
    return tuple(rows)


#: The ambulance KPI table, with the ҚР ДСМ-225/2020 norms as the per-category targets.
KPIS: tuple[KpiDefinition, ...] = _definitions(DEFAULT_ARRIVAL_MIN)


def definitions(norms: Norms) -> tuple[KpiDefinition, ...]:
    """:data:`KPIS` with the per-category response targets taken from a city pack's norms."""
    targets = {f"ambulance.response_p90_c{c}": float(norms.ambulance_arrival_min[c]) for c in CATEGORIES}
    return tuple(replace(k, target=targets[k.key]) if k.key in targets else k for k in KPIS)


# ---------------------------------------------------------------------------------------
# statistics


def _share(flags: Sequence[bool]) -> float | None:
    return 100 * sum(flags) / len(flags) if flags else None


# ---------------------------------------------------------------------------------------
# per-call values


def _times(call: Mapping[str, Any]) -> dict[str, datetime]:
    return {name: datetime.fromisoformat(value) if isinstance(value, str) else value
            for name, value in (call.get("times") or {}).items()}


def response(call: Mapping[str, Any], times: Mapping[str, datetime] | None = None) -> tuple[float, datetime] | None:
    """``(response in seconds, completion time)`` of one call, or None (see the module doc)."""
    t = _times(call) if times is None else times
    if "on_scene" in t and "call_received" in t:
        return (t["on_scene"] - t["call_received"]).total_seconds(), t["on_scene"]
    seconds = call.get("response_s")
    if seconds is None or not t:
        return None
    done = t["call_received"] + timedelta(seconds=seconds) if "call_received" in t else max(t.values())
    return float(seconds), done


def _is_waiting(call: Mapping[str, Any], times: Mapping[str, datetime], now: datetime) -> bool:
    received = times.get("call_received")
    return (received is not None and received <= now and call_status(times) == "waiting"
            and not call.get("unit_id"))


def unit_group(unit: Mapping[str, Any], call_statuses: Mapping[str, str]) -> str:
    """``available``, ``on_call`` or ``at_hospital`` (see :data:`UNIT_GROUPS`)."""
    group = _GROUP_OF.get(unit.get("status") or "")
    if group:
        return group
    call_id = unit.get("call_id")
    if call_id:
        return _GROUP_OF.get(call_statuses.get(call_id, ""), "on_call")
    return "available"


# ---------------------------------------------------------------------------------------
# KPIs


class _Scope:
    """What one scope accumulates."""

    def __init__(self) -> None:
        self.calls = 0
        self.waiting = 0
        self.units: dict[str, int] | None = None
        self.responses: dict[int | None, list[float]] = {}
        self.within: dict[int, list[bool]] = {c: [] for c in CATEGORIES}
        self.intervals: dict[str, list[float]] = {key: [] for key in INTERVALS}

    def values(self) -> dict[str, float | None]:
        all_responses = [v for values in self.responses.values() for v in values]
        out: dict[str, float | None] = {
            "ambulance.calls_waiting": float(self.waiting) if self.calls else None,
            "ambulance.within_norm_pct": _share([f for flags in self.within.values() for f in flags]),
            "ambulance.response_p50": percentile(all_responses, 50),
            "ambulance.response_p90": percentile(all_responses, 90),
        }
        for group in UNIT_GROUPS:
            out[f"ambulance.units_{group}"] = None if self.units is None else float(self.units[group])
        for c in CATEGORIES:
            out[f"ambulance.within_norm_pct_c{c}"] = _share(self.within[c])
            out[f"ambulance.response_p50_c{c}"] = percentile(self.responses.get(c, []), 50)
            out[f"ambulance.response_p90_c{c}"] = percentile(self.responses.get(c, []), 90)
        for key, values in self.intervals.items():
            out[f"ambulance.{key}_p50"] = percentile(values, 50)
            out[f"ambulance.{key}_p90"] = percentile(values, 90)
        return out


def compute(calls: Iterable[Mapping[str, Any]], units: Iterable[Mapping[str, Any]], *, norms: Norms,
            now: datetime, window: timedelta) -> dict[str, dict[str, float | None]]:
    """Every ambulance KPI per scope.

    Args:
        calls: merged latest call records (``AmbulanceCall.to_dict()`` shape).
        units: latest unit records (``UnitPosition.to_dict()`` shape).
        norms: the city pack's norms (arrival norm per category).
        now: the end of the window (aware).
        window: its length; responses and intervals completed in ``(now − window, now]`` count.

    Returns:
        ``{scope: {kpi key: value or None}}`` with the keys of :data:`KPIS`; scope ``"city"``
        and each district id present.
    """
    start = now - window
    scopes: dict[str, _Scope] = {"city": _Scope()}
    statuses: dict[str, str] = {}
    for call in calls:
        times = _times(call)
        statuses[call["call_id"]] = call_status(times)
        targets = [scopes["city"]]
        if call.get("district"):
            targets.append(scopes.setdefault(call["district"], _Scope()))
        waiting = _is_waiting(call, times, now)
        category = call.get("category")
        resp = None if CANCELLED in times else response(call, times)
        in_window = resp is not None and start < resp[1] <= now
        spans = {key: (times[end] - times[begin]).total_seconds() / 60
                 for key, (begin, end, _, _) in INTERVALS.items()
                 if begin in times and end in times and start < times[end] <= now}
        for scope in targets:
            scope.calls += 1
            scope.waiting += waiting
            if in_window:
                assert resp is not None
                scope.responses.setdefault(category, []).append(resp[0] / 60)
                if category in scope.within:
                    scope.within[category].append(resp[0] <= norms.ambulance_arrival_min[category] * 60)
            for key, minutes in spans.items():
                scope.intervals[key].append(minutes)
    for unit in units:
        group = unit_group(unit, statuses)
        names = ["city"] + ([unit["district"]] if unit.get("district") else [])
        for name in names:
            scope = scopes.setdefault(name, _Scope())
            if scope.units is None:
                scope.units = dict.fromkeys(UNIT_GROUPS, 0)
            scope.units[group] += 1
    return {name: scope.values() for name, scope in scopes.items()}
