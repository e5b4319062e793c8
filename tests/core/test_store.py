"""The ingest script against a real Redis: streams, duplicates, latest state, merging, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import keys
from core.schemas import AirReading, AmbulanceCall, Appeal, AppealStatus
from core.units import Pollutant

pytestmark = pytest.mark.redis

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def reading(value: float, minutes: int = 0, station: str = "st1") -> AirReading:
    return AirReading(station_id=station, parameter=Pollutant.PM25, value=value, unit="ug/m3",
                      observed_at=T0 + timedelta(minutes=minutes), lat=43.2, lon=76.9)


def test_append_writes_stream_latest_and_health(store, redis):
    dups = store.append("air", [reading(10.0), reading(12.0, 60), reading(5.0, 0, "st2")])
    assert dups == []
    assert redis.xlen(keys.feed_stream_key("air")) == 3
    latest = store.latest("air", "readings")
    assert latest["st1:pm25"]["value"] == 12.0
    assert latest["st2:pm25"]["value"] == 5.0
    health = store.health_raw("air")
    assert health["events_total"] == "3"
    assert int(health["last_event_ms"]) == int((T0 + timedelta(minutes=60)).timestamp() * 1000)


def test_duplicates_are_reported_and_not_stored_twice(store, redis):
    store.append("air", [reading(10.0)])
    dups = store.append("air", [reading(11.0, 1), reading(10.0), reading(11.0, 1)])
    assert dups == [1, 2]
    assert redis.xlen(keys.feed_stream_key("air")) == 2


def test_correction_at_same_time_is_not_a_duplicate(store):
    store.append("air", [reading(10.0)])
    assert store.append("air", [reading(10.5)]) == []
    assert store.latest("air", "readings")["st1:pm25"]["value"] == 10.5


def test_older_reading_does_not_replace_newer_latest(store, redis):
    store.append("air", [reading(12.0, 60)])
    store.append("air", [reading(10.0, 0)])
    assert redis.xlen(keys.feed_stream_key("air")) == 2
    assert store.latest("air", "readings")["st1:pm25"]["value"] == 12.0


def _appeal(status: AppealStatus, minutes: int, **extra) -> Appeal:
    return Appeal(request_id="r1", status=status, requested_at=T0, updated_at=T0 + timedelta(minutes=minutes),
                  **extra)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_appeal_updates_merge_in_any_order(store, order):
    updates = [
        _appeal(AppealStatus.OPEN, 0, description="No water in building 5", district="almaly", category="water"),
        _appeal(AppealStatus.OPEN, 30, state="assigned"),
        _appeal(AppealStatus.CLOSED, 90, state="closed", closed_at=T0 + timedelta(minutes=90)),
    ]
    for i in order:
        store.append("appeals", [updates[i]])
    merged = store.latest("appeals", "requests")["r1"]
    assert merged["status"] == "closed"
    assert merged["state"] == "closed"
    assert merged["description"] == "No water in building 5"
    assert merged["district"] == "almaly"
    assert merged["closed_at"].startswith("2026-11-22T09:30")


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_call_times_merge_in_any_order(store, order):
    parts = [
        AmbulanceCall(call_id="c1", category=1, times={"call_received": T0}, lat=43.25, lon=76.93),
        AmbulanceCall(call_id="c1", times={"unit_notified": T0 + timedelta(minutes=1),
                                           "en_route": T0 + timedelta(minutes=2)}, unit_id="B-12"),
        AmbulanceCall(call_id="c1", times={"on_scene": T0 + timedelta(minutes=9)}, status="on_scene"),
    ]
    for i in order:
        store.append("ambulance", [parts[i]])
    merged = store.latest("ambulance", "calls")["c1"]
    assert set(merged["times"]) == {"call_received", "unit_notified", "en_route", "on_scene"}
    assert merged["category"] == 1
    assert merged["unit_id"] == "B-12"
    assert merged["status"] == "on_scene"


def test_reopened_appeal_loses_its_close_time(store):
    closed = _appeal(AppealStatus.CLOSED, 60, state="closed", closed_at=T0 + timedelta(minutes=60))
    reopened = _appeal(AppealStatus.OPEN, 120, state="reopened")
    for order in ((closed, reopened), (reopened, closed)):
        store.redis.flushall()
        for update in order:
            store.append("appeals", [update])
        merged = store.latest("appeals", "requests")["r1"]
        assert merged["status"] == "open" and merged["state"] == "reopened"
        assert merged.get("closed_at") is None
