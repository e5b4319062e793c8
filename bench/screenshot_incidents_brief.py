"""Screenshots of the incidents console (1920×1080, as the operator olga) and the leadership brief
(1024×768, as lev) in Kazakh, Russian and English, from a freshly seeded city.

    python -m bench.screenshot_incidents_brief [--out docs/screenshots] [--hours 24] [--only brief-ru ...]

Starts its own Redis and seeds it with the simulated city (``simulator.seed``: ``--hours`` analysed
hours ending now; 24 by default, so the correlator has opened a few incidents, a road crash among
them). While the seed replays the last :data:`HISTORY_H` hours, the KPI snapshots are recomputed
at each simulated minute as the running analytics loop does, so the brief's "3 h ago" trends come
from real history. Then it starts ``sitcen web`` with two accounts (olga: operator, lev:
leadership), signs in through the form and captures :data:`PAGES`. The incidents console opens on
the incident with the most events (``?id=``), the most telling one to look at.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACCOUNTS = {"olga": ("operator", "screenshot-operator-1"), "lev": ("leadership", "screenshot-leader-1")}
LANGS = ("kk", "ru", "en")
#: name -> (user, path with query, width, height, CSS selector that says the page is drawn)
PAGES: dict[str, tuple[str, str, int, int, str]] = {
    **{f"incidents-{lang}": ("olga", f"/incidents?lang={lang}", 1920, 1080, "#inc-page .inc-row") for lang in LANGS},
    **{f"brief-{lang}": ("lev", f"/brief?lang={lang}", 1024, 768, "#brief-page .brief-tile") for lang in LANGS},
}
#: Hours of KPI history written while seeding (the brief compares with 3 h ago).
HISTORY_H = 4.0


def seed_city(redis_dir: Path, hours: float) -> tuple[object, str]:
    """A Redis with the seeded city and the last hours of KPI history. Returns (server, url)."""
    import workers.consumer as consumer_module
    from core.citypack import load_pack
    from core.redis_server import EmbeddedRedis, connect
    from core.settings import Settings
    from core.store import Store
    from simulator.seed import seed
    from workers.snapshots import refresh

    server = EmbeddedRedis(redis_dir, persist=False)
    server.start()
    client = connect(server.url)
    pack = load_pack(None)
    store = Store.from_settings(client, Settings.from_env({}))
    start = datetime.now(UTC).replace(microsecond=0)
    history_from = start - timedelta(hours=HISTORY_H)

    def refresh_kpis(now: datetime) -> None:
        if now >= history_from:
            refresh(store, pack, now)

    original = consumer_module.Consumer

    class HistoryConsumer(original):  # type: ignore[misc, valid-type]
        """The seed's consumer, refreshing the KPI snapshots as ``sitcen run`` does."""

        def __init__(self, *args, **kwargs):
            kwargs["refresh_kpis"] = refresh_kpis
            kwargs["kpi_every_s"] = 60.0
            super().__init__(*args, **kwargs)

    consumer_module.Consumer = HistoryConsumer
    try:
        out = seed(client, pack, hours=hours, end=start)
    finally:
        consumer_module.Consumer = original
    print(f"seeded {hours} h until {out['until']}: {out['written']}")
    client.close()
    return server, server.url


def start_web(redis_url: str, port: int, accounts: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update(SC_REDIS_URL=redis_url, SC_WEB_PORT=str(port), SC_ACCOUNTS_FILE=str(accounts), SC_LOG_LEVEL="WARNING",
               SC_SECRET_KEY="screenshot-secret-key-0123456789abcdef", SC_DATA_DIR=str(accounts.parent / "var"))
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


def richest_incident(redis_url: str) -> str | None:
    """The open incident with the most events (then links): the console opens on it."""
    import orjson

    from core import keys
    from core.redis_server import connect

    client = connect(redis_url)
    try:
        ids = [i.decode() for i in client.zrevrange(keys.INCIDENTS_OPEN, 0, -1)]
        docs = [orjson.loads(raw) for raw in client.mget([keys.incident_key(i) for i in ids]) if raw] if ids else []
    finally:
        client.close()
    if not docs:
        return None
    return max(docs, key=lambda d: (len(d["events"]), len(d["links"]), d["severity"]))["id"]


def capture(base: str, out: Path, names: list[str], selected: str | None) -> list[Path]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import new_chrome

    written = []
    for name in names:
        user, path, width, height, ready = PAGES[name]
        if name.startswith("incidents") and selected:
            path += f"&id={selected}"
        driver = new_chrome(width, height)
        try:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            driver.get(f"{base}/login?next={path}")
            driver.find_element(By.NAME, "username").send_keys(user)
            driver.find_element(By.NAME, "password").send_keys(ACCOUNTS[user][1])
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, ready)))
            time.sleep(3)
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
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--only", nargs="*", default=None, help="names from PAGES (default all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        accounts = Path(tmp) / "accounts.json"
        write_accounts(accounts, {u: Account(u, role, hash_password(pw)) for u, (role, pw) in ACCOUNTS.items()})
        server, url = seed_city(Path(tmp) / "redis", args.hours)
        port = free_port()
        web = start_web(url, port, accounts)
        try:
            capture(f"http://127.0.0.1:{port}", args.out, args.only or list(PAGES), richest_incident(url))
        finally:
            web.terminate()
            web.wait(10)
            server.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
