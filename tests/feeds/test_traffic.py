"""Tests of the road traffic adapter: score JSON, the almaty-traffic-data CSV, FIWARE TrafficFlowObserved."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.schemas import TrafficFlow, TrafficScore
from feeds.base import Parsed
from feeds.traffic import TrafficFeed, parse_fiware, parse_score_csv, parse_scores
from tests.conftest import shared_path

FIX = "feeds/traffic/"
ALMATY = ZoneInfo("Asia/Almaty")
CSV_HEADER = ("ts_utc,ts_almaty,yandex_score,yandex_trend,yandex_jam_km,dgis_score,"
              "ev_crash,ev_roadwork,ev_restriction,ev_comment,ev_other")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def only_rejection(parsed: Parsed) -> tuple[str, str]:
    assert len(parsed.rejected) == 1, [r.error for r in parsed.rejected]
    return parsed.rejected[0].code, parsed.rejected[0].error


# ---------------------------------------------------------------------------------------
# the adapter


def test_adapter_declares_name_cadence_and_formats_in_order() -> None:
    assert TrafficFeed.name == "traffic"
    assert TrafficFeed.title == "Road traffic"
    assert TrafficFeed.expected_cadence_s == 240
    assert [f.name for f in TrafficFeed.formats] == ["score", "score-csv", "fiware"]
    assert TrafficFeed.format().name == "score"


@pytest.mark.parametrize(("content_type", "fmt"), [
    ("application/json", "score"),
    ("application/x-ndjson", "score"),
    ("text/csv; charset=utf-8", "score-csv"),
    ("application/ld+json", "fiware"),
])
def test_content_type_selects_format(content_type: str, fmt: str) -> None:
    assert TrafficFeed.format(content_type=content_type).name == fmt


def test_format_by_name_wins_over_content_type() -> None:
    assert TrafficFeed.format("fiware", content_type="application/json").name == "fiware"
    with pytest.raises(KeyError, match="no format 'datex'"):
        TrafficFeed.format("datex")


# ---------------------------------------------------------------------------------------
# format "score"


def test_score_json_array_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    parsed = TrafficFeed.parse(fixture_bytes(FIX + "scores.json"), "score")
    assert not parsed.rejected and parsed.ignored == 0
    assert parsed.records == [
        TrafficScore(provider="yandex", score=7.0, observed_at=utc(2026, 10, 1, 3, 4, 31), trend=1, jam_km=104.1,
                     source="score"),
        TrafficScore(provider="2gis", score=8.0, observed_at=utc(2026, 10, 1, 3, 5, 27),
                     road_events={"crash": 81, "roadwork": 6, "restriction": 227, "comment": 13, "other": 2},
                     source="score"),
        TrafficScore(provider="yandex", area_id="almaty-center", score=0.0, observed_at=utc(2026, 10, 1, 19, 0, 28),
                     trend=0, source="score"),
    ]
    assert all(r.observed_at.tzinfo is UTC for r in parsed.records)
    assert [r.entity_id for r in parsed.records] == ["yandex:city", "2gis:city", "yandex:almaty-center"]


def test_score_ndjson_fixture_with_epoch_milliseconds(fixture_bytes: Callable[[str], bytes]) -> None:
    parsed = parse_scores(fixture_bytes(FIX + "scores.ndjson"))
    assert not parsed.rejected
    assert parsed.records == [
        TrafficScore(provider="yandex", score=5.0, observed_at=utc(2026, 10, 3, 8, 20, 31), trend=-1, jam_km=61.4,
                     source="score"),
        TrafficScore(provider="2gis", score=4.0, observed_at=utc(2026, 10, 2, 8, 20, 27),
                     road_events={"crash": 9, "roadwork": 4, "restriction": 225, "comment": 2, "other": 0},
                     source="score"),
    ]


def test_score_single_object_and_partial_road_events_in_canonical_order() -> None:
    parsed = parse_scores(b'{"provider":" 2GIS ","score":"3","observed_at":"2026-10-05 09:00:00-01:00",'
                          b'"road_events":{"other":1,"crash":4,"comment":null}}')
    assert parsed.records == [TrafficScore(provider="2gis", score=3.0, observed_at=utc(2026, 10, 5, 10),
                                           road_events={"crash": 4, "other": 1}, source="score")]
    assert list(parsed.records[0].road_events) == ["crash", "other"]  # type: ignore[arg-type]


GOOD_SCORE = '{"provider":"yandex","score":6,"observed_at":"2026-10-01T12:00:00Z"}'


@pytest.mark.parametrize(("line", "code", "fragments"), [
    ('{"provider":"yandex","score":6,"observed_at":', "bad_json", ["record 1:"]),
    ('{"provider":"yandex","score":11,"observed_at":"2026-10-01T12:00:00Z"}', "out_of_range",
     ["record 1 (provider='yandex')", "score is 11, above the maximum 10"]),
    ('{"provider":"2gis","score":-1,"observed_at":"2026-10-01T12:00:00Z"}', "out_of_range",
     ["(provider='2gis')", "score is -1, below the minimum 0"]),
    ('{"provider":"yandex","score":"high","observed_at":"2026-10-01T12:00:00Z"}', "bad_type",
     ["score must be a number, got 'high'"]),
    ('{"score":6,"observed_at":"2026-10-01T12:00:00Z","area_id":"north"}', "missing_field",
     ["record 1 (area_id='north')", "provider is missing"]),
    ('{"provider":"yandex","score":6,"observed_at":"2026-10-01T12:00:00"}', "bad_time",
     ["observed_at 2026-10-01T12:00:00 has no UTC offset"]),
    ('{"provider":"yandex","score":6}', "missing_field", ["observed_at is missing"]),
    ('{"provider":"yandex","score":6,"observed_at":-100000000000}', "bad_time",
     ["observed_at is not a plausible epoch time: -100000000000"]),
    ('{"provider":"yandex","score":6,"observed_at":"2026-10-01T12:00:00Z","trend":1.5}', "bad_type",
     ["trend must be a whole number, got 1.5"]),
    ('{"provider":"yandex","score":6,"observed_at":"2026-10-01T12:00:00Z","jam_km":-4}', "out_of_range",
     ["jam_km is -4, below the minimum 0"]),
    ('{"provider":"2gis","score":6,"observed_at":"2026-10-01T12:00:00Z","road_events":{"crash":-3}}',
     "out_of_range", ["road_events.crash is -3, outside 0..1000000"]),
    ('{"provider":"2gis","score":6,"observed_at":"2026-10-01T12:00:00Z","road_events":{"jam":2,"camera":1}}',
     "bad_value", ["road_events has unknown kind(s) camera, jam", "known: crash, roadwork"]),
    ('{"provider":"2gis","score":6,"observed_at":"2026-10-01T12:00:00Z","road_events":[1,2]}',
     "bad_type", ["road_events must be an object of counts, got list"]),
    ('{"provider":["yandex"],"score":6,"observed_at":"2026-10-01T12:00:00Z"}', "bad_type",
     ["provider must be a string, got list"]),
    ('["yandex",6]', "bad_type", ["record 1: record must be a JSON object, got an array"]),
])
def test_score_bad_item_rejected_and_neighbours_kept(line: str, code: str, fragments: list[str]) -> None:
    payload = "\n".join([GOOD_SCORE, line, GOOD_SCORE.replace('"score":6', '"score":2')]).encode()
    parsed = parse_scores(payload)
    assert [r.score for r in parsed.records] == [6.0, 2.0]
    got_code, error = only_rejection(parsed)
    assert parsed.rejected[0].index == 1
    assert got_code == code
    for fragment in fragments:
        assert fragment in error
    assert parsed.rejected[0].raw == line.encode()


@pytest.mark.parametrize(("payload", "message"), [
    (b"", "payload is empty"),
    (b"   \n ", "payload is empty"),
    (b"provider,score\nyandex,5", "payload is neither JSON nor NDJSON"),
    (b"{not json", "payload is not JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_score_unreadable_payload_raises_payload_error(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_scores(payload)


# ---------------------------------------------------------------------------------------
# format "score-csv"


def expected_csv_fixture_records() -> list[TrafficScore]:
    t0 = utc(2026, 10, 1, 3, 0, 31, 112233)
    t1 = utc(2026, 10, 1, 3, 1, 28, 4518)
    t2 = utc(2026, 10, 1, 3, 2, 27, 950001)
    t4 = utc(2026, 10, 1, 3, 4, 31, 333895)
    src = "score-csv"
    return [
        TrafficScore(provider="yandex", score=7.0, observed_at=t0, trend=1, jam_km=96.8, source=src),
        TrafficScore(provider="2gis", score=7.0, observed_at=t0, source=src),
        TrafficScore(provider="2gis", score=8.0, observed_at=t1, source=src),
        TrafficScore(provider="2gis", score=8.0, observed_at=t2, source=src,
                     road_events={"crash": 74, "roadwork": 7, "restriction": 228, "comment": 11, "other": 1}),
        TrafficScore(provider="yandex", score=8.0, observed_at=t4, trend=0, source=src),
        TrafficScore(provider="2gis", score=8.0, observed_at=t4, source=src),
    ]


def test_score_csv_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    payload = fixture_bytes(FIX + "scores.csv")
    assert b"\r\n" in payload
    parsed = TrafficFeed.parse(payload, "score-csv")
    assert not parsed.rejected
    assert parsed.ignored == 1  # the row with neither score
    assert parsed.records == expected_csv_fixture_records()


def test_score_csv_lf_line_endings_parse_the_same(fixture_bytes: Callable[[str], bytes]) -> None:
    payload = fixture_bytes(FIX + "scores.csv").replace(b"\r\n", b"\n")
    assert parse_score_csv(payload).records == expected_csv_fixture_records()


def test_score_csv_road_events_ride_on_the_2gis_record_only() -> None:
    row = "2026-10-02T12:00:00+00:00,2026-10-02T17:00:00+05:00,6,-1,88.5,7,12,3,230,9,0"
    parsed = parse_score_csv(f"{CSV_HEADER}\r\n{row}\r\n".encode())
    yandex, dgis = parsed.records
    assert isinstance(yandex, TrafficScore) and isinstance(dgis, TrafficScore)
    assert (yandex.provider, yandex.score, yandex.trend, yandex.jam_km, yandex.road_events) == \
        ("yandex", 6.0, -1, 88.5, None)
    assert (dgis.provider, dgis.score, dgis.trend, dgis.jam_km) == ("2gis", 7.0, None, None)
    assert dgis.road_events == {"crash": 12, "roadwork": 3, "restriction": 230, "comment": 9, "other": 0}


def test_score_csv_row_without_scores_is_ignored_even_with_counters() -> None:
    rows = ["2026-10-02T12:00:00+00:00,2026-10-02T17:00:00+05:00,,,,,12,3,230,9,0",
            "2026-10-02T12:01:00+00:00,2026-10-02T17:01:00+05:00,,,,4,,,,,"]
    parsed = parse_score_csv("\r\n".join([CSV_HEADER, *rows]).encode())
    assert parsed.ignored == 1 and not parsed.rejected
    assert [(r.provider, r.score) for r in parsed.records] == [("2gis", 4.0)]


GOOD_ROW = "2026-10-01T04:00:00+00:00,2026-10-01T09:00:00+05:00,5,0,70.2,5,,,,,"


@pytest.mark.parametrize(("row", "code", "fragments"), [
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:02:00+05:00,5,0,,5,,,,,", "bad_time",
     ["row 1 (ts_utc='2026-10-01T04:01:00+00:00')",
      "ts_almaty 2026-10-01T09:02:00+05:00 is not the same instant as ts_utc 2026-10-01T04:01:00+00:00",
      "off by +60 s"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T04:01:00+06:00,5,0,,5,,,,,", "bad_time",
     ["is not the same instant", "off by -21600 s"]),
    ("2026-10-01T04:01:00,2026-10-01T09:01:00+05:00,5,0,,5,,,,,", "bad_time",
     ["ts_utc 2026-10-01T04:01:00 has no UTC offset"]),
    (",2026-10-01T09:01:00+05:00,5,0,,5,,,,,", "missing_field", ["row 1:", "ts_utc is missing"]),
    ("yesterday,2026-10-01T09:01:00+05:00,,,,5,,,,,", "bad_time", ["ts_utc is not an ISO 8601 time: 'yesterday'"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:01:00+05:00,11,0,,5,,,,,", "out_of_range",
     ["yandex_score is 11, above the maximum 10"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:01:00+05:00,,,,n/a,,,,,", "bad_type",
     ["dgis_score must be a number, got 'n/a'"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:01:00+05:00,,,,5,-3,0,0,0,0", "out_of_range",
     ["ev_crash is -3, outside 0..1000000"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:01:00+05:00,5,0,-2.5,5,,,,,", "out_of_range",
     ["yandex_jam_km is -2.5, below the minimum 0"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:01:00+05:00,5,0.5,,5,,,,,", "bad_type",
     ["yandex_trend must be a whole number, got 0.5"]),
    ("2026-10-01T04:01:00+00:00,2026-10-01T09:01:00+05:00,5,0,,5", "bad_csv",
     ["row 1: row has 6 cells, the header has 11"]),
])
def test_score_csv_bad_row_rejected_and_neighbours_kept(row: str, code: str, fragments: list[str]) -> None:
    payload = "\r\n".join([CSV_HEADER, GOOD_ROW, row, GOOD_ROW.replace("04:00", "04:02").replace("09:00", "09:02")])
    parsed = parse_score_csv(payload.encode())
    assert [(r.provider, r.observed_at.minute) for r in parsed.records] == \
        [("yandex", 0), ("2gis", 0), ("yandex", 2), ("2gis", 2)]
    got_code, error = only_rejection(parsed)
    assert parsed.rejected[0].index == 1
    assert got_code == code
    for fragment in fragments:
        assert fragment in error


def test_score_csv_without_ts_almaty_column_takes_ts_utc() -> None:
    parsed = parse_score_csv(b"ts_utc,yandex_score,dgis_score\n2026-10-01T04:00:00Z,3,\n")
    assert parsed.records == [TrafficScore(provider="yandex", score=3.0, observed_at=utc(2026, 10, 1, 4),
                                           source="score-csv")]


@pytest.mark.parametrize(("payload", "message"), [
    (b"ts_utc,ts_almaty,yandex_score\n2026-10-01T04:00:00Z,,3\n", "lacks column\\(s\\) dgis_score"),
    (b"", "no header row"),
    (b"\x00\x01\x02", "NUL bytes"),
])
def test_score_csv_unreadable_payload_raises_payload_error(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_score_csv(payload)


# ---------------------------------------------------------------------------------------
# format "fiware"

ABAY = ((76.9208, 43.2401), (76.9265, 43.2399), (76.9321, 43.2397))
ALFARABI = ((76.9001, 43.2185), (76.9070, 43.2176), (76.9140, 43.2168), (76.9210, 43.2160))


def abay_lane1(**changes: Any) -> TrafficFlow:
    fields: dict[str, Any] = dict(
        segment_id="TrafficFlowObserved-Almaty-osm-25948217:lane1", observed_from=utc(2026, 10, 1, 3),
        observed_at=utc(2026, 10, 1, 3, 5), lat=43.2399, lon=76.9265, speed_kmh=18.4, intensity=197.0,
        occupancy=0.76, lane_id=1, name="Abay Avenue", geometry=ABAY, source="fiware")
    fields.update(changes)
    return TrafficFlow(**fields)


def alfarabi_lane1() -> TrafficFlow:
    return TrafficFlow(
        segment_id="urn:ngsi-ld:RoadSegment:almaty-alfarabi-0031:lane1", observed_from=utc(2026, 10, 1, 12, 55),
        observed_at=utc(2026, 10, 1, 13), lat=43.2168, lon=76.9140, speed_kmh=38.5, free_flow_kmh=70.0,
        intensity=312.0, occupancy=0.41, congested=False, lane_id=1, name="Al-Farabi Avenue", geometry=ALFARABI,
        source="fiware")


def test_fiware_ngsi_v2_keyvalues_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    parsed = TrafficFeed.parse(fixture_bytes(FIX + "tfo_keyvalues_v2.json"), "fiware")
    assert not parsed.rejected and parsed.ignored == 0
    assert parsed.records == [
        # dateObserved "…T03:00:00/…T03:05:00" has no offset, so the dateObservedFrom/To (with Z) are used
        abay_lane1(),
        TrafficFlow(segment_id="TrafficFlowObserved-Almaty-detector-0412", observed_at=utc(2026, 10, 1, 3, 5),
                    lat=43.2473, lon=76.8512, speed_kmh=12.0, free_flow_kmh=55.0, congested=True,
                    name="Sain St / Tole Bi St, northbound", source="fiware"),
    ]


def test_fiware_ngsi_ld_keyvalues_fixture_lanes_are_separate_segments(fixture_bytes: Callable[[str], bytes]) -> None:
    parsed = parse_fiware(fixture_bytes(FIX + "tfo_keyvalues_ld.jsonld"))
    assert not parsed.rejected
    lane1, lane2 = parsed.records
    assert lane1 == alfarabi_lane1()
    assert lane2 == TrafficFlow(
        segment_id="urn:ngsi-ld:RoadSegment:almaty-alfarabi-0031:lane2", observed_from=utc(2026, 10, 1, 12, 55),
        observed_at=utc(2026, 10, 1, 13), lat=43.2168, lon=76.9140, speed_kmh=44.1, free_flow_kmh=70.0,
        intensity=288.0, lane_id=2, geometry=ALFARABI, source="fiware")
    assert lane1.entity_id != lane2.entity_id


def test_fiware_ngsi_v2_normalized_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    parsed = parse_fiware(fixture_bytes(FIX + "tfo_normalized_v2.json"))
    assert not parsed.rejected
    assert parsed.records == [abay_lane1(free_flow_kmh=60.0)]


def test_fiware_ngsi_ld_normalized_fixture_reads_like_keyvalues(fixture_bytes: Callable[[str], bytes]) -> None:
    parsed = parse_fiware(fixture_bytes(FIX + "tfo_normalized_ld.jsonld"))
    assert not parsed.rejected
    assert parsed.records == [alfarabi_lane1()]


def test_fiware_notification_and_ndjson(fixture_bytes: Callable[[str], bytes]) -> None:
    entities = json.loads(fixture_bytes(FIX + "tfo_keyvalues_v2.json"))
    notification = json.dumps({"subscriptionId": "5a1b2c", "data": entities}).encode()
    ndjson = "\n".join(json.dumps(e) for e in entities).encode()
    expected = parse_fiware(fixture_bytes(FIX + "tfo_keyvalues_v2.json")).records
    assert len(expected) == 2
    assert parse_fiware(notification).records == expected
    assert parse_fiware(ndjson).records == expected


def kv_entity(**changes: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": "tfo-1", "type": "TrafficFlowObserved",
        "location": {"type": "LineString", "coordinates": [list(p) for p in ABAY]},
        "dateObserved": "2026-10-01T03:00:00Z/2026-10-01T03:05:00Z", "averageVehicleSpeed": 30,
    }
    for key, value in changes.items():
        if value is None:
            entity.pop(key, None)
        else:
            entity[key] = value
    return entity


def parse_one(entity: Any) -> Parsed:
    return parse_fiware(json.dumps(entity).encode())


def test_fiware_expanded_type_uri_point_and_single_instant() -> None:
    entity = kv_entity(type="https://smartdatamodels.org/dataModel.Transportation/TrafficFlowObserved",
                       location={"type": "Point", "coordinates": [76.95, 43.25, 812.0]},
                       dateObserved="2026-10-01T08:05:00+05:00", refRoadSegment="RoadSegment-7")
    (record,) = parse_one(entity).records
    assert record == TrafficFlow(segment_id="RoadSegment-7", observed_at=utc(2026, 10, 1, 3, 5), lat=43.25, lon=76.95,
                                 speed_kmh=30.0, source="fiware")


def test_fiware_geo_point_text_and_unit_codes() -> None:
    v2 = kv_entity(location={"type": "geo:point", "value": "43.25, 76.95"},
                   averageVehicleSpeed={"type": "Number", "value": 10,
                                        "metadata": {"unitCode": {"type": "Text", "value": "MTS"}}})
    (record,) = parse_one(v2).records
    assert (record.lat, record.lon, record.geometry) == (43.25, 76.95, None)
    assert record.speed_kmh == pytest.approx(36.0)
    ld = kv_entity(averageVehicleSpeed={"type": "Property", "value": 25, "unitCode": "HM"},
                   freeFlowSpeed={"type": "Property", "value": 60, "unitCode": "KMH"})
    (record,) = parse_one(ld).records
    assert record.speed_kmh == pytest.approx(40.2336)
    assert record.free_flow_kmh == 60.0


def test_fiware_date_observed_from_to_fill_a_missing_interval_end() -> None:
    entity = kv_entity(dateObserved=None, dateObservedFrom="2026-10-01T02:55:00Z",
                       dateObservedTo={"@type": "DateTime", "@value": "2026-10-01T08:00:00+05:00"})
    (record,) = parse_one(entity).records
    assert (record.observed_from, record.observed_at) == (utc(2026, 10, 1, 2, 55), utc(2026, 10, 1, 3))


@pytest.mark.parametrize(("changes", "code", "fragments"), [
    ({"type": "ParkingSpot"}, "wrong_type",
     ["entity 1 (id='tfo-1')", "type is 'ParkingSpot'; this format reads TrafficFlowObserved entities only"]),
    ({"type": None}, "missing_field", ["type is missing; expected TrafficFlowObserved"]),
    ({"id": None}, "missing_field", ["entity 1:", "id is missing"]),
    ({"averageVehicleSpeed": -3}, "out_of_range", ["averageVehicleSpeed is -3, below the minimum 0"]),
    ({"averageVehicleSpeed": {"type": "Property", "value": 30, "unitCode": "KNT"}}, "bad_unit",
     ["averageVehicleSpeed unitCode 'KNT' is not a speed unit we know"]),
    ({"averageVehicleSpeed": {"value": 100, "unitCode": "MTS"}}, "out_of_range",
     ["averageVehicleSpeed is 360, above the maximum 300"]),
    ({"freeFlowSpeed": 0}, "out_of_range", ["freeFlowSpeed is 0, below the minimum 0.1"]),
    ({"location": {"type": "Point", "coordinates": [76.9, 95]}}, "out_of_range",
     ["location.coordinates: lat is 95, above the maximum 90"]),
    ({"location": {"type": "LineString", "coordinates": [[76.92, 43.24], [76.93, 43.24], [200, 43.2]]}},
     "out_of_range", ["location.coordinates[2]: lon is 200, above the maximum 180"]),
    ({"location": {"type": "LineString", "coordinates": [[76.92, 43.24]]}}, "bad_value",
     ["at least 2 [lon, lat] positions"]),
    ({"location": {"type": "LineString", "coordinates": [[76.92, 43.24], [76.93]]}}, "bad_value",
     ["location.coordinates[1] must be a [lon, lat] position"]),
    ({"location": {"type": "Polygon", "coordinates": []}}, "bad_value",
     ["location type 'Polygon' is not supported; expected LineString or Point"]),
    ({"location": None}, "missing_field", ["location is missing"]),
    ({"location": [76.9, 43.2]}, "bad_type", ["location must be a GeoJSON object, got list"]),
    ({"occupancy": 76}, "out_of_range", ["occupancy is 76, above the maximum 1", "divide a percentage by 100"]),
    ({"intensity": -1}, "out_of_range", ["intensity is -1, below the minimum 0"]),
    ({"congested": "yes"}, "bad_type", ["congested must be true or false, got 'yes'"]),
    ({"laneId": -1}, "out_of_range", ["laneId is -1, outside 0..999"]),
    ({"laneId": "left"}, "bad_type", ["laneId must be a number, got 'left'"]),
    ({"dateObserved": "2026-10-01T03:00:00/2026-10-01T03:05:00"}, "bad_time",
     ["dateObserved 2026-10-01T03:00:00 has no UTC offset"]),
    ({"dateObserved": None}, "missing_field", ["dateObserved is missing"]),
    ({"dateObserved": "2026-10-01T03:10:00Z/2026-10-01T03:05:00Z"}, "bad_time",
     ["dateObservedFrom is after dateObservedTo"]),
    ({"dateObserved": "2026-10-01T03:00:00Z/PT5M"}, "bad_time", ["dateObserved is not an ISO 8601 time: 'PT5M'"]),
    ({"averageVehicleSpeed": None}, "missing_field", ["no measurement"]),
    ({"refRoadSegment": ["a", "b"]}, "bad_type", ["refRoadSegment must be a string, got list"]),
    ({"name": {"en": "Abay"}}, "bad_type", ["name must be a string, got dict"]),
])
def test_fiware_bad_entity_rejected_and_neighbours_kept(changes: dict[str, Any], code: str,
                                                       fragments: list[str]) -> None:
    payload = json.dumps([kv_entity(id="tfo-0"), kv_entity(**changes), kv_entity(id="tfo-2")]).encode()
    parsed = parse_fiware(payload)
    assert [r.segment_id for r in parsed.records] == ["tfo-0", "tfo-2"]  # type: ignore[attr-defined]
    got_code, error = only_rejection(parsed)
    assert parsed.rejected[0].index == 1
    assert got_code == code, error
    for fragment in fragments:
        assert fragment in error


def test_fiware_non_object_item_and_bad_ndjson_line() -> None:
    good = json.dumps(kv_entity())
    parsed = parse_fiware(f'{good}\n"just text"\n{{"id": "x", \n{good}'.encode())
    assert len(parsed.records) == 2
    assert [(r.index, r.code) for r in parsed.rejected] == [(1, "bad_type"), (2, "bad_json")]
    assert "entity 1: entity must be a JSON object, got a string" in parsed.rejected[0].error
    assert parsed.rejected[1].error.startswith("entity 2: ")


# ---------------------------------------------------------------------------------------
# properties: garbage in, only PayloadError out, every item accounted for

PARSERS = (parse_scores, parse_score_csv, parse_fiware)

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=16,
)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def json_item_count(payload: bytes, unwrap: tuple[str, ...] = ()) -> int:
    """Oracle: the number of items the json_items contract says a readable payload holds."""
    text = payload.decode("utf-8-sig").strip()
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return len([line for line in text.splitlines() if line.strip()])
    if isinstance(value, dict):
        for key in unwrap:
            if isinstance(value.get(key), list):
                value = value[key]
                break
    return len(value) if isinstance(value, list) else 1


def check_invariants(parse: Callable[[bytes], Parsed], payload: bytes, items: int | None) -> Parsed | None:
    """Parse; only PayloadError may escape; every rejection explains itself; counts add up."""
    try:
        parsed = parse(payload)
    except PayloadError as err:
        assert str(err) and err.code
        return None
    for rejected in parsed.rejected:
        assert rejected.error and rejected.code
    for record in parsed.records:
        assert isinstance(record, TrafficScore | TrafficFlow)
        assert record.observed_at.utcoffset() == timedelta(0)
        json.loads(record.to_json())
    if items is not None:
        assert len(parsed.records) + len(parsed.rejected) + parsed.ignored == items
    return parsed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_property_arbitrary_bytes(payload: bytes) -> None:
    for parse in PARSERS:
        parsed = check_invariants(parse, payload, None)
        if parsed is not None and parse is not parse_score_csv:
            unwrap = ("data",) if parse is parse_fiware else ()
            assert len(parsed.records) + len(parsed.rejected) + parsed.ignored == json_item_count(payload, unwrap)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_property_arbitrary_json_values(value: Any) -> None:
    payload = json.dumps(value).encode()
    check_invariants(parse_scores, payload, json_item_count(payload))
    check_invariants(parse_fiware, payload, json_item_count(payload, ("data",)))
    check_invariants(parse_score_csv, payload, None)


DELETE = object()


def mutations(base: dict[str, Any], values: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid ``base`` item with any subset of its keys replaced by ``values[key]`` or deleted,
    so generated items reach every check rather than failing at the first missing field."""

    def apply(changes: dict[str, Any]) -> dict[str, Any]:
        item = dict(base)
        for key, value in changes.items():
            if value is DELETE:
                item.pop(key, None)
            else:
                item[key] = value
        return item

    optional = {key: strategy | st.just(DELETE) for key, strategy in values.items()}
    return st.builds(apply, st.fixed_dictionaries({}, optional=optional))


times = st.sampled_from(["2026-10-01T03:00:00Z", "2026-10-01T08:00:00+05:00", "2026-10-01T03:00:00",
                         "2026-10-01T03:00:00Z/2026-10-01T03:05:00Z", 1790881228, -1e11, 1e13])
score_dicts = mutations(
    {"provider": "yandex", "score": 5, "observed_at": "2026-10-01T03:00:00Z", "trend": 0, "jam_km": 80.5,
     "road_events": {"crash": 1, "roadwork": 2, "restriction": 3, "comment": 4, "other": 5}},
    {
        "provider": st.sampled_from(["yandex", "2gis", ""]) | json_values,
        "score": st.floats(-2, 12) | json_values,
        "observed_at": times | json_values,
        "area_id": json_values,
        "trend": st.integers(-12, 12) | json_values,
        "jam_km": json_values,
        "road_events": st.dictionaries(st.sampled_from(["crash", "roadwork", "restriction", "comment", "other", "x"]),
                                       st.integers(-2, 5) | json_values, max_size=5) | json_values,
    })
positions = st.lists(st.floats(-200, 200) | json_values, min_size=0, max_size=3)
locations = st.fixed_dictionaries({"type": st.sampled_from(["LineString", "Point", "Polygon", "geo:json"]),
                                   "coordinates": st.lists(positions, max_size=4) | positions | json_values})
normalized = st.builds(lambda v: {"type": "Property", "value": v}, json_values)
flow_dicts = mutations(
    {"id": "tfo-1", "type": "TrafficFlowObserved", "laneId": 2, "refRoadSegment": "road-1", "name": "Abay Avenue",
     "location": {"type": "LineString", "coordinates": [list(p) for p in ABAY]},
     "dateObserved": "2026-10-01T03:00:00Z/2026-10-01T03:05:00Z", "averageVehicleSpeed": 30, "freeFlowSpeed": 60,
     "intensity": 120, "occupancy": 0.3, "congested": False},
    {
        "id": json_values,
        "type": st.sampled_from(["ParkingSpot", "urn:x:TrafficFlowObserved"]) | json_values,
        "dateObserved": times | json_values | normalized,
        "dateObservedFrom": times | json_values,
        "dateObservedTo": times | json_values,
        "location": locations | json_values | normalized,
        "averageVehicleSpeed": st.floats(-5, 400) | json_values | normalized,
        "freeFlowSpeed": json_values,
        "intensity": json_values,
        "occupancy": st.floats(-1, 2) | json_values,
        "congested": json_values,
        "laneId": st.integers(-2, 5) | json_values,
        "refRoadSegment": json_values | normalized,
        "name": json_values,
        "address": json_values,
    })


@settings(max_examples=200, deadline=None)
@given(st.lists(score_dicts, max_size=5), st.booleans())
def test_property_score_dicts_with_arbitrary_values(items: list[dict[str, Any]], ndjson: bool) -> None:
    payload = ("\n".join(json.dumps(i) for i in items) if ndjson and len(items) > 1 else json.dumps(items)).encode()
    check_invariants(parse_scores, payload, len(items))


@settings(max_examples=200, deadline=None)
@given(st.lists(flow_dicts, max_size=5), st.booleans())
def test_property_fiware_dicts_with_arbitrary_values(items: list[dict[str, Any]], ndjson: bool) -> None:
    payload = ("\n".join(json.dumps(i) for i in items) if ndjson and len(items) > 1 else json.dumps(items)).encode()
    check_invariants(parse_fiware, payload, len(items))


# Cells avoid NUL (a binary payload, PayloadError) and the characters str.splitlines() treats as
# line breaks but CSV does not (\v \f \x1c-\x1e \x85 \u2028 \u2029): csv_items splits on them.
cell_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                    max_size=12)
CSV_VALID_ROW = ("2026-10-01T03:00:00+00:00", "2026-10-01T08:00:00+05:00", "7", "1", "96.8", "8",
                 "74", "7", "228", "11", "1")
csv_cells = st.builds(
    lambda changes: tuple(changes.get(i, cell) for i, cell in enumerate(CSV_VALID_ROW)),
    st.dictionaries(st.integers(0, len(CSV_VALID_ROW) - 1),
                    st.sampled_from(["", "0", "10", "11", "-1", "2.5", "2026-10-01T08:01:00+05:00",
                                     "2026-10-01T03:00:00"]) | cell_text,
                    max_size=len(CSV_VALID_ROW)),
)


def _csv_payload(rows: list[tuple[str, ...]]) -> bytes:
    out = io.StringIO()
    out.write(CSV_HEADER + "\r\n")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(csv_cells, max_size=6))
def test_property_score_csv_rows_with_arbitrary_cells(rows: list[tuple[str, ...]]) -> None:
    whole = check_invariants(parse_score_csv, _csv_payload(rows), None)
    assert whole is not None
    totals = [0, 0, 0]
    for row in rows:
        one = check_invariants(parse_score_csv, _csv_payload([row]), None)
        assert one is not None
        outcome = (len(one.records), len(one.rejected), one.ignored)
        # each row is exactly one of: 1-2 records, one rejection, ignored (or skipped when all blank)
        assert outcome in {(1, 0, 0), (2, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)}
        if outcome == (0, 0, 0):
            assert not any(cell.strip() for cell in row)
        totals = [t + n for t, n in zip(totals, outcome, strict=True)]
    assert [len(whole.records), len(whole.rejected), whole.ignored] == totals


# ---------------------------------------------------------------------------------------
# the real Almaty week (github.com/Dex719/almaty-traffic-data, CC BY 4.0)

WEEKDAYS = {1, 2, 5, 6, 7}  # October 2026: Thu 1, Fri 2, Mon 5, Tue 6, Wed 7; Sat 3 and Sun 4 are the weekend


@pytest.mark.shared_data
def test_real_almaty_week_of_scores() -> None:
    path = shared_path("almaty/traffic_scores_2026-10-01_07.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    n_yandex = sum(1 for r in rows if r["yandex_score"].strip())
    n_dgis = sum(1 for r in rows if r["dgis_score"].strip())
    n_neither = sum(1 for r in rows if not r["yandex_score"].strip() and not r["dgis_score"].strip())
    n_counters = sum(1 for r in rows if r["ev_crash"].strip())

    parsed = parse_score_csv(path.read_bytes())

    assert parsed.rejected == []
    assert parsed.ignored == n_neither
    yandex = [r for r in parsed.records if isinstance(r, TrafficScore) and r.provider == "yandex"]
    dgis = [r for r in parsed.records if isinstance(r, TrafficScore) and r.provider == "2gis"]
    assert len(yandex) == n_yandex and len(dgis) == n_dgis
    assert len(yandex) + len(dgis) == len(parsed.records)
    assert (len(rows), n_yandex, n_dgis) == (8654, 2167, 8654)  # the README's row count; 2GIS fills every row
    # values and instants match the columns, read independently
    assert [r.score for r in yandex] == [float(r["yandex_score"]) for r in rows if r["yandex_score"].strip()]
    assert [r.jam_km for r in yandex if r.jam_km is not None] == \
        [float(r["yandex_jam_km"]) for r in rows if r["yandex_jam_km"].strip()]
    assert [r.observed_at for r in dgis] == [datetime.fromisoformat(r["ts_almaty"]) for r in rows]
    # every filled counter row is kept, on the 2GIS record of that row
    assert sum(1 for r in dgis if r.road_events) == n_counters
    assert all(r.road_events is None for r in yandex)

    by_hour: dict[int, list[float]] = defaultdict(list)
    weekend_morning: list[float] = []
    for record in yandex:
        local = record.observed_at.astimezone(ALMATY)
        if local.day in WEEKDAYS:
            by_hour[local.hour].append(record.score)
        elif 7 <= local.hour <= 9:
            weekend_morning.append(record.score)
    mean = {hour: sum(v) / len(v) for hour, v in by_hour.items()}
    assert sorted(mean) == list(range(24))
    morning_peak = max(range(5, 13), key=mean.__getitem__)
    evening_peak = max(range(13, 24), key=mean.__getitem__)
    assert morning_peak in (7, 8, 9) and 6.0 <= mean[morning_peak] <= 8.5, mean
    assert evening_peak in (17, 18, 19) and 7.0 <= mean[evening_peak] <= 9.0, mean
    assert all(mean[h] < 0.5 for h in range(1, 6)), mean
    assert max(mean.values()) == mean[evening_peak]
    # the same profile from the ts_almaty text (no time-zone code at all)
    text_hours: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["yandex_score"].strip() and int(r["ts_almaty"][8:10]) in WEEKDAYS:
            text_hours[int(r["ts_almaty"][11:13])].append(float(r["yandex_score"]))
    assert {h: sum(v) / len(v) for h, v in text_hours.items()} == pytest.approx(mean)
    # no morning rush at the weekend
    assert sum(weekend_morning) / len(weekend_morning) < 2.0
