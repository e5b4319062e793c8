"""Running the simulator: build a run, plant the scenarios, deliver its payloads through the sink.

Timing:
    :func:`run_fast`  simulated time runs as fast as the machine allows, whatever the wall clock
                      says (evaluation and tests on past days);
    :func:`run_live`  the run usually starts some hours in the past; that history is delivered at
                      once (``speed`` 0) or ``speed`` times faster than it happened, so screens have
                      a past to show, and from then on the run keeps pace with the wall clock. It
                      never runs ahead of now: records from the future are rejected, as from a
                      real source.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from feeds import get_feed
from feeds.runner import backoff, deliver
from feeds.sink import IngestResult, Sink, utc_now
from simulator.effects import Effects
from simulator.engine import Emission, SimContext, Simulation
from simulator.scenarios import PlantedIncident, Scenario, load_library, plant, write_truth

log = logging.getLogger(__name__)

TRANSPORT = "simulator"


@dataclass
class Run:
    """A simulation run and its ground truth, planted one local day ahead as simulated time goes on."""

    simulation: Simulation
    scenarios: list[Scenario]
    rng: random.Random
    end: datetime
    next_day: date
    truth: list[PlantedIncident] = field(default_factory=list)
    truth_path: Path | None = None
    delivered: Counter[str] = field(default_factory=Counter)
    results: dict[str, IngestResult] = field(default_factory=dict)
    _number: int = 0

    def plant_through(self, t: datetime) -> list[PlantedIncident]:
        """Plant every scenario on each local day starting before ``t`` + 1 day and before the end.

        Incidents are thus known a day before they begin; their effects join the simulation and
        their ground truth is appended to ``truth`` (and to ``truth_path`` once it is set).
        """
        ctx = self.simulation.ctx
        zone = ctx.pack.zone
        new: list[PlantedIncident] = []
        while (midnight := datetime.combine(self.next_day, time(0), zone)) < min(self.end, t + timedelta(days=1)):
            for scenario in self.scenarios:
                self._number += 1
                incident, effects = plant(scenario, pack=ctx.pack, day=midnight.astimezone(UTC), rng=self.rng,
                                          number=self._number)
                if ctx.start <= incident.start < self.end:
                    new.append(incident)
                    ctx.effects.add(effects)
            self.next_day += timedelta(days=1)
        ctx.effects.prune(t - timedelta(hours=1))
        new.sort(key=lambda i: i.start)
        self.truth.extend(new)
        if new and self.truth_path is not None:
            _append_truth(self.truth_path, new)
        return new


def build_models(ctx: SimContext) -> list[Any]:
    """One model per feed (imported here so a missing model names itself clearly)."""
    from simulator.models.air import AirModel
    from simulator.models.ambulance import AmbulanceModel
    from simulator.models.appeals import AppealsModel
    from simulator.models.traffic import TrafficModel

    return [TrafficModel(ctx), AirModel(ctx), AmbulanceModel(ctx), AppealsModel(ctx)]


def plan_run(pack: Any, *, seed: int, start: datetime, duration: timedelta,
             scenarios: Sequence[Scenario] | None = None) -> Run:
    """Build a run and plant ``scenarios`` (default: the whole library) on its first local day(s)."""
    chosen = list(load_library().values()) if scenarios is None else list(scenarios)
    ctx = SimContext(pack=pack, seed=seed, start=start, effects=Effects())
    run = Run(simulation=Simulation(ctx, build_models(ctx)), scenarios=chosen,
              rng=random.Random(f"{seed}:scenarios"), end=start + duration,
              next_day=start.astimezone(pack.zone).date())
    run.plant_through(start)
    return run


def _send(run: Run, sink: Sink, emission: Emission) -> None:
    adapter = get_feed(emission.feed)
    result = deliver(sink, adapter, adapter.format(emission.format), emission.payload, transport=TRANSPORT)
    run.delivered[emission.feed] += 1
    run.results.setdefault(emission.feed, IngestResult()).add(result)


def run_fast(run: Run, sink: Sink, until: datetime) -> Run:
    """Deliver every emission up to ``until`` as fast as possible."""
    _mark(run, sink, "simulating")
    sim = run.simulation
    while sim.now < until:
        step_end = min(until, sim.now + timedelta(hours=1))
        run.plant_through(step_end)
        for emission in sim.run(step_end):
            _send(run, sink, emission)
    _mark(run, sink, "finished")
    return run


def _mark(run: Run, sink: Sink, state: str) -> None:
    detail = f"simulator seed {run.simulation.ctx.seed}"
    for model in run.simulation.models:
        sink.store.set_transport_state(model.feed, state, detail=detail)


def fast_forward(run: Run, until: datetime) -> None:
    """Advance the models to ``until`` without delivering anything (resuming a restarted run)."""
    sim = run.simulation
    while sim.now < until:
        step_end = min(until, sim.now + timedelta(hours=1))
        run.plant_through(step_end)
        for _ in sim.run(step_end):
            pass


async def run_live(run: Run, sink: Sink, *, speed: float = 0.0, until: datetime | None = None,
                   clock: Callable[[], datetime] = utc_now, stop: asyncio.Event | None = None,
                   on_step: Callable[[datetime], None] | None = None) -> Run:
    """Deliver emissions minute by minute, never before their simulated time.

    History (simulated time before now) goes out at once with ``speed`` 0, or ``speed`` times
    faster than it happened; from now on the run keeps pace with the wall clock.
    """
    stop = stop or asyncio.Event()
    sim = run.simulation
    wall0, sim0 = clock(), sim.now
    _mark(run, sink, "simulating")
    horizon = until or datetime.max.replace(tzinfo=UTC)
    while not stop.is_set() and sim.now < horizon:
        # history goes in one-minute steps; once caught up, tick by tick so a unit moves
        # on the map every few seconds rather than jumping once a minute
        behind = clock() - sim.now > timedelta(minutes=1)
        step_end = min(horizon, sim.now + (timedelta(minutes=1) if behind else sim.tick))
        due = step_end if speed <= 0 else max(step_end, wall0 + (step_end - sim0) / speed)
        wait = (due - clock()).total_seconds()
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                break
            except TimeoutError:
                pass
        run.plant_through(step_end)
        emissions = list(sim.run(step_end))
        await _deliver_retrying(run, sink, emissions, stop)
        if on_step is not None:
            on_step(step_end)
    _mark(run, sink, "stopped" if stop.is_set() else "finished")
    return run


async def _deliver_retrying(run: Run, sink: Sink, emissions: list[Emission], stop: asyncio.Event) -> None:
    """Deliver one step; while Redis is away, wait with backoff and retry (the sink drops duplicates)."""
    delays = backoff(cap=30.0)
    while True:
        try:
            await asyncio.to_thread(_send_all, run, sink, emissions)
            return
        except RedisError as err:
            wait = next(delays)
            log.warning("simulator: delivery failed (%s); retrying in %.1f s", err, wait)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return
            except TimeoutError:
                pass


def _send_all(run: Run, sink: Sink, emissions: list[Emission]) -> None:
    for emission in emissions:
        _send(run, sink, emission)


def save_truth(run: Run, path: Path) -> None:
    """Write the ground truth planted so far (JSON lines) and append what is planted later."""
    write_truth(path, run.truth)
    run.truth_path = path
    log.info("ground truth of %d planted incidents written to %s (more appended as days pass)",
             len(run.truth), path)


def _append_truth(path: Path, incidents: list[PlantedIncident]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for incident in incidents:
            fh.write(json.dumps(incident.to_json(), ensure_ascii=False) + "\n")
