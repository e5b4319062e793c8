"""Air-quality feed: one concentration of one pollutant at one station per record.

Every record is an :class:`~core.schemas.AirReading` whose ``value`` is in the canonical
unit of its pollutant (``core.units.CANONICAL_UNIT``: µg/m³ for PM, ppm for O3 and CO, ppb
for SO2 and NO2); the value and unit as received are kept in ``raw_value``/``raw_unit``.

Formats (the first is the default; ``docs/feeds/air.md`` is the integrator's guide):

``flat``
    Our own lean JSON: an object, an array or NDJSON of ``{station_id, lat, lon, parameter,
    value, unit, observed_at, station_name?, averaging_s?, source?}``. The hot path.
``openaq``
    OpenAQ API v3 responses. A ``/latest`` result names no parameter and a
    ``/measurements`` result names no station, so a poller sends a bundle:
    ``{"location": ..., "latest": ...}`` or ``{"sensor": ..., "location"?: ...,
    "measurements": ...}``. A bare ``{"meta", "results"}`` response is read when its
    results carry parameter, coordinates and a location or sensor id themselves.
``kgmt-csv``
    The hourly Kazhydromet CSV layout published by AirData.kz (``raw_value`` in mg/m³),
    plain or gzip-compressed.

Parameters that are real air parameters but not one of our pollutants (PM1, NO, NOx,
temperature ...) are ignored, not rejected.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from core.errors import PayloadError, SchemaError
from core.schemas import AirReading, check_int, check_number, check_str, check_time
from core.units import CANONICAL_UNIT, Pollutant, pollutant, to_canonical, unit
from feeds.base import (
    BadJson,
    FeedAdapter,
    Format,
    Parsed,
    Raw,
    convert_items,
    csv_items,
    json_items,
    require_mapping,
)

#: Averaging period assumed when the source does not state one (hourly means).
DEFAULT_AVERAGING_S = 3600

#: Largest decompressed size of a gzip payload; a bigger one is refused (decompression bomb).
MAX_DECOMPRESSED = 256 * 1024 * 1024

GZIP_MAGIC = b"\x1f\x8b"

#: Air parameters that sources send but that are not one of our pollutants: items naming
#: them are ignored (counted), not rejected. OpenAQ parameter names plus common spellings.
OTHER_PARAMETERS = frozenset({
    "pm1", "pm1.0", "pm4", "pm100", "tsp", "bc", "ufp", "um003", "um005", "um010", "um025", "um050", "um100",
    "pm003", "no", "nox", "no_x", "co2", "ch4", "nh3", "h2s", "o3_8h", "voc", "hcho", "benzene",
    "temperature", "relativehumidity", "humidity", "pressure", "wind_speed", "wind_direction",
})

KGMT_COLUMNS = ("parameter", "datetime_utc", "station_id", "lat", "lon", "raw_value", "raw_unit")

_UNITS_HINT = "µg/m³, mg/m³, ppm, ppb"


# ---------------------------------------------------------------------------------------
# field helpers shared by the formats


def _parameter(name: object) -> Pollutant | None:
    """The pollutant ``name`` spells, ``None`` for a known non-pollutant parameter.

    Raises:
        SchemaError: missing, not a string, or an unknown parameter.
    """
    if name is None or name == "":
        raise SchemaError("parameter is missing", code="missing_field")
    if not isinstance(name, str):
        raise SchemaError(f"parameter must be a string, got {type(name).__name__}", code="bad_type")
    try:
        return pollutant(name)
    except SchemaError:
        if name.strip().lower() in OTHER_PARAMETERS:
            return None
        raise


def _unit(value: object, name: str) -> str:
    """Normalised unit key of ``value``; the error names the field ``name``."""
    if value is None or value == "":
        raise SchemaError(f"{name} is missing", code="missing_field")
    try:
        return unit(value)
    except SchemaError:
        raise SchemaError(f"{name} {str(value)[:40]!r} is not one of {_UNITS_HINT}", code="bad_unit") from None


def _concentration(value: object, name: str) -> float:
    """A non-negative concentration as float (NaN and inf are rejected by the record)."""
    number = value if type(value) is float else check_number(value, name)
    if number < 0:  # type: ignore[operator]
        raise SchemaError(f"{name} is {number:g}: a concentration cannot be negative", code="out_of_range")
    return number  # type: ignore[return-value]


def _float(value: object, name: str) -> float:
    """``value`` as float; the record checks the range (lat/lon)."""
    number = value if type(value) is float else check_number(value, name)
    assert number is not None
    return number


def _station_id(value: object, name: str = "station_id") -> str:
    """A station id as a stripped string (ints accepted)."""
    if type(value) is str and value and value == value.strip():
        return value
    return check_str(value, name)


def _optional_str(value: object, name: str) -> str | None:
    """An optional text field; blank becomes ``None``."""
    if value is None:
        return None
    if type(value) is str and value.isprintable() and len(value) <= 256:
        return value.strip() or None
    return check_str(value, name, max_len=256, required=False) or None


def _averaging(value: object) -> int:
    """``averaging_s``: default one hour; whole seconds from 1 s to a year."""
    if value is None:
        return DEFAULT_AVERAGING_S
    if type(value) is int:
        return value
    number = check_int(value, "averaging_s", lo=1, hi=86_400 * 366)
    assert number is not None
    return number


def _reading(*, station_id: str, param: Pollutant, raw: float, unit_key: str, raw_unit: str,
             observed_at: datetime, lat: float, lon: float, averaging_s: int = DEFAULT_AVERAGING_S,
             station_name: str | None = None, source: str = "") -> AirReading:
    """Build the record, converting ``raw`` in ``unit_key`` to the canonical unit."""
    return AirReading(station_id=station_id, parameter=param, value=to_canonical(param, float(raw), unit_key),
                      unit=CANONICAL_UNIT[param], observed_at=observed_at, lat=lat, lon=lon,
                      averaging_s=averaging_s, station_name=station_name, raw_value=float(raw),
                      raw_unit=raw_unit, source=source)


# ---------------------------------------------------------------------------------------
# flat


def _flat_reading(item: Any) -> AirReading | None:
    """One flat JSON object -> a reading (``None`` for a parameter we do not index).

    The throughput hot path: plain lookups, fast paths for the common JSON types; the record
    itself checks ranges (lat/lon, value within plausible limits, averaging_s).
    """
    if type(item) is not dict:
        item = require_mapping(item)
    param = _parameter(item.get("parameter"))
    if param is None:
        return None
    raw = _concentration(item.get("value"), "value")
    raw_unit = item.get("unit")
    lat = item.get("lat")
    lon = item.get("lon")
    averaging_s = item.get("averaging_s", DEFAULT_AVERAGING_S)
    return AirReading(
        station_id=_station_id(item.get("station_id")), parameter=param,
        value=to_canonical(param, raw, _unit(raw_unit, "unit")), unit=CANONICAL_UNIT[param],
        observed_at=check_time(item.get("observed_at"), "observed_at"),  # type: ignore[arg-type]
        lat=lat if type(lat) is float else _float(lat, "lat"),
        lon=lon if type(lon) is float else _float(lon, "lon"),
        averaging_s=averaging_s if type(averaging_s) is int else _averaging(averaging_s),
        station_name=_optional_str(item.get("station_name"), "station_name"),
        raw_value=raw, raw_unit=raw_unit, source=_optional_str(item.get("source"), "source") or "",
    )


def parse_flat(payload: bytes) -> Parsed:
    """Parse flat JSON / NDJSON readings.

    Raises:
        PayloadError: the payload is not JSON or NDJSON at all.
    """
    return convert_items(json_items(payload), _flat_reading, id_keys=("station_id",))


# ---------------------------------------------------------------------------------------
# kgmt-csv


def gunzip(payload: bytes, limit: int) -> bytes:
    """Decompress a (possibly multi-member) gzip payload, refusing more than ``limit`` bytes out.

    Raises:
        PayloadError: corrupt or truncated gzip, or the output would exceed ``limit``.
    """
    parts: list[bytes] = []
    size = 0
    data = payload
    while data[:2] == GZIP_MAGIC:
        member = zlib.decompressobj(wbits=31)
        try:
            chunk = member.decompress(data, limit - size + 1)
        except zlib.error as err:
            raise PayloadError(f"gzip payload is corrupt: {err}", code="bad_gzip") from None
        size += len(chunk)
        if size > limit:
            raise PayloadError(f"gzip payload expands to more than {limit} bytes; refused as a possible "
                               f"decompression bomb (split it)", code="too_large")
        if not member.eof:
            raise PayloadError("gzip payload is truncated", code="bad_gzip")
        parts.append(chunk)
        data = member.unused_data
    if data.strip(b"\x00"):
        raise PayloadError(f"{len(data)} bytes of garbage after the gzip stream", code="bad_gzip")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _kgmt_raw(row: Mapping[str, str]) -> tuple[float, str]:
    """``(raw_value, raw_unit)`` of a row; a blank raw_value falls back to ``value_ugm3``."""
    if row["raw_value"].strip():
        return _concentration(row["raw_value"], "raw_value"), row["raw_unit"]
    fallback = row.get("value_ugm3") or ""
    if not fallback.strip():
        raise SchemaError("raw_value is missing (and value_ugm3 is empty)", code="missing_field")
    return _concentration(fallback, "value_ugm3"), "ug/m3"


def _kgmt_reading(row: Mapping[str, str]) -> AirReading | None:
    """One CSV row -> a reading (``None`` for a parameter we do not index)."""
    param = _parameter(row["parameter"])
    if param is None:
        return None
    raw, raw_unit = _kgmt_raw(row)
    return _reading(
        station_id=check_str(row["station_id"], "station_id"), param=param, raw=raw,
        unit_key=_unit(raw_unit, "raw_unit"), raw_unit=raw_unit,
        observed_at=check_time(row["datetime_utc"], "datetime_utc"),  # type: ignore[arg-type]
        lat=_float(row["lat"], "lat"), lon=_float(row["lon"], "lon"),
        station_name=_optional_str(row.get("station_name"), "station_name"),
        source=(row.get("source") or "").strip() or "kgmt",
    )


def parse_kgmt_csv(payload: bytes) -> Parsed:
    """Parse the AirData.kz / Kazhydromet hourly CSV, plain or gzip-compressed.

    ``datetime_utc`` is read with the offset it carries (``-08:00`` as published).

    Raises:
        PayloadError: not gzip/CSV text, a bomb, or a header without the required columns.
    """
    if payload[:2] == GZIP_MAGIC:
        payload = gunzip(payload, MAX_DECOMPRESSED)
    items = csv_items(payload, required=KGMT_COLUMNS)
    return convert_items(items, _kgmt_reading, id_keys=("station_id",), what="row")


# ---------------------------------------------------------------------------------------
# openaq

_LATEST_FORM = ('{"location": <GET /v3/locations/{id} result>, "latest": <GET /v3/locations/{id}/latest '
                'response>}')
_MEASUREMENTS_FORM = ('{"sensor": <GET /v3/sensors/{id} result>, "location": <GET /v3/locations/{id} result>, '
                      '"measurements": <GET /v3/sensors/{id}/measurements or /hours response>}')


@dataclass(frozen=True, slots=True)
class _Station:
    """What a bundle tells about where its results were measured."""

    station_id: str
    name: str | None
    position: tuple[float, float] | None
    location_id: int | None = None
    sensors: Mapping[int, Any] | None = None
    """Sensor id -> its ``parameter`` object (``/latest`` bundles)."""
    parameter: Any = None
    """The sensor's ``parameter`` object (``/measurements`` bundles)."""


class _Bundle:
    """A bundle's context, resolved once on first use (the error, if any, is kept)."""

    __slots__ = ("kind", "body", "_station", "_error")

    def __init__(self, kind: str, body: Mapping[str, Any]) -> None:
        self.kind = kind
        self.body = body
        self._station: _Station | None = None
        self._error: tuple[str, str] | None = None

    def station(self) -> _Station:
        """The resolved station; raises the bundle's error for every result of a bad bundle."""
        if self._error is None and self._station is None:
            try:
                resolve = _latest_station if self.kind == "latest" else _measurements_station
                self._station = resolve(self.body)
            except SchemaError as err:
                self._error = (f"bundle: {err}", err.code)
        if self._error is not None:
            raise SchemaError(self._error[0], code=self._error[1])
        assert self._station is not None
        return self._station


class _Item(Mapping[str, Any]):
    """One OpenAQ result and the bundle it came in (``None`` for a bare result).

    A read-only view of the result so that error labels can quote its ``sensorsId``.
    """

    __slots__ = ("result", "bundle")

    def __init__(self, result: Any, bundle: _Bundle | None) -> None:
        self.result = result
        self.bundle = bundle

    def __getitem__(self, key: str) -> Any:
        if isinstance(self.result, dict):
            return self.result[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.result) if isinstance(self.result, dict) else iter(())

    def __len__(self) -> int:
        return len(self.result) if isinstance(self.result, dict) else 0


def _results(container: Any) -> list[Any] | None:
    """The results list of a response object, or the list itself; ``None`` if neither."""
    if isinstance(container, list):
        return container
    if isinstance(container, dict) and isinstance(container.get("results"), list):
        return container["results"]
    return None


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _expand(value: Any) -> tuple[_Bundle | None, list[Any] | None, str]:
    """Classify one top-level JSON value: ``(bundle, results, key)``.

    ``results`` is ``None`` when the value is a single item (a bare result, or a bundle
    whose results container is malformed: then ``key`` names the container).
    """
    if isinstance(value, dict):
        for key in ("latest", "measurements"):
            if key in value:
                return _Bundle(key, value), _results(value[key]), key
        if isinstance(value.get("results"), list):
            return None, value["results"], ""
    return None, None, ""


def _openaq_items(payload: bytes) -> Iterator[tuple[int, Raw, Any]]:
    """Split OpenAQ payloads into results, each paired with its bundle.

    Item count: a bundle or a bare response counts its results; anything else is one item.
    """
    index = 0
    for _, raw, value in json_items(payload):
        bundle, results, key = _expand(value)
        if results is None:
            if key:
                value = BadJson(f"bundle's {key!r} must be the OpenAQ response object or its results array, "
                                f"got {type(value[key]).__name__}", "bad_type")
            yield index, raw, value if isinstance(value, BadJson) else _Item(value, bundle)
            index += 1
            continue
        for result in results:
            yield index, partial(_dump, result), _Item(result, bundle)  # serialised only if rejected
            index += 1


def _single(value: Any, name: str) -> Mapping[str, Any]:
    """An OpenAQ object given as itself or as a one-result response."""
    if value is None:
        raise SchemaError(f"{name} is missing", code="missing_field")
    results = _results(value)
    if results is not None:
        if len(results) != 1:
            raise SchemaError(f"{name} response must hold exactly one result, it holds {len(results)}",
                              code="bad_value")
        value = results[0]
    return require_mapping(value, name)


def _object_id(obj: Mapping[str, Any], name: str) -> int:
    number = check_int(obj.get("id"), f"{name}.id", lo=0, hi=2**63 - 1)
    assert number is not None
    return number


def _position(coords: Any, name: str) -> tuple[float, float] | None:
    """``(lat, lon)`` of an OpenAQ ``coordinates`` object; ``None`` when null/empty."""
    if coords is None:
        return None
    coords = require_mapping(coords, name)
    lat, lon = coords.get("latitude"), coords.get("longitude")
    if lat is None and lon is None:
        return None
    la = check_number(lat, f"{name}.latitude", lo=-90.0, hi=90.0)
    lo = check_number(lon, f"{name}.longitude", lo=-180.0, hi=180.0)
    assert la is not None and lo is not None
    return la, lo


def _sensor_parameters(sensors: Any) -> dict[int, Any]:
    """Sensor id -> ``parameter`` object of a location's ``sensors`` array."""
    if not isinstance(sensors, list):
        raise SchemaError("location.sensors must be an array of sensors", code="bad_type")
    out: dict[int, Any] = {}
    for i, sensor in enumerate(sensors):
        sensor = require_mapping(sensor, f"location.sensors[{i}]")
        out[_object_id(sensor, f"location.sensors[{i}]")] = sensor.get("parameter")
    return out


def _location_station(location: Mapping[str, Any], **extra: Any) -> _Station:
    loc_id = _object_id(location, "location")
    return _Station(station_id=f"openaq-{loc_id}", name=_optional_str(location.get("name"), "location.name"),
                    position=_position(location.get("coordinates"), "location.coordinates"),
                    location_id=loc_id, **extra)


def _latest_station(bundle: Mapping[str, Any]) -> _Station:
    """Context of a ``{"location", "latest"}`` bundle."""
    location = _single(bundle.get("location"), "location")
    return _location_station(location, sensors=_sensor_parameters(location.get("sensors")))


def _measurements_station(bundle: Mapping[str, Any]) -> _Station:
    """Context of a ``{"sensor", "location"?, "measurements"}`` bundle."""
    sensor = _single(bundle.get("sensor"), "sensor")
    sensor_id = _object_id(sensor, "sensor")
    if bundle.get("location") is None:
        latest = sensor.get("latest")
        position = _position(latest.get("coordinates"), "sensor.latest.coordinates") \
            if isinstance(latest, dict) else None
        return _Station(station_id=f"openaq-sensor-{sensor_id}", name=None, position=position,
                        parameter=sensor.get("parameter"))
    location = _single(bundle.get("location"), "location")
    if isinstance(location.get("sensors"), list) and sensor_id not in _sensor_parameters(location["sensors"]):
        raise SchemaError(f"sensor {sensor_id} is not one of the sensors of location {location.get('id')}",
                          code="bad_value")
    return _location_station(location, parameter=sensor.get("parameter"))


def _openaq_parameter(obj: Any, name: str) -> tuple[Pollutant, str, str] | None:
    """``(pollutant, unit key, units as sent)`` of a ``parameter`` object; ``None`` if not ours."""
    obj = require_mapping(obj, name)
    label = obj.get("name")
    if not isinstance(label, str) or not label.strip():
        raise SchemaError(f"{name}.name is missing", code="missing_field")
    try:
        param = pollutant(label)
    except SchemaError:
        return None  # OpenAQ's vocabulary: a real parameter (temperature, pm1, no ...) we do not index
    units = obj.get("units")
    return param, _unit(units, f"{name}.units"), units


def _when(obj: Any, name: str) -> datetime:
    """An OpenAQ ``{utc, local}`` datetime object (``utc`` preferred)."""
    if isinstance(obj, dict):
        utc, local = obj.get("utc"), obj.get("local")
        if utc is None and local is not None:
            when = check_time(local, f"{name}.local")
        else:
            when = check_time(utc, f"{name}.utc")
    else:
        when = check_time(obj, name)
    assert when is not None
    return when


def _interval_s(text: Any) -> int:
    """Seconds of a period ``interval`` such as ``"01:00:00"`` or ``"24:00:00"``."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise SchemaError(f"period.interval {str(text)[:40]!r} is not HH:MM:SS and period.datetimeFrom is "
                          f"missing", code="bad_value")
    return int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2])


def _period(period: Any) -> tuple[datetime, int]:
    """``(observed_at, averaging_s)`` of a ``period``: the end of the period and its length."""
    period = require_mapping(period, "period")
    end = _when(period.get("datetimeTo"), "period.datetimeTo")
    if period.get("datetimeFrom") is None:
        return end, _interval_s(period.get("interval"))
    seconds = (end - _when(period["datetimeFrom"], "period.datetimeFrom")).total_seconds()
    if seconds <= 0:
        raise SchemaError("period.datetimeTo is not after period.datetimeFrom", code="bad_time")
    return end, round(seconds)


def _openaq_reading(item: _Item) -> AirReading | None:
    """One OpenAQ result (bare or from a bundle) -> a reading, ``None`` if not our pollutant."""
    result = require_mapping(item.result, "result")
    if item.bundle is None:
        return _bare_reading(result)
    station = item.bundle.station()
    if item.bundle.kind == "latest":
        return _latest_reading(result, station)
    return _measurement_reading(result, station)


def _build(result: Mapping[str, Any], station: _Station, resolved: tuple[Pollutant, str, str],
           when: datetime, averaging_s: int) -> AirReading:
    """The reading of ``result``; its own coordinates win over the station's (mobile sensors)."""
    position = _position(result.get("coordinates"), "coordinates") or station.position
    if position is None:
        raise SchemaError("no position: coordinates is null and the bundle gives no location coordinates",
                          code="missing_field")
    param, unit_key, raw_unit = resolved
    return _reading(station_id=station.station_id, param=param, raw=_concentration(result.get("value"), "value"),
                    unit_key=unit_key, raw_unit=raw_unit, observed_at=when, lat=position[0], lon=position[1],
                    averaging_s=averaging_s, station_name=station.name, source="openaq")


def _latest_reading(result: Mapping[str, Any], station: _Station) -> AirReading | None:
    """A ``/latest`` result: parameter and units through ``sensorsId`` in the location's sensors."""
    sensor_id = check_int(result.get("sensorsId"), "sensorsId", lo=0, hi=2**63 - 1)
    loc_id = check_int(result.get("locationsId"), "locationsId", lo=0, hi=2**63 - 1, required=False)
    if loc_id is not None and loc_id != station.location_id:
        raise SchemaError(f"locationsId {loc_id} is not the bundle's location {station.location_id}",
                          code="bad_value")
    assert station.sensors is not None and sensor_id is not None
    if sensor_id not in station.sensors:
        raise SchemaError(f"sensorsId {sensor_id} is not one of the sensors of location {station.location_id} "
                          f"({', '.join(map(str, list(station.sensors)[:12]))})", code="bad_value")
    resolved = _openaq_parameter(station.sensors[sensor_id], f"sensor {sensor_id} parameter")
    if resolved is None:
        return None
    return _build(result, station, resolved, _when(result.get("datetime"), "datetime"), DEFAULT_AVERAGING_S)


def _measurement_reading(result: Mapping[str, Any], station: _Station) -> AirReading | None:
    """A ``/measurements`` or ``/hours`` result: observed at the end of its period."""
    own = result.get("parameter")
    if own is not None and station.parameter is not None:
        _same_parameter(own, station.parameter)
    resolved = _openaq_parameter(own if own is not None else station.parameter, "parameter")
    if resolved is None:
        return None
    when, averaging_s = _period(result.get("period"))
    return _build(result, station, resolved, when, averaging_s)


def _same_parameter(own: Any, sensors: Any) -> None:
    a = own.get("name") if isinstance(own, dict) else None
    b = sensors.get("name") if isinstance(sensors, dict) else None
    if a is not None and b is not None and a != b:
        raise SchemaError(f"parameter {str(a)[:20]!r} differs from the sensor's parameter {str(b)[:20]!r}",
                          code="bad_value")


def _bare_missing(result: Mapping[str, Any]) -> list[str]:
    missing = [] if isinstance(result.get("parameter"), dict) else ["parameter"]
    if _position(result.get("coordinates"), "coordinates") is None:
        missing.append("coordinates")
    if result.get("locationsId") is None and result.get("sensorsId") is None:
        missing.append("locationsId/sensorsId")
    return missing


def _bare_station(result: Mapping[str, Any]) -> _Station:
    """Station of a bare result: its ``locationsId``, else its ``sensorsId``."""
    key, prefix = ("locationsId", "openaq-") if result.get("locationsId") is not None else ("sensorsId",
                                                                                            "openaq-sensor-")
    number = check_int(result.get(key), key, lo=0, hi=2**63 - 1)
    return _Station(station_id=f"{prefix}{number}", name=None, position=None)


def _bare_reading(result: Mapping[str, Any]) -> AirReading | None:
    """A result sent without a bundle: it must carry parameter, coordinates and an id itself."""
    missing = _bare_missing(result)
    if missing:
        form = _LATEST_FORM if "datetime" in result or "sensorsId" in result else _MEASUREMENTS_FORM
        raise SchemaError(f"an OpenAQ result without {', '.join(missing)} cannot be placed; send it in a bundle "
                          f"{form}", code="missing_field")
    resolved = _openaq_parameter(result["parameter"], "parameter")
    if resolved is None:
        return None
    if "period" in result:
        when, averaging_s = _period(result["period"])
    else:
        when, averaging_s = _when(result.get("datetime"), "datetime"), DEFAULT_AVERAGING_S
    return _build(result, _bare_station(result), resolved, when, averaging_s)


def parse_openaq(payload: bytes) -> Parsed:
    """Parse OpenAQ v3 bundles or bare responses (one JSON object, an array or NDJSON of them).

    Raises:
        PayloadError: the payload is not JSON or NDJSON at all.
    """
    return convert_items(_openaq_items(payload), _openaq_reading, id_keys=("sensorsId", "locationsId"),
                         what="result")


# ---------------------------------------------------------------------------------------
# the adapter


class AirFeed(FeedAdapter):
    """Air quality: hourly concentrations per station and pollutant."""

    name = "air"
    title = "Air quality"
    expected_cadence_s = 3600
    formats = (
        Format("flat", parse_flat, ("application/json", "application/x-ndjson"),
               "JSON/NDJSON of {station_id, lat, lon, parameter, value, unit, observed_at}"),
        Format("openaq", parse_openaq, ("application/json",),
               "OpenAQ v3: {location, latest} or {sensor, location, measurements} bundles, or bare responses"),
        Format("kgmt-csv", parse_kgmt_csv, ("text/csv",),
               "Kazhydromet hourly CSV as published by AirData.kz (mg/m³), plain or gzip"),
    )
