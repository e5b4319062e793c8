"""Screenshots of the wall at 1920×1080 in Kazakh, Russian and English from a freshly seeded city.

    python -m bench.screenshot_wall [--out docs/screenshots] [--hours 6] [--query "layers=...&rotate=0"]

Starts its own Redis, seeds it with the simulated city (``simulator.seed``: six analysed hours
ending now), adds the KPI snapshot of an hour ago to the KPI history (what a running analytics loop
leaves there, so the tiles show their trend), starts ``sitcen web`` and opens ``/wall`` in headless
Chromium as a kiosk screen. :data:`PAGES` lists what is captured; others may add rows.
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KIOSK = "screenshot-kiosk-token-0123456789"
#: name -> (path with query, width, height)
PAGES: dict[str, tuple[str, int, int]] = {
    f"wall-{lang}": (f"/wall?kiosk={KIOSK}&lang={lang}", 1920, 1080) for lang in ("kk", "ru", "en")
}


def seed_city(redis_dir: Path, hours: float) -> tuple[object, str]:
    """A Redis with the seeded city and an hour of KPI history. Returns (server, url)."""
    from core import keys
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
    out = seed(client, pack, hours=hours)
    end = datetime.fromisoformat(out["until"])
    store = Store.from_settings(client, Settings.from_env({}))
    # the history entry an hour ago (history entries only append: rebuild it oldest first)
    client.delete(*[keys.kpi_history_key(d) for d in ("air", "ambulance", "appeals", "traffic")])
    refresh(store, pack, end - timedelta(hours=1))
    versions = refresh(store, pack, end)  # and the current snapshots again
    client.hset(keys.VERSIONS, mapping={f"kpi:{d}": v for d, v in versions.items()})
    client.close()
    return server, server.url


def start_web(redis_url: str, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update(SC_REDIS_URL=redis_url, SC_WEB_PORT=str(port), SC_KIOSK_TOKENS=KIOSK, SC_LOG_LEVEL="WARNING",
               SC_SECRET_KEY="screenshot-secret-key-0123456789abcdef")
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


def capture(base: str, out: Path, names: list[str], extra_query: str = "") -> list[Path]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import new_chrome

    written = []
    for name in names:
        path, width, height = PAGES[name]
        driver = new_chrome(width, height)
        try:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            driver.get(base + path + (("&" + extra_query) if extra_query else ""))
            WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".leaflet-interactive")))
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--query", default="", help="extra query string for every page")
    parser.add_argument("--only", nargs="*", default=None, help="names from PAGES (default all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = seed_city(Path(tmp) / "redis", args.hours)
        port = free_port()
        web = start_web(url, port)
        try:
            capture(f"http://127.0.0.1:{port}", args.out, args.only or list(PAGES), args.query)
        finally:
            web.terminate()
            web.wait(10)
            server.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
