"""Tests of the traffic KPIs: hand-computed small cases, day-type and slot boundaries in Almaty
local time (UTC+5), and the real Almaty score CSV checked against an independent reading."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feeds import get_feed
from tests.conftest import shared_path
from workers.kpi.traffic import KPIS, MAX_AGE, band, build_baseline, compute

ALMATY = ZoneInfo("Asia/Almaty")
NOW = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)  # Thursday 08:00 in Almaty
EMPTY = build_baseline([], ALMATY)


def utc(text: str) -> str:
    """An Almaty local time ``"2026-10-01 08:00"`` as the UTC ISO string the stream holds."""
    return datetime.fromisoformat(text).replace(tzinfo=ALMATY).astimezone(UTC).isoformat()


def score(provider: str, value: float, at: str, **fields: object) -> dict[str, object]:
    return {"kind": "scores", "provider": provider, "score": value, "observed_at": at, **fields}


def segment(speed: float | None, free: float | None = 50.0, at: datetime = NOW, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {"kind": "segments", "segment_id": "s", "observed_at": at.isoformat(),
                                 "lat": 43.25, "lon": 76.95, "speed_kmh": speed, "free_flow_kmh": free}
    return {k: v for k, v in (record | fields).items() if v is not None}


def city(scores=(), segments=(), baseline=EMPTY, now=NOW):
    return compute(scores, segments, baseline=baseline, now=now, zone=ALMATY)["city"]


# ---------------------------------------------------------------------------------------
# definitions and empty input


def test_kpi_table_is_complete_and_matches_compute():
    keys = [k.key for k in KPIS]
    assert len(keys) == len(set(keys)) == 6
    assert all(k.domain == "traffic" and set(k.names) == {"en", "ru", "kk"} and all(k.names.values())
               for k in KPIS)
    assert set(city()) == set(keys)
    congested = next(k for k in KPIS if k.key == "traffic.segments_congested")
    assert (congested.good, congested.meets(0), congested.meets(3)) == ("down", True, False)


def test_empty_gives_empty_providers_zero_count_and_none_measures():
    assert compute([], [], baseline=EMPTY, now=NOW, zone=ALMATY) == {"city": {
        "traffic.score": {}, "traffic.score_baseline": {}, "traffic.score_vs_baseline": {},
        "traffic.segments_congested": 0, "traffic.speed_ratio_median": None, "traffic.speed_bands": None}}
    assert EMPTY.expected(NOW) is None and EMPTY.cells == {}


# ---------------------------------------------------------------------------------------
# scores and baseline


def test_baseline_is_median_and_mad_per_cell_and_provider():
    history = [score("yandex", v, utc(f"2026-10-0{d} 08:0{d}")) for d, v in ((1, 3), (2, 5), (5, 9), (6, 4))]
    history += [score("2gis", 6, utc("2026-10-02 08:10")), score("yandex", 1, utc("2026-10-03 08:00")),
                score("yandex", 8, utc("2026-10-01 08:00"), area_id="district-1")]
    baseline = build_baseline(history, ALMATY)
    cell = baseline.cell(NOW, "yandex")
    # weekday 08:00–08:15: 3, 4, 5, 9 -> median 4.5; |dev| 1.5, 0.5, 0.5, 4.5 -> MAD 1.0
    assert (cell.median, cell.mad, cell.n) == (4.5, 1.0, 4)
    assert baseline.expected(NOW, "2gis") == 6.0
    assert baseline.expected(datetime(2026, 10, 3, 3, 5, tzinfo=UTC), "yandex") == 1.0  # Saturday 08:05
    assert baseline.expected(NOW + timedelta(minutes=15), "yandex") is None  # next slot: no history
    with pytest.raises(ValueError, match="name the provider"):
        baseline.expected(NOW)

    kpis = city([score("yandex", 6, utc("2026-10-01 07:50")), score("yandex", 7, utc("2026-10-01 07:58")),
                 score("2gis", 5, utc("2026-10-01 07:59")), score("yandex", 9, utc("2026-10-01 08:01")),
                 score("other", 2, utc("2026-10-01 07:40"))], baseline=baseline)
    # 08:01 is after now; "other" is older than MAX_AGE
    assert kpis["traffic.score"] == {"2gis": 5.0, "yandex": 7.0}
    assert kpis["traffic.score_baseline"] == {"2gis": 6.0, "yandex": 4.5}
    assert kpis["traffic.score_vs_baseline"] == {"2gis": -1.0, "yandex": 2.5}


def test_score_without_baseline_cell_has_none_difference():
    kpis = city([score("yandex", 4, NOW.isoformat())])
    assert (kpis["traffic.score"], kpis["traffic.score_baseline"], kpis["traffic.score_vs_baseline"]) == (
        {"yandex": 4.0}, {"yandex": None}, {"yandex": None})


def test_max_age_boundary():
    assert city([score("y", 4, (NOW - MAX_AGE).isoformat())])["traffic.score"] == {}
    assert city([score("y", 4, (NOW - MAX_AGE + timedelta(seconds=1)).isoformat())])["traffic.score"] == {"y": 4.0}


@pytest.mark.parametrize(("local", "day", "slot"), [
    ("2026-10-02 23:59:59", "weekday", 95),   # Friday last second
    ("2026-10-03 00:00:00", "saturday", 0),   # = Friday 19:00 UTC
    ("2026-10-04 23:59:59", "sunday", 95),
    ("2026-10-05 00:00:00", "weekday", 0),    # Monday = Sunday 19:00 UTC
    ("2026-10-01 08:14:59", "weekday", 32),
    ("2026-10-01 08:15:00", "weekday", 33),
])
def test_day_type_and_slot_are_local_almaty_time(local, day, slot):
    t = datetime.fromisoformat(utc(local))
    assert t.utcoffset() == timedelta(0)
    assert EMPTY.key(t) == (day, slot)
    assert t.astimezone(ALMATY).utcoffset() == timedelta(hours=5)


def test_slot_boundary_splits_cells_and_zone_mismatch_is_refused():
    baseline = build_baseline([score("y", 2, utc("2026-10-01 08:14:59")), score("y", 6, utc("2026-10-01 08:15"))],
                              ALMATY, slot_minutes=15)
    assert [baseline.expected(datetime.fromisoformat(utc(t))) for t in ("2026-10-05 08:00", "2026-10-05 08:29")] \
        == [2.0, 6.0]
    assert build_baseline([score("y", 2, utc("2026-10-01 08:14:59")), score("y", 6, utc("2026-10-01 08:15"))],
                          ALMATY, slot_minutes=60).expected(NOW) == 4.0
    with pytest.raises(ValueError, match="divide"):
        build_baseline([], ALMATY, slot_minutes=7)
    with pytest.raises(ValueError, match="baseline was built"):
        compute([], [], baseline=EMPTY, now=NOW, zone=UTC)


# ---------------------------------------------------------------------------------------
# segments


def test_segments_congested_median_ratio_and_bands():
    segments = [segment(10), segment(25), segment(29.9), segment(30), segment(35), segment(40), segment(45),
                segment(60), segment(None, None, congested=True), segment(40, congested=True),
                segment(5, at=NOW - MAX_AGE)]  # the last one is stale
    kpis = city(segments=segments)
    # ratios: 0.2 0.5 0.598 0.6 0.7 0.8 0.9 1.2 0.8; congested: 0.2 (< 0.5) + two flags
    assert kpis["traffic.segments_congested"] == 3
    assert kpis["traffic.speed_ratio_median"] == 0.7
    assert kpis["traffic.speed_bands"] == pytest.approx(
        {"red": 300 / 9, "orange": 100 / 9, "yellow": 100 / 9, "light_green": 200 / 9, "green": 200 / 9})


@pytest.mark.parametrize(("ratio", "name"), [(0.0, "red"), (0.5999, "red"), (0.6, "orange"), (0.7, "yellow"),
                                             (0.8, "light_green"), (0.8999, "light_green"), (0.9, "green"),
                                             (1.3, "green")])
def test_band_boundaries(ratio, name):
    assert band(ratio) == name


# ---------------------------------------------------------------------------------------
# real data

SCORES_CSV = "almaty/traffic_scores_2026-10-01_07.csv"


@pytest.mark.shared_data
def test_real_almaty_scores_baseline_against_hourly_means():
    path = shared_path(SCORES_CSV)
    parsed = get_feed("traffic").format("score-csv").parse(path.read_bytes())
    assert parsed.rejected == []
    yandex = [r.to_dict() for r in parsed.records if r.provider == "yandex"]
    baseline = build_baseline(yandex, ALMATY)

    # independently: Yandex scores by local weekday hour, from ts_almaty with the csv module
    hourly: dict[int, list[float]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            local = datetime.fromisoformat(row["ts_almaty"])
            if row["yandex_score"] and local.weekday() < 5:
                hourly[local.hour].append(float(row["yandex_score"]))
    assert len(yandex) == sum(len(v) for v in hourly.values()) + sum(
        1 for r in yandex if datetime.fromisoformat(r["observed_at"]).astimezone(ALMATY).weekday() >= 5)

    def weekday_at(hour: int) -> float | None:
        return baseline.expected(datetime(2026, 10, 5, hour, 0, tzinfo=ALMATY))  # a Monday

    assert weekday_at(3) == 0.0 == statistics.mean(hourly[3])
    for hour in (8, 18):
        assert abs(weekday_at(hour) - statistics.mean(hourly[hour])) <= 1.0
    assert (weekday_at(8), round(statistics.mean(hourly[8]), 3), weekday_at(18),
            round(statistics.mean(hourly[18]), 3)) == (7.0, 7.22, 8.0, 7.903)
