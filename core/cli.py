"""The ``sitcen`` command: run everything, or one part alone (which is how it scales out).

    sitcen run                       everything on one machine (embedded Redis unless SC_REDIS_URL)
    sitcen feed NAME [--url URL]     one live feed (http(s):// polled, ws(s):// subscribed)
    sitcen simulate                  the demo city simulator (planted incidents, ground truth)
    sitcen demo                      the shared real data replayed as live feeds
    sitcen replay FILE --feed NAME   replay a recorded file (--speed X, 0 = as fast as possible)
    sitcen worker | scheduler        analytics RQ worker / the scheduler enqueuing its jobs
    sitcen web | public | api        operations app (8050) / public app (8051) / API alone
    sitcen redis                     the embedded Redis alone, in the foreground
    sitcen feeds                     list feeds and formats
    sitcen passwd USER --role ROLE   create or update an account of the operations app (--file F)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger("sitcen")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sitcen", description="Situation Center")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start everything on this machine")
    run.add_argument("--source", choices=["simulate", "replay", "none"], help="demo source (default SC_SOURCE)")
    feed = sub.add_parser("feed", help="run one live feed")
    feed.add_argument("name")
    feed.add_argument("--url", help="source URL (default from SC_FEED_URLS)")
    feed.add_argument("--format", help="payload format (default: the feed's first)")
    sub.add_parser("demo", help="replay the shared real data as live demo feeds")
    sim = sub.add_parser("simulate", help="run the demo city simulator")
    sim.add_argument("--seed", type=int, help="default SC_SIM_SEED")
    sim.add_argument("--start", help="simulated start, ISO 8601 with offset (default: now - backfill)")
    sim.add_argument("--backfill", type=float, help="hours of history before now (default SC_SIM_BACKFILL_H)")
    sim.add_argument("--duration", type=float, help="hours to simulate (default: forever)")
    sim.add_argument("--speed", type=float, help="history delivery speed: 0 at once (default SC_SIM_SPEED)")
    sim.add_argument("--fast", action="store_true", help="ignore the wall clock (evaluation of past days)")
    sim.add_argument("--scenario", action="append", help="plant only these scenarios (repeatable)")
    sim.add_argument("--no-scenarios", action="store_true", help="a normal day, nothing planted")
    sim.add_argument("--truth", type=Path, help="ground-truth file (default <SC_DATA_DIR>/truth/...)")
    bt = sub.add_parser("backtest", help="run one detector over a recorded file; writes timestamp,alert")
    bt.add_argument("file", type=Path, help="timestamp,value CSV (seasonal) or JSON lines of feed records")
    bt.add_argument("--detector", required=True, help="seasonal, or a registered detector name")
    bt.add_argument("--out", type=Path, help="output CSV (default: standard output)")
    rep = sub.add_parser("replay", help="replay a recorded file through a feed adapter")
    rep.add_argument("file", type=Path)
    rep.add_argument("--feed", required=True)
    rep.add_argument("--format")
    rep.add_argument("--speed", type=float, default=0.0, help="time compression; 0 = as fast as possible")
    rep.add_argument("--shift", action="store_true", help="shift the recording so it starts now")
    rep.add_argument("--loop", action="store_true", help="start again at the end")
    pw = sub.add_parser("passwd", help="create or update an account of the operations app")
    pw.add_argument("user")
    pw.add_argument("--role", choices=["operator", "leadership", "viewer"],
                    help="role (required for a new account; kept when omitted)")
    pw.add_argument("--file", type=Path, help="accounts file (default SC_ACCOUNTS_FILE)")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw.add_argument("--remove", action="store_true", help="remove the account instead")
    for name in ("worker", "scheduler", "web", "public", "api", "redis", "feeds"):
        sub.add_parser(name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sitcen`` and ``python app.py``."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        _setup_logging(settings)
        return int(COMMANDS[args.command](settings, args) or 0)
    except ConfigError as err:
        print(f"sitcen: configuration error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _require_redis(settings: Settings) -> None:
    if not settings.redis_url:
        raise ConfigError("SC_REDIS_URL is not set; start one with `sitcen redis` or use `sitcen run`")


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from core.supervisor import Supervisor, default_children

    source = args.source or settings.source
    if str(settings.accounts_file) in ("", "."):
        from dashboards.auth_accounts import ensure_demo_accounts

        demo = ensure_demo_accounts(settings.data_dir)
        print(f"sitcen: demo accounts (operator, leadership, viewer): passwords in {demo.passwords}", flush=True)
    return Supervisor(settings, default_children(settings, source=source)).run()


def _sink(settings: Settings):  # type: ignore[no-untyped-def]
    from core.api import ApiContext

    return ApiContext.create(settings)


def _run_async(coro_factory) -> int:  # type: ignore[no-untyped-def]
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(coro_factory(stop))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        waiter.cancel()
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]

    asyncio.run(main())
    return 0


def cmd_feed(settings: Settings, args: argparse.Namespace) -> int:
    from feeds import get_feed
    from feeds.runner import poll, subscribe

    _require_redis(settings)
    adapter = get_feed(args.name)
    url = args.url or settings.feed_urls.get(args.name)
    if not url:
        raise ConfigError(f"no URL for feed {args.name}: pass --url or set SC_FEED_URLS={args.name}=<url>")
    fmt = adapter.format(args.format or settings.feed_formats.get(args.name) or None)
    ctx = _sink(settings)
    if url.startswith(("ws://", "wss://")):
        return _run_async(lambda stop: subscribe(ctx.sink, adapter, fmt, url, backoff_cap_s=settings.backoff_max_s,
                                                 stop=stop, max_message_bytes=settings.ingest_max_bytes))
    if url.startswith(("http://", "https://")):
        return _run_async(lambda stop: poll(ctx.sink, adapter, fmt, url, interval_s=settings.poll_interval_s,
                                            backoff_cap_s=settings.backoff_max_s, stop=stop))
    raise ConfigError(f"feed URL {url!r} must start with http(s):// or ws(s)://")


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from feeds.demo import run_demo

    _require_redis(settings)
    ctx = _sink(settings)
    data_dir = settings.shared_data_dir.resolve()
    return _run_async(lambda stop: run_demo(ctx.sink, ctx.pack, data_dir, speed=settings.replay_speed))


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from core import keys
    from core.schemas import check_time
    from simulator.driver import fast_forward, plan_run, run_fast, run_live, save_truth
    from simulator.scenarios import load_library

    _require_redis(settings)
    ctx = _sink(settings)
    seed = settings.sim_seed if args.seed is None else args.seed
    backfill = timedelta(hours=settings.sim_backfill_h if args.backfill is None else args.backfill)
    now = datetime.now(UTC).replace(microsecond=0)
    start = check_time(args.start, "--start") if args.start else now - backfill
    assert start is not None
    duration = timedelta(hours=args.duration) if args.duration else timedelta(days=3650)
    library = load_library()
    unknown = sorted(set(args.scenario or ()) - set(library))
    if unknown:
        raise ConfigError(f"unknown scenario(s) {unknown}; the library has {sorted(library)}")
    chosen = [] if args.no_scenarios else [library[s] for s in args.scenario] if args.scenario else None
    live = not args.fast and not args.start and not args.duration
    resume = _resumable(ctx.redis, seed, now, backfill) if live else None
    if resume is not None:
        start = resume[0]
    run = plan_run(ctx.pack, seed=seed, start=start, duration=duration, scenarios=chosen)
    truth = args.truth or settings.data_dir / "truth" / f"sim-seed{seed}-{start:%Y%m%dT%H%M%SZ}.jsonl"
    if resume is not None:
        log.info("resuming the simulated city of seed %s started %s at %s", seed, start, resume[1])
        fast_forward(run, resume[1])
    save_truth(run, truth)
    if args.fast:
        run_fast(run, ctx.sink, start + duration)
    else:
        speed = settings.sim_speed if args.speed is None else args.speed

        def remember(cursor: datetime) -> None:
            if live:
                ctx.redis.hset(keys.SIM_STATE, mapping={"seed": seed, "start": start.isoformat(),
                                                        "cursor": cursor.isoformat()})

        _run_async(lambda stop: run_live(run, ctx.sink, speed=speed, until=start + duration, stop=stop,
                                         on_step=remember))
    summary = {feed: result.as_json(max_errors=5) for feed, result in run.results.items()}
    print(json.dumps({"seed": seed, "start": start.isoformat(), "truth": str(truth), "feeds": summary},
                     ensure_ascii=False, indent=1))
    return 0


def _resumable(redis, seed: int, now, backfill):  # type: ignore[no-untyped-def]
    """``(start, cursor)`` of a live simulated city to resume after a restart, or None.

    Resumed when the stored run has the same seed, was delivered up to less than ``backfill``
    ago (otherwise a fresh history is as good) and began less than two days ago (fast-forwarding
    the models costs about 4 s per simulated day).
    """
    from datetime import datetime, timedelta

    from core import keys

    state = {k.decode(): v.decode() for k, v in redis.hgetall(keys.SIM_STATE).items()}
    try:
        start, cursor = datetime.fromisoformat(state["start"]), datetime.fromisoformat(state["cursor"])
        same_seed = int(state["seed"]) == seed
    except (KeyError, ValueError):
        return None
    if same_seed and now - cursor < backfill and now - start < timedelta(days=2) and cursor <= now:
        return start, cursor
    return None


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from feeds import get_feed
    from feeds.runner import ReplayPlan, replay

    _require_redis(settings)
    adapter = get_feed(args.feed)
    fmt = adapter.format(args.format)
    if not args.file.exists():
        raise ConfigError(f"no such file: {args.file}")
    ctx = _sink(settings)
    plan = ReplayPlan(speed=args.speed, shift_to_now=args.shift, loop=args.loop)
    result = asyncio.run(replay(ctx.sink, adapter, fmt, args.file, plan))
    summary = result.as_json(max_errors=20)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from rq import Queue, Worker

    from core import keys
    from core.redis_server import connect
    from workers.jobs import preload

    _require_redis(settings)
    preload(settings)  # forked jobs inherit the loaded pack and detector modules
    redis = connect(settings.redis_url)
    worker = Worker([Queue(keys.JOBS_QUEUE, connection=redis)], connection=redis)
    worker.work(logging_level=settings.log_level.upper())
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from rq.cron import CronScheduler

    from core import keys
    from core.redis_server import connect
    from workers.jobs import prune_latest_state, run_analytics
    from workers.public import build_public_indicators

    _require_redis(settings)
    scheduler = CronScheduler(connection=connect(settings.redis_url), logging_level=settings.log_level.upper())
    tick = max(1, int(settings.tick_s))
    # each job consumes for 0.9 tick; a job finding the lock taken returns at once, and ttl drops
    # jobs left queued too long (a worker that was down), so the queue never grows
    scheduler.register(run_analytics, keys.JOBS_QUEUE, interval=tick, job_timeout=max(120, 10 * tick),
                       result_ttl=60, ttl=max(10, 3 * tick), name="analytics")
    scheduler.register(prune_latest_state, keys.JOBS_QUEUE, interval=3600, job_timeout=600, result_ttl=600,
                       name="prune-latest")
    # rq enqueues an interval job as soon as the scheduler starts, then every interval: so the public
    # document is built once at start and every 5 minutes
    scheduler.register(build_public_indicators, keys.JOBS_QUEUE, interval=300, job_timeout=300, result_ttl=600,
                       ttl=600, name="public-indicators")
    scheduler.start()
    return 0


def _serve(app, settings: Settings, port: int) -> int:  # type: ignore[no-untyped-def]
    import uvicorn

    uvicorn.run(app, host=settings.host, port=port, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=5, access_log=False)
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from dashboards.ops import create_app

    _require_redis(settings)
    return _serve(create_app(settings).server, settings, settings.web_port)


def cmd_public(settings: Settings, args: argparse.Namespace) -> int:
    from dashboards.public import create_public_app

    _require_redis(settings)
    return _serve(create_public_app(settings).server, settings, settings.public_port)


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from core.api import create_api_app

    _require_redis(settings)
    return _serve(create_api_app(settings), settings, settings.web_port)


def cmd_redis(settings: Settings, args: argparse.Namespace) -> int:
    from core.redis_server import EmbeddedRedis

    server = EmbeddedRedis(settings.data_dir / "redis", port=settings.embedded_redis_port or 6379)
    print(f"SC_REDIS_URL={server.start()}", flush=True)
    stop = {"now": False}

    def on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop["now"] and server.process and server.process.poll() is None:
            time.sleep(0.5)
    finally:
        server.stop()
    return 0


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    from feeds import REGISTRY

    for adapter in REGISTRY.values():
        print(f"{adapter.name}: {adapter.title} (expected every {adapter.expected_cadence_s:g} s)")
        for fmt in adapter.formats:
            print(f"  --format {fmt.name:<12} {', '.join(fmt.content_types) or '-':<40} {fmt.description}")
    return 0


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from core.citypack import load_pack
    from workers import backtest
    from workers.analytics import load_rules_config

    rules = load_rules_config(settings.rules_file)
    pack = None if args.detector in backtest.SERIES_DETECTORS else load_pack(settings.city_pack)
    try:
        if args.out:
            with args.out.open("w", encoding="utf-8", newline="") as out:
                summary = backtest.run(args.file, args.detector, out, pack=pack, overrides=rules.get(args.detector))
        else:
            summary = backtest.run(args.file, args.detector, sys.stdout, pack=pack, overrides=rules.get(args.detector))
    except (OSError, ValueError) as err:
        print(f"sitcen backtest: {err}", file=sys.stderr)
        return 2
    print(f"{summary['rows']} rows, {summary['alerts']} alerts", file=sys.stderr)
    return 0


MIN_PASSWORD = 8


def cmd_passwd(settings: Settings, args: argparse.Namespace) -> int:
    """Create, update or remove one account; the password is read without echo and never printed."""
    import getpass

    from dashboards.auth_accounts import Account, hash_password, load_accounts, write_accounts

    path = args.file or (settings.accounts_file if str(settings.accounts_file) not in ("", ".") else None)
    if path is None:
        raise ConfigError("no accounts file: pass --file F or set SC_ACCOUNTS_FILE")
    accounts = load_accounts(path) if Path(path).exists() else {}
    user = args.user.strip()
    if not user or len(user) > 64:
        raise ConfigError("the user name must be 1 to 64 characters")
    if args.remove:
        if accounts.pop(user, None) is None:
            print(f"sitcen passwd: no account {user!r} in {path}", file=sys.stderr)
            return 1
        write_accounts(path, accounts)
        print(f"removed {user} from {path}")
        return 0
    role = args.role or (accounts[user].role if user in accounts else None)
    if role is None:
        raise ConfigError(f"{user!r} is a new account: pass --role operator|leadership|viewer")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {user}: ")
        if getpass.getpass("again: ") != password:
            print("sitcen passwd: the passwords differ; nothing changed", file=sys.stderr)
            return 1
    if len(password) < MIN_PASSWORD:
        print(f"sitcen passwd: the password needs at least {MIN_PASSWORD} characters; nothing changed",
              file=sys.stderr)
        return 1
    verb = "updated" if user in accounts else "created"
    accounts[user] = Account(user=user, role=role, password_hash=hash_password(password))
    write_accounts(path, accounts)
    print(f"{verb} {user} ({role}) in {path}")
    return 0


COMMANDS = {
    "backtest": cmd_backtest,
    "run": cmd_run, "feed": cmd_feed, "demo": cmd_demo, "simulate": cmd_simulate, "replay": cmd_replay,
    "worker": cmd_worker,
    "scheduler": cmd_scheduler, "web": cmd_web, "public": cmd_public, "api": cmd_api, "redis": cmd_redis,
    "feeds": cmd_feeds, "passwd": cmd_passwd,
}

if __name__ == "__main__":
    sys.exit(main())
