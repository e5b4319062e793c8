"""Fill a Redis with the last hours of the simulated city, analysed: for UI tests, screenshots, benchmarks.

The simulator's records (offline, through the real parsers) are written with the real store, then
the analytics loop (every detector, correlation into incidents, KPI snapshots) consumes them, as
if ``sitcen run`` had been running for those hours. Ambulance positions are kept only for the last
``positions_min`` minutes (they are most of the volume and screens show only the latest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.schemas import record_from_dict
from core.settings import Settings
from core.store import Store
from simulator.offline import deliveries


def seed(redis: Any, pack: Any, *, hours: float = 12.0, seed: int = 3, end: datetime | None = None,
         positions_min: float = 10.0, settings: Settings | None = None) -> dict[str, Any]:
    """Write ``hours`` of the simulated city ending at ``end`` (default now) and analyse them.

    Returns counts: records written per feed, events, incidents.
    """
    from workers.consumer import Consumer
    from workers.incident_book import IncidentBook
    from workers.snapshots import refresh

    settings = settings or Settings.from_env({})
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    start = end - timedelta(hours=hours)
    store = Store.from_settings(redis, settings)
    keep_positions_from = end - timedelta(minutes=positions_min)
    written: dict[str, int] = {}
    consumer = Consumer(redis, store, pack, IncidentBook.from_settings(redis, pack, settings),
                        refresh_kpis=None, name="seed", clock=lambda: clock[0])
    clock = [start.timestamp()]
    pending: dict[str, list[Any]] = {}
    for delivery in deliveries(pack, seed=seed, start=start, duration=end - start):
        if delivery.feed == "ambulance" and delivery.at < keep_positions_from:
            records = [r for r in delivery.records if r.get("kind") != "units"]
        else:
            records = delivery.records
        if not records:
            continue
        pending.setdefault(delivery.feed, []).extend(record_from_dict(delivery.feed, r) for r in records)
        if sum(len(v) for v in pending.values()) >= 2_000 or delivery.at.timestamp() - clock[0] >= 60:
            _flush(store, pending, written)
            clock[0] = delivery.at.timestamp()
            consumer.run(0.0, block_ms=1)  # the detectors see the data at (simulated) time
    _flush(store, pending, written)
    clock[0] = end.timestamp()
    stats = consumer.run(0.0, block_ms=1)
    refresh(store, pack, end)
    return {"written": written, "events": stats.events, "until": end.isoformat()}


def _flush(store: Store, pending: dict[str, list[Any]], written: dict[str, int]) -> None:
    for feed, records in pending.items():
        for i in range(0, len(records), 1000):
            store.append(feed, records[i:i + 1000])
        written[feed] = written.get(feed, 0) + len(records)
    pending.clear()
