"""Screenshots of the public page (390×844 in kk, ru, en; 1440×900 in en) from a freshly seeded city.

    python bench/screenshot_public.py [--out docs/screenshots] [--hours 8]

Starts its own Redis, seeds it with the simulated city (``simulator.seed``), fills the KPI history
with one snapshot per minute-before-the-hour (:func:`backfill_history`: what a running analytics
loop leaves there), builds the public document (``workers.public``), starts ``sitcen public`` and
opens ``/`` in headless Chromium. Also used by the load benchmark and the tests to get a city with
a public document.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: name -> (path with query, width, height)
PAGES: dict[str, tuple[str, int, int]] = {
    **{f"public-{lang}": (f"/?lang={lang}", 390, 844) for lang in ("kk", "ru", "en")},
    "public-desktop-en": ("/?lang=en", 1440, 900),
}


class AsOfStore:
    """The latest state as it stood at ``at`` (for a history backfill): appeals and calls not yet
    received are left out and later changes undone; traffic scores and segments come from the stream."""

    def __init__(self, store: Any, stream_records: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
        self.store, self.redis, self.streams, self.at = store, store.redis, stream_records, None
        self._cache: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def latest(self, feed: str, kind: str) -> dict[str, dict[str, Any]]:
        at = self.at
        assert at is not None
        if (feed, kind) not in self._cache:
            self._cache[(feed, kind)] = self.store.latest(feed, kind)
        out: dict[str, dict[str, Any]] = {}
        if feed == "traffic":
            for record in self.streams.get(kind, {}).values():
                past = [r for r in record if datetime.fromisoformat(r["observed_at"]) <= at]
                if past:
                    newest = past[-1]
                    out[str(newest.get("segment_id") or newest.get("provider"))] = newest
            return out
        for key, record in self._cache[(feed, kind)].items():
            if feed == "appeals":
                if datetime.fromisoformat(record["requested_at"]) > at:
                    continue
                closed = record.get("closed_at")
                if closed and datetime.fromisoformat(closed) > at:
                    record = {**record, "status": "open", "closed_at": None, "updated_at": None}
            elif feed == "ambulance" and kind == "calls":
                times = {k: v for k, v in (record.get("times") or {}).items() if datetime.fromisoformat(v) <= at}
                if "call_received" not in times:
                    continue
                record = {**record, "times": times}
            out[key] = record
        return out


def _traffic_streams(client: Any) -> dict[str, dict[str, list[dict[str, Any]]]]:
    import orjson

    from core import keys

    out: dict[str, dict[str, list[dict[str, Any]]]] = {"scores": {}, "segments": {}}
    for _, fields in client.xrange(keys.feed_stream_key("traffic")):
        r = orjson.loads(fields[b"r"])
        kind = r.get("kind")
        if kind == "scores" and r.get("area_id", "city") == "city":
            out["scores"].setdefault(str(r["provider"]), []).append(r)
        elif kind == "segments":
            out["segments"].setdefault(str(r["segment_id"]), []).append(r)
    for series in out.values():
        for rows in series.values():
            rows.sort(key=lambda r: r["observed_at"])
    return out


def backfill_history(client: Any, pack: Any, end: datetime, hours: int) -> int:
    """Add KPI history entries at the last minute of each of the ``hours`` hours before ``end`` (and of
    the hour before them), computed from the state as it stood then (:class:`AsOfStore`), without
    touching the current snapshots. Returns the entries added. (The seeded city has only the
    snapshot at its end, where a running analytics loop leaves one a minute.)"""
    import orjson

    from core import keys
    from core.settings import Settings
    from core.store import Store
    from workers.public import floor_hour
    from workers.snapshots import DETAIL_KPIS, DOMAINS, WINDOW

    store = AsOfStore(Store.from_settings(client, Settings.from_env({})), _traffic_streams(client))
    top = floor_hour(end, pack.zone)
    entries: dict[str, dict[int, bytes]] = {d: {} for d in DOMAINS}
    for k in range(hours + 1, 0, -1):
        at = top - timedelta(hours=k - 1) - timedelta(seconds=30)
        if at >= end:
            continue
        store.at = at
        version = int(at.timestamp() * 1000)
        for domain, fn in DOMAINS.items():
            values = fn(store, pack, at)  # type: ignore[arg-type]
            doc = {"domain": domain, "version": version, "computed_at": at.isoformat().replace("+00:00", "Z"),
                   "window_s": WINDOW.total_seconds(),
                   "values": {scope: {key: v for key, v in kpis.items() if key not in DETAIL_KPIS}
                              for scope, kpis in values.items()}}
            entries[domain][version // 60_000 * 60_000] = orjson.dumps(doc)
    added = 0
    for domain, new in entries.items():
        # stream ids only grow: rewrite the stream with the older entries first
        key = keys.kpi_history_key(domain)
        kept = {int(i.decode().split("-")[0]): f[b"d"] for i, f in client.xrange(key)}
        merged = {**new, **kept}
        pipe = client.pipeline()
        pipe.delete(key)
        for minute in sorted(merged):
            pipe.xadd(key, {"d": merged[minute]}, id=f"{minute}-0")
        pipe.execute()
        added += len(set(new) - set(kept))
    return added


def seed_public_city(redis_dir: Path, hours: float = 8.0) -> tuple[Any, str, dict[str, Any]]:
    """A Redis with the seeded city, its KPI history and the public document. Returns (server, url, doc)."""
    from core.citypack import load_pack
    from core.redis_server import EmbeddedRedis, connect
    from simulator.seed import seed
    from workers.public import build_from_redis, write_document

    server = EmbeddedRedis(redis_dir, persist=False)
    server.start()
    client = connect(server.url)
    pack = load_pack(None)
    out = seed(client, pack, hours=hours)
    end = datetime.fromisoformat(out["until"])
    backfill_history(client, pack, end, int(hours) - 1)
    doc = build_from_redis(client, pack, end)
    write_document(client, doc)
    client.close()
    return server, server.url, doc


def start_public(redis_url: str, port: int, **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update(SC_REDIS_URL=redis_url, SC_PUBLIC_PORT=str(port), SC_LOG_LEVEL="WARNING", **extra)
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "public"], env=env, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/public/indicators", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("sitcen public did not start")


def chrome_factory() -> Any:
    """``new_chrome(w, h)`` of tests/conftest.py (Debian's chromium, installed where missing), loaded by
    path: putting ``tests`` on ``sys.path`` would shadow the ``core`` package with ``tests/core``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sc_tests_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.new_chrome


def emulate(driver: Any, width: int, height: int) -> None:
    """Make the viewport exactly ``width`` × ``height`` (headless Chromium windows are at least 500 px
    wide), as a phone when narrow."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700})


def shoot(url: str, out: Path) -> list[Path]:
    new_chrome = chrome_factory()

    written = []
    for name, (path, width, height) in PAGES.items():
        driver = new_chrome(width, height)
        try:
            emulate(driver, width, height)
            driver.get(url + path)
            time.sleep(0.5)
            target = out / f"{name}.png"
            driver.save_screenshot(str(target))
            written.append(target)
        finally:
            driver.quit()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--hours", type=float, default=8.0)
    args = parser.parse_args()
    from core.redis_server import free_port

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server, url, _ = seed_public_city(Path(tmp) / "redis", args.hours)
        port = free_port()
        proc = start_public(url, port)
        try:
            for path in shoot(f"http://127.0.0.1:{port}", args.out):
                print(path)
        finally:
            proc.terminate()
            proc.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
