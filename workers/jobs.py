"""RQ entry points: thin shells that connect, build the pieces and call the code that does the work.

Processing model (``docs/decisions.md``): the scheduler enqueues :func:`run_analytics` every
``SC_TICK_S``; the job that gets the lock consumes every feed stream for about one tick with
blocking reads (:mod:`workers.consumer`), so records are turned into KPIs, events and incidents
within milliseconds of arriving, and jobs enqueued meanwhile find the lock taken and return at
once. A job is never one record: a forking RQ worker runs about 94 jobs/s here.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any

from rq import get_current_job

from core.redis_server import connect
from core.settings import Settings

log = logging.getLogger(__name__)

_PRELOADED: dict[str, Any] = {}


def preload(settings: Settings) -> None:
    """Import and load what every job needs once, in the worker's parent process, so each forked
    job starts warm (the city pack, the detectors' modules, pandas)."""
    from core.citypack import load_pack
    from workers.analytics import load_rules_config
    from workers.rules import detector_classes

    detector_classes()
    _PRELOADED["pack"] = load_pack(settings.city_pack)
    _PRELOADED["rules"] = load_rules_config(settings.rules_file)


def _pack(settings: Settings) -> Any:
    from core.citypack import load_pack

    if "pack" not in _PRELOADED:
        _PRELOADED["pack"] = load_pack(settings.city_pack)
    return _PRELOADED["pack"]


def _rules(settings: Settings) -> Any:
    from workers.analytics import load_rules_config

    if "rules" not in _PRELOADED:
        _PRELOADED["rules"] = load_rules_config(settings.rules_file)
    return _PRELOADED["rules"]


def _consumer_name() -> str:
    job = get_current_job()
    return f"{socket.gethostname()}:{job.worker_name if job and job.worker_name else 'local'}"


def run_analytics(budget_s: float | None = None, redis_url: str | None = None) -> dict[str, Any]:
    """RQ entry point: consume the feed streams for about ``budget_s`` (default ``SC_TICK_S``)."""
    from core.store import Store
    from workers.consumer import Consumer
    from workers.incident_book import IncidentBook
    from workers.snapshots import refresh

    settings = Settings.from_env()
    redis = connect(redis_url or settings.redis_url)
    pack = _pack(settings)
    store = Store.from_settings(redis, settings)
    try:
        consumer = Consumer(redis, store, pack, IncidentBook.from_settings(redis, pack, settings),
                            refresh_kpis=lambda now: refresh(store, pack, now), overrides=_rules(settings),
                            name=_consumer_name(), kpi_every_s=settings.kpi_every_s)
        return consumer.run(settings.tick_s * 0.9 if budget_s is None else budget_s).to_json()
    finally:
        redis.close()


def refresh_kpis(redis_url: str | None = None) -> dict[str, int]:
    """Recompute the KPI snapshots once (the analytics loop does this as data arrives)."""
    from core.store import Store
    from workers.snapshots import refresh

    settings = Settings.from_env()
    redis = connect(redis_url or settings.redis_url)
    try:
        return refresh(Store.from_settings(redis, settings), _pack(settings), datetime.now(UTC))
    finally:
        redis.close()


def prune_latest_state(redis_url: str | None = None) -> dict[str, int]:
    """RQ entry point (hourly): drop expired calls and closed appeals from the latest state, and
    resolved incidents past their retention."""
    from workers.incidents import IncidentStore
    from workers.retention import prune_latest

    settings = Settings.from_env()
    redis = connect(redis_url or settings.redis_url)
    try:
        now = datetime.now(UTC)
        out = prune_latest(redis, now)
        out["incidents"] = IncidentStore(redis, _pack(settings).zone).prune(now)
        return out
    finally:
        redis.close()
