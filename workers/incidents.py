"""Incidents: the situations operators work on, their lifecycle, SLA clocks and audit trail.

The only module that reads or writes the incident keys (``keys.INCIDENT_SEQ``, ``INCIDENTS_ALL``,
``INCIDENTS_OPEN``, ``INCIDENT_BY_EVENT``, ``incident_key(id)``, ``incident_audit_key(id)``).
The correlator (``workers.correlate`` through the analytics job) creates incidents and adds events to
them; operators act on them through the API. Both write at the same time, so every write is one
optimistic transaction (``WATCH`` the document, ``MULTI``/``EXEC`` the document, the indexes and the
audit entry together, retried on conflict): no update is ever lost, and ``version`` counts writes.

Lifecycle::

    open --acknowledge--> acknowledged --assign--> assigned --resolve--> resolved --reopen--> open
      \\________________assign (acknowledges too)______/                  ^
       \\_____________________________resolve_____________________________/
    any unresolved --merge into another--> merged (final)

Every string an operator or a feed supplies is kept as data (never markup); lengths are capped.
No wall clock: ``now`` is passed in everywhere.
"""

from __future__ import annotations

import builtins
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import redis as redis_lib

from core import keys
from core.errors import SituationCenterError
from core.schemas import epoch_ms, iso
from workers.rules.base import ADVISORY, CRITICAL, SEVERITY_NAMES, WARNING, Event

#: Every status, in lifecycle order.
STATUSES = ("open", "acknowledged", "assigned", "resolved", "merged")
#: Statuses an operator still has to work on (the members of ``INCIDENTS_OPEN``).
UNRESOLVED = ("open", "acknowledged", "assigned")
#: What :meth:`IncidentStore.act` accepts.
ACTIONS = ("acknowledge", "assign", "escalate", "resolve", "note", "reopen", "merge", "split")
#: Longest note, resolution or reason.
TEXT_MAX = 2_000
#: Longest actor name; agencies may be up to twice that.
NAME_MAX = 64
#: Approximate cap of each incident's audit stream.
AUDIT_MAXLEN = 10_000
_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}


class IncidentError(SituationCenterError):
    """An incident operation was refused. ``code`` is the HTTP status the API answers with.

    Attributes:
        code: 400 unknown action or status filter, 404 unknown incident, 409 not allowed in the
            incident's status, 422 a missing or invalid argument.
    """

    def __init__(self, message: str, *, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


class _Redirect(Exception):
    """The incident was merged: the write goes to ``target``."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@dataclass(frozen=True, kw_only=True)
class SlaPolicy:
    """How long after detection an incident must be acknowledged and resolved, by severity."""

    critical_ack: timedelta = timedelta(minutes=5)
    critical_resolve: timedelta = timedelta(hours=4)
    warning_ack: timedelta = timedelta(minutes=15)
    warning_resolve: timedelta = timedelta(hours=24)
    advisory_ack: timedelta = timedelta(hours=1)
    advisory_resolve: timedelta = timedelta(hours=72)

    def due(self, severity: int, detected_at: datetime) -> dict[str, str]:
        """``{"ack_due", "resolve_due"}`` (ISO UTC) of an incident of ``severity`` detected then."""
        name = SEVERITY_NAMES.get(severity, "warning")
        ack: timedelta = getattr(self, f"{name}_ack")
        resolve: timedelta = getattr(self, f"{name}_resolve")
        return {"ack_due": iso(detected_at + ack), "resolve_due": iso(detected_at + resolve)}


Entry = tuple[str, str, dict[str, Any]]
"""One audit entry: actor, action, detail."""


class IncidentStore:
    """Incident documents in Redis: create, fold events in, act, merge, split, read, prune.

    Args:
        redis: the client (bytes or decoded responses both work).
        zone: the city's time zone (a name or a tzinfo); incident ids carry the local date.
        sla_policy: the SLA due times by severity.
    """

    def __init__(self, redis: redis_lib.Redis, zone: tzinfo | str, *, sla_policy: SlaPolicy | None = None) -> None:
        self.redis = redis
        self.zone = ZoneInfo(zone) if isinstance(zone, str) else zone
        self.sla_policy = sla_policy or SlaPolicy()

    # --- writes by the correlator --------------------------------------------------------

    def create(self, situation: Mapping[str, Any], events: Iterable[Event | Mapping[str, Any]],
               links: Iterable[Any] = (), now: datetime | None = None) -> dict[str, Any]:
        """Open a new incident for a situation and return its document (version 1).

        Args:
            situation: ``type`` (required, e.g. ``road_crash``), optional ``rule`` and ``score`` of
                the correlation, optional ``title``.
            events: its events (:class:`Event` or their JSON); at least one.
            links: ``{a, b, rule, score, distance_m, dt_s}`` dicts (or objects with ``to_json``).
            now: the detection time; the SLA clocks start here.

        Raises:
            IncidentError: 422 for a missing type, no events, or an invalid event or link.
        """
        now = _aware(now)
        fields = dict(situation)
        unknown = sorted(set(fields) - {"type", "rule", "score", "title"})
        if unknown:
            raise IncidentError(f"unknown situation field(s) {unknown}; known: type, rule, score, title")
        folded = _events(events)
        if not folded:
            raise IncidentError("an incident needs at least one event")
        doc = self._new_doc(self._next_id(now), _type(fields.get("type")), now)
        doc["rule"] = _optional_text(fields.get("rule"), "rule", NAME_MAX)
        doc["score"] = _score(fields.get("score"))
        doc["title"] = _optional_text(fields.get("title"), "title", 200)
        _fold(doc["events"], folded)
        doc["links"] = _merge_links([], _links(links))
        self._derive(doc)
        entry = ("system", "create", {"type": doc["type"], "events": sorted(doc["events"]), "rule": doc["rule"],
                                      "score": doc["score"], "severity": doc["severity"]})
        with self.redis.pipeline(transaction=True) as pipe:
            self._write(pipe, doc, [entry], now)
            pipe.execute()
        return self._with_sla(doc, now)

    def add_events(self, incident_id: str, events: Iterable[Event | Mapping[str, Any]], links: Iterable[Any] = (),
                   now: datetime | None = None, *, type: str | None = None) -> dict[str, Any]:
        """Fold new events (or new phases of its events) and links into an incident.

        An event's phases fold into one entry by event id (the latest emission wins; a closed phase is
        never replaced by an older open/update). Severity may rise; ``active``/``cleared_at`` follow the
        events. A resolved incident stays resolved (only its events change). Writes to a merged
        incident go to the one it was merged into. Nothing is written when nothing changed.

        Args:
            type: the situation's new type, if the correlator retyped it.

        Returns:
            The document written (that of the merge target if redirected).

        Raises:
            IncidentError: 404 unknown incident, 422 an invalid event, link or type.
        """
        now = _aware(now)
        folded = _events(events)
        new_links = _links(links)
        new_type = _type(type) if type is not None else None

        def change(doc: dict[str, Any]) -> list[tuple[dict[str, Any], list[Entry]]]:
            if doc["status"] == "merged":
                raise _Redirect(doc["merged_into"])
            before = (doc["severity"], doc["active"], doc["type"])
            changed = _fold(doc["events"], folded)
            old_links = len(doc["links"])
            doc["links"] = _merge_links(doc["links"], new_links)
            if new_type:
                doc["type"] = new_type
            if not changed and len(doc["links"]) == old_links and before[2] == doc["type"]:
                return []
            self._derive(doc)
            detail: dict[str, Any] = {"events": {e: doc["events"][e]["phase"] for e in changed},
                                      "links": len(doc["links"]) - old_links}
            if doc["severity"] != before[0]:
                detail["severity"] = {"from": before[0], "to": doc["severity"]}
            if doc["active"] != before[1]:
                detail["active"] = doc["active"]
            if doc["type"] != before[2]:
                detail["type"] = {"from": before[2], "to": doc["type"]}
            return [(doc, [("system", "events", detail)])]

        target = incident_id
        for _ in range(8):
            try:
                written = self._transact([target], now, change)
            except _Redirect as hop:
                target = hop.target
                continue
            return self._with_sla(written[0], now) if written else self._require(target, now)
        raise IncidentError(f"incident {incident_id!r} is merged in a chain longer than 8", code=409)

    # --- operator actions ------------------------------------------------------------------

    def act(self, incident_id: str, action: str, actor: str, now: datetime | None = None, *,
            agency: str | None = None, text: str | None = None, source: str | None = None,
            events: Sequence[str] | None = None, type: str | None = None) -> dict[str, Any]:
        """Apply an operator's action and return the updated document.

        Actions and their arguments: ``acknowledge``; ``assign`` (``agency`` required, ``text`` optional);
        ``escalate`` (``text`` = reason, optional: severity +1 up to critical); ``resolve`` (``text`` =
        resolution, required); ``note`` (``text`` required); ``reopen`` (``text`` optional reason);
        ``merge`` (``source``: the incident merged into this one); ``split`` (``events``: ids moved to a
        new incident, optional ``type``; the answer is this incident, its ``split_into`` names the new one).

        Raises:
            IncidentError: 400 unknown action, 404 unknown incident, 409 not allowed in this status,
                422 a missing or invalid argument (empty agency, text over 2,000 characters ...).
        """
        now = _aware(now)
        if action not in ACTIONS:
            raise IncidentError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}", code=400)
        actor = _name(actor, "actor", NAME_MAX)
        if action == "merge":
            return self.merge(incident_id, source, actor, now)  # type: ignore[arg-type]
        if action == "split":
            return self._split(incident_id, events, actor, now, type)[0]  # type: ignore[arg-type]
        args: dict[str, Any] = {}
        if action == "assign":
            args["agency"] = _name(agency, "agency", 2 * NAME_MAX)
        if action in ("resolve", "note"):
            args["text"] = _text(text, "text", required=True)
        elif text is not None:
            args["text"] = _text(text, "text", required=False)
        step = _STEPS[action]

        def change(doc: dict[str, Any]) -> list[tuple[dict[str, Any], list[Entry]]]:
            detail = step(doc, actor, now, args)
            self._derive(doc)
            return [(doc, [(actor, action, detail)])]

        return self._with_sla(self._transact([incident_id], now, change)[0], now)

    def merge(self, target_id: str, source_id: str, actor: str, now: datetime | None = None) -> dict[str, Any]:
        """Move every event and link of ``source_id`` into ``target_id``; the source becomes ``merged``.

        The target keeps its status, type and escalation and takes the earlier detection time (the SLA
        clock of the situation started with its first sighting). Both incidents are audited.

        Returns:
            The target's document.

        Raises:
            IncidentError: 404 either is unknown, 409 the target is resolved or either is merged,
                422 no source or the source is the target.
        """
        now = _aware(now)
        actor = _name(actor, "actor", NAME_MAX)
        if not isinstance(source_id, str) or not source_id.strip():
            raise IncidentError("merge needs 'source': the id of the incident to merge into this one")
        source_id = source_id.strip()
        if source_id == target_id:
            raise IncidentError(f"cannot merge incident {target_id} into itself")

        def change(target: dict[str, Any], source: dict[str, Any]) -> list[tuple[dict[str, Any], list[Entry]]]:
            for doc in (target, source):
                if doc["status"] == "merged":
                    raise IncidentError(f"cannot merge: {doc['id']} was already merged into {doc['merged_into']}",
                                        code=409)
            if target["status"] == "resolved":
                raise IncidentError(f"cannot merge into {target['id']}: it is resolved (reopen it first)", code=409)
            moved = sorted(source["events"])
            _fold(target["events"], list(source["events"].values()))
            target["links"] = _merge_links(target["links"], source["links"])
            target["detected_at"] = min(target["detected_at"], source["detected_at"], key=_time)
            target["merged_from"].append(source["id"])
            source.update(status="merged", merged_into=target["id"], merged_at=iso(now), merged_by=actor,
                          events={}, links=[], active=False)
            self._derive(target)
            self._derive(source)
            return [(target, [(actor, "merge", {"source": source["id"], "events": moved})]),
                    (source, [(actor, "merged", {"into": target["id"], "events": moved})])]

        return self._with_sla(self._transact([target_id, source_id], now, change)[0], now)

    def split(self, incident_id: str, event_ids: Sequence[str], actor: str, now: datetime | None = None, *,
              type: str | None = None) -> dict[str, Any]:
        """Move ``event_ids`` out of an incident into a new one and return the new document.

        The new incident has the same type (unless ``type`` is given), the same detection time (its
        events were seen then), status ``open``, ``split_from`` = the source; links between moved events
        move with them, links across the two are dropped (counted in the audit).

        Raises:
            IncidentError: 404 unknown incident, 409 it is resolved or merged, 422 no events, events
                not in it, or every event of it (that is not a split).
        """
        return self._split(incident_id, event_ids, _name(actor, "actor", NAME_MAX), _aware(now), type)[1]

    def _split(self, incident_id: str, event_ids: Sequence[str] | None, actor: str, now: datetime,
               new_type: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        if isinstance(event_ids, str) or not isinstance(event_ids, Sequence) or not event_ids \
                or not all(isinstance(e, str) and e for e in event_ids):
            raise IncidentError("split needs 'events': a non-empty list of the event ids to move out")
        moving = set(event_ids)
        chosen_type = _type(new_type) if new_type is not None else None
        if self._load(self.redis, incident_id) is None:
            raise IncidentError(f"no incident {incident_id!r}", code=404)
        new_id = self._next_id(now)

        def change(doc: dict[str, Any]) -> list[tuple[dict[str, Any], list[Entry]]]:
            if doc["status"] in ("resolved", "merged"):
                raise IncidentError(f"cannot split {doc['id']}: it is {doc['status']}", code=409)
            missing = sorted(moving - set(doc["events"]))
            if missing:
                raise IncidentError(f"events {missing} are not in incident {doc['id']}")
            if moving == set(doc["events"]):
                raise IncidentError(f"cannot split every event out of {doc['id']}; split some, or merge instead")
            new = self._new_doc(new_id, chosen_type or doc["type"], _time(doc["detected_at"]))
            new.update(rule="split", split_from=doc["id"], title=doc.get("title"))
            new["events"] = {e: doc["events"].pop(e) for e in sorted(moving)}
            kept, moved, dropped = [], [], 0
            for link in doc["links"]:
                ends = {link["a"] in moving, link["b"] in moving}
                if ends == {True}:
                    moved.append(link)
                elif ends == {False}:
                    kept.append(link)
                else:
                    dropped += 1
            doc["links"], new["links"] = kept, moved
            doc["split_into"].append(new_id)
            self._derive(doc)
            self._derive(new)
            ids = sorted(moving)
            return [(doc, [(actor, "split", {"into": new_id, "events": ids, "dropped_links": dropped})]),
                    (new, [(actor, "create", {"split_from": doc["id"], "type": new["type"], "events": ids})])]

        source, new = self._transact([incident_id], now, change)
        return self._with_sla(source, now), self._with_sla(new, now)

    # --- reads -----------------------------------------------------------------------------

    def get(self, incident_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """The document with its SLA state at ``now``, or ``None`` if there is no such incident."""
        now = _aware(now)
        doc = self._load(self.redis, incident_id)
        return None if doc is None else self._with_sla(doc, now)

    def audit(self, incident_id: str) -> builtins.list[dict[str, Any]]:
        """Every change of an incident, oldest first: ``{id, at, actor, action, detail}``."""
        try:
            key = keys.incident_audit_key(incident_id)
        except ValueError:
            return []
        out = []
        for entry_id, fields in self.redis.xrange(key):
            f = {_s(k): _s(v) for k, v in fields.items()}
            out.append({"id": _s(entry_id), "at": f.get("at"), "actor": f.get("actor"), "action": f.get("action"),
                        "detail": orjson.loads(f.get("detail") or "{}")})
        return out

    def incident_for_event(self, event_id: str) -> str | None:
        """The incident an event belongs to (after merges and splits), or ``None``."""
        value = self.redis.hget(keys.INCIDENT_BY_EVENT, event_id)
        return None if value is None else _s(value)

    def list(self, status: str | None = None, *, now: datetime | None = None,
             limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Incidents, newest detection first, each with its SLA state at ``now``.

        Args:
            status: ``None`` or ``unresolved`` (open, acknowledged or assigned), ``all``, or one status.
            limit: at most this many (1 .. 1000).

        Raises:
            IncidentError: 400 unknown status or a limit out of range.
        """
        now = _aware(now)
        if status not in (None, "unresolved", "all", *STATUSES):
            raise IncidentError(f"unknown status {status!r}; one of unresolved, all, {', '.join(STATUSES)}",
                                code=400)
        if not 1 <= limit <= 1000:
            raise IncidentError(f"limit {limit} is not in 1..1000", code=400)
        index = keys.INCIDENTS_OPEN if status in (None, "unresolved", *UNRESOLVED) else keys.INCIDENTS_ALL
        wanted = None if status in (None, "unresolved", "all") else status
        out: builtins.list[dict[str, Any]] = []
        start, page = 0, max(limit, 200)
        while len(out) < limit:
            ids = [_s(i) for i in self.redis.zrevrange(index, start, start + page - 1)]
            if not ids:
                break
            start += page
            for raw in self.redis.mget([keys.incident_key(i) for i in ids]):
                doc = orjson.loads(raw) if raw is not None else None
                if doc is not None and (wanted is None or doc["status"] == wanted):
                    out.append(self._with_sla(doc, now))
                    if len(out) == limit:
                        break
        return out

    # --- retention -------------------------------------------------------------------------

    def prune(self, now: datetime | None = None, keep_resolved: timedelta = timedelta(days=30)) -> int:
        """Drop incidents resolved (or merged) more than ``keep_resolved`` ago, with their audit streams.

        Returns:
            How many incidents were dropped.
        """
        cutoff = _aware(now) - keep_resolved
        dropped = 0
        for raw_id in self.redis.zrangebyscore(keys.INCIDENTS_ALL, "-inf", epoch_ms(cutoff)):
            incident_id = _s(raw_id)
            if self._prune_one(incident_id, cutoff):
                dropped += 1
        return dropped

    def _prune_one(self, incident_id: str, cutoff: datetime) -> bool:
        key = keys.incident_key(incident_id)

        def txn(pipe: Any) -> bool:
            doc = self._load(pipe, incident_id)
            closed = doc and (doc.get("resolved_at") if doc["status"] == "resolved" else doc.get("merged_at"))
            if doc is not None and (doc["status"] not in ("resolved", "merged") or _time(closed) >= cutoff):
                return False
            events = sorted(doc["events"]) if doc else []
            owners = pipe.hmget(keys.INCIDENT_BY_EVENT, events) if events else []
            pipe.multi()
            pipe.delete(key, keys.incident_audit_key(incident_id))
            pipe.zrem(keys.INCIDENTS_ALL, incident_id)
            pipe.zrem(keys.INCIDENTS_OPEN, incident_id)
            mine = [e for e, owner in zip(events, owners, strict=True)
                    if owner is not None and _s(owner) == incident_id]
            if mine:
                pipe.hdel(keys.INCIDENT_BY_EVENT, *mine)
            return True

        return bool(self.redis.transaction(txn, key, keys.INCIDENT_BY_EVENT, value_from_callable=True))

    # --- the machinery ---------------------------------------------------------------------

    def _next_id(self, now: datetime) -> str:
        seq = int(self.redis.incr(keys.INCIDENT_SEQ))
        return f"INC-{now.astimezone(self.zone):%Y%m%d}-{seq:04d}"

    def _new_doc(self, incident_id: str, kind: str, detected_at: datetime) -> dict[str, Any]:
        return {
            "id": incident_id, "type": kind, "title": None, "status": "open", "severity": WARNING,
            "severity_name": SEVERITY_NAMES[WARNING], "base_severity": WARNING, "escalation": 0,
            "active": True, "cleared_at": None, "detected_at": iso(detected_at), "onset": None,
            "last_event_at": None, "updated_at": None, "district": None, "districts": [], "lat": None, "lon": None,
            "events": {}, "event_count": 0, "links": [], "rule": None, "score": None,
            "assignee": None, "acknowledged_at": None, "acknowledged_by": None, "assigned_at": None,
            "assigned_by": None, "escalated_at": None, "escalated_by": None, "resolved_at": None,
            "resolved_by": None, "resolution": None, "merged_into": None, "merged_at": None, "merged_by": None,
            "merged_from": [], "split_from": None, "split_into": [], "notes_count": 0, "version": 0,
            "sla": {},
        }

    def _derive(self, doc: dict[str, Any]) -> None:
        """Recompute what follows from the events, the escalation and the status."""
        events = list(doc["events"].values())
        doc["event_count"] = len(events)
        if events:
            doc["base_severity"] = max((e["severity"] for e in events if e["severity"] >= WARNING), default=ADVISORY)
            doc["onset"] = iso(min(_time(e["onset"]) for e in events))
            doc["last_event_at"] = iso(max(_time(e["at"]) for e in events))
            doc["active"] = any(e["phase"] != "closed" for e in events)
            doc["cleared_at"] = None if doc["active"] else iso(max(_time(e["ended_at"] or e["at"]) for e in events))
            districts = [e["district"] for e in events if e.get("district")]
            doc["districts"] = sorted(set(districts))
            doc["district"] = max(sorted(set(districts)), key=districts.count) if districts else None
            points = [(e["lat"], e["lon"]) for e in events if e.get("lat") is not None and e.get("lon") is not None]
            doc["lat"] = round(sum(p[0] for p in points) / len(points), 6) if points else None
            doc["lon"] = round(sum(p[1] for p in points) / len(points), 6) if points else None
        doc["severity"] = min(CRITICAL, doc["base_severity"] + doc["escalation"])
        doc["severity_name"] = SEVERITY_NAMES[doc["severity"]]
        doc["sla"] = self.sla_policy.due(doc["severity"], _time(doc["detected_at"]))

    def _with_sla(self, doc: dict[str, Any], now: datetime) -> dict[str, Any]:
        """A copy of ``doc`` whose ``sla`` also says, at ``now``, whether each clock is breached and
        the seconds left (negative when overdue; ``None`` once that clock stopped)."""
        out = dict(doc)
        sla = dict(doc["sla"])
        ack_due, resolve_due = _time(sla["ack_due"]), _time(sla["resolve_due"])
        closed = doc.get("resolved_at") or doc.get("merged_at")
        ack_stop = doc.get("acknowledged_at") or closed
        resolve_stop = closed
        sla["ack_breached"] = (_time(ack_stop) if ack_stop else now) > ack_due
        sla["resolve_breached"] = (_time(resolve_stop) if resolve_stop else now) > resolve_due
        sla["ack_left_s"] = None if ack_stop else round((ack_due - now).total_seconds(), 3)
        sla["resolve_left_s"] = None if resolve_stop else round((resolve_due - now).total_seconds(), 3)
        out["sla"] = sla
        return out

    def _load(self, client: Any, incident_id: str) -> dict[str, Any] | None:
        try:
            key = keys.incident_key(incident_id)
        except ValueError:
            return None
        raw = client.get(key)
        return None if raw is None else orjson.loads(raw)

    def _require(self, incident_id: str, now: datetime) -> dict[str, Any]:
        doc = self.get(incident_id, now)
        if doc is None:
            raise IncidentError(f"no incident {incident_id!r}", code=404)
        return doc

    def _transact(self, ids: Sequence[str], now: datetime,
                  change: Callable[..., builtins.list[tuple[dict[str, Any], builtins.list[Entry]]]],
                  ) -> builtins.list[dict[str, Any]]:
        """Load ``ids`` under WATCH, let ``change`` edit them, write what it returns in one MULTI/EXEC.

        ``change`` gets the documents and returns ``(document, audit entries)`` pairs to write (an empty
        list: nothing to write). On a concurrent write it runs again on the fresh documents.
        """
        for incident_id in ids:
            if self._load(self.redis, incident_id) is None:  # also refuses ids that cannot be keys
                raise IncidentError(f"no incident {incident_id!r}", code=404)
        watched = [keys.incident_key(i) for i in ids]

        def txn(pipe: Any) -> builtins.list[dict[str, Any]]:
            docs = [self._load(pipe, i) for i in ids]
            for incident_id, doc in zip(ids, docs, strict=True):
                if doc is None:
                    raise IncidentError(f"no incident {incident_id!r}", code=404)
            writes = change(*docs)
            pipe.multi()
            for doc, entries in writes:
                self._write(pipe, doc, entries, now)
            return [doc for doc, _ in writes]

        return self.redis.transaction(txn, *watched, value_from_callable=True)  # type: ignore[no-any-return]

    def _write(self, pipe: Any, doc: dict[str, Any], entries: Iterable[Entry], now: datetime) -> None:
        """Queue the document (version + 1), its indexes and its audit entries on ``pipe``."""
        doc["version"] += 1
        doc["updated_at"] = iso(now)
        incident_id = doc["id"]
        score = epoch_ms(_time(doc["detected_at"]))
        pipe.set(keys.incident_key(incident_id), orjson.dumps(doc))
        pipe.zadd(keys.INCIDENTS_ALL, {incident_id: score})
        if doc["status"] in UNRESOLVED:
            pipe.zadd(keys.INCIDENTS_OPEN, {incident_id: score})
        else:
            pipe.zrem(keys.INCIDENTS_OPEN, incident_id)
        if doc["events"]:
            pipe.hset(keys.INCIDENT_BY_EVENT, mapping=dict.fromkeys(doc["events"], incident_id))
        pipe.hincrby(keys.VERSIONS, "incidents", 1)
        for actor, action, detail in entries:
            pipe.xadd(keys.incident_audit_key(incident_id),
                      {"at": iso(now), "actor": actor, "action": action, "detail": orjson.dumps(detail)},
                      maxlen=AUDIT_MAXLEN, approximate=True)


# --- the actions: each checks the status, edits the document, returns the audit detail ------------


def _refuse(doc: dict[str, Any], action: str, allowed: Sequence[str]) -> None:
    status = doc["status"]
    if status in allowed:
        return
    if status == "merged":
        hint = f": it was merged into {doc['merged_into']}; act on that one"
    elif status == "resolved":
        hint = ": it is resolved (reopen it first)" if action != "reopen" else ""
    else:
        hint = f": it is {status}"
    raise IncidentError(f"cannot {action} incident {doc['id']}{hint}; {action} needs status "
                        f"{' or '.join(allowed)}", code=409)


def _acknowledge(doc: dict[str, Any], actor: str, now: datetime, args: dict[str, Any]) -> dict[str, Any]:
    _refuse(doc, "acknowledge", ("open",))
    doc.update(status="acknowledged", acknowledged_at=iso(now), acknowledged_by=actor)
    return {"text": args["text"]} if args.get("text") else {}


def _assign(doc: dict[str, Any], actor: str, now: datetime, args: dict[str, Any]) -> dict[str, Any]:
    _refuse(doc, "assign", UNRESOLVED)
    detail: dict[str, Any] = {"agency": args["agency"], "previous": doc["assignee"]}
    if doc["acknowledged_at"] is None:
        doc.update(acknowledged_at=iso(now), acknowledged_by=actor)
        detail["acknowledged"] = True
    doc.update(status="assigned", assignee=args["agency"], assigned_at=iso(now), assigned_by=actor)
    if args.get("text"):
        detail["text"] = args["text"]
    return detail


def _escalate(doc: dict[str, Any], actor: str, now: datetime, args: dict[str, Any]) -> dict[str, Any]:
    _refuse(doc, "escalate", UNRESOLVED)
    if doc["severity"] >= CRITICAL:
        raise IncidentError(f"cannot escalate incident {doc['id']}: it is already critical", code=409)
    before = doc["severity"]
    doc["escalation"] += 1
    doc.update(escalated_at=iso(now), escalated_by=actor)
    return {"from": before, "to": min(CRITICAL, doc["base_severity"] + doc["escalation"]),
            "reason": args.get("text")}


def _resolve(doc: dict[str, Any], actor: str, now: datetime, args: dict[str, Any]) -> dict[str, Any]:
    _refuse(doc, "resolve", UNRESOLVED)
    doc.update(status="resolved", resolved_at=iso(now), resolved_by=actor, resolution=args["text"])
    return {"resolution": args["text"], "active": doc["active"]}


def _note(doc: dict[str, Any], actor: str, now: datetime, args: dict[str, Any]) -> dict[str, Any]:
    _refuse(doc, "note", (*UNRESOLVED, "resolved"))
    doc["notes_count"] += 1
    return {"text": args["text"]}


def _reopen(doc: dict[str, Any], actor: str, now: datetime, args: dict[str, Any]) -> dict[str, Any]:
    _refuse(doc, "reopen", ("resolved",))
    detail = {"resolution": doc["resolution"], "resolved_at": doc["resolved_at"], "reason": args.get("text")}
    doc.update(status="open", resolved_at=None, resolved_by=None, resolution=None)
    return detail


_STEPS: dict[str, Callable[[dict[str, Any], str, datetime, dict[str, Any]], dict[str, Any]]] = {
    "acknowledge": _acknowledge, "assign": _assign, "escalate": _escalate, "resolve": _resolve,
    "note": _note, "reopen": _reopen,
}


# --- validation and small helpers --------------------------------------------------------------


def _aware(now: datetime | None) -> datetime:
    if now is None or now.tzinfo is None:
        raise ValueError("pass now: an aware datetime (the incident store never reads the clock)")
    return now


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS for c in text)


def _name(value: Any, what: str, limit: int) -> str:
    """A name (actor, agency): a non-empty string of at most ``limit`` characters, one line."""
    if not isinstance(value, str) or not value.strip():
        raise IncidentError(f"{what} is required: a non-empty name of at most {limit} characters")
    value = value.strip()
    if len(value) > limit:
        raise IncidentError(f"{what} is {len(value)} characters long; at most {limit}")
    if _has_controls(value) or "\n" in value or "\r" in value or "\t" in value:
        raise IncidentError(f"{what} must be one line without control characters")
    return value


def _text(value: Any, what: str, *, required: bool) -> str | None:
    """A free text (note, resolution, reason): at most :data:`TEXT_MAX` characters."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise IncidentError(f"{what} is required: a non-empty text of at most {TEXT_MAX} characters")
        return None
    if not isinstance(value, str):
        raise IncidentError(f"{what} must be a string, not {type(value).__name__}")
    value = value.strip()
    if len(value) > TEXT_MAX:
        raise IncidentError(f"{what} is {len(value)} characters long; at most {TEXT_MAX}")
    if _has_controls(value):
        raise IncidentError(f"{what} contains control characters")
    return value


def _optional_text(value: Any, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or _has_controls(value):
        raise IncidentError(f"{what} must be a string of at most {limit} characters")
    return value


def _type(value: Any) -> str:
    if not isinstance(value, str) or not _TYPE.match(value):
        raise IncidentError(f"incident type {value!r} is not a lower-case name like 'road_crash'")
    return value


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IncidentError(f"score {value!r} is not a number")
    return float(value)


def _events(events: Iterable[Event | Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
    """Events as their JSON, checked (each must read back as an :class:`Event`)."""
    out = []
    for event in events:
        try:
            parsed = event if isinstance(event, Event) else Event.from_json(event)
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            event_id = event.get("id") if isinstance(event, Mapping) else None
            raise IncidentError(f"invalid event {event_id!r}: {err}") from err
        if parsed.severity not in SEVERITY_NAMES or parsed.phase not in ("open", "update", "closed"):
            raise IncidentError(f"invalid event {parsed.id!r}: severity {parsed.severity!r}, phase {parsed.phase!r}")
        if parsed.onset.tzinfo is None or parsed.at.tzinfo is None:
            raise IncidentError(f"invalid event {parsed.id!r}: its times have no UTC offset")
        out.append(parsed.to_json())
    return out


def _fold(into: dict[str, dict[str, Any]], events: Iterable[dict[str, Any]]) -> builtins.list[str]:
    """Fold event emissions into ``into`` by id (latest ``at`` wins; closed is final). The ids changed."""
    changed = []
    for event in events:
        old = into.get(event["id"])
        if old is not None:
            if old == event or _time(old["at"]) > _time(event["at"]):
                continue
            if old["phase"] == "closed" and event["phase"] != "closed":
                continue
        into[event["id"]] = event
        changed.append(event["id"])
    return changed


_LINK_FIELDS = ("a", "b", "rule", "score", "distance_m", "dt_s")


def _links(links: Iterable[Any]) -> builtins.list[dict[str, Any]]:
    out = []
    for link in links:
        data = link.to_json() if hasattr(link, "to_json") else link
        if not isinstance(data, Mapping) or not isinstance(data.get("a"), str) or not isinstance(data.get("b"), str):
            raise IncidentError(f"invalid link {data!r}: needs the event ids 'a' and 'b'")
        out.append({k: data.get(k) for k in _LINK_FIELDS})
    return out


def _merge_links(old: builtins.list[dict[str, Any]], new: Iterable[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
    """``old`` plus the links of ``new`` not already there (one link per a, b, rule)."""
    seen = {(link["a"], link["b"], link["rule"]) for link in old}
    out = list(old)
    for link in new:
        if (link["a"], link["b"], link["rule"]) not in seen:
            seen.add((link["a"], link["b"], link["rule"]))
            out.append(link)
    return out
