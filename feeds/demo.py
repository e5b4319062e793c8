"""The demo source until the simulator lands: the shared real data replayed as live feeds.

Each file goes through its real adapter and the same sink as live data, shifted to now,
compressed by ``SC_REPLAY_SPEED`` and looped. The NYC 311 and San Francisco dispatch samples
lie outside the city, so their positions are mapped linearly into the city's extent (the
records say so in ``source``); the Almaty air and traffic data are used as they are.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from core.citypack import CityPack
from core.errors import ConfigError
from feeds import get_feed
from feeds.runner import ReplayPlan, backoff, replay
from feeds.sink import Sink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoSource:
    """One shared data file replayed as one feed."""

    feed: str
    path: str
    format: str
    relocate: bool = False
    every_s: float = 0.0


DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource("air", "almaty/air_kgmt_hourly_2024-12_2025-01.csv.gz", "kgmt-csv"),
    DemoSource("traffic", "almaty/traffic_scores_2026-10-01_07.csv", "score-csv"),
    DemoSource("appeals", "open311/nyc_311_service_requests.sample.csv", "nyc311-csv", relocate=True),
    # 1,000 records sampled over 16 years: send one every few seconds instead of their timing
    DemoSource("ambulance", "ems/sf_fire_calls_sample.csv", "sf-csv", relocate=True, every_s=3.0),
)


def demo_paths(data_dir: Path) -> list[tuple[DemoSource, Path]]:
    """Each demo source with its file.

    Raises:
        ConfigError: a file is missing (names it and ``SC_SHARED_DATA_DIR``).
    """
    out = []
    for source in DEMO_SOURCES:
        path = data_dir / source.path
        if not path.exists():
            raise ConfigError(f"demo data {path} is missing; put the shared data beside the project or set "
                              f"SC_SHARED_DATA_DIR (or run with SC_SOURCE=none)")
        out.append((source, path))
    return out


async def run_demo(sink: Sink, pack: CityPack, data_dir: Path, *, speed: float) -> None:
    """Replay every demo source concurrently, forever."""
    tasks = []
    for source, path in demo_paths(data_dir):
        plan = ReplayPlan(speed=speed, shift_to_now=True, every_s=source.every_s, loop=True,
                          relocate_to=pack.bounds if source.relocate else None)
        log.info("demo: replaying %s as feed %s (%s)", path, source.feed, plan)
        tasks.append(asyncio.create_task(_keep_replaying(sink, source, path, plan), name=f"demo-{source.feed}"))
    await asyncio.gather(*tasks)


async def _keep_replaying(sink: Sink, source: DemoSource, path: Path, plan: ReplayPlan) -> None:
    """Replay one source forever; an unexpected failure is logged, reported and retried."""
    adapter = get_feed(source.feed)
    delays = backoff(cap=60.0)
    while True:
        try:
            await replay(sink, adapter, adapter.format(source.format), path, plan)
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - one broken source must not stop the others
            wait = next(delays)
            log.error("demo %s failed; retrying in %.0f s", source.feed, wait, exc_info=True)
            sink.store.set_transport_state(source.feed, "error", error=f"{type(err).__name__}: {err}",
                                           detail=str(path))
            await asyncio.sleep(wait)
