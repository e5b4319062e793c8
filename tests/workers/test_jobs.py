"""Analytics micro-batches against a real Redis: rollup, acknowledgement, reclaiming a crashed
consumer's entries, trimming, and one real RQ job end to end."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from core import keys
from core.schemas import AirReading
from core.units import Pollutant
from workers import jobs

pytestmark = pytest.mark.redis

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
FEED = "air"
STREAM = keys.feed_stream_key(FEED)
#: 1_800_000_000_000 ms is exactly minute 30_000_000 (epoch second 1_800_000_000).
MINUTE0_MS = 1_800_000_000_000


def readings(n: int, station: str = "st") -> list[AirReading]:
    return [AirReading(station_id=f"{station}{i}", parameter=Pollutant.PM25, value=10.0 + i, unit="ug/m3",
                       observed_at=T0 + timedelta(minutes=i), lat=43.2, lon=76.9) for i in range(n)]


def pending_count(redis) -> int:
    return int(redis.xpending(STREAM, keys.WORKERS_GROUP)["pending"])


def rollup_hash(redis, feed: str = FEED) -> dict[int, int]:
    return {int(k): int(v) for k, v in redis.hgetall(keys.rollup_key(feed)).items()}


def expected_rollup(redis) -> dict[int, int]:
    """Per-minute counts computed independently from the ids of the entries in the stream."""
    out: Counter[int] = Counter()
    for entry_id, _ in redis.xrange(STREAM):
        ms = int(entry_id.decode().split("-")[0])
        out[ms // 60_000 * 60] += 1
    return dict(out)


# --- process_batch -------------------------------------------------------------------------


def test_process_batch_rolls_up_acknowledges_and_returns_the_count(store, redis):
    store.append(FEED, readings(7))
    assert redis.xlen(STREAM) == 7
    result = jobs.process_batch(redis, FEED, "c1")
    assert result["feed"] == FEED
    assert result["processed"] == 7
    counts = rollup_hash(redis)
    assert counts == expected_rollup(redis)
    assert sum(counts.values()) == 7
    assert result["minutes"] == len(counts)
    assert all(minute % 60 == 0 for minute in counts)
    assert pending_count(redis) == 0
    groups = {g["name"].decode(): g for g in redis.xinfo_groups(STREAM)}
    assert keys.WORKERS_GROUP in groups


def test_second_call_processes_nothing_and_changes_nothing(store, redis):
    store.append(FEED, readings(5))
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 5
    before = rollup_hash(redis)
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 0
    assert jobs.process_batch(redis, FEED, "c2")["processed"] == 0
    assert rollup_hash(redis) == before
    assert pending_count(redis) == 0


def test_new_entries_after_a_batch_are_counted_once(store, redis):
    store.append(FEED, readings(3, "a"))
    jobs.process_batch(redis, FEED, "c1")
    store.append(FEED, readings(4, "b"))
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 4
    assert sum(rollup_hash(redis).values()) == 7
    assert rollup_hash(redis) == expected_rollup(redis)


def test_empty_or_missing_stream_is_fine(redis):
    assert jobs.process_batch(redis, "traffic", "c1") == {"feed": "traffic", "processed": 0}
    assert not redis.exists(keys.rollup_key("traffic"))


def test_batch_size_is_respected(store, redis, monkeypatch):
    monkeypatch.setattr(jobs, "BATCH", 4)
    store.append(FEED, readings(10))
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 4
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 4
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 2
    assert sum(rollup_hash(redis).values()) == 10


def test_the_group_reads_from_the_start_of_the_stream(store, redis):
    """Records written before any worker existed are counted too (group created at id 0)."""
    store.append(FEED, readings(3))
    jobs.ensure_group(redis, FEED)
    jobs.ensure_group(redis, FEED)  # idempotent
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 3


def _crash(redis, count: int = 100) -> list[bytes]:
    """A consumer "dead" reads entries and dies before acknowledging them."""
    jobs.ensure_group(redis, FEED)
    got = redis.xreadgroup(keys.WORKERS_GROUP, "dead", {STREAM: ">"}, count=count)
    ids = [entry_id for _, batch in got for entry_id, _ in batch]
    assert pending_count(redis) == len(ids)
    return ids


def test_entries_of_a_crashed_consumer_are_not_stolen_before_claim_idle(store, redis):
    store.append(FEED, readings(6))
    assert len(_crash(redis)) == 6
    assert jobs.CLAIM_IDLE_MS >= 1000
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 0
    assert pending_count(redis) == 6
    assert rollup_hash(redis) == {}


def test_entries_of_a_crashed_consumer_are_reclaimed_after_claim_idle(store, redis, monkeypatch):
    store.append(FEED, readings(6))
    dead_ids = _crash(redis)
    store.append(FEED, readings(2, "later"))  # plus fresh entries nobody read yet
    monkeypatch.setattr(jobs, "CLAIM_IDLE_MS", 0)
    result = jobs.process_batch(redis, FEED, "c1")
    assert result["processed"] == 8
    assert pending_count(redis) == 0
    assert rollup_hash(redis) == expected_rollup(redis)
    assert sum(rollup_hash(redis).values()) == 8
    consumers = {c["name"].decode(): c["pending"] for c in redis.xinfo_consumers(STREAM, keys.WORKERS_GROUP)}
    assert consumers.get("dead", 0) == 0
    assert len(dead_ids) == 6
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 0


def test_reclaim_survives_entries_trimmed_away_while_pending(store, redis, monkeypatch):
    """A crashed consumer's entries can be trimmed from the capped stream (MAXLEN ~) before they are
    reclaimed. Redis 6.2 (the embedded server) then answers XAUTOCLAIM with nil entries; the batch must
    skip and acknowledge them, not fail (a failing batch would stall the feed's analytics for good)."""
    store.append(FEED, readings(4))
    ids = _crash(redis)
    redis.xdel(STREAM, ids[0], ids[1])  # gone while still pending
    store.append(FEED, readings(2, "later"))
    monkeypatch.setattr(jobs, "CLAIM_IDLE_MS", 0)
    result = jobs.process_batch(redis, FEED, "c1")
    assert result["processed"] in (4, 6)  # the two deleted entries count or not, but nothing crashes
    assert sum(rollup_hash(redis).values()) == 4
    assert pending_count(redis) == 0
    assert jobs.process_batch(redis, FEED, "c1")["processed"] == 0


# --- rollup and trim_rollup --------------------------------------------------------------


def test_rollup_counts_per_arrival_minute():
    entries = [
        (f"{MINUTE0_MS}-0", {}),
        (f"{MINUTE0_MS}-1", {b"r": b"{}"}),
        (f"{MINUTE0_MS + 59_999}-0".encode(), {}),      # last ms of the first minute, as bytes
        (f"{MINUTE0_MS + 60_000}-0", {}),               # first ms of the next minute
        (f"{MINUTE0_MS + 10 * 60_000 + 123}-7", {}),
    ]
    out = jobs.rollup(entries)
    assert out == {1_800_000_000: 3, 1_800_000_060: 1, 1_800_000_600: 1}
    assert all(isinstance(k, int) for k in out)


def test_rollup_of_nothing_is_empty():
    assert jobs.rollup([]) == {}


def test_rollup_before_1970_is_floored():
    assert jobs.rollup([("59999-0", {}), ("0-1", {})]) == {0: 2}


def test_trim_rollup_keeps_the_newest_minutes(redis, monkeypatch):
    monkeypatch.setattr(jobs, "ROLLUP_MINUTES_KEPT", 3)
    key = keys.rollup_key(FEED)
    # minutes chosen so that string order differs from numeric order
    minutes = [60, 120, 600, 1_200, 6_000, 60_000]
    redis.hset(key, mapping={str(m): i + 1 for i, m in enumerate(minutes)})
    jobs.trim_rollup(redis, FEED)
    assert rollup_hash(redis) == {1_200: 4, 6_000: 5, 60_000: 6}


def test_trim_rollup_leaves_a_short_hash_alone(redis, monkeypatch):
    monkeypatch.setattr(jobs, "ROLLUP_MINUTES_KEPT", 3)
    redis.hset(keys.rollup_key(FEED), mapping={"60": 1, "120": 2, "180": 3})
    jobs.trim_rollup(redis, FEED)
    assert rollup_hash(redis) == {60: 1, 120: 2, 180: 3}
    jobs.trim_rollup(redis, "traffic")  # no hash at all
    assert not redis.exists(keys.rollup_key("traffic"))


def test_process_batch_trims_to_the_newest_minutes(redis, monkeypatch):
    monkeypatch.setattr(jobs, "ROLLUP_MINUTES_KEPT", 2)
    for minute in range(5):
        for seq in range(minute + 1):
            redis.xadd(STREAM, {"r": "{}"}, id=f"{MINUTE0_MS + minute * 60_000}-{seq}")
    result = jobs.process_batch(redis, FEED, "c1")
    assert result["processed"] == 15 and result["minutes"] == 5
    assert rollup_hash(redis) == {1_800_000_180: 4, 1_800_000_240: 5}
    assert pending_count(redis) == 0


def test_decode_entry():
    assert jobs.decode_entry({b"r": b'{"kind": "readings", "value": 1}'}) == {"kind": "readings", "value": 1}
    assert jobs.decode_entry({"r": '{"a": 2}'}) == {"a": 2}


# --- a real RQ job -----------------------------------------------------------------------


def test_consume_feed_runs_as_a_real_rq_job(store, redis, redis_server):
    from rq import Queue, SimpleWorker
    from rq.job import JobStatus

    store.append(FEED, readings(9))
    queue = Queue(keys.JOBS_QUEUE, connection=redis)
    job = queue.enqueue(jobs.consume_feed, FEED, redis_server.url)
    worked = SimpleWorker([queue], connection=redis).work(burst=True)
    assert worked
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    result = job.return_value()
    assert result["feed"] == FEED and result["processed"] == 9
    assert redis.exists(keys.rollup_key(FEED))
    assert sum(rollup_hash(redis).values()) == 9
    assert pending_count(redis) == 0
    consumers = [c["name"].decode() for c in redis.xinfo_consumers(STREAM, keys.WORKERS_GROUP)]
    assert consumers and all(c != "c1" and ":" in c for c in consumers), consumers
