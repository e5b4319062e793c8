"""The public indicators: district × hour, delayed, small counts suppressed; built for anyone to read.

A pure builder (:func:`build`) turns the per-minute KPI history (``workers.snapshots``) into one
JSON document, and an I/O shell (:func:`build_public_indicators`, an RQ job the scheduler runs at
start and every 5 minutes) reads the history, builds and writes it to ``keys.PUBLIC_INDICATORS``.
The public app (``dashboards/public.py``) reads nothing else. ``docs/open-data.md`` documents
the document, its CSV form and the rules below for the people who use them.

Rules:

* **Hours**: the last ``hours`` (24) completed local hours; the newest one ended at least
  ``delay_min`` (``SC_PUBLIC_DELAY_MIN``, 60) minutes before the build. An hour's value is the
  KPI snapshot taken at the end of the hour (the last history entry inside it), so "as at 13:59".
* **Indicators** (:data:`INDICATORS`), per district and for the city:
  ``aqi`` (the worst station's US EPA AQI and its category; not a count, never suppressed),
  ``appeals_new`` (appeals requested during the hour: ``appeals.new_last_hour`` at the hour's end),
  ``appeals_resolved`` (appeals closed during the hour, from two snapshots an hour apart: open
  at the start + new during the hour − open at the end, never below 0), ``appeals_overdue``
  (open appeals past their deadline at the hour's end), ``ambulance_within_norm`` (share of
  ambulance arrivals completed during the hour within their category's norm, with the number of
  arrivals it rests on) and ``traffic_score`` (city only, 0–10).
* **Suppression**: a count from 1 to ``min_count − 1`` (``SC_PUBLIC_MIN_COUNT``, 5), and a share
  resting on 1 to ``min_count − 1`` cases, is published as null with the flag ``suppressed``
  (zero is published: it discloses nobody). **Complementary suppression**: when exactly one
  district of an hour is suppressed while the city total is published, the city total minus the
  other districts would give it away, so the smallest other published district is suppressed too
  (or the city total, when no district is left); suppressed cells are not told apart.
* **Nothing personal**: only aggregates per district and hour leave this module: no coordinates,
  no appeal text or address, no call or unit ids, no station ids.

Why ambulance counts come from the calls: the KPI snapshots hold the 24-hour share of arrivals
within the norm but not the number of arrivals it rests on, which suppression needs; so the I/O
shell counts the arrivals completed in each hour from the latest call records with the KPI's own
definitions (:func:`workers.kpi.ambulance.response`, the city pack's norms) and passes only the
per district × hour counts to the builder (:func:`ambulance_counts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import orjson

from core.schemas import CANCELLED, iso
from workers.kpi import ambulance as ambulance_kpi
from workers.kpi.air import category as aqi_category

log = logging.getLogger(__name__)

SCHEMA = "sitcen.public-indicators"
SCHEMA_VERSION = 1
CITY = "city"
HOUR = timedelta(hours=1)
#: The start snapshot of ``appeals_resolved`` may be this far from exactly an hour before the end one.
PAIR_TOLERANCE = timedelta(minutes=2)
#: Preferred traffic score provider when several report (scores are not comparable across providers).
TRAFFIC_PROVIDERS = ("yandex", "2gis")

OK, SUPPRESSED, NO_DATA = "ok", "suppressed", "no_data"

LICENCE: Mapping[str, str] = {
    "name": "CC BY 4.0",
    "url": "https://creativecommons.org/licenses/by/4.0/",
    "attribution": "Almaty Situation Center, public indicators",
}


@dataclass(frozen=True, slots=True)
class Indicator:
    """One public indicator: key, unit, whether it is suppressed as a count, and its definition."""

    key: str
    unit: str
    domain: str
    counted: bool
    """Suppressed when small: a count (its value) or a share (its ``n``)."""
    definition: str


INDICATORS: tuple[Indicator, ...] = (
    Indicator("aqi", "AQI", "air", False,
              "US EPA Air Quality Index (2024 table, NowCast for PM) of the worst station in the area at the end "
              "of the hour, with its category: good 0-50, moderate 51-100, usg 101-150, unhealthy 151-200, "
              "very_unhealthy 201-300, hazardous 301+."),
    Indicator("appeals_new", "count", "appeals", True,
              "Citizens' appeals requested during the hour."),
    Indicator("appeals_resolved", "count", "appeals", True,
              "Appeals closed during the hour: open at the start of the hour + requested during it - open at "
              "its end (from the hourly snapshots; never below 0)."),
    Indicator("appeals_overdue", "count", "appeals", True,
              "Open appeals past their deadline at the end of the hour (deadline: the promised date, else the "
              "category's service norm)."),
    Indicator("ambulance_within_norm", "%", "ambulance", True,
              "Share of ambulance arrivals completed during the hour within the arrival norm of their urgency "
              "category (order KR DSM-225/2020: 10, 15, 30, 60 min from the call); n = arrivals counted."),
    Indicator("traffic_score", "score", "traffic", False,
              "City traffic score 0-10 (Yandex/2GIS 'probki' points) at the end of the hour; city only."),
)
BY_KEY: Mapping[str, Indicator] = {i.key: i for i in INDICATORS}


@dataclass(frozen=True, slots=True)
class Area:
    """The city or one district, as the public document names it."""

    id: str
    type: str
    names: Mapping[str, str]
    population: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "names": dict(self.names), "population": self.population}


def areas_of(pack: Any) -> list[Area]:
    """The city and its districts from a city pack (in the pack's order)."""
    population = sum(d.population or 0 for d in pack.districts) or None
    return [Area(CITY, "city", dict(pack.name), population),
            *(Area(d.id, "district", d.names.as_dict(), d.population) for d in pack.districts)]


# ---------------------------------------------------------------------------------------
# time


def floor_hour(t: datetime, zone: tzinfo) -> datetime:
    """The start of the local hour holding ``t`` (aware, in UTC)."""
    local = t.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def period(now: datetime, zone: tzinfo, *, delay_min: int = 60, hours: int = 24) -> list[tuple[datetime, datetime]]:
    """The published hours, oldest first: ``hours`` completed local hours, the newest ending at or before
    ``now − delay_min``."""
    last_end = floor_hour(now - timedelta(minutes=delay_min), zone)
    return [(last_end - (hours - i) * HOUR, last_end - (hours - i - 1) * HOUR) for i in range(hours)]


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _entry_ms(entry: Mapping[str, Any]) -> int:
    return int(entry["version"])


def last_in(entries: Sequence[Mapping[str, Any]], start: datetime, end: datetime) -> Mapping[str, Any] | None:
    """The newest history entry computed in ``[start, end)``, or None."""
    lo, hi = _ms(start), _ms(end)
    best = None
    for e in entries:
        if lo <= _entry_ms(e) < hi and (best is None or _entry_ms(e) >= _entry_ms(best)):
            best = e
    return best


def hour_before(entries: Sequence[Mapping[str, Any]], entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The entry computed closest to an hour before ``entry`` (within :data:`PAIR_TOLERANCE`), or None."""
    target = _entry_ms(entry) - 3_600_000
    tolerance = PAIR_TOLERANCE.total_seconds() * 1000
    near = [e for e in entries if abs(_entry_ms(e) - target) <= tolerance]
    return min(near, key=lambda e: (abs(_entry_ms(e) - target), -_entry_ms(e)), default=None)


# ---------------------------------------------------------------------------------------
# raw values per hour


def _scope(entry: Mapping[str, Any] | None, area: str) -> Mapping[str, Any] | None:
    if entry is None:
        return None
    values = entry.get("values") or {}
    return values.get(area)


def _count(entry: Mapping[str, Any] | None, area: str, key: str) -> int | None:
    """A count KPI of ``area`` in a snapshot: None without the snapshot, 0 for an area it does not list
    (the KPI modules list only areas with records)."""
    if entry is None:
        return None
    scope = _scope(entry, area)
    value = None if scope is None else scope.get(key)
    return 0 if value is None else int(value)


def _cell(value: Any = None, flag: str = OK, **extra: Any) -> dict[str, Any]:
    if value is None and flag == OK:
        flag = NO_DATA
    return {"value": value, "flag": flag, **extra}


def _air_cell(entry: Mapping[str, Any] | None, area: str) -> dict[str, Any]:
    scope = _scope(entry, area)
    value = None if scope is None else scope.get("air.aqi")
    if value is None:
        return _cell(category=None)
    value = int(value)
    return _cell(value, category=scope.get("air.aqi_category") or aqi_category(value).key)


def _traffic_cell(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    scope = _scope(entry, CITY) or {}
    scores = {p: s for p, s in (scope.get("traffic.score") or {}).items() if s is not None}
    provider = next((p for p in TRAFFIC_PROVIDERS if p in scores), min(scores, default=None))
    if provider is None:
        return _cell(provider=None)
    return _cell(round(float(scores[provider]), 1), provider=provider)


def _appeals_cells(end: Mapping[str, Any] | None, start: Mapping[str, Any] | None, area: str) -> dict[str, Any]:
    new, overdue = _count(end, area, "appeals.new_last_hour"), _count(end, area, "appeals.overdue")
    resolved = None
    if end is not None and start is not None:
        resolved = max(0, _count(start, area, "appeals.open") + new - _count(end, area, "appeals.open"))  # type: ignore[operator]
    return {"appeals_new": _cell(new), "appeals_resolved": _cell(resolved), "appeals_overdue": _cell(overdue)}


def _ambulance_cell(counts: Mapping[str, Sequence[int]] | None, area: str) -> dict[str, Any]:
    if counts is None:
        return _cell(n=None)
    n, within = counts.get(area, (0, 0))
    if not n:
        return _cell(None, NO_DATA, n=0)
    return _cell(round(100 * within / n, 1), n=int(n))


def ambulance_counts(calls: Iterable[Mapping[str, Any]], *, norms_min: Mapping[int, float],
                     hours: Sequence[tuple[datetime, datetime]]) -> dict[str, dict[str, list[int]]]:
    """Arrivals and arrivals within the norm per hour and area: ``{hour start iso: {area: [n, within]}}``.

    The definitions are the KPI's (:mod:`workers.kpi.ambulance`): response = on scene − call received
    (else the source's ``response_s``), counted in the hour ``(start, end]`` its arrival completed in;
    cancelled calls and calls without a category that has a norm are left out. Every hour is present
    (empty when nothing arrived); only counts leave this function.
    """
    out: dict[str, dict[str, list[int]]] = {iso(s): {} for s, _ in hours}
    if not hours:
        return out
    first, last = hours[0][0], hours[-1][1]
    for call in calls:
        times = call.get("times") or {}
        category = call.get("category")
        if CANCELLED in times or category not in norms_min:
            continue
        resp = ambulance_kpi.response(call)
        if resp is None or not first < resp[1] <= last:
            continue
        seconds, done = resp
        index = next(i for i, (s, e) in enumerate(hours) if s < done <= e)
        bucket = out[iso(hours[index][0])]
        within = seconds <= norms_min[category] * 60
        for area in (CITY, call.get("district")):
            if area:
                n = bucket.setdefault(str(area), [0, 0])
                n[0] += 1
                n[1] += int(within)
    return out


# ---------------------------------------------------------------------------------------
# suppression


def _size(cell: Mapping[str, Any], indicator: Indicator) -> int | None:
    """What suppression looks at: the count itself, or the ``n`` a share rests on."""
    if indicator.unit == "%":
        return cell.get("n")
    return cell.get("value")


def _hide(cell: dict[str, Any]) -> None:
    cell["value"] = None
    cell["flag"] = SUPPRESSED
    if "n" in cell:
        cell["n"] = None


def suppress(values: Mapping[str, dict[str, dict[str, Any]]], areas: Sequence[Area], *, min_count: int) -> int:
    """Suppress small counts of one hour in place (primary, then complementary). Returns the cells hidden.

    ``values``: ``{area id: {indicator key: cell}}``.
    """
    hidden = 0
    districts = [a.id for a in areas if a.type == "district"]
    for indicator in INDICATORS:
        if not indicator.counted:
            continue
        cells = {a: values[a][indicator.key] for a in [CITY, *districts] if indicator.key in values.get(a, {})}
        sizes = {a: _size(c, indicator) for a, c in cells.items()}
        for area, size in sizes.items():
            if size is not None and 0 < size < min_count:
                _hide(cells[area])
                hidden += 1
        city = cells.get(CITY)
        while city is not None and city["flag"] != SUPPRESSED:
            down = [a for a in districts if a in cells and cells[a]["flag"] == SUPPRESSED]
            if len(down) != 1:
                break
            candidates = [a for a in districts if a in cells and cells[a]["flag"] == OK and sizes[a] is not None]
            if candidates:
                _hide(cells[min(candidates, key=lambda a: (sizes[a], a))])
            else:
                _hide(city)
            hidden += 1
    return hidden


# ---------------------------------------------------------------------------------------
# the document


def build(*, history: Mapping[str, Sequence[Mapping[str, Any]]],
          ambulance: Mapping[str, Mapping[str, Sequence[int]]] | None, areas: Sequence[Area], now: datetime,
          zone: tzinfo, city: Mapping[str, Any] | None = None, delay_min: int = 60, min_count: int = 5,
          hours: int = 24, norms_min: Mapping[int, float] | None = None) -> dict[str, Any]:
    """The public indicators document.

    Args:
        history: KPI history entries per domain (``air``, ``appeals``, ``traffic``), any order; for
            each hour the builder uses the last entry inside it, and for ``appeals_resolved`` also the
            entry an hour before that one.
        ambulance: :func:`ambulance_counts` of the same hours (None: no ambulance data).
        areas: the city and its districts (:func:`areas_of`).
        now: the build time (aware); zone: the city's time zone.
        city: ``{"id", "names", "timezone"}`` for the document's header.
        delay_min, min_count, hours: the rules in the module doc.
        norms_min: arrival norm per urgency category, minutes (stated in the document).
    """
    slots = period(now, zone, delay_min=delay_min, hours=hours)
    air, appeals, traffic = (list(history.get(d, ())) for d in ("air", "appeals", "traffic"))
    out_hours = []
    hidden = 0
    for start, end in slots:
        air_end, traffic_end = last_in(air, start, end), last_in(traffic, start, end)
        appeals_end = last_in(appeals, start, end)
        appeals_start = None if appeals_end is None else hour_before(appeals, appeals_end)
        counts = None if ambulance is None else ambulance.get(iso(start), {})
        values: dict[str, dict[str, dict[str, Any]]] = {}
        for area in areas:
            cells = {"aqi": _air_cell(air_end, area.id), **_appeals_cells(appeals_end, appeals_start, area.id),
                     "ambulance_within_norm": _ambulance_cell(counts, area.id)}
            if area.id == CITY:
                cells["traffic_score"] = _traffic_cell(traffic_end)
            values[area.id] = cells
        hidden += suppress(values, areas, min_count=min_count)
        out_hours.append({"start": iso(start), "end": iso(end), "values": values})
    latest = out_hours[-1] if out_hours else None
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "version": _ms(now),
        "generated_at": iso(now),
        "city": dict(city or {}),
        "period": {"start": iso(slots[0][0]) if slots else None, "end": iso(slots[-1][1]) if slots else None,
                   "hours": hours, "delay_min": delay_min, "timezone": getattr(zone, "key", str(zone)),
                   "latest_hour": None if latest is None else {"start": latest["start"], "end": latest["end"]}},
        "suppression": {"min_count": min_count, "suppressed_cells": hidden,
                        "rule": f"counts of 1 to {min_count - 1}, and shares resting on 1 to {min_count - 1} cases, "
                                "are null with flag 'suppressed'; when a single district of an hour is suppressed, "
                                "the smallest other district (or the city total) is suppressed too"},
        "norms": {"ambulance_arrival_min": {str(k): v for k, v in sorted((norms_min or {}).items())}},
        "licence": dict(LICENCE),
        "indicators": [{"key": i.key, "unit": i.unit, "domain": i.domain, "suppressed_when_small": i.counted,
                        "definition": i.definition} for i in INDICATORS],
        "areas": [a.as_json() for a in areas],
        "hours": out_hours,
    }


# ---------------------------------------------------------------------------------------
# the I/O shell


def read_hour_entries(redis: Any, domain: str, slots: Sequence[tuple[datetime, datetime]],
                      *, pairs: bool = False) -> list[dict[str, Any]]:
    """The history entries :func:`build` needs for ``domain``: the last one in each hour and, with
    ``pairs``, those around an hour before each of them. Two pipelined round trips at most."""
    from core import keys

    key = keys.kpi_history_key(domain)
    pipe = redis.pipeline(transaction=False)
    for start, end in slots:
        pipe.xrevrange(key, max=_ms(end) - 1, min=_ms(start), count=1)
    found = [orjson.loads(fields[b"d"]) for result in pipe.execute() for _, fields in result]
    if pairs and found:
        tol = int(PAIR_TOLERANCE.total_seconds() * 1000)
        pipe = redis.pipeline(transaction=False)
        for entry in found:
            target = _entry_ms(entry) - 3_600_000
            pipe.xrange(key, min=target - tol - 60_000, max=target + tol)
        found += [orjson.loads(fields[b"d"]) for result in pipe.execute() for _, fields in result]
    return found


def build_public_indicators(redis_url: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """RQ entry point (at scheduler start and every 5 minutes): build and write the public document.

    Returns a summary: version, hours, suppressed cells, bytes written.
    """
    from core.redis_server import connect
    from core.settings import Settings
    from core.store import Store
    from workers.jobs import _pack

    settings = Settings.from_env()
    redis = connect(redis_url or settings.redis_url)
    try:
        pack = _pack(settings)
        doc = build_from_redis(redis, pack, now or datetime.now(UTC), delay_min=settings.public_delay_min,
                               min_count=settings.public_min_count,
                               calls=Store.from_settings(redis, settings).latest("ambulance", "calls").values())
        raw = write_document(redis, doc)
        return {"version": doc["version"], "hours": len(doc["hours"]),
                "suppressed": doc["suppression"]["suppressed_cells"], "bytes": len(raw)}
    finally:
        redis.close()


def build_from_redis(redis: Any, pack: Any, now: datetime, *, delay_min: int = 60, min_count: int = 5,
                     calls: Iterable[Mapping[str, Any]] | None = None, hours: int = 24) -> dict[str, Any]:
    """Read what :func:`build` needs from Redis and build the document (``calls``: the latest call
    records; None reads them from the latest-state hash)."""
    from core import keys

    zone = pack.zone
    slots = period(now, zone, delay_min=delay_min, hours=hours)
    history = {"air": read_hour_entries(redis, "air", slots), "traffic": read_hour_entries(redis, "traffic", slots),
               "appeals": read_hour_entries(redis, "appeals", slots, pairs=True)}
    if calls is None:
        calls = (orjson.loads(v) for v in redis.hvals(keys.latest_key("ambulance", "calls")))
    norms = dict(pack.norms.ambulance_arrival_min) if pack.norms else dict(ambulance_kpi.DEFAULT_ARRIVAL_MIN)
    counts = ambulance_counts(calls, norms_min=norms, hours=slots)
    return build(history=history, ambulance=counts, areas=areas_of(pack), now=now, zone=zone,
                 city={"id": pack.id, "names": dict(pack.name), "timezone": pack.timezone},
                 delay_min=delay_min, min_count=min_count, hours=hours, norms_min=norms)


def write_document(redis: Any, doc: Mapping[str, Any]) -> bytes:
    """Write the document to ``keys.PUBLIC_INDICATORS`` and bump its version. Returns the bytes written."""
    from core import keys

    raw = orjson.dumps(doc)
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.PUBLIC_INDICATORS, raw)
    pipe.hset(keys.VERSIONS, "public:indicators", doc["version"])
    pipe.execute()
    return raw
