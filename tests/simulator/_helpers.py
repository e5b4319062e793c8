"""Helpers the model tests share."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simulator.engine import Emission


def step_model(model: Any, hours: float, dt: timedelta) -> list[Emission]:
    """Step ``model`` for ``hours`` of simulated time, checking each emission lies in its step, in order."""
    out: list[Emission] = []
    now = model.ctx.start
    end = now + timedelta(hours=hours)
    while now < end:
        now += dt
        batch = model.step(now, dt)
        assert all(now - dt < e.at <= now for e in batch)
        assert [e.at for e in batch] == sorted(e.at for e in batch)
        out.extend(batch)
    return out
