"""Every Redis key, stream, consumer group and queue name. The sole owner of ``sc:``.

Grammar: ``sc:<kind>:<name>[:<sub>]``. Keys that belong to one feed carry the feed in a
hash tag (``{air}``) so that a feed's keys share one Redis Cluster slot: the ingest script
touches several of them atomically. ``tests/core/test_keys.py`` fails if ``sc:`` is
spelled in any other module or if a key has an empty segment.
"""

from __future__ import annotations

PREFIX = "sc"

#: Consumer group the analytics workers read feed streams with.
WORKERS_GROUP = "sc-workers"
#: RQ queue of the analytics micro-batch jobs.
JOBS_QUEUE = "sc-jobs"
#: Set of feed names that have ever written (so health lists feeds that went silent).
FEEDS_SEEN = f"{PREFIX}:feeds"


def _tag(feed: str) -> str:
    if not feed or ":" in feed or "{" in feed or "}" in feed:
        raise ValueError(f"invalid feed name {feed!r}")
    return "{" + feed + "}"


def feed_stream_key(feed: str) -> str:
    """Stream of normalised records of ``feed`` (``XADD ... MAXLEN ~``)."""
    return f"{PREFIX}:stream:{_tag(feed)}"


def dead_letter_key(feed: str) -> str:
    """Stream of rejected records of ``feed``: reason, code, raw payload."""
    return f"{PREFIX}:dead:{_tag(feed)}"


def latest_key(feed: str, kind: str) -> str:
    """Hash entity id -> latest merged record JSON, for one entity kind of ``feed``."""
    if not kind:
        raise ValueError("empty entity kind")
    return f"{PREFIX}:latest:{_tag(feed)}:{kind}"


def latest_version_key(feed: str, kind: str) -> str:
    """Hash entity id -> version (ms) of the record held in :func:`latest_key`."""
    return latest_key(feed, kind) + ":v"


def seen_key(feed: str, bucket: int) -> str:
    """Set of record ids of ``feed`` whose record time falls in time ``bucket``."""
    return f"{PREFIX}:seen:{_tag(feed)}:{bucket}"


def health_key(feed: str) -> str:
    """Hash of counters and times of ``feed``: events_total, rejected_total, last_event_at, ..."""
    return f"{PREFIX}:health:{_tag(feed)}"


def transport_state_key(feed: str) -> str:
    """Hash set by the running transport of ``feed``: state, last_error, since, pid."""
    return f"{PREFIX}:transport:{_tag(feed)}"


def kpi_key(domain: str) -> str:
    """JSON snapshot of the KPIs of ``domain`` (with a version)."""
    if not domain or any(c in domain for c in ":{}"):
        raise ValueError(f"invalid KPI domain {domain!r}")
    return f"{PREFIX}:kpi:{domain}"


def rollup_key(feed: str) -> str:
    """Hash minute (epoch s) -> records counted by the workers for ``feed``."""
    return f"{PREFIX}:rollup:{_tag(feed)}"


#: Hash of the live simulator's run: seed, start and the simulated time delivered so far, so a
#: restarted simulator resumes its city instead of inventing a second one over the same hours.
SIM_STATE = f"{PREFIX}:sim:state"


def kpi_history_key(domain: str) -> str:
    """Stream of per-minute KPI snapshots of ``domain`` (entry id = the minute), capped."""
    return kpi_key(domain) + ":history"


def kpi_baseline_key(domain: str) -> str:
    """Hash of the cached baseline the KPIs of ``domain`` compare against (traffic: the score history
    read from its stream and the per-slot cells built from it), rebuilt at most hourly."""
    return kpi_key(domain) + ":baseline"


#: JSON document of the public indicators (district × hour, delayed, small counts suppressed), written by
#: the ``build_public_indicators`` job and the only thing the public app reads.
PUBLIC_INDICATORS = f"{PREFIX}:public:indicators"


# --- analytics: events, incidents, detector state -----------------------------------------

#: Stream of detector events (open / update / closed episodes), capped.
EVENTS = f"{PREFIX}:events"
#: Counter the incident ids are numbered from.
INCIDENT_SEQ = f"{PREFIX}:incidents:seq"
#: Sorted set id -> detection time (ms) of every incident kept (open and recently resolved).
INCIDENTS_ALL = f"{PREFIX}:incidents:all"
#: Sorted set id -> detection time (ms) of incidents not yet resolved (or merged).
INCIDENTS_OPEN = f"{PREFIX}:incidents:open"
#: Hash event id -> incident id, so later phases of an event reach the incident it joined.
INCIDENT_BY_EVENT = f"{PREFIX}:incidents:by-event"
#: Hash event id -> event JSON of every event not yet closed (advisories included): what screens show.
EVENTS_ACTIVE = f"{PREFIX}:events:active"
#: Hash topic -> version (a counter or ms) of what screens show: ``kpi:<domain>``, ``incidents``,
#: ``events``. Writers bump it in the same round trip as the data, so a web process follows every
#: topic with one small ``HGETALL`` and fetches a document only when its version moved.
VERSIONS = f"{PREFIX}:versions"
#: Lock held by the analytics job that is consuming the feed streams.
ANALYTICS_LOCK = f"{PREFIX}:analytics:lock"
#: Hash of the analytics loop's progress per feed: last entry id, when processed, totals.
ANALYTICS_STATUS = f"{PREFIX}:analytics:status"


def incident_key(incident_id: str) -> str:
    """JSON document of one incident (its situation, events, links, status and SLA)."""
    if not incident_id or any(c in incident_id for c in ":{} "):
        raise ValueError(f"invalid incident id {incident_id!r}")
    return f"{PREFIX}:incident:{incident_id}"


def incident_audit_key(incident_id: str) -> str:
    """Stream of every change of one incident: who, when, what."""
    return incident_key(incident_id) + ":audit"


def detector_state_key(name: str) -> str:
    """Pickled state of one detector (or of the analytics engine) between jobs."""
    if not name or any(c in name for c in ":{} "):
        raise ValueError(f"invalid detector name {name!r}")
    return f"{PREFIX}:analytics:state:{name}"
