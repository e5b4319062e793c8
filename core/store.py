"""Writing records and dead letters to Redis, and reading feed state back.

One Lua script per batch does, atomically and in one round trip: reject duplicates (a set of
record ids per record-time bucket), ``XADD`` to the feed's capped stream, update the
latest-state hash (newest version wins; for merging kinds the fields of both are merged, so
status updates of a call or an appeal apply in any arrival order) and bump the feed's
health counters. The script touches only keys of one feed, which share a hash tag, so it
also runs on Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from core import keys
from core.schemas import Record

#: Record-time bucket of the duplicate sets.
SEEN_BUCKET_MS = 600_000

_INGEST_LUA = r"""
local stream, health = KEYS[1], KEYS[2]
local maxlen, ttl, now_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local nk = tonumber(ARGV[4])
local first_seen = 3 + 2 * nk
local dups, touched = {}, {}
local accepted, newest, newest_lag = 0, -1, 0
local merges, blob = ARGV[5], ARGV[6]
-- ARGV[6] holds every record as "<kind>:<bucket>\31<entity>@<version>#<crc>\31<json>", records
-- separated by \30 (one argument: packing thousands of small ones cost more than the work)
local n, pos, size = 0, 1, #blob
while pos <= size do
  local rec_end = string.find(blob, '\30', pos, true) or (size + 1)
  local f1 = string.find(blob, '\31', pos, true)
  local f2 = string.find(blob, '\31', f1 + 1, true)
  local kb, rid = string.sub(blob, pos, f1 - 1), string.sub(blob, f1 + 1, f2 - 1)
  local js = string.sub(blob, f2 + 1, rec_end - 1)
  pos = rec_end + 1
  local sep = string.find(kb, ':', 1, true)
  local kidx, bidx = tonumber(string.sub(kb, 1, sep - 1)), tonumber(string.sub(kb, sep + 1))
  local ent, vtext = string.match(rid, '^(.*)@(%-?%d+)#%x+$')
  local ver = tonumber(vtext)
  local merge = string.sub(merges, kidx + 1, kidx + 1)
  local seen = KEYS[first_seen + bidx]
  if redis.call('SADD', seen, rid) == 0 then
    dups[#dups + 1] = n
  else
    touched[seen] = true
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'r', js)
    local lk, vk = KEYS[3 + 2 * kidx], KEYS[4 + 2 * kidx]
    local cur = redis.call('HGET', vk, ent)
    if not cur then
      redis.call('HSET', lk, ent, js)
      redis.call('HSET', vk, ent, vtext)
    else
      local curv = tonumber(cur)
      if merge == '1' then
        local old = cjson.decode(redis.call('HGET', lk, ent))
        local new = cjson.decode(js)
        local base, top = old, new
        if ver < curv then base, top = new, old end
        for k, v in pairs(top) do
          if k == 'times' and type(v) == 'table' and type(base.times) == 'table' then
            for tk, tv in pairs(v) do base.times[tk] = tv end
          else
            base[k] = v
          end
        end
        redis.call('HSET', lk, ent, cjson.encode(base))
        if ver > curv then redis.call('HSET', vk, ent, vtext) end
      elseif ver >= curv then
        redis.call('HSET', lk, ent, js)
        redis.call('HSET', vk, ent, vtext)
      end
    end
    accepted = accepted + 1
    if ver > newest then newest = ver; newest_lag = tonumber(now_ms) - ver end
  end
  n = n + 1
end
for key, _ in pairs(touched) do redis.call('EXPIRE', key, ttl) end
if accepted > 0 then
  redis.call('HINCRBY', health, 'events_total', accepted)
  redis.call('HSET', health, 'last_ingest_ms', now_ms)
  local last = tonumber(redis.call('HGET', health, 'last_event_ms') or '-1')
  if newest > last then
    redis.call('HSET', health, 'last_event_ms', string.format('%d', newest))
    redis.call('HSET', health, 'lag_ms', string.format('%d', newest_lag))
  end
end
return dups
"""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch encoded for the ingest script."""

    keys: list[str]
    argv: list[Any]
    count: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected item on its way to ``sc:dead:{feed}``."""

    index: int
    code: str
    error: str
    raw: bytes


class Store:
    """Feed writes and reads on one Redis connection. Thread-safe as redis-py clients are."""

    def __init__(self, redis: Redis, *, stream_maxlen: int, dead_maxlen: int, dedup_window_s: int,
                 dead_raw_max_bytes: int) -> None:
        self.redis = redis
        self.stream_maxlen = stream_maxlen
        self.dead_maxlen = dead_maxlen
        self.dedup_window_s = dedup_window_s
        self.dead_raw_max_bytes = dead_raw_max_bytes
        self._ingest = redis.register_script(_INGEST_LUA)

    @classmethod
    def from_settings(cls, redis: Redis, settings: Any) -> Store:
        """Build from :class:`core.settings.Settings`."""
        return cls(redis, stream_maxlen=settings.stream_maxlen, dead_maxlen=settings.dead_maxlen,
                   dedup_window_s=settings.dedup_window_s, dead_raw_max_bytes=settings.dead_raw_max_bytes)

    # -- writing ----------------------------------------------------------------------------

    def append(self, feed: str, records: Sequence[Record], *, now_ms: int | None = None) -> list[int]:
        """Store one batch of ``feed``'s records. Returns the positions rejected as duplicates.

        Call with batches of about a thousand records: the script runs atomically.
        """
        return self.execute(self.prepare(feed, records, now_ms=now_ms))

    def prepare(self, feed: str, records: Sequence[Record], *, now_ms: int | None = None) -> Prepared:
        """Encode a batch for :meth:`execute` (CPU only, no I/O: callers overlap it with the last write)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        kinds: dict[str, int] = {}
        merges: list[str] = []
        buckets: dict[int, int] = {}
        parts: list[bytes] = []
        for record in records:
            kidx = kinds.get(record.kind)
            if kidx is None:
                kidx = kinds[record.kind] = len(kinds)
                merges.append("1" if record.merge else "0")
            bidx = buckets.setdefault(record.version_ms // SEEN_BUCKET_MS, len(buckets))
            encoded = record.to_json_bytes()
            parts.append(b"%d:%d\x1f%s\x1f%s" % (kidx, bidx, record.record_id(encoded).encode(), encoded))
        argv: list[Any] = [self.stream_maxlen, self.dedup_window_s, now, len(kinds), "".join(merges),
                           b"\x1e".join(parts)]
        key_list = [keys.feed_stream_key(feed), keys.health_key(feed)]
        for kind in kinds:
            key_list += (keys.latest_key(feed, kind), keys.latest_version_key(feed, kind))
        key_list += (keys.seen_key(feed, bucket) for bucket in buckets)
        return Prepared(key_list, argv, len(records))

    def execute(self, prepared: Prepared) -> list[int]:
        """Run the ingest script on a prepared batch. Returns the positions rejected as duplicates."""
        if not prepared.count:
            return []
        dups = self._ingest(keys=prepared.keys, args=prepared.argv)
        return [int(d) for d in dups]

    def dead_letter(self, feed: str, letters: Iterable[DeadLetter], *, transport: str,
                    ignored: int = 0) -> int:
        """Append rejected items to ``sc:dead:{feed}`` and count them per reason code."""
        pipe = self.redis.pipeline(transaction=False)
        now = int(time.time() * 1000)
        count = 0
        codes: dict[str, int] = {}
        for letter in letters:
            raw = letter.raw
            cut = len(raw) > self.dead_raw_max_bytes
            pipe.xadd(keys.dead_letter_key(feed), {
                "at_ms": now, "index": letter.index, "code": letter.code, "error": letter.error,
                "transport": transport, "raw": raw[: self.dead_raw_max_bytes], "raw_bytes": len(raw),
                "raw_cut": int(cut),
            }, maxlen=self.dead_maxlen, approximate=True)
            codes[letter.code] = codes.get(letter.code, 0) + 1
            count += 1
        health = keys.health_key(feed)
        if count:
            pipe.hincrby(health, "rejected_total", count)
            for code, n in codes.items():
                pipe.hincrby(health, f"rejected:{code}", n)
            pipe.hset(health, "last_reject_ms", now)
        if ignored:
            pipe.hincrby(health, "ignored_total", ignored)
        if count or ignored:
            pipe.execute()
        return count

    def mark_feed(self, feed: str) -> None:
        """Remember that ``feed`` exists, so health lists it even when it goes silent."""
        self.redis.sadd(keys.FEEDS_SEEN, feed)

    def set_transport_state(self, feed: str, state: str, *, error: str = "", detail: str = "") -> None:
        """Record what the running transport of ``feed`` is doing (shown by the health API)."""
        now = int(time.time() * 1000)
        mapping: dict[str, Any] = {"state": state, "since_ms": now, "detail": detail}
        if error:
            mapping |= {"last_error": error, "last_error_ms": now}
        self.redis.hset(keys.transport_state_key(feed), mapping=mapping)

    # -- reading ----------------------------------------------------------------------------

    def health_raw(self, feed: str) -> dict[str, str]:
        """The counters hash of ``feed`` merged with its transport state (strings)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.health_key(feed))
        pipe.hgetall(keys.transport_state_key(feed))
        counters, transport = pipe.execute()
        out = {_s(k): _s(v) for k, v in counters.items()}
        out.update({f"transport_{_s(k)}": _s(v) for k, v in transport.items()})
        return out

    def latest(self, feed: str, kind: str) -> dict[str, dict[str, Any]]:
        """Every entity's latest merged record of ``kind`` in ``feed``."""
        raw = self.redis.hgetall(keys.latest_key(feed, kind))
        return {_s(k): json.loads(v) for k, v in raw.items()}

    def dead_letters(self, feed: str, count: int = 100) -> list[dict[str, Any]]:
        """The newest ``count`` dead letters of ``feed``, newest first."""
        entries = self.redis.xrevrange(keys.dead_letter_key(feed), count=count)
        out = []
        for entry_id, fields in entries:
            row: dict[str, Any] = {"id": _s(entry_id)}
            for k, v in fields.items():
                key = _s(k)
                row[key] = v.decode("utf-8", "replace") if key == "raw" and isinstance(v, bytes) else _s(v)
            out.append(row)
        return out

    def read_stream(self, feed: str, count: int = 1000, start: str = "-") -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` stream entries of ``feed`` from ``start`` on, decoded."""
        entries = self.redis.xrange(keys.feed_stream_key(feed), min=start, count=count)
        return [(_s(i), json.loads(f[b"r"] if b"r" in f else f["r"])) for i, f in entries]


def _s(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def decode_counts(raw: Mapping[str, str], prefix: str) -> dict[str, int]:
    """``{"rejected:bad_json": "3"}`` -> ``{"bad_json": 3}`` for fields starting with ``prefix``."""
    return {k[len(prefix):]: int(v) for k, v in raw.items() if k.startswith(prefix)}
