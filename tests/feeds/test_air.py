"""Tests of the air-quality adapter: flat JSON, OpenAQ v3 bundles and the Kazhydromet CSV."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.schemas import AirReading, record_from_dict
from core.units import Pollutant
from feeds import air
from feeds.air import AirFeed, parse_flat, parse_kgmt_csv, parse_openaq
from feeds.base import Parsed
from tests.conftest import FIXTURES, shared_path

NO2_PPB_PER_UGM3 = 24.45 / 46.0055
SO2_PPB_PER_UGM3 = 24.45 / 64.066
CO_PPM_PER_MGM3 = 24.45 / 28.010
T_15Z = datetime(2025, 1, 15, 15, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / "feeds" / "air" / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture(name))


def dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def by_key(parsed: Parsed) -> dict[tuple[str, str], AirReading]:
    out = {}
    for r in parsed.records:
        assert isinstance(r, AirReading)
        out[(r.station_id, r.parameter.value)] = r
    return out


def only_error(parsed: Parsed) -> str:
    assert len(parsed.rejected) == 1, [r.error for r in parsed.rejected]
    return parsed.rejected[0].error


# ---------------------------------------------------------------------------------------
# the adapter


def test_adapter_declares_name_cadence_and_formats_in_order():
    assert AirFeed.name == "air"
    assert AirFeed.title == "Air quality"
    assert AirFeed.expected_cadence_s == 3600
    assert [f.name for f in AirFeed.formats] == ["flat", "openaq", "kgmt-csv"]
    assert [f.parse for f in AirFeed.formats] == [parse_flat, parse_openaq, parse_kgmt_csv]
    assert AirFeed.format().name == "flat"
    assert AirFeed.format(content_type="application/x-ndjson; charset=utf-8").name == "flat"
    assert AirFeed.format(content_type="application/json").name == "flat"
    assert AirFeed.format(content_type="text/csv").name == "kgmt-csv"
    assert all(f.description for f in AirFeed.formats)


# ---------------------------------------------------------------------------------------
# flat


def test_flat_fixture_parses_to_canonical_units_in_utc():
    parsed = parse_flat(fixture("flat.json"))
    assert parsed.rejected == []
    assert parsed.ignored == 1  # the temperature item
    got = by_key(parsed)
    assert len(parsed.records) == 6

    pm25 = got[("almaty-01", "pm25")]
    assert (pm25.value, pm25.unit, pm25.raw_value, pm25.raw_unit) == (87.4, "ug/m3", 87.4, "µg/m³")
    assert pm25.observed_at == T_15Z and pm25.observed_at.tzinfo is UTC
    assert (pm25.lat, pm25.lon, pm25.station_name, pm25.averaging_s) == (43.2655, 76.8903, "Ainabulak", 3600)

    pm10 = got[("almaty-01", "pm10")]
    assert pm10.value == pytest.approx(125.0) and pm10.unit == "ug/m3"
    assert (pm10.raw_value, pm10.raw_unit) == (0.125, "mg/m3")

    no2 = got[("almaty-02", "no2")]  # µg/m³ -> ppb, epoch seconds
    assert no2.value == pytest.approx(92.0 * NO2_PPB_PER_UGM3, rel=1e-12) and no2.unit == "ppb"
    assert no2.value == pytest.approx(48.894154, abs=1e-6)
    assert no2.observed_at == T_15Z and no2.station_name is None

    so2 = got[("almaty-02", "so2")]  # epoch milliseconds
    assert (so2.value, so2.unit, so2.observed_at) == (12.0, "ppb", T_15Z)

    co = got[("almaty-03", "co")]  # space instead of T, +05:00 offset
    assert (co.value, co.unit, co.averaging_s, co.observed_at) == (2.1, "ppm", 28800, T_15Z)

    o3 = got[("almaty-03", "o3")]  # "ozone" spelled out, ppb -> ppm
    assert o3.value == pytest.approx(0.038) and o3.unit == "ppm" and o3.raw_unit == "ppb"


def test_flat_ndjson_fixture():
    parsed = parse_flat(fixture("flat.ndjson"))
    assert (len(parsed.records), parsed.rejected, parsed.ignored) == (3, [], 0)
    no2 = by_key(parsed)[("almaty-02", "no2")]
    assert no2.value == pytest.approx(61.0) and no2.unit == "ppb"
    assert no2.observed_at == datetime(2025, 1, 15, 16, 0, tzinfo=UTC)


def test_flat_single_object_and_record_round_trip():
    item = json.loads(fixture("flat.json"))[0]
    parsed = parse_flat(dumps(item))
    assert len(parsed.records) == 1
    record = parsed.records[0]
    assert record_from_dict("air", record.to_dict()) == record
    assert record.entity_id == "almaty-01:pm25"


VALID = {"station_id": "ok-1", "lat": 43.25, "lon": 76.95, "parameter": "pm10", "value": 80.0, "unit": "ug/m3",
         "observed_at": "2025-01-15T15:00:00Z"}


@pytest.mark.parametrize(("change", "message", "code"), [
    ({"value": -5}, "value is -5: a concentration cannot be negative", "out_of_range"),
    ({"value": "lots"}, "value must be a number, got 'lots'", "bad_type"),
    ({"value": True}, "value must be a number, got a boolean", "bad_type"),
    ({"value": None}, "value is missing", "missing_field"),
    ({"value": 0.005, "unit": "mg/m3", "parameter": "pm25"}, None, None),
    ({"value": 7000.0}, "value is 7000, above the maximum 6000", "out_of_range"),
    ({"lat": 95}, "lat is 95, above the maximum 90", "out_of_range"),
    ({"lon": "east"}, "lon must be a number, got 'east'", "bad_type"),
    ({"lat": None}, "lat is missing", "missing_field"),
    ({"observed_at": "2025-01-15T15:00:00"}, "observed_at 2025-01-15T15:00:00 has no UTC offset", "bad_time"),
    ({"observed_at": "yesterday"}, "observed_at is not an ISO 8601 time: 'yesterday'", "bad_time"),
    ({"observed_at": None}, "observed_at is missing", "missing_field"),
    ({"parameter": "pm7"}, "parameter 'pm7' is not one of", "bad_value"),
    ({"parameter": None}, "parameter is missing", "missing_field"),
    ({"parameter": 10}, "parameter must be a string, got int", "bad_type"),
    ({"unit": "furlongs"}, "unit 'furlongs' is not one of µg/m³, mg/m³, ppm, ppb", "bad_unit"),
    ({"unit": None}, "unit is missing", "missing_field"),
    ({"unit": "ppm"}, "pm10 cannot be given in ppm; use µg/m³ or mg/m³", "bad_unit"),
    ({"averaging_s": 0}, "averaging_s is 0, outside 1..", "out_of_range"),
    ({"averaging_s": "hourly"}, "averaging_s must be a number, got 'hourly'", "bad_type"),
    ({"station_name": ["x"]}, "station_name must be a string, got list", "bad_type"),
])
def test_flat_bad_item_is_rejected_and_neighbours_kept(change, message, code):
    bad = {**VALID, "station_id": "bad-1", **change}
    parsed = parse_flat(dumps([VALID, bad, {**VALID, "station_id": "ok-2"}]))
    if message is None:  # a control: the change is valid
        assert len(parsed.records) == 3 and parsed.rejected == []
        return
    assert sorted(r.station_id for r in parsed.records) == ["ok-1", "ok-2"]
    rejected = parsed.rejected[0]
    assert rejected.error.startswith("record 1 (station_id='bad-1'): ")
    assert message in only_error(parsed)
    assert rejected.index == 1 and json.loads(rejected.raw)["station_id"] == "bad-1"
    if code:
        assert rejected.code == code


def test_flat_missing_station_id_and_non_object_items():
    no_id = {k: v for k, v in VALID.items() if k != "station_id"}
    parsed = parse_flat(dumps([no_id, [1, 2], "pm10", VALID]))
    assert len(parsed.records) == 1
    errors = [r.error for r in parsed.rejected]
    assert errors == ["record 0: station_id is missing",
                      "record 1: record must be a JSON object, got an array",
                      "record 2: record must be a JSON object, got a string"]


def test_flat_malformed_ndjson_line_is_rejected_and_others_kept():
    lines = [json.dumps(VALID), '{"station_id": "x", "value": ', json.dumps({**VALID, "station_id": "ok-2"})]
    parsed = parse_flat("\n".join(lines).encode())
    assert [r.station_id for r in parsed.records] == ["ok-1", "ok-2"]
    assert parsed.rejected[0].code == "bad_json" and parsed.rejected[0].error.startswith("record 1: ")
    assert parsed.rejected[0].raw == lines[1].encode()


def test_flat_known_non_pollutants_are_ignored_not_rejected():
    items = [{**VALID, "parameter": p, "unit": "ppm"} for p in ("no", "NOx", "pm1", "relativehumidity")]
    parsed = parse_flat(dumps(items + [VALID]))
    assert (len(parsed.records), len(parsed.rejected), parsed.ignored) == (1, 0, 4)


def test_flat_unreadable_payloads_raise_payload_error():
    for payload, text in [(b"", "empty"), (b"\xff\xfe\x00", "not UTF-8"), (b"{not json", "not JSON"),
                          (b"{\n[\n", "neither JSON nor NDJSON")]:
        with pytest.raises(PayloadError, match=text):
            parse_flat(payload)


def test_flat_string_fields_are_normalised():
    item = {**VALID, "station_id": 42, "lat": "43.25", "lon": "76.95", "value": "80", "station_name": "  Orbita ",
            "averaging_s": "1800", "source": "partner-x"}
    record = parse_flat(dumps(item)).records[0]
    assert (record.station_id, record.lat, record.lon, record.value) == ("42", 43.25, 76.95, 80.0)
    assert (record.station_name, record.averaging_s, record.source) == ("Orbita", 1800, "partner-x")


# ---------------------------------------------------------------------------------------
# openaq


def test_openaq_latest_bundle_resolves_parameters_through_sensors():
    parsed = parse_openaq(fixture("openaq_latest_bundle.json"))
    assert parsed.rejected == []
    assert parsed.ignored == 1  # the temperature sensor
    got = by_key(parsed)
    assert set(got) == {("openaq-3090001", p) for p in ("pm25", "pm10", "no2", "co")}
    for r in parsed.records:
        assert (r.observed_at, r.lat, r.lon, r.averaging_s) == (T_15Z, 43.2091, 76.8734, 3600)
        assert (r.station_name, r.source) == ("Almaty - Orbita", "openaq")
    assert (got[("openaq-3090001", "pm25")].value, got[("openaq-3090001", "pm25")].raw_unit) == (61.3, "µg/m³")
    no2 = got[("openaq-3090001", "no2")]
    assert no2.value == pytest.approx(41.0) and no2.unit == "ppb" and (no2.raw_value, no2.raw_unit) == (0.041, "ppm")
    assert got[("openaq-3090001", "co")].value == 1.7 and got[("openaq-3090001", "co")].unit == "ppm"


def test_openaq_hours_bundle_uses_the_end_of_the_period():
    parsed = parse_openaq(fixture("openaq_hours_bundle.json"))
    assert (len(parsed.records), parsed.rejected, parsed.ignored) == (3, [], 0)
    assert [(r.observed_at, r.value, r.averaging_s) for r in parsed.records] == [
        (datetime(2025, 1, 15, 13, tzinfo=UTC), 44.5, 3600),
        (datetime(2025, 1, 15, 14, tzinfo=UTC), 52.0, 3600),
        (T_15Z, 61.3, 3600),
    ]
    r = parsed.records[0]
    assert (r.station_id, r.station_name, r.lat, r.lon, r.parameter) == (
        "openaq-3090001", "Almaty - Orbita", 43.2091, 76.8734, Pollutant.PM25)


def test_openaq_measurements_bundle_without_location_is_keyed_by_sensor():
    bundle = fixture_json("openaq_hours_bundle.json")
    del bundle["location"]
    parsed = parse_openaq(dumps(bundle))
    assert len(parsed.records) == 3 and parsed.rejected == []
    r = parsed.records[0]
    assert (r.station_id, r.station_name, r.lat, r.lon) == ("openaq-sensor-9100001", None, 43.2091, 76.8734)


def test_openaq_measurements_bundle_takes_parameter_from_sensor_when_result_lacks_it():
    bundle = fixture_json("openaq_hours_bundle.json")
    for result in bundle["measurements"]["results"]:
        del result["parameter"]
    bundle["sensor"] = bundle["sensor"]["results"][0]  # the sensor object itself, not the response
    parsed = parse_openaq(dumps(bundle))
    assert [r.parameter for r in parsed.records] == [Pollutant.PM25] * 3


def test_openaq_period_without_datetime_from_uses_the_interval():
    bundle = fixture_json("openaq_hours_bundle.json")
    bundle["measurements"]["results"][0]["period"]["datetimeFrom"] = None
    bundle["measurements"]["results"][0]["period"]["interval"] = "24:00:00"
    parsed = parse_openaq(dumps(bundle))
    assert [r.averaging_s for r in parsed.records] == [86400, 3600, 3600]


def test_openaq_enriched_bare_response_is_read_directly():
    parsed = parse_openaq(fixture("openaq_measurements_enriched.json"))
    assert parsed.rejected == []
    assert [(r.station_id, r.value, r.lat, r.lon, r.averaging_s, r.observed_at) for r in parsed.records] == [
        ("openaq-3090002", 131.0, 43.238, 76.945, 600, datetime(2025, 1, 15, 14, 50, tzinfo=UTC)),
        ("openaq-3090002", 118.0, 43.2402, 76.9511, 600, T_15Z),
    ]


def test_openaq_bare_latest_response_is_rejected_with_the_bundle_to_use():
    latest = fixture_json("openaq_latest_bundle.json")["latest"]
    parsed = parse_openaq(dumps(latest))
    assert parsed.records == [] and len(parsed.rejected) == 5
    error = parsed.rejected[0].error
    assert error.startswith("result 0 (sensorsId='9100001'): an OpenAQ result without parameter cannot be placed")
    assert '{"location": <GET /v3/locations/{id} result>, "latest":' in error
    assert parsed.rejected[4].index == 4 and parsed.rejected[0].code == "missing_field"


def test_openaq_bare_measurements_response_is_rejected_with_the_bundle_to_use():
    hours = fixture_json("openaq_hours_bundle.json")["measurements"]
    parsed = parse_openaq(dumps(hours))
    assert parsed.records == [] and len(parsed.rejected) == 3
    error = parsed.rejected[1].error
    assert error.startswith("result 1: an OpenAQ result without coordinates, locationsId/sensorsId cannot be placed")
    assert '{"sensor": <GET /v3/sensors/{id} result>' in error and '"measurements":' in error


def test_openaq_array_and_ndjson_of_bundles_number_results_across_the_payload():
    latest, hours = fixture_json("openaq_latest_bundle.json"), fixture_json("openaq_hours_bundle.json")
    hours["measurements"]["results"][2]["value"] = -1
    for payload in (dumps([latest, hours]), (json.dumps(latest) + "\n" + json.dumps(hours)).encode()):
        parsed = parse_openaq(payload)
        assert (len(parsed.records), parsed.ignored, len(parsed.rejected)) == (6, 1, 1)
        assert parsed.rejected[0].index == 7
        assert parsed.rejected[0].error == "result 7: value is -1: a concentration cannot be negative"
        assert json.loads(parsed.rejected[0].raw)["period"]["datetimeTo"]["utc"] == "2025-01-15T15:00:00Z"


def test_openaq_location_may_be_sent_as_its_one_result_response():
    bundle = fixture_json("openaq_latest_bundle.json")
    bundle["location"] = {"meta": {"name": "openaq-api", "found": 1}, "results": [bundle["location"]]}
    assert len(parse_openaq(dumps(bundle)).records) == 4
    bundle["location"]["results"].append(bundle["location"]["results"][0])
    parsed = parse_openaq(dumps(bundle))
    assert parsed.records == [] and len(parsed.rejected) == 5
    assert "bundle: location response must hold exactly one result, it holds 2" in parsed.rejected[0].error


def _latest_with(change: dict, index: int = 1) -> Parsed:
    bundle = fixture_json("openaq_latest_bundle.json")
    bundle["latest"]["results"][index].update(change)
    return parse_openaq(dumps(bundle))


@pytest.mark.parametrize(("change", "message"), [
    ({"sensorsId": 777}, "sensorsId 777 is not one of the sensors of location 3090001 (9100001, 9100002"),
    ({"sensorsId": None}, "sensorsId is missing"),
    ({"locationsId": 55}, "locationsId 55 is not the bundle's location 3090001"),
    ({"value": -3.5}, "value is -3.5: a concentration cannot be negative"),
    ({"value": "high"}, "value must be a number, got 'high'"),
    ({"datetime": {"utc": "2025-01-15T15:00:00", "local": "2025-01-15T20:00:00"}},
     "datetime.utc 2025-01-15T15:00:00 has no UTC offset"),
    ({"datetime": None}, "datetime is missing"),
    ({"coordinates": {"latitude": 95, "longitude": 76.8}}, "coordinates.latitude is 95, above the maximum 90"),
])
def test_openaq_bad_latest_result_is_rejected_and_neighbours_kept(change, message):
    parsed = _latest_with(change)
    assert len(parsed.records) == 3 and parsed.ignored == 1
    error = only_error(parsed)
    assert error.startswith("result 1")
    assert message in error
    assert parsed.rejected[0].index == 1


def test_openaq_latest_result_without_coordinates_uses_the_location():
    parsed = _latest_with({"coordinates": None}, index=0)
    assert len(parsed.records) == 4
    assert (parsed.records[0].lat, parsed.records[0].lon) == (43.2091, 76.8734)


def _hours_with(change: dict, index: int = 1) -> Parsed:
    bundle = fixture_json("openaq_hours_bundle.json")
    bundle["measurements"]["results"][index].update(change)
    return parse_openaq(dumps(bundle))


def _period(start: str, end: str) -> dict:
    return {"label": "1hour", "interval": "01:00:00", "datetimeFrom": {"utc": start, "local": start},
            "datetimeTo": {"utc": end, "local": end}}


@pytest.mark.parametrize(("change", "message"), [
    ({"period": None}, "period must be a JSON object, got null"),
    ({"period": _period("2025-01-15T14:00:00Z", "2025-01-15T13:00:00Z")},
     "period.datetimeTo is not after period.datetimeFrom"),
    ({"period": {"label": "1hour", "interval": "1 hour", "datetimeTo": {"utc": "2025-01-15T14:00:00Z"}}},
     "period.interval '1 hour' is not HH:MM:SS and period.datetimeFrom is missing"),
    ({"parameter": {"id": 1, "name": "pm10", "units": "µg/m³"}},
     "parameter 'pm10' differs from the sensor's parameter 'pm25'"),
    ({"parameter": {"id": 2, "name": "pm25", "units": "ppm"}}, "pm25 cannot be given in ppm"),
    ({"parameter": {"id": 2, "name": "pm25", "units": "parts"}}, "parameter.units 'parts' is not one of"),
    ({"value": None}, "value is missing"),
])
def test_openaq_bad_measurement_result_is_rejected_and_neighbours_kept(change, message):
    parsed = _hours_with(change)
    assert [r.value for r in parsed.records] == [44.5, 61.3]
    error = only_error(parsed)
    assert error.startswith("result 1: ") and message in error


def test_openaq_bundle_errors_reject_every_result_and_say_why():
    bundle = fixture_json("openaq_latest_bundle.json")
    del bundle["location"]
    parsed = parse_openaq(dumps(bundle))
    assert parsed.records == [] and len(parsed.rejected) == 5
    assert all(r.error.endswith("bundle: location is missing") for r in parsed.rejected)

    bundle = fixture_json("openaq_latest_bundle.json")
    bundle["location"]["coordinates"]["latitude"] = 95
    parsed = parse_openaq(dumps(bundle))
    assert len(parsed.rejected) == 5
    assert "bundle: location.coordinates.latitude is 95, above the maximum 90" in parsed.rejected[0].error

    bundle = fixture_json("openaq_hours_bundle.json")
    bundle["location"]["sensors"] = bundle["location"]["sensors"][1:]
    parsed = parse_openaq(dumps(bundle))
    assert len(parsed.rejected) == 3
    assert "bundle: sensor 9100001 is not one of the sensors of location 3090001" in parsed.rejected[0].error


def test_openaq_bundle_with_malformed_results_is_one_rejected_item():
    bundle = fixture_json("openaq_latest_bundle.json")
    bundle["latest"] = "nothing"
    parsed = parse_openaq(dumps([bundle, fixture_json("openaq_hours_bundle.json")]))
    assert len(parsed.records) == 3
    assert only_error(parsed) == ("result 0: bundle's 'latest' must be the OpenAQ response object or its results "
                                  "array, got str")


def test_openaq_non_pollutant_parameters_are_ignored():
    bundle = fixture_json("openaq_hours_bundle.json")
    for result in bundle["measurements"]["results"]:
        result["parameter"] = {"id": 19, "name": "pm1", "units": "µg/m³", "displayName": "PM1"}
    bundle["sensor"]["results"][0]["parameter"] = {"id": 19, "name": "pm1", "units": "µg/m³"}
    parsed = parse_openaq(dumps(bundle))
    assert (parsed.records, parsed.rejected, parsed.ignored) == ([], [], 3)


# ---------------------------------------------------------------------------------------
# kgmt-csv


def test_kgmt_fixture_converts_mg_per_m3_and_reads_the_offset():
    parsed = parse_kgmt_csv(fixture("kgmt_hourly.csv"))
    assert parsed.rejected == []
    assert (len(parsed.records), parsed.ignored) == (13, 1)  # h2s is ignored
    assert Counter(r.parameter.value for r in parsed.records) == {"pm10": 3, "no2": 3, "so2": 2, "co": 4, "pm25": 1}
    t12 = datetime(2025, 1, 10, 12, tzinfo=UTC)  # 04:00-08:00
    got = {(r.station_id, r.parameter.value, r.observed_at): r for r in parsed.records}

    pm10 = got[("kgmt_90", "pm10", t12)]
    assert (pm10.value, pm10.unit, pm10.raw_value, pm10.raw_unit) == (142.5, "ug/m3", 0.1425, "mg/m3")
    assert (pm10.lat, pm10.lon, pm10.station_name, pm10.source, pm10.averaging_s) == (
        43.2512, 76.9123, "PCP #90", "kgmt", 3600)
    assert pm10.observed_at.tzinfo is UTC

    no2 = got[("kgmt_90", "no2", t12)]
    assert no2.unit == "ppb" and no2.value == pytest.approx(120.0 * NO2_PPB_PER_UGM3, rel=1e-12)
    assert no2.value == pytest.approx(63.774983, abs=1e-6)
    so2 = got[("kgmt_90", "so2", t12)]
    assert so2.unit == "ppb" and so2.value == pytest.approx(25.0 * SO2_PPB_PER_UGM3, rel=1e-12)
    co = got[("kgmt_90", "co", t12)]
    assert co.unit == "ppm" and co.value == pytest.approx(2.4 * CO_PPM_PER_MGM3, rel=1e-12)
    zero = got[("kgmt_91", "co", t12 + timedelta(hours=1))]
    assert zero.value == 0.0  # a real zero reading is kept


def test_kgmt_gzip_payload_is_decompressed():
    plain = parse_kgmt_csv(fixture("kgmt_hourly.csv"))
    packed = parse_kgmt_csv(gzip.compress(fixture("kgmt_hourly.csv")))
    assert packed.records == plain.records and packed.ignored == 1


def test_kgmt_multi_member_gzip_is_concatenated():
    lines = fixture("kgmt_hourly.csv").splitlines(keepends=True)
    payload = gzip.compress(b"".join(lines[:5])) + gzip.compress(b"".join(lines[5:]))
    assert len(parse_kgmt_csv(payload).records) == 13


def test_kgmt_decompression_bomb_is_refused(monkeypatch):
    assert air.MAX_DECOMPRESSED == 256 * 1024 * 1024
    monkeypatch.setattr(air, "MAX_DECOMPRESSED", 2000)
    small = gzip.compress(fixture("kgmt_hourly.csv")[:1500])
    assert parse_kgmt_csv(small).records  # under the cap: fine
    bomb = gzip.compress(fixture("kgmt_hourly.csv") + b"\n" * 10_000)
    with pytest.raises(PayloadError, match="more than 2000 bytes; refused as a possible decompression bomb") as err:
        parse_kgmt_csv(bomb)
    assert err.value.code == "too_large"


def test_gunzip_stops_at_the_limit_without_inflating_everything():
    bomb = gzip.compress(b"0" * 50_000_000)  # 50 MB of zeros in about 50 kB
    with pytest.raises(PayloadError, match="more than 1000000 bytes"):
        air.gunzip(bomb, 1_000_000)


@pytest.mark.parametrize(("payload", "message"), [
    (gzip.compress(b"parameter,datetime_utc\n" * 100)[:-20], "gzip payload is truncated"),
    (b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip payload is corrupt"),
    (gzip.compress(b"a,b\n") + b"trailing", "garbage after the gzip stream"),
    (b"parameter,station_id,lat,lon\npm10,x,1,2\n", "CSV header lacks column(s) datetime_utc, raw_value, raw_unit"),
    (b"", "CSV payload has no header row"),
    (b"\x00\x01\x02", "NUL bytes"),
])
def test_kgmt_unreadable_payloads_raise_payload_error(payload, message):
    with pytest.raises(PayloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_kgmt_csv(payload)


KGMT_HEADER = fixture("kgmt_hourly.csv").decode().splitlines()[0]
KGMT_GOOD = "pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,142.5,0.1425,mg/m3,exact,4,City Center"


@pytest.mark.parametrize(("row", "message"), [
    ("pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,-0.01,mg/m3,,,",
     "raw_value is -0.01: a concentration cannot be negative"),
    ("pm10,2025-01-10 04:00:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,0.1,mg/m3,,,",
     "datetime_utc 2025-01-10 04:00:00 has no UTC offset"),
    ("pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,95,76.9123,,0.1,mg/m3,,,", "lat is 95, above the maximum 90"),
    ("pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,0.1,ppt,,,",
     "raw_unit 'ppt' is not one of µg/m³, mg/m³, ppm, ppb"),
    ("xyz,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,0.1,mg/m3,,,",
     "parameter 'xyz' is not one of"),
    ("pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,n/a,mg/m3,,,",
     "raw_value must be a number, got 'n/a'"),
    ("pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,,mg/m3,,,",
     "raw_value is missing (and value_ugm3 is empty)"),
    ("co,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,,9000,mg/m3,,,",
     "above the maximum 500"),
    ("pm10,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90", "row has 4 cells, the header has 13"),
])
def test_kgmt_bad_row_is_rejected_and_neighbours_kept(row, message):
    payload = "\n".join([KGMT_HEADER, KGMT_GOOD, row, KGMT_GOOD.replace("kgmt_90", "kgmt_91")]).encode()
    parsed = parse_kgmt_csv(payload)
    assert [r.station_id for r in parsed.records] == ["kgmt_90", "kgmt_91"]
    error = only_error(parsed)
    assert error.startswith("row 1")
    assert message in error
    assert parsed.rejected[0].index == 1


def test_kgmt_bad_row_label_names_the_station():
    row = "pm10,2025-01-10 04:00:00,kgmt_77,PCP #77,kgmt,43.2512,76.9123,,0.1,mg/m3,,,"
    parsed = parse_kgmt_csv("\n".join([KGMT_HEADER, row]).encode())
    assert only_error(parsed).startswith("row 0 (station_id='kgmt_77'): datetime_utc")


def test_kgmt_blank_station_id_is_rejected():
    row = "pm10,2025-01-10 04:00:00-08:00,,PCP #77,kgmt,43.2512,76.9123,,0.1,mg/m3,,,"
    assert only_error(parse_kgmt_csv("\n".join([KGMT_HEADER, row]).encode())) == "row 0: station_id is missing"


def test_kgmt_blank_raw_value_falls_back_to_value_ugm3():
    row = "no2,2025-01-10 04:00:00-08:00,kgmt_90,PCP #90,kgmt,43.2512,76.9123,50.5,,,,,"
    record = parse_kgmt_csv("\n".join([KGMT_HEADER, row]).encode()).records[0]
    assert (record.raw_value, record.raw_unit) == (50.5, "ug/m3")
    assert record.value == pytest.approx(50.5 * NO2_PPB_PER_UGM3, rel=1e-12)


# ---------------------------------------------------------------------------------------
# properties: garbage in, only PayloadError out, every item accounted for

PARSERS = [parse_flat, parse_openaq, parse_kgmt_csv]

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
                | st.sampled_from(["pm25", "no2", "ppm", "µg/m³", "2025-01-15T15:00:00Z", "2025-01-15T15:00:00",
                                   "01:00:00", "latest", "results"]))
json_keys = st.text(max_size=8) | st.sampled_from(
    ["results", "latest", "measurements", "location", "sensor", "sensors", "parameter", "value", "period",
     "coordinates", "sensorsId", "locationsId", "id", "utc", "datetime", "datetimeTo", "datetimeFrom", "name",
     "units", "latitude", "longitude", "station_id", "lat", "lon", "unit", "observed_at"])
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(json_keys, children, max_size=5), max_leaves=25)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(parsed: Parsed, items: int | None = None) -> None:
    for rejected in parsed.rejected:
        assert rejected.error and rejected.code and isinstance(rejected.raw, bytes) and rejected.index >= 0
    for record in parsed.records:
        assert isinstance(record, AirReading) and record.observed_at.utcoffset() == timedelta(0)
    if items is not None:
        assert len(parsed.records) + len(parsed.rejected) + parsed.ignored == items


def parse_or_payload_error(parse, payload: bytes) -> Parsed | None:
    try:
        return parse(payload)
    except PayloadError as err:
        assert str(err) and err.code
        return None


@pytest.mark.parametrize("parse", PARSERS)
@PROPERTY
@given(payload=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_payload_error(parse, payload):
    parsed = parse_or_payload_error(parse, payload)
    if parsed is not None:
        check_invariants(parsed)


@pytest.mark.parametrize("parse", PARSERS)
@PROPERTY
@given(payload=st.binary(max_size=200))
def test_arbitrary_gzipped_bytes_raise_only_payload_error(parse, payload):
    parsed = parse_or_payload_error(parse, gzip.compress(payload))
    if parsed is not None:
        check_invariants(parsed)


def flat_item_count(value: object) -> int:
    return len(value) if isinstance(value, list) else 1


def openaq_item_count(value: object) -> int:
    """Documented rule: a bundle or a bare response counts its results, anything else is one item."""
    total = 0
    for top in value if isinstance(value, list) else [value]:
        if not isinstance(top, dict):
            total += 1
            continue
        key = "latest" if "latest" in top else "measurements" if "measurements" in top else None
        container = top[key] if key else top
        if isinstance(container, dict):
            container = container.get("results")
        if key is None and not isinstance(top.get("results"), list):
            container = None
        total += len(container) if isinstance(container, list) else 1
    return total


@PROPERTY
@given(value=json_values)
def test_arbitrary_json_flat(value):
    parsed = parse_or_payload_error(parse_flat, dumps(value))
    assert parsed is not None  # any JSON value is readable
    check_invariants(parsed, flat_item_count(value))


@PROPERTY
@given(values=st.lists(json_values, min_size=2, max_size=6))
def test_arbitrary_ndjson_flat(values):
    payload = "\n".join(json.dumps(v) for v in values).encode()
    parsed = parse_or_payload_error(parse_flat, payload)
    assert parsed is not None
    check_invariants(parsed, len(values))


@PROPERTY
@given(value=json_values)
def test_arbitrary_json_openaq(value):
    parsed = parse_or_payload_error(parse_openaq, dumps(value))
    assert parsed is not None
    check_invariants(parsed, openaq_item_count(value))


@PROPERTY
@given(value=json_values)
def test_arbitrary_json_kgmt_csv(value):
    parsed = parse_or_payload_error(parse_kgmt_csv, dumps(value))
    if parsed is not None:
        check_invariants(parsed)


junk = st.recursive(json_scalars, lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(json_keys, children, max_size=3), max_leaves=4)


def maybe(good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value (so that whole items get through), sometimes garbage."""
    return st.tuples(st.booleans(), st.booleans(), st.booleans()).flatmap(lambda b: junk if all(b) else good)


flat_items = st.fixed_dictionaries({
    "station_id": maybe(st.sampled_from(["s1", "s 2", ""])),
    "lat": maybe(st.floats(-100, 100)), "lon": maybe(st.floats(-200, 200)),
    "parameter": maybe(st.sampled_from(["pm25", "PM10", "no2", "o3", "co", "so2", "no", "pm3"])),
    "value": maybe(st.floats(-10, 10_000)), "unit": maybe(st.sampled_from(["µg/m³", "mg/m3", "ppm", "ppb", "x"])),
    "observed_at": maybe(st.sampled_from(["2025-01-15T15:00:00Z", "2025-01-15 20:00:00+05:00", "2025-01-15",
                                          1736953200, 1736953200000])),
    "station_name": maybe(st.sampled_from(["Orbita", None, ""])), "averaging_s": maybe(st.integers(-5, 10**8)),
})


@PROPERTY
@given(items=st.lists(flat_items, max_size=8))
def test_flat_right_keys_arbitrary_values(items):
    parsed = parse_flat(dumps(items))
    check_invariants(parsed, len(items))


LOCATION = fixture_json("openaq_latest_bundle.json")["location"]
SENSOR = fixture_json("openaq_hours_bundle.json")["sensor"]
datetime_objects = maybe(st.fixed_dictionaries({"utc": maybe(st.sampled_from(["2025-01-15T15:00:00Z", "x"])),
                                                "local": junk}))
parameter_objects = maybe(st.fixed_dictionaries({
    "id": junk, "name": maybe(st.sampled_from(["pm25", "pm10", "temperature", "co"])),
    "units": maybe(st.sampled_from(["µg/m³", "ppm", "c"]))}))
coordinates = maybe(st.fixed_dictionaries({"latitude": maybe(st.floats(-100, 100)),
                                           "longitude": maybe(st.floats(-200, 200))}))
latest_results = st.fixed_dictionaries({
    "datetime": datetime_objects, "value": maybe(st.floats(-5, 5000)), "coordinates": coordinates,
    "sensorsId": maybe(st.sampled_from([s["id"] for s in LOCATION["sensors"]] + [1])),
    "locationsId": maybe(st.just(LOCATION["id"]))})
measurement_results = st.fixed_dictionaries({
    "value": maybe(st.floats(-5, 5000)), "parameter": parameter_objects, "coordinates": coordinates,
    "period": maybe(st.fixed_dictionaries({"label": junk, "interval": maybe(st.just("01:00:00")),
                                           "datetimeFrom": datetime_objects, "datetimeTo": datetime_objects})),
    "flagInfo": junk})
locations = maybe(st.just(LOCATION) | st.fixed_dictionaries({
    "id": junk, "name": junk, "coordinates": coordinates,
    "sensors": maybe(st.lists(st.fixed_dictionaries({"id": maybe(st.integers(0, 3)), "parameter": parameter_objects}),
                              max_size=3))}))
latest_bundles = st.fixed_dictionaries({"location": locations, "latest": st.fixed_dictionaries(
    {"meta": junk, "results": st.lists(latest_results, max_size=5)})})
measurement_bundles = st.fixed_dictionaries({
    "sensor": maybe(st.just(SENSOR) | st.fixed_dictionaries({"id": junk, "parameter": parameter_objects,
                                                              "latest": junk})),
    "location": locations, "measurements": st.lists(measurement_results, max_size=5)})


@PROPERTY
@given(bundles=st.lists(latest_bundles | measurement_bundles | st.lists(measurement_results, max_size=3)
                        .map(lambda r: {"meta": {}, "results": r}), max_size=4))
def test_openaq_right_keys_arbitrary_values(bundles):
    parsed = parse_openaq(dumps(bundles))
    check_invariants(parsed, openaq_item_count(bundles))


# CSV cells: any text except NUL (the payload would be binary) and the line separators that
# str.splitlines() splits on but the csv module does not quote (see the report on base.csv_items).
csv_text = st.text(st.characters(blacklist_characters="\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                                 blacklist_categories=("Cs",)), max_size=12)
KGMT_FIELDS = KGMT_HEADER.split(",")
kgmt_rows = st.fixed_dictionaries({name: csv_text for name in KGMT_FIELDS} | {
    "parameter": csv_text | st.sampled_from(["pm10", "no2", "co", "h2s"]),
    "datetime_utc": csv_text | st.just("2025-01-10 04:00:00-08:00"),
    "raw_value": csv_text | st.floats(-1, 100).map(str), "raw_unit": csv_text | st.just("mg/m3"),
    "lat": csv_text | st.just("43.25"), "lon": csv_text | st.just("76.9")})


@PROPERTY
@given(rows=st.lists(kgmt_rows, max_size=8), packed=st.booleans())
def test_kgmt_right_columns_arbitrary_values(rows, packed):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=KGMT_FIELDS)  # CRLF: cells with \r or \n get quoted
    writer.writeheader()
    writer.writerows(rows)
    payload = out.getvalue().encode()
    parsed = parse_kgmt_csv(gzip.compress(payload) if packed else payload)
    expected = sum(1 for row in rows if any(v.strip() for v in row.values()))
    check_invariants(parsed, expected)


# ---------------------------------------------------------------------------------------
# the real data: Kazhydromet hourly posts in Almaty, Dec 2024 - Jan 2025

KGMT_FILE = "almaty/air_kgmt_hourly_2024-12_2025-01.csv.gz"


@pytest.fixture(scope="module")
def kgmt_real() -> tuple[list[dict[str, str]], Parsed]:
    path = shared_path(KGMT_FILE)
    data = path.read_bytes()
    with gzip.open(io.BytesIO(data), "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, parse_kgmt_csv(data)


@pytest.mark.shared_data
def test_real_kgmt_file_every_row_becomes_a_utc_record(kgmt_real):
    rows, parsed = kgmt_real
    assert len(rows) == 44_702
    assert parsed.rejected == [] and parsed.ignored == 0
    assert len(parsed.records) == 44_702
    expected = Counter(row["parameter"] for row in rows)
    assert Counter(r.parameter.value for r in parsed.records) == expected
    assert expected == {"co": 13_768, "no2": 11_940, "so2": 11_349, "pm10": 7_645}
    assert all(r.observed_at.tzinfo is UTC for r in parsed.records)
    assert {r.raw_unit for r in parsed.records} == {"mg/m3"} and {r.source for r in parsed.records} == {"kgmt"}
    first = min(r.observed_at for r in parsed.records)
    last = max(r.observed_at for r in parsed.records)
    assert (first, last) == (datetime(2024, 12, 1, 8, tzinfo=UTC), datetime(2025, 2, 1, 7, tzinfo=UTC))


@pytest.mark.shared_data
def test_real_kgmt_values_are_converted_from_the_raw_mg_per_m3(kgmt_real):
    rows, parsed = kgmt_real
    factor = {"pm10": 1000.0, "no2": 1000.0 * NO2_PPB_PER_UGM3, "so2": 1000.0 * SO2_PPB_PER_UGM3,
              "co": CO_PPM_PER_MGM3}
    for row, record in zip(rows, parsed.records, strict=True):
        assert record.station_id == row["station_id"]
        assert record.value == pytest.approx(float(row["raw_value"]) * factor[row["parameter"]], rel=1e-9)
    # one hand-picked row: kgmt_25 (PCP #2), NO2, 2024-12-01 00:00-08:00, 0.2094653333333333 mg/m³
    picked = [r for r in parsed.records if r.station_id == "kgmt_25" and r.parameter is Pollutant.NO2
              and r.observed_at == datetime(2024, 12, 1, 8, tzinfo=UTC)]
    assert len(picked) == 1
    no2 = picked[0]
    assert no2.raw_value == 0.2094653333333333 and no2.unit == "ppb"
    assert no2.value == pytest.approx(0.2094653333333333 * 1000 * 24.45 / 46.0055, rel=1e-12)
    assert no2.value == pytest.approx(111.322068, abs=1e-6)
    assert (no2.station_name, no2.lat, no2.lon) == ("PCP #2", 43.356554, 76.87545)


@pytest.mark.shared_data
def test_real_kgmt_pm10_has_the_winter_diurnal_profile_in_almaty_time(kgmt_real):
    _, parsed = kgmt_real
    almaty = ZoneInfo("Asia/Almaty")
    by_hour: dict[int, list[float]] = defaultdict(list)
    for r in parsed.records:
        if r.parameter is Pollutant.PM10:
            by_hour[r.observed_at.astimezone(almaty).hour].append(r.value)
    means = {hour: sum(v) / len(v) for hour, v in by_hour.items()}
    assert sorted(means) == list(range(24))
    lowest = min(means, key=means.__getitem__)
    highest = max(means, key=means.__getitem__)
    assert 6 <= lowest <= 10, means
    assert highest >= 20 or highest <= 2, means
    assert means[highest] > 1.4 * means[lowest]
