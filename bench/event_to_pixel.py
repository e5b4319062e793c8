"""Event-to-pixel latency of the wall: from a write in Redis to the changed pixel in a real browser.

    python bench/event_to_pixel.py [--channels ws,interval] [--rate 1000] [--changes 40] [--every 2]

Everything is real: an embedded Redis seeded with the simulated city (``simulator.seed``), the
production analytics processes (``sitcen scheduler`` + ``sitcen worker``), ``sitcen web`` (once per
live-channel transport, ``SC_LIVE_CHANNEL``) and headless Chromium on ``/wall`` (1920×1080, kiosk).
A producer offers ``--rate`` simulated records/s (ambulance, traffic and air records of
``bench.analytics.simulated``, in 100 ms batches) for the whole run. Every ``--every`` seconds one
change that shows on the wall is written, alternating two kinds:

* ``kpi`` (the whole pipeline): one new open appeal is ``XADD``ed through the real store; the
  analytics worker consumes it and recomputes the appeals KPI snapshot, the hub reloads it, the
  live channel tells the screen, the screen's callback patches the "open appeals" tile. Appeals
  are left out of the background load, so the tile moves only by these records.
* ``incident`` (the web path alone): an incident is created with the real incident store (the
  correlator's write: document, indexes and version in one transaction) and must appear in the
  ticker.

A ``MutationObserver`` in the page stamps the DOM change with ``performance.timeOrigin +
performance.now()``; the write is stamped with ``time.time()`` just before it (same machine clock).
Reported per channel and kind: p50 / p95 / max over the changes, and the web process's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from core.citypack import load_pack  # noqa: E402
from core.redis_server import EmbeddedRedis, connect, free_port  # noqa: E402
from core.schemas import record_from_dict  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import Store  # noqa: E402

KIOSK = "bench-kiosk-token-0123456789"
SECRET = "bench-secret-key-0123456789abcdef0123"

OBSERVER = """
window.__hit = null; window.__armed = null;
window.__check = function () {
  var a = window.__armed;
  if (!a || window.__hit !== null) { return; }
  var ok = false;
  if (a.kind === 'text') { var el = document.getElementById(a.id); ok = el && el.textContent !== a.before; }
  else { ok = !!document.querySelector('.ticker-row[data-id="' + a.id + '"]'); }
  if (ok) { window.__hit = performance.timeOrigin + performance.now(); }
};
new MutationObserver(window.__check).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def start(command: str, env: dict[str, str], port: int | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", command], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if port is not None:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code < 500:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.3)
        proc.kill()
        raise SystemExit(f"sitcen {command} did not start")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Producer(threading.Thread):
    """Offers ``rate`` records/s of the background mix in 100 ms batches until stopped."""

    def __init__(self, store: Store, records: list[tuple[str, Any]], rate: float) -> None:
        super().__init__(daemon=True)
        self.store, self.records, self.rate = store, records, rate
        self.stopped = threading.Event()
        self.offered = 0

    def run(self) -> None:
        per_tick = max(1, int(self.rate / 10))
        i = 0
        next_at = time.time()
        while not self.stopped.is_set():
            chunk = [self.records[(i + k) % len(self.records)] for k in range(per_tick)]
            i += per_tick
            by_feed: dict[str, list[Any]] = {}
            for feed, r in chunk:
                by_feed.setdefault(feed, []).append(r)
            for feed, records in by_feed.items():
                self.store.append(feed, records)
            self.offered += len(chunk)
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.time()))


def background(pack: Any, hours: float) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The background records (no appeals) and one appeal record as a template."""
    from bench.analytics import simulated

    records: list[tuple[str, Any]] = []
    template = None
    for feed, batch in simulated(pack, hours, seed=11):
        if feed == "appeals":
            template = template or next((r.to_dict() for r in batch if r.to_dict().get("kind") == "requests"), None)
            continue
        records.extend((feed, r) for r in batch)
    if template is None:
        raise SystemExit("no appeal record in the simulated hours")
    return records, template


def marker_appeal(template: dict[str, Any], n: int) -> Any:
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    record = {**template, "request_id": f"BENCH-{os.getpid()}-{n:05d}", "status": "open", "state": "new",
              "requested_at": now, "closed_at": None, "expected_at": None}
    for key in ("updated_at", "observed_at"):
        if key in record:
            record[key] = now
    return record_from_dict("appeals", record)


def new_incident(redis: Any, n: int) -> str:
    from workers.incidents import IncidentStore

    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    lat, lon = 43.22 + 0.001 * (n % 50), 76.88 + 0.001 * (n % 37)
    event = {"id": f"bench:{os.getpid()}:{n}", "detector": "appeal_hotspot", "signal": "appeals.burst",
             "key": f"bench{n}", "phase": "open", "onset": stamp, "detected_at": stamp, "at": stamp, "severity": 3,
             "district": "almaly", "lat": lat, "lon": lon, "radius_m": 300.0, "evidence": {"category": "heating"},
             "ended_at": None}
    return IncidentStore(redis, "Asia/Almaty").create({"type": "heating_outage"}, [event], now=now)["id"]


def resolve(redis: Any, incident_id: str) -> None:
    from workers.incidents import IncidentStore

    IncidentStore(redis, "Asia/Almaty").act(incident_id, "resolve", "bench", datetime.now(UTC), text="bench")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95),
            "max_ms": round(max(values), 1) if values else None}


def run_channel(channel: str, redis_url: str, store: Store, redis: Any, template: dict[str, Any],
                changes: int, every: float, counter: list[int]) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import new_chrome

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update(SC_REDIS_URL=redis_url, SC_WEB_PORT=str(port), SC_KIOSK_TOKENS=KIOSK, SC_SECRET_KEY=SECRET,
               SC_LOG_LEVEL="WARNING", SC_LIVE_CHANNEL=channel)
    web = start("web", env, port)
    driver = new_chrome(1920, 1080)
    lat: dict[str, list[float]] = {"kpi": [], "incident": []}
    missed = {"kpi": 0, "incident": 0}
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
        driver.get(f"http://127.0.0.1:{port}/wall?kiosk={KIOSK}&lang=en")
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#wall-map path")))
        time.sleep(3)
        driver.execute_script(OBSERVER)
        proc = psutil.Process(web.pid)
        cpu0, t0 = proc.cpu_times(), time.time()
        previous: str | None = None
        for i in range(changes):
            kind = "kpi" if i % 2 == 0 else "incident"
            counter[0] += 1
            if kind == "kpi":
                before = driver.execute_script("return document.getElementById('wall-value-appeals').textContent")
                driver.execute_script("window.__hit = null; window.__armed = {kind: 'text', id: 'wall-value-appeals',"
                                      " before: arguments[0]};", before)
                written = time.time() * 1000
                store.append("appeals", [marker_appeal(template, counter[0])])
            else:
                driver.execute_script("window.__hit = null; window.__armed = null;")
                written = time.time() * 1000
                # arm by id right after the write (the id is known only then); the observer also
                # checks on arming, so a row already drawn still counts from the write time
                incident_id = new_incident(redis, counter[0])
                driver.execute_script("window.__armed = {kind: 'row', id: arguments[0]}; window.__check();",
                                      incident_id)
            hit = None
            deadline = time.time() + 10
            while time.time() < deadline:
                hit = driver.execute_script("return window.__hit")
                if hit is not None:
                    break
                time.sleep(0.02)
            if hit is None:
                missed[kind] += 1
            else:
                lat[kind].append(hit - written)
            if kind == "incident":
                if previous:
                    resolve(redis, previous)
                previous = incident_id
            time.sleep(max(0.0, every - (time.time() * 1000 - written) / 1000))
        cpu1, t1 = proc.cpu_times(), time.time()
        mem = proc.memory_info().rss
        if previous:
            resolve(redis, previous)
    finally:
        driver.quit()
        stop(web)
    both = lat["kpi"] + lat["incident"]
    return {"channel": channel, "all": summary(both), "kpi_xadd_to_pixel": summary(lat["kpi"]),
            "incident_write_to_pixel": summary(lat["incident"]), "missed": missed,
            "web_cpu_pct_one_screen": round(100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system))
                                            / (t1 - t0), 1),
            "web_rss_mb": round(mem / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    from simulator.seed import seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="ws,interval")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--seed-hours", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "event_to_pixel.json")
    args = parser.parse_args(argv)
    pack = load_pack(None)
    results: dict[str, Any] = {
        "command": "python bench/event_to_pixel.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "offered_records_per_s": args.rate, "target_p95_ms": 1000, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
        server.start()
        try:
            redis = connect(server.url)
            print(f"seeding {args.seed_hours} h of the city ...", flush=True)
            seed(redis, pack, hours=args.seed_hours)
            records, template = background(pack, 1.0)
            store = Store.from_settings(redis, Settings.from_env({}, redis_url=server.url))
            env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
            env.update(SC_REDIS_URL=server.url, SC_LOG_LEVEL="WARNING")
            workers = [start("scheduler", env), start("worker", env)]
            producer = Producer(Store.from_settings(connect(server.url), Settings.from_env({}, redis_url=server.url)),
                                records, args.rate)
            producer.start()
            counter = [0]
            try:
                time.sleep(5)
                for channel in [c.strip() for c in args.channels.split(",") if c.strip()]:
                    t_start, offered0 = time.time(), producer.offered
                    run = run_channel(channel, server.url, store, redis, template, args.changes, args.every, counter)
                    run["offered_records_per_s_measured"] = round((producer.offered - offered0)
                                                                  / (time.time() - t_start))
                    results["runs"].append(run)
                    a = run["all"]
                    print(f"{channel}: event-to-pixel p50 {a['p50_ms']} ms, p95 {a['p95_ms']} ms, max {a['max_ms']} ms "
                          f"over {a['n']} changes (ratio of p95 to the 1 s target: "
                          f"{a['p95_ms'] / 1000 if a['p95_ms'] else None}); "
                          f"kpi (XADD->pixel) p95 {run['kpi_xadd_to_pixel']['p95_ms']} ms, "
                          f"incident (write->pixel) p95 {run['incident_write_to_pixel']['p95_ms']} ms; "
                          f"missed {run['missed']}; web CPU {run['web_cpu_pct_one_screen']} %, "
                          f"{run['offered_records_per_s_measured']} records/s offered", flush=True)
            finally:
                producer.stopped.set()
                producer.join(5)
                for w in workers:
                    stop(w)
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
