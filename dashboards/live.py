"""The live hub: one follower of Redis per web process; every screen reads from it, none from Redis.

A background thread reads ``sc:versions`` (one small ``HGETALL``) every ``interval`` seconds and
reloads only the topics whose version moved: KPI snapshots per domain (``kpi:<domain>``), the
unresolved incidents (``incidents``), the active events (``events``); the data-health document is
reloaded every ``health_every`` seconds. Fifty wall screens therefore cost Redis the same as one.

When Redis is unreachable the hub keeps the last documents, marks itself disconnected with the
time of the last good read, and retries with capped backoff; screens grey their tiles with "since
08:14" and recover when it does. Readers get immutable snapshots (``Topic``): a version, the
document and when it was loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis as redis_lib

from core import keys

log = logging.getLogger(__name__)

KPI_DOMAINS = ("air", "traffic", "ambulance", "appeals")


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic as last loaded: its version (0 = never), document, and load time (epoch s)."""

    version: int = 0
    doc: Any = None
    loaded_at: float = 0.0


class Hub:
    """Follows the versions in Redis and keeps the latest document of each topic.

    Args:
        redis: a client (bytes responses).
        loaders: topic -> ``f(redis) -> document``; defaults cover KPIs, incidents, events.
        health: ``f() -> health document`` reloaded every ``health_every`` s (None: no health topic).
        interval: seconds between version reads.
    """

    def __init__(self, redis: redis_lib.Redis, *, loaders: dict[str, Callable[[redis_lib.Redis], Any]] | None = None,
                 health: Callable[[], Any] | None = None, interval: float = 0.1, health_every: float = 2.0,
                 periodic: dict[str, tuple[Callable[[redis_lib.Redis], Any], float]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.loaders = loaders if loaders is not None else default_loaders()
        self.periodic = periodic if periodic is not None else ({} if loaders is not None else default_periodic())
        self._last_periodic: dict[str, float] = {}
        self.health = health
        self.interval = interval
        self.health_every = health_every
        self.clock = clock
        self._topics: dict[str, Topic] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.last_ok: float | None = None
        self.last_error: str = ""
        self._last_health = 0.0
        self._seq = 0

    # --- readers -------------------------------------------------------------------------

    def get(self, topic: str) -> Topic:
        """The latest load of ``topic`` (an empty Topic before the first)."""
        with self._lock:
            return self._topics.get(topic, Topic())

    def versions(self) -> dict[str, int]:
        """Version of every topic loaded so far."""
        with self._lock:
            return {name: t.version for name, t in self._topics.items()}

    @property
    def seq(self) -> int:
        """A counter that moves whenever any topic or the connection state changes."""
        with self._lock:
            return self._seq

    def wait(self, seq: int, timeout: float) -> int:
        """Block until :attr:`seq` differs from ``seq`` or ``timeout`` passes; return the current value.
        (For push loops: one wake-up per change, no polling of the hub.)"""
        with self._changed:
            if self._seq == seq:
                self._changed.wait(timeout)
            return self._seq

    def status(self) -> dict[str, Any]:
        """Connection state for screens: connected, last good read (ISO), last error."""
        last = None if self.last_ok is None else datetime.fromtimestamp(self.last_ok, UTC).isoformat()
        return {"connected": self.connected, "last_ok": last, "error": self.last_error}

    # --- the follower ----------------------------------------------------------------------

    def start(self) -> Hub:
        """Start the background follower (idempotent). Does one synchronous read first when it can."""
        if self._thread is None:
            self.poll_once()
            self._thread = threading.Thread(target=self._run, name="live-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the follower."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            ok = self.poll_once()
            delay = self.interval if ok else min(10.0, max(self.interval, delay * 2))

    def poll_once(self) -> bool:
        """Read the versions and reload what changed. Returns whether Redis answered."""
        try:
            raw = self.redis.hgetall(keys.VERSIONS)
            versions = {_s(k): int(v) for k, v in raw.items()}
            current = self.versions()
            loaded: dict[str, Topic] = {}
            now = self.clock()
            for topic, loader in self.loaders.items():
                version = versions.get(topic, 0)
                if topic not in current or version != current[topic]:
                    loaded[topic] = Topic(version=version, doc=loader(self.redis), loaded_at=now)
            for topic, (loader, every) in self.periodic.items():
                if now - self._last_periodic.get(topic, -1e18) >= every:
                    self._last_periodic[topic] = now
                    loaded[topic] = Topic(version=int(now * 1000), doc=loader(self.redis), loaded_at=now)
            if self.health is not None and now - self._last_health >= self.health_every:
                self._last_health = now
                loaded["health"] = Topic(version=int(now * 1000), doc=self.health(), loaded_at=now)
        except (redis_lib.RedisError, OSError) as err:
            self._set_state(False, f"{type(err).__name__}: {err}")
            return False
        with self._changed:
            self._topics.update(loaded)
            was = self.connected
            self.connected, self.last_ok, self.last_error = True, self.clock(), ""
            if loaded or not was:
                self._seq += 1
                self._changed.notify_all()
        return True

    def _set_state(self, connected: bool, error: str) -> None:
        with self._changed:
            if self.connected != connected or self.last_error != error:
                if self.connected and not connected:
                    log.warning("live hub lost Redis: %s", error)
                self.connected, self.last_error = connected, error
                self._seq += 1
                self._changed.notify_all()


def default_loaders() -> dict[str, Callable[[redis_lib.Redis], Any]]:
    """KPI snapshots, unresolved incidents, active events."""
    out: dict[str, Callable[[redis_lib.Redis], Any]] = {
        f"kpi:{domain}": (lambda r, d=domain: _json(r.get(keys.kpi_key(d)))) for domain in KPI_DOMAINS}
    out["incidents"] = _incidents
    out["events"] = _events
    return out


def default_periodic() -> dict[str, tuple[Callable[[redis_lib.Redis], Any], float]]:
    """Topics reloaded on a clock (their writers do not bump a version): ambulance positions every
    2 s, open appeals (for the map's clusters) every 30 s."""
    return {"units": (_units, 2.0), "appeals_open": (_open_appeals, 30.0), "dead_letters": (_dead_letters, 10.0)}


def _dead_letters(redis: redis_lib.Redis) -> dict[str, list[dict[str, Any]]]:
    """The five newest dead letters of each feed (for the data-health page): when, code, error, and
    the start of the raw payload (shown as text)."""
    from feeds import REGISTRY

    out: dict[str, list[dict[str, Any]]] = {}
    for feed in REGISTRY:
        rows = []
        for entry_id, fields in redis.xrevrange(keys.dead_letter_key(feed), count=5):
            f = {_s(k): v for k, v in fields.items()}
            rows.append({"id": _s(entry_id), "at_ms": int(_s(f.get("at_ms", b"0")) or 0),
                         "code": _s(f.get("code", b"")), "error": _s(f.get("error", b""))[:300],
                         "raw": bytes(f.get("raw", b""))[:160].decode("utf-8", "replace")})
        out[feed] = rows
    return out


def _units(redis: redis_lib.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in redis.hvals(keys.latest_key("ambulance", "units"))]


def _open_appeals(redis: redis_lib.Redis) -> list[dict[str, Any]]:
    """Open appeals with a place: id, category, district, channel, lat, lon, requested_at (no text:
    screens never need a citizen's words to draw a cluster)."""
    out = []
    for raw in redis.hvals(keys.latest_key("appeals", "requests")):
        a = orjson.loads(raw)
        if a.get("status") == "open" and a.get("lat") is not None:
            out.append({k: a.get(k) for k in ("request_id", "category", "district", "channel", "lat", "lon",
                                               "requested_at", "expected_at")})
    return out


def _incidents(redis: redis_lib.Redis) -> list[dict[str, Any]]:
    ids = [_s(i) for i in redis.zrevrange(keys.INCIDENTS_OPEN, 0, 499)]
    if not ids:
        return []
    return [orjson.loads(raw) for raw in redis.mget([keys.incident_key(i) for i in ids]) if raw is not None]


def _events(redis: redis_lib.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in redis.hvals(keys.EVENTS_ACTIVE)]


def _json(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
