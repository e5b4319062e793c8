"""Correlation rules: what joins, what does not, why (links), and situation types."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from workers.correlate import RULES as RULE_LIST
from workers.correlate import MemoryBook, apply, decide, distance_m, gap_s, score, type_of
from workers.rules.base import ADVISORY, CRITICAL, WARNING, Event

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
RULES = {r.name: r for r in RULE_LIST}
# two points ~1.1 km apart in Almaty, and one ~9 km away
A, B, FAR = (43.2380, 76.9450), (43.2480, 76.9450), (43.3200, 76.9450)


def ev(signal: str, key: str, *, at: datetime = T0, place=A, severity=WARNING, phase="open", ended=None,
       district=None, **evidence) -> Event:
    lat, lon = place if place else (None, None)
    return Event(id=f"{signal}:{key}:{int(at.timestamp())}", detector=signal.split(".")[0], signal=signal, key=key,
                 phase=phase, onset=at, detected_at=at, at=at, severity=severity, district=district, lat=lat,
                 lon=lon, evidence=evidence, ended_at=ended)


def test_a_crash_joins_traffic_calls_and_road_appeals_into_one_situation_with_links():
    book = MemoryBook()
    drop = ev("traffic.drop", "ALFARABI-03")
    calls = ev("ambulance.calls", "cell-1", at=T0 + timedelta(minutes=8), place=B, complaint="road_trauma")
    appeals = ev("appeals.burst", "roads:1", at=T0 + timedelta(minutes=25), place=B, category="roads")
    routed = apply([drop, calls, appeals], book, T0 + timedelta(minutes=30))
    assert len(book.situations) == 1
    [situation] = book.situations.values()
    assert situation.type == "road_crash"
    assert {s for _, s in routed} == {situation.id}
    assert [link.rule for link in situation.links] == ["road_crash", "road_crash"]
    first = situation.links[0]
    assert first.a == drop.id and first.b == calls.id
    assert 1000 < first.distance_m < 1200 and first.dt_s == 0
    assert 0.25 <= first.score < 1


def test_events_far_apart_or_unrelated_stay_separate():
    book = MemoryBook()
    apply([ev("traffic.drop", "S1"), ev("ambulance.calls", "c", place=FAR),
           ev("appeals.burst", "waste:1", place=B, category="waste")], book, T0)
    assert len(book.situations) == 3
    assert sorted(s.type for s in book.situations.values()) == ["appeal_burst", "mass_casualty", "traffic_incident"]


def test_a_join_needs_the_time_window():
    book = MemoryBook()
    drop = ev("traffic.drop", "S1", ended=T0 + timedelta(minutes=20), phase="closed")
    late = ev("ambulance.calls", "c", at=T0 + timedelta(hours=3), place=B)
    assert score(RULES["road_crash"], drop, late) is None
    apply([ev("traffic.drop", "S1")], book, T0)
    apply([drop], book, T0 + timedelta(minutes=20))  # the drop ended after 20 minutes
    apply([late], book, T0 + timedelta(hours=3))
    assert len(book.situations) == 2
    # while a condition lasts, it is active up to now, whatever the time of its last emission
    still = ev("traffic.drop", "S2")
    assert score(RULES["road_crash"], still, late).dt_s == 0


def test_smog_and_respiratory_calls_join_citywide():
    book = MemoryBook()
    rise = ev("air.pm_rise", "city", place=None)
    calls = ev("ambulance.respiratory_calls", "respiratory", at=T0 + timedelta(hours=3), place=None)
    apply([rise, calls], book, T0 + timedelta(hours=3))
    [situation] = book.situations.values()
    assert situation.type == "smog" and situation.links[0].rule == "smog_health"
    assert situation.links[0].distance_m is None


def test_water_bursts_nearby_make_one_water_outage():
    book = MemoryBook()
    first = ev("appeals.burst", "water_supply:1", category="water_supply")
    second = ev("appeals.burst", "water_supply:2", at=T0 + timedelta(minutes=50), place=B, category="water_supply")
    apply([first, second], book, T0 + timedelta(minutes=50))
    [situation] = book.situations.values()
    assert situation.type == "water_outage" and situation.links[0].rule == "utility_outage"


def test_advisories_never_start_a_situation_but_may_join_one():
    book = MemoryBook()
    aqi = ev("air.aqi", "ALM-01", severity=ADVISORY)
    assert decide(aqi, []).new_type is None
    apply([aqi], book, T0)
    assert book.situations == {}
    apply([ev("air.pm_rise", "city", place=None), ev("air.aqi", "ALM-02", severity=ADVISORY,
                                                    at=T0 + timedelta(minutes=5))], book, T0)
    [situation] = book.situations.values()
    assert len(situation.events) == 2 and situation.type == "smog"


def test_later_phases_go_to_the_situation_and_raise_its_severity():
    book = MemoryBook()
    opened = ev("source.silent", "ALM-03")
    apply([opened], book, T0)
    worse = dataclasses.replace(opened, phase="update", severity=CRITICAL, at=T0 + timedelta(minutes=5))
    closed = dataclasses.replace(worse, phase="closed", at=T0 + timedelta(hours=1), ended_at=T0 + timedelta(hours=1))
    apply([worse, closed], book, T0 + timedelta(hours=1))
    [situation] = book.situations.values()
    assert situation.severity == CRITICAL and situation.events[opened.id].phase == "closed"


def test_a_recurring_condition_on_the_same_thing_joins_its_earlier_situation():
    book = MemoryBook()
    first = ev("source.stuck", "ALM-05", phase="closed", ended=T0 + timedelta(minutes=30))
    apply([ev("source.stuck", "ALM-05")], book, T0)
    again = ev("source.stuck", "ALM-05", at=T0 + timedelta(minutes=70))
    apply([dataclasses.replace(first, at=T0 + timedelta(minutes=30))], book, T0 + timedelta(minutes=30))
    apply([again], book, T0 + timedelta(minutes=70))
    [situation] = book.situations.values()
    assert situation.links[-1].rule == "recurrence" and len(situation.events) == 2


def test_distance_and_gap_helpers():
    a = ev("traffic.drop", "x")
    b = ev("ambulance.calls", "y", place=B)
    assert 1100 < distance_m(a, b) < 1120
    assert distance_m(ev("x.y", "a", place=None, district="almaly"), ev("x.y", "b", place=None, district="almaly")) == 0
    assert distance_m(ev("x.y", "a", place=None), b) is None
    assert gap_s(a, ev("a.b", "k", at=T0 - timedelta(minutes=5))) == 300
    assert type_of(ev("appeals.burst", "k", category="heating")) == "heating_outage"
    assert type_of(ev("feed.outage", "traffic")) == "feed_outage"
