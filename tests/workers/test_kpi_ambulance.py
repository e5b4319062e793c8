"""Tests of the ambulance KPIs: hand-computed small cases for every KPI, the window and scope
rules, the percentile method, and the real San Francisco ``Delay`` column."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from core.citypack import Norms
from feeds import get_feed
from feeds.ambulance import SF_AMBULANCE_UNITS, SF_CATEGORY
from tests.conftest import shared_path
from workers.kpi.ambulance import CATEGORIES, KPIS, compute, definitions, percentile, response

NORMS = Norms(air_limits={}, ambulance_arrival_min={1: 10, 2: 15, 3: 30, 4: 60}, appeal_deadline_h={"other": 72})
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(hhmm: str) -> str:
    """``"11:09"`` or ``"11:20:30"`` on 1 Jan 2025, as the stream's ISO string."""
    parts = [int(p) for p in hhmm.split(":")] + [0]
    return datetime(2025, 1, 1, parts[0], parts[1], parts[2], tzinfo=UTC).isoformat().replace("+00:00", "Z")


def call(call_id: str, district: str | None, category: int | None, unit_id: str | None = None,
         response_s: float | None = None, **times: str) -> dict:
    out = {"kind": "calls", "call_id": call_id, "category": category, "district": district,
           "times": {name: at(value) for name, value in times.items()}}
    if unit_id:
        out["unit_id"] = unit_id
    if response_s is not None:
        out["response_s"] = response_s
    return out


# A: cat 1, response 9 min (within 10); processing 1, turnout 1, travel 7, on scene 20, hand-over 15.
# B: cat 1, response 15 min (over 10); processing 2, turnout 3, travel 10.
# C: cat 3, response 20 min (within 30); processing 0.5, turnout 1, travel 18.5.
# D: cat 1, arrived 10:30, before the window: ignored (its travel too).
# E: cat 2, waiting. F: cancelled, not waiting. G: received, unit named: not waiting.
CALLS = [
    call("A", "d1", 1, "u2", call_received="11:00", unit_notified="11:01", en_route="11:02", on_scene="11:09",
         left_scene="11:29", at_destination="11:40", transfer_of_care="11:55"),
    call("B", "d2", 1, "u3", call_received="11:10", unit_notified="11:12", en_route="11:15", on_scene="11:25"),
    call("C", "d1", 3, "u6", call_received="11:20", unit_notified="11:20:30", en_route="11:21:30",
         on_scene="11:40"),
    call("D", "d1", 1, "u9", call_received="09:00", en_route="10:20", on_scene="10:30"),
    call("E", "d2", 2, call_received="11:58"),
    call("F", None, 1, call_received="11:30", cancelled="11:35"),
    call("G", None, 4, "u7", call_received="11:59"),
]
UNITS = [
    {"unit_id": "u1", "status": "available"},
    {"unit_id": "u2", "call_id": "A"},  # A is at hand-over -> at hospital
    {"unit_id": "u3", "call_id": "B"},  # B is on scene -> on a call
    {"unit_id": "u4", "status": "en_route", "district": "d1"},
    {"unit_id": "u5"},  # no status, no call -> available
    {"unit_id": "u6", "status": "in_transit_to", "call_id": "C"},  # GTFS stop status -> from the call
]


@pytest.fixture(scope="module")
def kpis() -> dict[str, dict[str, float | None]]:
    return compute(CALLS, UNITS, norms=NORMS, now=NOW, window=HOUR)


def test_scopes_are_city_and_each_district(kpis):
    assert set(kpis) == {"city", "d1", "d2"}
    keys = {k.key for k in KPIS}
    assert all(set(values) == keys for values in kpis.values())


def test_calls_waiting(kpis):
    assert kpis["city"]["ambulance.calls_waiting"] == 1
    assert kpis["d2"]["ambulance.calls_waiting"] == 1
    assert kpis["d1"]["ambulance.calls_waiting"] == 0  # calls, none waiting: 0, not None


def test_units_by_status(kpis):
    city = kpis["city"]
    assert (city["ambulance.units_available"], city["ambulance.units_on_call"],
            city["ambulance.units_at_hospital"]) == (2, 3, 1)
    d1 = kpis["d1"]
    assert (d1["ambulance.units_available"], d1["ambulance.units_on_call"], d1["ambulance.units_at_hospital"]) \
        == (0, 1, 0)
    assert kpis["d2"]["ambulance.units_available"] is None  # no unit reports a district d2


def test_response_city(kpis):
    city = kpis["city"]
    assert city["ambulance.response_p50"] == 15  # [9, 15, 20]
    assert city["ambulance.response_p90"] == pytest.approx(19)  # 15 + 0.8 × 5
    assert city["ambulance.within_norm_pct"] == pytest.approx(200 / 3)


def test_response_per_category(kpis):
    city = kpis["city"]
    assert city["ambulance.within_norm_pct_c1"] == 50  # 9 within 10, 15 not; D out of window
    assert city["ambulance.response_p50_c1"] == 12
    assert city["ambulance.response_p90_c1"] == pytest.approx(14.4)  # 9 + 0.9 × 6
    assert city["ambulance.within_norm_pct_c3"] == 100
    assert city["ambulance.response_p50_c3"] == city["ambulance.response_p90_c3"] == 20
    for c in (2, 4):  # category with no completed response: None, not 0
        for name in ("within_norm_pct", "response_p50", "response_p90"):
            assert city[f"ambulance.{name}_c{c}"] is None


def test_response_per_district(kpis):
    assert kpis["d1"]["ambulance.response_p50"] == pytest.approx(14.5)  # [9, 20]
    assert kpis["d1"]["ambulance.response_p90"] == pytest.approx(18.9)
    assert kpis["d1"]["ambulance.within_norm_pct"] == 100
    assert kpis["d2"]["ambulance.within_norm_pct_c1"] == 0
    assert kpis["d2"]["ambulance.response_p90_c1"] == 15


@pytest.mark.parametrize(("key", "p50", "p90"), [
    ("processing", 1, 1.8),  # [0.5, 1, 2]
    ("turnout", 1, 2.6),  # [1, 1, 3]
    ("travel", 10, 16.8),  # [7, 10, 18.5]; D's travel ended before the window
    ("on_scene", 20, 20),
    ("handover", 15, 15),
])
def test_intervals(kpis, key, p50, p90):
    assert kpis["city"][f"ambulance.{key}_p50"] == pytest.approx(p50)
    assert kpis["city"][f"ambulance.{key}_p90"] == pytest.approx(p90)


def test_empty_inputs_are_none():
    out = compute([], [], norms=NORMS, now=NOW, window=HOUR)
    assert list(out) == ["city"]
    assert set(out["city"]) == {k.key for k in KPIS}
    assert all(value is None for value in out["city"].values())


def test_reported_response_without_on_scene():
    calls = [
        call("s1", "x", 1, "m1", response_s=600, back_in_service="11:50"),  # 10 min: within (≤ norm)
        call("s2", "x", 1, "m2", response_s=60, back_in_service="10:00"),  # released before the window
        call("s3", "x", 1, "m3", response_s=300, call_received="10:55"),  # arrived 11:00: window is (11:00, 12:00]
        call("s4", "x", 2, "m4", response_s=1200, call_received="11:30"),  # arrived 11:50, 20 > 15
        call("s5", "x", 1, "m5", response_s=9999, call_received="11:00", on_scene="12:00"),  # times win: 60
    ]
    city = compute(calls, [], norms=NORMS, now=NOW, window=HOUR)["city"]
    assert city["ambulance.response_p50_c1"] == 35  # [10, 60]
    assert city["ambulance.within_norm_pct_c1"] == 50
    assert city["ambulance.within_norm_pct_c2"] == 0
    assert city["ambulance.response_p90"] == pytest.approx(52)  # [10, 20, 60]: 20 + 0.8 × 40
    assert city["ambulance.calls_waiting"] == 0
    assert response(calls[4]) == (3600.0, NOW)


def test_custom_norms_change_share_and_targets():
    norms = Norms(air_limits={}, ambulance_arrival_min={1: 8, 2: 15, 3: 30, 4: 60}, appeal_deadline_h={"other": 72})
    city = compute(CALLS, [], norms=norms, now=NOW, window=HOUR)["city"]
    assert city["ambulance.within_norm_pct_c1"] == 0  # 9 and 15 both over 8
    targets = {k.key: k.target for k in definitions(norms)}
    assert targets["ambulance.response_p90_c1"] == 8


def test_kpi_table():
    keys = [k.key for k in KPIS]
    assert len(keys) == len(set(keys))
    for k in KPIS:
        assert k.domain == "ambulance" and k.key.startswith("ambulance.")
        assert set(k.names) == {"en", "ru", "kk"} and all(k.names.values())
        assert k.unit and k.formula and k.good in ("up", "down")
    by_key = {k.key: k for k in KPIS}
    assert [by_key[f"ambulance.response_p90_c{c}"].target for c in CATEGORIES] == [10, 15, 30, 60]
    assert by_key["ambulance.within_norm_pct_c1"].target == 90
    assert by_key["ambulance.within_norm_pct_c1"].meets(95) is True
    assert by_key["ambulance.response_p90_c2"].meets(16) is False


@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [1.0, 2.0, 3.0, 4.0], [7.5, 1.25, 9.0, 9.0, 0.0, 4.4, 2.0]])
@pytest.mark.parametrize("q", [0, 10, 50, 90, 95, 100])
def test_percentile_is_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q, method="linear")), rel=1e-12)


def test_percentile_edges():
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# ---------------------------------------------------------------------------------------
# real data: San Francisco dispatch records


@pytest.mark.shared_data
def test_sf_delay_percentiles():
    path = shared_path("ems/sf_fire_calls_sample.csv")
    parsed = get_feed("ambulance").format("sf-csv").parse(path.read_bytes())
    records = [r.to_dict() for r in parsed.records]
    latest = max(datetime.fromisoformat(r["times"]["back_in_service"]) for r in records)
    out = compute(records, [], norms=NORMS, now=latest, window=timedelta(days=365 * 30))["city"]

    # independently: the Delay column (minutes) of the ambulance rows that have a release time
    by_category: dict[int, list[float]] = defaultdict(list)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["UnitType"] in SF_AMBULANCE_UNITS and row["AvailableDtTm"] not in ("", "null"):
                by_category[SF_CATEGORY[row["Priority"]]].append(float(row["Delay"]))
    every = [d for delays in by_category.values() for d in delays]
    assert len(records) == len(every) == 337

    def np_p(values: list[float], q: float) -> float:
        return float(np.percentile(values, q, method="linear"))

    assert out["ambulance.response_p50"] == pytest.approx(np_p(every, 50), rel=1e-9)
    assert out["ambulance.response_p90"] == pytest.approx(np_p(every, 90), rel=1e-9)
    for c in CATEGORIES:
        if by_category[c]:
            assert out[f"ambulance.response_p50_c{c}"] == pytest.approx(np_p(by_category[c], 50), rel=1e-9)
            assert out[f"ambulance.response_p90_c{c}"] == pytest.approx(np_p(by_category[c], 90), rel=1e-9)
            share = 100 * sum(d <= NORMS.ambulance_arrival_min[c] for d in by_category[c]) / len(by_category[c])
            assert out[f"ambulance.within_norm_pct_c{c}"] == pytest.approx(share)
        else:
            assert out[f"ambulance.response_p90_c{c}"] is None
    assert not by_category[2]  # SF has no priority mapped to category 2
