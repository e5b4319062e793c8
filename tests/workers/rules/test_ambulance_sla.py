"""ResponseSla: shortage of a district's own brigades (cross-district coverage), breaches, stranded calls."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.schemas import iso
from workers.rules.ambulance_sla import ResponseSla
from workers.rules.base import ADVISORY, CRITICAL, WARNING, RuleContext

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


def test_late_and_waiting_calls_alone_raise_an_advisory_with_evidence(ctx):
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
    # slow arrivals alone (a foothill district on a busy evening) are shown but open no incident
    assert (e.signal, e.severity, e.district) == ("ambulance.response_time", ADVISORY, "almaly")
    assert e.evidence["reason"] == ["slow"]
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
    # four calls past their norm with no brigade sent at all: stranded (and 4 of 4 breached with
    # SMALL's critical thresholds: CRITICAL); counted until
    # 60 min past the deadline (06:10), then clear_after (30 min) later closed
    assert events == [(11, "open"), (100, "closed")]
    det2 = ResponseSla(dataclasses.replace(SMALL, max_wait_s=3600), ctx)
    det2.observe("ambulance", [call(f"Z{i}", T0, 1) for i in range(4)], T0 + MIN)
    (opened,) = det2.tick(T0 + 11 * MIN)
    assert (opened.severity, opened.evidence["reason"], opened.evidence["stranded"]) == (
        CRITICAL, ["stranded", "slow"], 4)


# --- shortage: calls served from other districts while the district's own brigades stand at base ---

SUB05 = (43.295, 76.845)  # alatau's substation SUB-05 in the default pack
SUB04 = (43.225, 76.855)  # auezov's SUB-04
SCENE = (43.28, 76.82)  # a street in alatau


def unit(unit_id: str, at: datetime, point: tuple[float, float], trip: str | None = None) -> dict:
    return {"kind": "units", "unit_id": unit_id, "observed_at": iso(at), "lat": point[0], "lon": point[1],
            "status": "in_transit_to" if trip else "stopped_at", "call_id": trip}


def served(call_id: str, received: datetime, unit_id: str, notified: datetime, category: int = 3,
           **times: datetime) -> dict:
    out = call(call_id, received, category, "alatau", unit_notified=notified, **times)
    out["unit_id"] = unit_id
    return out


def run_shortage(det: ResponseSla, own: str, category: int = 3, until: int = 30) -> list:
    """Five alatau brigades (A1–A5) and three auezov ones (B1–B3), all idle at base at 06:00.

    A5 serves alatau call L1 from 06:02; alatau calls O1–O3 (received 06:24, 06:26, 06:28, or 10 min
    earlier for category 1) are sent a minute later to B1–B3. ``own`` is what A1–A4 do: ``standing``
    at base all along, ``busy`` out on calls, ``back_late`` out until 06:10 and at base after (so
    only 15–19 min at base when O1–O3 are sent), ``silent`` at base but no position after 06:10.
    """
    events = []
    lead = 10 if category == 1 else 0
    outside = {24 + 2 * k + 1: (f"O{k + 1}", f"B{k + 1}", T0 + (24 + 2 * k - lead) * MIN) for k in range(3)}
    for m in range(until):
        now = T0 + m * MIN
        if m % 2 == 0:
            positions = []
            for k in range(1, 5):
                away = (own == "busy" and m > 0) or (own == "back_late" and 0 < m < 10)
                if own == "silent" and m > 10:
                    continue
                positions.append(unit(f"A{k}", now, SCENE, f"X{k}") if away else unit(f"A{k}", now, SUB05))
            positions.append(unit("A5", now, SCENE, "L1") if m >= 2 else unit("A5", now, SUB05))
            for k in range(1, 4):
                sent = [o for o in outside.items() if o[1][1] == f"B{k}" and o[0] <= m]
                positions.append(unit(f"B{k}", now, SCENE, sent[0][1][0]) if sent else unit(f"B{k}", now, SUB04))
            events += det.observe("ambulance", positions, now)
        calls = []
        if m == 2:
            calls.append(served("L1", T0 + MIN, "A5", now, 3, on_scene=T0 + 12 * MIN))
        if m in outside:
            call_id, unit_id, received = outside[m]
            calls.append(served(call_id, received, unit_id, now, category))
        if calls:
            events += det.observe("ambulance", calls, now)
        events += det.tick(now)
    return events


def test_homes_are_learnt_from_sparse_idle_positions(ctx):
    det = ResponseSla(ResponseSla.Params(), ctx)
    off_base = (43.2601, 76.9401)  # an idle spot of almaly away from every substation
    for s in range(0, 600, 10):  # a position every 10 s for 10 min: sampled at 0, 120, ... 480 s only
        at = T0 + timedelta(seconds=s)
        det.observe("ambulance", [unit("A1", at, SUB05), unit("C1", at, off_base),
                                  unit("B1", at, SCENE, "L1" if s >= 200 else None)], at)
    a1, c1, b1 = det.units["A1"], det.units["C1"], det.units["B1"]
    assert (a1.home, a1.district, sum(a1.spots.values())) == ("SUB-05", "alatau", 5)
    assert (c1.home, c1.district) == ("43.260,76.940", "almaly")
    assert a1.at_base_since == T0 and a1.last_seen == T0 + 8 * MIN
    # B1 stood idle at the alatau street twice (0, 120 s), then was on a trip: home there, not at base now
    assert (b1.district, sum(b1.spots.values()), b1.at_base_since) == ("alatau", 2, None)


def test_calls_served_from_outside_while_own_brigades_stand_at_base_is_a_shortage(ctx):
    det = ResponseSla(ResponseSla.Params(), ctx)
    events = run_shortage(det, "standing")
    assert [(e.phase, e.key, e.severity, e.at) for e in events] == [("open", "alatau", WARNING, T0 + 29 * MIN)]
    e = events[0]
    assert (e.signal, e.district, e.onset) == ("ambulance.response_time", "alatau", T0 + 25 * MIN)
    ev = e.evidence
    assert ev["reason"] == ["shortage"]
    assert (ev["served"], ev["served_local"], ev["served_outside"], ev["served_unknown"]) == (4, 1, 3, 0)
    assert (ev["outside_share"], ev["normal_outside_share"], ev["outside_share_needed"]) == (0.75, 0.1, 0.35)
    assert ev["served_from"] == {"auezov": 3}
    assert (ev["served_outside_own_standing"], ev["own_brigades"], ev["own_at_base"], ev["own_standing"],
            ev["standing_needed"]) == (3, 5, 4, 4, 3)
    assert (ev["calls"], ev["breaches"], ev["stranded"]) == (1, 0, 0)  # L1 arrived on time
    assert ev["thresholds"]["stand_min"] == 20 and ev["window_end"] == iso(T0 + 29 * MIN)


@pytest.mark.parametrize("own", ["busy", "back_late", "silent"])
def test_outside_cover_without_own_brigades_standing_is_only_advisory(ctx, own):
    # busy: every own brigade is out on a call (a peak); back_late: they had stood at base under
    # 20 min when the calls were sent; silent: their positions stopped (not known to stand there)
    det = ResponseSla(ResponseSla.Params(), ctx)
    events = run_shortage(det, own)
    assert [(e.phase, e.severity, e.at) for e in events] == [("open", ADVISORY, T0 + 29 * MIN)]
    ev = events[0].evidence
    assert ev["reason"] == ["covered_from_outside"] and ev["served_outside_own_standing"] == 0
    # back_late: at base since 06:10, 19 min at 06:29 (not yet standing); silent: last seen 06:10
    assert (ev["own_at_base"], ev["own_standing"]) == ({"busy": 0, "back_late": 4, "silent": 0}[own], 0)


def test_shortage_with_mass_breaches_is_critical(ctx):
    params = dataclasses.replace(ResponseSla.Params(), critical_min_breaches=3, critical_share=0.6)
    det = ResponseSla(params, ctx)
    events = run_shortage(det, "standing", category=1)  # O1–O3 waited 11 min for a far brigade
    assert [(e.phase, e.severity, e.at) for e in events] == [("open", CRITICAL, T0 + 29 * MIN)]
    ev = events[0].evidence
    assert (ev["calls"], ev["breaches"], ev["still_waiting"], ev["stranded"]) == (4, 3, 3, 0)
    assert [w["call_id"] for w in ev["worst"]] == ["O1", "O2", "O3"]


def test_normal_outside_share_is_learnt_after_the_window(ctx):
    det = ResponseSla(ResponseSla.Params(), ctx)
    run_shortage(det, "busy")
    assert det._normal_share("alatau", T0 + 29 * MIN) == 0.1  # nothing has left the window yet
    det.tick(T0 + 90 * MIN)  # L1 and O1–O3 are now older than the window: 1 local, 3 outside learnt
    assert det._normal_share("alatau", T0 + 90 * MIN) == pytest.approx((3 + 2) / (4 + 20), rel=1e-3)
    assert all(c.learnt for c in det.calls.values())


@pytest.mark.slow
def test_simulated_shortage_is_found_in_its_district_only(ctx):
    from simulator.driver import plan_run
    from simulator.offline import deliveries
    from simulator.scenarios import load_library

    start = datetime(2026, 11, 15, 19, 0, tzinfo=UTC)  # local midnight
    day = timedelta(hours=24)
    plan = plan_run(ctx.pack, seed=3, start=start, duration=day, scenarios=[load_library()["ambulance_shortage"]])
    det = ResponseSla(ResponseSla.Params(), ctx)
    events, next_tick = [], start + MIN
    for d in deliveries(ctx.pack, seed=3, start=start, duration=day, run=plan):
        if d.feed != "ambulance":
            continue
        while next_tick <= d.at:
            events += det.tick(next_tick)
            next_tick += MIN
        events += det.observe("ambulance", d.records, d.at)
    (incident,) = plan.truth
    serious = [e for e in events if e.severity >= WARNING]
    # the rest of the day (including the evening peaks of medeu and nauryzbay) stays below WARNING
    assert {e.key for e in serious} == {incident.district} == {"alatau"}
    first = min(e.at for e in serious)
    assert incident.start < first < incident.start + timedelta(minutes=90)
