"""Citizens' appeals: Open311 GeoReport v2 service requests and the NYC Open Data 311 CSV layout.

Two formats, both turned into :class:`~core.schemas.Appeal` records:

``open311`` (default)
    The JSON answer of GeoReport v2 ``GET /requests.json`` (an array of request objects),
    one request object, or NDJSON (one request per line). Besides the standard fields we
    read three extensions, ``district``, ``channel`` and ``category``, either top-level or
    nested in ``extended_attributes`` (the convention of Chicago's ``extensions=true``).
    A later object for the same ``service_request_id`` is a status update: it may carry only
    ``service_request_id``, ``status``, ``updated_datetime`` and ``requested_datetime``; the
    pipeline merges the versions by ``updated_datetime`` whatever order they arrive in.

``nyc311-csv``
    The 52-column CSV export of NYC Open Data's "311 Service Requests" dataset. Its times
    are New York local time without an offset and are converted with the
    ``America/New_York`` rules (EST/EDT) to UTC.

Statuses: GeoReport v2 knows only ``open`` and ``closed``. Richer workflow states
(``assigned``, ``in_progress``, ``resolved`` ...) are projected onto open/closed and kept,
normalised, in ``Appeal.state``; ``state`` is always set so a newer update replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from core.errors import SchemaError
from core.schemas import Appeal, AppealStatus, Channel, check_number, check_str, check_time
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
# vocabularies

_OPEN_STATES = (
    "open", "new", "submitted", "received", "registered", "accepted", "acknowledged", "confirmed",
    "assigned", "started", "in_progress", "investigating", "action_scheduled", "pending", "on_hold",
    "waiting", "reopened",
)
_CLOSED_STATES = (
    "closed", "resolved", "fixed", "completed", "done", "rejected", "declined", "cancelled", "canceled",
    "duplicate", "not_responsible", "not_councils_responsibility", "no_further_action", "unable_to_fix",
    "internal_referral", "archived",
)

#: Normalised status word -> its Open311 projection. The word itself is kept in ``state``.
STATUSES: dict[str, AppealStatus] = {
    **{s: AppealStatus.OPEN for s in _OPEN_STATES},
    **{s: AppealStatus.CLOSED for s in _CLOSED_STATES},
}
_STATUS_HELP = (f"accepted: open, closed (GeoReport v2), or a richer state mapped to open "
                f"({', '.join(_OPEN_STATES[1:])}) or to closed ({', '.join(_CLOSED_STATES[1:])})")

_CHANNEL_SPELLINGS: dict[Channel | None, tuple[str, ...]] = {
    Channel.PHONE: ("phone", "call", "109", "hotline", "telephone", "call_center", "call_centre"),
    Channel.WEB: ("web", "site", "website", "portal", "online", "internet"),
    Channel.MOBILE_APP: ("mobile_app", "app", "mobile", "ios", "android"),
    Channel.SOCIAL: ("social", "instagram", "facebook", "vk", "x", "twitter", "tiktok"),
    Channel.MESSENGER: ("messenger", "telegram", "whatsapp"),
    Channel.WALK_IN: ("walk_in", "visit", "office", "in_person"),
    Channel.EMAIL: ("email", "e_mail"),
    Channel.OTHER: ("other",),
    None: ("unknown", "unspecified", "n/a"),
}
#: Normalised channel spelling -> Channel (``None``: the source says it does not know).
#: Any other spelling is :attr:`Channel.OTHER`.
CHANNELS: dict[str, Channel | None] = {s: ch for ch, names in _CHANNEL_SPELLINGS.items() for s in names}

#: Open311 fields that must be a string (or a number) when present, with their length limit.
_TEXT_LIMITS = {"service_code": 128, "service_name": 256, "agency_responsible": 256, "address": 512,
                "district": 128, "category": 128}


def _word(text: str) -> str:
    """Normalise a vocabulary word: ``'In Progress'`` -> ``'in_progress'``."""
    return text.strip().lower().replace(" ", "_").replace("-", "_")


def map_status(value: object, name: str = "status") -> tuple[AppealStatus, str]:
    """Return the Open311 status and the normalised state word of a status value.

    Raises:
        SchemaError: missing, not a string, or not a known status (the message lists them).
    """
    text = check_str(value, name, max_len=64)
    state = _word(text)
    status = STATUSES.get(state)
    if status is None:
        raise SchemaError(f"{name} {text!r} is not a known status; {_STATUS_HELP}", code="bad_value")
    return status, state


def map_channel(value: object) -> Channel | None:
    """Map a channel spelling (``'Telegram'``, ``'109'``, ``'walk-in'``) to a :class:`Channel`.

    Blank gives ``None``; an unknown spelling gives :attr:`Channel.OTHER`.

    Raises:
        SchemaError: the value is neither a string nor a number.
    """
    text = check_str(value, "channel", max_len=64, required=False)
    if not text:
        return None
    return CHANNELS.get(_word(text), Channel.OTHER)


# ---------------------------------------------------------------------------------------
# open311


def _opt_text(value: object, name: str, max_len: int) -> str | None:
    """An optional text field: stripped, blank -> ``None``; raises naming ``name`` if invalid."""
    return check_str(value, name, max_len=max_len, required=False) or None


def _time(value: object, name: str) -> datetime | None:
    """:func:`check_time` for an optional field."""
    return check_time(value, name, required=False)


def _coordinate(value: object, name: str, bound: float) -> float:
    """A latitude or longitude within ``[-bound, bound]``, named as the source names it."""
    try:
        number = check_number(value, name, lo=-bound, hi=bound)
    except OverflowError:
        raise SchemaError(f"{name} is not a representable number", code="bad_value") from None
    assert number is not None
    return number


def _description(value: object) -> str | None:
    """The description; a string is checked once, by :class:`Appeal` (4,000 characters, no controls)."""
    if isinstance(value, str):
        return value.strip() or None
    return _opt_text(value, "description", 4000)


def _extension(item: Mapping[str, Any], ext: Mapping[str, Any], key: str) -> Any:
    """An extension field: top-level first, else inside ``extended_attributes``."""
    value = item.get(key)
    return ext.get(key) if value is None or value == "" else value


def _extended_attributes(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``extended_attributes`` object, ``{}`` when absent; raises if it is not an object."""
    ext = item.get("extended_attributes")
    if ext is None:
        return {}
    if not isinstance(ext, Mapping):
        raise SchemaError(f"extended_attributes must be an object, got {type(ext).__name__}", code="bad_type")
    return ext


def _requested_at(item: Mapping[str, Any]) -> datetime:
    """``requested_datetime`` in UTC: required in every version of a request."""
    value = item.get("requested_datetime")
    if value is None or value == "":
        raise SchemaError("requested_datetime is missing; every request, status updates included, must "
                          "carry the time it was made", code="missing_field")
    when = _time(value, "requested_datetime")
    assert when is not None
    return when


def _open311_position(item: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(lat, long)`` or ``(None, None)``; both or neither must be given."""
    lat, lon = item.get("lat"), item.get("long")
    has_lat, has_lon = lat not in (None, ""), lon not in (None, "")
    if not has_lat and not has_lon:
        return None, None
    if has_lat != has_lon:
        given = "lat" if has_lat else "long"
        raise SchemaError(f"lat and long must be given together; only {given} is present", code="missing_field")
    return _coordinate(lat, "lat", 90.0), _coordinate(lon, "long", 180.0)


def _is_token_receipt(item: Mapping[str, Any]) -> bool:
    """A batch-service POST answer (``{"token": ...}``) that has no request id yet."""
    return "token" in item and item.get("service_request_id") in (None, "")


def open311_appeal(value: Any) -> Appeal | None:
    """Convert one GeoReport v2 request object into an :class:`Appeal`.

    Returns ``None`` for a token receipt (valid Open311, not yet a request).

    Raises:
        SchemaError: a field is missing, of the wrong type or impossible (the message says which).
    """
    item = require_mapping(value, "service request")
    if _is_token_receipt(item):
        return None
    request_id = check_str(item.get("service_request_id"), "service_request_id")
    ext = _extended_attributes(item)
    status, state = map_status(item.get("status"))
    requested = _requested_at(item)
    updated = _time(item.get("updated_datetime"), "updated_datetime") or requested
    lat, lon = _open311_position(item)
    text = {k: _opt_text(_extension(item, ext, k), k, n) for k, n in _TEXT_LIMITS.items()}
    return Appeal(
        request_id=request_id, status=status, state=state, requested_at=requested, updated_at=updated,
        closed_at=updated if status is AppealStatus.CLOSED else None,
        expected_at=_time(item.get("expected_datetime"), "expected_datetime"),
        service_code=text["service_code"], service_name=text["service_name"], category=text["category"],
        description=_description(item.get("description")),
        district=text["district"], channel=map_channel(_extension(item, ext, "channel")),
        agency=text["agency_responsible"], address=text["address"], lat=lat, lon=lon, source="open311",
    )


def parse_open311(payload: bytes) -> Parsed:
    """Parse a GeoReport v2 requests array, one request object, or NDJSON.

    A ``{"service_requests": [...]}`` or ``{"requests": [...]}`` wrapper is unwrapped.

    Raises:
        PayloadError: the payload is not JSON/NDJSON text at all.
    """
    items = json_items(payload, unwrap=("service_requests", "requests"))
    return convert_items(items, open311_appeal, id_keys=("service_request_id",), what="request")


# ---------------------------------------------------------------------------------------
# NYC Open Data 311 CSV

NYC_ZONE = "America/New_York"
NYC_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
NYC_REQUIRED = ("Unique Key", "Created Date", "Closed Date", "Agency", "Complaint Type", "Descriptor",
                "Incident Address", "Status", "Due Date", "Resolution Action Updated Date", "Borough",
                "Latitude", "Longitude")
#: NYC's placeholder for "no value", read as absent.
_NYC_BLANK = ("", "Unspecified", "N/A")


def _nyc_time(row: Mapping[str, str], column: str) -> datetime | None:
    """A New York local time column in UTC, or ``None`` when blank."""
    text = row.get(column, "")
    if not text.strip():
        return None
    local = local_time(text, NYC_TIME_FORMAT, NYC_ZONE, column)
    try:
        return local.astimezone(UTC)
    except (OverflowError, ValueError):
        raise SchemaError(f"{column} {text[:40]!r} is out of the representable range", code="bad_time") from None


def _nyc_text(row: Mapping[str, str], column: str, max_len: int = 256) -> str | None:
    """A text cell; blank and NYC's placeholders (``Unspecified``) give ``None``."""
    text = row.get(column, "").strip()
    return None if text in _NYC_BLANK else check_str(text, column, max_len=max_len)


def _nyc_position(row: Mapping[str, str]) -> tuple[float | None, float | None]:
    """``(Latitude, Longitude)`` or ``(None, None)``; both or neither must be given."""
    lat, lon = row["Latitude"].strip(), row["Longitude"].strip()
    if not lat and not lon:
        return None, None
    if not lat or not lon:
        given = "Latitude" if lat else "Longitude"
        raise SchemaError(f"Latitude and Longitude must be given together; only {given} is present",
                          code="missing_field")
    return _coordinate(lat, "Latitude", 90.0), _coordinate(lon, "Longitude", 180.0)


def nyc311_appeal(row: Any) -> Appeal:
    """Convert one row of the NYC Open Data 311 CSV into an :class:`Appeal`.

    ``updated_at`` is the latest of Created, Resolution Action Updated and Closed Date;
    ``closed_at`` is Closed Date (or, if that is blank, ``updated_at``) when Status is closed.

    Raises:
        SchemaError: a cell is missing or impossible (the message names the column).
    """
    request_id = check_str(row["Unique Key"], "Unique Key")
    status, state = map_status(row["Status"], "Status")
    created = _nyc_time(row, "Created Date")
    if created is None:
        raise SchemaError("Created Date is missing", code="missing_field")
    closed = _nyc_time(row, "Closed Date")
    touched = [t for t in (created, _nyc_time(row, "Resolution Action Updated Date"), closed) if t is not None]
    updated = max(touched)
    lat, lon = _nyc_position(row)
    complaint = _nyc_text(row, "Complaint Type")
    return Appeal(
        request_id=request_id, status=status, state=state,
        requested_at=created, updated_at=updated, expected_at=_nyc_time(row, "Due Date"),
        closed_at=(closed or updated) if status is AppealStatus.CLOSED else None,
        service_name=complaint, category=complaint, description=_nyc_text(row, "Descriptor", 4000),
        agency=_nyc_text(row, "Agency"), address=_nyc_text(row, "Incident Address", 512),
        district=_nyc_text(row, "Borough"), channel=map_channel(row.get("Open Data Channel Type")),
        lat=lat, lon=lon, source="nyc311",
    )


def parse_nyc311_csv(payload: bytes) -> Parsed:
    """Parse the NYC Open Data 311 Service Requests CSV (header row first).

    Raises:
        PayloadError: not text, or the header lacks one of :data:`NYC_REQUIRED`.
    """
    items = csv_items(payload, required=NYC_REQUIRED)
    return convert_items(items, nyc311_appeal, id_keys=("Unique Key",), what="row")


# ---------------------------------------------------------------------------------------


class AppealsFeed(FeedAdapter):
    """Citizens' appeals (311-style service requests) as :class:`~core.schemas.Appeal` records."""

    name: ClassVar[str] = "appeals"
    title: ClassVar[str] = "Citizens' appeals"
    expected_cadence_s: ClassVar[float] = 900
    formats: ClassVar[tuple[Format, ...]] = (
        Format("open311", parse_open311, ("application/json", "application/x-ndjson"),
               "Open311 GeoReport v2 service requests (requests.json array, one object or NDJSON)"),
        Format("nyc311-csv", parse_nyc311_csv, ("text/csv",),
               "NYC Open Data 311 Service Requests CSV (New York local times)"),
    )
