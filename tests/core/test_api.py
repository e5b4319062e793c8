"""The HTTP API against a real Redis: every status code of the ingest, health and dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core import keys
from core.api import ApiContext, build_router

pytestmark = pytest.mark.redis


def _client(settings, redis) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(ApiContext.create(settings, redis)))
    return TestClient(app)


@pytest.fixture
def client(settings, redis) -> TestClient:
    return _client(settings, redis)


def _now(minutes: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def air(value=20.5, station="ALM-01", lat=43.25, lon=76.92, when=None, **extra):
    return {"station_id": station, "lat": lat, "lon": lon, "parameter": "pm2.5", "value": value,
            "unit": "µg/m³", "observed_at": when or _now(-5), **extra}


def test_ingest_json_array_accepts_all(client, redis):
    body = [air(station=f"ALM-{i:02d}") for i in range(5)]
    r = client.post("/api/v1/ingest/air", json=body)
    assert r.status_code == 202
    assert r.json() == {"accepted": 5, "rejected": 0, "ignored": 0, "errors": []}
    assert redis.xlen(keys.feed_stream_key("air")) == 5


def test_ingest_single_object_and_ndjson(client, redis):
    assert client.post("/api/v1/ingest/air", json=air()).json()["accepted"] == 1
    ndjson = "\n".join(json.dumps(air(station=f"N{i}")) for i in range(3))
    r = client.post("/api/v1/ingest/air", content=ndjson, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json()["accepted"] == 3


def test_bad_records_are_rejected_by_index_dead_lettered_and_counted_valid_kept(client, store):
    body = [
        air(station="GOOD-1"),
        air(station="NEG", value=-3),                      # impossible value
        air(station="FAR", lat=51.1, lon=71.4),            # Astana: outside the city
        air(station="FUTURE", when=_now(120)),             # two hours ahead
        air(station="GOOD-2"),
        {"station_id": "MISSING"},                         # missing fields
        air(station="GLOBE", lat=95.0),                    # off the globe
    ]
    r = client.post("/api/v1/ingest/air", json=body)
    assert r.status_code == 202
    out = r.json()
    assert out["accepted"] == 2 and out["rejected"] == 5
    errors = {e["index"]: e["error"] for e in out["errors"]}
    assert set(errors) == {1, 2, 3, 5, 6}
    assert "NEG" in errors[1] and "negative" in errors[1]
    assert "outside the city" in errors[2]
    assert "in the future" in errors[3]
    assert "MISSING" in errors[5] and "missing" in errors[5]
    assert "lat" in errors[6] and "90" in errors[6]
    letters = store.dead_letters("air", 10)
    assert len(letters) == 5
    by_code = {letter["code"] for letter in letters}
    assert {"out_of_range", "out_of_bounds", "future_time", "missing_field"} <= by_code
    assert any("FAR" in letter["raw"] for letter in letters)
    health = store.health_raw("air")
    assert health["rejected_total"] == "5" and health["events_total"] == "2"


def test_duplicate_is_rejected_second_time(client, store):
    record = air(when="2026-11-22T08:00:00+05:00")
    assert client.post("/api/v1/ingest/air", json=record).json()["accepted"] == 1
    again = client.post("/api/v1/ingest/air", json=[record]).json()
    assert again["accepted"] == 0 and again["rejected"] == 1
    assert "duplicate" in again["errors"][0]["error"]
    assert store.dead_letters("air", 1)[0]["code"] == "duplicate"


def test_unparseable_body_is_400_and_dead_lettered(client, store):
    r = client.post("/api/v1/ingest/air", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not JSON" in r.json()["error"]
    assert store.dead_letters("air", 1)[0]["raw"] == "{not json"


def test_binary_garbage_is_400(client):
    r = client.post("/api/v1/ingest/appeals", content=bytes(range(256)) * 4,
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "UTF-8" in r.json()["error"] or "binary" in r.json()["error"]


def test_unknown_feed_is_404(client):
    r = client.post("/api/v1/ingest/weather", json={})
    assert r.status_code == 404 and "weather" in r.json()["error"]


def test_unsupported_content_type_is_415(client):
    r = client.post("/api/v1/ingest/air", content=b"<xml/>", headers={"content-type": "application/xml"})
    assert r.status_code == 415 and "application/xml" in r.json()["error"]


def test_unknown_format_is_400(client):
    r = client.post("/api/v1/ingest/air?format=nope", json=air())
    assert r.status_code == 400 and "nope" in r.json()["error"]


def test_oversized_body_is_413(settings, redis):
    client = _client(settings.with_(ingest_max_bytes=1000), redis)
    r = client.post("/api/v1/ingest/air", json=[air(station=f"S{i}") for i in range(50)])
    assert r.status_code == 413 and "1000" in r.json()["error"]
    assert redis.xlen(keys.feed_stream_key("air")) == 0


def test_token_required_when_configured(settings, redis):
    client = _client(settings.with_(ingest_token="s3cret"), redis)
    assert client.post("/api/v1/ingest/air", json=air()).status_code == 401
    assert client.post("/api/v1/ingest/air", json=air(), headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.post("/api/v1/ingest/air", json=air(), headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202 and ok.json()["accepted"] == 1


def test_csv_format_by_content_type(client):
    csv_body = ("ts_utc,ts_almaty,yandex_score,yandex_trend,yandex_jam_km,dgis_score,ev_crash,ev_roadwork,"
                "ev_restriction,ev_comment,ev_other\r\n"
                f"{_now(-3)},,5,1,120.5,6,2,1,0,0,0\r\n")
    r = client.post("/api/v1/ingest/traffic", content=csv_body, headers={"content-type": "text/csv"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2


def test_health_reports_each_feed(client):
    client.post("/api/v1/ingest/air", json=air(when=_now(-1)))
    doc = client.get("/api/v1/health").json()
    assert set(doc["feeds"]) >= {"air", "appeals", "traffic", "ambulance"}
    assert doc["feeds"]["air"]["status"] == "ok"
    assert doc["feeds"]["air"]["events_total"] == 1
    assert doc["feeds"]["traffic"]["status"] == "silent"
    assert doc["redis"]["version"].startswith(("6.", "7.", "8."))
    assert doc["workers"]["count"] == 0


def test_dead_letters_endpoint(client):
    client.post("/api/v1/ingest/air", json=[air(value=-1)])
    r = client.get("/api/v1/feeds/air/dead-letters?limit=5")
    assert r.status_code == 200
    assert r.json()["dead_letters"][0]["code"] == "out_of_range"
    assert client.get("/api/v1/feeds/nope/dead-letters").status_code == 404
