"""KPI snapshots: each domain's KPIs computed from the latest state, written once, read by every screen.

The I/O shell around the pure ``workers.kpi`` modules: read the merged latest records, compute,
write ``sc:kpi:<domain>`` (a JSON document with a version) and append one entry per minute to the
capped history stream ``sc:kpi:<domain>:history`` (entry id = the minute, so a re-run of the same
minute is a no-op). Web processes only read these documents; they never recompute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis as redis_lib

from core import keys
from core.citypack import CityPack
from core.schemas import iso
from core.store import Store
from workers.kpi import ambulance, appeals

#: Window of the response-time and time-to-close KPIs.
WINDOW = timedelta(hours=24)
#: Minutes of history kept per domain (one day).
HISTORY_MINUTES = 24 * 60


def _ambulance(store: Store, pack: CityPack, now: datetime) -> dict[str, Any]:
    calls = store.latest("ambulance", "calls").values()
    units = store.latest("ambulance", "units").values()
    return ambulance.compute(calls, units, norms=pack.norms, now=now, window=WINDOW)


def _appeals(store: Store, pack: CityPack, now: datetime) -> dict[str, Any]:
    return appeals.compute(store.latest("appeals", "requests").values(), norms=pack.norms, now=now, window=WINDOW)


#: Domains whose KPIs come from the latest state alone (traffic needs its baseline and air its
#: hourly history; they join when their jobs land).
DOMAINS: Mapping[str, Callable[[Store, CityPack, datetime], dict[str, Any]]] = {
    "ambulance": _ambulance,
    "appeals": _appeals,
}


def refresh(store: Store, pack: CityPack, now: datetime) -> dict[str, int]:
    """Compute and write every domain's snapshot; returns the version written per domain."""
    return {domain: write_snapshot(store.redis, domain, fn(store, pack, now), now)
            for domain, fn in DOMAINS.items()}


def write_snapshot(redis: redis_lib.Redis, domain: str, values: Mapping[str, Any], now: datetime) -> int:
    """Write the snapshot of ``domain`` and its minute of history. Returns the version (ms of ``now``)."""
    version = int(now.timestamp() * 1000)
    doc = orjson.dumps({"domain": domain, "version": version, "computed_at": iso(now),
                        "window_s": WINDOW.total_seconds(), "values": values})
    minute_ms = version // 60_000 * 60_000
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.kpi_key(domain), doc)
    pipe.xadd(keys.kpi_history_key(domain), {"d": doc}, id=f"{minute_ms}-0", maxlen=HISTORY_MINUTES,
              approximate=True)
    results = pipe.execute(raise_on_error=False)
    if isinstance(results[0], Exception):
        raise results[0]
    # results[1] is an error when this minute is already in the history: that is the idempotence
    return version


def read_snapshot(redis: redis_lib.Redis, domain: str) -> dict[str, Any] | None:
    """The latest snapshot of ``domain``, or None before the first one."""
    raw = redis.get(keys.kpi_key(domain))
    return None if raw is None else orjson.loads(raw)


def read_history(redis: redis_lib.Redis, domain: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per-minute snapshots of ``domain`` with minutes in ``[start, end]``, oldest first."""
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return [orjson.loads(fields[b"d"]) for _, fields in redis.xrange(keys.kpi_history_key(domain), lo, hi)]
