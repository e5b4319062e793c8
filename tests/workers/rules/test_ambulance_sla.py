"""ResponseSla: arrival-norm breaches per district in a sliding window."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.schemas import iso
from workers.rules.ambulance_sla import ResponseSla
from workers.rules.base import CRITICAL, WARNING, RuleContext

T0 = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SMALL = ResponseSla.Params(min_breaches=3, warning_share=0.3, critical_share=0.6, critical_min_breaches=4)


@pytest.fixture(scope="module")
def ctx() -> RuleContext:
    return RuleContext(load_pack(None))


def call(call_id: str, received: datetime, category: int = 1, district: str = "almaly", **times: datetime) -> dict:
    stamps = {"call_received": iso(received), **{k: iso(v) for k, v in times.items()}}
    return {"kind": "calls", "call_id": call_id, "category": category, "district": district, "times": stamps}


def test_norms_come_from_the_pack(ctx):
    det = ResponseSla(ResponseSla.Params(), ctx)
    assert {c: n.total_seconds() / 60 for c, n in det.norms.items()} == {1: 10, 2: 15, 3: 30, 4: 60}


def test_late_and_waiting_calls_raise_warning_with_evidence(ctx):
    det = ResponseSla(SMALL, ctx)
    now = T0 + 30 * MIN
    records = [
        call("A", T0, 1, on_scene=T0 + 14 * MIN),                 # late by 4 min
        call("B", T0 + 2 * MIN, 2, on_scene=T0 + 20 * MIN),       # 18 min > 15: late
        call("C", T0 + 5 * MIN, 1),                               # no unit 25 min later: waiting, breached
        call("D", T0 + 5 * MIN, 3, on_scene=T0 + 20 * MIN),       # on time
        call("E", T0 + 6 * MIN, 3, on_scene=T0 + 21 * MIN),       # on time
        call("F", T0 + 7 * MIN, 4, on_scene=T0 + 29 * MIN),       # on time
        call("G", T0 + 25 * MIN, 1),                              # not due yet: not counted
        call("H", T0, 1, district="medeu", on_scene=T0 + 30 * MIN),  # another district
    ]
    events = det.observe("ambulance", records, now)
    assert [(e.phase, e.key) for e in events] == [("open", "almaly")]
    e = events[0]
    assert (e.signal, e.severity, e.district) == ("ambulance.response_time", WARNING, "almaly")
    assert e.onset == T0 + 10 * MIN  # the first deadline missed
    ev = e.evidence
    assert (ev["calls"], ev["breaches"], ev["share"]) == (6, 3, 0.5)
    assert (ev["arrived_late"], ev["still_waiting"]) == (2, 1)
    assert ev["per_category"]["1"] == {"norm_min": 10.0, "calls": 2, "breaches": 2}
    assert ev["per_category"]["2"] == {"norm_min": 15.0, "calls": 1, "breaches": 1}
    assert [w["call_id"] for w in ev["worst"]] == ["C", "B", "A"]
    assert ev["worst"][0] == {"call_id": "C", "category": 1, "wait_min": 25.0, "norm_min": 10.0, "arrived": False}
    assert ev["window_s"] == 3600 and ev["window_end"] == iso(now)


def test_updates_fold_by_call_id_and_cancelled_calls_do_not_count(ctx):
    det = ResponseSla(SMALL, ctx)
    det.observe("ambulance", [call(f"W{i}", T0, 1) for i in range(3)], T0 + MIN)
    # the on_scene times arrive later as separate updates without category or district
    updates = [{"kind": "calls", "call_id": f"W{i}", "times": {"on_scene": iso(T0 + 5 * MIN)}} for i in range(3)]
    assert det.observe("ambulance", updates, T0 + 6 * MIN) == []
    cancelled = [call(f"X{i}", T0, 1, cancelled=T0 + 2 * MIN) for i in range(5)]
    assert det.observe("ambulance", cancelled, T0 + 30 * MIN) == []
    assert all(c.district == "almaly" and c.category == 1 for c in det.calls.values())


def test_critical_and_escalation_then_close_after_window(ctx):
    det = ResponseSla(SMALL, ctx)
    late = [call(f"L{i}", T0 + i * MIN, 2, on_scene=T0 + (i + 20) * MIN) for i in range(3)]
    ok = [call(f"K{i}", T0 + i * MIN, 3, on_scene=T0 + (i + 10) * MIN) for i in range(4)]
    first = det.observe("ambulance", late + ok, T0 + 25 * MIN)  # 3 of 7 breached: warning
    assert [(e.phase, e.severity) for e in first] == [("open", WARNING)]
    more = [call(f"M{i}", T0 + 10 * MIN, 1) for i in range(3)]  # three more waiting, 6 of 10
    second = det.observe("ambulance", more, T0 + 26 * MIN)
    assert [(e.phase, e.severity) for e in second] == [("update", CRITICAL)]
    arrived = [{"kind": "calls", "call_id": f"M{i}", "times": {"on_scene": iso(T0 + 27 * MIN)}} for i in range(3)]
    det.observe("ambulance", arrived, T0 + 27 * MIN)
    events = []
    t = T0 + 27 * MIN
    while t < T0 + 4 * 60 * MIN:
        t += MIN
        events += det.tick(t)
    closed = [e for e in events if e.phase == "closed"]
    assert len(closed) == 1 and closed[0].severity == CRITICAL
    # the last breaches (deadline 06:20) leave the 60-min window at 07:20; closes 30 min later
    assert closed[0].ended_at == T0 + 79 * MIN and closed[0].at == T0 + 109 * MIN


def test_min_breaches_and_share_both_needed(ctx):
    det = ResponseSla(SMALL, ctx)
    late = [call(f"L{i}", T0, 1, on_scene=T0 + 12 * MIN) for i in range(2)]  # two breaches only
    assert det.observe("ambulance", late, T0 + 20 * MIN) == []
    det2 = ResponseSla(SMALL, ctx)
    late = [call(f"L{i}", T0, 1, on_scene=T0 + 12 * MIN) for i in range(3)]
    ok = [call(f"K{i}", T0, 3, on_scene=T0 + 12 * MIN) for i in range(8)]  # 3 of 11 < 30 %
    assert det2.observe("ambulance", late + ok, T0 + 20 * MIN) == []


def test_long_lost_calls_are_forgotten(ctx):
    det = ResponseSla(dataclasses.replace(SMALL, max_wait_s=3600), ctx)
    det.observe("ambulance", [call(f"Z{i}", T0, 1) for i in range(4)], T0 + MIN)
    events = []
    for m in range(11, 130):
        events += [(m, e.phase) for e in det.tick(T0 + m * MIN) if e.phase != "update"]
    # counted until 60 min past the deadline (06:10), then clear_after (30 min) later closed
    assert events == [(11, "open"), (100, "closed")]


@pytest.mark.slow
def test_simulated_quiet_day_opens_no_incident(ctx):
    from simulator.driver import plan_run
    from simulator.offline import deliveries

    start = datetime(2026, 11, 15, 19, 0, tzinfo=UTC)  # local midnight
    plan = plan_run(ctx.pack, seed=1, start=start, duration=timedelta(hours=24), scenarios=[])
    det = ResponseSla(ResponseSla.Params(), ctx)
    events, next_tick = [], start + MIN
    for d in deliveries(ctx.pack, seed=1, start=start, duration=timedelta(hours=24), run=plan):
        if d.feed != "ambulance":
            continue
        while next_tick <= d.at:
            events += det.tick(next_tick)
            next_tick += MIN
        calls = [r for r in d.records if r.get("kind") == "calls"]
        if calls:
            events += det.observe("ambulance", calls, d.at)
    assert events == []
