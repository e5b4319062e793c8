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
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feeds import get_feed
from feeds.runner import deliver
from feeds.sink import IngestResult, Sink, utc_now
from simulator.effects import Effect, Effects
from simulator.engine import Emission, SimContext, Simulation
from simulator.scenarios import PlantedIncident, Scenario, load_library, plant, write_truth

log = logging.getLogger(__name__)

TRANSPORT = "simulator"


@dataclass
class Run:
    """A prepared simulation run and its ground truth."""

    simulation: Simulation
    truth: list[PlantedIncident]
    delivered: Counter[str] = field(default_factory=Counter)
    results: dict[str, IngestResult] = field(default_factory=dict)


def build_models(ctx: SimContext) -> list[Any]:
    """One model per feed (imported here so a missing model names itself clearly)."""
    from simulator.models.air import AirModel
    from simulator.models.ambulance import AmbulanceModel
    from simulator.models.appeals import AppealsModel
    from simulator.models.traffic import TrafficModel

    return [TrafficModel(ctx), AirModel(ctx), AmbulanceModel(ctx), AppealsModel(ctx)]


def plan_run(pack: Any, *, seed: int, start: datetime, duration: timedelta,
             scenarios: Sequence[Scenario] | None = None) -> Run:
    """Plant ``scenarios`` (default: the whole library) on every local day of the run and build it."""
    import random

    chosen = list(load_library().values()) if scenarios is None else list(scenarios)
    rng = random.Random(f"{seed}:scenarios")
    truth: list[PlantedIncident] = []
    effects: list[Effect] = []
    day = start
    number = 0
    while day < start + duration:
        for scenario in chosen:
            number += 1
            incident, incident_effects = plant(scenario, pack=pack, day=day, rng=rng, number=number)
            if start <= incident.start < start + duration:
                truth.append(incident)
                effects.extend(incident_effects)
        day += timedelta(days=1)
    ctx = SimContext(pack=pack, seed=seed, start=start, effects=Effects(effects))
    truth.sort(key=lambda t: t.start)
    return Run(simulation=Simulation(ctx, build_models(ctx)), truth=truth)


def _send(run: Run, sink: Sink, emission: Emission) -> None:
    adapter = get_feed(emission.feed)
    result = deliver(sink, adapter, adapter.format(emission.format), emission.payload, transport=TRANSPORT)
    run.delivered[emission.feed] += 1
    run.results.setdefault(emission.feed, IngestResult()).add(result)


def run_fast(run: Run, sink: Sink, until: datetime) -> Run:
    """Deliver every emission up to ``until`` as fast as possible."""
    _mark(run, sink, "simulating")
    for emission in run.simulation.run(until):
        _send(run, sink, emission)
    _mark(run, sink, "finished")
    return run


def _mark(run: Run, sink: Sink, state: str) -> None:
    detail = f"simulator seed {run.simulation.ctx.seed}"
    for model in run.simulation.models:
        sink.store.set_transport_state(model.feed, state, detail=detail)


async def run_live(run: Run, sink: Sink, *, speed: float = 0.0, until: datetime | None = None,
                   clock: Callable[[], datetime] = utc_now, stop: asyncio.Event | None = None) -> Run:
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
        emissions = list(sim.run(step_end))
        await asyncio.to_thread(_send_all, run, sink, emissions)
    _mark(run, sink, "stopped" if stop.is_set() else "finished")
    return run


def _send_all(run: Run, sink: Sink, emissions: list[Emission]) -> None:
    for emission in emissions:
        _send(run, sink, emission)


def save_truth(run: Run, path: Path) -> None:
    """Write the run's ground truth (JSON lines)."""
    write_truth(path, run.truth)
    log.info("ground truth of %d planted incidents written to %s", len(run.truth), path)
