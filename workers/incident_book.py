"""Situations kept as incidents in Redis: the :class:`~workers.correlate.SituationBook` the analytics
job routes events into (:mod:`workers.incidents` owns the documents and their lifecycle)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import redis as redis_lib

from workers.correlate import Link, SituationBook, SituationView
from workers.incidents import IncidentStore
from workers.rules.base import Event

_EVENT_FIELDS = {f.name for f in dataclasses.fields(Event)}


class IncidentBook(SituationBook):
    """Open incidents are the situations new events may join.

    Args:
        store: the incident store.
        idle: how long an incident whose events have all ended still takes new events.
    """

    def __init__(self, store: IncidentStore, *, idle: timedelta = timedelta(hours=2)) -> None:
        self.store = store
        self.idle = idle

    @classmethod
    def from_settings(cls, redis: redis_lib.Redis, pack: Any, settings: Any) -> IncidentBook:  # noqa: ARG003
        """The book on ``redis`` for the city of ``pack``."""
        return cls(IncidentStore(redis, pack.zone))

    def situation_of(self, event_id: str) -> str | None:  # noqa: D102
        return self.store.incident_for_event(event_id)

    def open_views(self, now: datetime) -> list[SituationView]:  # noqa: D102
        out = []
        for doc in self.store.list(None, now=now, limit=1000):
            updated = datetime.fromisoformat(doc["updated_at"])
            if not doc.get("active") and now - updated > self.idle:
                continue
            events = [Event.from_json({k: v for k, v in e.items() if k in _EVENT_FIELDS})
                      for e in doc["events"].values()]
            out.append(SituationView(id=doc["id"], type=doc["type"], events=events))
        return out

    def create(self, type_: str, event: Event, now: datetime) -> str:  # noqa: D102
        return str(self.store.create({"type": type_}, [event], now=now)["id"])

    def join(self, situation: str, event: Event, link: Link, retype: str | None, now: datetime) -> None:  # noqa: D102
        self.store.add_events(situation, [event], [link.to_json()], now, type=retype)

    def update(self, situation: str, event: Event, now: datetime) -> None:  # noqa: D102
        self.store.add_events(situation, [event], now=now)
