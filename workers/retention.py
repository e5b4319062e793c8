"""Retention of the latest-state hashes of entities that come and go (calls, appeals).

Stations, units, segments and scores are bounded by the city; calls and appeals are not: every
call ever made would stay in ``sc:latest:{ambulance}:calls``. This job drops a call whose newest
update is older than ``CALLS_KEEP`` and an appeal that is closed and untouched for
``APPEALS_KEEP``; open appeals stay however old they are. The streams keep the history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import redis as redis_lib

from core import keys

CALLS_KEEP = timedelta(hours=48)
APPEALS_KEEP = timedelta(days=30)
SCAN_COUNT = 1000


def prune_latest(redis: redis_lib.Redis, now: datetime) -> dict[str, int]:
    """Drop expired calls and closed appeals from the latest state. Returns how many per kind."""
    return {
        "calls": _prune(redis, "ambulance", "calls", now - CALLS_KEEP, keep=None),
        "requests": _prune(redis, "appeals", "requests", now - APPEALS_KEEP, keep=_is_open),
    }


def _is_open(record: dict[str, Any]) -> bool:
    return record.get("status") != "closed"


def _prune(redis: redis_lib.Redis, feed: str, kind: str, before: datetime, keep: Any) -> int:
    limit = int(before.timestamp() * 1000)
    latest, versions = keys.latest_key(feed, kind), keys.latest_version_key(feed, kind)
    old = [entity for entity, version in redis.hscan_iter(versions, count=SCAN_COUNT) if int(version) < limit]
    if keep is not None and old:
        bodies = redis.hmget(latest, old)
        old = [e for e, body in zip(old, bodies, strict=True) if body is None or not keep(orjson.loads(body))]
    for start in range(0, len(old), SCAN_COUNT):
        chunk = old[start:start + SCAN_COUNT]
        pipe = redis.pipeline()
        pipe.hdel(latest, *chunk)
        pipe.hdel(versions, *chunk)
        pipe.execute()
    return len(old)
