"""The live seasonal series: bins, zeros for empty count bins, and the NAB detector's alarms as events."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from core.citypack import load_pack
from workers.rules.base import ADVISORY, RuleContext, build_params
from workers.rules.series import SeriesAnomaly

T0 = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday


def make() -> SeriesAnomaly:
    return SeriesAnomaly(build_params(SeriesAnomaly, {}), RuleContext(pack=load_pack(None)))


def calls_for_day(day: int, rng: random.Random, surge: tuple[int, int] | None = None):
    """Calls over one day: a daily cycle of ~1,800 calls, optionally 4x in hours [a, b)."""
    out = []
    for minute in range(24 * 60):
        t = T0 + timedelta(days=day, minutes=minute)
        rate = 1.25 * (1 + 0.6 * math.sin(2 * math.pi * (minute / 1440 - 0.3)))
        if surge and surge[0] * 60 <= minute < surge[1] * 60:
            rate *= 4
        for k in range(_poisson(rng, rate)):
            out.append({"kind": "calls", "call_id": f"c{day}-{minute}-{k}",
                        "times": {"call_received": (t + timedelta(seconds=k)).isoformat()}})
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def run(detector: SeriesAnomaly, records, step=timedelta(minutes=1)):
    events = []
    for r in records:
        events += detector.observe("ambulance", [r], datetime.fromisoformat(r["times"]["call_received"]))
    return events


def test_a_normal_fortnight_of_calls_raises_nothing_and_a_surge_raises_one_advisory():
    rng = random.Random(4)
    detector = make()
    quiet = []
    for day in range(14):
        quiet += run(detector, calls_for_day(day, rng))
    assert [e for e in quiet if e.detected_at > T0 + timedelta(days=7)] == []
    surge = run(detector, calls_for_day(14, rng, surge=(10, 13)))
    opened = [e for e in surge if e.phase == "open"]
    assert len(opened) == 1
    [event] = opened
    assert event.signal == "ambulance.volume" and event.severity == ADVISORY
    assert T0 + timedelta(days=14, hours=10) <= event.onset <= T0 + timedelta(days=14, hours=11)
    assert event.evidence["direction"] == "up" and event.evidence["value"] > event.evidence["expected"]
    assert [e.phase for e in surge] == ["open", "closed"]


def test_each_call_counts_once_and_empty_bins_are_zeros():
    detector = make()
    call = {"kind": "calls", "call_id": "x", "times": {"call_received": T0.isoformat()}}
    update = {**call, "times": {**call["times"], "on_scene": (T0 + timedelta(minutes=9)).isoformat()}}
    detector.observe("ambulance", [call, update, call], T0)
    series = detector.series["ambulance:calls"]
    assert series.total == 1
    detector.tick(T0 + timedelta(hours=1, minutes=10))
    # four 15-minute bins closed (1 call, then zeros), the next one open
    assert series.start == (T0 + timedelta(hours=1)).timestamp()
    assert len(series.detector._pending) == 4
    assert [x for _, x in series.detector._pending] == [1.0, 0.0, 0.0, 0.0]


def test_traffic_score_bins_are_means_per_provider():
    detector = make()
    for i, score in enumerate([2.0, 4.0]):
        detector.observe("traffic", [{"kind": "scores", "provider": "yandex", "score": score,
                                      "observed_at": (T0 + timedelta(minutes=i)).isoformat()}], T0)
    detector.tick(T0 + timedelta(minutes=25))
    assert detector.series["traffic:yandex"].detector._pending == [(T0, 3.0)]
