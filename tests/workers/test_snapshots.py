"""KPI snapshots and latest-state retention against a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import keys
from core.citypack import load_pack
from core.schemas import AmbulanceCall, Appeal, AppealStatus
from workers.retention import prune_latest
from workers.snapshots import read_history, read_snapshot, refresh

pytestmark = pytest.mark.redis

PACK = load_pack()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _call(call_id: str, received: datetime, minutes_to_scene: float | None = 8.0, district: str = "almaly"):
    times = {"call_received": received}
    if minutes_to_scene is not None:
        times |= {"unit_notified": received + timedelta(minutes=1), "en_route": received + timedelta(minutes=2),
                  "on_scene": received + timedelta(minutes=minutes_to_scene)}
    return AmbulanceCall(call_id=call_id, category=1, times=times, lat=43.25, lon=76.92, district=district,
                         unit_id="AMB-1" if minutes_to_scene is not None else None)


def _appeal(request_id: str, requested: datetime, closed: datetime | None = None) -> Appeal:
    return Appeal(request_id=request_id, status=AppealStatus.CLOSED if closed else AppealStatus.OPEN,
                  requested_at=requested, updated_at=closed or requested, closed_at=closed, category="heating",
                  district="almaly")


def test_refresh_writes_versioned_snapshots_and_one_history_entry_per_minute(store, redis):
    store.append("ambulance", [_call("c1", NOW - timedelta(hours=1), 8), _call("c2", NOW - timedelta(hours=2), 12),
                               _call("c3", NOW - timedelta(minutes=5), None)])
    store.append("appeals", [_appeal("a1", NOW - timedelta(hours=5), NOW - timedelta(hours=1)),
                             _appeal("a2", NOW - timedelta(minutes=30))])
    versions = refresh(store, PACK, NOW)
    assert versions == dict.fromkeys(("air", "ambulance", "appeals", "traffic"), int(NOW.timestamp() * 1000))
    amb = read_snapshot(redis, "ambulance")
    assert amb["computed_at"].startswith("2026-11-22T09:00")
    city = amb["values"]["city"]
    assert city["ambulance.calls_waiting"] == 1
    assert city["ambulance.response_p50"] == pytest.approx(10.0)  # 8 and 12 minutes
    assert city["ambulance.within_norm_pct_c1"] == pytest.approx(50.0)
    assert "almaly" in amb["values"]
    app = read_snapshot(redis, "appeals")["values"]["city"]
    assert app["appeals.open"] == 1 and app["appeals.new_last_hour"] == 1
    refresh(store, PACK, NOW + timedelta(seconds=20))   # same minute: snapshot replaced, history unchanged
    refresh(store, PACK, NOW + timedelta(seconds=70))   # next minute: one more history entry
    history = read_history(redis, "ambulance", NOW - timedelta(minutes=1), NOW + timedelta(minutes=5))
    assert [h["computed_at"][:16] for h in history] == ["2026-11-22T09:00", "2026-11-22T09:01"]
    assert read_snapshot(redis, "ambulance")["computed_at"].startswith("2026-11-22T09:01:10")
    assert redis.xlen(keys.kpi_history_key("appeals")) == 2


def test_snapshot_is_none_before_the_first_refresh(redis):
    assert read_snapshot(redis, "ambulance") is None


def test_retention_drops_old_calls_and_old_closed_appeals_only(store, redis):
    old, recent = NOW - timedelta(days=3), NOW - timedelta(hours=3)
    store.append("ambulance", [_call("old", old), _call("recent", recent)])
    store.append("appeals", [_appeal("closed-old", old - timedelta(days=40), old - timedelta(days=35)),
                             _appeal("open-old", old - timedelta(days=60)),
                             _appeal("closed-recent", recent - timedelta(hours=5), recent)])
    assert prune_latest(redis, NOW) == {"calls": 1, "requests": 1}
    assert set(store.latest("ambulance", "calls")) == {"recent"}
    assert set(store.latest("appeals", "requests")) == {"open-old", "closed-recent"}
    assert not redis.hexists(keys.latest_version_key("ambulance", "calls"), "old")
    assert prune_latest(redis, NOW) == {"calls": 0, "requests": 0}


def test_kpi_api_serves_snapshots_definitions_and_history(store, redis, settings):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from core.api import ApiContext, build_router

    app = FastAPI()
    app.include_router(build_router(ApiContext.create(settings, redis)))
    client = TestClient(app)
    assert client.get("/api/v1/kpis").json()["kpis"] == {"air": None, "ambulance": None, "appeals": None,
                                                         "traffic": None}
    store.append("ambulance", [_call("c1", NOW - timedelta(hours=1), 9)])
    refresh(store, PACK, NOW)
    refresh(store, PACK, NOW + timedelta(minutes=1))
    body = client.get("/api/v1/kpis?domain=ambulance&district=almaly").json()
    assert set(body["kpis"]["ambulance"]["values"]) == {"almaly"}
    assert body["kpis"]["ambulance"]["values"]["almaly"]["ambulance.response_p50"] == pytest.approx(9.0)
    keys_ = {d["key"] for d in body["definitions"]}
    assert "ambulance.response_p90_c1" in keys_ and all(d["names"].keys() >= {"en", "ru", "kk"}
                                                         for d in body["definitions"])
    history = client.get("/api/v1/kpis/history", params={
        "name": "ambulance.response_p50", "from": (NOW - timedelta(minutes=5)).isoformat(),
        "to": (NOW + timedelta(minutes=5)).isoformat()}).json()
    assert [p["value"] for p in history["points"]] == [pytest.approx(9.0), pytest.approx(9.0)]
    assert client.get("/api/v1/kpis?domain=weather").status_code == 404
    assert client.get("/api/v1/kpis/history?name=weather.x").status_code == 404
    assert client.get("/api/v1/kpis/history?name=ambulance.response_p50&from=yesterday").status_code == 400


def test_history_keeps_numbers_not_detail_lists_and_the_version_is_published(redis):
    from datetime import UTC, datetime

    from core import keys
    from workers.snapshots import read_history, read_snapshot, write_snapshot

    now = datetime(2026, 11, 22, 8, 0, 30, tzinfo=UTC)
    values = {"city": {"air.aqi": 57, "air.stations": [{"id": "ALM-01", "aqi": 57}]}}
    version = write_snapshot(redis, "air", values, now)
    assert read_snapshot(redis, "air")["values"]["city"]["air.stations"] == [{"id": "ALM-01", "aqi": 57}]
    [minute] = read_history(redis, "air", now.replace(second=0), now)
    assert minute["values"] == {"city": {"air.aqi": 57}}
    assert int(redis.hget(keys.VERSIONS, "kpi:air")) == version
