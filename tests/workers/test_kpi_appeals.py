"""Tests of the appeals KPIs: hand-computed small cases for every KPI, window boundaries, and
the real NYC 311 sample checked against an independent reading with the csv module."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from core.citypack import Norms
from feeds import get_feed
from tests.conftest import shared_path
from workers.kpi.appeals import KPIS, compute, percentile

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
NORMS = Norms(air_limits={}, ambulance_arrival_min={}, appeal_deadline_h={"roads": 48, "other": 24})


def h(hours: float) -> str:
    """``NOW`` shifted by ``hours``, as the ISO string the latest store holds."""
    return (NOW + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


_ids = iter(range(1, 10**6))


def appeal(status: str = "open", requested: float = -1.0, **fields: object) -> dict[str, object]:
    """An appeal record dict; times are hours relative to ``NOW``."""
    times = {k: h(v) for k, v in fields.items() if k.endswith("_at") and isinstance(v, int | float)}
    record: dict[str, object] = {"request_id": str(next(_ids)), "status": status, "state": status,
                                 "requested_at": h(requested), "updated_at": h(requested), "closed_at": None}
    return record | fields | times


def city(appeals: list[dict[str, object]], window: timedelta = DAY) -> dict[str, object]:
    return compute(appeals, norms=NORMS, now=NOW, window=window)["city"]


# ---------------------------------------------------------------------------------------
# definitions


def test_kpi_table_is_complete_and_matches_compute():
    keys = [k.key for k in KPIS]
    assert len(keys) == len(set(keys)) == 8
    assert all(k.domain == "appeals" and set(k.names) == {"en", "ru", "kk"} and all(k.names.values())
               for k in KPIS)
    assert set(city([])) == set(keys)
    share = next(k for k in KPIS if k.key == "appeals.closed_within_deadline")
    assert (share.unit, share.target, share.meets(91.0), share.meets(50.0)) == ("%", 90.0, True, False)


def test_empty_gives_zero_counts_and_none_measures():
    """Counts are 0, the share and the times None, the mixes empty dicts."""
    assert compute([], norms=NORMS, now=NOW, window=DAY) == {"city": {
        "appeals.open": 0, "appeals.new_last_hour": 0, "appeals.overdue": 0,
        "appeals.closed_within_deadline": None, "appeals.time_to_close_median": None,
        "appeals.time_to_close_p90": None, "appeals.top_categories": {}, "appeals.by_channel": {},
    }}


# ---------------------------------------------------------------------------------------
# percentile


def test_percentile_hand_computed():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)  # h = 3 * 0.9 = 2.7 -> 3 + 0.7 * 1
    assert (percentile([1, 2, 3, 4], 0), percentile([1, 2, 3, 4], 100)) == (1, 4)
    assert percentile([7.5], 90) == 7.5
    assert percentile([], 50) is None


def test_percentile_matches_numpy_linear():
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 10, 101):
        values = list(rng.exponential(5, n))
        for q in (0, 10, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_q_outside_0_100(q):
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], q)


# ---------------------------------------------------------------------------------------
# counts


def test_open_counts_current_status_reopened_included():
    appeals = [
        appeal("open"),
        appeal("open", state="reopened", closed_at=None),  # reopened: the merge cleared closed_at
        appeal("open", state="reopened", closed_at=-2),  # even with a stale close time
        appeal("closed", requested=-5, closed_at=-1),
    ]
    kpis = city(appeals)
    assert kpis["appeals.open"] == 3
    assert kpis["appeals.time_to_close_median"] == 4.0  # only the really closed one


def test_new_in_the_last_hour_boundaries():
    appeals = [
        appeal(requested=-1),  # exactly an hour ago: out
        appeal(requested=-(1 - 1 / 3600)),  # 59 min 59 s ago: in
        appeal("closed", requested=-0.5, closed_at=-0.1),  # closed since: still new
        appeal(requested=0),  # at now: in
        appeal(requested=1 / 3600),  # a second in the future: out
        appeal(requested=-3),
    ]
    assert city(appeals)["appeals.new_last_hour"] == 3


def test_overdue_by_expected_at_or_by_category_deadline():
    appeals = [
        appeal(category="roads", requested=-30, expected_at=-1),  # expected_at passed (category: +18 h): overdue
        appeal(category="roads", requested=-30),  # roads 48 h -> due in 18 h: not yet
        appeal(category=None, requested=-25),  # no category -> other 24 h: overdue
        appeal(category="potholes", requested=-23),  # unknown category -> other 24 h: due in 1 h
        appeal(category="other", requested=-100, expected_at=1),  # expected_at wins over 24 h: not yet
        appeal(requested=-30, expected_at=0),  # due exactly now: not yet overdue
        appeal("closed", category="roads", requested=-100, closed_at=-1),  # late but closed: not open
    ]
    assert city(appeals)["appeals.overdue"] == 2


# ---------------------------------------------------------------------------------------
# closing in the window


def test_closed_within_deadline_and_time_to_close():
    appeals = [
        appeal("closed", category="roads", requested=-10, closed_at=-8),  # 2 h, roads 48 h: on time
        appeal("closed", category="other", requested=-30, closed_at=-2),  # 28 h, other 24 h: late
        appeal("closed", category="roads", requested=-5, closed_at=-1, expected_at=-3),  # 4 h, after expected_at
        appeal("closed", requested=-6, closed_at=0, expected_at=1),  # 6 h, at now: in, on time
        appeal("closed", requested=-30, closed_at=-24),  # exactly a window ago: out
        appeal("closed", requested=-40, closed_at=-25),  # before the window: out
        appeal("open", requested=-50),  # open: not measured
    ]
    kpis = city(appeals)
    assert kpis["appeals.closed_within_deadline"] == 50.0  # 2 of 4
    # sorted hours 2, 4, 6, 28: median h=1.5 -> 4 + 0.5*2 = 5; p90 h=2.7 -> 6 + 0.7*22 = 21.4
    assert kpis["appeals.time_to_close_median"] == 5.0
    assert kpis["appeals.time_to_close_p90"] == pytest.approx(21.4)


def test_closed_without_closed_at_uses_updated_at():
    """Open311: for a closed request, updated_datetime is the close time."""
    kpis = city([appeal("closed", requested=-3, updated_at=-1)])
    assert (kpis["appeals.time_to_close_median"], kpis["appeals.closed_within_deadline"]) == (2.0, 100.0)


def test_window_is_a_parameter():
    appeals = [appeal("closed", requested=-40, closed_at=-30), appeal("closed", requested=-3, closed_at=-1)]
    assert city(appeals, window=DAY)["appeals.time_to_close_median"] == 2.0
    assert city(appeals, window=2 * DAY)["appeals.time_to_close_median"] == 6.0  # (10 + 2) / 2


# ---------------------------------------------------------------------------------------
# mix


def test_top_categories_and_channels_over_requests_in_the_window():
    cats = ["a", "a", "a", "c", "b", "c", "b", "f", "e", "d", None]
    channels = ["phone", "phone", "web", None] + ["messenger"] * 7
    appeals = [appeal(requested=-2, category=c, channel=ch) for c, ch in zip(cats, channels, strict=True)]
    appeals.append(appeal(requested=-30, category="z", channel="walk_in"))  # before the window
    kpis = city(appeals)
    # ties by name; "unknown" (no category) has 1 and sorts after d, e, f -> not in the top 5
    assert list(kpis["appeals.top_categories"].items()) == [("a", 3), ("b", 2), ("c", 2), ("d", 1), ("e", 1)]
    assert kpis["appeals.by_channel"] == {"messenger": 7, "phone": 2, "unknown": 1, "web": 1}


def test_scopes_are_the_city_and_every_district_present():
    appeals = [appeal(district="Almaly"), appeal(district="Almaly"), appeal(district="Medeu"),
               appeal(district=None), appeal("closed", district="Turksib", requested=-100, closed_at=-90)]
    result = compute(appeals, norms=NORMS, now=NOW, window=DAY)
    assert set(result) == {"city", "Almaly", "Medeu", "Turksib"}
    assert {scope: kpis["appeals.open"] for scope, kpis in result.items()} == {
        "city": 4, "Almaly": 2, "Medeu": 1, "Turksib": 0}


def test_datetimes_and_enums_are_accepted_too():
    from core.schemas import AppealStatus

    record = {"request_id": "x", "status": AppealStatus.CLOSED, "requested_at": NOW - timedelta(hours=3),
              "updated_at": NOW, "closed_at": NOW - timedelta(hours=1)}
    assert city([record])["appeals.time_to_close_median"] == 2.0


# ---------------------------------------------------------------------------------------
# the real NYC 311 sample

NYC_CSV = "open311/nyc_311_service_requests.sample.csv"
NYC_FORMAT = "%m/%d/%Y %I:%M:%S %p"


@pytest.mark.shared_data
def test_real_nyc311_sample_against_an_independent_reading():
    path = shared_path(NYC_CSV)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    parsed = get_feed("appeals").format("nyc311-csv").parse(path.read_bytes())
    assert (len(parsed.records), len(parsed.rejected)) == (len(rows), 0)
    records = [r.to_dict() for r in parsed.records]
    now = max(r.updated_at for r in parsed.records)
    first = min(r.requested_at for r in parsed.records)
    kpis = compute(records, norms=NORMS, now=now, window=now - first + timedelta(seconds=1))["city"]

    # independently: local New York times, all on 30-31 Oct 2013 (EDT throughout, DST ended 3 Nov)
    def local(row, column):
        return datetime.strptime(row[column], NYC_FORMAT)  # noqa: DTZ007 (naive local on purpose)

    closed = [r for r in rows if r["Status"] == "Closed"]
    assert {local(r, c).date().isoformat() for r in closed for c in ("Created Date", "Closed Date")} <= {
        "2013-10-30", "2013-10-31"}
    hours = [(local(r, "Closed Date") - local(r, "Created Date")).total_seconds() / 3600 for r in closed]

    assert kpis["appeals.open"] == sum(r["Status"] in ("Open", "Assigned", "Pending") for r in rows) == 116
    assert kpis["appeals.time_to_close_median"] == pytest.approx(float(np.percentile(hours, 50)), rel=1e-12)
    assert kpis["appeals.time_to_close_p90"] == pytest.approx(float(np.percentile(hours, 90)), rel=1e-12)
    assert (len(hours), round(kpis["appeals.time_to_close_median"], 4), round(kpis["appeals.time_to_close_p90"], 4)) \
        == (83, 1.2631, 2.9199)
    top3 = Counter(r["Complaint Type"] for r in rows).most_common(3)
    assert list(kpis["appeals.top_categories"].items())[:3] == top3
    assert top3 == [("Noise - Commercial", 44), ("Noise", 19), ("Noise - Street/Sidewalk", 18)]
