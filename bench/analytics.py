"""Analytics benchmark: records/s one worker process turns into KPIs, events and incidents, and the
lag from ``XADD`` to results being readable under a steady offered load.

    python bench/analytics.py [--hours 4] [--rate 2000] [--seconds 60] [--out FILE]

Data: ``--hours`` of the simulated city (every scenario planted; the real record mix: mostly
ambulance GTFS-rt positions, then traffic segments, calls, air readings, appeals), written to an
embedded Redis with the real store (dedup, latest state, health), as the feeds write them.

* ``ceiling``: the same entries read with ``XREADGROUP`` and ``XACK``ed, nothing else: the most
  any consumer could do on this machine in this run.
* ``throughput``: one :class:`workers.consumer.Consumer` in this process (every registered detector,
  correlation into incidents in Redis, KPI snapshots refreshed every ``SC_KPI_EVERY_S``) drains
  the streams; records/s and the ratio to the ceiling.
* ``lag``: the production processes (``sitcen scheduler`` + ``sitcen worker``) run while a
  producer offers ``--rate`` records/s in batches every 100 ms for ``--seconds``. A sampler reads
  the loop's watermark (``sc:analytics:status``: last entry processed per feed and when; events
  and incidents of a batch are written before it) and the KPI snapshot versions every 10 ms.
  Lag of an entry = watermark time (or KPI snapshot time) covering it − its ``XADD`` time (the
  entry id). Percentiles over every entry.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import keys  # noqa: E402
from core.citypack import load_pack  # noqa: E402
from core.redis_server import EmbeddedRedis, connect  # noqa: E402
from core.schemas import record_from_dict  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import Store  # noqa: E402
from feeds import REGISTRY as FEEDS  # noqa: E402
from simulator.offline import deliveries  # noqa: E402
from workers.consumer import Consumer, ensure_group  # noqa: E402
from workers.incident_book import IncidentBook  # noqa: E402
from workers.snapshots import refresh  # noqa: E402


def simulated(pack: Any, hours: float, seed: int = 7) -> list[tuple[str, list[Any]]]:
    """Deliveries of ``hours`` of the simulated city as (feed, records), in delivery order."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    out = []
    for d in deliveries(pack, seed=seed, start=start, duration=timedelta(hours=hours)):
        if d.records:
            out.append((d.feed, [record_from_dict(d.feed, r) for r in d.records]))
    return out


def fill(store: Store, batches: list[tuple[str, list[Any]]]) -> int:
    n = 0
    for feed, records in batches:
        for i in range(0, len(records), 1000):
            chunk = records[i:i + 1000]
            store.append(feed, chunk)
            n += len(chunk)
    return n


def ceiling(redis: Any) -> dict[str, float]:
    """Drain every stream with XREADGROUP + XACK only."""
    streams = {keys.feed_stream_key(f): f for f in FEEDS}
    for s in streams:
        redis.xgroup_create(s, "ceiling", id="0", mkstream=True)
    n, t0 = 0, time.perf_counter()
    while True:
        got = redis.xreadgroup("ceiling", "c", dict.fromkeys(streams, ">"), count=5000)
        if not got:
            break
        for stream, entries in got:
            redis.xack(stream, "ceiling", *[e for e, _ in entries])
            n += len(entries)
    seconds = time.perf_counter() - t0
    for s in streams:
        redis.xgroup_destroy(s, "ceiling")
    return {"records": n, "seconds": round(seconds, 3), "records_per_s": round(n / seconds)}


def throughput(redis: Any, store: Store, pack: Any, settings: Settings) -> dict[str, Any]:
    """One consumer in this process drains the streams."""
    for s in FEEDS:
        ensure_group(redis, keys.feed_stream_key(s))
    consumer = Consumer(redis, store, pack, IncidentBook.from_settings(redis, pack, settings),
                        refresh_kpis=lambda now: refresh(store, pack, now), kpi_every_s=settings.kpi_every_s)
    total, events, refreshes = 0, 0, 0
    t0 = time.perf_counter()
    while True:
        stats = consumer.run(0.0, block_ms=1)
        total += sum(stats.processed.values())
        events += stats.events
        refreshes += stats.kpi_refreshes
        if not stats.processed:
            break
    seconds = time.perf_counter() - t0
    return {"records": total, "seconds": round(seconds, 3), "records_per_s": round(total / seconds),
            "events": events, "kpi_refreshes": refreshes,
            "incidents": int(redis.zcard(keys.INCIDENTS_ALL))}


def lag(server: EmbeddedRedis, store: Store, batches: list[tuple[str, list[Any]]], rate: float,
        seconds: float) -> dict[str, Any]:
    """Production scheduler + worker; a producer at ``rate``; lag percentiles."""
    redis = connect(server.url)
    env = {**os.environ, "SC_REDIS_URL": server.url, "SC_LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([sys.executable, "-m", "core.cli", cmd], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for cmd in ("scheduler", "worker")]
    flat = [(feed, r) for feed, records in batches for r in records]
    per_tick = max(1, int(rate / 10))
    samples: list[tuple[int, dict[str, int], int]] = []  # (sample ms, last id ms per feed, kpi version)
    stop = threading.Event()

    def sample() -> None:
        sampler = connect(server.url)
        while not stop.is_set():
            status = sampler.hgetall(keys.ANALYTICS_STATUS)
            marks = {}
            for f in FEEDS:
                last = status.get(f"{f}:last_id".encode())
                done = status.get(f"{f}:processed_ms".encode())
                if last and done:
                    marks[f] = (int(last.split(b"-")[0]), int(done))
            versions = []
            for domain in ("ambulance", "traffic", "air", "appeals"):
                raw = sampler.get(keys.kpi_key(domain))
                if raw:
                    versions.append(json.loads(raw)["version"])
            samples.append((int(time.time() * 1000), marks, min(versions) if versions else 0))
            time.sleep(0.01)

    try:
        time.sleep(6)  # scheduler and worker up, first job running
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        offered: list[tuple[str, int]] = []
        t_end = time.time() + seconds
        i = 0
        next_at = time.time()
        while time.time() < t_end and i < len(flat):
            chunk = flat[i:i + per_tick]
            i += per_tick
            by_feed: dict[str, list[Any]] = {}
            for feed, r in chunk:
                by_feed.setdefault(feed, []).append(r)
            for feed, records in by_feed.items():
                before = int(time.time() * 1000)
                store.append(feed, records)
                offered.extend((feed, before) for _ in records)
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.time()))
        time.sleep(5)
    finally:
        stop.set()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    # per entry: the first sample whose watermark for its feed covers its XADD time (watermarks
    # only move forward, so one pointer per feed walks the samples once)
    lags, kpi_lags = [], []
    marks_of: dict[str, list[tuple[int, int]]] = {f: [] for f in FEEDS}
    for _, marks, _ in samples:
        for f, mark in marks.items():
            marks_of[f].append(mark)
    kpi_versions = [v for _, _, v in samples]
    kpi_times = [s_ms for s_ms, _, _ in samples]
    pointer = dict.fromkeys(FEEDS, 0)
    for feed, added_ms in sorted(offered, key=lambda x: x[1]):
        hits = marks_of[feed]
        k = pointer[feed]
        while k < len(hits) and hits[k][0] < added_ms:
            k += 1
        pointer[feed] = k
        if k == len(hits):
            continue
        covered = hits[k][1]
        lags.append(covered - added_ms)
        # readable = the first sample that saw a snapshot computed after the entry was processed
        m = bisect.bisect_left(kpi_times, covered)
        seen = next((kpi_times[i] for i in range(m, len(kpi_versions)) if kpi_versions[i] >= covered), None)
        if seen is not None:
            kpi_lags.append(seen - added_ms)
    redis.close()

    def pct(values: list[int], q: float) -> float | None:
        if not values:
            return None
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] / 1000

    return {"offered_per_s": rate, "seconds": seconds, "records_offered": len(offered),
            "records_measured": len(lags),
            "lag_s": {"p50": pct(lags, 0.5), "p95": pct(lags, 0.95), "p99": pct(lags, 0.99),
                      "max": max(lags) / 1000 if lags else None},
            "kpi_lag_s": {"p50": pct(kpi_lags, 0.5), "p95": pct(kpi_lags, 0.95),
                          "p99": pct(kpi_lags, 0.99)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "analytics.json")
    args = parser.parse_args(argv)
    pack = load_pack(None)
    print(f"simulating {args.hours} h of the city ...", flush=True)
    batches = simulated(pack, args.hours)
    results: dict[str, Any] = {"command": "python bench/analytics.py " + " ".join(argv or sys.argv[1:]),
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), persist=True)
        server.start()
        try:
            settings = Settings.from_env({}, redis_url=server.url)
            redis = connect(server.url)
            store = Store.from_settings(redis, settings)
            n = fill(store, batches)
            print(f"{n:,} records in the streams", flush=True)
            results["ceiling"] = ceiling(redis)
            print(f"ceiling (XREADGROUP + XACK only): {results['ceiling']['records_per_s']:,} records/s", flush=True)
            results["throughput"] = tp = throughput(redis, store, pack, settings)
            tp["ratio_to_ceiling"] = round(tp["records_per_s"] / results["ceiling"]["records_per_s"], 3)
            print(f"one worker process: {tp['records_per_s']:,} records/s ({tp['ratio_to_ceiling']} of the ceiling), "
                  f"{tp['events']} events, {tp['incidents']} incidents, {tp['kpi_refreshes']} KPI refreshes",
                  flush=True)
            redis.flushall()
            lag_batches = simulated(pack, max(1.0, 1.2 * args.rate * args.seconds / 54_000), seed=8)  # ~54k records an hour
            results["lag"] = lg = lag(server, Store.from_settings(redis, settings), lag_batches, args.rate,
                                      args.seconds)
            print(f"lag at {args.rate:,.0f} records/s offered: p50 {lg['lag_s']['p50']} s, p95 {lg['lag_s']['p95']} s,"
                  f" p99 {lg['lag_s']['p99']} s; KPI snapshot p95 {lg['kpi_lag_s']['p95']} s "
                  f"({lg['records_measured']:,} of {lg['records_offered']:,} records measured)", flush=True)
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
