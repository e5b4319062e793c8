"""Feed health as a pure function of the raw counters, a cadence and a fixed ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.health import SILENT_CADENCES, STALE_CADENCES, feed_health

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
CADENCE = 60.0
CADENCE_MS = int(CADENCE * 1000)


def ms_ago(ms: float) -> str:
    return str(int(NOW_MS - ms))


def cadences_ago(n: float) -> str:
    return ms_ago(n * CADENCE_MS)


def health(raw: dict[str, str], cadence_s: float = CADENCE, now: datetime = NOW) -> dict:
    return feed_health(raw, cadence_s=cadence_s, now=now)


def fresh(**extra: str) -> dict[str, str]:
    """A feed that received a record 10 s ago whose newest record time is 20 s ago."""
    return {"events_total": "12", "last_ingest_ms": ms_ago(10_000), "last_event_ms": ms_ago(20_000),
            "lag_ms": "1500", **extra}


def test_the_thresholds_are_three_cadences():
    assert SILENT_CADENCES == 3.0 and STALE_CADENCES == 3.0


# --- status ------------------------------------------------------------------------------


def test_never_received_is_silent():
    doc = health({})
    assert doc["status"] == "silent"
    assert doc["last_event_at"] is None and doc["last_received_at"] is None
    assert doc["age_s"] is None and doc["lag_s"] is None
    assert doc["events_total"] == 0 and doc["rejected_total"] == 0 and doc["ignored_total"] == 0
    assert doc["rejected_by_reason"] == {}
    assert doc["expected_cadence_s"] == CADENCE


def test_only_rejections_never_accepted_is_silent():
    assert health({"rejected_total": "5", "rejected:bad_json": "5", "last_reject_ms": ms_ago(1000)})["status"] \
        == "silent"


def test_received_recently_with_recent_event_is_ok():
    assert health(fresh())["status"] == "ok"


def test_received_recently_without_event_time_is_ok():
    assert health({"last_ingest_ms": ms_ago(1000)})["status"] == "ok"


def test_nothing_for_more_than_three_cadences_is_silent():
    raw = {"last_ingest_ms": cadences_ago(3.5), "last_event_ms": cadences_ago(3.5)}
    assert health(raw)["status"] == "silent"
    raw = {"last_ingest_ms": cadences_ago(100), "last_event_ms": cadences_ago(100)}
    assert health(raw)["status"] == "silent"


def test_silent_exactly_at_three_cadences_is_still_ok():
    raw = {"last_ingest_ms": cadences_ago(3), "last_event_ms": cadences_ago(3)}
    assert health(raw)["status"] == "ok"


def test_silent_one_millisecond_past_three_cadences():
    raw = {"last_ingest_ms": ms_ago(3 * CADENCE_MS + 1), "last_event_ms": ms_ago(1000)}
    assert health(raw)["status"] == "silent"


def test_received_recently_but_newest_event_old_is_stale():
    raw = {"last_ingest_ms": ms_ago(1000), "last_event_ms": cadences_ago(10)}
    assert health(raw)["status"] == "stale"


def test_stale_exactly_at_three_cadences_is_still_ok():
    raw = {"last_ingest_ms": ms_ago(1000), "last_event_ms": cadences_ago(3)}
    assert health(raw)["status"] == "ok"


def test_stale_one_millisecond_past_three_cadences():
    raw = {"last_ingest_ms": ms_ago(1000), "last_event_ms": ms_ago(3 * CADENCE_MS + 1)}
    assert health(raw)["status"] == "stale"


def test_silent_wins_over_stale():
    raw = {"last_ingest_ms": cadences_ago(4), "last_event_ms": cadences_ago(50)}
    assert health(raw)["status"] == "silent"


def test_cadence_scales_the_thresholds():
    raw = {"last_ingest_ms": ms_ago(600_000), "last_event_ms": ms_ago(600_000)}  # 10 minutes ago
    assert health(raw, cadence_s=60)["status"] == "silent"      # > 3 minutes
    assert health(raw, cadence_s=200)["status"] == "ok"         # exactly 10 minutes
    assert health(raw, cadence_s=3600)["status"] == "ok"
    raw = {"last_ingest_ms": ms_ago(1000), "last_event_ms": ms_ago(600_000)}
    assert health(raw, cadence_s=60)["status"] == "stale"
    assert health(raw, cadence_s=3600)["status"] == "ok"


def test_newest_event_in_the_future_is_ok():
    raw = {"last_ingest_ms": ms_ago(1000), "last_event_ms": ms_ago(-120_000)}
    doc = health(raw)
    assert doc["status"] == "ok"
    assert doc["age_s"] == -120.0


def test_transport_error_after_the_last_ingest_is_error():
    raw = fresh(transport_state="error", transport_last_error="HTTP 503 from https://x",
                transport_last_error_ms=ms_ago(5_000), transport_detail="https://x")
    doc = health(raw)
    assert doc["status"] == "error"
    assert doc["transport"] == {"state": "error", "detail": "https://x", "last_error": "HTTP 503 from https://x",
                                "last_error_at": "2026-11-22T07:59:55Z"}


def test_transport_error_older_than_the_last_ingest_is_ok():
    raw = fresh(transport_state="error", transport_last_error="timeout", transport_last_error_ms=ms_ago(60_000))
    doc = health(raw)
    assert doc["status"] == "ok"
    assert doc["transport"]["last_error"] == "timeout"
    assert doc["transport"]["last_error_at"] == "2026-11-22T07:59:00Z"


def test_transport_error_at_the_same_ms_as_the_last_ingest_is_ok():
    raw = fresh(transport_state="error", transport_last_error_ms=ms_ago(10_000))
    assert health(raw)["status"] == "ok"


def test_transport_error_and_never_received_is_error_not_silent():
    raw = {"transport_state": "error", "transport_last_error": "connection refused",
           "transport_last_error_ms": ms_ago(1000)}
    assert health(raw)["status"] == "error"


def test_transport_error_wins_over_silent():
    raw = {"last_ingest_ms": cadences_ago(10), "last_event_ms": cadences_ago(10),
           "transport_state": "error", "transport_last_error_ms": ms_ago(1000)}
    assert health(raw)["status"] == "error"


def test_old_error_of_a_transport_that_recovered_is_not_error():
    """The transport reconnected (state no longer "error"): its last error is history, not status."""
    raw = fresh(transport_state="connected", transport_last_error="reset",
                transport_last_error_ms=ms_ago(1000))
    assert health(raw)["status"] == "ok"


# --- counters and times ------------------------------------------------------------------


def test_counters_and_rejections_by_reason_are_decoded():
    raw = fresh(events_total="1234", rejected_total="7", ignored_total="3", **{
        "rejected:bad_json": "2", "rejected:out_of_bounds": "4", "rejected:duplicate": "1",
        "last_reject_ms": ms_ago(5000)})
    doc = health(raw)
    assert doc["events_total"] == 1234
    assert doc["rejected_total"] == 7
    assert doc["ignored_total"] == 3
    assert doc["rejected_by_reason"] == {"bad_json": 2, "out_of_bounds": 4, "duplicate": 1}
    assert all(isinstance(v, int) for v in doc["rejected_by_reason"].values())
    assert sum(doc["rejected_by_reason"].values()) == doc["rejected_total"]


def test_empty_counters_read_as_zero():
    doc = health({"events_total": "", "rejected_total": "", "last_ingest_ms": ms_ago(1)})
    assert doc["events_total"] == 0 and doc["rejected_total"] == 0


def test_age_and_lag_are_computed_in_seconds():
    raw = {"last_ingest_ms": ms_ago(2_000), "last_event_ms": ms_ago(90_250), "lag_ms": "87250"}
    doc = health(raw, cadence_s=3600)
    assert doc["age_s"] == 90.25
    assert doc["lag_s"] == 87.25
    assert doc["last_event_at"] == "2026-11-22T07:58:29.750000Z"
    assert doc["last_received_at"] == "2026-11-22T07:59:58Z"
    assert doc["expected_cadence_s"] == 3600


def test_age_is_rounded_to_milliseconds():
    doc = health({"last_ingest_ms": ms_ago(1), "last_event_ms": ms_ago(1)})
    assert doc["age_s"] == 0.001


def test_float_texts_are_accepted_and_garbage_ignored():
    doc = health({"last_ingest_ms": f"{NOW_MS - 1000}.0", "last_event_ms": "not-a-number", "lag_ms": ""})
    assert doc["status"] == "ok"
    assert doc["last_event_at"] is None and doc["age_s"] is None and doc["lag_s"] is None
    assert doc["last_received_at"] == "2026-11-22T07:59:59Z"


def test_now_in_another_zone_is_the_same_instant():
    almaty = timezone(timedelta(hours=5))
    raw = {"last_ingest_ms": ms_ago(1000), "last_event_ms": ms_ago(30_000)}
    assert health(raw, now=NOW.astimezone(almaty)) == health(raw)


@pytest.mark.parametrize("raw", [{}, fresh(), fresh(transport_state="error", transport_last_error_ms=ms_ago(1))])
def test_document_shape(raw):
    doc = health(raw)
    assert set(doc) == {"status", "expected_cadence_s", "last_event_at", "last_received_at", "age_s", "lag_s",
                        "events_total", "rejected_total", "ignored_total", "rejected_by_reason", "transport"}
    assert set(doc["transport"]) == {"state", "detail", "last_error", "last_error_at"}
    assert doc["status"] in {"ok", "silent", "stale", "error"}


def test_pure_input_is_not_modified():
    raw = fresh(**{"rejected:bad_json": "1"})
    copy = dict(raw)
    health(raw)
    assert raw == copy


# --- the raw counters as the store writes them -----------------------------------------------


@pytest.mark.redis
def test_store_counters_and_transport_state_feed_the_judgement(store):
    """The field names :meth:`Store.health_raw` produces are the ones :func:`feed_health` reads."""
    import time

    from core.schemas import AirReading
    from core.units import Pollutant

    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    reading = AirReading(station_id="st1", parameter=Pollutant.PM25, value=10.0, unit="ug/m3",
                         observed_at=now - timedelta(seconds=30), lat=43.2, lon=76.9)
    store.append("air", [reading], now_ms=now_ms - 5_000)
    doc = feed_health(store.health_raw("air"), cadence_s=3600, now=now)
    assert doc["status"] == "ok" and doc["events_total"] == 1
    assert doc["last_received_at"] is not None and 29 <= doc["age_s"] <= 31
    time.sleep(0.002)
    store.set_transport_state("air", "error", error="HTTP 503 from https://example.org", detail="https://example.org")
    doc = feed_health(store.health_raw("air"), cadence_s=3600, now=datetime.now(UTC))
    assert doc["status"] == "error"
    assert doc["transport"]["last_error"] == "HTTP 503 from https://example.org"
    assert doc["transport"]["last_error_at"] is not None
    store.append("air", [AirReading(station_id="st2", parameter=Pollutant.PM25, value=11.0, unit="ug/m3",
                                    observed_at=now - timedelta(seconds=10), lat=43.2, lon=76.9)],
                 now_ms=int(time.time() * 1000) + 10)
    assert feed_health(store.health_raw("air"), cadence_s=3600, now=datetime.now(UTC))["status"] == "ok"
