"""Load benchmark of the public app: a real ``sitcen public`` on a seeded Redis, many keep-alive clients.

    python bench/public_load.py [--duration 20] [--concurrency 16,64] [--procs 2] [--redis-url URL]

Seeds its own Redis with the simulated city and builds the public document
(``bench/screenshot_public.seed_public_city``; or uses ``--redis-url`` holding one), starts
``sitcen public`` (one uvicorn process), then for each target (the page ``/``, the JSON API, the
CSV, and ``/healthz``: a constant response from the same server, the ceiling of this machine) and
each concurrency runs ``--procs`` client processes for ``--duration`` seconds. Each client process
runs asyncio with persistent HTTP/1.1 connections (a minimal client: httpx costs more CPU per
request than the server does here, and the clients share the machine's cores with the server).
Clients send ``Accept-Encoding: gzip`` and ``Accept-Language`` as browsers do and read whole
bodies (not decompressed).

Reports requests/s, p50/p99 latency, errors, the CPU seconds of the server and of the clients, and
the Redis commands the server ran during the load (``INFO commandstats`` before and after, minus
this script's own ``INFO`` calls): the target is 0. Writes ``bench/results/public_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS: dict[str, str] = {
    "page": "/",
    "json": "/api/v1/public/indicators",
    "csv": "/api/v1/public/indicators.csv",
    "ceiling": "/healthz",
}
LANGS = ("ru", "kk", "en")


# --- the client -------------------------------------------------------------------------------------


async def _connection(host: str, port: int, path: str, until: float, latencies: list[float],
                      errors: list[int], index: int) -> None:
    lang = LANGS[index % len(LANGS)]
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: gzip\r\n"
               f"Accept-Language: {lang}\r\nUser-Agent: sitcen-bench\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    try:
        while clock() < until:
            start = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(clock() - start)
            if status != 200:
                errors[0] += 1
    except (ConnectionError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()


def _client(host: str, port: int, path: str, connections: int, start_at: float, duration: float,
            out: Any, offset: int) -> None:
    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = [0]
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        until = time.perf_counter() + duration
        await asyncio.gather(*(_connection(host, port, path, until, latencies, errors, offset + i)
                               for i in range(connections)))
        return latencies, errors[0]

    t0 = os.times()
    latencies, errors = asyncio.run(run())
    t1 = os.times()
    out.put({"latencies": latencies, "errors": errors, "cpu_s": (t1.user - t0.user) + (t1.system - t0.system)})


def load(host: str, port: int, path: str, *, concurrency: int, duration: float, procs: int) -> dict[str, Any]:
    """``concurrency`` keep-alive connections over ``procs`` processes for ``duration`` seconds."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.5
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    workers = [ctx.Process(target=_client, args=(host, port, path, n, start_at, duration, queue, sum(per[:i])))
               for i, n in enumerate(per) if n]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    n = len(latencies)

    def pct(q: float) -> float | None:
        return None if not n else round(1000 * latencies[min(n - 1, int(q * n))], 2)

    return {"path": path, "concurrency": concurrency, "client_processes": len(workers), "duration_s": duration,
            "requests": n, "rps": round(n / duration, 1), "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "max_ms": None if not n else round(1000 * latencies[-1], 2),
            "errors": sum(r["errors"] for r in results),
            "client_cpu_s": round(sum(r["cpu_s"] for r in results), 2)}


# --- the run ----------------------------------------------------------------------------------------


def redis_commands(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def main() -> int:
    import httpx
    import psutil

    from core.redis_server import connect, free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--redis-url", help="a Redis already holding the public document (default: seed one)")
    parser.add_argument("--hours", type=float, default=4.0, help="hours of simulated city to seed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "public_load.json")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.redis_url:
            url = args.redis_url
        else:
            from bench.screenshot_public import seed_public_city

            print("seeding the simulated city ...", flush=True)
            server, url, _ = seed_public_city(Path(tmp) / "redis", args.hours)
        from bench.screenshot_public import start_public

        redis = connect(url)
        port = free_port()
        proc = start_public(url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client() as http:  # warm every representation once (renders are cached per document)
                for lang in LANGS:
                    assert http.get(f"{base}/?lang={lang}").status_code == 200
                for path in TARGETS.values():
                    assert http.get(base + path, headers={"accept-encoding": "gzip"}).status_code == 200
            server_proc = psutil.Process(proc.pid)
            runs = []
            for name in args.targets.split(","):
                for concurrency in concurrencies:
                    before = redis_commands(redis)
                    cpu0 = server_proc.cpu_times()
                    result = load("127.0.0.1", port, TARGETS[name], concurrency=concurrency,
                                  duration=args.duration, procs=args.procs)
                    cpu1 = server_proc.cpu_times()
                    after = redis_commands(redis)
                    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    delta["info"] = delta.get("info", 0) - 1  # this script's own INFO
                    result.update(target=name, server_cpu_s=round((cpu1.user - cpu0.user)
                                                                  + (cpu1.system - cpu0.system), 2),
                                  redis_commands=sum(v for v in delta.values() if v > 0),
                                  redis_by_command={k: v for k, v in delta.items() if v > 0})
                    runs.append(result)
                    print(f"{name:8} c={concurrency:<4} {result['rps']:>8.1f} req/s  p50 {result['p50_ms']} ms  "
                          f"p99 {result['p99_ms']} ms  errors {result['errors']}  server cpu {result['server_cpu_s']} s"
                          f"  client cpu {result['client_cpu_s']} s  redis commands {result['redis_commands']}",
                          flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
            redis.close()
            if server is not None:
                server.stop()
    report = {
        "what": "sitcen public under load: keep-alive clients on the same machine",
        "command": "python bench/public_load.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"duration_s": args.duration, "concurrency": concurrencies, "client_processes": args.procs,
                     "cache_s": 30, "server": "one uvicorn process"},
        "targets": {"rps": 500, "p99_ms": 100},
        "runs": runs,
        "redis_commands_during_load": sum(r["redis_commands"] for r in runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
