"""Correlation into incidents in a real Redis: the same routing as in memory, kept as incidents."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from workers.correlate import apply
from workers.incident_book import IncidentBook
from workers.incidents import IncidentStore
from workers.rules.base import WARNING, Event

pytestmark = pytest.mark.redis
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def ev(signal, key, minutes, lat, **evidence):
    at = T0 + timedelta(minutes=minutes)
    return Event(id=f"{signal}:{key}:{int(at.timestamp())}", detector="d", signal=signal, key=key, phase="open",
                 onset=at, detected_at=at, at=at, severity=WARNING, district="almaly", lat=lat, lon=76.945,
                 evidence=evidence)


def test_a_crash_becomes_one_incident_with_its_links_and_later_phases(redis):
    store = IncidentStore(redis, "Asia/Almaty")
    book = IncidentBook(store)
    drop = ev("traffic.drop", "S1", 0, 43.238)
    calls = ev("ambulance.calls", "c1", 6, 43.240, complaint="road_trauma")
    apply([drop, calls], book, T0 + timedelta(minutes=6))
    [doc] = store.list(now=T0 + timedelta(minutes=6))
    assert doc["type"] == "road_crash" and sorted(doc["events"]) == sorted([drop.id, calls.id])
    assert doc["links"][0]["rule"] == "road_crash" and doc["links"][0]["a"] == drop.id
    assert store.incident_for_event(calls.id) == doc["id"]
    closed = dataclasses.replace(drop, phase="closed", at=T0 + timedelta(hours=1), ended_at=T0 + timedelta(hours=1))
    apply([closed], book, T0 + timedelta(hours=1))
    doc = store.get(doc["id"], T0 + timedelta(hours=1))
    assert doc["events"][drop.id]["phase"] == "closed"
    # a new, unrelated event far away starts its own incident
    apply([ev("source.silent", "ALM-02", 70, 43.33)], book, T0 + timedelta(minutes=70))
    assert len(store.list(now=T0 + timedelta(minutes=70))) == 2


def test_an_operator_merge_is_respected_by_later_events(redis):
    store = IncidentStore(redis, "Asia/Almaty")
    book = IncidentBook(store)
    a = ev("source.silent", "ALM-01", 0, 43.20)
    b = ev("source.stuck", "ALM-07", 0, 43.30)
    apply([a, b], book, T0)
    first, second = sorted(store.list(now=T0), key=lambda d: d["id"])
    store.merge(first["id"], second["id"], "olga", T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=30)
    apply([dataclasses.replace(b, phase="closed", ended_at=later)], book, later)
    merged = store.get(first["id"], T0 + timedelta(minutes=30))
    assert merged["events"][b.id]["phase"] == "closed"
    assert store.get(second["id"], T0 + timedelta(minutes=30))["status"] == "merged"
