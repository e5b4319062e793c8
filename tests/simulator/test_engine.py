"""The simulation loop and effects, with small stand-in models (no city pack needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.effects import Effect, Effects
from simulator.engine import Emission, SimContext, Simulation

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)


class Ticker:
    """Emits one payload per step, drawing a number from its private generator."""

    def __init__(self, ctx: SimContext, feed: str) -> None:
        self.feed = feed
        self.rng = ctx.rng(feed)

    def step(self, now: datetime, dt: timedelta) -> list[Emission]:
        return [Emission(now - dt / 2, self.feed, "x", str(self.rng.random()).encode())]


def _ctx(effects=(), seed=7) -> SimContext:
    return SimContext(pack=None, seed=seed, start=T0, effects=Effects(list(effects)))


def test_emissions_come_in_time_order_and_stop_at_until():
    ctx = _ctx()
    sim = Simulation(ctx, [Ticker(ctx, "air"), Ticker(ctx, "traffic")], tick=timedelta(seconds=10))
    out = list(sim.run(T0 + timedelta(minutes=1)))
    assert len(out) == 12
    assert [e.at for e in out] == sorted(e.at for e in out)
    assert out[-1].at < T0 + timedelta(minutes=1)


def test_same_seed_same_bytes_and_models_do_not_disturb_each_other():
    def payloads(models: list[str], seed: int) -> list[bytes]:
        ctx = _ctx(seed=seed)
        sim = Simulation(ctx, [Ticker(ctx, m) for m in models])
        return [e.payload for e in sim.run(T0 + timedelta(minutes=5)) if e.feed == "air"]

    assert payloads(["air"], 7) == payloads(["air"], 7)
    assert payloads(["air"], 7) == payloads(["air", "traffic"], 7)  # adding a model changes nothing else
    assert payloads(["air"], 7) != payloads(["air"], 8)


def test_feed_outage_drops_only_that_feed_in_its_window():
    outage = Effect(kind="feed_outage", start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=4),
                    incident_id="o-1", targets=("traffic",))
    ctx = _ctx([outage])
    sim = Simulation(ctx, [Ticker(ctx, "air"), Ticker(ctx, "traffic")], tick=timedelta(seconds=30))
    out = list(sim.run(T0 + timedelta(minutes=6)))
    traffic = [e.at for e in out if e.feed == "traffic"]
    assert not [t for t in traffic if outage.start <= t < outage.end]
    assert len([e for e in out if e.feed == "air"]) == 12
    assert sim.dropped == {"traffic": 4}


def test_effect_intensity_ramps_and_plateau():
    e = Effect(kind="appeal_burst", start=T0, end=T0 + timedelta(minutes=60), incident_id="x", ramp_s=600)
    assert e.intensity(T0 - timedelta(seconds=1)) == 0.0
    assert e.intensity(T0 + timedelta(minutes=5)) == pytest.approx(0.5)
    assert e.intensity(T0 + timedelta(minutes=30)) == 1.0
    assert e.intensity(T0 + timedelta(minutes=55)) == pytest.approx(0.5)
    assert e.intensity(T0 + timedelta(minutes=60)) == 0.0


def test_unknown_effect_kind_is_refused():
    with pytest.raises(ValueError, match="unknown effect kind"):
        Effects([Effect(kind="meteor", start=T0, end=T0, incident_id="m")])


def test_active_filters_by_kind_and_time():
    a = Effect(kind="air_episode", start=T0, end=T0 + timedelta(hours=1), incident_id="a")
    b = Effect(kind="air_episode", start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=3), incident_id="b")
    effects = Effects([a, b])
    assert effects.active("air_episode", T0 + timedelta(minutes=10)) == [a]
    assert effects.active("air_episode", T0 + timedelta(hours=2, minutes=1)) == [b]
    assert effects.active("traffic_drop", T0) == []
