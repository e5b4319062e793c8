"""Screenshots of the four topic pages (traffic, ambulance, air, appeals) at 1920×1080 in kk, ru, en.

    python -m bench.screenshot_topics [--out docs/screenshots] [--hours 6] [--only traffic-en ...]

Starts its own Redis, seeds it with the simulated city (``simulator.seed``: six analysed hours
ending now), fills the per-minute KPI history of those hours (:func:`backfill_history`: what a
running analytics loop leaves in ``sc:kpi:<domain>:history``; the seed writes only the last
minute), starts ``sitcen web``, signs in as a viewer and captures each page as
``docs/screenshots/<page>-<lang>.png``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPICS = ("traffic", "ambulance", "air", "appeals")
LANGS = ("kk", "ru", "en")
USER, PASSWORD = "vera", "viewer-pass-1"
SECRET = "screenshot-secret-key-0123456789abcdef"


# --- the KPI history of the seeded hours -----------------------------------------------------


def _t(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _stream(redis: Any, feed: str) -> list[dict[str, Any]]:
    import orjson

    from core import keys

    return [orjson.loads(fields[b"r"]) for _, fields in redis.xrange(keys.feed_stream_key(feed))]


def _latest(redis: Any, feed: str, kind: str) -> list[dict[str, Any]]:
    import orjson

    from core import keys

    return [orjson.loads(raw) for raw in redis.hvals(keys.latest_key(feed, kind))]


def _calls_at(calls: Iterable[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """The calls as they stood at ``at``: received by then, times after it removed."""
    out = []
    for call in calls:
        times = {k: v for k, v in (call.get("times") or {}).items() if _t(v) <= at}
        if "call_received" not in times:
            continue
        row = {**call, "times": times}
        if "unit_notified" not in times:
            row.pop("unit_id", None)
        if "on_scene" not in times:
            row.pop("response_s", None)
        out.append(row)
    return out


def _appeals_at(appeals: Iterable[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """The appeals as they stood at ``at``: requested by then, those closed later still open."""
    out = []
    for a in appeals:
        if _t(a.get("requested_at")) > at:
            continue
        closed = _t(a.get("closed_at")) or (_t(a.get("updated_at")) if a.get("status") == "closed" else None)
        if a.get("status") == "closed" and closed is not None and closed > at:
            a = {**a, "status": "open", "closed_at": None}
        out.append(dict(a))
    return out


def _newest_by(records: Iterable[Mapping[str, Any]], key: str, at: datetime) -> list[Mapping[str, Any]]:
    best: dict[str, Mapping[str, Any]] = {}
    for r in records:
        t = _t(r.get("observed_at"))
        if t is not None and t <= at and (r[key] not in best or t >= _t(best[r[key]]["observed_at"])):
            best[r[key]] = r
    return list(best.values())


def backfill_history(redis: Any, pack: Any, end: datetime, *, hours: float = 6.0, step_min: int = 1) -> int:
    """Write the KPI history of the ``hours`` before ``end`` (one entry every ``step_min`` minutes),
    computed by the real KPI functions on the records as they stood at each minute; entries already
    in the history stay. Returns the entries written.

    Approximations (a seeded city keeps only the latest merged records): a call's or appeal's
    later changes are undone by their times; ambulance unit counts are left out of the past
    (positions are kept for the last minutes only).
    """
    import orjson

    from core import keys
    from core.schemas import iso
    from workers.kpi import air, ambulance, appeals, traffic
    from workers.snapshots import DETAIL_KPIS, HISTORY_MINUTES, WINDOW, read_air, traffic_baseline

    end = end.astimezone(UTC)
    calls = _latest(redis, "ambulance", "calls")
    requests = _latest(redis, "appeals", "requests")
    flows = _stream(redis, "traffic")
    scores = [r for r in flows if r.get("kind") == "scores"]
    segments = [r for r in flows if r.get("kind") == "segments"]
    readings = read_air(redis, end, window=timedelta(hours=hours) + air.WINDOW)
    baseline, _ = traffic_baseline(redis, pack.zone, end)
    first = (end - timedelta(hours=hours)).replace(second=0, microsecond=0)
    moments = []
    at = first
    while at < end.replace(second=0, microsecond=0):
        moments.append(at)
        at += timedelta(minutes=step_min)
    compute = {
        "air": lambda at: air.compute(readings, now=at, pack=pack),
        "ambulance": lambda at: ambulance.compute(_calls_at(calls, at), [], norms=pack.norms, now=at,
                                                  window=WINDOW),
        "appeals": lambda at: appeals.compute(_appeals_at(requests, at), norms=pack.norms, now=at, window=WINDOW),
        "traffic": lambda at: traffic.compute(_newest_by(scores, "provider", at),
                                              _newest_by(segments, "segment_id", at),
                                              baseline=baseline, now=at, zone=pack.zone),
    }
    written = 0
    for domain, fn in compute.items():
        key = keys.kpi_history_key(domain)
        kept = redis.xrange(key)
        kept_minutes = {int(i.decode().split("-")[0]) for i, _ in kept}
        pipe = redis.pipeline(transaction=False)
        entries = {int(entry_id.decode().split("-")[0]): fields for entry_id, fields in kept}
        for at in moments:
            minute_ms = int(at.timestamp() * 1000)
            if minute_ms in kept_minutes:
                continue
            values = fn(at)
            head = {"domain": domain, "version": minute_ms, "computed_at": iso(at),
                    "window_s": WINDOW.total_seconds()}
            doc = {**head, "values": {scope: {k: v for k, v in kpis.items() if k not in DETAIL_KPIS}
                                      for scope, kpis in values.items()}}
            entries[minute_ms] = {"d": orjson.dumps(doc)}
            written += 1
        # a stream takes ids in increasing order only: rewrite it whole, oldest first
        pipe.delete(key)
        for minute_ms in sorted(entries):
            pipe.xadd(key, entries[minute_ms], id=f"{minute_ms}-0")
        pipe.xtrim(key, maxlen=HISTORY_MINUTES, approximate=True)
        pipe.execute()
    return written


def seed_city(redis_dir: Path, hours: float) -> tuple[Any, str]:
    """A Redis with the seeded city and its per-minute KPI history. Returns (server, url)."""
    from core.citypack import load_pack
    from core.redis_server import EmbeddedRedis, connect
    from simulator.seed import seed

    server = EmbeddedRedis(redis_dir, persist=False)
    server.start()
    client = connect(server.url)
    pack = load_pack(None)
    out = seed(client, pack, hours=hours)
    backfill_history(client, pack, datetime.fromisoformat(out["until"]), hours=hours)
    client.close()
    return server, server.url


def start_web(redis_url: str, port: int, accounts: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update(SC_REDIS_URL=redis_url, SC_WEB_PORT=str(port), SC_LOG_LEVEL="WARNING", SC_SECRET_KEY=SECRET,
               SC_ACCOUNTS_FILE=str(accounts))
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "web"], env=env, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("sitcen web did not start")


def capture(base: str, out: Path, names: list[str]) -> list[Path]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import new_chrome

    written = []
    driver = new_chrome(1920, 1080)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
        driver.get(f"{base}/login?next=/wall")
        driver.find_element(By.NAME, "username").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        time.sleep(1)
        for name in names:
            topic, lang = name.rsplit("-", 1)
            driver.get(f"{base}/{topic}?lang={lang}")
            wait = WebDriverWait(driver, 30)
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{topic}-map .leaflet-interactive")))
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{topic}-charts .main-svg")))
            time.sleep(2.5)
            target = out / f"{name}.png"
            driver.save_screenshot(str(target))
            written.append(target)
            print(f"wrote {target}")
    finally:
        driver.quit()
    return written


def main(argv: list[str] | None = None) -> int:
    from core.redis_server import free_port
    from dashboards.auth_accounts import Account, hash_password, write_accounts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--only", nargs="*", default=None, help="names like traffic-en (default all twelve)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or [f"{topic}-{lang}" for topic in TOPICS for lang in LANGS]
    with tempfile.TemporaryDirectory() as tmp:
        accounts = Path(tmp) / "accounts.json"
        write_accounts(accounts, {USER: Account(USER, "viewer", hash_password(PASSWORD))})
        server, url = seed_city(Path(tmp) / "redis", args.hours)
        port = free_port()
        web = start_web(url, port, accounts)
        try:
            capture(f"http://127.0.0.1:{port}", args.out, names)
        finally:
            web.terminate()
            web.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
