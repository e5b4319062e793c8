"""Typed records of the four domains, and their one stream encoding.

Every record is a frozen, slotted, keyword-only dataclass that validates itself on
construction (types, ranges, timezone-aware UTC times, WGS84 coordinates) and raises
:class:`~core.errors.SchemaError` naming the field and the problem. Checks that need
context (the city's bounds, the clock) live in :mod:`core.validate`.

Encoding: :meth:`Record.to_dict` gives a JSON-ready dict (times as ISO 8601 UTC strings
with ``Z``); :func:`record_from_dict` reads it back. This is the only stream encoding.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import orjson

from core.errors import SchemaError
from core.units import CANONICAL_UNIT, IMPLAUSIBLE_ABOVE, Pollutant

# ---------------------------------------------------------------------------------------
# field checks shared by the records and the adapters


def check_str(value: object, name: str, *, max_len: int = 128, required: bool = True) -> str:
    """Return ``value`` as a stripped string, or raise naming ``name``."""
    if type(value) is str and 0 < len(value) <= max_len and value.isprintable() and not value[0].isspace() \
            and not value[-1].isspace():
        return value  # fast path: already clean
    if value is None or value == "":
        if required:
            raise SchemaError(f"{name} is missing", code="missing_field")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SchemaError(f"{name} must be a string, got {type(value).__name__}", code="bad_type")
    text = str(value).strip()
    if required and not text:
        raise SchemaError(f"{name} is blank", code="missing_field")
    if len(text) > max_len:
        raise SchemaError(f"{name} is {len(text)} characters long; the limit is {max_len}", code="too_long")
    if not text.isprintable() and any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise SchemaError(f"{name} contains control characters", code="bad_value")
    return text


def check_number(value: object, name: str, *, lo: float | None = None, hi: float | None = None,
                 required: bool = True) -> float | None:
    """Return ``value`` as a finite float within ``[lo, hi]``, or raise naming ``name``.

    Numeric strings are accepted (CSV sources carry everything as text).
    """
    if type(value) is float:  # fast path: the common case, finite and in range
        if (lo is None or value >= lo) and (hi is None or value <= hi) and value - value == 0.0:
            return value
    if value is None or value == "":
        if required:
            raise SchemaError(f"{name} is missing", code="missing_field")
        return None
    if isinstance(value, bool):
        raise SchemaError(f"{name} must be a number, got a boolean", code="bad_type")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise SchemaError(f"{name} is too large a number", code="bad_value") from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise SchemaError(f"{name} must be a number, got {value[:40]!r}", code="bad_type") from None
    else:
        raise SchemaError(f"{name} must be a number, got {type(value).__name__}", code="bad_type")
    if not math.isfinite(number):
        raise SchemaError(f"{name} must be finite, got {number}", code="bad_value")
    if lo is not None and number < lo:
        raise SchemaError(f"{name} is {number:g}, below the minimum {lo:g}", code="out_of_range")
    if hi is not None and number > hi:
        raise SchemaError(f"{name} is {number:g}, above the maximum {hi:g}", code="out_of_range")
    return number


def check_lat_lon(lat: object, lon: object) -> tuple[float, float]:
    """Validate a WGS84 position (latitude first)."""
    la = check_number(lat, "lat", lo=-90.0, hi=90.0)
    lo = check_number(lon, "lon", lo=-180.0, hi=180.0)
    assert la is not None and lo is not None
    return la, lo


def check_time(value: object, name: str, *, required: bool = True) -> datetime | None:
    """Return ``value`` as a timezone-aware UTC datetime.

    Accepts aware datetimes, ISO 8601 strings with an offset (``Z``, ``+05:00``, ``-08:00``,
    a space instead of ``T``) and epoch seconds or milliseconds. A time without an offset is
    rejected: the adapter must know the source's zone and attach it.
    """
    if value is None or value == "":
        if required:
            raise SchemaError(f"{name} is missing", code="missing_field")
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, bool):
        raise SchemaError(f"{name} must be a time, got a boolean", code="bad_type")
    elif isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 1e14:
            raise SchemaError(f"{name} is not a plausible epoch time: {value}", code="bad_time")
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            when = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, ValueError, OSError):
            raise SchemaError(f"{name} is not a plausible epoch time: {value}", code="bad_time") from None
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise SchemaError(f"{name} is not an ISO 8601 time: {value[:40]!r}", code="bad_time") from None
    else:
        raise SchemaError(f"{name} must be a time, got {type(value).__name__}", code="bad_type")
    if when.tzinfo is None or when.utcoffset() is None:
        raise SchemaError(f"{name} {value!s:.40} has no UTC offset; times must carry their zone",
                          code="bad_time")
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        raise SchemaError(f"{name} {value!s:.40} is out of the representable range", code="bad_time") from None


def check_int(value: object, name: str, *, lo: int, hi: int, required: bool = True) -> int | None:
    """Return ``value`` as an int in ``[lo, hi]`` (integral floats and digit strings accepted)."""
    number = check_number(value, name, required=required)
    if number is None:
        return None
    if number != int(number):
        raise SchemaError(f"{name} must be a whole number, got {number:g}", code="bad_type")
    if not lo <= number <= hi:
        raise SchemaError(f"{name} is {int(number)}, outside {lo}..{hi}", code="out_of_range")
    return int(number)


def iso(when: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with ``Z`` (lossless: microseconds kept)."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    return when.replace(tzinfo=None).isoformat() + "Z"


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(when.timestamp() * 1000)


# ---------------------------------------------------------------------------------------
# base record


class Record:
    """Behaviour shared by every record dataclass below.

    Class attributes:
        feed: the feed whose stream carries it.
        kind: the entity kind; the latest state is kept per kind (``sc:latest:{feed}:kind``).
        merge: if true, successive records of one entity are merged field by field (status
            updates of a call or an appeal); if false, the newest record replaces the older.
    """

    feed: ClassVar[str]
    kind: ClassVar[str]
    merge: ClassVar[bool] = False
    #: Times that may lie in the future by design (a deadline); the clock check skips them.
    future_fields: ClassVar[frozenset[str]] = frozenset()
    #: Fields written even when empty, so a newer update can clear them on merge (a reopened
    #: appeal loses its close time).
    clearable: ClassVar[tuple[str, ...]] = ()
    observed_at: datetime

    @property
    def entity_id(self) -> str:
        """Id of the entity (station+parameter, unit, call, segment, request) it describes."""
        raise NotImplementedError

    @property
    def version_ms(self) -> int:
        """Ordering of records of one entity: the newer version wins on merge."""
        return epoch_ms(self.observed_at)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``kind`` first, ``None`` fields left out, times as ISO strings."""
        out: dict[str, Any] = {"kind": self.kind}
        for name, shape in _shapes(type(self)):
            value = getattr(self, name)
            if value is None:
                if name in self.clearable:
                    out[name] = None
                continue
            if shape is _TIME:
                value = iso(value)
            elif shape is _MAP:
                value = {k: iso(v) if isinstance(v, datetime) else v for k, v in value.items()}
            elif shape is _SEQ:
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[name] = value
        return out

    def to_json_bytes(self) -> bytes:
        """Compact UTF-8 JSON of :meth:`to_dict` (what the stream entries hold)."""
        return orjson.dumps(self.to_dict())

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict`, as text."""
        return self.to_json_bytes().decode()

    def record_id(self, encoded: bytes | None = None) -> str:
        """Identity used to reject duplicates: entity, version and a checksum of the content.

        The checksum makes a corrected value at the same time a new record, and a resent
        identical record a duplicate.
        """
        data = self.to_json_bytes() if encoded is None else encoded
        return f"{self.entity_id}@{self.version_ms}#{zlib.crc32(data):08x}"

    def all_times(self) -> Iterator[datetime]:
        """Every time the record carries that must not lie in the future (see ``future_fields``)."""
        for name, shape in _shapes(type(self)):
            value = getattr(self, name)
            if value is None or name in self.future_fields:
                continue
            if shape is _TIME:
                yield value
            elif shape is _MAP:
                yield from (v for v in value.values() if isinstance(v, datetime))

    def points(self) -> Iterator[tuple[float, float]]:
        """Every (lat, lon) the record carries (checked against the city's bounds)."""
        lat = getattr(self, "lat", None)
        lon = getattr(self, "lon", None)
        if lat is not None and lon is not None:
            yield lat, lon

    def map_times(self, fn: Callable[[datetime], datetime]) -> Record:
        """A copy with ``fn`` applied to every time (replay shifts and compresses time with it)."""
        changes: dict[str, Any] = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if isinstance(value, datetime):
                changes[name] = fn(value)
            elif name == "times" and isinstance(value, Mapping):
                changes[name] = {k: fn(v) for k, v in value.items()}
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def map_points(self, fn: Callable[[float, float], tuple[float, float]]) -> Record:
        """A copy with ``fn(lat, lon) -> (lat, lon)`` applied to every position (demo relocation)."""
        changes: dict[str, Any] = {}
        lat = getattr(self, "lat", None)
        lon = getattr(self, "lon", None)
        if lat is not None and lon is not None:
            changes["lat"], changes["lon"] = fn(lat, lon)
        geometry = getattr(self, "geometry", None)
        if geometry:
            changes["geometry"] = tuple((p[0], p[1]) for p in (fn(la, lo)[::-1] for lo, la in geometry))
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[type-var]


_FIELD_CACHE: dict[type, tuple[str, ...]] = {}
_SHAPE_CACHE: dict[type, tuple[tuple[str, object], ...]] = {}
_TIME, _MAP, _SEQ, _PLAIN = object(), object(), object(), object()


def _shapes(cls: type) -> tuple[tuple[str, object], ...]:
    """``(field, shape)`` pairs of a record class, from its annotations (computed once per class)."""
    shapes = _SHAPE_CACHE.get(cls)
    if shapes is None:
        out = []
        for f in dataclasses.fields(cls):
            text = str(f.type)
            if text.startswith("datetime"):
                shape = _TIME
            elif text.startswith("Mapping"):
                shape = _MAP
            elif text.startswith("tuple"):
                shape = _SEQ
            else:
                shape = _PLAIN
            out.append((f.name, shape))
        shapes = _SHAPE_CACHE[cls] = tuple(out)
    return shapes


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_CACHE.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELD_CACHE[cls] = names
    return names


RECORD = dict(frozen=True, kw_only=True, slots=True)


# ---------------------------------------------------------------------------------------
# air


@dataclass(**RECORD)
class AirReading(Record):
    """One concentration of one pollutant at one station, in the pollutant's canonical unit."""

    feed: ClassVar[str] = "air"
    kind: ClassVar[str] = "readings"

    station_id: str
    parameter: Pollutant
    value: float
    unit: str
    observed_at: datetime
    lat: float
    lon: float
    averaging_s: int = 3600
    station_name: str | None = None
    raw_value: float | None = None
    raw_unit: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.station_id, "station_id")
        if not isinstance(self.parameter, Pollutant):
            raise SchemaError(f"parameter must be a Pollutant, got {self.parameter!r}", code="bad_type")
        if self.unit != CANONICAL_UNIT[self.parameter]:
            raise SchemaError(f"{self.parameter.value} must be stored in {CANONICAL_UNIT[self.parameter]}, "
                              f"not {self.unit}", code="bad_unit")
        check_number(self.value, "value", lo=0.0, hi=IMPLAUSIBLE_ABOVE[self.parameter])
        check_int(self.averaging_s, "averaging_s", lo=1, hi=86_400 * 366)
        check_lat_lon(self.lat, self.lon)
        _check_aware(self.observed_at, "observed_at")

    @property
    def entity_id(self) -> str:  # noqa: D102
        return f"{self.station_id}:{self.parameter.value}"


# ---------------------------------------------------------------------------------------
# appeals


class AppealStatus(StrEnum):
    """Open311 GeoReport v2 status: only ``open`` and ``closed`` are standard."""

    OPEN = "open"
    CLOSED = "closed"


class Channel(StrEnum):
    """How the appeal reached the city."""

    PHONE = "phone"
    WEB = "web"
    MOBILE_APP = "mobile_app"
    SOCIAL = "social"
    MESSENGER = "messenger"
    WALK_IN = "walk_in"
    EMAIL = "email"
    OTHER = "other"


@dataclass(**RECORD)
class Appeal(Record):
    """A citizen's service request (Open311 GeoReport v2 fields plus our extensions).

    ``state`` keeps a richer internal state (``assigned``, ``in_progress``, ``pending``)
    when the source has one; ``status`` is its Open311 open/closed projection.
    """

    feed: ClassVar[str] = "appeals"
    kind: ClassVar[str] = "requests"
    merge: ClassVar[bool] = True
    future_fields: ClassVar[frozenset[str]] = frozenset({"expected_at"})
    clearable: ClassVar[tuple[str, ...]] = ("closed_at",)

    request_id: str
    status: AppealStatus
    requested_at: datetime
    updated_at: datetime
    service_code: str | None = None
    service_name: str | None = None
    category: str | None = None
    description: str | None = None
    state: str | None = None
    district: str | None = None
    channel: Channel | None = None
    agency: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    expected_at: datetime | None = None
    closed_at: datetime | None = None
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.request_id, "service_request_id")
        if not isinstance(self.status, AppealStatus):
            raise SchemaError(f"status must be open or closed, got {self.status!r}", code="bad_value")
        if self.channel is not None and not isinstance(self.channel, Channel):
            raise SchemaError(f"channel {self.channel!r} is not a Channel", code="bad_value")
        check_str(self.description, "description", max_len=4000, required=False)
        if (self.lat is None) != (self.lon is None):
            raise SchemaError("lat and long must be given together", code="missing_field")
        if self.lat is not None:
            check_lat_lon(self.lat, self.lon)
        for name in ("requested_at", "updated_at", "expected_at", "closed_at"):
            value = getattr(self, name)
            if value is not None:
                _check_aware(value, name)
        if self.updated_at < self.requested_at:
            raise SchemaError(f"updated_datetime {iso(self.updated_at)} is before requested_datetime "
                              f"{iso(self.requested_at)}", code="bad_time")
        if self.closed_at is not None and self.closed_at < self.requested_at:
            raise SchemaError(f"closed time {iso(self.closed_at)} is before requested_datetime "
                              f"{iso(self.requested_at)}", code="bad_time")

    @property
    def observed_at(self) -> datetime:  # type: ignore[override]
        """An appeal is observed when it was last updated."""
        return self.updated_at

    @property
    def entity_id(self) -> str:  # noqa: D102
        return self.request_id


# ---------------------------------------------------------------------------------------
# traffic


@dataclass(**RECORD)
class TrafficScore(Record):
    """A city-wide congestion score, 0 (free) to 10 (gridlock), Yandex/2GIS style."""

    feed: ClassVar[str] = "traffic"
    kind: ClassVar[str] = "scores"

    provider: str
    score: float
    observed_at: datetime
    area_id: str = "city"
    trend: int | None = None
    jam_km: float | None = None
    road_events: Mapping[str, int] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.provider, "provider", max_len=32)
        check_str(self.area_id, "area_id")
        check_number(self.score, "score", lo=0.0, hi=10.0)
        check_number(self.jam_km, "jam_km", lo=0.0, hi=100_000.0, required=False)
        if self.trend is not None:
            check_int(self.trend, "trend", lo=-10, hi=10)
        for key, count in (self.road_events or {}).items():
            check_int(count, f"road_events.{key}", lo=0, hi=1_000_000)
        _check_aware(self.observed_at, "observed_at")

    @property
    def entity_id(self) -> str:  # noqa: D102
        return f"{self.provider}:{self.area_id}"


@dataclass(**RECORD)
class TrafficFlow(Record):
    """Observed traffic on one road segment (FIWARE ``TrafficFlowObserved``)."""

    feed: ClassVar[str] = "traffic"
    kind: ClassVar[str] = "segments"

    segment_id: str
    observed_at: datetime
    lat: float
    lon: float
    speed_kmh: float | None = None
    free_flow_kmh: float | None = None
    intensity: float | None = None
    occupancy: float | None = None
    congested: bool | None = None
    observed_from: datetime | None = None
    lane_id: int | None = None
    name: str | None = None
    geometry: tuple[tuple[float, float], ...] | None = None
    """The segment as (lon, lat) pairs, GeoJSON order."""
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.segment_id, "id", max_len=256)
        check_lat_lon(self.lat, self.lon)
        check_number(self.speed_kmh, "averageVehicleSpeed", lo=0.0, hi=300.0, required=False)
        check_number(self.free_flow_kmh, "freeFlowSpeed", lo=0.1, hi=300.0, required=False)
        check_number(self.intensity, "intensity", lo=0.0, hi=1_000_000.0, required=False)
        check_number(self.occupancy, "occupancy", lo=0.0, hi=1.0, required=False)
        if self.congested is not None and not isinstance(self.congested, bool):
            raise SchemaError(f"congested must be true or false, got {self.congested!r}", code="bad_type")
        if self.speed_kmh is None and self.intensity is None and self.occupancy is None and self.congested is None:
            raise SchemaError("no measurement: none of averageVehicleSpeed, intensity, occupancy, congested",
                              code="missing_field")
        _check_aware(self.observed_at, "observed_at")
        if self.observed_from is not None:
            _check_aware(self.observed_from, "observed_from")
            if self.observed_from > self.observed_at:
                raise SchemaError("dateObservedFrom is after dateObservedTo", code="bad_time")
        for lon, lat in self.geometry or ():
            check_lat_lon(lat, lon)

    def points(self) -> Iterator[tuple[float, float]]:  # noqa: D102
        yield self.lat, self.lon
        for lon, lat in self.geometry or ():
            yield lat, lon

    @property
    def entity_id(self) -> str:  # noqa: D102
        return self.segment_id


# ---------------------------------------------------------------------------------------
# ambulance

#: NEMSIS v3 eTimes elements we carry, in the order a call goes through them.
NEMSIS_TIMES: tuple[tuple[str, str], ...] = (
    ("call_received", "eTimes.01"),
    ("unit_notified", "eTimes.03"),
    ("en_route", "eTimes.05"),
    ("on_scene", "eTimes.06"),
    ("left_scene", "eTimes.09"),
    ("at_destination", "eTimes.11"),
    ("transfer_of_care", "eTimes.12"),
    ("back_in_service", "eTimes.13"),
)
TIME_ORDER = {name: i for i, (name, _) in enumerate(NEMSIS_TIMES)}
CANCELLED = "cancelled"  # eTimes.14, may come at any point after the call was received

#: Call status implied by the furthest time present.
STATUS_BY_TIME = {
    "call_received": "waiting",
    "unit_notified": "dispatched",
    "en_route": "en_route",
    "on_scene": "on_scene",
    "left_scene": "transporting",
    "at_destination": "at_hospital",
    "transfer_of_care": "handover",
    "back_in_service": "closed",
}

#: Kazakhstan arrival norms per urgency category, minutes (ҚР ДСМ-225/2020). The KPI code
#: reads the norms from the city pack; this is only the range check.
CATEGORIES = (1, 2, 3, 4)


@dataclass(**RECORD)
class AmbulanceCall(Record):
    """An emergency medical call, whole or as a status update carrying some of its times.

    Updates of one ``call_id`` merge in any arrival order: the union of their times is the
    call's timeline, and for other fields the update with the newest time wins.
    """

    feed: ClassVar[str] = "ambulance"
    kind: ClassVar[str] = "calls"
    merge: ClassVar[bool] = True

    call_id: str
    times: Mapping[str, datetime]
    category: int | None = None
    status: str | None = None
    unit_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    district: str | None = None
    complaint: str | None = None
    destination: str | None = None
    response_s: float | None = None
    """Response interval as reported by the source, when it reports one (SF ``Delay``)."""
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.call_id, "call_id")
        if self.category is not None:
            check_int(self.category, "category", lo=1, hi=4)
        if not self.times:
            raise SchemaError("a call needs at least one time (call_received, unit_notified, ...)",
                              code="missing_field")
        for name, when in self.times.items():
            if name not in TIME_ORDER and name != CANCELLED:
                raise SchemaError(f"unknown time {name!r}; expected one of {[n for n, _ in NEMSIS_TIMES]} "
                                  f"or {CANCELLED!r}", code="bad_value")
            _check_aware(when, f"times.{name}")
        ordered = sorted((TIME_ORDER[n], n, t) for n, t in self.times.items() if n in TIME_ORDER)
        for (_, a, ta), (_, b, tb) in zip(ordered, ordered[1:], strict=False):
            if tb < ta:
                raise SchemaError(f"{b} ({iso(tb)}) is before {a} ({iso(ta)})", code="bad_time")
        if (self.lat is None) != (self.lon is None):
            raise SchemaError("lat and lon must be given together", code="missing_field")
        if self.lat is not None:
            check_lat_lon(self.lat, self.lon)
        check_number(self.response_s, "response_s", lo=0.0, hi=86_400.0, required=False)

    @property
    def observed_at(self) -> datetime:  # type: ignore[override]
        """The newest time of the update."""
        return max(self.times.values())

    @property
    def entity_id(self) -> str:  # noqa: D102
        return self.call_id


def call_status(times: Mapping[str, Any]) -> str:
    """Status implied by the furthest NEMSIS time present (``cancelled`` wins)."""
    if CANCELLED in times:
        return "cancelled"
    furthest = max((TIME_ORDER[n] for n in times if n in TIME_ORDER), default=None)
    return "unknown" if furthest is None else STATUS_BY_TIME[NEMSIS_TIMES[furthest][0]]


@dataclass(**RECORD)
class UnitPosition(Record):
    """Where an ambulance unit is (GTFS-realtime ``VehiclePosition``, vehicle id = unit id)."""

    feed: ClassVar[str] = "ambulance"
    kind: ClassVar[str] = "units"

    unit_id: str
    observed_at: datetime
    lat: float
    lon: float
    bearing: float | None = None
    speed_mps: float | None = None
    status: str | None = None
    call_id: str | None = None
    label: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        check_str(self.unit_id, "vehicle.id")
        check_lat_lon(self.lat, self.lon)
        check_number(self.bearing, "bearing", lo=0.0, hi=360.0, required=False)
        check_number(self.speed_mps, "speed", lo=0.0, hi=90.0, required=False)
        _check_aware(self.observed_at, "timestamp")

    @property
    def entity_id(self) -> str:  # noqa: D102
        return self.unit_id


# ---------------------------------------------------------------------------------------
# registry of record types and decoding

RECORD_TYPES: tuple[type[Record], ...] = (AirReading, Appeal, TrafficScore, TrafficFlow, AmbulanceCall, UnitPosition)
_BY_KIND: dict[tuple[str, str], type[Record]] = {(t.feed, t.kind): t for t in RECORD_TYPES}

_TIME_FIELDS = {"observed_at", "requested_at", "updated_at", "expected_at", "closed_at", "observed_from"}


def record_type(feed: str, kind: str) -> type[Record]:
    """The record class of ``kind`` in ``feed``."""
    try:
        return _BY_KIND[(feed, kind)]
    except KeyError:
        raise SchemaError(f"no record kind {kind!r} in feed {feed!r}", code="bad_value") from None


def record_from_dict(feed: str, data: Mapping[str, Any]) -> Record:
    """Rebuild a record from :meth:`Record.to_dict` output (what the streams hold)."""
    cls = record_type(feed, str(data.get("kind")))
    names = set(_field_names(cls))
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            continue
        if value is None:  # a cleared field (``clearable``) travels as an explicit null
            kwargs[key] = None
            continue
        if key in _TIME_FIELDS:
            value = check_time(value, key)
        elif key == "times":
            value = {k: check_time(v, f"times.{k}") for k, v in value.items()}
        elif key == "parameter":
            value = Pollutant(value)
        elif key == "channel":
            value = Channel(value)
        elif key == "status" and cls is Appeal:
            value = AppealStatus(value)
        elif key == "geometry":
            value = tuple(tuple(p) for p in value)
        kwargs[key] = value
    return cls(**kwargs)


def _check_aware(when: object, name: str) -> None:
    if not isinstance(when, datetime):
        raise SchemaError(f"{name} must be a datetime, got {type(when).__name__}", code="bad_type")
    if when.tzinfo is None:
        raise SchemaError(f"{name} must be timezone-aware", code="bad_time")


__all__ = [
    "AirReading", "Appeal", "AppealStatus", "AmbulanceCall", "Channel", "NEMSIS_TIMES", "Record",
    "RECORD_TYPES", "TrafficFlow", "TrafficScore", "UnitPosition", "call_status", "check_int",
    "check_lat_lon", "check_number", "check_str", "check_time", "epoch_ms", "iso",
    "record_from_dict", "record_type",
]
