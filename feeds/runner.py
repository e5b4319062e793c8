"""Transports: file replay, HTTP polling and websocket subscription.

The only feed code that does network or file I/O. Every transport hands payloads to
:func:`deliver` (parse -> :class:`~feeds.sink.Sink`), so all of them validate, batch,
dead-letter and count alike. Network transports never give up: errors are classified once
(:func:`classify`), retried after a capped, jittered exponential backoff, and reported in the
feed's transport state, which the health API shows.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import websockets
from websockets.exceptions import InvalidStatus, InvalidURI

from core.errors import FatalFeedError, PayloadError, RetryableFeedError
from core.schemas import Record
from core.validate import Bounds
from feeds.base import FeedAdapter, Format, Parsed
from feeds.sink import IngestResult, Sink, utc_now

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 2 * 1024**3


def deliver(sink: Sink, adapter: type[FeedAdapter], fmt: Format, payload: bytes, *, transport: str,
            transform: Callable[[Record], Record] | None = None) -> IngestResult:
    """Parse one payload and write it. Never raises on bad data."""
    try:
        parsed = fmt.parse(payload)
    except PayloadError as err:
        log.warning("%s: payload from %s rejected: %s", adapter.name, transport, err)
        return sink.reject_payload(adapter.name, err, payload, transport=transport)
    return sink.write(adapter.name, parsed, transport=transport, transform=transform)


# ---------------------------------------------------------------------------------------
# backoff and error classification


def backoff(*, initial: float = 1.0, factor: float = 2.0, cap: float = 60.0,
            rng: random.Random | None = None) -> Iterator[float]:
    """Delays for reconnect attempts: exponential, capped, with full jitter.

    Start a new generator after a success to reset it.
    """
    draw = (rng or random.Random()).uniform
    delay = initial
    while True:
        yield draw(delay / 2, delay)
        delay = min(cap, delay * factor)


def classify(exc: BaseException) -> RetryableFeedError | FatalFeedError:
    """Decide once whether a transport error is worth retrying soon."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        message = f"HTTP {code} from {exc.request.url}"
        return RetryableFeedError(message) if code >= 500 or code in (408, 425, 429) else FatalFeedError(message)
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        message = f"websocket handshake answered HTTP {code}"
        return RetryableFeedError(message) if code >= 500 or code in (408, 429) else FatalFeedError(message)
    if isinstance(exc, InvalidURI | httpx.InvalidURL | httpx.UnsupportedProtocol | ValueError):
        return FatalFeedError(f"bad URL: {exc}")
    return RetryableFeedError(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------
# file replay


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """How to replay a file.

    Attributes:
        speed: time compression; 0 replays as fast as possible.
        shift_to_now: move the recording so its first record happens now (and compress it by
            ``speed``), so a live screen shows it as live data.
        every_s: instead of the recorded timing, send one record every ``every_s`` seconds,
            each restamped to the moment it is sent (for sparse samples spanning years).
        loop: start again at the end (demo sources).
        relocate_to: map the recording's extent into these bounds (demo of foreign data).
    """

    speed: float = 0.0
    shift_to_now: bool = False
    every_s: float = 0.0
    loop: bool = False
    relocate_to: Bounds | None = None


def read_file(path: Path) -> bytes:
    """The file's bytes, gunzipped if it is gzip (capped at ``MAX_FILE_BYTES``)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise PayloadError(f"{path} decompresses to more than {MAX_FILE_BYTES} bytes")
    return data


def relocation(records: list[Record], target: Bounds, margin: float = 0.15) -> Callable[[Record], Record]:
    """A transform mapping the records' bounding box linearly into ``target`` (shrunk by ``margin``)."""
    pts = [p for r in records for p in r.points()]
    if not pts:
        return lambda r: r
    lat0, lat1 = min(p[0] for p in pts), max(p[0] for p in pts)
    lon0, lon1 = min(p[1] for p in pts), max(p[1] for p in pts)
    dy, dx = (target.north - target.south) * margin, (target.east - target.west) * margin
    s, n, w, e = target.south + dy, target.north - dy, target.west + dx, target.east - dx

    def move(lat: float, lon: float) -> tuple[float, float]:
        y = (lat - lat0) / (lat1 - lat0) if lat1 > lat0 else 0.5
        x = (lon - lon0) / (lon1 - lon0) if lon1 > lon0 else 0.5
        return s + y * (n - s), w + x * (e - w)

    return lambda r: r.map_points(move)


async def replay(sink: Sink, adapter: type[FeedAdapter], fmt: Format, path: Path, plan: ReplayPlan, *,
                 clock: Callable[[], datetime] = utc_now) -> IngestResult:
    """Replay a recorded file through the adapter and the sink, keeping its timing scaled by ``plan``."""
    payload = await asyncio.to_thread(read_file, path)
    try:
        parsed = await asyncio.to_thread(fmt.parse, payload)
    except PayloadError as err:
        return sink.reject_payload(adapter.name, err, payload[:65536], transport=f"replay:{path.name}")
    total = IngestResult()
    transport = f"replay:{path.name}"
    if parsed.rejected or parsed.ignored:
        total.add(sink.write(adapter.name, Parsed(rejected=parsed.rejected, ignored=parsed.ignored),
                             transport=transport))
    order = sorted(range(len(parsed.records)), key=lambda i: parsed.records[i].observed_at)
    records = [parsed.records[i] for i in order]
    index = [parsed.index_of(i) for i in order]
    moved = relocation(records, plan.relocate_to) if plan.relocate_to else None
    sink.store.set_transport_state(adapter.name, "replaying", detail=str(path))
    lap = 0
    while True:
        total.add(await _replay_once(sink, adapter, records, index, plan, moved, transport, clock))
        lap += 1
        if not plan.loop or not records:
            break
    sink.store.set_transport_state(adapter.name, "finished", detail=f"{path} x{lap}")
    return total


async def _replay_once(sink: Sink, adapter: type[FeedAdapter], records: list[Record], index: list[int],
                       plan: ReplayPlan, moved: Callable[[Record], Record] | None, transport: str,
                       clock: Callable[[], datetime]) -> IngestResult:
    total = IngestResult()
    if not records:
        return total
    start_wall, start_mono = clock(), time.monotonic()
    t0 = records[0].observed_at
    batch_size = sink.batch_size
    i = 0
    while i < len(records):
        if plan.every_s > 0:
            j = i + 1
            due = i * plan.every_s
        elif plan.speed > 0:
            due = (records[i].observed_at - t0).total_seconds() / plan.speed
            j = i + 1
            while j < len(records) and j - i < batch_size and \
                    (records[j].observed_at - t0).total_seconds() / plan.speed <= due:
                j += 1
        else:  # as fast as possible: one call, the sink batches and overlaps the writes itself
            due, j = 0.0, len(records)
        wait = due - (time.monotonic() - start_mono)
        if wait > 0:
            await asyncio.sleep(wait)
        transform = _retime(plan, t0, start_wall, clock, moved)
        chunk = Parsed(records=records[i:j], record_index=index[i:j])
        total.add(await asyncio.to_thread(sink.write, adapter.name, chunk, transport=transport, transform=transform))
        i = j
    return total


def _retime(plan: ReplayPlan, t0: datetime, start_wall: datetime, clock: Callable[[], datetime],
            moved: Callable[[Record], Record] | None) -> Callable[[Record], Record] | None:
    shift: Callable[[Record], Record] | None = None
    if plan.every_s > 0:
        now = clock()

        def shift(r: Record) -> Record:
            delta = now - r.observed_at
            return r.map_times(lambda t: t + delta)
    elif plan.shift_to_now:
        speed = plan.speed or 1.0

        def shift(r: Record) -> Record:
            return r.map_times(lambda t: start_wall + (t - t0) / speed)
    if shift is None:
        return moved
    if moved is None:
        return shift
    first = shift
    return lambda r: moved(first(r))


# ---------------------------------------------------------------------------------------
# HTTP polling


async def poll(sink: Sink, adapter: type[FeedAdapter], fmt: Format, url: str, *, interval_s: float,
               backoff_cap_s: float, headers: dict[str, str] | None = None,
               stop: asyncio.Event | None = None) -> None:
    """Fetch ``url`` every ``interval_s`` (conditional GET), forever or until ``stop`` is set."""
    stop = stop or asyncio.Event()
    delays = backoff(cap=backoff_cap_s)
    validators: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=30.0, follow_redirects=True, headers=headers) as client:
        while not stop.is_set():
            try:
                response = await client.get(url, headers=validators)
                if response.status_code != 304:
                    response.raise_for_status()
                    for src, dst in (("etag", "If-None-Match"), ("last-modified", "If-Modified-Since")):
                        if src in response.headers:
                            validators[dst] = response.headers[src]
                    result = await asyncio.to_thread(deliver, sink, adapter, fmt, response.content,
                                                     transport=f"poll:{url}")
                    log.debug("%s: polled %s: %s", adapter.name, url, result.as_json(0))
                sink.store.set_transport_state(adapter.name, "polling", detail=url)
                delays = backoff(cap=backoff_cap_s)
                wait = interval_s
            except Exception as exc:  # noqa: BLE001 - classified, reported and retried
                wait = _report(sink, adapter, url, classify(exc), delays, backoff_cap_s)
            await _sleep_or_stop(stop, wait)


def _report(sink: Sink, adapter: type[FeedAdapter], url: str, err: Exception, delays: Iterator[float],
            cap: float) -> float:
    wait = next(delays) if isinstance(err, RetryableFeedError) else cap
    log.info("%s: %s failed (%s); retrying in %.1f s", adapter.name, url, err, wait)
    sink.store.set_transport_state(adapter.name, "error", error=str(err), detail=url)
    return wait


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


# ---------------------------------------------------------------------------------------
# websocket subscription


async def subscribe(sink: Sink, adapter: type[FeedAdapter], fmt: Format, url: str, *, backoff_cap_s: float,
                    stop: asyncio.Event | None = None, first_delay_s: float = 1.0,
                    max_message_bytes: int = 8 * 1024 * 1024) -> None:
    """Receive messages from a websocket, reconnecting with capped, jittered backoff.

    Each message (text or binary) is one payload. Runs until ``stop`` is set.
    """
    stop = stop or asyncio.Event()
    delays = backoff(initial=first_delay_s, cap=backoff_cap_s)
    while not stop.is_set():
        try:
            async with websockets.connect(url, max_size=max_message_bytes, open_timeout=15) as ws:
                sink.store.set_transport_state(adapter.name, "connected", detail=url)
                delays = backoff(initial=first_delay_s, cap=backoff_cap_s)
                await _receive(ws, sink, adapter, fmt, url, stop)
            if stop.is_set():
                break
            raise RetryableFeedError("server closed the connection")
        except Exception as exc:  # noqa: BLE001 - classified, reported and retried
            err = exc if isinstance(exc, RetryableFeedError | FatalFeedError) else classify(exc)
            await _sleep_or_stop(stop, _report(sink, adapter, url, err, delays, backoff_cap_s))
    sink.store.set_transport_state(adapter.name, "stopped", detail=url)


async def _receive(ws: websockets.ClientConnection, sink: Sink, adapter: type[FeedAdapter], fmt: Format,
                   url: str, stop: asyncio.Event) -> None:
    stopper = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            getter = asyncio.create_task(ws.recv())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            message = getter.result()
            payload = message.encode() if isinstance(message, str) else bytes(message)
            await asyncio.to_thread(deliver, sink, adapter, fmt, payload, transport=f"ws:{url}")
    finally:
        stopper.cancel()
