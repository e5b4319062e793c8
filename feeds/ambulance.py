"""Ambulance feed: emergency medical calls and where the ambulance units are.

Three wire formats, all pure ``bytes -> Parsed`` functions:

``calls`` (default)
    JSON object, array or NDJSON of call records or call status updates. A call's times use
    our names (``call_received`` ... ``back_in_service``, ``cancelled``) or the NEMSIS v3
    element names (``eTimes.01`` ... ``eTimes.14``), nested under ``times`` or at top level
    (our names with an ``_at`` suffix, or the NEMSIS names). Updates of one ``call_id`` are
    merged later by the pipeline; this module only parses them.
``gtfs-rt``
    A GTFS-realtime ``FeedMessage`` (protobuf). Each ``VehiclePosition`` becomes a
    :class:`~core.schemas.UnitPosition`; deleted entities and trip updates or alerts are ignored.
``sf-csv``
    The San Francisco Fire Department dispatch CSV ("Fire Department Calls for Service").
    Each ambulance row (UnitType ``MEDIC`` or ``PRIVATE``) is one unit's response and becomes
    a closed :class:`~core.schemas.AmbulanceCall` with the reported response delay; other units
    (engines, trucks, chiefs ...) are ignored.

See ``docs/feeds/ambulance.md`` for the field mappings and the rejection rules.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2

from core.errors import PayloadError, SchemaError
from core.schemas import (
    CANCELLED,
    NEMSIS_TIMES,
    AmbulanceCall,
    UnitPosition,
    call_status,
    check_int,
    check_number,
    check_str,
    check_time,
)
from feeds.base import (
    FeedAdapter,
    Format,
    Parsed,
    convert_items,
    csv_items,
    json_items,
    local_time,
    require_mapping,
)

# ---------------------------------------------------------------------------------------
# calls (JSON)

CANCELLED_ELEMENT = "eTimes.14"

#: Keys accepted inside ``times``: our names and the NEMSIS element names.
TIME_KEYS: dict[str, str] = {
    **{name: name for name, _ in NEMSIS_TIMES},
    **{element: name for name, element in NEMSIS_TIMES},
    CANCELLED: CANCELLED,
    CANCELLED_ELEMENT: CANCELLED,
}

#: Keys accepted at the top level of a call: ``<name>_at`` and the NEMSIS element names.
TOP_LEVEL_TIME_KEYS: dict[str, str] = {
    **{f"{name}_at": name for name, _ in NEMSIS_TIMES},
    **{element: name for name, element in NEMSIS_TIMES},
    f"{CANCELLED}_at": CANCELLED,
    CANCELLED_ELEMENT: CANCELLED,
}

_TIME_NAMES_HELP = ", ".join([name for name, _ in NEMSIS_TIMES] + [CANCELLED])
_CALL_ID_KEYS = ("call_id",)
#: Top-level keys of a call that are not times (skipped fast when looking for ``*_at`` keys).
_CALL_FIELDS = frozenset({"call_id", "category", "times", "unit_id", "lat", "lon", "district", "complaint",
                          "destination"})


def parse_calls(payload: bytes) -> Parsed:
    """Parse calls or call updates from a JSON object, a JSON array or NDJSON.

    Raises:
        PayloadError: the payload is not JSON/NDJSON at all.
    """
    return convert_items(json_items(payload, unwrap=("calls",)), call_from_json, id_keys=_CALL_ID_KEYS,
                         what="call")


def call_from_json(value: Any) -> AmbulanceCall:
    """Build one :class:`AmbulanceCall` (whole call or status update) from a JSON object.

    Raises:
        SchemaError: not an object, no or unknown or unreadable times, times out of NEMSIS
            order, category outside 1..4, bad coordinates.
    """
    item = require_mapping(value, "call")
    call_id = _str(item.get("call_id"), "call_id")
    times = call_times(item)
    lat = _optional_number(item.get("lat"), "lat", -90.0, 90.0)
    lon = _optional_number(item.get("lon"), "lon", -180.0, 180.0)
    category = item.get("category")
    if type(category) is not int or not 1 <= category <= 4:
        category = check_int(category, "category", lo=1, hi=4, required=False)
    return AmbulanceCall(
        call_id=call_id,
        times=times,
        category=category,
        status=call_status(times),
        unit_id=_optional_str(item.get("unit_id"), "unit_id"),
        lat=lat,
        lon=lon,
        district=_optional_str(item.get("district"), "district"),
        complaint=_optional_str(item.get("complaint"), "complaint", max_len=500),
        destination=_optional_str(item.get("destination"), "destination", max_len=256),
        source="calls",
    )


def call_times(item: Mapping[str, Any]) -> dict[str, datetime]:
    """Collect the times of a call from ``times`` and from top-level ``*_at`` / ``eTimes.*`` keys.

    A ``null`` time counts as absent. The same time given twice (two spellings) must agree.

    Raises:
        SchemaError: ``times`` is not an object, a time name is unknown, a time is unreadable
            or has no UTC offset, a time is given twice with different values, or no time at all.
    """
    out: dict[str, datetime] = {}
    nested = item.get("times")
    if nested is not None:
        _nested_times(out, nested)
    for key, value in item.items():
        if key in _CALL_FIELDS:
            continue
        if key in TOP_LEVEL_TIME_KEYS or (isinstance(key, str) and (key.endswith("_at") or key.startswith("eTimes."))):
            _add_time(out, TOP_LEVEL_TIME_KEYS, key, value, key)
    if not out:
        raise SchemaError("no times: a call needs at least one of times.{call_received, unit_notified, ...}, "
                          "times.{eTimes.01, ...} or a top-level <name>_at", code="missing_field")
    return out


def _nested_times(out: dict[str, datetime], nested: Any) -> None:
    if not isinstance(nested, Mapping):
        raise SchemaError(f"times must be a JSON object of time name -> ISO 8601 time, got "
                          f"{type(nested).__name__}", code="bad_type")
    for key, value in nested.items():
        _add_time(out, TIME_KEYS, key, value, f"times.{key}")


def _add_time(out: dict[str, datetime], names: Mapping[str, str], key: Any, value: Any, label: str) -> None:
    name = names.get(key)
    if name is None:
        raise SchemaError(f"unknown time {label!r}; the times are {_TIME_NAMES_HELP} (or eTimes.01/03/05/06/"
                          f"09/11/12/13/14)", code="bad_value")
    if value is None:
        return
    when = _time(value, label)
    known = out.get(name)
    if known is not None and known != when:
        raise SchemaError(f"{name} is given twice with different values ({label} = {value!s:.40})",
                          code="bad_value")
    out[name] = when


def _time(value: Any, label: str) -> datetime:
    """:func:`check_time`, with a fast path for the common ISO 8601 string with an offset."""
    if type(value) is str:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if when.tzinfo is not None:
                return when.astimezone(UTC)
    checked = check_time(value, label)
    assert checked is not None
    return checked


def _str(value: Any, name: str, *, max_len: int = 128, required: bool = True) -> str:
    """:func:`check_str`, with a fast path for a plain printable string within the limit."""
    if type(value) is str and len(value) <= max_len and value.isprintable():
        text = value.strip()
        if text:
            return text
    return check_str(value, name, max_len=max_len, required=required)


def _optional_number(value: Any, name: str, lo: float, hi: float) -> float | None:
    """:func:`check_number` (not required), with a fast path for a float in range."""
    if type(value) is float and lo <= value <= hi:
        return value
    return check_number(value, name, lo=lo, hi=hi, required=False)


def _optional_str(value: Any, name: str, *, max_len: int = 128) -> str | None:
    return _str(value, name, max_len=max_len, required=False) or None


# ---------------------------------------------------------------------------------------
# GTFS-realtime VehiclePosition

PROTOBUF_TYPES = ("application/x-protobuf", "application/vnd.google.protobuf", "application/octet-stream")

_STOP_STATUS = {
    gtfs_realtime_pb2.VehiclePosition.INCOMING_AT: "incoming_at",
    gtfs_realtime_pb2.VehiclePosition.STOPPED_AT: "stopped_at",
    gtfs_realtime_pb2.VehiclePosition.IN_TRANSIT_TO: "in_transit_to",
}
_FLOAT32 = struct.Struct("<f")
#: 9999-12-31T23:59:59Z: later POSIX seconds cannot be a real measurement time.
_MAX_EPOCH_S = 253_402_300_799


def parse_gtfs_rt(payload: bytes) -> Parsed:
    """Parse a GTFS-realtime ``FeedMessage``; each entity is one item.

    Raises:
        PayloadError: empty, not protobuf, or protobuf without ``header.gtfs_realtime_version``.
    """
    feed = read_feed_message(payload)
    header = feed.header
    header_ts = header.timestamp if header.HasField("timestamp") else 0
    items = ((index, entity.SerializePartialToString(), {"id": entity.id, "entity": entity, "header_ts": header_ts})
             for index, entity in enumerate(feed.entity))
    return convert_items(items, unit_from_entity, id_keys=("id",), what="entity")


def read_feed_message(payload: bytes) -> gtfs_realtime_pb2.FeedMessage:
    """Decode ``payload`` as a ``FeedMessage``.

    Raises:
        PayloadError: empty, undecodable, or missing the GTFS-realtime header (protobuf reads
            many unrelated byte strings as a valid message made of unknown fields).
    """
    if not payload:
        raise PayloadError("payload is empty", code="empty")
    feed = gtfs_realtime_pb2.FeedMessage()
    try:
        feed.ParseFromString(payload)
    except (DecodeError, ValueError, RecursionError) as err:
        raise PayloadError(f"payload is not a GTFS-realtime FeedMessage: {err}", code="bad_protobuf") from None
    if not feed.header.gtfs_realtime_version:
        raise PayloadError("payload is not a GTFS-realtime FeedMessage: it decodes as protobuf but has no "
                           "header.gtfs_realtime_version", code="bad_protobuf")
    return feed


def unit_from_entity(item: Mapping[str, Any]) -> UnitPosition | None:
    """Build a :class:`UnitPosition` from one ``FeedEntity``, or ``None`` if it carries no vehicle.

    Raises:
        SchemaError: no position, coordinates/bearing/speed out of range, no usable timestamp.
    """
    entity = item["entity"]
    if entity.is_deleted or not entity.HasField("vehicle"):
        return None
    vehicle = entity.vehicle
    if not vehicle.HasField("position"):
        raise SchemaError("VehiclePosition has no position", code="missing_field")
    pos = vehicle.position
    trip_id = vehicle.trip.trip_id if vehicle.HasField("trip") else ""
    return UnitPosition(
        unit_id=check_str(vehicle.vehicle.id or entity.id, "vehicle.id"),
        observed_at=_vehicle_time(vehicle, item["header_ts"]),
        lat=_float32(pos.latitude, "position.latitude", -90.0, 90.0),
        lon=_float32(pos.longitude, "position.longitude", -180.0, 180.0),
        bearing=_float32(pos.bearing, "position.bearing", 0.0, 360.0) if pos.HasField("bearing") else None,
        speed_mps=_float32(pos.speed, "position.speed", 0.0, 90.0) if pos.HasField("speed") else None,
        status=_STOP_STATUS.get(vehicle.current_status) if vehicle.HasField("current_status") else None,
        call_id=_optional_str(trip_id, "trip.trip_id"),
        label=_optional_str(vehicle.vehicle.label, "vehicle.label"),
        source="gtfs-rt",
    )


def _float32(value: float, name: str, lo: float, hi: float) -> float:
    """Check a protobuf ``float`` and return the shortest decimal that reads back as the same float32.

    The wire carries 32-bit floats: 43.25654 arrives as 43.25653839111328; we keep 43.25654.
    """
    number = check_number(value, name, lo=lo, hi=hi)
    assert number is not None
    for digits in range(6, 10):
        short = float(f"{number:.{digits}g}")
        if _FLOAT32.unpack(_FLOAT32.pack(short))[0] == number:
            return short
    return number


def _vehicle_time(vehicle: Any, header_ts: int) -> datetime:
    """``vehicle.timestamp``, else ``header.timestamp`` (POSIX seconds, UTC; 0 counts as unset)."""
    if vehicle.timestamp:
        return _epoch_s(vehicle.timestamp, "vehicle.timestamp")
    if header_ts:
        return _epoch_s(header_ts, "header.timestamp")
    raise SchemaError("no timestamp: neither vehicle.timestamp nor header.timestamp is set", code="missing_field")


def _epoch_s(value: int, name: str) -> datetime:
    if value > _MAX_EPOCH_S:
        raise SchemaError(f"{name} {value} is not a plausible POSIX time in seconds", code="bad_time")
    return datetime.fromtimestamp(value, UTC)


# ---------------------------------------------------------------------------------------
# San Francisco Fire Department dispatch CSV

SF_ZONE = "America/Los_Angeles"
SF_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
SF_REQUIRED = ("CallNumber", "UnitID", "CallType", "AvailableDtTm", "Priority", "UnitType", "Neighborhood",
               "Location", "Delay")
#: Unit types that are ambulances: SFFD medic units and private ambulance companies.
SF_AMBULANCE_UNITS = frozenset({"MEDIC", "PRIVATE"})
#: SF dispatch priority -> our urgency category (an approximation, see the docs).
SF_CATEGORY = {"E": 1, "3": 1, "2": 3, "1": 4}
_SF_NULL = frozenset({"", "null", "NULL", "None"})


def parse_sf_csv(payload: bytes) -> Parsed:
    """Parse the SF Fire Department dispatch CSV: one ambulance unit's response per row.

    Raises:
        PayloadError: not text, or the header lacks one of :data:`SF_REQUIRED`.
    """
    return convert_items(csv_items(payload, required=SF_REQUIRED), call_from_sf_row,
                         id_keys=("RowID", "CallNumber"), what="row")


def call_from_sf_row(row: Mapping[str, str]) -> AmbulanceCall | None:
    """Build the closed call of one unit's response, or ``None`` if the unit is not an ambulance.

    ``call_id`` is ``sf-{CallNumber}-{UnitID}``: a CallNumber is shared by every unit sent to
    the call, and each unit's row carries its own delay and release time.

    Raises:
        SchemaError: AvailableDtTm missing or unreadable, Delay not a number >= 0, Priority
            unknown, Location not ``(lat, lon)``.
    """
    if row["UnitType"].strip() not in SF_AMBULANCE_UNITS:
        return None
    call_number = check_str(row["CallNumber"], "CallNumber")
    unit_id = check_str(row["UnitID"], "UnitID")
    times = {"back_in_service": _sf_time(row["AvailableDtTm"])}
    delay = check_number(_sf_value(row["Delay"]), "Delay", lo=0.0, hi=1440.0, required=False)
    lat, lon = _sf_location(row["Location"])
    return AmbulanceCall(
        call_id=f"sf-{call_number}-{unit_id}",
        times=times,
        category=_sf_category(row["Priority"]),
        status=call_status(times),
        unit_id=unit_id,
        lat=lat,
        lon=lon,
        district=_optional_str(_sf_value(row["Neighborhood"]), "Neighborhood"),
        complaint=_optional_str(_sf_value(row["CallType"]), "CallType"),
        response_s=None if delay is None else delay * 60.0,
        source="sf-csv",
    )


def _sf_value(text: str) -> str | None:
    """The cell, or ``None`` for the extract's ``null`` and empty cells."""
    text = text.strip()
    return None if text in _SF_NULL else text


def _sf_time(text: str) -> datetime:
    value = _sf_value(text)
    if value is None:
        raise SchemaError(f"AvailableDtTm is {text.strip()!r}: the row has no time, and a call needs one",
                          code="missing_field")
    return local_time(value, SF_TIME_FORMAT, SF_ZONE, "AvailableDtTm").astimezone(UTC)


def _sf_category(text: str) -> int | None:
    value = _sf_value(text)
    if value is None:
        return None
    category = SF_CATEGORY.get(value.upper())
    if category is None:
        raise SchemaError(f"Priority {value[:20]!r} is not one of E, 3, 2, 1", code="bad_value")
    return category


def _sf_location(text: str) -> tuple[float | None, float | None]:
    """``"(37.78, -122.41)"`` -> (lat, lon); ``null`` -> (None, None)."""
    value = _sf_value(text)
    if value is None:
        return None, None
    parts = value[1:-1].split(",") if value.startswith("(") and value.endswith(")") else ()
    if len(parts) != 2:
        raise SchemaError(f"Location {value[:40]!r} is not '(lat, lon)'", code="bad_value")
    return (check_number(parts[0], "Location latitude", lo=-90.0, hi=90.0),
            check_number(parts[1], "Location longitude", lo=-180.0, hi=180.0))


# ---------------------------------------------------------------------------------------
# the adapter


class AmbulanceFeed(FeedAdapter):
    """Emergency medical calls (JSON, SF dispatch CSV) and unit positions (GTFS-realtime)."""

    name = "ambulance"
    title = "Ambulance"
    expected_cadence_s = 60.0
    formats = (
        Format("calls", parse_calls, ("application/json", "application/x-ndjson"),
               "Calls or call status updates as JSON/NDJSON, NEMSIS eTimes times"),
        Format("gtfs-rt", parse_gtfs_rt, PROTOBUF_TYPES,
               "GTFS-realtime FeedMessage; VehiclePosition entities are ambulance positions"),
        Format("sf-csv", parse_sf_csv, ("text/csv",),
               "San Francisco Fire Department dispatch CSV; MEDIC and PRIVATE units' responses"),
    )
