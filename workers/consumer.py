"""The analytics loop: feed streams in, KPIs, events and incidents out. The I/O shell of the engine.

One RQ job (:func:`workers.jobs.run_analytics`, enqueued every ``SC_TICK_S``) holds a lock and,
for about one tick, reads every feed stream with one blocking ``XREADGROUP`` (group
``sc-workers``), so a record is processed within milliseconds of its ``XADD`` rather than at the
next tick. Per batch it:

1. decodes the entries (an undecodable entry goes to the feed's dead letters, code ``bad_entry``);
2. counts records per minute (the rollup) and runs the detectors (:class:`workers.analytics.Engine`);
3. writes the events (``sc:events`` stream, the active-events hash) and routes them into incidents
   (:mod:`workers.correlate`, :mod:`workers.incidents`);
4. then ``XACK``s, and records its watermark (last entry and time per feed) in ``sc:analytics:status``.

KPI snapshots (:mod:`workers.snapshots`) are refreshed in the same loop when a domain's data
changed, at most every ``kpi_every_s``.

Crash safety: the lock expires if its holder dies; the next job reclaims every pending entry
(``XAUTOCLAIM`` from idle 0: holding the lock, nobody else can own them); an entry delivered
``MAX_DELIVERIES`` times is processed alone, and if it fails alone it goes to the dead letters
with the error, so one poison entry never blocks a stream. Detector state (pickled
:class:`~workers.analytics.Engine`) is saved every ``save_every_s`` and at the end; after a crash
the reclaimed entries are replayed into the last saved state, and events keep their ids (the
episode's onset), so incidents fold them in again instead of doubling them.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis as redis_lib

from core import keys
from core.store import DeadLetter, Store
from feeds import REGISTRY as FEEDS
from workers.analytics import STATE_VERSION, Engine
from workers.correlate import SituationBook, apply
from workers.rules.base import Event

log = logging.getLogger(__name__)

BATCH = 5_000
MAX_DELIVERIES = 3
EVENTS_MAXLEN = 100_000
ROLLUP_MINUTES_KEPT = 24 * 60

#: Feed -> KPI domain refreshed when it has new records.
DOMAIN_OF_FEED = {"air": "air", "traffic": "traffic", "ambulance": "ambulance", "appeals": "appeals"}

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass
class LoopStats:
    """What one run of the loop did."""

    processed: Counter[str] = field(default_factory=Counter)
    events: int = 0
    dead: int = 0
    reclaimed: int = 0
    kpi_refreshes: int = 0
    skipped: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"processed": dict(self.processed), "events": self.events, "dead": self.dead,
                "reclaimed": self.reclaimed, "kpi_refreshes": self.kpi_refreshes, "skipped": self.skipped}


class Consumer:
    """One run of the analytics loop on one Redis.

    Args:
        redis: client (``decode_responses=False``).
        store: the feed store (dead letters, latest state for KPIs).
        pack: the city pack.
        book: where situations go (the incident store in production).
        refresh_kpis: ``f(now) -> None`` recomputing the KPI snapshots (None: not here).
        overrides: detector parameters (``SC_RULES_FILE``).
        name: consumer name in the group.
        clock: wall clock (seconds), replaceable in tests.
    """

    def __init__(self, redis: redis_lib.Redis, store: Store, pack: Any, book: SituationBook, *,
                 refresh_kpis: Callable[[datetime], Any] | None = None,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None, name: str | None = None,
                 feeds: Sequence[str] | None = None, kpi_every_s: float = 1.0, save_every_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.store = store
        self.pack = pack
        self.book = book
        self.refresh_kpis = refresh_kpis
        self.overrides = overrides or {}
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.feeds = list(feeds or FEEDS)
        self.streams = {keys.feed_stream_key(f): f for f in self.feeds}
        self.kpi_every_s = kpi_every_s
        self.save_every_s = save_every_s
        self.clock = clock
        self.token = uuid.uuid4().hex
        self.engine: Engine | None = None
        self._dirty_domains: set[str] = set()
        self._last_kpi = 0.0
        self._last_tick = 0.0
        self._last_save = 0.0

    # --- the loop -------------------------------------------------------------------------

    def run(self, budget_s: float, *, block_ms: int = 200) -> LoopStats:
        """Consume for about ``budget_s`` seconds (one pass at least). Returns what was done."""
        stats = LoopStats()
        lock_ms = int((budget_s + 60) * 1000)
        if not self.redis.set(keys.ANALYTICS_LOCK, self.token, nx=True, px=lock_ms):
            stats.skipped = "another analytics job holds the lock"
            return stats
        try:
            self.engine = self._load_engine()
            for stream in self.streams:
                ensure_group(self.redis, stream)
            self._reclaim(stats)
            deadline = self.clock() + budget_s
            while True:
                self._pass(stats, block_ms)
                self.redis.eval(_RENEW, 1, keys.ANALYTICS_LOCK, self.token, lock_ms)
                if self.clock() >= deadline:
                    break
            self._save_engine()
        finally:
            self.redis.eval(_RELEASE, 1, keys.ANALYTICS_LOCK, self.token)
        return stats

    def _pass(self, stats: LoopStats, block_ms: int) -> None:
        fresh = self.redis.xreadgroup(keys.WORKERS_GROUP, self.name, dict.fromkeys(self.streams, ">"),
                                      count=BATCH, block=block_ms)
        for stream, entries in fresh or ():
            feed = self.streams[_s(stream)]
            self._process(feed, entries, stats)
        self._periodic(stats)

    def _periodic(self, stats: LoopStats) -> None:
        wall = self.clock()
        now = datetime.fromtimestamp(wall, UTC)
        if wall - self._last_tick >= 1.0:
            self._last_tick = wall
            assert self.engine is not None
            stats.events += self._emit(self.engine.tick(now), now)
        if self.refresh_kpis is not None and self._dirty_domains and wall - self._last_kpi >= self.kpi_every_s:
            self._last_kpi = wall
            self._dirty_domains.clear()
            try:
                self.refresh_kpis(now)
                stats.kpi_refreshes += 1
            except redis_lib.RedisError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("KPI refresh failed; the previous snapshots stay")
        if wall - self._last_save >= self.save_every_s:
            self._save_engine()
            for feed in self.feeds:
                trim_rollup(self.redis, feed)

    def _process(self, feed: str, entries: list[tuple[Any, Mapping[Any, Any]]], stats: LoopStats) -> None:
        """Decode, detect, write, acknowledge one batch of one feed."""
        if not entries:
            return
        records: list[dict[str, Any]] = []
        dead: list[DeadLetter] = []
        for entry_id, fields in entries:
            try:
                records.append(decode(fields))
            except (ValueError, TypeError, KeyError) as err:
                dead.append(DeadLetter(index=-1, code="bad_entry",
                                       error=f"stream entry {_s(entry_id)} of {feed}: cannot decode: {err}",
                                       raw=_raw(fields)))
        now = datetime.fromtimestamp(self.clock(), UTC)
        assert self.engine is not None
        events = self.engine.step(feed, records, now)
        stats.events += self._emit(events, now)
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.redis.pipeline(transaction=False)
        for minute, count in rollup(ids).items():
            pipe.hincrby(keys.rollup_key(feed), str(minute), count)
        pipe.xack(keys.feed_stream_key(feed), keys.WORKERS_GROUP, *ids)
        pipe.hset(keys.ANALYTICS_STATUS, mapping={
            f"{feed}:last_id": _s(ids[-1]), f"{feed}:processed_ms": int(self.clock() * 1000)})
        pipe.hincrby(keys.ANALYTICS_STATUS, f"{feed}:processed_total", len(entries))
        pipe.execute()
        if dead:
            self.store.dead_letter(feed, dead, transport="analytics")
            stats.dead += len(dead)
        stats.processed[feed] += len(entries)
        self._dirty_domains.add(DOMAIN_OF_FEED.get(feed, feed))

    def _emit(self, events: Sequence[Event], now: datetime) -> int:
        """Write events (stream, active hash) and route them into situations."""
        if not events:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            doc = orjson.dumps(event.to_json())
            pipe.xadd(keys.EVENTS, {"e": doc}, maxlen=EVENTS_MAXLEN, approximate=True)
            if event.phase == "closed":
                pipe.hdel(keys.EVENTS_ACTIVE, event.id)
            else:
                pipe.hset(keys.EVENTS_ACTIVE, event.id, doc)
        pipe.hincrby(keys.VERSIONS, "events", 1)
        pipe.execute()
        apply(events, self.book, now)
        return len(events)

    # --- crash recovery -------------------------------------------------------------------

    def _reclaim(self, stats: LoopStats) -> None:
        """Take over every pending entry (we hold the lock, so their consumer is gone)."""
        for stream, feed in self.streams.items():
            start = "0-0"
            while True:
                reply = self.redis.xautoclaim(stream, keys.WORKERS_GROUP, self.name, 0, start, count=BATCH,
                                              justid=True)
                ids = list(reply or [])  # redis-py answers a justid claim with the id list alone
                if not ids:
                    break
                self._replay(stream, feed, ids, stats)
                stats.reclaimed += len(ids)
                if len(ids) < BATCH:
                    break

    def _replay(self, stream: str, feed: str, ids: list[Any], stats: LoopStats) -> None:
        pending = self.redis.xpending_range(stream, keys.WORKERS_GROUP, min=ids[0], max=ids[-1], count=len(ids))
        # a JUSTID claim does not count as a delivery; count it ourselves so a poison entry shows
        deliveries = {_s(p["message_id"]): p["times_delivered"] + 1 for p in pending}
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, times in deliveries.items():
            pipe.xclaim(stream, keys.WORKERS_GROUP, self.name, 0, [entry_id], retrycount=times, justid=True)
        pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
        found = pipe.execute()
        gone = [entry_id for entry_id, hit in zip(ids, found, strict=True) if not hit]
        if gone:  # trimmed from the capped stream while pending: nothing left to process
            self.redis.xack(stream, keys.WORKERS_GROUP, *gone)
        entries = [hit[0] for hit in found if hit]
        suspect = [e for e in entries if deliveries.get(_s(e[0]), 0) >= MAX_DELIVERIES]
        normal = [e for e in entries if deliveries.get(_s(e[0]), 0) < MAX_DELIVERIES]
        self._process(feed, normal, stats)
        for entry in suspect:  # alone, so a poison entry is found and set aside
            try:
                self._process(feed, [entry], stats)
            except redis_lib.RedisError:
                raise
            except Exception as err:  # noqa: BLE001
                log.exception("entry %s of %s failed %d times; moved to dead letters", _s(entry[0]), feed,
                              deliveries.get(_s(entry[0]), 0))
                self.store.dead_letter(feed, [DeadLetter(
                    index=-1, code="poison_entry",
                    error=f"stream entry {_s(entry[0])} failed analytics {MAX_DELIVERIES} times: "
                          f"{type(err).__name__}: {err}", raw=_raw(entry[1]))], transport="analytics")
                self.redis.xack(stream, keys.WORKERS_GROUP, entry[0])
                stats.dead += 1

    # --- detector state ---------------------------------------------------------------------

    def _load_engine(self) -> Engine:
        raw = self.redis.get(keys.detector_state_key("engine"))
        if raw:
            try:
                saved = load_state(raw, self.pack)
                if (isinstance(saved, dict) and saved.get("version") == STATE_VERSION
                        and saved.get("overrides") == self.overrides):
                    return saved["engine"]
                log.info("detector state is from another version or configuration; starting afresh")
            except Exception:  # noqa: BLE001
                log.exception("detector state unreadable; starting afresh")
        return Engine(self.pack, self.overrides)

    def _save_engine(self) -> None:
        if self.engine is None:
            return
        self._last_save = self.clock()
        blob = dump_state({"version": STATE_VERSION, "overrides": self.overrides, "engine": self.engine}, self.pack)
        self.redis.set(keys.detector_state_key("engine"), blob)


class _Pickler(pickle.Pickler):
    def __init__(self, buffer: io.BytesIO, pack: Any) -> None:
        super().__init__(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        self.pack = pack

    def persistent_id(self, obj: Any) -> str | None:  # noqa: D102
        return "pack" if obj is self.pack else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, buffer: io.BytesIO, pack: Any) -> None:
        super().__init__(buffer)
        self.pack = pack

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        if pid == "pack":
            return self.pack
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


def dump_state(state: Any, pack: Any) -> bytes:
    """Pickle detector state; the city pack is left out (referenced), it is the worker's own."""
    buffer = io.BytesIO()
    _Pickler(buffer, pack).dump(state)
    return buffer.getvalue()


def load_state(blob: bytes, pack: Any) -> Any:
    """Inverse of :func:`dump_state`, with the worker's current pack put back."""
    return _Unpickler(io.BytesIO(blob), pack).load()  # our own state, in our own Redis


def ensure_group(redis: redis_lib.Redis, stream: str) -> None:
    """Create the workers' consumer group on ``stream`` (from its start) if missing."""
    try:
        redis.xgroup_create(stream, keys.WORKERS_GROUP, id="0", mkstream=True)
    except redis_lib.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def trim_rollup(redis: redis_lib.Redis, feed: str) -> None:
    """Keep the newest ``ROLLUP_MINUTES_KEPT`` minutes of a feed's rollup hash."""
    key = keys.rollup_key(feed)
    if redis.hlen(key) <= ROLLUP_MINUTES_KEPT:
        return
    minutes = sorted(int(m) for m in redis.hkeys(key))
    redis.hdel(key, *[str(m) for m in minutes[:-ROLLUP_MINUTES_KEPT]])


def decode(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """The record dict of one stream entry.

    Raises:
        KeyError: no record field; ValueError: not JSON; TypeError: not an object.
    """
    raw = fields[b"r"] if b"r" in fields else fields["r"]
    record = orjson.loads(raw)
    if not isinstance(record, dict):
        raise TypeError(f"record is {type(record).__name__}, not an object")
    return record


def rollup(ids: Sequence[Any]) -> Counter[int]:
    """Entries per arrival minute (epoch seconds of the minute) from stream ids. Pure."""
    out: Counter[int] = Counter()
    for entry_id in ids:
        ms = int(_s(entry_id).split("-", 1)[0])
        out[ms // 60_000 * 60] += 1
    return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raw(fields: Mapping[Any, Any]) -> bytes:
    return orjson.dumps({_s(k): _s(v) if isinstance(v, bytes) else v for k, v in fields.items()},
                        default=str)
