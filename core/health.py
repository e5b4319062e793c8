"""Feed health: pure judgement of a feed's counters against its expected cadence.

Statuses:
    ok      records arrive and are recent.
    silent  nothing accepted for ``SILENT_CADENCES`` x cadence (or never).
    stale   records arrive, but the newest record time is older than ``STALE_CADENCES`` x
            cadence (a stuck source clock, or a backlog being replayed).
    error   the transport's last error is newer than its last accepted record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.schemas import iso

SILENT_CADENCES = 3.0
STALE_CADENCES = 3.0


def _ms(raw: Mapping[str, str], key: str) -> int | None:
    value = raw.get(key)
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else iso(datetime.fromtimestamp(ms / 1000, UTC))


def feed_health(raw: Mapping[str, str], *, cadence_s: float, now: datetime) -> dict[str, Any]:
    """The health document of one feed from its raw counters (see :meth:`core.store.Store.health_raw`)."""
    now_ms = int(now.timestamp() * 1000)
    last_ingest = _ms(raw, "last_ingest_ms")
    last_event = _ms(raw, "last_event_ms")
    last_error = _ms(raw, "transport_last_error_ms")
    lag = _ms(raw, "lag_ms")
    status = "ok"
    if last_error is not None and (last_ingest is None or last_error > last_ingest) \
            and raw.get("transport_state") == "error":
        status = "error"
    elif last_ingest is None or now_ms - last_ingest > SILENT_CADENCES * cadence_s * 1000:
        status = "silent"
    elif last_event is not None and now_ms - last_event > STALE_CADENCES * cadence_s * 1000:
        status = "stale"
    return {
        "status": status,
        "expected_cadence_s": cadence_s,
        "last_event_at": _iso_ms(last_event),
        "last_received_at": _iso_ms(last_ingest),
        "age_s": None if last_event is None else round((now_ms - last_event) / 1000, 3),
        "lag_s": None if lag is None else round(lag / 1000, 3),
        "events_total": int(raw.get("events_total", 0) or 0),
        "rejected_total": int(raw.get("rejected_total", 0) or 0),
        "ignored_total": int(raw.get("ignored_total", 0) or 0),
        "rejected_by_reason": {k[len("rejected:"):]: int(v) for k, v in raw.items() if k.startswith("rejected:")},
        "transport": {
            "state": raw.get("transport_state"),
            "detail": raw.get("transport_detail") or None,
            "last_error": raw.get("transport_last_error") or None,
            "last_error_at": _iso_ms(last_error),
        },
    }
