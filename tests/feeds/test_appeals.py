"""Tests of the citizens' appeals adapter: Open311 GeoReport v2 JSON/NDJSON and the NYC 311 CSV."""

from __future__ import annotations

import collections
import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.schemas import Appeal, AppealStatus, Channel
from feeds.appeals import (
    NYC_REQUIRED,
    AppealsFeed,
    map_channel,
    map_status,
    parse_nyc311_csv,
    parse_open311,
)
from feeds.base import Parsed
from tests.conftest import FIXTURES, shared_path

FIX = FIXTURES / "feeds" / "appeals"
OPEN, CLOSED = AppealStatus.OPEN, AppealStatus.CLOSED


def utc(text: str) -> datetime:
    """``'2025-01-14T02:42:10'`` -> that instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIX / name).read_bytes()


def by_id(parsed: Parsed) -> dict[str, Appeal]:
    return {r.request_id: r for r in parsed.records}  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# the adapter


def test_adapter_attributes_and_format_selection() -> None:
    assert (AppealsFeed.name, AppealsFeed.title, AppealsFeed.expected_cadence_s) == (
        "appeals", "Citizens' appeals", 900)
    assert [f.name for f in AppealsFeed.formats] == ["open311", "nyc311-csv"]
    assert AppealsFeed.format().name == "open311"
    assert AppealsFeed.format(content_type="application/x-ndjson").name == "open311"
    assert AppealsFeed.format(content_type="application/json; charset=utf-8").name == "open311"
    assert AppealsFeed.format(content_type="text/csv; charset=utf-8").name == "nyc311-csv"
    assert AppealsFeed.content_types() == {"application/json", "application/x-ndjson", "text/csv"}
    with pytest.raises(KeyError, match="formats: open311, nyc311-csv"):
        AppealsFeed.format("xml")


# ---------------------------------------------------------------------------------------
# open311: valid fixtures


def test_open311_requests_fixture_parses_to_exact_records() -> None:
    parsed = AppealsFeed.parse(fixture("open311_requests.json"))
    assert parsed.rejected == [] and parsed.ignored == 0
    assert parsed.records[0] == Appeal(
        request_id="ALM-2025-000101", status=CLOSED, state="closed",
        requested_at=utc("2025-01-14T02:42:10"), updated_at=utc("2025-01-14T08:05:00"),
        closed_at=utc("2025-01-14T08:05:00"), expected_at=utc("2025-01-15T02:42:10"),
        service_code="WS-01", service_name="No cold water", category="water_supply",
        description="Нет холодной воды во всём подъезде с 7 утра.", district="Almaly", channel=Channel.PHONE,
        agency="Almaty Su", address="Tole bi St 59, Almaly district, Almaty, 050000",
        lat=43.2551, lon=76.9126, source="open311")
    summary = [(r.request_id, r.status, r.state, r.district, r.category, r.channel)  # type: ignore[attr-defined]
               for r in parsed.records]
    assert summary == [
        ("ALM-2025-000101", CLOSED, "closed", "Almaly", "water_supply", Channel.PHONE),
        ("ALM-2025-000102", OPEN, "assigned", "Bostandyk", "heating", Channel.MESSENGER),
        ("873204", OPEN, "open", "Medeu", "roads", Channel.MOBILE_APP),
        ("ALM-2025-000104", OPEN, "in_progress", "Auezov", "waste", Channel.SOCIAL),
        ("ALM-2025-000105", CLOSED, "rejected", "Turksib", "lighting", Channel.WEB),
    ]


def test_open311_field_details() -> None:
    records = by_id(AppealsFeed.parse(fixture("open311_requests.json")))
    pothole = records["873204"]  # numeric id, top-level extensions, lat/long as strings, no updated_datetime
    assert (pothole.lat, pothole.lon) == (43.2389, 76.9612)
    assert pothole.updated_at == pothole.requested_at == utc("2025-01-14T04:15:00")
    assert pothole.closed_at is None and pothole.agency is None
    bins = records["ALM-2025-000104"]  # lat/long null
    assert (bins.lat, bins.lon, bins.expected_at) == (None, None, None)
    lamp = records["ALM-2025-000105"]  # rejected is closed: updated_datetime is the close time
    assert lamp.closed_at == lamp.updated_at == utc("2025-01-14T04:00:00")
    radiators = records["ALM-2025-000102"]
    assert radiators.closed_at is None and radiators.expected_at == utc("2025-01-16T03:03:55")
    assert all(r.requested_at.tzinfo is UTC and r.updated_at.tzinfo is UTC for r in records.values())


def test_open311_status_updates_parse_in_any_arrival_order() -> None:
    """The closing update arrives before the in-progress one; each keeps its own updated_at."""
    updates = AppealsFeed.parse(fixture("open311_status_update.json"))
    assert updates.rejected == []
    closing, progress = updates.records
    assert closing == Appeal(request_id="ALM-2025-000102", status=CLOSED, state="closed",
                             requested_at=utc("2025-01-14T03:03:55"), updated_at=utc("2025-01-14T12:40:00"),
                             closed_at=utc("2025-01-14T12:40:00"), source="open311")
    assert (progress.status, progress.state, progress.updated_at) == (OPEN, "in_progress", utc("2025-01-14T06:25:00"))
    assert progress.closed_at is None and progress.district is None  # the merge keeps the original's fields
    # with the original request, in either order, the newest version is the closing one
    original = AppealsFeed.parse(fixture("open311_requests.json")).records[1]
    for versions in ([original, *updates.records], [*reversed(updates.records), original]):
        newest = max(versions, key=lambda r: r.version_ms)
        assert newest.state == "closed" and newest.entity_id == "ALM-2025-000102"
    assert original.version_ms < progress.version_ms < closing.version_ms


def test_open311_ndjson_fixture() -> None:
    parsed = AppealsFeed.parse(fixture("open311_requests.ndjson"))
    assert parsed.rejected == [] and len(parsed.records) == 4
    summary = [(r.request_id, r.status, r.state, r.channel, r.district) for r in parsed.records]  # type: ignore[attr-defined]
    assert summary == [
        ("ALM-2025-000201", OPEN, "new", Channel.MESSENGER, "Auezov"),
        ("ALM-2025-000202", OPEN, "pending", Channel.WALK_IN, "Almaly"),
        ("ALM-2025-000203", OPEN, "open", Channel.EMAIL, "Nauryzbay"),
        ("ALM-2025-000201", CLOSED, "resolved", None, None),
    ]
    assert parsed.records[3].closed_at == utc("2025-01-15T07:30:00")  # type: ignore[attr-defined]
    assert parsed.records[2].updated_at == utc("2025-01-15T03:02:11")  # no updated_datetime: requested  # type: ignore[attr-defined]


def test_open311_single_object_and_wrapped_array() -> None:
    one = {"service_request_id": "A-1", "status": "open", "requested_datetime": "2025-02-01T10:00:00+05:00"}
    assert by_id(parse_open311(json.dumps(one).encode()))["A-1"].requested_at == utc("2025-02-01T05:00:00")
    wrapped = parse_open311(json.dumps({"service_requests": [one, {**one, "service_request_id": "A-2"}]}).encode())
    assert sorted(by_id(wrapped)) == ["A-1", "A-2"]


def test_open311_token_receipt_is_ignored_not_rejected() -> None:
    payload = [{"token": "12345"}, {"service_request_id": "A-1", "status": "open",
                                    "requested_datetime": "2025-02-01T10:00:00+05:00"}]
    parsed = parse_open311(json.dumps(payload).encode())
    assert (len(parsed.records), parsed.rejected, parsed.ignored) == (1, [], 1)


def test_open311_minimal_update_without_requested_datetime_is_rejected_clearly() -> None:
    payload = [{"service_request_id": "ALM-9", "status": "closed", "updated_datetime": "2025-01-14T17:40:00+05:00"}]
    (bad,) = parse_open311(json.dumps(payload).encode()).rejected
    assert bad.code == "missing_field"
    assert bad.error.startswith("request 0 (service_request_id='ALM-9'): requested_datetime is missing; ")
    assert "status updates included" in bad.error


# ---------------------------------------------------------------------------------------
# open311: bad items beside good ones

GOOD = {"service_request_id": "OK-1", "status": "open", "service_code": "WS-01",
        "requested_datetime": "2025-01-14T07:42:10+05:00", "updated_datetime": "2025-01-14T08:00:00+05:00",
        "lat": 43.25, "long": 76.91}


def _bad(**changes: Any) -> dict[str, Any]:
    item = {**GOOD, "service_request_id": "BAD-1", **changes}
    return {k: v for k, v in item.items() if v is not ...}


@pytest.mark.parametrize(("item", "code", "message"), [
    (_bad(status="frobbed"), "bad_value",
     "status 'frobbed' is not a known status; accepted: open, closed (GeoReport v2)"),
    (_bad(status=["open"]), "bad_type", "status must be a string, got list"),
    (_bad(status=...), "missing_field", "status is missing"),
    (_bad(description="x" * 4001), "too_long", "description is 4001 characters long; the limit is 4000"),
    (_bad(lat=95), "out_of_range", "lat is 95, above the maximum 90"),
    (_bad(long=-200.5), "out_of_range", "long is -200.5, below the minimum -180"),
    (_bad(lat="north"), "bad_type", "lat must be a number, got 'north'"),
    (_bad(long=None), "missing_field", "lat and long must be given together; only lat is present"),
    (_bad(requested_datetime="2025-01-14T07:42:10"), "bad_time",
     "requested_datetime 2025-01-14T07:42:10 has no UTC offset; times must carry their zone"),
    (_bad(updated_datetime="2025-01-14 06:00:00+05:00"), "bad_time",
     "updated_datetime 2025-01-14T01:00:00Z is before requested_datetime 2025-01-14T02:42:10Z"),
    (_bad(expected_datetime="tomorrow"), "bad_time", "expected_datetime is not an ISO 8601 time: 'tomorrow'"),
    (_bad(updated_datetime=-99_999_999_999_999), "bad_time", "updated_datetime is not a plausible epoch time"),
    (_bad(extended_attributes=["Almaly"]), "bad_type", "extended_attributes must be an object, got list"),
    (_bad(extended_attributes={"channel": {"name": "web"}}), "bad_type", "channel must be a string, got dict"),
    (_bad(district=True), "bad_type", "district must be a string, got bool"),
    (_bad(service_name="bad\x07name"), "bad_value", "service_name contains control characters"),
])
def test_open311_bad_item_is_rejected_and_neighbours_kept(item: dict[str, Any], code: str, message: str) -> None:
    payload = [GOOD, item, {**GOOD, "service_request_id": "OK-2"}]
    parsed = parse_open311(json.dumps(payload).encode())
    assert [r.request_id for r in parsed.records] == ["OK-1", "OK-2"]  # type: ignore[attr-defined]
    (bad,) = parsed.rejected
    assert (bad.index, bad.code) == (1, code)
    assert bad.error.startswith("request 1 (service_request_id='BAD-1'): "), bad.error
    assert message in bad.error, bad.error
    assert json.loads(bad.raw)["service_request_id"] == "BAD-1"


def test_open311_unknown_status_message_lists_the_richer_states() -> None:
    (bad,) = parse_open311(json.dumps([_bad(status="maybe")]).encode()).rejected
    for word in ("assigned", "in_progress", "pending", "resolved", "rejected", "fixed"):
        assert word in bad.error


def test_open311_missing_id_and_non_object_items() -> None:
    payload = [{**GOOD, "service_request_id": None}, "ALM-1", GOOD]
    parsed = parse_open311(json.dumps(payload).encode())
    assert [r.request_id for r in parsed.records] == ["OK-1"]  # type: ignore[attr-defined]
    no_id, text = parsed.rejected
    assert no_id.error == "request 0: service_request_id is missing" and no_id.code == "missing_field"
    assert text.error == "request 1: service request must be a JSON object, got a string" and text.code == "bad_type"


def test_open311_malformed_ndjson_line_is_rejected_and_other_lines_kept() -> None:
    lines = [json.dumps(GOOD), '{"service_request_id": "BROKEN", "status": "open",', json.dumps({**GOOD,
             "service_request_id": "OK-2"})]
    parsed = parse_open311("\n".join(lines).encode())
    assert [r.request_id for r in parsed.records] == ["OK-1", "OK-2"]  # type: ignore[attr-defined]
    (bad,) = parsed.rejected
    assert (bad.index, bad.code) == (1, "bad_json")
    assert bad.error.startswith("request 1: ") and "unexpected end of data" in bad.error


@pytest.mark.parametrize(("payload", "message"), [
    (b"", "payload is empty"),
    (b"\xff\xfe\x00garbage", "payload is not UTF-8 text"),
    (b"service_request_id=1&status=open", "payload is not JSON"),
])
def test_open311_unreadable_payload_raises(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_open311(payload)


# ---------------------------------------------------------------------------------------
# vocabularies


@pytest.mark.parametrize(("spelling", "channel"), [
    *[(s, Channel.PHONE) for s in ("phone", "Call", "109", 109, "hotline")],
    *[(s, Channel.WEB) for s in ("web", "site", "Portal", "online")],
    *[(s, Channel.MOBILE_APP) for s in ("app", "mobile", "iOS", "android", "Mobile App")],
    *[(s, Channel.SOCIAL) for s in ("instagram", "facebook", "vk", "x", "Twitter", "tiktok")],
    *[(s, Channel.MESSENGER) for s in ("telegram", "WhatsApp")],
    *[(s, Channel.WALK_IN) for s in ("walk_in", "walk-in", "Walk in", "visit", "office")],
    ("email", Channel.EMAIL), ("carrier pigeon", Channel.OTHER), ("fax", Channel.OTHER),
    ("", None), (None, None), ("UNKNOWN", None),
])
def test_channel_spellings(spelling: object, channel: Channel | None) -> None:
    assert map_channel(spelling) is channel


@pytest.mark.parametrize(("raw", "status", "state"), [
    ("open", OPEN, "open"), ("CLOSED", CLOSED, "closed"), ("new", OPEN, "new"), ("Assigned", OPEN, "assigned"),
    ("In Progress", OPEN, "in_progress"), ("in-progress", OPEN, "in_progress"), ("pending", OPEN, "pending"),
    ("resolved", CLOSED, "resolved"), ("rejected", CLOSED, "rejected"), ("duplicate", CLOSED, "duplicate"),
])
def test_status_projection(raw: str, status: AppealStatus, state: str) -> None:
    assert map_status(raw) == (status, state)


# ---------------------------------------------------------------------------------------
# NYC 311 CSV


def test_nyc311_fixture_parses_to_exact_records() -> None:
    parsed = AppealsFeed.parse(fixture("nyc311_requests.csv"), "nyc311-csv")
    assert parsed.rejected == [] and parsed.ignored == 0 and len(parsed.records) == 10
    records = by_id(parsed)
    assert records["41000001"] == Appeal(  # October: EDT, UTC-4
        request_id="41000001", status=CLOSED, state="closed",
        requested_at=utc("2024-10-16T01:12:30"), updated_at=utc("2024-10-16T03:40:05"),
        closed_at=utc("2024-10-16T03:40:05"), expected_at=utc("2024-10-16T09:12:30"),
        service_name="Noise - Residential", category="Noise - Residential", description="Loud Music/Party",
        agency="NYPD", address="412 7 STREET", district="BROOKLYN",
        lat=40.66812004411, lon=-73.98241537210, source="nyc311")
    assert [r.state for r in parsed.records] == [  # type: ignore[attr-defined]
        "closed", "open", "pending", "assigned", "closed", "open", "pending", "open", "closed", "assigned"]
    heat = records["41000005"]  # January: EST, UTC-5; resolution update one second after the close
    assert (heat.requested_at, heat.closed_at, heat.updated_at) == (
        utc("2025-01-20T12:45:00"), utc("2025-01-20T20:10:00"), utc("2025-01-20T20:10:01"))
    light = records["41000006"]  # no coordinates, no address
    assert (light.lat, light.lon, light.address) == (None, None, None)
    taxi = records["41000008"]  # Borough "Unspecified" is no district
    assert taxi.district is None and taxi.lat == 40.75677034245
    parking = records["41000009"]  # 01:30 EST -> 03:05 EDT on the night clocks went forward: 35 minutes
    assert (parking.requested_at, parking.closed_at) == (utc("2025-03-09T06:30:00"), utc("2025-03-09T07:05:00"))
    rodent = records["41000003"]  # Pending; due date a month later
    assert (rodent.status, rodent.updated_at, rodent.expected_at, rodent.closed_at) == (
        OPEN, utc("2024-10-16T02:41:02"), utc("2024-11-15T03:30:45"), None)


def _nyc_rows() -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(io.StringIO(fixture("nyc311_requests.csv").decode()))
    return header, rows


def _nyc_payload(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _nyc_bad(header: list[str], base: list[str], **cells: str) -> list[str]:
    row = dict(zip(header, base, strict=True))
    row["Unique Key"] = "BAD-1"
    row.update({k.replace("_", " "): v for k, v in cells.items()})
    return [row[h] for h in header]


@pytest.mark.parametrize(("cells", "code", "message"), [
    ({"Status": "Frobbed"}, "bad_value", "Status 'Frobbed' is not a known status; accepted: open, closed"),
    ({"Created_Date": "2024-10-15 21:12:30"}, "bad_time",
     "Created Date '2024-10-15 21:12:30' does not match %m/%d/%Y %I:%M:%S %p"),
    ({"Created_Date": ""}, "missing_field", "Created Date is missing"),
    ({"Latitude": "95.2"}, "out_of_range", "Latitude is 95.2, above the maximum 90"),
    ({"Longitude": ""}, "missing_field", "Latitude and Longitude must be given together; only Latitude is present"),
    ({"Closed_Date": "10/14/2024 11:40:05 PM"}, "bad_time",
     "closed time 2024-10-15T03:40:05Z is before requested_datetime 2024-10-16T01:12:30Z"),
    ({"Status": ""}, "missing_field", "Status is missing"),
])
def test_nyc311_bad_row_is_rejected_and_neighbours_kept(cells: dict[str, str], code: str, message: str) -> None:
    header, rows = _nyc_rows()
    bad_row = _nyc_bad(header, rows[0], **cells)
    parsed = parse_nyc311_csv(_nyc_payload(header, [rows[0], bad_row, rows[1]]))
    assert [r.request_id for r in parsed.records] == ["41000001", "41000002"]  # type: ignore[attr-defined]
    (bad,) = parsed.rejected
    assert (bad.index, bad.code) == (1, code)
    assert bad.error.startswith("row 1 (Unique Key='BAD-1'): "), bad.error
    assert message in bad.error, bad.error
    assert bad.raw.startswith(b"BAD-1,")


def test_nyc311_short_row_is_rejected() -> None:
    header, rows = _nyc_rows()
    parsed = parse_nyc311_csv(_nyc_payload(header, [rows[0], rows[1][:40], rows[2]]))
    assert len(parsed.records) == 2
    (bad,) = parsed.rejected
    assert bad.code == "bad_csv" and bad.error == "row 1: row has 40 cells, the header has 52"


def test_nyc311_channel_column_of_newer_exports_is_read() -> None:
    header, rows = _nyc_rows()
    parsed = parse_nyc311_csv(_nyc_payload([*header, "Open Data Channel Type"],
                                           [[*rows[0], "ONLINE"], [*rows[1], "PHONE"], [*rows[2], "UNKNOWN"]]))
    assert [r.channel for r in parsed.records] == [Channel.WEB, Channel.PHONE, None]  # type: ignore[attr-defined]


def test_nyc311_header_without_required_columns_raises() -> None:
    with pytest.raises(PayloadError, match="CSV header lacks column.*Status, Due Date"):
        parse_nyc311_csv(b"Unique Key,Created Date,Closed Date,Agency,Complaint Type,Descriptor,Incident Address\n"
                         b"1,2,3,4,5,6,7\n")
    with pytest.raises(PayloadError, match="no header row"):
        parse_nyc311_csv(b"\n\n")


# ---------------------------------------------------------------------------------------
# the real NYC sample


@pytest.mark.shared_data
def test_nyc311_real_sample() -> None:
    import pandas as pd

    path = shared_path("open311/nyc_311_service_requests.sample.csv")
    parsed = parse_nyc311_csv(path.read_bytes())
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(frame) == 199
    assert len(parsed.records) + len(parsed.rejected) + parsed.ignored == len(frame)
    assert parsed.rejected == [] and parsed.ignored == 0
    records = by_id(parsed)
    assert sorted(records) == sorted(frame["Unique Key"])

    assert collections.Counter(frame["Status"]) == {"Open": 91, "Closed": 83, "Assigned": 15, "Pending": 10}
    assert collections.Counter(r.state for r in parsed.records) == {  # type: ignore[attr-defined]
        "open": 91, "closed": 83, "assigned": 15, "pending": 10}
    assert collections.Counter(r.status for r in parsed.records) == {OPEN: 116, CLOSED: 83}  # type: ignore[attr-defined]

    # every time independently: pandas localises New York time and converts to UTC
    def utc_column(column: str) -> pd.Series:
        times = pd.to_datetime(frame[column].replace("", None), format="%m/%d/%Y %I:%M:%S %p")
        return times.dt.tz_localize("America/New_York").dt.tz_convert("UTC")

    created, closed = utc_column("Created Date"), utc_column("Closed Date")
    due, touched = utc_column("Due Date"), utc_column("Resolution Action Updated Date")
    latest = pd.concat([created, touched, closed], axis=1).max(axis=1)
    for i, key in enumerate(frame["Unique Key"]):
        record = records[key]
        assert record.requested_at == created[i].to_pydatetime(), key
        assert record.updated_at == latest[i].to_pydatetime(), key
        assert record.expected_at == (None if pd.isna(due[i]) else due[i].to_pydatetime()), key
        is_closed = frame["Status"][i] == "Closed"
        assert record.closed_at == (closed[i].to_pydatetime() if is_closed else None), key
        assert (record.lat is None) == (frame["Latitude"][i] == ""), key

    assert sum(r.lat is None for r in parsed.records) == 6  # type: ignore[attr-defined]
    assert sum(r.district is None for r in parsed.records) == 2  # Borough "Unspecified"  # type: ignore[attr-defined]

    # hand-checked: created 01:53:44 EDT (UTC-4), due 01:53:44 EST (UTC-5) after the 3 Nov 2013 change
    rodent = records["26590930"]
    assert (rodent.status, rodent.state, rodent.category, rodent.description, rodent.agency, rodent.district) == (
        OPEN, "pending", "Rodent", "Condition Attracting Rodents", "DOHMH", "MANHATTAN")
    assert rodent.requested_at == utc("2013-10-31T05:53:44")
    assert rodent.updated_at == utc("2013-10-31T05:59:54")
    assert rodent.expected_at == utc("2013-11-30T06:53:44")
    assert (rodent.lat, rodent.lon, rodent.address) == (40.80769092704951, -73.94738703491433, "WEST 124 STREET")
    bar = records["26594139"]  # Closed: closed 02:40:32 EDT, resolution updated 02:39:42
    assert (bar.status, bar.closed_at, bar.updated_at) == (
        CLOSED, utc("2013-10-31T06:40:32"), utc("2013-10-31T06:40:32"))
    derelict = records["26588468"]  # Pending although NYC filled in a Closed Date: open, no closed_at
    assert (derelict.status, derelict.closed_at, derelict.updated_at) == (OPEN, None, utc("2013-10-31T03:57:00"))


# ---------------------------------------------------------------------------------------
# property tests: garbage in, only PayloadError out

PARSERS = [parse_open311, parse_nyc311_csv]
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
OPEN311_KEYS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url",
                "district", "channel", "category", "token"]
# values of plausible shapes (bounded ints: a 4,300-digit number is not worth a specific reason)
FIELD_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**18, 10**18) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30) | st.sampled_from(["open", "closed", "assigned", "web", "2025-01-14T07:42:10+05:00",
                                               "2025-01-14T07:42:10", "43.25", "", "  "]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(OPEN311_KEYS), inner, max_size=3),
    max_leaves=6)


def assert_well_formed(parsed: Parsed, items: int | None = None) -> None:
    if items is not None:
        assert len(parsed.records) + len(parsed.rejected) + parsed.ignored == items
    for rejected in parsed.rejected:
        assert rejected.error and rejected.code


def json_item_count(value: Any) -> int:
    """How many items json_items makes of a JSON document (with the open311 unwrap keys)."""
    if isinstance(value, dict):
        for key in ("service_requests", "requests"):
            if isinstance(value.get(key), list):
                return len(value[key])
    return len(value) if isinstance(value, list) else 1


@pytest.mark.parametrize("parse", PARSERS)
@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_payload_error(parse: Any, payload: bytes) -> None:
    try:
        parsed = parse(payload)
    except PayloadError as err:
        assert str(err)
        return
    assert_well_formed(parsed)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_open311_arbitrary_json_values(value: Any) -> None:
    parsed = parse_open311(json.dumps(value).encode())  # any JSON document is readable: no PayloadError
    assert_well_formed(parsed, json_item_count(value))


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_nyc311_arbitrary_json_values(value: Any) -> None:
    try:
        parsed = parse_nyc311_csv(json.dumps(value).encode())
    except PayloadError as err:
        assert "CSV" in str(err)
        return
    assert_well_formed(parsed)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.dictionaries(st.sampled_from([*OPEN311_KEYS, "extended_attributes"]), FIELD_VALUES),
                      max_size=6))
def test_open311_right_keys_arbitrary_values(items: list[dict[str, Any]]) -> None:
    parsed = parse_open311(json.dumps(items).encode())
    assert_well_formed(parsed, len(items))
    for rejected in parsed.rejected:  # every bad value gets a specific reason, never the catch-all
        assert rejected.code != "invalid", rejected.error
        assert rejected.error.startswith(f"request {rejected.index}")


CELL = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=25) | st.sampled_from(
    ["", "Open", "Closed", "Assigned", "10/31/2013 02:08:41 AM", "13/45/2013 02:08:41 AM", "40.7", "-73.9", "95"])


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({c: CELL for c in NYC_REQUIRED}), max_size=6))
def test_nyc311_right_columns_arbitrary_cells(rows: list[dict[str, str]]) -> None:
    header = list(NYC_REQUIRED)
    parsed = parse_nyc311_csv(_nyc_payload(header, [[row[c] for c in header] for row in rows]))
    non_blank = sum(any(cell.strip() for cell in row.values()) for row in rows)
    assert_well_formed(parsed, non_blank)
    for rejected in parsed.rejected:
        assert rejected.code != "invalid", rejected.error


def test_stream_dicts_round_trip_including_a_cleared_closed_at():
    """An open appeal's stream dict carries ``closed_at: null`` (it may clear a reopened appeal's
    time); reading the dict back gives the same record."""
    from core.schemas import record_from_dict

    appeal = Appeal(request_id="A-1", status=AppealStatus.OPEN, requested_at=utc("2025-01-14T02:00:00"),
                    updated_at=utc("2025-01-14T03:00:00"), category="roads", channel=Channel.WEB)
    data = appeal.to_dict()
    assert data["closed_at"] is None
    assert record_from_dict("appeals", data) == appeal
