"""Incident lifecycle against a real Redis: create, fold, act, refuse, SLA, merge, split, prune, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from core import keys
from workers.incidents import IncidentError, IncidentStore, SlaPolicy
from workers.rules.base import ADVISORY, CRITICAL, WARNING, Event

pytestmark = pytest.mark.redis

#: 23:30 UTC on 21 November is 04:30 on 22 November in Almaty (UTC+5): the id carries the local date.
T0 = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)


def ev(key: str, phase: str = "open", *, minutes: float = 0, severity: int = WARNING, signal: str = "traffic.drop",
       district: str | None = "almaly", lat: float | None = 43.25, lon: float | None = 76.92,
       onset_minutes: float = -5, ended_minutes: float | None = None) -> Event:
    onset = T0 + timedelta(minutes=onset_minutes)
    return Event(id=f"det:{key}:{int(onset.timestamp())}", detector="det", signal=signal, key=key, phase=phase,
                 onset=onset, detected_at=T0, at=T0 + timedelta(minutes=minutes), severity=severity,
                 district=district, lat=lat, lon=lon, evidence={"value": 3.5, "note": "<b>raw</b>"},
                 ended_at=None if ended_minutes is None else T0 + timedelta(minutes=ended_minutes))


def link(a: Event, b: Event, rule: str = "road_crash") -> dict:
    return {"a": a.id, "b": b.id, "rule": rule, "score": 0.8, "distance_m": 120, "dt_s": 60}


@pytest.fixture
def inc(redis) -> IncidentStore:
    return IncidentStore(redis, "Asia/Almaty")


@pytest.fixture
def crash(inc):
    a, b = ev("seg-1"), ev("amb-1", signal="ambulance.calls", lat=43.27, lon=76.94, district="bostandyk",
                           onset_minutes=-2)
    doc = inc.create({"type": "road_crash", "rule": "road_crash", "score": 0.8}, [a, b], [link(a, b)], T0)
    return doc, a, b


def test_create_builds_the_document_and_indexes(inc, redis, crash):
    doc, a, b = crash
    assert doc["id"] == "INC-20261122-0001"
    assert doc["type"] == "road_crash" and doc["rule"] == "road_crash" and doc["score"] == 0.8
    assert doc["status"] == "open" and doc["version"] == 1 and doc["escalation"] == 0
    assert doc["severity"] == WARNING and doc["severity_name"] == "warning"
    assert doc["active"] is True and doc["cleared_at"] is None
    assert doc["detected_at"] == "2026-11-21T23:30:00Z"
    assert doc["onset"] == "2026-11-21T23:25:00Z"
    assert doc["district"] == "almaly" and doc["districts"] == ["almaly", "bostandyk"]
    assert doc["lat"] == pytest.approx(43.26) and doc["lon"] == pytest.approx(76.93)
    assert set(doc["events"]) == {a.id, b.id} and doc["event_count"] == 2
    assert doc["events"][a.id] == a.to_json()
    assert doc["events"][a.id]["evidence"]["note"] == "<b>raw</b>"  # data, as given
    assert doc["links"] == [link(a, b)]
    assert doc["sla"]["ack_due"] == "2026-11-21T23:45:00Z" and doc["sla"]["resolve_due"] == "2026-11-22T23:30:00Z"
    assert redis.zscore(keys.INCIDENTS_OPEN, doc["id"]) == T0.timestamp() * 1000
    assert redis.zscore(keys.INCIDENTS_ALL, doc["id"]) == T0.timestamp() * 1000
    assert inc.incident_for_event(a.id) == doc["id"] and inc.incident_for_event(b.id) == doc["id"]
    assert inc.incident_for_event("nope") is None
    [entry] = inc.audit(doc["id"])
    assert entry["actor"] == "system" and entry["action"] == "create" and entry["at"] == "2026-11-21T23:30:00Z"
    assert entry["detail"]["events"] == sorted([a.id, b.id])
    second = inc.create({"type": "smog"}, [ev("st-1", signal="air.aqi")], [], T0 + timedelta(days=1))
    assert second["id"] == "INC-20261123-0002"
    assert inc.get(doc["id"], T0) == doc


@pytest.mark.parametrize(("situation", "events", "match"), [
    ({"type": "road_crash"}, [], "at least one event"),
    ({}, [ev("x")], "incident type None"),
    ({"type": "Road Crash"}, [ev("x")], "lower-case"),
    ({"type": "smog", "colour": "red"}, [ev("x")], "unknown situation field"),
    ({"type": "smog", "score": "high"}, [ev("x")], "not a number"),
    ({"type": "smog"}, [{"id": "broken"}], "invalid event 'broken'"),
])
def test_create_refuses_bad_input_with_422(inc, redis, situation, events, match):
    with pytest.raises(IncidentError, match=match) as info:
        inc.create(situation, events, [], T0)
    assert info.value.code == 422
    assert redis.zcard(keys.INCIDENTS_ALL) == 0


def test_create_accepts_event_json_and_link_objects(inc):
    class Link:
        def to_json(self):
            return {"a": "x", "b": "y", "rule": "r", "score": 0.5, "distance_m": None, "dt_s": 0}

    e = ev("st-9", signal="air.aqi")
    doc = inc.create({"type": "smog"}, [e.to_json()], [Link()], T0)
    assert doc["events"][e.id] == e.to_json()
    assert doc["links"] == [{"a": "x", "b": "y", "rule": "r", "score": 0.5, "distance_m": None, "dt_s": 0}]


def test_needs_an_aware_now(inc):
    with pytest.raises(ValueError, match="now"):
        inc.create({"type": "smog"}, [ev("x")], [], datetime(2026, 11, 22, 9, 0))  # noqa: DTZ001
    with pytest.raises(ValueError, match="now"):
        inc.get("INC-1")


def test_event_phases_fold_and_severity_rises_and_clears(inc, crash):
    doc, a, b = crash
    upd = ev("seg-1", "update", minutes=3, severity=CRITICAL)
    doc = inc.add_events(doc["id"], [upd], [], T0 + timedelta(minutes=3))
    assert doc["version"] == 2 and doc["event_count"] == 2
    assert doc["events"][a.id]["phase"] == "update" and doc["events"][a.id]["severity"] == CRITICAL
    assert doc["severity"] == CRITICAL
    # the critical SLA now applies, still from detection
    assert doc["sla"]["ack_due"] == "2026-11-21T23:35:00Z" and doc["sla"]["resolve_due"] == "2026-11-22T03:30:00Z"
    # an older emission arriving late changes nothing and writes nothing
    same = inc.add_events(doc["id"], [a], [], T0 + timedelta(minutes=4))
    assert same["version"] == 2 and same["events"][a.id]["phase"] == "update"
    # both close: inactive, cleared at the later end
    doc = inc.add_events(doc["id"], [ev("seg-1", "closed", minutes=30, severity=CRITICAL, ended_minutes=20),
                                     ev("amb-1", "closed", minutes=40, signal="ambulance.calls", lat=43.27,
                                        lon=76.94, district="bostandyk", onset_minutes=-2, ended_minutes=25)],
                         [], T0 + timedelta(minutes=40))
    assert doc["active"] is False and doc["cleared_at"] == "2026-11-21T23:55:00Z"
    assert doc["status"] == "open" and doc["severity"] == CRITICAL and doc["version"] == 3
    # a new event makes it active again
    c = ev("app-1", minutes=50, signal="appeals.burst", onset_minutes=45)
    doc = inc.add_events(doc["id"], [c], [link(a, c, "road_appeals")], T0 + timedelta(minutes=50),
                         type="road_incident")
    assert doc["active"] is True and doc["cleared_at"] is None and doc["type"] == "road_incident"
    assert len(doc["links"]) == 2 and inc.incident_for_event(c.id) == doc["id"]
    entries = [e for e in inc.audit(doc["id"]) if e["action"] == "events"]
    assert [e["actor"] for e in entries] == ["system"] * 3
    assert entries[0]["detail"]["severity"] == {"from": WARNING, "to": CRITICAL}
    assert entries[0]["detail"]["events"] == {a.id: "update"}
    assert entries[1]["detail"]["active"] is False
    assert entries[2]["detail"]["type"] == {"from": "road_crash", "to": "road_incident"}


def test_advisory_events_do_not_raise_severity(inc):
    doc = inc.create({"type": "smog"}, [ev("st-1", severity=ADVISORY, signal="air.aqi")], [], T0)
    assert doc["severity"] == ADVISORY and doc["sla"]["ack_due"] == "2026-11-22T00:30:00Z"
    doc = inc.add_events(doc["id"], [ev("st-2", severity=WARNING, signal="air.aqi")], [], T0)
    assert doc["severity"] == WARNING


def test_a_resolved_incident_takes_event_updates_but_stays_resolved(inc, redis, crash):
    doc, a, _ = crash
    inc.act(doc["id"], "resolve", "op1", T0 + timedelta(minutes=10), text="cleared by police")
    doc = inc.add_events(doc["id"], [ev("seg-1", "closed", minutes=15, ended_minutes=12)], [],
                         T0 + timedelta(minutes=15))
    assert doc["status"] == "resolved" and doc["events"][a.id]["phase"] == "closed"
    assert redis.zscore(keys.INCIDENTS_OPEN, doc["id"]) is None


def test_add_events_to_unknown_incident_is_404(inc):
    with pytest.raises(IncidentError) as info:
        inc.add_events("INC-20261122-9999", [ev("x")], [], T0)
    assert info.value.code == 404


def test_the_whole_lifecycle_with_audit(inc, redis, crash):
    doc, _, _ = crash
    i = doc["id"]
    t = T0 + timedelta(minutes=2)
    doc = inc.act(i, "acknowledge", "op1", t)
    assert doc["status"] == "acknowledged" and doc["acknowledged_by"] == "op1"
    assert doc["acknowledged_at"] == "2026-11-21T23:32:00Z" and doc["version"] == 2
    doc = inc.act(i, "assign", "op1", t, agency="  Road police  ", text="unit 12 is near")
    assert doc["status"] == "assigned" and doc["assignee"] == "Road police" and doc["assigned_by"] == "op1"
    doc = inc.act(i, "escalate", "op2", t, text="two injured")
    assert doc["severity"] == CRITICAL and doc["escalation"] == 1 and doc["escalated_by"] == "op2"
    doc = inc.act(i, "note", "op2", t, text="<script>alert(1)</script> kept as text")
    assert doc["notes_count"] == 1
    doc = inc.act(i, "resolve", "op1", t + timedelta(hours=1), text="road open again")
    assert doc["status"] == "resolved" and doc["resolution"] == "road open again"
    assert doc["resolved_at"] == "2026-11-22T00:32:00Z" and redis.zscore(keys.INCIDENTS_OPEN, i) is None
    doc = inc.act(i, "note", "op3", t + timedelta(hours=2), text="after-action: lights broken")
    assert doc["notes_count"] == 2
    doc = inc.act(i, "reopen", "op3", t + timedelta(hours=3), text="crash again")
    assert doc["status"] == "open" and doc["resolved_at"] is None and doc["resolution"] is None
    assert redis.zscore(keys.INCIDENTS_OPEN, i) is not None and doc["version"] == 8
    audit = inc.audit(i)
    assert [(e["actor"], e["action"]) for e in audit] == [
        ("system", "create"), ("op1", "acknowledge"), ("op1", "assign"), ("op2", "escalate"), ("op2", "note"),
        ("op1", "resolve"), ("op3", "note"), ("op3", "reopen")]
    assert audit[2]["detail"] == {"agency": "Road police", "previous": None, "text": "unit 12 is near"}
    assert audit[3]["detail"] == {"from": WARNING, "to": CRITICAL, "reason": "two injured"}
    assert audit[4]["detail"] == {"text": "<script>alert(1)</script> kept as text"}
    assert audit[7]["detail"]["resolution"] == "road open again"
    assert audit[7]["at"] == "2026-11-22T02:32:00Z"


def test_assign_from_open_acknowledges_too(inc, crash):
    doc = inc.act(crash[0]["id"], "assign", "op1", T0 + timedelta(minutes=1), agency="Vodokanal")
    assert doc["status"] == "assigned" and doc["acknowledged_at"] == "2026-11-21T23:31:00Z"
    assert inc.audit(doc["id"])[-1]["detail"]["acknowledged"] is True
    doc = inc.act(doc["id"], "assign", "op2", T0 + timedelta(minutes=2), agency="City gas")
    assert doc["assignee"] == "City gas" and inc.audit(doc["id"])[-1]["detail"]["previous"] == "Vodokanal"


@pytest.mark.parametrize(("setup", "action", "args", "match"), [
    (["resolve"], "acknowledge", {}, "cannot acknowledge incident .* it is resolved \\(reopen it first\\)"),
    (["acknowledge"], "acknowledge", {}, "it is acknowledged"),
    (["resolve"], "assign", {"agency": "Police"}, "reopen it first"),
    (["resolve"], "escalate", {}, "cannot escalate"),
    (["resolve"], "resolve", {"text": "again"}, "cannot resolve"),
    ([], "reopen", {}, "cannot reopen incident .* it is open; reopen needs status resolved"),
    (["escalate"], "escalate", {}, "already critical"),
])
def test_refused_transitions_are_409(inc, crash, setup, action, args, match):
    i = crash[0]["id"]
    for step in setup:
        inc.act(i, step, "op1", T0, text="done")
    version = inc.get(i, T0)["version"]
    with pytest.raises(IncidentError, match=match) as info:
        inc.act(i, action, "op1", T0, **args)
    assert info.value.code == 409
    assert inc.get(i, T0)["version"] == version  # nothing written


@pytest.mark.parametrize(("action", "actor", "args", "match"), [
    ("assign", "op1", {}, "agency is required"),
    ("assign", "op1", {"agency": "   "}, "agency is required"),
    ("assign", "op1", {"agency": "x" * 129}, "agency is 129 characters long; at most 128"),
    ("note", "op1", {}, "text is required"),
    ("note", "op1", {"text": "x" * 2001}, "text is 2001 characters long; at most 2000"),
    ("note", "op1", {"text": 42}, "text must be a string"),
    ("note", "op1", {"text": "bell\x07"}, "control characters"),
    ("resolve", "op1", {"text": ""}, "text is required"),
    ("note", "", {"text": "hi"}, "actor is required"),
    ("note", "x" * 65, {"text": "hi"}, "actor is 65 characters long; at most 64"),
    ("note", "two\nlines", {"text": "hi"}, "one line"),
    ("note", None, {"text": "hi"}, "actor is required"),
])
def test_invalid_arguments_are_422(inc, crash, action, actor, args, match):
    with pytest.raises(IncidentError, match=match) as info:
        inc.act(crash[0]["id"], action, actor, T0, **args)
    assert info.value.code == 422


def test_a_note_of_exactly_2000_characters_is_kept(inc, crash):
    inc.act(crash[0]["id"], "note", "op1", T0, text="é" * 2000)
    assert inc.audit(crash[0]["id"])[-1]["detail"]["text"] == "é" * 2000


def test_unknown_action_is_400_and_unknown_incident_404(inc, crash):
    with pytest.raises(IncidentError) as info:
        inc.act(crash[0]["id"], "delete", "op1", T0)
    assert info.value.code == 400 and "acknowledge" in str(info.value)
    for bad in ("INC-20261122-9999", "sc:incident:x", ""):
        with pytest.raises(IncidentError) as info:
            inc.act(bad, "acknowledge", "op1", T0)
        assert info.value.code == 404
        assert inc.get(bad, T0) is None


def test_sla_breach_flags_and_seconds_left(inc, crash):
    i = crash[0]["id"]  # warning: ack by 23:45, resolve by 23:30 next day
    sla = inc.get(i, T0 + timedelta(minutes=10))["sla"]
    assert sla["ack_left_s"] == 300 and sla["ack_breached"] is False
    assert sla["resolve_left_s"] == 24 * 3600 - 600 and sla["resolve_breached"] is False
    sla = inc.get(i, T0 + timedelta(minutes=20))["sla"]
    assert sla["ack_left_s"] == -300 and sla["ack_breached"] is True and sla["resolve_breached"] is False
    inc.act(i, "acknowledge", "op1", T0 + timedelta(minutes=20))
    sla = inc.get(i, T0 + timedelta(hours=2))["sla"]
    assert sla["ack_left_s"] is None and sla["ack_breached"] is True  # acknowledged late: stays breached
    sla = inc.get(i, T0 + timedelta(hours=25))["sla"]
    assert sla["resolve_breached"] is True and sla["resolve_left_s"] == -3600
    inc.act(i, "resolve", "op1", T0 + timedelta(hours=26), text="done")
    sla = inc.get(i, T0 + timedelta(days=5))["sla"]
    assert sla["resolve_breached"] is True and sla["resolve_left_s"] is None
    # acknowledged in time, resolved in time
    j = inc.create({"type": "smog"}, [ev("st-1", signal="air.aqi")], [], T0)["id"]
    inc.act(j, "acknowledge", "op1", T0 + timedelta(minutes=14))
    inc.act(j, "resolve", "op1", T0 + timedelta(hours=3), text="rain")
    sla = inc.get(j, T0 + timedelta(days=3))["sla"]
    assert sla["ack_breached"] is False and sla["resolve_breached"] is False


def test_custom_sla_policy_and_escalation_shortens_the_clock(redis):
    inc = IncidentStore(redis, "Asia/Almaty", sla_policy=SlaPolicy(critical_ack=timedelta(minutes=2),
                                                                    warning_ack=timedelta(minutes=30)))
    doc = inc.create({"type": "smog"}, [ev("st-1", signal="air.aqi")], [], T0)
    assert doc["sla"]["ack_due"] == "2026-11-22T00:00:00Z"
    doc = inc.act(doc["id"], "escalate", "op1", T0 + timedelta(minutes=1))
    assert doc["sla"]["ack_due"] == "2026-11-21T23:32:00Z" and doc["sla"]["ack_left_s"] == 60


def test_list_filters_and_orders_newest_first(inc):
    ids = [inc.create({"type": "smog"}, [ev(f"st-{n}", signal="air.aqi")], [], T0 + timedelta(minutes=n))["id"]
           for n in range(5)]
    inc.act(ids[0], "resolve", "op1", T0, text="done")
    inc.act(ids[1], "acknowledge", "op1", T0)
    inc.act(ids[2], "assign", "op1", T0, agency="Eco police")
    inc.merge(ids[3], ids[4], "op1", T0)
    now = T0 + timedelta(minutes=10)
    assert [d["id"] for d in inc.list(now=now)] == [ids[3], ids[2], ids[1]]
    assert [d["id"] for d in inc.list("all", now=now)] == ids[::-1]
    assert [d["id"] for d in inc.list("all", now=now, limit=2)] == [ids[4], ids[3]]
    assert [d["id"] for d in inc.list("open", now=now)] == [ids[3]]
    assert [d["id"] for d in inc.list("acknowledged", now=now)] == [ids[1]]
    assert [d["id"] for d in inc.list("assigned", now=now)] == [ids[2]]
    assert [d["id"] for d in inc.list("resolved", now=now)] == [ids[0]]
    assert [d["id"] for d in inc.list("merged", now=now)] == [ids[4]]
    assert all("ack_breached" in d["sla"] for d in inc.list("all", now=now))
    with pytest.raises(IncidentError) as info:
        inc.list("closed", now=now)
    assert info.value.code == 400


def test_merge_moves_events_links_and_mapping(inc, redis, crash):
    target, a, b = crash
    c, d = ev("app-1", signal="appeals.burst", onset_minutes=-30), ev("app-2", signal="appeals.burst")
    source = inc.create({"type": "road_incident"}, [c, d], [link(c, d, "recurrence")], T0 - timedelta(minutes=20))
    inc.act(target["id"], "acknowledge", "op1", T0)
    doc = inc.act(target["id"], "merge", "op2", T0 + timedelta(minutes=5), source=source["id"])
    assert set(doc["events"]) == {a.id, b.id, c.id, d.id} and doc["event_count"] == 4
    assert doc["links"] == [link(a, b), link(c, d, "recurrence")]
    assert doc["status"] == "acknowledged" and doc["type"] == "road_crash"
    assert doc["merged_from"] == [source["id"]]
    assert doc["detected_at"] == "2026-11-21T23:10:00Z"  # the earlier sighting
    assert doc["onset"] == "2026-11-21T23:00:00Z"
    merged = inc.get(source["id"], T0)
    assert merged["status"] == "merged" and merged["merged_into"] == target["id"] and merged["events"] == {}
    assert merged["merged_by"] == "op2" and merged["active"] is False
    assert inc.incident_for_event(c.id) == target["id"] and inc.incident_for_event(d.id) == target["id"]
    assert redis.zscore(keys.INCIDENTS_OPEN, source["id"]) is None
    assert redis.zscore(keys.INCIDENTS_ALL, source["id"]) is not None
    assert inc.audit(target["id"])[-1] == {**inc.audit(target["id"])[-1], "actor": "op2", "action": "merge",
                                           "detail": {"source": source["id"], "events": sorted([c.id, d.id])}}
    assert inc.audit(source["id"])[-1]["action"] == "merged"
    assert inc.audit(source["id"])[-1]["detail"]["into"] == target["id"]
    # later phases of a moved event follow it into the target
    doc = inc.add_events(source["id"], [ev("app-1", "closed", minutes=9, signal="appeals.burst",
                                           onset_minutes=-30, ended_minutes=8)], [], T0 + timedelta(minutes=9))
    assert doc["id"] == target["id"] and doc["events"][c.id]["phase"] == "closed"
    # refusals
    with pytest.raises(IncidentError, match="already merged") as info:
        inc.merge(target["id"], source["id"], "op1", T0)
    assert info.value.code == 409
    with pytest.raises(IncidentError, match="into itself") as info:
        inc.merge(target["id"], target["id"], "op1", T0)
    assert info.value.code == 422
    with pytest.raises(IncidentError, match="needs 'source'") as info:
        inc.act(target["id"], "merge", "op1", T0)
    assert info.value.code == 422
    with pytest.raises(IncidentError) as info:
        inc.merge(target["id"], "INC-20261122-0404", "op1", T0)
    assert info.value.code == 404
    with pytest.raises(IncidentError, match="cannot note incident .* merged into"):
        inc.act(source["id"], "note", "op1", T0, text="hi")


def test_merge_into_a_resolved_incident_is_409(inc, crash):
    other = inc.create({"type": "smog"}, [ev("st-1", signal="air.aqi")], [], T0)
    inc.act(crash[0]["id"], "resolve", "op1", T0, text="done")
    with pytest.raises(IncidentError, match="resolved") as info:
        inc.merge(crash[0]["id"], other["id"], "op1", T0)
    assert info.value.code == 409


def test_split_moves_events_to_a_new_incident(inc, redis, crash):
    doc, a, b = crash
    c = ev("seg-2", onset_minutes=-1)
    doc = inc.add_events(doc["id"], [c], [link(a, c), link(b, c, "other")], T0)
    inc.act(doc["id"], "assign", "op1", T0, agency="Road police")
    new = inc.split(doc["id"], [b.id, c.id], "op2", T0 + timedelta(minutes=3), type="ambulance_shortage")
    assert new["id"] == "INC-20261122-0002" and new["type"] == "ambulance_shortage"
    assert new["status"] == "open" and new["assignee"] is None and new["version"] == 1
    assert set(new["events"]) == {b.id, c.id} and new["links"] == [link(b, c, "other")]
    assert new["split_from"] == doc["id"] and new["detected_at"] == doc["detected_at"]
    assert new["district"] == "almaly" and new["districts"] == ["almaly", "bostandyk"]
    source = inc.get(doc["id"], T0)
    assert set(source["events"]) == {a.id} and source["links"] == []  # a-b and a-c crossed the split
    assert source["split_into"] == [new["id"]] and source["status"] == "assigned"
    assert inc.incident_for_event(b.id) == new["id"] and inc.incident_for_event(a.id) == doc["id"]
    assert redis.zscore(keys.INCIDENTS_OPEN, new["id"]) is not None
    assert inc.audit(doc["id"])[-1]["detail"] == {"into": new["id"], "events": sorted([b.id, c.id]),
                                                  "dropped_links": 2}
    [created] = inc.audit(new["id"])
    assert created["actor"] == "op2" and created["action"] == "create"
    assert created["detail"]["split_from"] == doc["id"]
    # same type unless given; via act the answer is the source document
    answer = inc.act(new["id"], "split", "op2", T0, events=[c.id])
    assert answer["id"] == new["id"] and answer["split_into"] == ["INC-20261122-0003"]
    assert inc.get("INC-20261122-0003", T0)["type"] == "ambulance_shortage"


@pytest.mark.parametrize(("events", "match"), [
    ([], "non-empty list"),
    ("det:x", "non-empty list"),
    (["det:nope:1"], "not in incident"),
    (None, "non-empty list"),
])
def test_split_refusals_are_422(inc, crash, events, match):
    with pytest.raises(IncidentError, match=match) as info:
        inc.act(crash[0]["id"], "split", "op1", T0, events=events)
    assert info.value.code == 422


def test_split_of_every_event_or_of_a_resolved_incident_is_refused(inc, crash):
    doc, a, b = crash
    with pytest.raises(IncidentError, match="every event") as info:
        inc.split(doc["id"], [a.id, b.id], "op1", T0)
    assert info.value.code == 422
    inc.act(doc["id"], "resolve", "op1", T0, text="done")
    with pytest.raises(IncidentError, match="resolved") as info:
        inc.split(doc["id"], [a.id], "op1", T0)
    assert info.value.code == 409


def test_prune_drops_old_resolved_incidents_with_their_audit(inc, redis):
    old = inc.create({"type": "smog"}, [ev("st-1", signal="air.aqi")], [], T0)
    inc.act(old["id"], "resolve", "op1", T0 + timedelta(hours=1), text="rain")
    young = inc.create({"type": "smog"}, [ev("st-2", signal="air.aqi")], [], T0)
    inc.act(young["id"], "resolve", "op1", T0 + timedelta(days=20), text="wind")
    still_open = inc.create({"type": "smog"}, [ev("st-3", signal="air.aqi")], [], T0)
    gone = inc.create({"type": "smog"}, [ev("st-4", signal="air.aqi")], [], T0)
    inc.merge(still_open["id"], gone["id"], "op1", T0 + timedelta(hours=2))
    now = T0 + timedelta(days=31)
    assert inc.prune(now) == 2
    assert inc.get(old["id"], now) is None and inc.audit(old["id"]) == []
    assert redis.exists(keys.incident_audit_key(old["id"])) == 0
    assert inc.get(gone["id"], now) is None
    assert redis.zscore(keys.INCIDENTS_ALL, old["id"]) is None
    assert inc.incident_for_event(ev("st-1").id) is None
    assert inc.incident_for_event(ev("st-4").id) == still_open["id"]  # it moved; the mapping stays
    assert {d["id"] for d in inc.list("all", now=now)} == {young["id"], still_open["id"]}
    assert inc.prune(now, keep_resolved=timedelta(days=1)) == 1
    assert inc.prune(now) == 0


def test_concurrent_writers_lose_no_update(inc, redis):
    """The worker folds events in while operators write notes, all at once: every write lands."""
    doc = inc.create({"type": "smog"}, [ev("st-0", signal="air.aqi")], [], T0)
    i = doc["id"]
    workers, per = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(workers * 2)

    def operator(n: int) -> None:
        try:
            start.wait()
            store = IncidentStore(_client(redis), "Asia/Almaty")
            for k in range(per):
                store.act(i, "note", f"op{n}", T0, text=f"note {n}-{k}")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    def correlator(n: int) -> None:
        try:
            start.wait()
            store = IncidentStore(_client(redis), "Asia/Almaty")
            for k in range(per):
                store.add_events(i, [ev(f"st-{n}-{k}", signal="air.aqi")], [], T0)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=operator, args=(n,)) for n in range(workers)]
    threads += [threading.Thread(target=correlator, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    final = inc.get(i, T0)
    assert final["version"] == 1 + 2 * workers * per
    assert final["notes_count"] == workers * per
    assert final["event_count"] == 1 + workers * per
    assert {f"note {n}-{k}" for n in range(workers) for k in range(per)} == {
        e["detail"]["text"] for e in inc.audit(i) if e["action"] == "note"}
    assert len(inc.audit(i)) == 1 + 2 * workers * per
    assert redis.hlen(keys.INCIDENT_BY_EVENT) == 1 + workers * per


def _client(redis):
    from core.redis_server import connect

    kwargs = redis.connection_pool.connection_kwargs
    return connect(f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}")
