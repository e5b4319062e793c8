"""Road traffic feed: city-wide congestion scores and per-segment traffic flow.

Three wire formats, all pure ``bytes -> Parsed`` functions:

* ``score`` (default): our JSON for city congestion scores (Yandex "баллы пробок", 2GIS),
  one object, an array or NDJSON -> :class:`~core.schemas.TrafficScore`.
* ``score-csv``: the sparse one-row-per-minute CSV of github.com/Dex719/almaty-traffic-data
  (``ts_utc, ts_almaty, yandex_score, ..., dgis_score, ev_*``) -> one Yandex and/or one 2GIS
  :class:`~core.schemas.TrafficScore` per row.
* ``fiware``: FIWARE smart data model ``TrafficFlowObserved`` entities (NGSI v2 or NGSI-LD,
  keyValues or normalized) -> :class:`~core.schemas.TrafficFlow`.

The road-event counters (``ev_*``) of the CSV come from the 2GIS user layer
(``tugc.2gis.com/1.0/layers/user``), so they ride on the 2GIS record, not on the Yandex one.
See ``docs/feeds/traffic.md`` for the field mappings and what is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.errors import SchemaError
from core.schemas import (
    TrafficFlow,
    TrafficScore,
    check_int,
    check_lat_lon,
    check_number,
    check_str,
    check_time,
)
from feeds.base import FeedAdapter, Format, Parsed, convert_items, csv_items, json_items, require_mapping

#: Kinds of road event a score may carry counts of (the 2GIS event layers).
ROAD_EVENT_KINDS: tuple[str, ...] = ("crash", "roadwork", "restriction", "comment", "other")
_ROAD_EVENT_SET = frozenset(ROAD_EVENT_KINDS)

#: Columns the score CSV must have; the others (trend, jam length, ``ev_*``, ts_almaty) are optional.
CSV_REQUIRED: tuple[str, ...] = ("ts_utc", "yandex_score", "dgis_score")
_EV_COLUMNS: tuple[tuple[str, str], ...] = tuple((f"ev_{kind}", kind) for kind in ROAD_EVENT_KINDS)

#: The NGSI entity type the ``fiware`` format reads.
FLOW_TYPE = "TrafficFlowObserved"
_FLOW_TYPE_SUFFIXES = ("/" + FLOW_TYPE, "#" + FLOW_TYPE, ":" + FLOW_TYPE)

SOURCE_SCORE = "score"
SOURCE_SCORE_CSV = "score-csv"
SOURCE_FIWARE = "fiware"

#: UN/CEFACT unit codes of speed -> factor to km/h (kilometre per hour, metre per second, mile per hour).
SPEED_UNITS: dict[str, float] = {"KMH": 1.0, "MTS": 3.6, "HM": 1.609344}
MAX_SPEED_KMH = 300.0
MAX_INTENSITY = 1_000_000.0
MAX_LANE = 999


# ---------------------------------------------------------------------------------------
# shared helpers


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _time(value: Any, name: str, *, required: bool = True) -> datetime | None:
    """:func:`check_time` (it turns every failure, out-of-range epochs included, into a SchemaError)."""
    return check_time(value, name, required=required)


def _required_time(value: Any, name: str) -> datetime:
    when = _time(value, name)
    assert when is not None
    return when


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    """A required finite number in ``[lo, hi]``."""
    number = check_number(value, name, lo=lo, hi=hi)
    assert number is not None
    return number


# ---------------------------------------------------------------------------------------
# format "score": JSON congestion scores


def score_from_json(item: Any) -> TrafficScore:
    """Turn one score object into a :class:`TrafficScore`.

    Contract: ``provider`` (text, lower-cased), ``score`` (0-10) and ``observed_at`` (ISO 8601
    with an offset, or epoch s/ms) are required; ``area_id`` defaults to ``"city"``;
    ``trend`` (-10..10), ``jam_km`` (>= 0) and ``road_events`` (counts per
    :data:`ROAD_EVENT_KINDS`) are optional.

    Raises:
        SchemaError: a field is missing, of the wrong type or out of range.
    """
    obj = require_mapping(item)
    provider = check_str(obj.get("provider"), "provider", max_len=32).lower()
    return TrafficScore(
        provider=provider,
        score=_number(obj.get("score"), "score", 0.0, 10.0),
        observed_at=_required_time(obj.get("observed_at"), "observed_at"),
        area_id=check_str(obj.get("area_id"), "area_id", required=False) or "city",
        trend=check_int(obj.get("trend"), "trend", lo=-10, hi=10, required=False),
        jam_km=check_number(obj.get("jam_km"), "jam_km", lo=0.0, hi=100_000.0, required=False),
        road_events=_road_events(obj.get("road_events")),
        source=SOURCE_SCORE,
    )


def _road_events(value: Any) -> dict[str, int] | None:
    """Counts per road-event kind, in :data:`ROAD_EVENT_KINDS` order; unknown kinds are an error."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SchemaError(f"road_events must be an object of counts, got {type(value).__name__}", code="bad_type")
    unknown = [str(k) for k in value if k not in _ROAD_EVENT_SET]
    if unknown:
        raise SchemaError(f"road_events has unknown kind(s) {', '.join(sorted(unknown))[:80]}; known: "
                          f"{', '.join(ROAD_EVENT_KINDS)}", code="bad_value")
    counts: dict[str, int] = {}
    for kind in ROAD_EVENT_KINDS:
        count = check_int(value.get(kind), f"road_events.{kind}", lo=0, hi=1_000_000, required=False)
        if count is not None:
            counts[kind] = count
    return counts or None


def parse_scores(payload: bytes) -> Parsed:
    """Parse a JSON object, array or NDJSON of congestion scores.

    Raises:
        PayloadError: the payload is not JSON/NDJSON at all.
    """
    return convert_items(json_items(payload), score_from_json, id_keys=("provider", "area_id"))


# ---------------------------------------------------------------------------------------
# format "score-csv": the almaty-traffic-data scores.csv layout


def _cell(row: Mapping[str, str], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    value = value.strip()
    return value or None


def scores_from_csv_row(row: Any) -> list[TrafficScore] | None:
    """Turn one CSV row into a Yandex and/or a 2GIS :class:`TrafficScore`.

    Contract: a row with neither ``yandex_score`` nor ``dgis_score`` is ignored (``None``).
    The time is ``ts_utc`` (must carry an offset); ``ts_almaty``, when present, must be the
    same instant. Yandex gets ``yandex_trend`` and ``yandex_jam_km``; 2GIS gets the ``ev_*``
    road-event counters (they come from 2GIS's event layer).

    Raises:
        SchemaError: bad time, times that disagree, or a bad number in a filled cell.
    """
    yandex = _cell(row, "yandex_score")
    dgis = _cell(row, "dgis_score")
    if yandex is None and dgis is None:
        return None
    when = _row_time(row)
    out: list[TrafficScore] = []
    if yandex is not None:
        out.append(_yandex_from_row(row, yandex, when))
    if dgis is not None:
        out.append(TrafficScore(provider="2gis", score=_number(dgis, "dgis_score", 0.0, 10.0), observed_at=when,
                                road_events=_csv_events(row), source=SOURCE_SCORE_CSV))
    return out


def _row_time(row: Mapping[str, str]) -> datetime:
    """``ts_utc``, checked against ``ts_almaty`` when that is filled."""
    when = _required_time(_cell(row, "ts_utc"), "ts_utc")
    local_text = _cell(row, "ts_almaty")
    if local_text is not None:
        local = _required_time(local_text, "ts_almaty")
        if local != when:
            raise SchemaError(f"ts_almaty {local_text} is not the same instant as ts_utc {_cell(row, 'ts_utc')} "
                              f"(off by {(local - when).total_seconds():+g} s)", code="bad_time")
    return when


def _yandex_from_row(row: Mapping[str, str], score: str, when: datetime) -> TrafficScore:
    return TrafficScore(
        provider="yandex",
        score=_number(score, "yandex_score", 0.0, 10.0),
        observed_at=when,
        trend=check_int(_cell(row, "yandex_trend"), "yandex_trend", lo=-10, hi=10, required=False),
        jam_km=check_number(_cell(row, "yandex_jam_km"), "yandex_jam_km", lo=0.0, hi=100_000.0, required=False),
        source=SOURCE_SCORE_CSV,
    )


def _csv_events(row: Mapping[str, str]) -> dict[str, int] | None:
    counts: dict[str, int] = {}
    for column, kind in _EV_COLUMNS:
        count = check_int(_cell(row, column), column, lo=0, hi=1_000_000, required=False)
        if count is not None:
            counts[kind] = count
    return counts or None


def parse_score_csv(payload: bytes) -> Parsed:
    """Parse the almaty-traffic-data score CSV (header row, CRLF or LF, sparse columns).

    Raises:
        PayloadError: not text, or the header lacks ts_utc, yandex_score or dgis_score.
    """
    return convert_items(csv_items(payload, required=CSV_REQUIRED), scores_from_csv_row,
                         id_keys=("ts_utc",), what="row")


# ---------------------------------------------------------------------------------------
# format "fiware": TrafficFlowObserved (NGSI v2 / NGSI-LD, keyValues or normalized)


def _value(attr: Any) -> Any:
    """The value of an attribute in any NGSI representation.

    keyValues attributes are returned as they are; normalized ones (``{"type", "value"}``,
    NGSI-LD Relationships ``{"type", "object"}``) and JSON-LD typed literals
    (``{"@type": "DateTime", "@value": ...}``) are unwrapped.
    """
    if isinstance(attr, dict):
        if "value" in attr:
            attr = attr["value"]
        elif "object" in attr:
            attr = attr["object"]
        if isinstance(attr, dict) and "@value" in attr:
            attr = attr["@value"]
    return attr


def flow_from_fiware(item: Any) -> TrafficFlow:
    """Turn one ``TrafficFlowObserved`` entity into a :class:`TrafficFlow`.

    Contract: ``type`` must be TrafficFlowObserved; ``id``, a time (``dateObserved`` or
    ``dateObservedFrom``/``dateObservedTo``) and a ``location`` (LineString or Point) are
    required, plus at least one of averageVehicleSpeed, intensity, occupancy, congested.
    The segment id is ``refRoadSegment`` (else ``id``) with ``:lane<laneId>`` appended.

    Raises:
        SchemaError: the entity is of another type, or a field is missing or invalid.
    """
    entity = require_mapping(item, "entity")
    _check_type(entity.get("type"))
    entity_id = check_str(entity.get("id"), "id", max_len=256)
    lane = check_int(_value(entity.get("laneId")), "laneId", lo=0, hi=MAX_LANE, required=False)
    lat, lon, geometry = _location(_value(entity.get("location")))
    observed_from, observed_at = _observed(entity)
    return TrafficFlow(
        segment_id=_segment_id(entity, entity_id, lane),
        observed_at=observed_at,
        observed_from=observed_from,
        lat=lat,
        lon=lon,
        speed_kmh=_speed(entity, "averageVehicleSpeed", 0.0),
        free_flow_kmh=_speed(entity, "freeFlowSpeed", 0.1),
        intensity=check_number(_value(entity.get("intensity")), "intensity", lo=0.0, hi=MAX_INTENSITY,
                               required=False),
        occupancy=_occupancy(_value(entity.get("occupancy"))),
        congested=_value(entity.get("congested")),
        lane_id=lane,
        name=_name(entity),
        geometry=geometry,
        source=SOURCE_FIWARE,
    )


def _check_type(kind: Any) -> None:
    if _blank(kind):
        raise SchemaError(f"type is missing; expected {FLOW_TYPE}", code="missing_field")
    if not isinstance(kind, str):
        raise SchemaError(f"type must be a string, got {type(kind).__name__}", code="bad_type")
    if kind != FLOW_TYPE and not kind.endswith(_FLOW_TYPE_SUFFIXES):
        raise SchemaError(f"type is {kind[:60]!r}; this format reads {FLOW_TYPE} entities only", code="wrong_type")


def _segment_id(entity: Mapping[str, Any], entity_id: str, lane: int | None) -> str:
    ref = _value(entity.get("refRoadSegment"))
    base = entity_id if _blank(ref) else check_str(ref, "refRoadSegment", max_len=256)
    return base if lane is None else f"{base}:lane{lane}"


def _speed(entity: Mapping[str, Any], name: str, lo: float) -> float | None:
    """A speed attribute in km/h, converted when a normalized attribute carries another unitCode."""
    attr = entity.get(name)
    speed = check_number(_value(attr), name, lo=lo, required=False)
    if speed is None:
        return None
    code = _unit_code(attr)
    if code is not None and code != "KMH":
        factor = SPEED_UNITS.get(code) if isinstance(code, str) else None
        if factor is None:
            raise SchemaError(f"{name} unitCode {str(code)[:20]!r} is not a speed unit we know; "
                              f"use one of {', '.join(SPEED_UNITS)}", code="bad_unit")
        speed *= factor
    return check_number(speed, name, lo=lo, hi=MAX_SPEED_KMH)


def _unit_code(attr: Any) -> Any:
    """``unitCode`` of a normalized attribute (NGSI-LD: a member; NGSI v2: in ``metadata``)."""
    if not isinstance(attr, dict):
        return None
    if "unitCode" in attr:
        return attr["unitCode"]
    metadata = attr.get("metadata")
    return _value(metadata.get("unitCode")) if isinstance(metadata, dict) else None


def _occupancy(value: Any) -> float | None:
    try:
        return check_number(value, "occupancy", lo=0.0, hi=1.0, required=False)
    except SchemaError as err:
        if err.code == "out_of_range":
            raise SchemaError(f"{err} (occupancy is a fraction 0-1 of the time; divide a percentage by 100)",
                              code=err.code) from None
        raise


def _name(entity: Mapping[str, Any]) -> str | None:
    name = _value(entity.get("name"))
    if _blank(name):
        address = _value(entity.get("address"))
        name = address.get("streetAddress") if isinstance(address, dict) else None
    return check_str(name, "name", max_len=256, required=False) or None


def _observed(entity: Mapping[str, Any]) -> tuple[datetime | None, datetime]:
    """``(observed_from, observed_at)``: dateObservedFrom/To win over the dateObserved interval."""
    start, start_name = _value(entity.get("dateObservedFrom")), "dateObservedFrom"
    end, end_name = _value(entity.get("dateObservedTo")), "dateObservedTo"
    if _blank(start) or _blank(end):
        first, last = _interval(_value(entity.get("dateObserved")))
        if _blank(start):
            start, start_name = first, "dateObserved"
        if _blank(end):
            end, end_name = last, "dateObserved"
    if _blank(end):
        raise SchemaError("dateObserved is missing (and there is no dateObservedTo)", code="missing_field")
    return _time(start, start_name, required=False), _required_time(end, end_name)


def _interval(value: Any) -> tuple[Any, Any]:
    """Split an ISO 8601 interval ``start/end``; a single instant is ``(None, instant)``."""
    if isinstance(value, str) and "/" in value:
        first, _, last = value.partition("/")
        return first, last
    return None, value


def _location(loc: Any) -> tuple[float, float, tuple[tuple[float, float], ...] | None]:
    """``(lat, lon, geometry)`` of a GeoJSON LineString (middle vertex) or Point."""
    if _blank(loc):
        raise SchemaError("location is missing; a GeoJSON LineString or Point is needed", code="missing_field")
    if isinstance(loc, str):
        return (*_geo_point(loc), None)
    if not isinstance(loc, dict):
        raise SchemaError(f"location must be a GeoJSON object, got {type(loc).__name__}", code="bad_type")
    kind = loc.get("type")
    if kind == "Point":
        lon, lat = _position(loc.get("coordinates"), "location.coordinates")
        return lat, lon, None
    if kind == "LineString":
        line = _line(loc.get("coordinates"))
        lon, lat = line[len(line) // 2]
        return lat, lon, line
    raise SchemaError(f"location type {str(kind)[:40]!r} is not supported; expected LineString or Point",
                      code="bad_value")


def _line(coords: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(coords, list) or len(coords) < 2:
        raise SchemaError("location.coordinates of a LineString must be a list of at least 2 [lon, lat] positions",
                          code="bad_value")
    return tuple(_position(point, index) for index, point in enumerate(coords))


def _position(value: Any, where: str | int) -> tuple[float, float]:
    """``(lon, lat)`` of a GeoJSON position; ``where`` names it in errors (a vertex index or a path)."""
    if not isinstance(value, list) or len(value) < 2:
        name = where if isinstance(where, str) else f"location.coordinates[{where}]"
        raise SchemaError(f"{name} must be a [lon, lat] position, got {str(value)[:40]}", code="bad_value")
    try:
        lat, lon = check_lat_lon(value[1], value[0])
    except SchemaError as err:
        name = where if isinstance(where, str) else f"location.coordinates[{where}]"
        raise SchemaError(f"{name}: {err}", code=err.code) from None
    return lon, lat


def _geo_point(text: str) -> tuple[float, float]:
    """NGSI v2 ``geo:point`` text ``"lat, lon"``."""
    parts = text.split(",")
    if len(parts) != 2:
        raise SchemaError(f"location {text[:40]!r} is neither GeoJSON nor a 'lat, lon' geo:point", code="bad_value")
    return check_lat_lon(parts[0], parts[1])


def parse_fiware(payload: bytes) -> Parsed:
    """Parse TrafficFlowObserved entities: one entity, an array, NDJSON, or a notification
    (``{"subscriptionId": ..., "data": [...]}``, NGSI v2 and NGSI-LD).

    Raises:
        PayloadError: the payload is not JSON/NDJSON at all.
    """
    return convert_items(json_items(payload, unwrap=("data",)), flow_from_fiware, id_keys=("id",), what="entity")


# ---------------------------------------------------------------------------------------


class TrafficFeed(FeedAdapter):
    """Road traffic: city congestion scores (Yandex, 2GIS) and FIWARE segment flow."""

    name = "traffic"
    title = "Road traffic"
    expected_cadence_s = 240.0
    formats = (
        Format("score", parse_scores, ("application/json", "application/x-ndjson"),
               "City congestion scores 0-10 (Yandex, 2GIS): JSON object, array or NDJSON"),
        Format("score-csv", parse_score_csv, ("text/csv",),
               "almaty-traffic-data scores CSV: ts_utc, ts_almaty, yandex_*, dgis_score, ev_* counters"),
        Format("fiware", parse_fiware, ("application/ld+json",),
               "FIWARE TrafficFlowObserved entities, NGSI v2 or NGSI-LD, keyValues or normalized"),
    )
