"""The simulator without Redis: a run's records in delivery order, as the feed streams would hold them.

Used by the detection benchmark and by detector tests and calibration: the payloads go through
the real adapters' parsers (the same code as live ingest), and each record comes out as the
JSON dict the stream entry holds, with the simulated time it was delivered. The sink's clock and
bounds checks are skipped (the simulator's output passes them; ``tests/test_cli.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from feeds import get_feed
from simulator.driver import Run, plan_run
from simulator.scenarios import Scenario


@dataclass(frozen=True, slots=True)
class Delivery:
    """One payload's records: when it was delivered (simulated UTC), to which feed."""

    at: datetime
    feed: str
    records: list[dict[str, Any]]
    rejected: int


def deliveries(pack: Any, *, seed: int, start: datetime, duration: timedelta,
               scenarios: Sequence[Scenario] | None = None, run: Run | None = None) -> Iterator[Delivery]:
    """Run the simulator from ``start`` for ``duration`` and yield each payload's records.

    ``scenarios`` default to the whole library (planted every local day); pass ``[]`` for a
    quiet city. The run's ground truth is in ``run.truth`` (pass your own ``run`` from
    :func:`simulator.driver.plan_run` to read it afterwards).
    """
    run = run or plan_run(pack, seed=seed, start=start, duration=duration, scenarios=scenarios)
    sim = run.simulation
    until = start + duration
    while sim.now < until:
        step_end = min(until, sim.now + timedelta(hours=1))
        run.plant_through(step_end)
        for emission in sim.run(step_end):
            parsed = get_feed(emission.feed).parse(emission.payload, emission.format)
            records = [orjson.loads(r.to_json_bytes()) for r in parsed.records]
            yield Delivery(at=emission.at, feed=emission.feed, records=records, rejected=len(parsed.rejected))
