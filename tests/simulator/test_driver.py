"""The simulator driver against a real Redis: history at once, then never ahead of the wall clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.validate import Bounds
from feeds.sink import Sink
from simulator.driver import plan_run, run_live

pytestmark = pytest.mark.redis

PACK = load_pack()


@pytest.mark.slow
def test_live_run_delivers_history_then_keeps_pace_and_never_runs_ahead(store):
    b = PACK.bounds
    sink = Sink(store, bounds=Bounds(b.west, b.south, b.east, b.north), max_future_s=0, batch_size=1000)
    now = datetime.now(UTC).replace(microsecond=0)
    start, duration = now - timedelta(minutes=3), timedelta(minutes=3, seconds=20)
    run = plan_run(PACK, seed=2, start=start, duration=duration, scenarios=[])
    started = datetime.now(UTC)
    asyncio.run(run_live(run, sink, speed=0, until=start + duration))
    finished = datetime.now(UTC)
    # history (3 min) went at once; the last 20 simulated seconds took about 20 s of wall time
    assert 15 <= (finished - started).total_seconds() <= 35
    for feed in ("ambulance", "traffic"):
        result = run.results[feed]
        assert result.accepted > 0 and result.rejected == 0, (feed, result.as_json(3))  # nothing from the future
    units = store.latest("ambulance", "units")
    newest = max(datetime.fromisoformat(u["observed_at"].replace("Z", "+00:00")) for u in units.values())
    assert (finished - newest).total_seconds() < 15  # positions arrive tick by tick, not once a minute
