"""The live hub against a real Redis: it reloads only what changed, keeps the last documents when
Redis goes away, reports it, and recovers on its own."""

from __future__ import annotations

import time

import orjson
import pytest

from core import keys
from core.redis_server import EmbeddedRedis, connect
from dashboards.live import Hub

pytestmark = pytest.mark.redis


def counting_loader(calls: list[str], name: str):
    def load(redis):
        calls.append(name)
        raw = redis.get(f"doc:{name}")
        return None if raw is None else orjson.loads(raw)
    return load


def test_reloads_a_topic_only_when_its_version_moves(redis):
    calls: list[str] = []
    hub = Hub(redis, loaders={"a": counting_loader(calls, "a"), "b": counting_loader(calls, "b")})
    redis.set("doc:a", orjson.dumps({"x": 1}))
    assert hub.poll_once()
    assert hub.get("a").doc == {"x": 1} and hub.get("b").doc is None
    assert sorted(calls) == ["a", "b"]
    calls.clear()
    assert hub.poll_once() and calls == []  # nothing moved: nothing read but the versions
    seq = hub.seq
    redis.set("doc:a", orjson.dumps({"x": 2}))
    redis.hincrby(keys.VERSIONS, "a", 1)
    hub.poll_once()
    assert calls == ["a"] and hub.get("a").doc == {"x": 2} and hub.get("a").version == 1
    assert hub.seq == seq + 1


def test_default_topics_read_incidents_events_and_kpis(redis):
    redis.set(keys.kpi_key("air"), orjson.dumps({"domain": "air", "version": 5, "values": {}}))
    redis.zadd(keys.INCIDENTS_OPEN, {"INC-1": 1})
    redis.set(keys.incident_key("INC-1"), orjson.dumps({"id": "INC-1"}))
    redis.hset(keys.EVENTS_ACTIVE, "e1", orjson.dumps({"id": "e1"}))
    hub = Hub(redis, health=lambda: {"feeds": {}})
    hub.poll_once()
    assert hub.get("kpi:air").doc["version"] == 5
    assert hub.get("incidents").doc == [{"id": "INC-1"}]
    assert hub.get("events").doc == [{"id": "e1"}]
    assert hub.get("health").doc == {"feeds": {}}
    assert hub.status()["connected"] is True


def test_keeps_the_last_frame_when_redis_goes_away_and_recovers(tmp_path):
    server = EmbeddedRedis(tmp_path / "r", persist=False)
    server.start()
    client = connect(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    client.set("doc:a", orjson.dumps({"x": 1}))
    hub = Hub(client, loaders={"a": counting_loader([], "a")}, interval=0.05).start()
    try:
        assert hub.get("a").doc == {"x": 1} and hub.status()["connected"]
        seen_ok = hub.status()["last_ok"]
        server.stop()
        deadline = time.time() + 10
        while hub.status()["connected"] and time.time() < deadline:
            time.sleep(0.05)
        status = hub.status()
        assert status["connected"] is False and status["error"]
        assert hub.get("a").doc == {"x": 1}  # the last frame stays
        assert status["last_ok"] >= seen_ok
        server.start()
        client.set("doc:a", orjson.dumps({"x": 2}))  # a new server: versions start from nothing
        client.hincrby(keys.VERSIONS, "a", 1)
        deadline = time.time() + 15
        while (not hub.status()["connected"] or hub.get("a").doc != {"x": 2}) and time.time() < deadline:
            time.sleep(0.05)
        assert hub.status()["connected"] and hub.get("a").doc == {"x": 2}
    finally:
        hub.stop()
        server.stop()


def test_wait_wakes_on_change(redis):
    hub = Hub(redis, loaders={"a": counting_loader([], "a")})
    hub.poll_once()
    seq = hub.seq
    t0 = time.perf_counter()
    assert hub.wait(seq, 0.05) == seq  # nothing changed: times out
    assert time.perf_counter() - t0 >= 0.04
    redis.hincrby(keys.VERSIONS, "a", 1)
    hub.poll_once()
    assert hub.wait(seq, 1.0) == seq + 1
