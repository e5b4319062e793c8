"""Tests of the ambulance feed: calls JSON/NDJSON, GTFS-realtime positions, SF dispatch CSV.

The GTFS-realtime fixture is built by :func:`build_gtfs_fixture`; the committed ``.pb`` and
``.textproto`` files must equal its output. Regenerate them with
``python -m tests.feeds.test_ambulance``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from google.protobuf import text_format
from google.transit import gtfs_realtime_pb2 as rt
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.schemas import AmbulanceCall, UnitPosition, record_from_dict
from feeds.ambulance import (
    SF_REQUIRED,
    AmbulanceFeed,
    parse_calls,
    parse_gtfs_rt,
    parse_sf_csv,
)
from feeds.base import Parsed, csv_items, json_items
from tests.conftest import FIXTURES, shared_path

DIR = FIXTURES / "feeds" / "ambulance"
PB_FIXTURE = DIR / "ambulances_almaty.pb"
TEXTPROTO_FIXTURE = DIR / "ambulances_almaty.textproto"


def utc(*args: int) -> datetime:
    """A UTC datetime (test shorthand)."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def errors(parsed: Parsed) -> dict[int, str]:
    """Rejections by item index."""
    return {r.index: r.error for r in parsed.rejected}


# =======================================================================================
# adapter class


def test_adapter_contract() -> None:
    assert AmbulanceFeed.name == "ambulance"
    assert AmbulanceFeed.title == "Ambulance"
    assert AmbulanceFeed.expected_cadence_s == 60
    assert [f.name for f in AmbulanceFeed.formats] == ["calls", "gtfs-rt", "sf-csv"]
    assert AmbulanceFeed.format().name == "calls"
    assert AmbulanceFeed.format(content_type="application/x-ndjson").name == "calls"
    assert AmbulanceFeed.format(content_type="application/x-protobuf").name == "gtfs-rt"
    assert AmbulanceFeed.format(content_type="application/vnd.google.protobuf").name == "gtfs-rt"
    assert AmbulanceFeed.format(content_type="application/octet-stream").name == "gtfs-rt"
    assert AmbulanceFeed.format(content_type="text/csv; charset=utf-8").name == "sf-csv"
    with pytest.raises(KeyError, match="no format 'xml'"):
        AmbulanceFeed.format("xml")


# =======================================================================================
# calls (JSON)


def test_calls_fixture_parses_to_expected_records() -> None:
    parsed = AmbulanceFeed.parse((DIR / "calls.json").read_bytes(), "calls")
    assert parsed.rejected == [] and parsed.ignored == 0
    whole, nemsis, top, cancelled, update = parsed.records
    assert all(isinstance(r, AmbulanceCall) for r in parsed.records)

    assert whole.call_id == "ALA-2026-100142" and whole.category == 1 and whole.status == "closed"
    assert whole.times == {
        "call_received": utc(2026, 10, 1, 3, 2, 11), "unit_notified": utc(2026, 10, 1, 3, 3, 5),
        "en_route": utc(2026, 10, 1, 3, 3, 50), "on_scene": utc(2026, 10, 1, 3, 11, 32),
        "left_scene": utc(2026, 10, 1, 3, 29, 40), "at_destination": utc(2026, 10, 1, 3, 44, 2),
        "transfer_of_care": utc(2026, 10, 1, 3, 58, 15), "back_in_service": utc(2026, 10, 1, 4, 10, 0),
    }
    assert all(t.tzinfo is UTC for t in whole.times.values())
    assert (whole.unit_id, whole.lat, whole.lon) == ("AMB-12", 43.25654, 76.92848)
    assert (whole.district, whole.destination) == ("Almaly", "City Clinical Hospital No. 7")
    assert whole.complaint == "Chest pain, shortness of breath"
    assert whole.observed_at == utc(2026, 10, 1, 4, 10, 0)
    assert whole.source == "calls"

    assert nemsis.times == {"call_received": utc(2026, 10, 1, 3, 5, 40), "unit_notified": utc(2026, 10, 1, 3, 6, 30),
                            "en_route": utc(2026, 10, 1, 3, 7, 2), "on_scene": utc(2026, 10, 1, 3, 19, 48)}
    assert (nemsis.category, nemsis.status, nemsis.unit_id) == (2, "on_scene", "AMB-03")

    assert top.times == {"call_received": utc(2026, 10, 1, 3, 9, 12), "unit_notified": utc(2026, 10, 1, 3, 14, 40)}
    assert (top.category, top.status, top.district) == (3, "dispatched", "Bostandyq")

    assert cancelled.status == "cancelled" and cancelled.category == 4
    assert cancelled.times["cancelled"] == utc(2026, 10, 1, 3, 24, 5)
    assert cancelled.lat is None and cancelled.lon is None

    assert update.call_id == "ALA-2026-100163" and update.category is None
    assert update.times == {"en_route": utc(2026, 10, 1, 3, 15, 20)}
    assert (update.status, update.unit_id, update.district) == ("en_route", "AMB-21", None)


def test_calls_ndjson_updates_in_any_order() -> None:
    parsed = parse_calls((DIR / "calls_updates.ndjson").read_bytes())
    assert parsed.rejected == [] and len(parsed.records) == 4
    assert {r.call_id for r in parsed.records} == {"ALA-2026-100188"}
    assert [r.status for r in parsed.records] == ["waiting", "en_route", "dispatched", "on_scene"]
    assert [r.category for r in parsed.records] == [1, None, None, None]
    assert parsed.records[3].times == {"on_scene": utc(2026, 10, 1, 3, 27, 55)}
    assert parsed.records[2].observed_at == utc(2026, 10, 1, 3, 20, 41)


def test_calls_single_object_and_wrapped_list() -> None:
    one = {"call_id": 42, "category": "2", "lat": "43.2", "lon": "76.9",
           "times": {"call_received": 1790824500}}
    parsed = parse_calls(json.dumps(one).encode())
    (rec,) = parsed.records
    assert (rec.call_id, rec.category, rec.lat, rec.lon) == ("42", 2, 43.2, 76.9)
    assert rec.times == {"call_received": utc(2026, 10, 1, 3, 15)}
    wrapped = parse_calls(json.dumps({"calls": [one, one]}).encode())
    assert len(wrapped.records) == 2


def test_calls_record_round_trips_through_the_stream_encoding() -> None:
    for rec in parse_calls((DIR / "calls.json").read_bytes()).records:
        assert record_from_dict("ambulance", rec.to_dict()) == rec


def test_calls_same_time_in_two_spellings_must_agree() -> None:
    same = {"call_id": "A", "times": {"en_route": "2026-10-01T08:00:00+05:00"}, "eTimes.05": "2026-10-01T03:00:00Z",
            "en_route_at": 1790823600}
    assert parse_calls(json.dumps(same).encode()).records[0].times == {"en_route": utc(2026, 10, 1, 3)}
    differ = {"call_id": "B", "times": {"eTimes.05": "2026-10-01T03:00:00Z"}, "en_route_at": "2026-10-01T03:00:01Z"}
    (rej,) = parse_calls(json.dumps(differ).encode()).rejected
    assert rej.error == "call 0 (call_id='B'): en_route is given twice with different values " \
                        "(en_route_at = 2026-10-01T03:00:01Z)"


BAD_CALL_LINES = [
    # index: (line, expected fragment of the error, code)
    ('{"call_id": "OK-1", "category": 1, "times": {"call_received": "2026-10-01T08:00:00+05:00"}}', None, None),
    ('{"call_id": "BROKEN", "times": {', "call 1: ", "bad_json"),  # an unreadable line has no id to name
    ('{"call_id": "C7", "category": 7, "times": {"call_received": "2026-10-01T08:00:00+05:00"}}',
     "call 2 (call_id='C7'): category is 7, outside 1..4", "out_of_range"),
    ('{"call_id": "CT", "category": "urgent", "times": {"call_received": "2026-10-01T08:00:00+05:00"}}',
     "call 3 (call_id='CT'): category must be a number, got 'urgent'", "bad_type"),
    ('{"call_id": "UNK", "times": {"arrived": "2026-10-01T08:00:00+05:00"}}',
     "call 4 (call_id='UNK'): unknown time 'times.arrived'", "bad_value"),
    ('{"call_id": "ORD", "times": {"en_route": "2026-10-01T08:10:00+05:00", "on_scene": "2026-10-01T08:05:00+05:00"}}',
     "call 5 (call_id='ORD'): on_scene (2026-10-01T03:05:00Z) is before en_route (2026-10-01T03:10:00Z)", "bad_time"),
    ('{"call_id": "NOT", "category": 2, "unit_id": "AMB-1"}', "call 6 (call_id='NOT'): no times", "missing_field"),
    ('{"call_id": "NOZ", "times": {"call_received": "2026-10-01T08:00:00"}}',
     "call 7 (call_id='NOZ'): times.call_received 2026-10-01T08:00:00 has no UTC offset", "bad_time"),
    ('{"call_id": "LAT", "lat": 95, "lon": 76.9, "times": {"call_received": "2026-10-01T08:00:00+05:00"}}',
     "call 8 (call_id='LAT'): lat is 95, above the maximum 90", "out_of_range"),
    ('{"call_id": "TST", "times": "08:00"}', "call 9 (call_id='TST'): times must be a JSON object", "bad_type"),
    ('{"times": {"call_received": "2026-10-01T08:00:00+05:00"}}', "call 10: call_id is missing", "missing_field"),
    ('["ALA-1", 1]', "call 11: call must be a JSON object, got an array", "bad_type"),
    ('{"call_id": "TOP", "arrived_at": "2026-10-01T08:00:00+05:00"}',
     "call 12 (call_id='TOP'): unknown time 'arrived_at'", "bad_value"),
    ('{"call_id": "E02", "times": {"eTimes.02": "2026-10-01T08:00:00+05:00"}}',
     "call 13 (call_id='E02'): unknown time 'times.eTimes.02'", "bad_value"),
    ('{"call_id": "HALF", "lat": 43.2, "times": {"call_received": "2026-10-01T08:00:00+05:00"}}',
     "call 14 (call_id='HALF'): lat and lon must be given together", "missing_field"),
    ('{"call_id": "BAD", "times": {"on_scene": "yesterday"}}',
     "call 15 (call_id='BAD'): times.on_scene is not an ISO 8601 time: 'yesterday'", "bad_time"),
    ('{"call_id": "NAN", "lat": NaN, "lon": 76.9, "times": {"call_received": "2026-10-01T08:00:00+05:00"}}',
     "call 16: ", "bad_json"),  # NaN is not JSON; the rest of the message is the JSON reader's
    ('{"call_id": "OK-2", "times": {"eTimes.14": "2026-10-01T08:00:00+05:00", "eTimes.01": 1790823600}}',
     None, None),
]


def test_calls_bad_items_are_rejected_by_name_and_the_rest_kept() -> None:
    payload = "\n".join(line for line, _, _ in BAD_CALL_LINES).encode()
    parsed = parse_calls(payload)
    assert [r.call_id for r in parsed.records] == ["OK-1", "OK-2"]
    assert parsed.records[1].status == "cancelled"
    assert parsed.records[1].times == {"cancelled": utc(2026, 10, 1, 3), "call_received": utc(2026, 10, 1, 3)}
    got = {r.index: r for r in parsed.rejected}
    expected = {i: (frag, code) for i, (_, frag, code) in enumerate(BAD_CALL_LINES) if frag}
    assert set(got) == set(expected)
    for index, (fragment, code) in expected.items():
        assert got[index].error.startswith(fragment), got[index].error
        assert got[index].code == code, (index, got[index].code)
        assert got[index].raw == BAD_CALL_LINES[index][0].encode()


@pytest.mark.parametrize("payload, message", [
    (b"", "payload is empty"),
    (b"   \n ", "payload is empty"),
    (b"calls: none", "payload is not JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_calls_unreadable_payload_raises(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_calls(payload)


# =======================================================================================
# GTFS-realtime


GTFS_HEADER_TS = 1_790_824_500  # 2026-10-01T03:15:00Z, 08:15 in Almaty


def _vehicle(feed: rt.FeedMessage, entity_id: str, *, lat: float, lon: float, vehicle_id: str = "",
             label: str = "", ts: int = 0, bearing: float | None = None, speed: float | None = None,
             status: int | None = None, trip_id: str = "") -> rt.FeedEntity:
    entity = feed.entity.add(id=entity_id)
    vp = entity.vehicle
    if vehicle_id:
        vp.vehicle.id = vehicle_id
    if label:
        vp.vehicle.label = label
    if trip_id:
        vp.trip.trip_id = trip_id
    vp.position.latitude, vp.position.longitude = lat, lon
    if bearing is not None:
        vp.position.bearing = bearing
    if speed is not None:
        vp.position.speed = speed
    if status is not None:
        vp.current_status = status
    if ts:
        vp.timestamp = ts
    return entity


def _header(ts: int | None = GTFS_HEADER_TS) -> rt.FeedMessage:
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.incrementality = rt.FeedHeader.FULL_DATASET
    if ts is not None:
        feed.header.timestamp = ts
    return feed


def build_gtfs_fixture() -> rt.FeedMessage:
    """Four ambulances in Almaty, one deleted entity and one trip update (the committed fixture)."""
    feed = _header()
    _vehicle(feed, "AMB-12", vehicle_id="AMB-12", label="Brigade 12, substation 3", lat=43.25654, lon=76.92848,
             bearing=92.5, speed=13.4, status=rt.VehiclePosition.IN_TRANSIT_TO, trip_id="ALA-2026-100142",
             ts=GTFS_HEADER_TS - 4)
    _vehicle(feed, "AMB-03", vehicle_id="AMB-03", label="Brigade 3, substation 5", lat=43.2226, lon=76.8512,
             bearing=0.0, speed=0.0, status=rt.VehiclePosition.STOPPED_AT, trip_id="ALA-2026-100157",
             ts=GTFS_HEADER_TS - 11)
    _vehicle(feed, "AMB-21", label="Brigade 21, substation 2", lat=43.2389, lon=76.8897, bearing=271.0, speed=9.75,
             status=rt.VehiclePosition.INCOMING_AT, trip_id="ALA-2026-100163")
    _vehicle(feed, "AMB-07", vehicle_id="AMB-07", lat=43.2180, lon=76.9660, ts=GTFS_HEADER_TS - 30)
    feed.entity.add(id="AMB-09", is_deleted=True)
    update = feed.entity.add(id="TU-ALA-2026-100142")
    update.trip_update.trip.trip_id = "ALA-2026-100142"
    update.trip_update.vehicle.id = "AMB-12"
    stop = update.trip_update.stop_time_update.add(stop_sequence=1, stop_id="HOSP-7")
    stop.arrival.time = GTFS_HEADER_TS + 540
    update.trip_update.timestamp = GTFS_HEADER_TS - 4
    return feed


def test_gtfs_committed_fixture_matches_its_builder() -> None:
    built = build_gtfs_fixture()
    assert PB_FIXTURE.read_bytes() == built.SerializeToString()
    from_text = text_format.Parse(TEXTPROTO_FIXTURE.read_text(encoding="utf-8"), rt.FeedMessage())
    assert from_text == built


def test_gtfs_fixture_parses_to_expected_positions() -> None:
    parsed = AmbulanceFeed.parse(PB_FIXTURE.read_bytes(), "gtfs-rt")
    assert parsed.rejected == [] and parsed.ignored == 2 and len(parsed.records) == 4
    assert all(isinstance(r, UnitPosition) for r in parsed.records)
    by_unit = {r.unit_id: r for r in parsed.records}
    assert list(by_unit) == ["AMB-12", "AMB-03", "AMB-21", "AMB-07"]

    moving = by_unit["AMB-12"]
    assert (moving.lat, moving.lon) == (43.25654, 76.92848)  # float32 on the wire, read back as the decimal sent
    assert (moving.bearing, moving.speed_mps) == (92.5, 13.4)
    assert moving.status == "in_transit_to" and moving.call_id == "ALA-2026-100142"
    assert moving.label == "Brigade 12, substation 3"
    assert moving.observed_at == utc(2026, 10, 1, 3, 14, 56)
    assert moving.source == "gtfs-rt"

    assert by_unit["AMB-03"].status == "stopped_at" and by_unit["AMB-03"].speed_mps == 0.0
    assert by_unit["AMB-03"].observed_at == utc(2026, 10, 1, 3, 14, 49)

    no_vehicle_id = by_unit["AMB-21"]  # unit id from entity.id, time from header.timestamp
    assert no_vehicle_id.observed_at == utc(2026, 10, 1, 3, 15, 0)
    assert (no_vehicle_id.status, no_vehicle_id.speed_mps, no_vehicle_id.bearing) == ("incoming_at", 9.75, 271.0)

    idle = by_unit["AMB-07"]
    assert (idle.status, idle.call_id, idle.label, idle.bearing, idle.speed_mps) == (None, None, None, None, None)
    assert idle.observed_at == utc(2026, 10, 1, 3, 14, 30)
    for rec in parsed.records:
        assert record_from_dict("ambulance", rec.to_dict()) == rec


def test_gtfs_raw_is_the_reserialised_entity() -> None:
    feed = _header()
    _vehicle(feed, "GOOD", lat=43.25, lon=76.95)
    bad = _vehicle(feed, "BAD", lat=95.0, lon=76.95)
    (rej,) = parse_gtfs_rt(feed.SerializeToString()).rejected
    assert rej.raw == bad.SerializeToString()
    assert rt.FeedEntity.FromString(rej.raw).id == "BAD"


def test_gtfs_bad_entities_are_rejected_by_id_and_the_rest_kept() -> None:
    feed = _header()
    _vehicle(feed, "AMB-01", lat=43.25, lon=76.95, ts=GTFS_HEADER_TS)
    no_position = feed.entity.add(id="AMB-02")
    no_position.vehicle.vehicle.id = "AMB-02"
    no_position.vehicle.timestamp = GTFS_HEADER_TS
    _vehicle(feed, "AMB-03", lat=95.0, lon=76.95)
    _vehicle(feed, "AMB-04", lat=43.25, lon=76.95, speed=-3.0)
    _vehicle(feed, "AMB-05", lat=43.25, lon=76.95, bearing=400.0)
    _vehicle(feed, "AMB-06", lat=43.25, lon=math.nan)
    _vehicle(feed, "AMB-07", lat=43.25, lon=76.95, ts=2**63)
    _vehicle(feed, "", lat=43.25, lon=76.95)
    _vehicle(feed, "AMB-09", vehicle_id="AMB\x01X", lat=43.25, lon=76.95)
    _vehicle(feed, "AMB-10", lat=43.25, lon=76.95, speed=91.0)
    parsed = parse_gtfs_rt(feed.SerializeToString())
    assert [r.unit_id for r in parsed.records] == ["AMB-01"]
    assert errors(parsed) == {
        1: "entity 1 (id='AMB-02'): VehiclePosition has no position",
        2: "entity 2 (id='AMB-03'): position.latitude is 95, above the maximum 90",
        3: "entity 3 (id='AMB-04'): position.speed is -3, below the minimum 0",
        4: "entity 4 (id='AMB-05'): position.bearing is 400, above the maximum 360",
        5: "entity 5 (id='AMB-06'): position.longitude must be finite, got nan",
        6: f"entity 6 (id='AMB-07'): vehicle.timestamp {2**63} is not a plausible POSIX time in seconds",
        7: "entity 7: vehicle.id is missing",
        8: "entity 8 (id='AMB-09'): vehicle.id contains control characters",
        9: "entity 9 (id='AMB-10'): position.speed is 91, above the maximum 90",
    }
    assert {r.code for r in parsed.rejected} >= {"missing_field", "out_of_range", "bad_value", "bad_time"}


def test_gtfs_entity_without_any_timestamp_is_rejected() -> None:
    feed = _header(ts=None)
    _vehicle(feed, "AMB-01", lat=43.25, lon=76.95, ts=GTFS_HEADER_TS)
    _vehicle(feed, "AMB-02", lat=43.25, lon=76.95)
    parsed = parse_gtfs_rt(feed.SerializeToString())
    assert [r.unit_id for r in parsed.records] == ["AMB-01"]
    assert errors(parsed) == {1: "entity 1 (id='AMB-02'): no timestamp: neither vehicle.timestamp nor "
                                 "header.timestamp is set"}


def test_gtfs_feed_with_only_non_vehicle_entities_is_all_ignored() -> None:
    feed = _header()
    feed.entity.add(id="gone", is_deleted=True)
    alert = feed.entity.add(id="alert-1")
    alert.alert.header_text.translation.add(text="Road closed on Abay avenue", language="en")
    parsed = parse_gtfs_rt(feed.SerializeToString())
    assert (parsed.records, parsed.rejected, parsed.ignored) == ([], [], 2)


@pytest.mark.parametrize("payload, message", [
    (b"", "payload is empty"),
    (b"garbage!!", "not a GTFS-realtime FeedMessage: Error parsing"),
    (b"\x08\x01", "no header.gtfs_realtime_version"),  # valid protobuf, unknown field 1 = 1
    (b'{"entity": []}', "not a GTFS-realtime FeedMessage"),
    (b"\x12\x04\n\x02id", "no header.gtfs_realtime_version"),  # one entity, no header
])
def test_gtfs_unreadable_payload_raises(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_gtfs_rt(payload)


# =======================================================================================
# SF Fire Department dispatch CSV


def test_sf_fixture_parses_to_expected_records() -> None:
    parsed = AmbulanceFeed.parse((DIR / "sf_fire_calls.csv").read_bytes(), "sf-csv")
    assert parsed.rejected == [] and parsed.ignored == 2  # E03 engine, T16 truck
    medic, private, emergency, low = parsed.records
    assert medic.call_id == "sf-180340512-M21" and medic.unit_id == "M21"
    assert medic.times == {"back_in_service": utc(2018, 2, 4, 5, 47, 12)}  # 9:47:12 PM PST (UTC-8)
    assert medic.status == "closed" and medic.category == 1  # Priority 3
    assert medic.response_s == pytest.approx(6.2833333 * 60)
    assert (medic.lat, medic.lon) == (37.7859261, -122.4118754)
    assert (medic.district, medic.complaint, medic.source) == ("Tenderloin", "Medical Incident", "sf-csv")

    assert private.call_id == "sf-181950233-AM107" and private.category == 3  # Priority 2
    assert private.times["back_in_service"] == utc(2018, 7, 14, 21, 15, 40)  # 2:15:40 PM PDT (UTC-7)
    assert private.response_s == pytest.approx(687.0)

    assert emergency.category == 1 and emergency.complaint == "Traffic Collision"  # Priority E
    assert emergency.times["back_in_service"] == utc(2018, 8, 10, 8, 5, 2)
    assert low.category == 4 and low.response_s == 1080.0  # Priority 1
    for rec in parsed.records:
        assert record_from_dict("ambulance", rec.to_dict()) == rec


SF_HEADER = (DIR / "sf_fire_calls.csv").read_text(encoding="utf-8").splitlines()[0]
SF_COLUMNS = SF_HEADER.split(",")


def sf_row(**cells: str) -> dict[str, str]:
    """A MEDIC row with plausible defaults, overridden by ``cells``."""
    row = dict.fromkeys(SF_COLUMNS, "null")
    row.update(CallNumber="183000001", UnitID="M01", CallType="Medical Incident",
               AvailableDtTm="10/27/2018 11:20:00 AM", Priority="3", UnitType="MEDIC", Neighborhood="Mission",
               Location="(37.7528735, -122.4093217)", RowID="183000001-M01", Delay="4.5")
    row.update(cells)
    return row


def sf_payload(rows: list[dict[str, str]], columns: list[str] = SF_COLUMNS) -> bytes:
    """CSV text with a header, as the extract writes it."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def test_sf_bad_rows_are_rejected_by_row_id_and_the_rest_kept() -> None:
    rows = [
        sf_row(),
        sf_row(RowID="R1", AvailableDtTm="null"),
        sf_row(RowID="R2", Delay="-2"),
        sf_row(RowID="R3", Priority="X"),
        sf_row(RowID="R4", Location="(95.1, -122.4)"),
        sf_row(RowID="R5", AvailableDtTm="2018-10-27T11:20:00"),
        sf_row(RowID="R6", Location="37.75 -122.40"),
        sf_row(RowID="R7", Delay="four"),
        sf_row(RowID="R8", UnitType="ENGINE", Delay="-2", AvailableDtTm="null"),  # not ours: ignored, not judged
        sf_row(RowID="R9", UnitType="PRIVATE", UnitID="AM200", Priority="null", Location="null", Delay="null"),
    ]
    payload = sf_payload(rows) + b'183000099,M99,"unterminated\n'
    parsed = parse_sf_csv(payload)
    assert parsed.ignored == 1
    assert [r.call_id for r in parsed.records] == ["sf-183000001-M01", "sf-183000001-AM200"]
    loose = parsed.records[1]
    assert (loose.category, loose.lat, loose.lon, loose.response_s) == (None, None, None, None)
    assert errors(parsed) == {
        1: "row 1 (RowID='R1'): AvailableDtTm is 'null': the row has no time, and a call needs one",
        2: "row 2 (RowID='R2'): Delay is -2, below the minimum 0",
        3: "row 3 (RowID='R3'): Priority 'X' is not one of E, 3, 2, 1",
        4: "row 4 (RowID='R4'): Location latitude is 95.1, above the maximum 90",
        5: "row 5 (RowID='R5'): AvailableDtTm '2018-10-27T11:20:00' does not match %m/%d/%Y %I:%M:%S %p",
        6: "row 6 (RowID='R6'): Location '37.75 -122.40' is not '(lat, lon)'",
        7: "row 7 (RowID='R7'): Delay must be a number, got 'four'",
        10: "row 10: row has 3 cells, the header has 28",
    }
    assert [r.code for r in parsed.rejected] == ["missing_field", "out_of_range", "bad_value", "out_of_range",
                                                 "bad_time", "bad_value", "bad_type", "bad_csv"]


def test_sf_time_is_pacific_across_daylight_saving() -> None:
    rows = [sf_row(RowID="W", AvailableDtTm="03/11/2018 01:59:59 AM"),  # last second of PST
            sf_row(RowID="S", AvailableDtTm="03/11/2018 03:00:00 AM"),  # first second of PDT
            sf_row(RowID="N", AvailableDtTm="12/31/2017 11:59:59 PM"),
            sf_row(RowID="F", AvailableDtTm="11/04/2018 01:30:00 AM")]  # repeated hour: first (PDT) reading
    times = [r.times["back_in_service"] for r in parse_sf_csv(sf_payload(rows)).records]
    assert times == [utc(2018, 3, 11, 9, 59, 59), utc(2018, 3, 11, 10, 0, 0), utc(2018, 1, 1, 7, 59, 59),
                     utc(2018, 11, 4, 8, 30, 0)]
    assert times[1] - times[0] == timedelta(seconds=1)


def test_sf_header_without_required_columns_raises() -> None:
    columns = [c for c in SF_COLUMNS if c not in ("Delay", "UnitType")]
    with pytest.raises(PayloadError, match="lacks column\\(s\\) UnitType, Delay"):
        parse_sf_csv(sf_payload([{c: "x" for c in columns}], columns))
    with pytest.raises(PayloadError, match="no header row"):
        parse_sf_csv(b"\n\n")


@pytest.mark.shared_data
def test_sf_real_sample() -> None:
    path = shared_path("ems/sf_fire_calls_sample.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ambulance = [r for r in rows if r["UnitType"] in ("MEDIC", "PRIVATE")]
    no_time = [r for r in ambulance if r["AvailableDtTm"] == "null"]
    kept = [r for r in ambulance if r["AvailableDtTm"] != "null"]
    assert (len(rows), len(ambulance), len(no_time)) == (1000, 346, 9)

    parsed = parse_sf_csv(path.read_bytes())
    assert parsed.ignored == len(rows) - len(ambulance) == 654
    # The only bad real rows: 9 ambulance responses whose AvailableDtTm is the literal "null".
    assert sorted(rej.error.split("'")[1] for rej in parsed.rejected) == sorted(r["RowID"] for r in no_time)
    assert all(rej.code == "missing_field" and "AvailableDtTm is 'null'" in rej.error for rej in parsed.rejected)
    assert [rec.call_id for rec in parsed.records] == [f"sf-{r['CallNumber']}-{r['UnitID']}" for r in kept]

    delays = np.array([float(r["Delay"]) for r in kept])
    minutes = np.array([rec.response_s / 60 for rec in parsed.records])
    assert np.percentile(minutes, 90) == pytest.approx(np.percentile(delays, 90), rel=1e-12)
    assert np.percentile(minutes, 50) == pytest.approx(np.percentile(delays, 50), rel=1e-12)
    expected_category = {"E": 1, "3": 1, "2": 3, "1": 4}
    assert [rec.category for rec in parsed.records] == [expected_category[r["Priority"]] for r in kept]
    assert {rec.status for rec in parsed.records} == {"closed"}

    first = parsed.records[0]  # CallNumber 20110022, M17: 01/11/2002 03:01:18 AM PST = 11:01:18 UTC
    assert first.call_id == "sf-20110022-M17"
    assert first.times == {"back_in_service": utc(2002, 1, 11, 11, 1, 18)}
    assert (first.category, first.complaint, first.district) == (1, "Medical Incident", "Bayview Hunters Point")
    assert (first.lat, first.lon) == (37.7337623673897, -122.396113802632)
    assert first.response_s == pytest.approx(282.0)
    private = next(rec for rec in parsed.records if rec.unit_id == "A208")  # 020280187-A208, Priority 1
    assert private.category == 4 and private.times["back_in_service"] == utc(2002, 1, 28, 20, 19, 54)


# =======================================================================================
# property tests: only PayloadError escapes, every item is accounted for

PARSERS = {"calls": parse_calls, "gtfs-rt": parse_gtfs_rt, "sf-csv": parse_sf_csv}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def count_items(fmt: str, payload: bytes) -> int:
    """How many items the payload splits into (only called when it parsed)."""
    if fmt == "calls":
        return len(list(json_items(payload, unwrap=("calls",))))
    if fmt == "gtfs-rt":
        return len(rt.FeedMessage.FromString(payload).entity)
    return len(list(csv_items(payload, required=SF_REQUIRED)))


def check_accounting(fmt: str, payload: bytes, expected_items: int | None = None) -> Parsed | None:
    """Parse; only PayloadError may escape; records + rejected + ignored == items."""
    try:
        parsed = PARSERS[fmt](payload)
    except PayloadError as err:
        assert str(err) and err.code
        return None
    items = count_items(fmt, payload) if expected_items is None else expected_items
    assert len(parsed.records) + len(parsed.rejected) + parsed.ignored == items
    for rej in parsed.rejected:
        assert rej.error and rej.code
    return parsed


@pytest.mark.parametrize("fmt", list(PARSERS))
@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=400))
def test_property_arbitrary_bytes(fmt: str, payload: bytes) -> None:
    check_accounting(fmt, payload)


@pytest.mark.parametrize("fmt", list(PARSERS))
@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_property_arbitrary_json(fmt: str, value: object) -> None:
    check_accounting(fmt, json.dumps(value).encode())


TIME_KEY_NAMES = ["call_received", "unit_notified", "en_route", "on_scene", "left_scene", "at_destination",
                  "transfer_of_care", "back_in_service", "cancelled", "eTimes.01", "eTimes.03", "eTimes.05",
                  "eTimes.06", "eTimes.09", "eTimes.11", "eTimes.12", "eTimes.13", "eTimes.14", "arrived"]
iso_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),  # noqa: DTZ001
                         timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat())
time_values = iso_times | json_values
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
call_dicts = st.fixed_dictionaries(
    {"call_id": json_values, "times": st.dictionaries(st.sampled_from(TIME_KEY_NAMES), time_values) | json_values},
    optional={"category": st.integers(-2, 9) | json_values, "unit_id": json_values,
              "lat": finite_floats | json_values, "lon": finite_floats | json_values,
              "district": json_values,
              "complaint": json_values, "destination": json_values, "on_scene_at": time_values,
              "eTimes.01": time_values, "arrived_at": time_values},
)


@settings(max_examples=200, deadline=None)
@given(calls=st.lists(call_dicts, min_size=1, max_size=6))
def test_property_calls_with_the_right_keys(calls: list[dict]) -> None:
    payload = json.dumps(calls).encode()
    parsed = check_accounting("calls", payload, expected_items=len(calls))
    assert parsed is not None
    for rec in parsed.records:
        assert rec.status and all(t.tzinfo is UTC for t in rec.times.values())


@st.composite
def feed_messages(draw: st.DrawFn) -> rt.FeedMessage:
    """GTFS-realtime feeds with the right fields and arbitrary values."""
    feed = _header(draw(st.none() | st.integers(0, 2**64 - 1)))
    for _ in range(draw(st.integers(1, 5))):
        entity = feed.entity.add(id=draw(st.text(max_size=20)))
        kind = draw(st.sampled_from(["vehicle", "deleted", "trip_update", "empty"]))
        if kind == "deleted":
            entity.is_deleted = True
        elif kind == "trip_update":
            entity.trip_update.trip.trip_id = draw(st.text(max_size=10))
        elif kind == "vehicle":
            vp = entity.vehicle
            vp.vehicle.id = draw(st.text(max_size=140))
            vp.vehicle.label = draw(st.text(max_size=20))
            vp.trip.trip_id = draw(st.text(max_size=20))
            if draw(st.booleans()):
                pos = vp.position
                pos.latitude = draw(st.floats(width=32))
                pos.longitude = draw(st.floats(width=32))
                if draw(st.booleans()):
                    pos.bearing = draw(st.floats(width=32))
                if draw(st.booleans()):
                    pos.speed = draw(st.floats(width=32))
            if draw(st.booleans()):
                vp.current_status = draw(st.sampled_from([0, 1, 2]))
            vp.timestamp = draw(st.integers(0, 2**64 - 1))
    return feed


@settings(max_examples=200, deadline=None)
@given(feed=feed_messages())
def test_property_gtfs_with_the_right_fields(feed: rt.FeedMessage) -> None:
    parsed = check_accounting("gtfs-rt", feed.SerializeToString(), expected_items=len(feed.entity))
    assert parsed is not None
    for rec in parsed.records:
        assert -90 <= rec.lat <= 90 and -180 <= rec.lon <= 180 and rec.observed_at.tzinfo is UTC


cell_text = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")) | st.sampled_from("\n,\" "),
                    max_size=30)
sf_rows = st.fixed_dictionaries({
    "CallNumber": cell_text, "UnitID": st.text("AMKE0123456789", min_size=1, max_size=6),
    "CallType": cell_text, "Neighborhood": cell_text, "RowID": cell_text,
    "UnitType": st.sampled_from(["MEDIC", "PRIVATE", "ENGINE", "TRUCK", "null", ""]) | cell_text,
    "Priority": st.sampled_from(["E", "3", "2", "1", "null", "", "A"]) | cell_text,
    "Delay": st.floats().map(str) | cell_text,
    "AvailableDtTm": st.datetimes().map(lambda d: d.strftime("%m/%d/%Y %I:%M:%S %p")) | cell_text,
    "Location": st.tuples(st.floats(), st.floats()).map(lambda p: f"({p[0]}, {p[1]})") | cell_text,
})


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(sf_rows, min_size=1, max_size=6))
def test_property_sf_csv_with_the_right_keys(rows: list[dict[str, str]]) -> None:
    full = [sf_row(**row) for row in rows]
    parsed = check_accounting("sf-csv", sf_payload(full), expected_items=len(full))
    assert parsed is not None
    for rec in parsed.records:
        assert rec.call_id.startswith("sf-") and rec.times["back_in_service"].tzinfo is UTC


# =======================================================================================
# fixture generation


def write_gtfs_fixture() -> None:
    """Write the committed ``.pb`` and its ``.textproto`` from :func:`build_gtfs_fixture`."""
    feed = build_gtfs_fixture()
    PB_FIXTURE.write_bytes(feed.SerializeToString())
    TEXTPROTO_FIXTURE.write_text("# GTFS-realtime FeedMessage of tests/fixtures/feeds/ambulance/ambulances_almaty.pb\n"
                                 "# (text form, generated by tests/feeds/test_ambulance.py)\n"
                                 + text_format.MessageToString(feed, as_utf8=True), encoding="utf-8")


if __name__ == "__main__":
    write_gtfs_fixture()
