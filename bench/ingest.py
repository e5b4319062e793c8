"""Ingest benchmark: records/s through parse, validate and Redis, per format, replay and HTTP.

    python bench/ingest.py [--records 50000] [--out bench/results/ingest.json]

For each format it builds a payload of ``--records`` records from the format's fixture
(ids varied so every record is new), then measures in the same run, on the same embedded
Redis (append-only file on, as in production):

* ``ceiling``: raw pipelined ``XADD`` of the same per-record bytes, 1,000 per round trip;
* ``replay``: ``sitcen replay`` as fast as possible (read file, parse, validate, dedup, stream,
  latest state, health);
* ``http`` (flat JSON): 1,000-record POSTs to ``/api/v1/ingest/air`` on a real uvicorn
  server, one client and two concurrent clients.

Every rate is also given as a ratio to the ceiling measured just before it, because absolute
rates drift on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.citypack import load_pack  # noqa: E402
from core.redis_server import EmbeddedRedis, connect, free_port  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import Store  # noqa: E402
from feeds import get_feed  # noqa: E402
from feeds.runner import ReplayPlan, replay  # noqa: E402
from feeds.sink import Sink  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "feeds"


# ---------------------------------------------------------------------------------------
# payload builders: (payload bytes, per-record raw bytes for the ceiling)


def _valid(feed: str, fmt: str, candidates: list[Any], encode: Callable[[Any], bytes]) -> list[Any]:
    """The fixture items that parse to records with nothing rejected or ignored.

    Fixtures deliberately hold bad and foreign items; the throughput figure is for valid records.
    """
    parse = get_feed(feed).format(fmt).parse
    keep = []
    for item in candidates:
        parsed = parse(encode(item))
        if parsed.records and not parsed.rejected and not parsed.ignored:
            keep.append(item)
    if not keep:
        raise RuntimeError(f"no valid template item in the {feed}/{fmt} fixture")
    return keep


def _vary_json(items: list[dict[str, Any]], n: int, vary: Callable[[dict[str, Any], int], None]) -> list[dict]:
    out = []
    for i in range(n):
        item = copy.deepcopy(items[i % len(items)])
        vary(item, i)
        out.append(item)
    return out


def json_payload(feed: str, fmt: str, fixture: str, n: int, vary: Callable[[dict[str, Any], int], None], *,
                 unwrap: str = "", ndjson: bool = False) -> tuple[bytes, list[bytes]]:
    data = json.loads((FIX / fixture).read_text())
    items = data[unwrap] if unwrap else data

    def encode(item: Any) -> bytes:
        return json.dumps({**data, unwrap: [item]} if unwrap else [item]).encode()

    rows = _vary_json(_valid(feed, fmt, items, encode), n, vary)
    raws = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    if ndjson:
        return b"\n".join(raws), raws
    body = {**data, unwrap: rows} if unwrap else rows
    return json.dumps(body, ensure_ascii=False).encode(), raws


def _csv_text(fieldnames: list[str], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def csv_payload(feed: str, fmt: str, fixture: str, n: int,
                vary: Callable[[dict[str, str], int], None]) -> tuple[bytes, list[bytes]]:
    text = (FIX / fixture).read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = list(reader.fieldnames or [])
    rows = _valid(feed, fmt, list(reader), lambda row: _csv_text(fields, [row]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], lineterminator="\n")
    writer.writeheader()
    raws = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        vary(row, i)
        writer.writerow(row)
        line = io.StringIO()
        csv.writer(line, lineterminator="").writerow(row.values())
        raws.append(line.getvalue().encode())
    return out.getvalue().encode(), raws


def gtfs_payload(n: int) -> tuple[bytes, list[bytes]]:
    from google.transit import gtfs_realtime_pb2

    feed = gtfs_realtime_pb2.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = int(time.time()) - 60
    for i in range(n):
        entity = feed.entity.add()
        entity.id = f"e{i}"
        vp = entity.vehicle
        vp.vehicle.id = f"AMB-{i}"
        vp.position.latitude = 43.2 + (i % 100) * 0.001
        vp.position.longitude = 76.9 + (i % 50) * 0.001
        vp.position.speed = 11.0
        vp.timestamp = int(time.time()) - 120
    return feed.SerializeToString(), [e.SerializeToString() for e in feed.entity]


def _suffix(*fields: str) -> Callable[[dict[str, Any], int], None]:
    def vary(item: dict[str, Any], i: int) -> None:
        for field in fields:
            item[field] = f"{item.get(field)}-{i}"
    return vary


def _openaq(item: dict[str, Any], i: int) -> None:
    item["sensorsId"] = 100000 + i
    item["locationsId"] = 200000 + i


def _gtfs(n: int) -> tuple[bytes, list[bytes]]:
    return gtfs_payload(n)


FORMATS: list[tuple[str, str, Callable[[int], tuple[bytes, list[bytes]]], bool]] = [
    # (feed, format, builder, relocate foreign coordinates)
    ("air", "flat", lambda n: json_payload("air", "flat", "air/flat.json", n, _suffix("station_id"),
                                           ndjson=True), False),
    ("air", "kgmt-csv", lambda n: csv_payload("air", "kgmt-csv", "air/kgmt_hourly.csv", n, _suffix("station_id")),
     False),
    ("air", "openaq", lambda n: json_payload("air", "openaq", "air/openaq_measurements_enriched.json", n, _openaq,
                                             unwrap="results"), False),
    ("appeals", "open311", lambda n: json_payload("appeals", "open311", "appeals/open311_requests.json", n,
                                                  _suffix("service_request_id")), False),
    ("appeals", "nyc311-csv", lambda n: csv_payload("appeals", "nyc311-csv", "appeals/nyc311_requests.csv", n,
                                                    _suffix("Unique Key")), True),
    ("traffic", "score", lambda n: json_payload("traffic", "score", "traffic/scores.json", n, _suffix("area_id")),
     False),
    ("traffic", "fiware", lambda n: json_payload("traffic", "fiware", "traffic/tfo_keyvalues_v2.json", n,
                                                 _suffix("id")), False),
    ("ambulance", "calls", lambda n: json_payload("ambulance", "calls", "ambulance/calls.json", n,
                                                  _suffix("call_id")), False),
    ("ambulance", "gtfs-rt", _gtfs, False),
    ("ambulance", "sf-csv", lambda n: csv_payload("ambulance", "sf-csv", "ambulance/sf_fire_calls.csv", n,
                                                  _suffix("UnitID")), True),
]


# ---------------------------------------------------------------------------------------
# measurements


def ceiling(redis: Any, raws: list[bytes]) -> float:
    """Raw pipelined XADD of ``raws``, 1,000 per round trip: records/s."""
    redis.delete("bench:ceiling")
    start = time.perf_counter()
    for i in range(0, len(raws), 1000):
        pipe = redis.pipeline(transaction=False)
        for raw in raws[i:i + 1000]:
            pipe.xadd("bench:ceiling", {"r": raw}, maxlen=200_000, approximate=True)
        pipe.execute()
    rate = len(raws) / (time.perf_counter() - start)
    redis.delete("bench:ceiling")
    return rate


def replay_rate(sink: Sink, feed: str, fmt: str, path: Path, relocate: bool) -> tuple[float, dict[str, Any]]:
    adapter = get_feed(feed)
    plan = ReplayPlan(relocate_to=load_pack().bounds if relocate else None)
    start = time.perf_counter()
    result = asyncio.run(replay(sink, adapter, adapter.format(fmt), path, plan))
    elapsed = time.perf_counter() - start
    return result.accepted / elapsed, result.as_json(max_errors=3)


def http_rate(url: str, batches: list[bytes], clients: int) -> tuple[float, int]:
    accepted = 0
    lock = threading.Lock()

    def worker(mine: list[bytes]) -> None:
        nonlocal accepted
        with httpx.Client(timeout=60) as client:
            for body in mine:
                r = client.post(url, content=body, headers={"content-type": "application/json"})
                r.raise_for_status()
                with lock:
                    accepted += r.json()["accepted"]

    threads = [threading.Thread(target=worker, args=(batches[k::clients],)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted / (time.perf_counter() - start), accepted


def start_api(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "SC_REDIS_URL": redis_url, "SC_WEB_PORT": str(port), "SC_LOG_LEVEL": "WARNING",
           "SC_INGEST_MAX_BYTES": str(64 * 1024 * 1024)}
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "api"], env=env, cwd=ROOT)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/api/v1/feeds", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("API server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args()
    n = args.records
    results: dict[str, Any] = {
        "benchmark": "ingest", "command": f"python bench/ingest.py --records {n}",
        "when": datetime.now(UTC).isoformat(), "records_per_run": n,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "replay": [], "http": [],
    }
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        redis = connect(server.url)
        results["redis_version"] = redis.info()["redis_version"]
        settings = Settings.from_env({}, redis_url=server.url)
        store = Store.from_settings(redis, settings)
        for feed, fmt, build, relocate in FORMATS:
            payload, raws = build(n)
            path = Path(tmp) / f"{feed}-{fmt}.bin"
            path.write_bytes(payload)
            redis.flushdb()
            ceil = ceiling(redis, raws)
            sink = Sink(store, bounds=load_pack().bounds, max_future_s=900, batch_size=settings.batch_size)
            rate, outcome = replay_rate(sink, feed, fmt, path, relocate)
            row = {"feed": feed, "format": fmt, "records": len(raws), "accepted": outcome["accepted"],
                   "rejected": outcome["rejected"], "records_per_s": round(rate), "ceiling_xadd_per_s": round(ceil),
                   "ratio_to_ceiling": round(rate / ceil, 3), "payload_bytes": len(payload)}
            if outcome["errors"]:
                row["first_errors"] = outcome["errors"]
            results["replay"].append(row)
            print(f"replay {feed:<9} {fmt:<11} {rate:>9,.0f} rec/s  ceiling {ceil:>9,.0f}  "
                  f"ratio {rate / ceil:.2f}  accepted {outcome['accepted']}/{len(raws)}", flush=True)

        redis.flushdb()
        _, raws = json_payload("air", "flat", "air/flat.json", n, _suffix("station_id"))
        batches = [b"[" + b",".join(raws[i:i + 1000]) + b"]" for i in range(0, len(raws), 1000)]
        proc, base = start_api(server.url)
        try:
            for clients in (1, 2):
                redis.flushdb()
                ceil = ceiling(redis, raws)
                rate, accepted = http_rate(f"{base}/api/v1/ingest/air", batches, clients)
                results["http"].append({"feed": "air", "format": "flat", "batch": 1000, "clients": clients,
                                        "records": len(raws), "accepted": accepted, "records_per_s": round(rate),
                                        "ceiling_xadd_per_s": round(ceil),
                                        "ratio_to_ceiling": round(rate / ceil, 3)})
                print(f"http   air flat, {clients} client(s), 1,000/request {rate:>9,.0f} rec/s  "
                      f"ceiling {ceil:>9,.0f}  ratio {rate / ceil:.2f}  accepted {accepted}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
