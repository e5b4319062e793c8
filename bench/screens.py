"""Many wall screens on one web process: server CPU and memory per live-channel transport, and a wall
tab's JS heap over a long run.

    python bench/screens.py [--clients 50] [--seconds 60] [--idle 30] [--heap-minutes 10] [--tabs 2]

Set-up: an embedded Redis seeded with the simulated city, ``sitcen web`` as a process. Fifty headless
Chromium tabs do not fit two cores next to the server they measure, so the fifty screens are
**simulated at the protocol level** (one asyncio process, not counted in the server's CPU): each
does what the wall page does on the wire —

* ``ws``: opens ``/_dash-ws-callback`` (Origin and the kiosk session cookie), starts the persistent
  live callback, and on every ``sc-live`` push POSTs the wall's update callback with its own
  ``wall-seen`` state (so the server computes each screen's diff, as for a browser);
* ``interval``: POSTs the ``sc-live`` interval callback every 500 ms and, when it answers with new
  data (200, not 204), the wall's update callback.

Phases per transport: ``--idle`` seconds with nothing forced (the hub still moves every 2 s:
health, ambulance positions), then ``--seconds`` with an update forced every second (the air KPI
snapshot rewritten with a new city AQI and its version bumped: tiles, choropleth and stations
change on every screen). Server CPU (psutil, user+system of the ``sitcen web`` process) is given as
% of one core and as a ratio to that ceiling (one Python process uses one core at most); RSS in MB.

Then the heap run: ``--tabs`` real Chromium tabs (one browser; tabs of one browser share Dash's
WebSocket through its SharedWorker) on the chosen transport with the fifty protocol screens still
connected and an update forced every second, for ``--heap-minutes``; each tab's
``performance.memory.usedJSHeapSize`` is sampled every 30 s after a forced GC (CDP
``HeapProfiler.collectGarbage``); the slope is a least-squares fit in MB/h. The tabs are checked to
show the last forced value at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from bench.event_to_pixel import KIOSK, SECRET, start, stop  # noqa: E402
from core import keys  # noqa: E402
from core.citypack import load_pack  # noqa: E402
from core.redis_server import EmbeddedRedis, connect, free_port  # noqa: E402


class Forcer(threading.Thread):
    """Rewrites the air snapshot with a new city AQI every ``every`` s (version bumped)."""

    def __init__(self, redis_url: str, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.redis = connect(redis_url)
        self.every = every
        self.stopped = threading.Event()
        self.value = 0
        self.doc = orjson.loads(self.redis.get(keys.kpi_key("air")))

    def run(self) -> None:
        base = int(self.doc["values"]["city"]["air.aqi"] or 100)
        n = 0
        while not self.stopped.wait(self.every):
            n += 1
            self.value = base + n % 200
            self.doc["values"]["city"]["air.aqi"] = self.value
            self.doc["version"] = int(time.time() * 1000)
            pipe = self.redis.pipeline()
            pipe.set(keys.kpi_key("air"), orjson.dumps(self.doc))
            pipe.hset(keys.VERSIONS, "kpi:air", self.doc["version"])
            pipe.execute()


# --- protocol-level screens -------------------------------------------------------------------------


class Protocol:
    """The callbacks a wall screen calls, read from ``/_dash-dependencies``."""

    def __init__(self, deps: list[dict[str, Any]]) -> None:
        self.push = next((d["output"] for d in deps if d.get("no_output") and not d["inputs"]), None)
        self.live = next((d for d in deps if d["output"] == "sc-live.data"), None)
        self.update = next(d for d in deps if "wall-seen.data" in d["output"] and
                           any(i["id"] == "sc-live" for i in d["inputs"]))

    def update_body(self, live: Any, seen: Any) -> dict[str, Any]:
        outputs = [dict(zip(("id", "property"), part.rsplit(".", 1), strict=True))
                   for part in self.update["output"].strip(".").split("...")]
        states = {"wall-cfg": {"lang": "en", "layers": ["traffic", "units", "air", "incidents"], "rotate": 0},
                  "wall-seen": seen, "wall-view": {"index": 0, "choro": "air", "focus": None}}
        return {"output": self.update["output"], "outputs": outputs,
                "inputs": [{"id": "sc-live", "property": "data", "value": live}],
                "state": [{"id": s["id"], "property": s["property"], "value": states[s["id"]]}
                          for s in self.update["state"]],
                "changedPropIds": ["sc-live.data"]}


class Screen:
    def __init__(self, base: str, cookies: httpx.Cookies, proto: Protocol) -> None:
        self.base, self.proto = base, proto
        self.http = httpx.AsyncClient(base_url=base, cookies=cookies, timeout=30,
                                      headers={"Origin": base, "Referer": base + "/wall"})
        self.seen: Any = None
        self.updates = 0
        self.errors = 0

    async def redraw(self, live: Any) -> None:
        try:
            r = await self.http.post("/_dash-update-component", json=self.proto.update_body(live, self.seen))
            if r.status_code == 200:
                self.updates += 1
                seen = (r.json().get("response") or {}).get("wall-seen", {}).get("data")
                if seen is not None:
                    self.seen = seen
            elif r.status_code != 204:
                self.errors += 1
        except httpx.HTTPError:
            self.errors += 1

    async def run_ws(self, stop: asyncio.Event) -> None:
        import websockets

        url = self.base.replace("http", "ws", 1) + "/_dash-ws-callback"
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        async with websockets.connect(url, additional_headers={"Origin": self.base, "Cookie": cookie},
                                      max_size=2**24) as ws:
            await ws.send(json.dumps({"type": "callback_request", "rendererId": uuid.uuid4().hex,
                                      "requestId": uuid.uuid4().hex,
                                      "payload": {"output": self.proto.push, "outputs": [], "inputs": [],
                                                  "state": [], "changedPropIds": []}}))
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                messages = orjson.loads(raw)
                for m in messages if isinstance(messages, list) else [messages]:
                    if m.get("type") == "set_props" and m["payload"]["componentId"] == "sc-live":
                        await self.redraw(m["payload"]["props"]["data"])

    async def run_interval(self, stop: asyncio.Event) -> None:
        live: Any = None
        n = 0
        while not stop.is_set():
            n += 1
            t0 = time.monotonic()
            body = {"output": "sc-live.data", "outputs": {"id": "sc-live", "property": "data"},
                    "inputs": [{"id": "sc-live-tick", "property": "n_intervals", "value": n}],
                    "state": [{"id": "sc-live", "property": "data", "value": live}],
                    "changedPropIds": ["sc-live-tick.n_intervals"]}
            try:
                r = await self.http.post("/_dash-update-component", json=body)
                if r.status_code == 200:
                    answer = r.json().get("response") or {}
                    if "sc-live" in answer:  # Dash 4 answers an unchanged tick with an empty response
                        live = answer["sc-live"]["data"]
                        await self.redraw(live)
                elif r.status_code != 204:
                    self.errors += 1
            except httpx.HTTPError:
                self.errors += 1
            await asyncio.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))


async def screens(base: str, channel: str, clients: int, stop: asyncio.Event, ready: asyncio.Event,
                  out: list[Screen]) -> None:
    async with httpx.AsyncClient(base_url=base, follow_redirects=True) as client:
        await client.get(f"/wall?kiosk={KIOSK}&lang=en")
        deps = (await client.get("/_dash-dependencies")).json()
        cookies = client.cookies
    proto = Protocol(deps)
    out.extend(Screen(base, cookies, proto) for _ in range(clients))
    run = [s.run_ws(stop) if channel == "ws" else s.run_interval(stop) for s in out]
    ready.set()
    for result in await asyncio.gather(*run, return_exceptions=True):
        if isinstance(result, BaseException):
            out[0].errors += 1
            print(f"  screen failed: {type(result).__name__}: {result}", flush=True)
    for s in out:
        await s.http.aclose()


class ScreenFleet(threading.Thread):
    """The protocol screens in their own thread and event loop."""

    def __init__(self, base: str, channel: str, clients: int) -> None:
        super().__init__(daemon=True)
        self.base, self.channel, self.clients = base, channel, clients
        self.screens: list[Screen] = []
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        ready = asyncio.Event()

        async def main() -> None:
            task = asyncio.create_task(screens(self.base, self.channel, self.clients, self.stop_event, ready,
                                               self.screens))
            await ready.wait()
            self.ready.set()
            await task

        self.loop.run_until_complete(main())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.join(15)

    def updates(self) -> int:
        return sum(s.updates for s in self.screens)

    def errors(self) -> int:
        return sum(s.errors for s in self.screens)


def cpu_of(proc: psutil.Process, seconds: float) -> float:
    a, t0 = proc.cpu_times(), time.time()
    time.sleep(seconds)
    b, t1 = proc.cpu_times(), time.time()
    return 100 * ((b.user + b.system) - (a.user + a.system)) / (t1 - t0)


def web_env(redis_url: str, port: int, channel: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update(SC_REDIS_URL=redis_url, SC_WEB_PORT=str(port), SC_KIOSK_TOKENS=KIOSK, SC_SECRET_KEY=SECRET,
               SC_LOG_LEVEL="WARNING", SC_LIVE_CHANNEL=channel)
    return env


def measure_channel(redis_url: str, channel: str, clients: int, idle: float, seconds: float) -> dict[str, Any]:
    port = free_port()
    web = start("web", web_env(redis_url, port, channel), port)
    proc = psutil.Process(web.pid)
    try:
        base_cpu = cpu_of(proc, 5)
        fleet = ScreenFleet(f"http://127.0.0.1:{port}", channel, clients)
        fleet.start()
        fleet.ready.wait(60)
        time.sleep(3)
        u0 = fleet.updates()
        idle_cpu = cpu_of(proc, idle)
        u1 = fleet.updates()
        forcer = Forcer(redis_url)
        forcer.start()
        active_cpu = cpu_of(proc, seconds)
        u2 = fleet.updates()
        rss = proc.memory_info().rss
        forcer.stopped.set()
        fleet.stop()
        return {"channel": channel, "screens": clients, "no_screens_cpu_pct": round(base_cpu, 1),
                "idle_cpu_pct": round(idle_cpu, 1), "idle_ratio_to_one_core": round(idle_cpu / 100, 3),
                "active_cpu_pct": round(active_cpu, 1), "active_ratio_to_one_core": round(active_cpu / 100, 3),
                "rss_mb": round(rss / 2**20, 1),
                "redraws_per_screen_per_s_idle": round((u1 - u0) / clients / idle, 2),
                "redraws_per_screen_per_s_active": round((u2 - u1) / clients / seconds, 2),
                "errors": fleet.errors()}
    finally:
        stop(web)


def heap_run(redis_url: str, channel: str, clients: int, minutes: float, tabs: int) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import new_chrome

    port = free_port()
    web = start("web", web_env(redis_url, port, channel), port)
    proc = psutil.Process(web.pid)
    base = f"http://127.0.0.1:{port}"
    fleet = ScreenFleet(base, channel, clients)
    fleet.start()
    fleet.ready.wait(60)
    forcer = Forcer(redis_url)
    forcer.start()
    driver = new_chrome(1920, 1080)
    samples: list[list[float]] = []
    handles = []
    cpu = []
    try:
        for i in range(tabs):
            if i:
                driver.switch_to.new_window("tab")
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
            driver.get(f"{base}/wall?kiosk={KIOSK}&lang=en")
            WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#wall-map path")))
            handles.append(driver.current_window_handle)
        t0 = time.time()
        end = t0 + minutes * 60
        while True:
            row = [round((time.time() - t0) / 60, 2)]
            for h in handles:
                driver.switch_to.window(h)
                driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
                row.append(round(driver.execute_script("return performance.memory.usedJSHeapSize") / 2**20, 2))
            samples.append(row)
            print(f"  heap at {row[0]:5.1f} min: {row[1:]} MB", flush=True)
            if time.time() >= end:
                break
            cpu.append(cpu_of(proc, min(30.0, max(0.0, end - time.time()))))
        final = []
        for h in handles:
            driver.switch_to.window(h)
            final.append(driver.find_element(By.ID, "wall-value-air").text)
        expected = forcer.value
    finally:
        forcer.stopped.set()
        driver.quit()
        fleet.stop()
        stop(web)
    slopes = []
    for k in range(1, tabs + 1):
        xs = [s[0] / 60 for s in samples]
        ys = [s[k] for s in samples]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        den = sum((x - mx) ** 2 for x in xs) or 1.0
        slopes.append(round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 2))
    return {"channel": channel, "tabs": tabs, "protocol_screens": clients, "minutes": minutes,
            "forced_updates_per_s": 1.0, "samples_min_mb": samples, "heap_slope_mb_per_h": slopes,
            "heap_first_last_mb": [[s[k] for s in (samples[0], samples[-1])] for k in range(1, tabs + 1)],
            "server_cpu_pct_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "tabs_show_last_value": [abs(int(v.replace(",", "")) - expected) <= 2 for v in final],
            "protocol_errors": fleet.errors()}


def main(argv: list[str] | None = None) -> int:
    from simulator.seed import seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--channels", default="ws,interval")
    parser.add_argument("--heap-channel", default="ws")
    parser.add_argument("--heap-minutes", type=float, default=10.0)
    parser.add_argument("--tabs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "screens.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python bench/screens.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "how": "protocol-level screens (asyncio, one process) for the N screens; real Chromium tabs for the heap",
        "channels": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
        server.start()
        try:
            redis = connect(server.url)
            print("seeding 2 h of the city ...", flush=True)
            seed(redis, load_pack(None), hours=2)
            for channel in [c.strip() for c in args.channels.split(",") if c.strip()]:
                r = measure_channel(server.url, channel, args.clients, args.idle, args.seconds)
                results["channels"].append(r)
                print(f"{channel}: {r['screens']} screens: idle {r['idle_cpu_pct']} % of a core "
                      f"({r['idle_ratio_to_one_core']} of the one-core ceiling), with an update every second "
                      f"{r['active_cpu_pct']} % ({r['active_ratio_to_one_core']}), RSS {r['rss_mb']} MB, "
                      f"redraws/screen/s idle {r['redraws_per_screen_per_s_idle']} active "
                      f"{r['redraws_per_screen_per_s_active']}, errors {r['errors']} "
                      f"(no screens: {r['no_screens_cpu_pct']} %)", flush=True)
            if args.heap_minutes > 0:
                print(f"heap run: {args.tabs} tabs + {args.clients} protocol screens, {args.heap_minutes} min ...",
                      flush=True)
                h = heap_run(server.url, args.heap_channel, args.clients, args.heap_minutes, args.tabs)
                results["heap"] = h
                print(f"heap slope {h['heap_slope_mb_per_h']} MB/h over {args.heap_minutes} min "
                      f"(first/last {h['heap_first_last_mb']} MB); tabs current: {h['tabs_show_last_value']}; "
                      f"server CPU {h['server_cpu_pct_mean']} %", flush=True)
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
