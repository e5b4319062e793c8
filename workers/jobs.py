"""RQ entry points: thin shells that read a micro-batch, compute, write, then acknowledge.

Processing model (``docs/decisions.md``): one job per feed per tick reads up to
``BATCH`` entries with ``XREADGROUP`` (group ``sc-workers``), first reclaiming entries a
crashed worker left pending (``XAUTOCLAIM``), writes its results, and only then ``XACK``s.
Delivery is at least once: an entry reclaimed from a consumer that was slow rather than dead
can be counted twice in the per-minute counts. Exactly-once KPI writes (results keyed by
batch) come with the analytics workers.
"""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis as redis_lib
from rq import get_current_job

from core import keys
from core.redis_server import connect
from core.settings import Settings

log = logging.getLogger(__name__)

BATCH = 5_000
CLAIM_IDLE_MS = 60_000
ROLLUP_MINUTES_KEPT = 24 * 60


def _consumer() -> str:
    job = get_current_job()
    return f"{socket.gethostname()}:{job.worker_name if job and job.worker_name else 'local'}"


def ensure_group(redis: redis_lib.Redis, feed: str) -> None:
    """Create the workers' consumer group on ``feed``'s stream (from its start) if missing."""
    try:
        redis.xgroup_create(keys.feed_stream_key(feed), keys.WORKERS_GROUP, id="0", mkstream=True)
    except redis_lib.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def consume_feed(feed: str, redis_url: str | None = None) -> dict[str, Any]:
    """Process one micro-batch of ``feed``: per-minute record counts (the first rollup)."""
    redis = connect(redis_url or Settings.from_env().redis_url)
    try:
        return process_batch(redis, feed, _consumer())
    finally:
        redis.close()


def process_batch(redis: redis_lib.Redis, feed: str, consumer: str) -> dict[str, Any]:
    """Reclaim stale entries, read new ones, roll them up per minute, acknowledge."""
    stream = keys.feed_stream_key(feed)
    ensure_group(redis, feed)
    claimed = _reclaim(redis, stream, consumer)
    fresh = redis.xreadgroup(keys.WORKERS_GROUP, consumer, {stream: ">"}, count=BATCH)
    entries = claimed.entries + [e for _, batch in fresh for e in batch]
    if not entries and not claimed.gone:
        return {"feed": feed, "processed": 0}
    per_minute = rollup(entries)
    pipe = redis.pipeline()
    for minute, count in per_minute.items():
        pipe.hincrby(keys.rollup_key(feed), str(minute), count)
    # entries trimmed from the capped stream while pending are acknowledged too, or they
    # would be reclaimed (as nil) forever
    pipe.xack(stream, keys.WORKERS_GROUP, *[entry_id for entry_id, _ in entries], *claimed.gone)
    pipe.execute()
    trim_rollup(redis, feed)
    return {"feed": feed, "processed": len(entries), "minutes": len(per_minute)}


@dataclass(slots=True)
class Claimed:
    """Entries reclaimed from a crashed consumer: those still in the stream, and ids trimmed away."""

    entries: list[tuple[Any, dict[Any, Any]]]
    gone: list[Any]


def _reclaim(redis: redis_lib.Redis, stream: str, consumer: str) -> Claimed:
    # justid: Redis 6.2 answers deleted entries as nil bodies; with ids only, we fetch the
    # bodies that still exist ourselves. (7.0+ also lists deleted ids separately.)
    ids = redis.xautoclaim(stream, keys.WORKERS_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=BATCH,
                           justid=True)  # redis-py returns just the id list here
    if not ids:
        return Claimed([], [])
    pipe = redis.pipeline(transaction=False)
    for entry_id in ids:
        pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
    found = pipe.execute()
    entries = [hit[0] for hit in found if hit]
    gone = [entry_id for entry_id, hit in zip(ids, found, strict=True) if not hit]
    return Claimed(entries, gone)


def rollup(entries: list[tuple[Any, dict[Any, Any]]]) -> Counter[int]:
    """Records per arrival minute (epoch seconds of the minute) from stream entries. Pure."""
    out: Counter[int] = Counter()
    for entry_id, _fields in entries:
        ms = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        out[ms // 60_000 * 60] += 1
    return out


def trim_rollup(redis: redis_lib.Redis, feed: str) -> None:
    """Keep the newest ``ROLLUP_MINUTES_KEPT`` minutes of the rollup hash."""
    key = keys.rollup_key(feed)
    if redis.hlen(key) <= ROLLUP_MINUTES_KEPT:
        return
    minutes = sorted(int(m) for m in redis.hkeys(key))
    redis.hdel(key, *[str(m) for m in minutes[:-ROLLUP_MINUTES_KEPT]])


def refresh_kpis(redis_url: str | None = None) -> dict[str, int]:
    """RQ entry point: recompute the KPI snapshots from the latest state (see :mod:`workers.snapshots`)."""
    from datetime import UTC, datetime

    from core.citypack import load_pack
    from core.store import Store
    from workers.snapshots import refresh

    settings = Settings.from_env()
    redis = connect(redis_url or settings.redis_url)
    try:
        return refresh(Store.from_settings(redis, settings), load_pack(settings.city_pack), datetime.now(UTC))
    finally:
        redis.close()


def prune_latest_state(redis_url: str | None = None) -> dict[str, int]:
    """RQ entry point: drop expired calls and closed appeals from the latest state."""
    from datetime import UTC, datetime

    from workers.retention import prune_latest

    redis = connect(redis_url or Settings.from_env().redis_url)
    try:
        return prune_latest(redis, datetime.now(UTC))
    finally:
        redis.close()


def decode_entry(fields: dict[Any, Any]) -> dict[str, Any]:
    """The record dict of one stream entry."""
    raw = fields.get(b"r", fields.get("r"))
    return json.loads(raw)
