"""Transports against real local servers and a real Redis: replay, websocket subscribe, HTTP poll."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import websockets

from core import keys
from core.errors import FatalFeedError, RetryableFeedError
from core.validate import Bounds
from feeds import get_feed
from feeds.runner import ReplayPlan, backoff, classify, poll, replay, subscribe
from feeds.sink import Sink

pytestmark = pytest.mark.redis

ALMATY = Bounds(76.6, 42.95, 77.35, 43.5)


@pytest.fixture
def sink(store):
    return Sink(store, bounds=ALMATY, max_future_s=900, batch_size=100)


def _air(i: int, when: datetime) -> dict:
    return {"station_id": f"S{i % 3}", "lat": 43.2 + i * 0.001, "lon": 76.9, "parameter": "pm10",
            "value": 10 + i, "unit": "ug/m3", "observed_at": when.isoformat()}


def _write_ndjson(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_backoff_is_capped_jittered_and_growing():
    delays = backoff(initial=1, factor=2, cap=10, rng=random.Random(1))
    values = [next(delays) for _ in range(12)]
    assert all(0.5 <= v <= 10 for v in values)
    assert max(values[:2]) <= 2 < max(values[4:])
    assert len(set(values)) == len(values)  # jittered


def test_classify_retryable_and_fatal():
    req = httpx.Request("GET", "http://x")
    assert isinstance(classify(httpx.HTTPStatusError("", request=req, response=httpx.Response(503, request=req))),
                      RetryableFeedError)
    assert isinstance(classify(httpx.HTTPStatusError("", request=req, response=httpx.Response(404, request=req))),
                      FatalFeedError)
    assert isinstance(classify(ConnectionRefusedError()), RetryableFeedError)


def test_replay_as_fast_as_possible_keeps_bad_rows_apart(tmp_path, sink, redis, store):
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [_air(i, t0 + timedelta(hours=i)) for i in range(250)]
    rows[7]["value"] = -1
    path = _write_ndjson(tmp_path / "air.ndjson", rows)
    adapter = get_feed("air")
    result = asyncio.run(replay(sink, adapter, adapter.format("flat"), path, ReplayPlan()))
    assert result.accepted == 249 and result.rejected == 1
    assert redis.xlen(keys.feed_stream_key("air")) == 249
    assert store.dead_letters("air")[0]["index"] == "7"


def test_replay_keeps_recorded_timing_scaled(tmp_path, sink, store):
    t0 = datetime.now(UTC) - timedelta(hours=1)
    rows = [_air(i, t0 + timedelta(seconds=10 * i)) for i in range(4)]  # 30 s of recording
    path = _write_ndjson(tmp_path / "air.ndjson", rows)
    adapter = get_feed("air")
    loop = asyncio.new_event_loop()
    started = loop.time()
    result = loop.run_until_complete(replay(sink, adapter, adapter.format("flat"), path,
                                            ReplayPlan(speed=50, shift_to_now=True)))
    elapsed = loop.time() - started
    loop.close()
    assert result.accepted == 4
    assert 0.5 <= elapsed < 3.0  # 30 s / 50 = 0.6 s
    latest = store.latest("air", "readings")
    newest = max(datetime.fromisoformat(r["observed_at"].replace("Z", "+00:00")) for r in latest.values())
    assert abs((newest - datetime.now(UTC)).total_seconds()) < 5  # shifted to now


def test_replay_relocates_foreign_points_into_the_city(tmp_path, sink, store):
    t0 = datetime.now(UTC) - timedelta(hours=2)
    rows = [{**_air(i, t0 + timedelta(minutes=i)), "lat": 40.7 + i * 0.01, "lon": -73.9 - i * 0.01}
            for i in range(5)]
    path = _write_ndjson(tmp_path / "nyc.ndjson", rows)
    adapter = get_feed("air")
    direct = asyncio.run(replay(sink, adapter, adapter.format("flat"), path, ReplayPlan()))
    assert direct.accepted == 0 and direct.rejected == 5  # New York is not Almaty
    moved = asyncio.run(replay(sink, adapter, adapter.format("flat"), path, ReplayPlan(relocate_to=ALMATY)))
    assert moved.accepted == 5
    for record in store.latest("air", "readings").values():
        assert ALMATY.contains(record["lat"], record["lon"])


def test_websocket_subscription_reconnects_and_loses_nothing(sink, store, redis):
    now = datetime.now(UTC)
    connections = []

    async def handler(ws):
        connections.append(ws)
        n = len(connections)
        await ws.send(json.dumps([_air(i, now - timedelta(minutes=10 * n + i)) for i in range(3)]))
        await ws.send(b"\x00\xff garbage")
        if n == 1:
            await ws.close()  # the server drops the first connection
            return
        await ws.wait_closed()

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            stop = asyncio.Event()
            adapter = get_feed("air")
            task = asyncio.create_task(subscribe(sink, adapter, adapter.format("flat"), f"ws://127.0.0.1:{port}",
                                                 backoff_cap_s=0.5, stop=stop, first_delay_s=0.05))
            for _ in range(200):
                await asyncio.sleep(0.05)
                if redis.xlen(keys.feed_stream_key("air")) >= 6 and len(connections) >= 2:
                    break
            stop.set()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert len(connections) >= 2
    assert redis.xlen(keys.feed_stream_key("air")) == 6
    assert int(store.health_raw("air")["rejected_total"]) >= 2  # both garbage frames dead-lettered
    assert store.health_raw("air")["transport_state"] == "stopped"


class _Source(BaseHTTPRequestHandler):
    calls = 0
    body = b""

    def do_GET(self):  # noqa: N802
        type(self).calls += 1
        if type(self).calls == 1:
            self.send_response(503)
            self.end_headers()
            return
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args):
        pass


def test_polling_retries_errors_and_uses_conditional_get(sink, redis, store):
    now = datetime.now(UTC)
    _Source.calls = 0
    _Source.body = json.dumps([_air(i, now - timedelta(minutes=i)) for i in range(4)]).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Source)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/latest"

    async def main():
        stop = asyncio.Event()
        adapter = get_feed("air")
        task = asyncio.create_task(poll(sink, adapter, adapter.format("flat"), url, interval_s=0.05,
                                        backoff_cap_s=0.2, stop=stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if _Source.calls >= 4:
                break
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        server.shutdown()
    assert _Source.calls >= 4  # 503, 200, then 304s
    assert redis.xlen(keys.feed_stream_key("air")) == 4  # fetched once, not duplicated by the 304s
    assert "503" in store.health_raw("air")["transport_last_error"]
