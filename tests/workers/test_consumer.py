"""The analytics loop against a real Redis: it consumes, detects, writes events and situations,
acknowledges; it survives a crashed consumer, trimmed entries, undecodable and poison entries; it
keeps detector state between jobs and lets only one job consume at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import keys
from core.citypack import load_pack
from core.schemas import AirReading
from core.units import Pollutant
from workers import consumer as consumer_mod
from workers import rules
from workers.consumer import Consumer, load_state, rollup
from workers.correlate import MemoryBook
from workers.rules.base import WARNING, Detector, Episodes, Event

pytestmark = pytest.mark.redis

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
FEED = "air"
STREAM = keys.feed_stream_key(FEED)
MINUTE0_MS = 1_800_000_000_000


class HighValue(Detector):
    """Test detector: a station whose reading is above ``limit`` opens an event; it counts records seen."""

    name = "high_value"
    feeds = frozenset({"air"})

    @dataclass(frozen=True)
    class Params:
        limit: float = 100.0

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.seen = 0
        self.episodes = Episodes(self.name, "air.aqi", clear_after=timedelta(0))

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        out = []
        for r in records:
            self.seen += 1
            if r.get("explode"):
                raise RuntimeError("boom")
            event = self.episodes.report(r["station_id"], r["value"] > self.params.limit, now, severity=WARNING,
                                         lat=r["lat"], lon=r["lon"], evidence={"value": r["value"]})
            if event:
                out.append(event)
        return out


@pytest.fixture(autouse=True)
def only_the_test_detector(monkeypatch):
    monkeypatch.setattr(rules, "REGISTRY", ("tests.workers.test_consumer:HighValue",))


@pytest.fixture(scope="module")
def pack():
    return load_pack(None)


def readings(values: Sequence[float], station: str = "st") -> list[AirReading]:
    return [AirReading(station_id=f"{station}{i}", parameter=Pollutant.PM25, value=v, unit="ug/m3",
                       observed_at=T0 + timedelta(minutes=i), lat=43.2, lon=76.9) for i, v in enumerate(values)]


def make(redis, store, pack, **kw) -> Consumer:
    book = kw.pop("book", MemoryBook())
    return Consumer(redis, store, pack, book, feeds=[FEED], name=kw.pop("name", "c1"), **kw)


def pending(redis) -> int:
    return int(redis.xpending(STREAM, keys.WORKERS_GROUP)["pending"])


def rollup_hash(redis) -> dict[int, int]:
    return {int(k): int(v) for k, v in redis.hgetall(keys.rollup_key(FEED)).items()}


def test_consumes_detects_writes_events_and_acknowledges(redis, store, pack):
    store.append(FEED, readings([10, 250, 20]))
    book = MemoryBook()
    stats = make(redis, store, pack, book=book).run(0.0, block_ms=10)
    assert stats.processed == {FEED: 3}
    assert stats.events == 1
    assert pending(redis) == 0
    # the event is in the events stream, in the active hash, and started a situation
    [(_, fields)] = redis.xrange(keys.EVENTS)
    event = Event.from_json(__import__("orjson").loads(fields[b"e"]))
    assert event.key == "st1" and event.phase == "open" and event.evidence == {"value": 250.0}
    assert redis.hexists(keys.EVENTS_ACTIVE, event.id)
    [situation] = book.situations.values()
    assert situation.type == "air_pollution" and list(situation.events) == [event.id]
    # the rollup counts entries per arrival minute, and the watermark names the last entry
    assert sum(rollup_hash(redis).values()) == 3
    last_id = redis.xrevrange(STREAM, count=1)[0][0]
    assert redis.hget(keys.ANALYTICS_STATUS, f"{FEED}:last_id") == last_id
    assert int(redis.hget(keys.ANALYTICS_STATUS, f"{FEED}:processed_total")) == 3


def test_an_event_that_closes_leaves_the_active_hash(redis, store, pack):
    store.append(FEED, readings([250]))
    make(redis, store, pack).run(0.0, block_ms=10)
    assert redis.hlen(keys.EVENTS_ACTIVE) == 1
    store.append(FEED, [AirReading(station_id="st0", parameter=Pollutant.PM25, value=5.0, unit="ug/m3",
                                   observed_at=T0 + timedelta(hours=1), lat=43.2, lon=76.9)])
    make(redis, store, pack).run(0.0, block_ms=10)
    assert redis.hlen(keys.EVENTS_ACTIVE) == 0
    phases = [__import__("orjson").loads(f[b"e"])["phase"] for _, f in redis.xrange(keys.EVENTS)]
    assert phases == ["open", "closed"]


def test_detector_state_survives_between_jobs(redis, store, pack):
    store.append(FEED, readings([1, 2]))
    make(redis, store, pack).run(0.0, block_ms=10)
    store.append(FEED, readings([3, 4, 5], station="b"))
    make(redis, store, pack).run(0.0, block_ms=10)
    saved = load_state(redis.get(keys.detector_state_key("engine")), load_pack(None))
    [detector] = saved["engine"].detectors
    assert detector.seen == 5


def test_state_of_another_configuration_is_not_reused(redis, store, pack):
    store.append(FEED, readings([1, 2]))
    make(redis, store, pack).run(0.0, block_ms=10)
    store.append(FEED, readings([3]))
    make(redis, store, pack, overrides={"high_value": {"limit": 1.0}}).run(0.0, block_ms=10)
    [detector] = load_state(redis.get(keys.detector_state_key("engine")), load_pack(None))["engine"].detectors
    assert detector.seen == 1 and detector.params.limit == 1.0


def test_only_one_job_consumes_at_a_time(redis, store, pack):
    redis.set(keys.ANALYTICS_LOCK, "someone-else", px=60_000)
    store.append(FEED, readings([1]))
    stats = make(redis, store, pack).run(0.0, block_ms=10)
    assert stats.skipped and not stats.processed
    assert redis.xlen(STREAM) == 1 and not redis.exists(keys.rollup_key(FEED))
    assert redis.get(keys.ANALYTICS_LOCK) == b"someone-else"  # not released by a job that never held it


def test_the_lock_is_released_after_a_run(redis, store, pack):
    make(redis, store, pack).run(0.0, block_ms=10)
    assert not redis.exists(keys.ANALYTICS_LOCK)


def _crash(redis, count: int = 100) -> list[bytes]:
    """A job reads entries and dies before acknowledging them (its lock expired)."""
    consumer_mod.ensure_group(redis, STREAM)
    got = redis.xreadgroup(keys.WORKERS_GROUP, "dead", {STREAM: ">"}, count=count)
    return [entry_id for _, batch in got for entry_id, _ in batch]


def test_entries_of_a_crashed_job_are_reclaimed_and_processed(redis, store, pack):
    store.append(FEED, readings([1, 2, 300, 4]))
    assert len(_crash(redis)) == 4
    store.append(FEED, readings([5, 6], station="later"))
    stats = make(redis, store, pack).run(0.0, block_ms=10)
    assert stats.reclaimed == 4
    assert stats.processed[FEED] == 6
    assert stats.events == 1
    assert pending(redis) == 0
    owners = {c["name"].decode(): c["pending"] for c in redis.xinfo_consumers(STREAM, keys.WORKERS_GROUP)}
    assert owners.get("dead", 0) == 0


def test_entries_trimmed_while_pending_are_acknowledged_not_fatal(redis, store, pack):
    store.append(FEED, readings([1, 2, 3, 4]))
    ids = _crash(redis)
    redis.xdel(STREAM, ids[0], ids[1])
    stats = make(redis, store, pack).run(0.0, block_ms=10)
    assert stats.processed[FEED] == 2
    assert pending(redis) == 0


def test_an_undecodable_entry_goes_to_dead_letters_and_its_neighbours_are_processed(redis, store, pack):
    store.append(FEED, readings([1]))
    redis.xadd(STREAM, {"r": b"{not json"})
    redis.xadd(STREAM, {"x": b"no record field"})
    store.append(FEED, readings([400], station="after"))
    stats = make(redis, store, pack).run(0.0, block_ms=10)
    assert stats.processed[FEED] == 4 and stats.dead == 2 and stats.events == 1
    letters = store.dead_letters(FEED)
    assert {letter["code"] for letter in letters} == {"bad_entry"}
    assert any("not json" in letter["raw"] for letter in letters)
    assert all("cannot decode" in letter["error"] and "stream entry" in letter["error"] for letter in letters)
    assert pending(redis) == 0


def test_a_poison_entry_is_set_aside_after_repeated_failures(redis, store, pack, monkeypatch):
    """An entry that makes the job fail (outside a detector's guard) is retried, then processed alone
    and moved to the dead letters; the entries around it are processed."""
    store.append(FEED, readings([1]))
    redis.xadd(STREAM, {"r": b'{"kind": "readings", "station_id": "p", "value": 1, "lat": 0, "lon": 0}'})
    store.append(FEED, readings([2], station="z"))
    real_step = consumer_mod.Engine.step

    def fragile(self, feed, records, now):
        if any(r.get("station_id") == "p" for r in records):
            raise RuntimeError("cannot handle station p")
        return real_step(self, feed, records, now)

    monkeypatch.setattr(consumer_mod.Engine, "step", fragile)
    for _ in range(consumer_mod.MAX_DELIVERIES - 1):
        with pytest.raises(RuntimeError):
            make(redis, store, pack).run(0.0, block_ms=10)
        redis.delete(keys.ANALYTICS_LOCK)  # the crashed job's lock expires
    stats = make(redis, store, pack).run(0.0, block_ms=10)
    assert stats.dead == 1
    [letter] = store.dead_letters(FEED)
    assert letter["code"] == "poison_entry" and "cannot handle station p" in letter["error"]
    assert pending(redis) == 0
    assert int(redis.hget(keys.ANALYTICS_STATUS, f"{FEED}:processed_total")) == 2


def test_a_failing_detector_loses_its_output_but_not_the_batch(redis, store, pack):
    redis.xadd(STREAM, {"r": b'{"kind": "readings", "station_id": "x", "value": 1, "explode": true}'})
    store.append(FEED, readings([1]))
    stats = make(redis, store, pack).run(0.0, block_ms=10)
    assert stats.processed[FEED] == 2 and stats.dead == 0
    assert pending(redis) == 0


def test_kpis_are_refreshed_when_data_arrived(redis, store, pack):
    calls: list[datetime] = []
    store.append(FEED, readings([1]))
    stats = make(redis, store, pack, refresh_kpis=calls.append, kpi_every_s=0).run(0.0, block_ms=10)
    assert stats.kpi_refreshes == 1 and len(calls) == 1
    stats = make(redis, store, pack, refresh_kpis=calls.append, kpi_every_s=0).run(0.0, block_ms=10)
    assert stats.kpi_refreshes == 0  # nothing new


def test_rollup_counts_per_arrival_minute():
    ids = [f"{MINUTE0_MS}-0", f"{MINUTE0_MS + 59_999}-3", f"{MINUTE0_MS + 60_000}-0".encode()]
    assert rollup(ids) == Counter({1_800_000_000: 2, 1_800_000_060: 1})
    assert rollup([]) == Counter()


def test_run_analytics_as_a_real_rq_job(redis, store, redis_server, monkeypatch):
    from rq import Queue, SimpleWorker
    from rq.job import JobStatus

    from workers import jobs

    monkeypatch.setenv("SC_REDIS_URL", redis_server.url)
    store.append(FEED, readings([9, 500]))
    queue = Queue(keys.JOBS_QUEUE, connection=redis)
    job = queue.enqueue(jobs.run_analytics, 0.0, redis_server.url)
    assert SimpleWorker([queue], connection=redis).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    result = job.return_value()
    assert result["processed"] == {FEED: 2} and result["events"] == 1
    assert int(redis.zcard(keys.INCIDENTS_OPEN)) == 1
