"""The simulation loop: models step through simulated time and emit payloads of real formats.

Deterministic: each model draws from its own ``random.Random`` seeded from the run's seed and
the model's name, so adding a model or a scenario does not change what the others emit.
No clock reads and no I/O here; :mod:`simulator.driver` does the timing and the delivery.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from simulator.effects import Effects

#: Simulated time between two steps of the models.
TICK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Emission:
    """One payload a simulated source sends.

    Attributes:
        at: simulated time it is sent (UTC).
        feed: the feed it goes to.
        format: the feed format it is written in (a format name of the feed's adapter).
        payload: the bytes, exactly as the real source would send them.
    """

    at: datetime
    feed: str
    format: str
    payload: bytes


@dataclass(frozen=True)
class SimContext:
    """What every model gets: the city, the run's seed, the effects of the planted incidents.

    Attributes:
        pack: the city pack (:class:`core.citypack.CityPack`).
        seed: the run's seed.
        start: simulated start time (UTC).
        effects: the planted incidents' effects.
    """

    pack: Any
    seed: int
    start: datetime
    effects: Effects

    def rng(self, name: str) -> random.Random:
        """A generator private to ``name`` (a model), determined by the seed alone."""
        return random.Random(f"{self.seed}:{name}")


class Model(Protocol):
    """A simulated source family (one feed)."""

    feed: str

    def step(self, now: datetime, dt: timedelta) -> list[Emission]:
        """Advance from ``now - dt`` to ``now``; return what the sources send in that interval."""
        ...


class Simulation:
    """Runs models tick by tick, applying feed outages, yielding emissions in time order."""

    def __init__(self, ctx: SimContext, models: list[Model], *, tick: timedelta = TICK) -> None:
        self.ctx = ctx
        self.models = models
        self.tick = tick
        self.now = ctx.start
        self.dropped: dict[str, int] = {}

    def run(self, until: datetime) -> Iterator[Emission]:
        """Yield every emission from the current time up to ``until``, tick by tick."""
        while self.now < until:
            self.now += self.tick
            batch: list[Emission] = []
            for model in self.models:
                batch.extend(model.step(self.now, self.tick))
            batch.sort(key=lambda e: e.at)
            for emission in batch:
                if self._in_outage(emission):
                    self.dropped[emission.feed] = self.dropped.get(emission.feed, 0) + 1
                    continue
                yield emission

    def _in_outage(self, emission: Emission) -> bool:
        return any(emission.feed in e.targets for e in self.ctx.effects.active("feed_outage", emission.at))
