"""KPI snapshots: each domain's KPIs computed from the latest state, written once, read by every screen.

The I/O shell around the pure ``workers.kpi`` modules: read the merged latest records, compute,
write ``sc:kpi:<domain>`` (a JSON document with a version) and append one entry per minute to the
capped history stream ``sc:kpi:<domain>:history`` (entry id = the minute, so a re-run of the same
minute is a no-op). Web processes only read these documents; they never recompute.

The analytics loop calls :func:`refresh` every couple of seconds, so each domain stays cheap:

* ``ambulance``, ``appeals``: the latest-state hashes.
* ``air``: one ``XRANGE`` of the air stream over the last 24 h by entry id (ids are arrival ms;
  readings are then kept by ``observed_at``), hourly means and indices in :mod:`workers.kpi.air`;
  skipped (the previous values rewritten) while no air entry arrived within the same minute.
* ``traffic``: the latest scores and segments, against a score baseline per (provider, day type,
  15-min slot) cached in ``sc:kpi:traffic:baseline`` and rebuilt at most hourly (see
  :func:`traffic_baseline`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import redis as redis_lib

from core import keys
from core.citypack import CityPack
from core.schemas import iso
from core.store import Store
from workers.kpi import air, ambulance, appeals, traffic

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------
# air

#: The air stream is read from this much before ``now - air.WINDOW`` by entry id, for clock skew
#: between the sources and Redis (entry ids are arrival times; readings are kept by observed_at).
AIR_READ_MARGIN = timedelta(minutes=10)


def _air(store: Store, pack: CityPack, now: datetime) -> dict[str, Any]:
    previous = read_snapshot(store.redis, "air")
    if previous is not None and _air_unchanged(store.redis, previous, now):
        return previous["values"]
    return air.compute(read_air(store.redis, now), now=now, pack=pack)


def _air_unchanged(redis: redis_lib.Redis, previous: Mapping[str, Any], now: datetime) -> bool:
    """Whether the previous air snapshot still holds: written in the same minute as ``now`` and no
    air entry arrived since (readings come every 20–60 min; only the offline flags move with the
    clock, and they are recomputed every minute). Saves reading a day of readings every tick."""
    now_ms, version = int(now.timestamp() * 1000), int(previous["version"])
    if not (version <= now_ms and version // 60_000 == now_ms // 60_000):
        return False
    last = redis.xrevrange(keys.feed_stream_key("air"), count=1)
    if not last:
        return True
    entry_id = last[0][0]
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0]) < version


def read_air(redis: redis_lib.Redis, now: datetime, window: timedelta = air.WINDOW) -> list[dict[str, Any]]:
    """The air readings that arrived since ``now - window`` (one XRANGE by entry id)."""
    lo = int((now - window - AIR_READ_MARGIN).timestamp() * 1000)
    entries = redis.xrange(keys.feed_stream_key("air"), min=lo, max="+")
    return [orjson.loads(_record(fields)) for _, fields in entries]


# ---------------------------------------------------------------------------------------
# traffic

#: The cached baseline is rebuilt when older than this, or when the local day has changed.
BASELINE_REBUILD = timedelta(hours=1)
#: Score history kept in the cache (the stream itself holds about nine days of the demo city at
#: 200k entries, too few weekends for a weekend baseline): four weeks, four of each weekday.
BASELINE_KEEP = timedelta(days=28)
#: A (provider, day type, slot) cell needs scores from this many local days; fewer: no baseline.
BASELINE_MIN_DAYS = 2
BASELINE_SLOT_MINUTES = 15
#: Stream entries read per call while the baseline is rebuilt (each call blocks Redis a few ms).
READ_CHUNK = 10_000

# One chunk of the traffic stream from ARGV[1] on: {entries read, last id, records joined by ","}.
# Segment records (nine in ten entries) are dropped in Redis, so only the scores cross the wire.
_READ_SCORES_LUA = r"""
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out, last = {}, ''
for _, entry in ipairs(entries) do
  last = entry[1]
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'r' and string.sub(fields[j + 1], 1, 18) ~= '{"kind":"segments"' then
      out[#out + 1] = fields[j + 1]
    end
  end
end
return {#entries, last, table.concat(out, ',')}
"""
#: Detail key of the traffic snapshot: one entry per segment, for the map.
SEGMENTS = "traffic.segments"
#: Detail key of the traffic snapshot: what the baseline was built from.
BASELINE_INFO = "traffic.baseline"


def _traffic(store: Store, pack: CityPack, now: datetime) -> dict[str, Any]:
    baseline, info = traffic_baseline(store.redis, pack.zone, now)
    segments = list(store.latest("traffic", "segments").values())
    values = traffic.compute(store.latest("traffic", "scores").values(), segments, baseline=baseline, now=now,
                             zone=pack.zone)
    values[traffic.CITY][SEGMENTS] = segment_details(segments, pack, now)
    values[traffic.CITY][BASELINE_INFO] = info
    return values


def segment_details(segments: Iterable[Mapping[str, Any]], pack: CityPack, now: datetime) -> list[dict[str, Any]]:
    """Per-segment map data: id, name, speed ratio and band, speeds, congestion, freshness, geometry.

    ``stale`` is true for a segment not observed in ``(now − traffic.MAX_AGE, now]`` (the KPIs
    leave it out); ``geometry`` is the record's ``(lon, lat)`` line, else the pack road's, else None.
    """
    roads = {r.id: r for r in pack.roads}
    out = []
    for s in sorted(segments, key=lambda s: str(s["segment_id"])):
        speed, free = s.get("speed_kmh"), s.get("free_flow_kmh")
        ratio = float(speed) / float(free) if speed is not None and free else None
        road = roads.get(str(s["segment_id"]))
        observed = datetime.fromisoformat(str(s["observed_at"]))
        geometry = s.get("geometry") or (None if road is None else [list(p) for p in road.line])
        out.append({
            "segment_id": s["segment_id"], "name": s.get("name") or (None if road is None else road.names.en),
            "ratio": ratio, "band": None if ratio is None else traffic.band(ratio),
            "speed_kmh": speed, "free_flow_kmh": free,
            "congested": s.get("congested") is True or (ratio is not None and ratio < traffic.CONGESTED_RATIO),
            "observed_at": s["observed_at"], "stale": not now - traffic.MAX_AGE < observed <= now,
            "geometry": geometry,
        })
    return out


def traffic_baseline(redis: redis_lib.Redis, zone: tzinfo, now: datetime) -> tuple[traffic.Baseline, dict[str, Any]]:
    """The score baseline: the cached one while it is fresh, else rebuilt (and cached).

    Fresh means built less than :data:`BASELINE_REBUILD` before ``now``, on the same local day,
    for the same zone. Returns the baseline and a summary for the snapshot (built_at, days,
    samples, cells, min_days).
    """
    raw = redis.hget(keys.kpi_baseline_key("traffic"), "cells")
    if raw is not None:
        doc = orjson.loads(raw)
        if _fresh(doc, zone, now):
            return _baseline_from(doc, zone), _info(doc)
    doc = rebuild_traffic_baseline(redis, zone, now)
    return _baseline_from(doc, zone), _info(doc)


def rebuild_traffic_baseline(redis: redis_lib.Redis, zone: tzinfo, now: datetime) -> dict[str, Any]:
    """Read the score records that reached the traffic stream since the last rebuild, add them to
    the cached score history (four weeks kept), rebuild the cells and cache both. Returns the cells doc.

    Only scores observed before the local midnight of ``now`` count: the baseline is what is usual,
    from earlier days, never the very scores it is compared with.
    """
    key = keys.kpi_baseline_key("traffic")
    raw = redis.hget(key, "history")
    history = orjson.loads(raw) if raw is not None else {"through": None, "scores": {}}
    scores: dict[str, list[list[float]]] = history["scores"]
    through = history["through"]
    read = redis.register_script(_READ_SCORES_LUA)
    while True:
        count, last, blob = read(keys=[keys.feed_stream_key("traffic")],
                                 args=["-" if through is None else f"({through}", READ_CHUNK])
        for r in orjson.loads(b"[" + blob + b"]"):
            if r.get("kind") == "scores" and r.get("area_id", traffic.CITY) == traffic.CITY:
                t = datetime.fromisoformat(r["observed_at"]).timestamp()
                scores.setdefault(str(r["provider"]), []).append([t, float(r["score"])])
        if count:
            through = last.decode() if isinstance(last, bytes) else str(last)
        if count < READ_CHUNK:
            break
    keep_from = (now - BASELINE_KEEP).timestamp()
    scores = {p: [s for s in values if s[0] >= keep_from] for p, values in scores.items()}
    midnight = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), zone).timestamp()
    usable = [(p, t, v) for p, values in scores.items() for t, v in values if t < midnight]
    baseline, days = build_baseline(usable, zone)
    doc = {"built_at": iso(now), "built_at_ms": int(now.timestamp() * 1000), "zone": _zone_name(zone),
           "slot_minutes": baseline.slot_minutes, "min_days": BASELINE_MIN_DAYS, "days": days,
           "samples": len(usable), "through": through,
           "cells": [[p, d, s, c.median, c.mad, c.n] for (p, d, s), c in sorted(baseline.cells.items())]}
    redis.hset(key, mapping={"history": orjson.dumps({"through": through, "scores": scores}),
                             "cells": orjson.dumps(doc)})
    return doc


def build_baseline(scores: Iterable[tuple[str, float, float]], zone: tzinfo, *,
                   slot_minutes: int = BASELINE_SLOT_MINUTES,
                   min_days: int = BASELINE_MIN_DAYS) -> tuple[traffic.Baseline, int]:
    """:func:`workers.kpi.traffic.build_baseline` of ``(provider, epoch s, score)`` samples, keeping only
    the cells with scores from at least ``min_days`` local days. Returns it and the days in the history."""
    samples = list(scores)
    records = [{"provider": p, "score": v, "observed_at": datetime.fromtimestamp(t, UTC)} for p, t, v in samples]
    full = traffic.build_baseline(records, zone, slot_minutes)
    days: dict[tuple[str, str, int], set[Any]] = defaultdict(set)
    all_days = set()
    for record in records:
        t = record["observed_at"]
        day = t.astimezone(zone).date()
        days[(record["provider"], *full.key(t))].add(day)
        all_days.add(day)
    cells = {k: c for k, c in full.cells.items() if len(days[k]) >= min_days}
    return traffic.Baseline(zone=zone, slot_minutes=slot_minutes, cells=MappingProxyType(cells)), len(all_days)


def _fresh(doc: Mapping[str, Any], zone: tzinfo, now: datetime) -> bool:
    built = datetime.fromtimestamp(doc["built_at_ms"] / 1000, UTC)
    return (doc.get("zone") == _zone_name(zone) and doc.get("min_days") == BASELINE_MIN_DAYS
            and doc.get("slot_minutes") == BASELINE_SLOT_MINUTES
            and timedelta(0) <= now - built < BASELINE_REBUILD
            and built.astimezone(zone).date() == now.astimezone(zone).date())


def _baseline_from(doc: Mapping[str, Any], zone: tzinfo) -> traffic.Baseline:
    cells = {(p, d, s): traffic.Cell(median=median, mad=mad, n=n) for p, d, s, median, mad, n in doc["cells"]}
    return traffic.Baseline(zone=zone, slot_minutes=doc["slot_minutes"], cells=MappingProxyType(cells))


def _info(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"built_at": doc["built_at"], "days": doc["days"], "samples": doc["samples"],
            "cells": len(doc["cells"]), "min_days": doc["min_days"]}


def _zone_name(zone: tzinfo) -> str:
    return zone.key if isinstance(zone, ZoneInfo) else str(zone)


def _record(fields: Mapping[Any, Any]) -> bytes:
    """The record JSON of one feed stream entry (field ``r``)."""
    value = fields[b"r"] if b"r" in fields else fields["r"]
    return value if isinstance(value, bytes) else str(value).encode()


DOMAINS: Mapping[str, Callable[[Store, CityPack, datetime], dict[str, Any]]] = {
    "air": _air,
    "ambulance": _ambulance,
    "appeals": _appeals,
    "traffic": _traffic,
}


def refresh(store: Store, pack: CityPack, now: datetime) -> dict[str, int]:
    """Compute and write every domain's snapshot; returns the version written per domain.

    A domain whose computation fails (a bug, never bad data: records are checked on ingest) is
    logged and left out, so its previous snapshot stays and the other domains are still written.
    Redis errors propagate.
    """
    versions = {}
    for domain, fn in DOMAINS.items():
        try:
            values = fn(store, pack, now)
        except redis_lib.RedisError:
            raise
        except Exception:  # noqa: BLE001 - one domain's bug must not stop the others
            log.exception("KPI snapshot of %s failed; its previous snapshot stays", domain)
            continue
        versions[domain] = write_snapshot(store.redis, domain, values, now)
    return versions


#: KPIs that are lists of details for maps and tables, kept in the current snapshot only.
DETAIL_KPIS = frozenset({"air.stations", "traffic.segments"})


def write_snapshot(redis: redis_lib.Redis, domain: str, values: Mapping[str, Any], now: datetime) -> int:
    """Write the snapshot of ``domain`` and its minute of history. Returns the version (ms of ``now``)."""
    version = int(now.timestamp() * 1000)
    head = {"domain": domain, "version": version, "computed_at": iso(now), "window_s": WINDOW.total_seconds()}
    doc = orjson.dumps({**head, "values": values})
    # the history keeps the numbers, not the per-station / per-segment detail lists the maps need
    # now (they made each minute ~20 KB: ~28 MB a day per domain)
    history = orjson.dumps({**head, "values": {scope: {k: v for k, v in kpis.items() if k not in DETAIL_KPIS}
                                               if isinstance(kpis, Mapping) else kpis
                                               for scope, kpis in values.items()}})
    minute_ms = version // 60_000 * 60_000
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.kpi_key(domain), doc)
    pipe.hset(keys.VERSIONS, f"kpi:{domain}", version)
    pipe.xadd(keys.kpi_history_key(domain), {"d": history}, id=f"{minute_ms}-0", maxlen=HISTORY_MINUTES,
              approximate=True)
    results = pipe.execute(raise_on_error=False)
    if isinstance(results[0], Exception):
        raise results[0]
    # results[2] is an error when this minute is already in the history: that is the idempotence
    return version


def read_snapshot(redis: redis_lib.Redis, domain: str) -> dict[str, Any] | None:
    """The latest snapshot of ``domain``, or None before the first one."""
    raw = redis.get(keys.kpi_key(domain))
    return None if raw is None else orjson.loads(raw)


def read_history(redis: redis_lib.Redis, domain: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per-minute snapshots of ``domain`` with minutes in ``[start, end]``, oldest first."""
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return [orjson.loads(fields[b"d"]) for _, fields in redis.xrange(keys.kpi_history_key(domain), lo, hi)]
